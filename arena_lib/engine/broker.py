"""Brokers: where approved orders become fills. `Broker` is the seam; `SimBroker` simulates it bar by bar.

Backtest, paper and live differ only in the feed, the broker and the clock. A broker serves one isolated account.
The loop calls it at the two points of a bar:

1. `settle`, before the agents decide, in this order (the batch kernel follows the same one):
   funding settling at this bar's open is charged or credited to positions held coming into the bar; pending
   market orders (from the previous bar's decisions) fill at this bar's open (`fill: next_open`); stop-loss,
   take-profit and liquidation trigger intrabar from the bar's high and low;
2. `place`, for each order the RiskEngine approved, after the agents decided at the close: queued for the next
   open, or filled at once at the close (`fill: close`).
Symbols are always processed in the feed's symbol order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Action, Fill, FillKind, Order, OrderSide, Position
from arena_lib.data.tape import HIGH, LOW, OPEN, VOLUME, MarketTape
from arena_lib.engine import rules
from arena_lib.engine.portfolio import (
    Portfolio,
    apply_funding,
    close_position,
    equity,
    gross_notional,
    liquidate_position,
    open_position,
)

_EXIT_KIND = {
    rules.EXIT_STOP: FillKind.STOP_LOSS,
    rules.EXIT_TAKE_PROFIT: FillKind.TAKE_PROFIT,
    rules.EXIT_LIQUIDATION: FillKind.LIQUIDATION,
}


def order_id(run_id: str, agent: str, round_ns: int, symbol: str) -> str:
    """Deterministic order id (run/agent/round/symbol): a re-executed round maps to the same ids."""
    return f"{run_id}/{agent}/{round_ns}/{symbol}"


def exit_order_id(account_id: str, t: int, symbol: str, kind: FillKind) -> str:
    """Deterministic id of an exit the engine made itself (stop, take-profit, liquidation)."""
    return f"{account_id}/{t}/{symbol}/{kind.value}"


@dataclass
class FillRejection:
    """An approved order the broker could not fill (no capacity left at fill time, or below the exchange's
    minimum order size)."""

    order_id: str
    symbol: str
    timestamp: int
    reason: str


class BrokerError(RuntimeError):
    """A broker failed in the middle of a bar; the bar is not committed and the message names the broker."""


@runtime_checkable
class Broker(Protocol):
    """Execution for one isolated account: the seam between the engine and a simulator or an exchange."""

    account_id: str
    rejections: list[FillRejection]  # approved orders that could not be filled, with the reason
    fault: str | None  # set by `settle` when the account cannot go on (a live ledger the exchange contradicts)

    def settle(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        """The bar events before a decision on `tape`'s newest row: funding, queued orders, intrabar exits."""
        ...

    def place(self, order: Order, tape: MarketTape, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        """An approved order at the newest row's close: filled now or queued; `marks` are the close marks."""
        ...

    def pending_orders(self) -> list[Order]:
        """Orders accepted but not yet filled (what a restart must restore)."""
        ...

    def has_pending(self) -> bool:
        """Whether any order waits to be filled (the loop skips `settle` for a flat account with none)."""
        ...

    def restore(self, pending: Sequence[Order]) -> None:
        """Take back the pending orders a committed ledger recorded."""
        ...

    def state(self) -> dict[str, Any]:
        """What the broker must remember across a restart besides pending orders (JSON), committed with each bar."""
        ...

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take back what `state` returned at the last committed bar."""
        ...

    def flatten(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        """The kill switch: drop pending orders and exits, and close every position at the newest row's close."""
        ...


@dataclass
class SimBroker:
    """Simulated execution for one account, with the shared execution rules (`engine/rules.py`)."""

    config: BacktestConfig
    symbols: tuple[str, ...]
    account_id: str = "account"  # run/agent: prefixes the ids of engine-made exits
    pending: dict[int, Order] = field(default_factory=dict)
    rejections: list[FillRejection] = field(default_factory=list)
    fault: str | None = None  # the simulator's ledger is its own truth: never set

    def __post_init__(self) -> None:
        c = self.config
        self._fee = c.costs.fee_rate
        self._bps = c.costs.slippage_bps
        self._impact = c.costs.impact_coef
        self._mmr = c.execution.maintenance_margin_rate
        self._limits = c.risk
        self._at_close = c.execution.fill == "close"
        self._symbols = tuple(self.symbols)
        self._index = {s: j for j, s in enumerate(self._symbols)}
        # the exchange's entry minimums, per symbol index (what the kernel gets as arrays)
        self._min_notional = tuple(c.execution.min_notional_for(s) for s in self._symbols)
        self._min_amount = tuple(c.execution.min_amount_for(s) for s in self._symbols)

    # -- the Broker protocol --------------------------------------------------------------------------------------
    def settle(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        if not (pf.positions or self.pending):
            return pf
        due = tape.funding_due
        if due is not None and pf.positions:
            pf = self.settle_funding(tape, pf, due)
        if self.pending:
            pf = self.fill_pending(tape, pf, tape.open_marks(), fills)
        if pf.positions:
            pf = self.check_exits(tape, pf, fills)
        return pf

    def place(self, order: Order, tape: MarketTape, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        j = self._index[order.symbol]
        if self._at_close:
            return self.execute(order, j, marks[j], tape.last_close_ns, pf, list(marks), fills)
        self.submit(order)
        return pf

    def pending_orders(self) -> list[Order]:
        return [self.pending[j] for j in sorted(self.pending)]

    def has_pending(self) -> bool:
        return bool(self.pending)

    def restore(self, pending: Sequence[Order]) -> None:
        self.pending = {self._index[o.symbol]: o for o in pending}

    def state(self) -> dict[str, Any]:
        return {}  # everything the simulator needs is the portfolio and the pending orders

    def load_state(self, state: Mapping[str, Any]) -> None:
        return None

    def flatten(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        self.pending.clear()
        marks = tape.close_marks()
        t = tape.last_close_ns
        for sym in [s for s in self._symbols if s in pf.positions]:
            order = Order(exit_order_id(self.account_id, t, sym, FillKind.EXIT), sym, Action.CLOSE, t)
            pf = self.execute(order, self._index[sym], marks[self._index[sym]], t, pf, marks, fills)
        return pf

    # -- bar events -----------------------------------------------------------------------------------------------
    def settle_funding(self, tape: MarketTape, pf: Portfolio, rows: list[tuple[int, float]]) -> Portfolio:
        """Charge funding settling at the newest row's open; `rows` lists (symbol index, rate)."""
        for j, rate in rows:
            pos = pf.positions.get(self._symbols[j])
            if pos is not None:
                mark = tape.value(j, OPEN)
                pf = apply_funding(pf, pos.symbol, rules.funding_payment(pos.quantity, mark, rate), self._mmr)
        return pf

    def fill_pending(self, tape: MarketTape, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        """Fill queued orders at the newest row's open, for the symbols that have a bar now."""
        t = tape.time_ns
        for j in sorted(self.pending):
            if not tape.has_bar(j):
                continue
            order = self.pending.pop(j)
            pf = self.execute(order, j, tape.value(j, OPEN), t, pf, marks, fills)
        return pf

    def check_exits(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        """Trigger stops, take-profits and liquidations from the newest row's range."""
        t = tape.time_ns
        for j, sym in enumerate(self._symbols):
            pos = pf.positions.get(sym)
            if pos is None or not tape.has_bar(j):
                continue
            stop = math.nan if pos.stop_loss is None else pos.stop_loss
            take = math.nan if pos.take_profit is None else pos.take_profit
            kind, trigger = rules.intrabar_exit(
                pos.direction,
                tape.value(j, OPEN),
                tape.value(j, HIGH),
                tape.value(j, LOW),
                stop,
                take,
                pos.liquidation_price,
            )
            if kind == rules.EXIT_NONE:
                continue
            side = OrderSide.SELL if pos.direction > 0 else OrderSide.BUY
            qty = abs(pos.quantity)
            oid = exit_order_id(self.account_id, t, sym, _EXIT_KIND[kind])
            if kind == rules.EXIT_LIQUIDATION:
                pf, pnl = liquidate_position(pf, sym)
                fills.append(
                    Fill(
                        oid,
                        sym,
                        t,
                        side,
                        qty,
                        trigger,
                        0.0,
                        FillKind.LIQUIDATION,
                        pnl,
                        pos.funding_paid,
                        "isolated margin lost",
                        margin=pos.margin,
                        leverage=pos.leverage,
                    )
                )
                continue
            price = trigger
            if kind == rules.EXIT_STOP:
                slip = rules.slippage_fraction(self._bps, self._impact, qty, tape.value(j, VOLUME))
                price = rules.market_fill_price(trigger, -pos.direction, slip)
            fee = qty * price * self._fee
            pf, pnl = close_position(pf, sym, price, fee)
            fills.append(
                Fill(
                    oid,
                    sym,
                    t,
                    side,
                    qty,
                    price,
                    fee,
                    _EXIT_KIND[kind],
                    pnl,
                    pos.funding_paid,
                    margin=pos.margin,
                    leverage=pos.leverage,
                )
            )
        return pf

    # -- orders ---------------------------------------------------------------------------------------------------
    def submit(self, order: Order) -> None:
        """Queue an order for the next bar's open; a newer order for the same symbol replaces an unfilled one."""
        self.pending[self._index[order.symbol]] = order

    def execute(
        self, order: Order, j: int, price: float, t: int, pf: Portfolio, marks: list[float], fills: list[Fill]
    ) -> Portfolio:
        """Fill `order` at reference `price` now: close what it reverses or closes, then enter."""
        sym = order.symbol
        pos = pf.positions.get(sym)
        marks[j] = price
        if pos is not None and (order.action is Action.CLOSE or order.direction != pos.direction):
            side = -pos.direction
            qty = abs(pos.quantity)
            slip = rules.slippage_fraction(self._bps, self._impact, qty, order.reference_volume)
            px = rules.market_fill_price(price, side, slip)
            fee = qty * px * self._fee
            pf, pnl = close_position(pf, sym, px, fee)
            fills.append(
                Fill(
                    order.order_id,
                    sym,
                    t,
                    OrderSide.BUY if side > 0 else OrderSide.SELL,
                    qty,
                    px,
                    fee,
                    FillKind.EXIT,
                    pnl,
                    pos.funding_paid,
                    margin=pos.margin,
                    leverage=pos.leverage,
                )
            )
        direction = order.direction
        if direction == 0 or sym in pf.positions:
            return pf
        lim = self._limits
        eq = equity(pf, self._symbols, marks)
        gross = gross_notional(pf, self._symbols, marks, exclude=sym)
        min_notional, min_amount = self._min_notional[j], self._min_amount[j]
        args = (lim.max_position_notional, lim.max_gross_exposure, lim.min_free_margin, min_notional, min_amount)
        qty0, _ = rules.entry_size(order.fraction, eq, pf.cash, price, order.leverage, self._fee, gross, *args)
        slip = rules.slippage_fraction(self._bps, self._impact, qty0, order.reference_volume)
        px = rules.market_fill_price(price, direction, slip)
        qty, flags = rules.entry_size(order.fraction, eq, pf.cash, px, order.leverage, self._fee, gross, *args)
        if qty <= 0.0:
            reason = rules.describe_caps(flags, min_notional, min_amount)
            self.rejections.append(FillRejection(order.order_id, sym, t, reason))
            return pf
        fee = qty * px * self._fee
        position = Position(
            symbol=sym,
            quantity=direction * qty,
            entry_price=px,
            leverage=order.leverage,
            margin=qty * px / order.leverage,
            opened_at=t,
            liquidation_price=rules.liquidation_price(px, direction, order.leverage, self._mmr),
            stop_loss=order.stop_loss,
            take_profit=order.take_profit,
            entry_fee=fee,
        )
        pf = open_position(pf, position, fee)
        fills.append(
            Fill(
                order.order_id,
                sym,
                t,
                OrderSide.BUY if direction > 0 else OrderSide.SELL,
                qty,
                px,
                fee,
                FillKind.ENTRY,
                0.0,
                0.0,
                rules.describe_caps(flags),
                margin=position.margin,
                leverage=order.leverage,
            )
        )
        return pf
