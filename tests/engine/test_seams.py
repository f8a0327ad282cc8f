"""The Broker and Feed seams of the one loop.

Specified here:
- `SimBroker` implements the `Broker` protocol and the replay feed implements `Feed`;
- a second, minimal broker written below (a TEST DOUBLE, not the simulator) plugs into the same driver: the agent
  and the RiskEngine run unchanged, so the same decisions get the same verdicts and become the same orders;
- a feed that offers a bar out of order, or the same bar twice, is refused with that bar named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from arena_lib.agents.baselines import SmaCross
from arena_lib.core.config import BacktestConfig, CostModel, ExecutionConfig
from arena_lib.core.types import Action, Bar, Fill, FillKind, Order, OrderSide, Position
from arena_lib.data.history import load_market
from arena_lib.data.tape import BarRow, FeedError, MarketTape
from arena_lib.engine.broker import Broker, FillRejection, SimBroker
from arena_lib.engine.feeds import Feed, ReplayFeed
from arena_lib.engine.loop import run_replay
from arena_lib.engine.portfolio import Portfolio, close_position, open_position

CONFIG = BacktestConfig(
    symbols=("BTC/USDT", "ETH/USDT"),
    costs=CostModel(fee_bps=0.0, slippage_bps=0.0),
    execution=ExecutionConfig(fill="close"),
)


@dataclass
class _CloseFillBroker:
    """TEST DOUBLE: a minimal broker. Every order fills at once at the close mark, with no fee and no caps."""

    account_id: str = "double"
    rejections: list[FillRejection] = field(default_factory=list)
    fault: str | None = None
    orders: list[Order] = field(default_factory=list)

    def settle(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        return pf

    def place(self, order: Order, tape: MarketTape, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        self.orders.append(order)
        price = order.reference_price
        t = tape.last_close_ns
        if order.symbol in pf.positions:
            pos = pf.positions[order.symbol]
            pf, pnl = close_position(pf, order.symbol, price, 0.0)
            side = OrderSide.SELL if pos.quantity > 0 else OrderSide.BUY
            fills.append(Fill(order.order_id, order.symbol, t, side, abs(pos.quantity), price, 0.0, FillKind.EXIT, pnl))
        if order.action is Action.CLOSE:
            return pf
        margin = order.fraction * pf.cash
        qty = margin * order.leverage / price
        position = Position(order.symbol, order.direction * qty, price, order.leverage, margin, t, 0.0)
        side = OrderSide.BUY if order.direction > 0 else OrderSide.SELL
        fills.append(Fill(order.order_id, order.symbol, t, side, qty, price, 0.0, FillKind.ENTRY, 0.0))
        return open_position(pf, position, 0.0)

    def pending_orders(self) -> list[Order]:
        return []

    def has_pending(self) -> bool:
        return False

    def restore(self, pending: Sequence[Order]) -> None:
        if pending:
            raise ValueError("this broker queues nothing")

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        return None

    def flatten(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        for sym in list(pf.positions):
            pf, _ = close_position(pf, sym, tape.close_marks()[tape.symbols.index(sym)], 0.0)
        return pf


def test_the_simulator_and_the_replay_feed_implement_the_protocols() -> None:
    market = load_market(CONFIG.symbols, "1h", "2025-03-01", "2025-03-03")
    assert isinstance(SimBroker(CONFIG, market.symbols), Broker)
    assert isinstance(ReplayFeed(market), Feed)
    assert isinstance(_CloseFillBroker(), Broker)


def test_a_second_broker_leaves_the_agent_and_the_risk_code_unchanged() -> None:
    market = load_market(CONFIG.symbols, "1h", "2025-02-01", "2025-03-15")
    agent = SmaCross(fast=5, slow=20, fraction=0.4, allow_short=True)
    simulated = run_replay([agent], market, CONFIG, run_id="seam")[agent.name]
    double = _CloseFillBroker()
    doubled = run_replay([SmaCross(fast=5, slow=20, fraction=0.4, allow_short=True)], market, CONFIG, run_id="seam",
                         brokers=[double])[agent.name]  # fmt: skip

    assert len(simulated.verdicts) > 10
    assert doubled.verdicts == simulated.verdicts  # same decisions, same rulings, same times
    assert [o.order_id for o in double.orders] == simulated.fills["order_id"].unique().tolist()
    assert doubled.fills["order_id"].tolist() == simulated.fills["order_id"].tolist()
    np.testing.assert_allclose(doubled.fills["price"], simulated.fills["price"], rtol=0, atol=0)


def _row(t: int, price: float) -> BarRow:
    return BarRow(t, [Bar(t, price, price + 1, price - 1, price, 10.0)])


def test_a_bar_out_of_order_or_repeated_is_refused_with_the_bar_named() -> None:
    tape = MarketTape(("BTC/USDT",), "1h")
    hour = 3_600_000_000_000
    tape.append(_row(10 * hour, 100.0))
    tape.append(_row(11 * hour, 101.0))
    with pytest.raises(FeedError, match=r"bar row at 1970-01-01T11:00:00\+00:00 duplicates the last row"):
        tape.append(_row(11 * hour, 102.0))
    with pytest.raises(FeedError, match=r"bar row at 1970-01-01T09:00:00\+00:00 is before the last row"):
        tape.append(_row(9 * hour, 99.0))
    with pytest.raises(FeedError, match="does not belong to the row"):
        tape.append(BarRow(12 * hour, [Bar(13 * hour, 1.0, 1.0, 1.0, 1.0, 1.0)]))
    assert tape.n_rows == 2  # nothing refused was kept
    assert tape.close_marks() == [101.0]
