"""Brokers: where approved orders become fills. `SimBroker` replays bars with the shared execution rules.

Backtest, paper and live differ only in the feed, the broker and the clock. `SimBroker` implements the bar
events of the one loop for one isolated account, in this order (the batch kernel follows the same order):

1. funding settling at this bar's open is charged or credited to positions held coming into the bar;
2. pending market orders (from the previous bar's decisions) fill at this bar's open (`fill: next_open`);
3. stop-loss, take-profit and liquidation trigger intrabar from the bar's high and low;
then, after the agent decides at the close, orders are queued, or filled at once at the close (`fill: close`).
Symbols are always processed in the feed's symbol order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Action, Fill, FillKind, Order, OrderSide, Position
from arena_lib.data.market import MarketData
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


def exit_order_id(account_id: str, t: int, symbol: str, kind: FillKind) -> str:
    """Deterministic id of an exit the engine made itself (stop, take-profit, liquidation)."""
    return f"{account_id}/{t}/{symbol}/{kind.value}"


@dataclass
class FillRejection:
    """An approved order the broker could not fill (no capacity left at fill time)."""

    order_id: str
    symbol: str
    timestamp: int
    reason: str


@dataclass
class SimBroker:
    """Simulated execution for one account over a `MarketData` replay."""

    market: MarketData
    config: BacktestConfig
    account_id: str = "account"  # run/agent: prefixes the ids of engine-made exits
    pending: dict[int, Order] = field(default_factory=dict)
    rejections: list[FillRejection] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.config
        self._fee = c.costs.fee_rate
        self._bps = c.costs.slippage_bps
        self._impact = c.costs.impact_coef
        self._mmr = c.execution.maintenance_margin_rate
        self._limits = c.risk
        self._symbols = self.market.symbols
        self._index = {s: j for j, s in enumerate(self._symbols)}

    # -- bar events -----------------------------------------------------------------------------------------------
    def settle_funding(self, i: int, pf: Portfolio, rows: list[tuple[int, float]]) -> Portfolio:
        """Charge funding settling at bar `i`'s open; `rows` lists (symbol index, rate)."""
        for j, rate in rows:
            pos = pf.positions.get(self._symbols[j])
            if pos is not None:
                mark = float(self.market.open[i, j])
                pf = apply_funding(pf, pos.symbol, rules.funding_payment(pos.quantity, mark, rate), self._mmr)
        return pf

    def fill_pending(self, i: int, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        """Fill queued orders at bar `i`'s open, for the symbols that have a bar now."""
        t = int(self.market.times[i])
        for j in sorted(self.pending):
            if not self.market.has_bar[i, j]:
                continue
            order = self.pending.pop(j)
            pf = self.execute(order, j, float(self.market.open[i, j]), t, pf, marks, fills)
        return pf

    def check_exits(self, i: int, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        """Trigger stops, take-profits and liquidations from bar `i`'s range."""
        t = int(self.market.times[i])
        m = self.market
        for j, sym in enumerate(self._symbols):
            pos = pf.positions.get(sym)
            if pos is None or not m.has_bar[i, j]:
                continue
            stop = math.nan if pos.stop_loss is None else pos.stop_loss
            take = math.nan if pos.take_profit is None else pos.take_profit
            kind, trigger = rules.intrabar_exit(
                pos.direction,
                float(m.open[i, j]),
                float(m.high[i, j]),
                float(m.low[i, j]),
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
                slip = rules.slippage_fraction(self._bps, self._impact, qty, float(m.volume[i, j]))
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
        args = (lim.max_position_notional, lim.max_gross_exposure, lim.min_free_margin)
        qty0, _ = rules.entry_size(order.fraction, eq, pf.cash, price, order.leverage, self._fee, gross, *args)
        slip = rules.slippage_fraction(self._bps, self._impact, qty0, order.reference_volume)
        px = rules.market_fill_price(price, direction, slip)
        qty, flags = rules.entry_size(order.fraction, eq, pf.cash, px, order.leverage, self._fee, gross, *args)
        if qty <= 0.0:
            self.rejections.append(FillRejection(order.order_id, sym, t, rules.describe_caps(flags)))
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
