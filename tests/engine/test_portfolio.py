"""Executable specification of `arena_lib.engine.portfolio`: the accounting identities, worked by hand.

The module docstring states them:
- opening:  cash -= margin + fee, with margin = |quantity| * price / leverage
- closing:  cash += margin + quantity * (exit - entry) - fee
- liquidation: the margin is lost, cash unchanged
- funding:  the position's isolated margin -= payment (longs pay a positive rate); cash unchanged, and the
  liquidation price moves with the margin
- equity = cash + sum over positions of (margin + quantity * (mark - entry))
The numbers are chosen so that every intermediate value is exact in binary floating point, so the tests compare
with `==` where the arithmetic is exact.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from arena_lib.core.types import Position
from arena_lib.engine.portfolio import (
    Portfolio,
    apply_funding,
    close_position,
    equity,
    gross_notional,
    liquidate_position,
    open_position,
)
from arena_lib.engine.rules import liquidation_price

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
MMR = 0.005  # the maintenance margin rate `_pos` uses


def _pos(symbol: str, quantity: float, entry: float, leverage: float, mmr: float = MMR) -> Position:
    direction = 1 if quantity > 0 else -1
    return Position(
        symbol=symbol,
        quantity=quantity,
        entry_price=entry,
        leverage=leverage,
        margin=abs(quantity) * entry / leverage,
        opened_at=0,
        liquidation_price=liquidation_price(entry, direction, leverage, mmr),
    )


def test_start() -> None:
    pf = Portfolio.start(10_000)
    assert pf.cash == 10_000.0
    assert isinstance(pf.cash, float)
    assert dict(pf.positions) == {}
    assert (pf.realized_pnl, pf.fees_paid, pf.funding_paid) == (0.0, 0.0, 0.0)
    assert pf.direction("BTC/USDT") == 0
    assert pf.position("BTC/USDT") is None
    assert equity(pf, SYMBOLS, [1.0, 2.0, 3.0]) == 10_000.0


def test_open_long_debits_margin_and_fee() -> None:
    # 0.5 BTC at 20_000 with 5x: notional 10_000, margin 2_000; fee 5 bps of 10_000 = 5.
    pos = _pos("BTC/USDT", 0.5, 20_000.0, 5.0)
    assert pos.margin == 2_000.0
    pf = open_position(Portfolio.start(10_000), pos, fee=5.0)
    assert pf.cash == 10_000.0 - 2_000.0 - 5.0 == 7_995.0
    assert pf.fees_paid == 5.0
    assert pf.position("BTC/USDT") is pos
    assert pf.direction("BTC/USDT") == 1
    # equity at the entry price: cash + margin = initial cash minus the fee
    assert equity(pf, SYMBOLS, [20_000.0, math.nan, math.nan]) == 9_995.0
    # marked at 21_000: + 0.5 * 1_000
    assert equity(pf, SYMBOLS, [21_000.0, math.nan, math.nan]) == 10_495.0


def test_close_long_with_profit() -> None:
    pf = open_position(Portfolio.start(10_000), _pos("BTC/USDT", 0.5, 20_000.0, 5.0), fee=5.0)
    # exit at 22_000: pnl = 0.5 * 2_000 = 1_000; exit fee 5.5 (5 bps of 11_000)
    out, pnl = close_position(pf, "BTC/USDT", 22_000.0, fee=5.5)
    assert pnl == 1_000.0
    assert out.cash == 7_995.0 + 2_000.0 + 1_000.0 - 5.5 == 10_989.5
    assert out.positions == {}
    assert out.realized_pnl == 1_000.0
    assert out.fees_paid == 10.5
    # round trip: initial cash + pnl - all fees
    assert out.cash == 10_000.0 + pnl - out.fees_paid


def test_close_long_with_loss() -> None:
    pf = open_position(Portfolio.start(10_000), _pos("BTC/USDT", 0.5, 20_000.0, 5.0), fee=5.0)
    # exit at 19_000: pnl = 0.5 * -1_000 = -500; fee 4.75
    out, pnl = close_position(pf, "BTC/USDT", 19_000.0, fee=4.75)
    assert pnl == -500.0
    assert out.cash == 7_995.0 + 2_000.0 - 500.0 - 4.75 == 9_490.25
    assert out.realized_pnl == -500.0
    assert out.fees_paid == 9.75


def test_short_profit_and_loss() -> None:
    # short 4 ETH at 1_500 with 2x: margin 3_000, fee 3
    pf = open_position(Portfolio.start(10_000), _pos("ETH/USDT", -4.0, 1_500.0, 2.0), fee=3.0)
    assert pf.cash == 6_997.0
    assert pf.direction("ETH/USDT") == -1
    # equity marked at 1_400: short gains 4 * 100
    assert equity(pf, SYMBOLS, [math.nan, 1_400.0, math.nan]) == 6_997.0 + 3_000.0 + 400.0
    win, pnl = close_position(pf, "ETH/USDT", 1_400.0, fee=2.75)
    assert pnl == 400.0
    assert win.cash == 6_997.0 + 3_000.0 + 400.0 - 2.75
    lose, pnl = close_position(pf, "ETH/USDT", 1_625.0, fee=3.25)
    assert pnl == -500.0
    assert lose.cash == 6_997.0 + 3_000.0 - 500.0 - 3.25 == 9_493.75


def test_liquidation_loses_exactly_the_margin() -> None:
    pos = _pos("BTC/USDT", 0.5, 20_000.0, 5.0)  # margin 2_000, liquidation at 20_000 * (1 - 0.2 + 0.005) = 16_100
    assert pos.liquidation_price == pytest.approx(16_100.0, rel=1e-12)
    pf = open_position(Portfolio.start(10_000), pos, fee=5.0)
    out, loss = liquidate_position(pf, "BTC/USDT")
    assert loss == -2_000.0
    assert out.cash == pf.cash == 7_995.0  # cash unchanged: nothing comes back
    assert out.positions == {}
    assert out.realized_pnl == -2_000.0
    assert out.fees_paid == pf.fees_paid  # no fee on a liquidation in this model
    # account after liquidation = initial cash - margin - entry fee, however far the price fell
    assert equity(out, SYMBOLS, [1.0, math.nan, math.nan]) == 10_000.0 - 2_000.0 - 5.0
    # just before liquidation, equity still held the maintenance margin: 0.5% of the 10_000 notional = 50
    before = equity(pf, SYMBOLS, [pos.liquidation_price, math.nan, math.nan])
    assert before - out.cash == pytest.approx(50.0, rel=1e-9)


def test_funding_paid_and_received() -> None:
    pf = open_position(Portfolio.start(10_000), _pos("BTC/USDT", 0.5, 20_000.0, 5.0), fee=5.0)  # margin 2_000
    paid = apply_funding(pf, "BTC/USDT", 1.25, MMR)  # a long paying a positive rate
    assert paid.cash == pf.cash == 7_995.0  # funding never touches cash: it comes out of the isolated margin
    assert paid.positions["BTC/USDT"].margin == 2_000.0 - 1.25 == 1_998.75
    assert paid.funding_paid == 1.25
    assert paid.positions["BTC/USDT"].funding_paid == 1.25
    # less margin, closer liquidation: entry * (1 + mmr) - margin / |q| = 20_100 - 3_997.5
    assert paid.positions["BTC/USDT"].liquidation_price == pytest.approx(16_102.5, rel=1e-12)
    # equity falls by exactly the payment, at any mark
    assert equity(paid, SYMBOLS, [20_000.0, math.nan, math.nan]) == 9_995.0 - 1.25
    assert equity(paid, SYMBOLS, [21_000.0, math.nan, math.nan]) == 10_495.0 - 1.25
    received = apply_funding(paid, "BTC/USDT", -0.75, MMR)  # the rate turned negative: received into the margin
    assert received.cash == 7_995.0
    assert received.positions["BTC/USDT"].margin == 2_000.0 - 1.25 + 0.75 == 1_999.5
    assert received.positions["BTC/USDT"].liquidation_price == pytest.approx(20_100.0 - 3_999.0, rel=1e-12)
    assert received.funding_paid == 0.5
    assert received.positions["BTC/USDT"].funding_paid == 0.5
    # funding changes the margin (and so the liquidation price), never the position's size or entry
    p0, p1 = pf.positions["BTC/USDT"], received.positions["BTC/USDT"]
    assert (p1.quantity, p1.entry_price, p1.leverage) == (p0.quantity, p0.entry_price, p0.leverage)
    # closing afterwards returns the reduced margin: the funding stays paid (it is not part of the price pnl)
    out, pnl = close_position(received, "BTC/USDT", 20_000.0, fee=5.0)
    assert pnl == 0.0
    assert out.cash == 7_995.0 + 1_999.5 - 5.0 == 10_000.0 - 5.0 - 5.0 - 0.5
    assert out.funding_paid == 0.5
    assert out.realized_pnl == 0.0
    # a liquidation loses the margin as it stands after funding, and cash is still untouched
    liquidated, loss = liquidate_position(received, "BTC/USDT")
    assert loss == -1_999.5
    assert liquidated.cash == 7_995.0
    assert liquidated.realized_pnl == -1_999.5
    assert liquidated.funding_paid == 0.5


def test_funding_moves_a_short_liquidation_price() -> None:
    # short 4 ETH at 1_500 with 2x: margin 3_000, liquidation at 1_500 * (1 - 0.005) + 3_000 / 4 = 2_242.5
    pf = open_position(Portfolio.start(10_000), _pos("ETH/USDT", -4.0, 1_500.0, 2.0), fee=3.0)
    assert pf.positions["ETH/USDT"].liquidation_price == pytest.approx(2_242.5, rel=1e-12)
    received = apply_funding(pf, "ETH/USDT", -0.5, MMR)  # a short receiving a positive rate
    assert received.cash == 6_997.0
    assert received.positions["ETH/USDT"].margin == 3_000.5
    assert received.positions["ETH/USDT"].liquidation_price == pytest.approx(2_242.5 + 0.125, rel=1e-12)
    paid = apply_funding(pf, "ETH/USDT", 2.0, MMR)  # ... or paying a negative one
    assert paid.cash == 6_997.0
    assert paid.positions["ETH/USDT"].margin == 2_998.0
    assert paid.positions["ETH/USDT"].liquidation_price == pytest.approx(2_242.5 - 0.5, rel=1e-12)


def test_equity_with_several_positions_and_marks() -> None:
    pf = Portfolio.start(10_000)
    pf = open_position(pf, _pos("BTC/USDT", 0.25, 20_000.0, 2.0), fee=2.5)  # margin 2_500
    pf = open_position(pf, _pos("SOL/USDT", -10.0, 100.0, 4.0), fee=0.5)  # margin 250
    assert pf.cash == 10_000.0 - 2_500.0 - 2.5 - 250.0 - 0.5 == 7_247.0
    marks = [22_000.0, 1_234.5, 90.0]  # ETH has no position: its mark does not matter
    # 7_247 + (2_500 + 0.25 * 2_000) + (250 + -10 * -10) = 7_247 + 3_000 + 350
    assert equity(pf, SYMBOLS, marks) == 10_597.0
    assert equity(pf, SYMBOLS, [22_000.0, math.nan, 90.0]) == 10_597.0
    # gross notional at the marks: 0.25 * 22_000 + 10 * 90
    assert gross_notional(pf, SYMBOLS, marks) == 5_500.0 + 900.0
    assert gross_notional(pf, SYMBOLS, marks, exclude="BTC/USDT") == 900.0
    with pytest.raises(ValueError):
        equity(pf, SYMBOLS, marks[:2])  # one mark per symbol, no silent truncation


def test_transitions_leave_the_old_state_unchanged() -> None:
    start = Portfolio.start(10_000)
    pos = _pos("BTC/USDT", 0.5, 20_000.0, 5.0)
    opened = open_position(start, pos, fee=5.0)
    assert start.cash == 10_000.0
    assert dict(start.positions) == {}
    assert start.fees_paid == 0.0

    funded = apply_funding(opened, "BTC/USDT", 2.0, MMR)
    assert funded.positions["BTC/USDT"].margin == 1_998.0
    assert opened.cash == 7_995.0
    assert opened.funding_paid == 0.0
    assert opened.positions["BTC/USDT"].margin == 2_000.0
    assert opened.positions["BTC/USDT"].funding_paid == 0.0  # the position object is replaced, not mutated
    assert opened.positions["BTC/USDT"] is pos

    closed, _ = close_position(funded, "BTC/USDT", 21_000.0, fee=5.25)
    assert "BTC/USDT" in funded.positions
    assert funded.cash == 7_995.0
    assert funded.positions["BTC/USDT"].margin == 1_998.0
    liquidated, _ = liquidate_position(funded, "BTC/USDT")
    assert "BTC/USDT" in funded.positions
    assert funded.realized_pnl == 0.0
    assert closed.positions == {}
    assert liquidated.positions == {}

    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.cash = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pos.quantity = 1.0  # type: ignore[misc]


def test_opening_the_same_symbol_twice_raises() -> None:
    pf = open_position(Portfolio.start(10_000), _pos("BTC/USDT", 0.5, 20_000.0, 5.0), fee=5.0)
    with pytest.raises(ValueError, match="already open"):
        open_position(pf, _pos("BTC/USDT", 0.1, 21_000.0, 2.0), fee=1.0)
    with pytest.raises(ValueError, match="already open"):
        open_position(pf, _pos("BTC/USDT", -0.1, 21_000.0, 2.0), fee=1.0)  # not even the other side
    assert pf.position("BTC/USDT").quantity == 0.5  # type: ignore[union-attr]


def test_closing_or_funding_a_missing_position_raises() -> None:
    pf = Portfolio.start(10_000)
    with pytest.raises(KeyError):
        close_position(pf, "BTC/USDT", 1.0, 0.0)
    with pytest.raises(KeyError):
        liquidate_position(pf, "BTC/USDT")
    with pytest.raises(KeyError):
        apply_funding(pf, "BTC/USDT", 1.0, MMR)


def test_a_sequence_of_transitions_reconciles() -> None:
    """cash = initial + realized pnl - fees - funding - margins still locked, after any sequence.

    Funding comes out of (or into) the locked margin, so the identity holds with the margins as they stand now.
    """
    pf = Portfolio.start(10_000)
    pf = open_position(pf, _pos("BTC/USDT", 0.5, 20_000.0, 5.0), fee=5.0)
    pf = open_position(pf, _pos("ETH/USDT", -4.0, 1_500.0, 2.0), fee=3.0)
    pf = apply_funding(pf, "BTC/USDT", 1.0, MMR)
    pf = apply_funding(pf, "ETH/USDT", -0.5, MMR)
    pf, _ = close_position(pf, "ETH/USDT", 1_450.0, fee=2.9)
    pf = open_position(pf, _pos("SOL/USDT", 20.0, 100.0, 10.0), fee=1.0)
    pf, _ = liquidate_position(pf, "SOL/USDT")
    locked = sum(p.margin for p in pf.positions.values())
    assert locked == 2_000.0 - 1.0  # BTC's margin, less the funding it paid
    assert pf.realized_pnl == 200.0 - 200.0  # +4 * 50 on ETH, -200 margin on SOL
    assert pf.cash == pytest.approx(10_000.0 + pf.realized_pnl - pf.fees_paid - pf.funding_paid - locked, abs=1e-9)
    assert pf.fees_paid == pytest.approx(5.0 + 3.0 + 2.9 + 1.0, abs=1e-12)
    assert pf.funding_paid == 0.5
    # by hand: 10_000 - 2_005 (BTC) - 3_003 (ETH) + 3_000.5 + 200 - 2.9 (ETH back, with its funding) - 201 (SOL)
    assert pf.cash == pytest.approx(7_988.6, abs=1e-9)
