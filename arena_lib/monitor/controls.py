"""The monitor's only write path: the kill switch, behind an operator token.

Why a token and not a login: the monitor is a read-only window for stakeholders, and halting every trading job is
the one action worth exposing there (an operator on a phone should not need a shell to stop trading). The switch
is armed only when the deployment sets `ARENA_MONITOR_TOKEN` *and* the operator types the same value; without the
variable, `controls_enabled()` is False, the app renders no control at all, and `halt_all`/`resume_all` refuse.

The token never leaves this module: it is compared in constant time (`hmac.compare_digest`), never echoed in an
error, never written to the store (the switch records `by="monitor"`), and a reason that contains it is refused so
it cannot leak into the store's halt record either.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from arena_lib.arena.store import ArenaStore, HaltState
from arena_lib.core.clock import Clock, WallClock
from arena_lib.core.settings import settings

TOKEN_ENV = "ARENA_MONITOR_TOKEN"
"""The variable holding the operator token (`Settings.monitor_token`, a SecretStr)."""
ACTOR = "monitor"
"""What the store records as `by` for a halt or resume made from the monitor (never the token or a user name)."""
MAX_REASON_CHARS = 500


class ControlsDisabledError(PermissionError):
    """The deployment set no `ARENA_MONITOR_TOKEN`: the monitor is strictly read-only."""


class InvalidTokenError(PermissionError):
    """The operator's token does not match `ARENA_MONITOR_TOKEN` (the message never includes either value)."""


def configured_token(env: Mapping[str, str] | None = None) -> str | None:
    """The token the deployment set (surrounding blanks removed), or None when the variable is unset or blank.

    `env` None: the process environment, through `settings()`; a mapping: that mapping alone (tests).
    """
    token = settings(env).monitor_token
    return token.get_secret_value() if token is not None else None


def controls_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when the kill switch may be offered at all (the token variable is set)."""
    return configured_token(env) is not None


def token_matches(entered: str | None, env: Mapping[str, str] | None = None) -> bool:
    """Constant-time comparison of the operator's entry with the configured token; False when either is missing."""
    expected = configured_token(env)
    if expected is None or not entered:
        return False
    return hmac.compare_digest(entered.strip().encode("utf-8"), expected.encode("utf-8"))


def _authorize(entered: str | None, env: Mapping[str, str] | None) -> None:
    if not controls_enabled(env):
        raise ControlsDisabledError(
            f"the monitor is read-only: set {TOKEN_ENV} where the app runs to enable the kill switch, "
            "or use `arena halt` / `arena resume`"
        )
    if not token_matches(entered, env):
        raise InvalidTokenError("the operator token is not correct; nothing was changed")


def _clean_reason(reason: str, env: Mapping[str, str] | None) -> str:
    text = " ".join(reason.split())
    if not text:
        raise ValueError("say why trading stops: the reason is shown to every job and in the monitor")
    if len(text) > MAX_REASON_CHARS:
        raise ValueError(f"the reason is {len(text)} characters; keep it under {MAX_REASON_CHARS}")
    token = configured_token(env)
    if token is not None and token in text:
        raise ValueError("the reason contains the operator token; write the reason without it")
    return text


def halt_all(
    store: ArenaStore,
    entered_token: str | None,
    reason: str,
    *,
    clock: Clock | None = None,
    env: Mapping[str, str] | None = None,
) -> HaltState:
    """Halt every trading job on `store` (as `arena halt` does), recorded as by "monitor"; the reason is required.

    Raises ControlsDisabledError (no token configured), InvalidTokenError (wrong token) or ValueError (no reason,
    or one that contains the token) before anything is written.
    """
    _authorize(entered_token, env)
    why = _clean_reason(reason, env)
    return store.set_halt(True, reason=why, by=ACTOR, at_ns=(clock or WallClock()).now_ns())


def resume_all(
    store: ArenaStore,
    entered_token: str | None,
    *,
    clock: Clock | None = None,
    env: Mapping[str, str] | None = None,
) -> HaltState:
    """Lift the kill switch on `store` (as `arena resume` does), recorded as by "monitor".

    Raises ControlsDisabledError or InvalidTokenError before anything is written.
    """
    _authorize(entered_token, env)
    return store.set_halt(False, by=ACTOR, at_ns=(clock or WallClock()).now_ns())


def switch_state(store: ArenaStore) -> HaltState | None:
    """The kill switch as the store holds it (None: never set, so trading is enabled). Read-only."""
    return store.halt_state()
