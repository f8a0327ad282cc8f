"""The execution arithmetic, written once and shared by the step loop and the batch kernel.

Every function here is a numba ``njit`` function: the batch kernel inlines them, and the step loop (SimBroker,
RiskEngine) calls the very same compiled code from Python. That is what makes the parity test between the two
paths an identity rather than a tolerance.

Conventions (documented in docs/engine.md):
- A trade's `side` is +1 for a buy and -1 for a sell. Slippage moves the fill price against the trader.
- Entries are sized from a fraction of equity: the margin plus the entry fee equals `fraction * equity`, so
  ``notional = fraction * equity / (1 / leverage + fee_rate)``.
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

# Slippage is capped so that no fill price can reach zero, whatever the impact model says.
MAX_SLIPPAGE = 0.5

CAP_REASONS = {
    CAP_POSITION_NOTIONAL: "clamped to max position notional",
    CAP_GROSS_EXPOSURE: "clamped to max gross exposure",
    CAP_FREE_MARGIN: "clamped to free margin",
    CAP_NO_CAPACITY: "rejected at fill: no capacity left (free margin or exposure limits)",
}

# Exit kinds (shared with the kernel; FillKind in types.py names them).
EXIT_NONE = 0
EXIT_STOP = 1
EXIT_TAKE_PROFIT = 2
EXIT_LIQUIDATION = 3


def describe_caps(flags: int) -> str:
    """Human-readable reasons for a fill-time clamp bitmask."""
    return "; ".join(text for bit, text in CAP_REASONS.items() if flags & bit)


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
) -> tuple[float, int]:
    """Quantity for an entry at `price`, after the fill-time risk caps; returns (quantity, cap flags).

    The caps are multiples of equity: position notional, gross exposure (with `gross_other`, the notional of the
    other open positions), and the free cash left after margin and fee.
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
    return notional / price, flags


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
