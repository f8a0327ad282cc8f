"""The execution arithmetic and the RiskEngine's policy, written once and shared by the step loop and the kernel.

Every function here except `describe_caps` is a numba ``njit`` function: the batch kernel inlines them, and the
step loop (SimBroker, RiskEngine) calls the very same compiled code from Python. That is what makes the parity test
between the two paths an identity rather than a tolerance. `review_decision` is the RiskEngine's whole policy
(reject, clamp or approve a decision); it returns codes, which `arena_lib.engine.risk` words as reasons.

Conventions (documented in docs/engine.md):
- A trade's `side` is +1 for a buy and -1 for a sell. Slippage moves the fill price against the trader.
- Entries are sized from a fraction of equity: the margin plus the entry fee equals `fraction * equity`, so
  ``notional = fraction * equity / (1 / leverage + fee_rate)``. An entry below the exchange's minimum notional or
  quantity after the caps is not filled (`CAP_BELOW_MIN_NOTIONAL`, `CAP_BELOW_MIN_AMOUNT`).
- Isolated margin: a position's margin is ``notional / leverage``; funding is paid from (or credited to) that
  margin, which moves the liquidation price, so an account never loses more than its margins. A position is
  liquidated when its loss reaches ``margin - maintenance`` (also when the bar opens beyond that price, whatever
  stop was set), and the account then loses the whole margin, no more: the insurance fund absorbs the rest.
- Stop-loss and take-profit trigger intrabar from the bar's high and low. When the bar gaps through a level at its
  open, the fill is at the open. When both the protective level and the take-profit are touched in the same bar, the
  protective one counts (the worse outcome, since the path inside the bar is unknown).
"""

from __future__ import annotations

import math

from numba import njit

# Reasons an entry was resized at fill time (bit flags, shared with the kernel).
CAP_POSITION_NOTIONAL = 1
CAP_GROSS_EXPOSURE = 2
CAP_FREE_MARGIN = 4
CAP_NO_CAPACITY = 8
CAP_BELOW_MIN_NOTIONAL = 16  # the capped entry is smaller than the exchange's minimum order notional: not filled
CAP_BELOW_MIN_AMOUNT = 32  # its quantity is smaller than the exchange's minimum order amount: not filled
CAP_BELOW_MINIMUM = CAP_BELOW_MIN_NOTIONAL | CAP_BELOW_MIN_AMOUNT  # either (a mask)

# Slippage is capped so that no fill price can reach zero, whatever the impact model says.
MAX_SLIPPAGE = 0.5

CAP_REASONS = {
    CAP_POSITION_NOTIONAL: "clamped to max position notional",
    CAP_GROSS_EXPOSURE: "clamped to max gross exposure",
    CAP_FREE_MARGIN: "clamped to free margin",
    CAP_NO_CAPACITY: "rejected at fill: no capacity left (free margin or exposure limits)",
    CAP_BELOW_MIN_NOTIONAL: "rejected at fill: below the minimum order notional",
    CAP_BELOW_MIN_AMOUNT: "rejected at fill: below the minimum order amount",
}

# Exit kinds (shared with the kernel; FillKind in types.py names them).
EXIT_NONE = 0
EXIT_STOP = 1
EXIT_TAKE_PROFIT = 2
EXIT_LIQUIDATION = 3


def describe_caps(flags: int, min_notional: float | None = None, min_amount: float | None = None) -> str:
    """Human-readable reasons for a fill-time clamp bitmask; the minimums, when given, are quoted in their reason
    ("rejected at fill: below the minimum order notional of 20 USDT")."""
    texts = []
    for bit, text in CAP_REASONS.items():
        if not flags & bit:
            continue
        if bit == CAP_BELOW_MIN_NOTIONAL and min_notional is not None:
            text = f"{text} of {min_notional:g} USDT"
        elif bit == CAP_BELOW_MIN_AMOUNT and min_amount is not None:
            text = f"{text} of {min_amount:g}"
        texts.append(text)
    return "; ".join(texts)


@njit(cache=True)
def slippage_fraction(slippage_bps: float, impact_coef: float, quantity: float, volume: float) -> float:
    """Adverse slippage as a fraction of price: fixed bps plus square-root impact on the signal bar's volume.

    Capped at `MAX_SLIPPAGE` (50%) so a sell never fills at or below zero.
    """
    slip = slippage_bps * 1e-4
    if impact_coef > 0.0 and volume > 0.0 and quantity > 0.0:
        slip += impact_coef * math.sqrt(quantity / volume)
    return min(slip, MAX_SLIPPAGE)


@njit(cache=True)
def market_fill_price(price: float, side: int, slip: float) -> float:
    """The price a market order actually gets: worse than `price` by `slip` in the trade's direction."""
    return price * (1.0 + side * slip)


@njit(cache=True)
def entry_size(
    fraction: float,
    equity: float,
    cash: float,
    price: float,
    leverage: float,
    fee_rate: float,
    gross_other: float,
    max_position_notional: float,
    max_gross_exposure: float,
    min_free_margin: float,
    min_notional: float,
    min_amount: float,
) -> tuple[float, int]:
    """Quantity for an entry at `price`, after the fill-time risk caps; returns (quantity, cap flags).

    The caps are multiples of equity: position notional, gross exposure (with `gross_other`, the notional of the
    other open positions), and the free cash left after margin and fee. What the caps leave must meet the
    exchange's minimums, `min_notional` (quote currency) and `min_amount` (base asset), as an exchange checks an
    order: an entry below either sizes nothing, with `CAP_BELOW_MIN_NOTIONAL` / `CAP_BELOW_MIN_AMOUNT` (one at
    the minimum fills). 0 disables a minimum.
    """
    flags = 0
    if not (fraction > 0.0 and equity > 0.0 and price > 0.0 and leverage > 0.0 and fee_rate >= 0.0):
        return 0.0, CAP_NO_CAPACITY
    per_notional = 1.0 / leverage + fee_rate  # cash consumed per unit of notional
    notional = fraction * equity / per_notional
    cap = max_position_notional * equity
    if notional > cap:
        notional = cap
        flags |= CAP_POSITION_NOTIONAL
    room = max_gross_exposure * equity - gross_other
    if notional > room:
        notional = room if room > 0.0 else 0.0
        flags |= CAP_GROSS_EXPOSURE
    spendable = cash - min_free_margin * equity
    if not (notional * per_notional <= spendable):  # also catches NaN cash
        notional = spendable / per_notional if spendable > 0.0 else 0.0
        flags |= CAP_FREE_MARGIN
    if notional <= 0.0:
        return 0.0, flags | CAP_NO_CAPACITY
    if notional < min_notional:
        return 0.0, flags | CAP_BELOW_MIN_NOTIONAL
    quantity = notional / price
    if quantity < min_amount:
        return 0.0, flags | CAP_BELOW_MIN_AMOUNT
    return quantity, flags


@njit(cache=True)
def liquidation_price(entry_price: float, direction: int, leverage: float, maintenance_margin_rate: float) -> float:
    """Price at which an isolated position's loss eats its margin down to the maintenance margin."""
    if direction > 0:
        return entry_price * (1.0 - 1.0 / leverage + maintenance_margin_rate)
    return entry_price * (1.0 + 1.0 / leverage - maintenance_margin_rate)


@njit(cache=True)
def margin_liquidation_price(
    entry_price: float, quantity: float, margin: float, maintenance_margin_rate: float
) -> float:
    """Liquidation price of an isolated position whose margin has changed since entry (funding is paid from it).

    Where the position's equity, ``margin + quantity * (price - entry)``, equals the maintenance margin
    ``mmr * |quantity| * entry``. With the entry margin ``notional / leverage`` it equals `liquidation_price`.
    """
    q = abs(quantity)
    if quantity > 0:
        return entry_price * (1.0 + maintenance_margin_rate) - margin / q
    return entry_price * (1.0 - maintenance_margin_rate) + margin / q


@njit(cache=True)
def intrabar_exit(
    direction: int,
    open_: float,
    high: float,
    low: float,
    stop: float,
    take_profit: float,
    liquidation: float,
) -> tuple[int, float]:
    """Which exit (if any) a bar triggers for an open position, and at what trigger price.

    NaN `stop` / `take_profit` mean "none". Returns (EXIT_* kind, price). The protective level is whichever of the
    stop and the liquidation price the market reaches first on its way against the position.
    """
    if direction > 0:
        has_stop = not math.isnan(stop)
        if has_stop and stop >= liquidation:
            prot, prot_kind = stop, EXIT_STOP
        else:
            prot, prot_kind = liquidation, EXIT_LIQUIDATION
        has_tp = not math.isnan(take_profit)
        if open_ <= liquidation:
            return EXIT_LIQUIDATION, liquidation
        if open_ <= prot:
            return prot_kind, open_
        if has_tp and open_ >= take_profit:
            return EXIT_TAKE_PROFIT, open_
        if low <= prot:
            return prot_kind, prot
        if has_tp and high >= take_profit:
            return EXIT_TAKE_PROFIT, take_profit
        return EXIT_NONE, math.nan
    has_stop = not math.isnan(stop)
    if has_stop and stop <= liquidation:
        prot, prot_kind = stop, EXIT_STOP
    else:
        prot, prot_kind = liquidation, EXIT_LIQUIDATION
    has_tp = not math.isnan(take_profit)
    if open_ >= liquidation:
        return EXIT_LIQUIDATION, liquidation
    if open_ >= prot:
        return prot_kind, open_
    if has_tp and open_ <= take_profit:
        return EXIT_TAKE_PROFIT, open_
    if high >= prot:
        return prot_kind, prot
    if has_tp and low <= take_profit:
        return EXIT_TAKE_PROFIT, take_profit
    return EXIT_NONE, math.nan


@njit(cache=True)
def funding_payment(quantity: float, mark_price: float, rate: float) -> float:
    """Cash the position pays at a funding settlement (negative = received). Longs pay a positive rate."""
    return quantity * mark_price * rate


# -- the RiskEngine's decision policy -----------------------------------------------------------------------------
# `review_decision` is the one copy of the policy: `RiskEngine.review` calls it for every decision of the step loop,
# and the batch kernel for every target change, so both paths approve, clamp and reject alike.
# `arena_lib.engine.risk.verdict_reasons` turns its codes into the reasons people read.

# What a decision asks for: the direction of an entry (+1 long, -1 short), a close, or nothing.
ACTION_SHORT = -1
ACTION_CLOSE = 0
ACTION_LONG = 1
ACTION_HOLD = 2

# How its size is measured (`SizeUnit`).
UNIT_FRACTION = 0
UNIT_QUANTITY = 1
UNIT_NOTIONAL = 2

# The ruling: approved, or the first rule the decision broke, in the order they are checked.
VERDICT_APPROVED = 0
VERDICT_HOLD = 1
VERDICT_NO_PRICE = 2
VERDICT_NOTHING_TO_CLOSE = 3
VERDICT_BAD_SIZE = 4
VERDICT_BAD_LEVERAGE = 5
VERDICT_PYRAMIDING = 6
VERDICT_REVERSAL = 7
VERDICT_STOP_SIDE = 8
VERDICT_TAKE_PROFIT_SIDE = 9
VERDICT_NO_EQUITY = 10

# Clamps applied to an approved entry (bit flags).
CLAMP_LEVERAGE = 1
CLAMP_SIZE = 2


@njit(cache=True)
def _finite_positive(x: float) -> bool:
    return math.isfinite(x) and x > 0.0


@njit(cache=True)
def equity_fraction(
    size: float, size_unit: int, price: float, equity: float, leverage: float, fee_rate: float
) -> float:
    """The fraction of equity a size commits (margin plus entry fee); NaN when there is no equity to measure it by."""
    if size_unit == UNIT_FRACTION:
        return size
    if not (equity > 0.0):
        return math.nan
    per_notional = 1.0 / leverage + fee_rate
    notional = size * price if size_unit == UNIT_QUANTITY else size
    return notional * per_notional / equity


@njit(cache=True)
def level_verdict(direction: int, price: float, has_stop: bool, stop: float, has_take: bool, take: float) -> int:
    """VERDICT_STOP_SIDE / VERDICT_TAKE_PROFIT_SIDE when a level is not a positive price on the protective / profit
    side of `price` for an entry in `direction`, else VERDICT_APPROVED."""
    if has_stop and (not _finite_positive(stop) or (stop - price) * direction >= 0.0):
        return VERDICT_STOP_SIDE
    if has_take and (not _finite_positive(take) or (take - price) * direction <= 0.0):
        return VERDICT_TAKE_PROFIT_SIDE
    return VERDICT_APPROVED


@njit(cache=True)
def review_decision(
    action: int,
    current: int,
    price: float,
    size: float,
    size_unit: int,
    leverage: float,
    has_stop: bool,
    stop: float,
    has_take: bool,
    take: float,
    equity: float,
    fee_rate: float,
    max_leverage: float,
    allow_reversal: bool,
) -> tuple[int, int, float, float, float]:
    """Rule on one decision; returns (VERDICT_* code, CLAMP_* flags, fraction, leverage, requested fraction).

    `action` is an ACTION_* code, `current` the direction of the position held (0 flat), `price` the symbol's latest
    close. NaN stands for a missing or non-numeric input (and fails its check); `has_stop`/`has_take` say whether a
    level was given at all. Rejections and closes come back with fraction 0 and leverage 1 (what `RiskVerdict`
    defaults to); an approved entry with the fraction and leverage to trade, after the clamps, and the fraction it
    asked for (what the size clamp's reason quotes).
    """
    if action == ACTION_HOLD:
        return VERDICT_HOLD, 0, 0.0, 1.0, 0.0
    if not _finite_positive(price):
        return VERDICT_NO_PRICE, 0, 0.0, 1.0, 0.0
    if action == ACTION_CLOSE:
        if current == 0:
            return VERDICT_NOTHING_TO_CLOSE, 0, 0.0, 1.0, 0.0
        return VERDICT_APPROVED, 0, 0.0, 1.0, 0.0
    if not _finite_positive(size):
        return VERDICT_BAD_SIZE, 0, 0.0, 1.0, 0.0
    if not _finite_positive(leverage):
        return VERDICT_BAD_LEVERAGE, 0, 0.0, 1.0, 0.0
    clamps = 0
    if leverage > max_leverage:
        leverage = max_leverage
        clamps |= CLAMP_LEVERAGE
    if current == action:
        return VERDICT_PYRAMIDING, 0, 0.0, 1.0, 0.0
    if current != 0 and not allow_reversal:
        return VERDICT_REVERSAL, 0, 0.0, 1.0, 0.0
    bad_level = level_verdict(action, price, has_stop, stop, has_take, take)
    if bad_level != VERDICT_APPROVED:
        return bad_level, 0, 0.0, 1.0, 0.0
    requested = equity_fraction(size, size_unit, price, equity, leverage, fee_rate)
    if not _finite_positive(requested):
        return VERDICT_NO_EQUITY, 0, 0.0, 1.0, 0.0
    fraction = requested
    if fraction > 1.0:
        fraction = 1.0
        clamps |= CLAMP_SIZE
    return VERDICT_APPROVED, clamps, fraction, leverage, requested
