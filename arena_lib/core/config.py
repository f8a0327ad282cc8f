"""Typed, validated configuration: costs, execution, risk limits and the backtest spec.

A backtest (and later a promoted job) is described by a `BacktestConfig`, never by a notebook cell. Everything
here is a frozen pydantic model so that a spec can be logged, hashed and reloaded exactly. YAML files under
`configs/` load through `load_config` (the project's one YAML loader, `arena_lib.core.yaml_config`), and a bad
file is a `ConfigError` naming the file, the line, the key path and the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FillMode = Literal["next_open", "close"]
BreakerAction = Literal["reducing", "halted"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CostModel(_Frozen):
    """Trading costs applied to every fill, in the batch kernel and the step loop alike.

    Slippage is `slippage_bps` plus, when `impact_coef` > 0, a square-root market-impact term
    `impact_coef * sqrt(quantity / volume)` where `volume` is the signal bar's volume (known at decision time).
    Slippage always moves the price against the trader. Take-profit exits are limit orders and do not slip.
    """

    fee_bps: float = Field(5.0, ge=0, le=1000, description="taker fee per side, basis points of notional")
    slippage_bps: float = Field(1.0, ge=0, le=1000, description="fixed adverse slippage, basis points")
    impact_coef: float = Field(0.0, ge=0, le=1, description="square-root impact coefficient (0 = off)")

    @property
    def fee_rate(self) -> float:
        return self.fee_bps * 1e-4


# Exchange minimums of Binance's USDⓈ-M perpetuals, the market the engine simulates (isolated margin, funding,
# liquidation), as this repo's Binance fixture serves them (tests/servers/binance.py `_PERPS`: the MIN_NOTIONAL
# filter's `notional` and the LOT_SIZE / MARKET_LOT_SIZE filters' `minQty` of /fapi/v1/exchangeInfo). Symbols are
# the config's spot-style names; `min_notional_from_markets` (arena_lib.data.ccxt_source) reads the same values
# from live ccxt markets.
BINANCE_PERP_MIN_NOTIONAL: dict[str, float] = {"BTC/USDT": 100.0, "ETH/USDT": 20.0}
BINANCE_PERP_MIN_AMOUNT: dict[str, float] = {"BTC/USDT": 0.001, "ETH/USDT": 0.001}
# Binance's smallest MIN_NOTIONAL (most USDⓈ-M perpetuals and the spot NOTIONAL filter): the minimum of a symbol
# the table above does not name.
DEFAULT_MIN_NOTIONAL = 5.0

Minimum = float | dict[str, float]


def _minimum_for(value: Minimum, symbol: str, fallback: float) -> float:
    """`value` for `symbol`: the number itself, or the dict's entry for the symbol (also looked up without a ccxt
    settle suffix, `BTC/USDT:USDT` -> `BTC/USDT`), else `fallback`."""
    if not isinstance(value, dict):
        return float(value)
    if symbol in value:
        return float(value[symbol])
    base = symbol.split(":", 1)[0]
    return float(value.get(base, fallback))


class ExecutionConfig(_Frozen):
    """How and when orders fill.

    `next_open` (default) fills a market order at the open of the bar after the signal bar, which is what a
    live job can actually do; `close` fills at the signal bar's close (optimistic, for comparison with peers).

    Exchange minimums: an entry whose notional, after the fill-time risk caps, is below `min_notional` (or whose
    quantity is below `min_amount`) is not filled but recorded as a fill rejection, as an exchange would refuse
    the order. Each is one number for every symbol, or a per-symbol dict (symbols it does not name get
    `default_min_notional`, and no amount minimum). Exits (closes, stops, take-profits, liquidations) are never
    held back: Binance exempts reduce-only orders, and the simulator always closes whole positions.
    """

    fill: FillMode = "next_open"
    initial_cash: float = Field(10_000.0, gt=0)
    maintenance_margin_rate: float = Field(0.005, ge=0, lt=1)
    min_notional: Minimum = Field(
        default_factory=lambda: dict(BINANCE_PERP_MIN_NOTIONAL),
        description=(
            "smallest entry notional in USDT, one number or per symbol. Default: Binance USDⓈ-M perpetual "
            "MIN_NOTIONAL (BTC/USDT 100, ETH/USDT 20; `default_min_notional` for other symbols), the market the "
            "engine simulates. Entries sized as a fraction of a 10k account are thousands of USDT, so ordinary "
            "backtests do not meet it; what it stops is an entry clamped to the last cents (or 1e-12 USDT) of free "
            "margin, a dust position no exchange would fill that then blocks every later entry on the symbol. "
            "0 disables it"
        ),
    )
    default_min_notional: float = Field(
        DEFAULT_MIN_NOTIONAL,
        ge=0,
        allow_inf_nan=False,
        description="USDT minimum for symbols a `min_notional` dict does not name (Binance's usual 5 USDT)",
    )
    min_amount: Minimum = Field(
        default_factory=lambda: dict(BINANCE_PERP_MIN_AMOUNT),
        description=(
            "smallest entry quantity in the base asset, one number or per symbol (symbols a dict does not name: "
            "none). Default: Binance USDⓈ-M perpetual LOT_SIZE minQty (0.001 BTC, 0.001 ETH); quantities are not "
            "rounded to the exchange's step"
        ),
    )

    @field_validator("min_notional", "min_amount")
    @classmethod
    def _non_negative(cls, value: Minimum) -> Minimum:
        values = value.values() if isinstance(value, dict) else [value]
        for v in values:
            if not (v >= 0 and v != float("inf")):  # also refuses NaN
                raise ValueError(f"minimums must be finite numbers >= 0, got {v}")
        return value

    def min_notional_for(self, symbol: str) -> float:
        """The USDT minimum of an entry's notional on `symbol`."""
        return _minimum_for(self.min_notional, symbol, self.default_min_notional)

    def min_amount_for(self, symbol: str) -> float:
        """The minimum of an entry's quantity on `symbol` (0: none)."""
        return _minimum_for(self.min_amount, symbol, 0.0)


class RiskLimits(_Frozen):
    """Hard limits the RiskEngine enforces before every trade, whatever the agent asked for.

    Notional limits are multiples of account equity at fill time.
    """

    max_leverage: float = Field(5.0, ge=1, le=125)
    max_position_notional: float = Field(3.0, gt=0, description="per position, x equity")
    max_gross_exposure: float = Field(5.0, gt=0, description="sum of |notional| over positions, x equity")
    min_free_margin: float = Field(0.0, ge=0, lt=1, description="cash that must stay free after an entry, x equity")
    allow_reversal: bool = Field(True, description="an opposite entry closes the open position, then enters")


class BacktestConfig(_Frozen):
    """The spec of one replay: what data, which costs, which limits."""

    symbols: tuple[str, ...] = ("BTC/USDT",)
    timeframe: str = "1h"
    start: str | None = None
    end: str | None = None
    costs: CostModel = CostModel()
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskLimits = RiskLimits()

    @field_validator("start", "end", mode="before")
    @classmethod
    def _a_time(cls, value: Any) -> Any:
        """A date or time pandas can read (YAML turns `2025-01-01` into a date: kept as its ISO text)."""
        import datetime

        import pandas as pd

        if isinstance(value, datetime.date):
            value = value.isoformat()
        if value is None or not isinstance(value, str):
            return value
        try:
            pd.Timestamp(value)
        except (ValueError, OverflowError):
            raise ValueError("must be a date or time like 2025-01-31 or 2025-01-31T12:00") from None
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BacktestConfig:
        import pandas as pd

        if (
            self.start is not None
            and self.end is not None
            and pd.Timestamp(self.start, tz="UTC") >= pd.Timestamp(self.end, tz="UTC")
        ):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def spec_hash(self) -> str:
        """A stable hash of the spec, logged with every run so results can be matched to their inputs."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


class BreakerSettings(BaseModel):
    """Circuit breakers on the arena's accounts (`arena_lib.engine.breakers`); a threshold of null disables one.

    Defaults follow the prop-trading convention of a daily loss limit at half the maximum drawdown (10% / 5%): a
    losing agent first loses its right to open positions (REDUCING, closes only), and a portfolio-wide loss of 15%
    or a 5% loss within one UTC day stops new orders (HALTED). Drawdown trips are sticky until `arena breakers
    reset`; a daily-loss trip clears at the next UTC day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_drawdown: float | None = Field(0.10, gt=0, lt=1, description="account equity below its peak, fraction")
    agent_drawdown_action: BreakerAction = "reducing"
    portfolio_drawdown: float | None = Field(
        0.15, gt=0, lt=1, description="all accounts' summed equity below its peak, fraction; trips every account"
    )
    portfolio_drawdown_action: BreakerAction = "halted"
    daily_loss: float | None = Field(
        0.05, gt=0, lt=1, description="account equity below its equity at 00:00 UTC, fraction; clears next day"
    )
    daily_loss_action: BreakerAction = "halted"

    @classmethod
    def off(cls) -> BreakerSettings:
        """Every breaker disabled (research replays that study unbounded losses)."""
        return cls(agent_drawdown=None, portfolio_drawdown=None, daily_loss=None)


def load_config(path: str | Path, **overrides: Any) -> BacktestConfig:
    """Load a `BacktestConfig` from YAML; keyword overrides (None: not given) replace top-level keys.

    Raises ConfigError (a ValueError; a missing file is also a FileNotFoundError).
    """
    from arena_lib.core.yaml_config import load_yaml_model

    return load_yaml_model(path, BacktestConfig, overrides=overrides, kind="backtest config")
