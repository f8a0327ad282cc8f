"""Executable specification of `arena_lib.engine.rules`, the execution arithmetic shared by both engine paths.

Every expected value below is worked out by hand from the conventions in the module docstring; the compiled
(numba) functions are called directly, exactly as the step loop and the batch kernel call them.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arena_lib.engine import rules
from arena_lib.engine.rules import (
    CAP_FREE_MARGIN,
    CAP_GROSS_EXPOSURE,
    CAP_NO_CAPACITY,
    CAP_POSITION_NOTIONAL,
    EXIT_LIQUIDATION,
    EXIT_NONE,
    EXIT_STOP,
    EXIT_TAKE_PROFIT,
    entry_size,
    funding_payment,
    intrabar_exit,
    liquidation_price,
    market_fill_price,
    slippage_fraction,
)

NAN = math.nan


def _exit(direction: int, o: float, h: float, lo: float, stop: float, tp: float, liq: float) -> tuple[int, float]:
    kind, price = intrabar_exit(direction, o, h, lo, stop, tp, liq)
    return int(kind), float(price)


# ---------------------------------------------------------------------------------------------------------------
# intrabar_exit
# ---------------------------------------------------------------------------------------------------------------
# A long opened at 100 with stop 95, take-profit 110 and a liquidation price of 80.
LONG_CASES = [
    # id, (open, high, low), stop, take-profit, liquidation, expected kind, expected price
    ("no trigger", (100, 105, 96), 95, 110, 80, EXIT_NONE, NAN),
    ("stop touched", (100, 105, 94), 95, 110, 80, EXIT_STOP, 95),
    ("stop touched exactly", (100, 105, 95), 95, 110, 80, EXIT_STOP, 95),
    ("take-profit touched", (100, 111, 96), 95, 110, 80, EXIT_TAKE_PROFIT, 110),
    ("take-profit touched exactly", (100, 110, 96), 95, 110, 80, EXIT_TAKE_PROFIT, 110),
    ("both touched: the stop (worse) counts", (100, 111, 94), 95, 110, 80, EXIT_STOP, 95),
    ("gap open through the stop fills at the open", (93, 96, 90), 95, 110, 80, EXIT_STOP, 93),
    ("gap open through the take-profit fills at the open", (112, 115, 111), 95, 110, 80, EXIT_TAKE_PROFIT, 112),
    ("open above take-profit decides before a later fall", (112, 115, 90), 95, 110, 80, EXIT_TAKE_PROFIT, 112),
    ("no stop: liquidation", (100, 101, 79), NAN, 110, 80, EXIT_LIQUIDATION, 80),
    ("no stop, no take-profit, quiet bar", (100, 150, 81), NAN, NAN, 80, EXIT_NONE, NAN),
    ("stop below the liquidation price: liquidation first", (100, 101, 79), 75, 110, 80, EXIT_LIQUIDATION, 80),
    ("stop below the liquidation price, bar reaches the stop too", (100, 101, 70), 75, 110, 80, EXIT_LIQUIDATION, 80),
    ("open beyond the liquidation price, whatever the stop", (78, 96, 77), 95, 110, 80, EXIT_LIQUIDATION, 80),
    ("open beyond the liquidation price, no stop", (60, 70, 55), NAN, NAN, 80, EXIT_LIQUIDATION, 80),
]

# The mirror image: a short opened at 100 with stop 105, take-profit 90 and a liquidation price of 120.
SHORT_CASES = [
    ("no trigger", (100, 104, 95), 105, 90, 120, EXIT_NONE, NAN),
    ("stop touched", (100, 106, 95), 105, 90, 120, EXIT_STOP, 105),
    ("stop touched exactly", (100, 105, 95), 105, 90, 120, EXIT_STOP, 105),
    ("take-profit touched", (100, 104, 89), 105, 90, 120, EXIT_TAKE_PROFIT, 90),
    ("take-profit touched exactly", (100, 104, 90), 105, 90, 120, EXIT_TAKE_PROFIT, 90),
    ("both touched: the stop (worse) counts", (100, 106, 89), 105, 90, 120, EXIT_STOP, 105),
    ("gap open through the stop fills at the open", (107, 110, 104), 105, 90, 120, EXIT_STOP, 107),
    ("gap open through the take-profit fills at the open", (88, 89, 85), 105, 90, 120, EXIT_TAKE_PROFIT, 88),
    ("open below take-profit decides before a later rise", (88, 110, 85), 105, 90, 120, EXIT_TAKE_PROFIT, 88),
    ("no stop: liquidation", (100, 121, 99), NAN, 90, 120, EXIT_LIQUIDATION, 120),
    ("no stop, no take-profit, quiet bar", (100, 119, 50), NAN, NAN, 120, EXIT_NONE, NAN),
    ("stop above the liquidation price: liquidation first", (100, 121, 99), 125, 90, 120, EXIT_LIQUIDATION, 120),
    ("stop above the liquidation price, bar reaches the stop too", (100, 130, 99), 125, 90, 120, EXIT_LIQUIDATION, 120),
    ("open beyond the liquidation price, whatever the stop", (122, 123, 104), 105, 90, 120, EXIT_LIQUIDATION, 120),
    ("open beyond the liquidation price, no stop", (140, 150, 130), NAN, NAN, 120, EXIT_LIQUIDATION, 120),
]


def _check_exit(direction: int, case: tuple) -> None:
    _, (o, h, lo), stop, tp, liq, want_kind, want_price = case
    kind, price = _exit(direction, o, h, lo, stop, tp, liq)
    assert kind == want_kind
    if math.isnan(want_price):
        assert math.isnan(price)
    else:
        assert price == want_price


@pytest.mark.parametrize("case", LONG_CASES, ids=[c[0] for c in LONG_CASES])
def test_intrabar_exit_long(case: tuple) -> None:
    _check_exit(+1, case)


@pytest.mark.parametrize("case", SHORT_CASES, ids=[c[0] for c in SHORT_CASES])
def test_intrabar_exit_short(case: tuple) -> None:
    _check_exit(-1, case)


def test_intrabar_exit_is_symmetric_under_price_reflection() -> None:
    """A short is a long on the reflected price (p -> 200 - p): every long case has its short twin."""
    for _, (o, h, lo), stop, tp, liq, kind, price in LONG_CASES:
        r = lambda p: 200.0 - p  # noqa: E731 - a one-line reflection around 100
        got_kind, got_price = _exit(-1, r(o), r(lo), r(h), r(stop), r(tp), r(liq))
        assert got_kind == kind
        assert (math.isnan(got_price) and math.isnan(price)) or got_price == r(price)


# ---------------------------------------------------------------------------------------------------------------
# entry_size
# ---------------------------------------------------------------------------------------------------------------
FEE = 0.0005  # 5 bps
LIMITS = dict(max_position_notional=3.0, max_gross_exposure=5.0, min_free_margin=0.0, min_notional=0.0, min_amount=0.0)


def _size(
    fraction: float,
    equity: float,
    cash: float,
    price: float,
    leverage: float,
    fee: float = FEE,
    gross_other: float = 0.0,
    **limits: float,
) -> tuple[float, int]:
    lim = {**LIMITS, **limits}
    qty, flags = entry_size(
        fraction,
        equity,
        cash,
        price,
        leverage,
        fee,
        gross_other,
        lim["max_position_notional"],
        lim["max_gross_exposure"],
        lim["min_free_margin"],
        lim["min_notional"],
        lim["min_amount"],
    )
    return float(qty), int(flags)


@pytest.mark.parametrize(("fraction", "leverage"), [(0.5, 2.0), (1.0, 1.0), (0.25, 3.0), (0.1, 5.0), (0.8, 1.5)])
def test_entry_size_formula_uncapped(fraction: float, leverage: float) -> None:
    """notional = fraction * equity / (1/leverage + fee): margin plus entry fee is exactly the committed fraction."""
    equity, price = 10_000.0, 250.0
    qty, flags = _size(fraction, equity, equity, price, leverage)
    notional = fraction * equity / (1.0 / leverage + FEE)
    assert flags == 0
    assert qty == pytest.approx(notional / price, rel=1e-12)
    margin, fee = qty * price / leverage, qty * price * FEE
    assert margin + fee == pytest.approx(fraction * equity, rel=1e-12)


def test_entry_size_worked_example() -> None:
    # 0.5 * 10_000 / (1/2 + 0.0005) = 5000 / 0.5005 = 9990.00999... notional; at 100 that is 99.9000999... units.
    qty, flags = _size(0.5, 10_000.0, 10_000.0, 100.0, 2.0)
    assert flags == 0
    assert qty == pytest.approx(99.90009990009990, rel=1e-12)


def test_entry_size_caps_position_notional() -> None:
    # fraction 1 at 5x wants 10_000 / 0.2005 = 49_875 notional > 3 x equity = 30_000 -> 300 units at 100.
    qty, flags = _size(1.0, 10_000.0, 10_000.0, 100.0, 5.0)
    assert flags == CAP_POSITION_NOTIONAL
    assert qty == pytest.approx(300.0, rel=1e-12)


def test_entry_size_caps_gross_exposure() -> None:
    # 0.5 at 5x wants 24_937.66 notional; other positions hold 40_000 of the 5 x 10_000 = 50_000 -> room 10_000.
    qty, flags = _size(0.5, 10_000.0, 10_000.0, 100.0, 5.0, gross_other=40_000.0)
    assert flags == CAP_GROSS_EXPOSURE
    assert qty == pytest.approx(100.0, rel=1e-12)


def test_entry_size_caps_free_margin() -> None:
    # Equity 10_000 but only 1_000 cash is free (the rest is margin elsewhere): 0.5 at 2x wants 4_995 of cash.
    qty, flags = _size(0.5, 10_000.0, 1_000.0, 100.0, 2.0)
    assert flags == CAP_FREE_MARGIN
    assert qty == pytest.approx(1_000.0 / 0.5005 / 100.0, rel=1e-12)
    # margin + fee now uses exactly the free cash
    assert qty * 100.0 / 2.0 + qty * 100.0 * FEE == pytest.approx(1_000.0, rel=1e-12)


def test_entry_size_min_free_margin_keeps_cash_back() -> None:
    # 5% of equity (500) must stay free: spendable = 1_000 - 500 = 500.
    qty, flags = _size(0.5, 10_000.0, 1_000.0, 100.0, 2.0, min_free_margin=0.05)
    assert flags == CAP_FREE_MARGIN
    assert qty == pytest.approx(500.0 / 0.5005 / 100.0, rel=1e-12)


def test_entry_size_reports_every_cap_that_bit() -> None:
    # 1.0 at 5x: position cap (49_875 -> 30_000), then gross room 20_000 (30_000 held elsewhere), then free cash 2_000.
    qty, flags = _size(1.0, 10_000.0, 2_000.0, 100.0, 5.0, gross_other=30_000.0)
    assert flags == CAP_POSITION_NOTIONAL | CAP_GROSS_EXPOSURE | CAP_FREE_MARGIN
    assert qty == pytest.approx(2_000.0 / 0.2005 / 100.0, rel=1e-12)
    assert "max position notional" in rules.describe_caps(flags)
    assert "max gross exposure" in rules.describe_caps(flags)
    assert "free margin" in rules.describe_caps(flags)


@pytest.mark.parametrize(
    ("cash", "gross_other", "want_flags"),
    [
        (0.0, 0.0, CAP_FREE_MARGIN | CAP_NO_CAPACITY),  # no free cash
        (-50.0, 0.0, CAP_FREE_MARGIN | CAP_NO_CAPACITY),  # negative cash
        (10_000.0, 50_000.0, CAP_GROSS_EXPOSURE | CAP_NO_CAPACITY),  # gross exposure exactly at its limit
        (10_000.0, 60_000.0, CAP_GROSS_EXPOSURE | CAP_NO_CAPACITY),  # already over it
    ],
)
def test_entry_size_no_capacity(cash: float, gross_other: float, want_flags: int) -> None:
    qty, flags = _size(0.5, 10_000.0, cash, 100.0, 2.0, gross_other=gross_other)
    assert qty == 0.0
    assert flags == want_flags
    assert "no capacity" in rules.describe_caps(flags)


@pytest.mark.parametrize(
    ("fraction", "equity", "price"),
    [
        (NAN, 10_000.0, 100.0),
        (0.0, 10_000.0, 100.0),
        (-0.5, 10_000.0, 100.0),
        (0.5, NAN, 100.0),
        (0.5, 0.0, 100.0),
        (0.5, -10.0, 100.0),
        (0.5, 10_000.0, NAN),
        (0.5, 10_000.0, 0.0),
        (0.5, 10_000.0, -1.0),
    ],
)
def test_entry_size_nan_or_non_positive_inputs_size_nothing(fraction: float, equity: float, price: float) -> None:
    assert _size(fraction, equity, 10_000.0, price, 2.0) == (0.0, CAP_NO_CAPACITY)


@pytest.mark.parametrize(
    ("leverage", "fee", "cash"),
    [
        pytest.param(NAN, FEE, 10_000.0, id="nan-leverage"),
        pytest.param(0.0, FEE, 10_000.0, id="zero-leverage"),
        pytest.param(2.0, NAN, 10_000.0, id="nan-fee"),
        pytest.param(2.0, FEE, NAN, id="nan-cash"),
    ],
)
def test_entry_size_fails_closed_on_nan_or_zero_leverage_fee_cash(leverage: float, fee: float, cash: float) -> None:
    """LIBRARY BUG (reported): these inputs bypass the guard clause.

    NaN leverage or fee currently returns (nan, 0) -- a NaN quantity with no cap flag, which `SimBroker.execute`
    (`if qty <= 0.0`) would not reject -- NaN cash returns an uncapped quantity, and leverage 0 raises
    ZeroDivisionError inside the compiled code. Like NaN fraction/equity/price, they should size nothing.
    """
    qty, flags = _size(0.5, 10_000.0, cash, 100.0, leverage, fee=fee)
    assert qty == 0.0
    assert flags & CAP_NO_CAPACITY


# ---------------------------------------------------------------------------------------------------------------
# liquidation_price
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("direction", "leverage", "mmr", "expected"),
    [
        (+1, 5.0, 0.005, 80.5),  # 100 * (1 - 1/5 + 0.005)
        (-1, 5.0, 0.005, 119.5),  # 100 * (1 + 1/5 - 0.005)
        (+1, 4.0, 0.005, 75.5),  # 100 * (1 - 0.25 + 0.005)
        (-1, 2.0, 0.01, 149.0),  # 100 * (1 + 0.5 - 0.01)
        (+1, 1.0, 0.005, 0.5),  # unlevered long: only a ~100% fall liquidates
        (+1, 10.0, 0.0, 90.0),  # no maintenance: the whole margin
    ],
)
def test_liquidation_price_formula(direction: int, leverage: float, mmr: float, expected: float) -> None:
    assert liquidation_price(100.0, direction, leverage, mmr) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("leverage", [1.5, 2.0, 3.0, 5.0, 20.0, 100.0])
@pytest.mark.parametrize("direction", [+1, -1])
def test_liquidation_loss_equals_margin_minus_maintenance(leverage: float, direction: int) -> None:
    entry, qty, mmr = 2_500.0, 3.0, 0.005
    liq = liquidation_price(entry, direction, leverage, mmr)
    margin = qty * entry / leverage
    maintenance = mmr * qty * entry
    loss = -direction * qty * (liq - entry)
    assert loss == pytest.approx(margin - maintenance, rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# slippage and fill price
# ---------------------------------------------------------------------------------------------------------------
def test_slippage_fixed_bps() -> None:
    assert slippage_fraction(5.0, 0.0, 10.0, 1_000.0) == pytest.approx(5e-4, rel=1e-12)
    assert slippage_fraction(0.0, 0.0, 10.0, 1_000.0) == 0.0


def test_slippage_square_root_impact() -> None:
    # 1 bp + 0.1 * sqrt(4 / 100) = 0.0001 + 0.1 * 0.2 = 0.0201
    assert slippage_fraction(1.0, 0.1, 4.0, 100.0) == pytest.approx(0.0201, rel=1e-12)
    # impact grows with the square root of size: 4x the quantity, 2x the impact term
    small = slippage_fraction(0.0, 0.5, 1.0, 10_000.0)
    big = slippage_fraction(0.0, 0.5, 4.0, 10_000.0)
    assert big == pytest.approx(2.0 * small, rel=1e-12)


@pytest.mark.parametrize(("quantity", "volume"), [(0.0, 100.0), (4.0, 0.0), (4.0, NAN), (4.0, -1.0)])
def test_slippage_impact_needs_a_quantity_and_a_volume(quantity: float, volume: float) -> None:
    assert slippage_fraction(2.0, 0.1, quantity, volume) == pytest.approx(2e-4, rel=1e-12)


def test_market_fill_price_moves_against_the_trader() -> None:
    assert market_fill_price(100.0, +1, 0.001) == pytest.approx(100.1, rel=1e-12)  # a buy pays more
    assert market_fill_price(100.0, -1, 0.001) == pytest.approx(99.9, rel=1e-12)  # a sell gets less
    assert market_fill_price(100.0, +1, 0.0) == 100.0


# ---------------------------------------------------------------------------------------------------------------
# funding
# ---------------------------------------------------------------------------------------------------------------
def test_funding_payment_sign() -> None:
    # 2 units at 100 with a rate of 1 bp: 2 * 100 * 0.0001 = 0.02
    assert funding_payment(2.0, 100.0, 0.0001) == pytest.approx(0.02, rel=1e-12)  # long pays a positive rate
    assert funding_payment(-2.0, 100.0, 0.0001) == pytest.approx(-0.02, rel=1e-12)  # short receives it
    assert funding_payment(2.0, 100.0, -0.0001) == pytest.approx(-0.02, rel=1e-12)  # long receives a negative rate
    assert funding_payment(-2.0, 100.0, -0.0001) == pytest.approx(0.02, rel=1e-12)  # short pays it
    assert funding_payment(2.0, 100.0, 0.0) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------------------
prices = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)
sides = st.sampled_from([+1, -1])


@settings(max_examples=300, deadline=None)
@given(
    price=prices,
    side=sides,
    bps=st.floats(min_value=0.0, max_value=1000.0),
    impact=st.floats(min_value=0.0, max_value=10.0),
    quantity=st.floats(min_value=0.0, max_value=1e9),
    volume=st.one_of(st.floats(min_value=0.0, max_value=1e12), st.just(NAN)),
)
def test_property_market_fill_is_never_better_than_reference(
    price: float, side: int, bps: float, impact: float, quantity: float, volume: float
) -> None:
    slip = slippage_fraction(bps, impact, quantity, volume)
    assert slip >= 0.0
    fill = market_fill_price(price, side, slip)
    assert side * (fill - price) >= 0.0  # a buy never pays less, a sell never gets more


@settings(max_examples=300, deadline=None)
@given(
    direction=sides,
    o=st.floats(min_value=50.0, max_value=150.0),
    up=st.floats(min_value=0.0, max_value=60.0),
    down=st.floats(min_value=0.0, max_value=60.0),
    stop_off=st.one_of(st.floats(min_value=0.5, max_value=40.0), st.just(NAN)),
    tp_off=st.one_of(st.floats(min_value=0.5, max_value=40.0), st.just(NAN)),
    leverage=st.floats(min_value=1.5, max_value=50.0),
    bps=st.floats(min_value=0.0, max_value=50.0),
)
def test_property_intrabar_exit_fill_is_never_better_than_its_level(
    direction: int, o: float, up: float, down: float, stop_off: float, tp_off: float, leverage: float, bps: float
) -> None:
    """Position opened at 100. A stop exit (after slippage) is never better than the stop; a take-profit (a limit
    order) never worse than its level; liquidation happens at the liquidation price; no exit means the bar stayed
    strictly inside the protective level and the take-profit."""
    entry = 100.0
    high, low = o + up, max(o - down, 1e-3)
    stop = entry - direction * stop_off
    tp = entry + direction * tp_off
    liq = liquidation_price(entry, direction, leverage, 0.005)
    assume(math.isnan(stop) or stop > 0)
    kind, trig = _exit(direction, o, high, low, stop, tp, liq)
    if kind == EXIT_STOP:
        fill = market_fill_price(trig, -direction, slippage_fraction(bps, 0.0, 1.0, 1.0))
        assert direction * (fill - stop) <= 1e-12 * entry
        assert direction * (trig - liq) >= 0.0  # the stop triggers before (not beyond) the liquidation price
    elif kind == EXIT_TAKE_PROFIT:
        assert direction * (trig - tp) >= 0.0
    elif kind == EXIT_LIQUIDATION:
        assert trig == liq
    else:
        assert kind == EXIT_NONE
        prot = stop if (not math.isnan(stop) and direction * (stop - liq) >= 0) else liq
        worst, best = (low, high) if direction > 0 else (high, low)
        assert direction * (worst - prot) > 0
        assert math.isnan(tp) or direction * (best - tp) < 0


# ---------------------------------------------------------------------------------------------------------------
# review_decision: the RiskEngine's policy, shared with the batch kernel
# ---------------------------------------------------------------------------------------------------------------
def _review(
    action: int = rules.ACTION_LONG,
    current: int = 0,
    price: float = 100.0,
    size: float = 0.5,
    unit: int = rules.UNIT_FRACTION,
    leverage: float = 2.0,
    stop: float | None = None,
    take: float | None = None,
    equity: float = 10_000.0,
    max_leverage: float = 5.0,
    allow_reversal: bool = True,
) -> tuple[int, int, float, float, float]:
    code, clamps, fraction, lev, requested = rules.review_decision(
        action,
        current,
        price,
        size,
        unit,
        leverage,
        stop is not None,
        NAN if stop is None else stop,
        take is not None,
        NAN if take is None else take,
        equity,
        FEE,
        max_leverage,
        allow_reversal,
    )
    return int(code), int(clamps), float(fraction), float(lev), float(requested)


REJECTED = (0, 0.0, 1.0, 0.0)  # clamps, fraction, leverage, requested of every rejection


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        pytest.param({"action": rules.ACTION_HOLD, "price": NAN}, rules.VERDICT_HOLD, id="hold first"),
        pytest.param({"price": NAN, "size": NAN}, rules.VERDICT_NO_PRICE, id="price before size"),
        pytest.param({"action": rules.ACTION_CLOSE, "price": 0.0}, rules.VERDICT_NO_PRICE, id="close needs a price"),
        pytest.param({"action": rules.ACTION_CLOSE, "size": NAN}, rules.VERDICT_NOTHING_TO_CLOSE, id="flat close"),
        pytest.param({"size": 0.0, "leverage": NAN}, rules.VERDICT_BAD_SIZE, id="size before leverage"),
        pytest.param({"leverage": -1.0, "current": 1}, rules.VERDICT_BAD_LEVERAGE, id="leverage before pyramiding"),
        pytest.param({"current": 1, "allow_reversal": False}, rules.VERDICT_PYRAMIDING, id="pyramiding"),
        pytest.param({"current": -1, "allow_reversal": False, "stop": 150.0}, rules.VERDICT_REVERSAL, id="reversal"),
        pytest.param({"stop": 100.0, "take": 50.0}, rules.VERDICT_STOP_SIDE, id="stop at the price"),
        pytest.param({"stop": NAN}, rules.VERDICT_STOP_SIDE, id="NaN stop given"),
        pytest.param({"action": rules.ACTION_SHORT, "take": 101.0}, rules.VERDICT_TAKE_PROFIT_SIDE, id="short tp"),
        pytest.param({"unit": rules.UNIT_QUANTITY, "equity": 0.0}, rules.VERDICT_NO_EQUITY, id="no equity"),
    ],
)
def test_review_decision_rejects_at_the_first_broken_rule(kwargs: dict, code: int) -> None:
    got = _review(**kwargs)
    assert got[0] == code
    assert got[1:] == REJECTED


def test_review_decision_approves_a_close_with_the_verdict_defaults() -> None:
    assert _review(action=rules.ACTION_CLOSE, current=-1, size=NAN, leverage=NAN) == (0, 0, 0.0, 1.0, 0.0)


def test_review_decision_approves_an_entry_as_asked() -> None:
    assert _review(stop=95.0, take=110.0) == (rules.VERDICT_APPROVED, 0, 0.5, 2.0, 0.5)
    assert _review(action=rules.ACTION_SHORT, current=1, stop=105.0) == (rules.VERDICT_APPROVED, 0, 0.5, 2.0, 0.5)


def test_review_decision_clamps_leverage_then_sizes_with_it() -> None:
    # 20 BTC-units at 100 = 2_000 notional; leverage 8 clamped to 4: 2_000 * (1/4 + 0.0005) / 10_000 = 0.0501
    code, clamps, fraction, lev, requested = _review(
        unit=rules.UNIT_QUANTITY, size=20.0, leverage=8.0, max_leverage=4.0
    )
    assert (code, clamps, lev) == (rules.VERDICT_APPROVED, rules.CLAMP_LEVERAGE, 4.0)
    assert fraction == requested == pytest.approx(0.0501, rel=1e-12)


def test_review_decision_clamps_size_to_all_equity_keeping_what_was_asked() -> None:
    # 30_000 quote at 2x commits 30_000 * (0.5 + 0.0005) = 15_015: 150.15% of equity
    code, clamps, fraction, lev, requested = _review(unit=rules.UNIT_NOTIONAL, size=30_000.0, leverage=2.0)
    assert (code, clamps, fraction, lev) == (rules.VERDICT_APPROVED, rules.CLAMP_SIZE, 1.0, 2.0)
    assert requested == pytest.approx(1.5015, rel=1e-12)
    both = _review(size=2.5, leverage=10.0)
    assert both == (rules.VERDICT_APPROVED, rules.CLAMP_LEVERAGE | rules.CLAMP_SIZE, 1.0, 5.0, 2.5)


@pytest.mark.parametrize("unit", [rules.UNIT_FRACTION, rules.UNIT_QUANTITY, rules.UNIT_NOTIONAL])
def test_equity_fraction_by_unit(unit: int) -> None:
    # 2 units at 100 (QUANTITY) or 200 quote (NOTIONAL) at 4x commit 200 * (0.25 + 0.0005) = 50.1 of 1_000
    size = {rules.UNIT_FRACTION: 0.3, rules.UNIT_QUANTITY: 2.0, rules.UNIT_NOTIONAL: 200.0}[unit]
    want = 0.3 if unit == rules.UNIT_FRACTION else 0.0501
    assert rules.equity_fraction(size, unit, 100.0, 1_000.0, 4.0, FEE) == pytest.approx(want, rel=1e-12)
    assert math.isnan(rules.equity_fraction(2.0, rules.UNIT_QUANTITY, 100.0, NAN, 4.0, FEE))
