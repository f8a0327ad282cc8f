"""Frozen data types shared by every layer: bars, decisions, orders, fills and positions.

These types are the vocabulary of the one loop (Feed -> MarketSnapshot -> Agent.decide -> Decision ->
RiskEngine -> Broker -> Fill -> Portfolio). They hold data only; behaviour lives in the engine so that
backtest, paper and live share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    """What an agent wants to do with one symbol this round."""

    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    HOLD = "hold"
    CLOSE = "close"


class SizeUnit(StrEnum):
    """How `Decision.size` is measured.

    FRACTION is the fraction of account equity committed to the position (margin plus the entry fee), so
    1.0 at leverage 1 means "all in", as vectorbt's ``size=np.inf`` and backtesting.py's default do. It is
    resolved against equity at fill time, so a gap between the signal and the fill never overdraws the account.
    QUANTITY is in base-asset units (what an LLM usually states); NOTIONAL is in quote currency.
    """

    FRACTION = "fraction"
    QUANTITY = "quantity"
    NOTIONAL = "notional"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class FillKind(StrEnum):
    """Why a fill happened; the engine, not the agent, creates the exit kinds."""

    ENTRY = "entry"
    EXIT = "exit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    LIQUIDATION = "liquidation"


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV candle; `timestamp` is the bar's open time (UTC), as exchanges and ccxt report it."""

    timestamp: int  # epoch nanoseconds, UTC
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Decision:
    """One agent's intent for one symbol at one snapshot.

    Prices (`stop_loss`, `take_profit`) are absolute. The RiskEngine validates, clamps or rejects it; the
    agent's word is never executed unreviewed.
    """

    symbol: str
    action: Action
    size: float = 1.0
    size_unit: SizeUnit = SizeUnit.FRACTION
    leverage: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    reason: str = ""

    @property
    def is_entry(self) -> bool:
        return self.action in (Action.ENTER_LONG, Action.ENTER_SHORT)

    @property
    def direction(self) -> int:
        """+1 for a long entry, -1 for a short entry, 0 otherwise."""
        if self.action is Action.ENTER_LONG:
            return 1
        if self.action is Action.ENTER_SHORT:
            return -1
        return 0


def hold(symbol: str, reason: str = "") -> Decision:
    """The decision an agent (or the engine on its behalf) takes when it should not act."""
    return Decision(symbol=symbol, action=Action.HOLD, size=0.0, reason=reason)


@dataclass(frozen=True, slots=True)
class Order:
    """An approved instruction to the broker, produced only by the RiskEngine.

    `action` is ENTER_LONG, ENTER_SHORT or CLOSE. An entry against an open opposite position (a reversal, when the
    risk limits allow it) closes that position first. Entries carry `fraction` and are sized at fill time against
    equity (see `SizeUnit.FRACTION`); a CLOSE closes the whole position. `order_id` is deterministic
    (run/agent/round/symbol) so that a re-executed round cannot trade twice.
    """

    order_id: str
    symbol: str
    action: Action
    created_at: int  # epoch ns of the snapshot that produced it
    fraction: float = 0.0
    leverage: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    reference_price: float = math.nan  # the close the decision saw, for audit
    reference_volume: float = math.nan  # the signal bar's volume, for square-root impact

    @property
    def direction(self) -> int:
        if self.action is Action.ENTER_LONG:
            return 1
        if self.action is Action.ENTER_SHORT:
            return -1
        return 0


@dataclass(frozen=True, slots=True)
class Fill:
    """An executed trade. `price` includes slippage; `fee` is in quote currency and always >= 0."""

    order_id: str
    symbol: str
    timestamp: int  # epoch ns
    side: OrderSide
    quantity: float  # > 0, base units
    price: float
    fee: float
    kind: FillKind
    realized_pnl: float = 0.0  # price PnL of the closed quantity, before fees; 0 for entries
    funding: float = 0.0  # on exits: funding paid over the position's life (negative = received)
    note: str = ""
    margin: float = 0.0  # isolated margin posted (entry) or released (exit, liquidation), so cash reconciles
    leverage: float = 1.0
    source: str = "engine"  # engine (the simulator) | order | exchange | manual | recovered (see execution.fills)
    trade_id: str = ""  # the exchange's trade id (live fills); one order may fill in several trades


@dataclass(frozen=True, slots=True)
class Position:
    """An open isolated-margin position. `quantity` is signed: > 0 long, < 0 short."""

    symbol: str
    quantity: float
    entry_price: float
    leverage: float
    margin: float
    opened_at: int
    liquidation_price: float
    stop_loss: float | None = None
    take_profit: float | None = None
    entry_fee: float = 0.0
    funding_paid: float = 0.0

    @property
    def direction(self) -> int:
        return 1 if self.quantity > 0 else -1

    @property
    def notional_at_entry(self) -> float:
        return abs(self.quantity) * self.entry_price

    def unrealized_pnl(self, price: float) -> float:
        return self.quantity * (price - self.entry_price)


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The RiskEngine's ruling on one decision: approved (possibly clamped) or rejected, always with reasons."""

    decision: Decision
    approved: bool
    fraction: float = 0.0
    leverage: float = 1.0
    reasons: tuple[str, ...] = field(default_factory=tuple)
    ts: int = 0  # decision time (the bar close), epoch ns; 0 when reviewed outside a loop

    @property
    def clamped(self) -> bool:
        return self.approved and bool(self.reasons)
