"""The `live:` section of an arena config: which exchange, whose keys, and the caps checked before any order."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_KEY_ENV = "ARENA_LIVE_API_KEY"
DEFAULT_SECRET_ENV = "ARENA_LIVE_API_SECRET"


class AccountKeys(BaseModel):
    """The names of the environment variables that hold one exchange account's keys (never the keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str = Field(DEFAULT_KEY_ENV, description="variable holding the API key")
    secret: str = Field(DEFAULT_SECRET_ENV, description="variable holding the API secret")


class LiveCaps(BaseModel):
    """Per-account limits checked before anything reaches the exchange.

    They bound what a wrong model can do in one bar and one day. Orders that close or protect a position (exits,
    stops, take-profits, the kill switch's flatten) are never held back by them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: float = Field(1_000.0, gt=0, description="largest entry, in quote currency (USDT)")
    max_orders_per_minute: int = Field(6, ge=1, description="entries sent per rolling minute, per account")
    daily_loss: float = Field(
        0.05, gt=0, le=1, description="no new entries once equity is this fraction below its 00:00 UTC level"
    )


class LiveSettings(BaseModel):
    """How a live run reaches its exchange. Secrets stay in the environment; this holds variable names only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(
        "binanceusdm", description="ccxt exchange id (needs createOrder, fetchPositions, fetchMyTrades)"
    )
    sandbox: bool = Field(False, description="trade the exchange's testnet through ccxt's sandbox mode")
    margin_mode: Literal["isolated", "cross"] = Field("isolated", description="set on every traded symbol")
    accounts: dict[str, AccountKeys] = Field(
        default_factory=dict,
        description="per agent: the variables of its own exchange (sub-)account's keys; one agent may use the "
        f"defaults {DEFAULT_KEY_ENV}/{DEFAULT_SECRET_ENV}",
    )
    caps: LiveCaps = Field(default_factory=LiveCaps)
    timeout_ms: int = Field(10_000, ge=100, description="HTTP timeout of one exchange request")
    max_retries: int = Field(3, ge=0, description="retries of a request that failed on the network or a rate limit")
    max_wait_s: float = Field(30.0, ge=0, description="longest Retry-After honoured; a longer ban rejects the order")
    balance_tolerance: float = Field(
        0.01, ge=0, description="quote-currency difference between ledger and exchange wallet that still reconciles"
    )

    def keys_for(self, agent: str, n_agents: int) -> AccountKeys:
        """The key variables of `agent`'s exchange account.

        Two agents on one exchange account would net their positions (one-way mode), so the default variables
        serve a single-agent arena only.
        """
        if agent in self.accounts:
            return self.accounts[agent]
        if n_agents == 1:
            return AccountKeys()
        raise ValueError(
            f"live agent {agent!r} has no exchange account: give each agent its own under live.accounts "
            "(two agents on one account would net their positions)"
        )
