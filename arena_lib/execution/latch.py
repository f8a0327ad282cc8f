"""The live latch: real orders need every one of these, and a refusal names every missing one at once.

1. the exchange keys of each agent's account, from the environment or `./.env`;
2. `mode: live` in the arena config;
3. the confirmation: `ARENA_LIVE_CONFIRM=LIVE`, or `--confirm-live LIVE` on the command line;
4. for model agents, a registry version at the `@live` alias.

Nothing is started before the latch holds: no exchange client, no run in the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arena_lib.core.settings import env_secret
from arena_lib.execution.settings import AccountKeys, LiveSettings

CONFIRM_ENV = "ARENA_LIVE_CONFIRM"
CONFIRM_WORD = "LIVE"


class LiveNotArmedError(RuntimeError):
    """Live trading was asked for without everything the latch needs; `missing` lists each item."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        items = "\n".join(f"  - {m}" for m in self.missing)
        super().__init__(f"live trading refused; nothing was started. Missing:\n{items}")


@dataclass(frozen=True)
class AccountSecrets:
    """One account's keys, read from the environment; `repr` never shows them."""

    api_key: str
    secret: str

    def __repr__(self) -> str:
        return "AccountSecrets(***)"


def check_latch(
    *,
    config_mode: str | None,
    live: LiveSettings,
    agents: Sequence[str],
    model_problems: Mapping[str, str],
    confirm: str | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, AccountSecrets]:
    """Every agent's keys when the latch holds; otherwise `LiveNotArmedError` listing everything missing.

    `model_problems` names each model agent without a version at `@live` (or not configured for that alias),
    with the reason; `confirm` is the command line's `--confirm-live` value (None: not given).
    """
    missing: list[str] = []
    if config_mode != "live":
        missing.append(f"`mode: live` in the arena config (it says {config_mode or 'nothing'})")
    given = confirm if confirm is not None else env_secret(CONFIRM_ENV, env)
    if given != CONFIRM_WORD:
        missing.append(f"the confirmation: {CONFIRM_ENV}={CONFIRM_WORD}, or --confirm-live {CONFIRM_WORD}")
    secrets: dict[str, AccountSecrets] = {}
    for agent in agents:
        try:
            names: AccountKeys = live.keys_for(agent, len(agents))
        except ValueError as exc:
            missing.append(str(exc))
            continue
        key, secret = env_secret(names.api_key, env), env_secret(names.secret, env)
        unset = [n for n, v in ((names.api_key, key), (names.secret, secret)) if not v]
        if unset:
            missing.append(f"exchange keys of {agent!r}: set {' and '.join(unset)} (environment or .env)")
        elif key and secret:
            secrets[agent] = AccountSecrets(key, secret)
    for agent, why in model_problems.items():
        missing.append(f"model agent {agent!r} needs a version at @live: {why}")
    if not agents:
        missing.append("at least one agent that can trade")
    if missing:
        raise LiveNotArmedError(missing)
    return secrets
