"""Portfolio accounting as pure state transitions.

A `Portfolio` is an immutable value: cash, isolated-margin positions and running totals. Each transition returns a
new value, so an account's history is a sequence of states that can be replayed and reconciled against its fills.

Accounting identities (checked in the tests):
- opening:  cash -= margin + fee, with margin = |quantity| * price / leverage
- closing:  cash += margin + quantity * (exit - entry) - fee
- liquidation: the margin is lost, cash unchanged (the insurance fund takes what is left)
- funding:  the position's isolated margin -= payment (longs pay a positive rate); cash unchanged, and the
  liquidation price moves with the margin
- equity = cash + sum over positions of (margin + quantity * (mark - entry))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from arena_lib.core.types import Position
from arena_lib.engine.rules import margin_liquidation_price


@dataclass(frozen=True, slots=True)
class Portfolio:
    """One account's state. Treat `positions` as read-only; transitions copy it."""

    cash: float
    positions: Mapping[str, Position] = field(default_factory=dict)
    realized_pnl: float = 0.0  # price PnL of closed positions, before fees and funding
    fees_paid: float = 0.0
    funding_paid: float = 0.0

    @classmethod
    def start(cls, cash: float) -> Portfolio:
        return cls(cash=float(cash))

    def position(self, symbol: str) -> Position | None:
        return self.positions.get(symbol)

    def direction(self, symbol: str) -> int:
        pos = self.positions.get(symbol)
        return 0 if pos is None else pos.direction


def equity(pf: Portfolio, symbols: Sequence[str], marks: Sequence[float]) -> float:
    """Mark-to-market equity; `marks[k]` is the price of `symbols[k]`.

    Summed in symbol order, as the batch kernel does, so both paths round identically.
    """
    total = pf.cash
    if pf.positions:
        for sym, mark in zip(symbols, marks, strict=True):
            pos = pf.positions.get(sym)
            if pos is not None:
                total += pos.margin + pos.quantity * (mark - pos.entry_price)
    return total


def gross_notional(pf: Portfolio, symbols: Sequence[str], marks: Sequence[float], exclude: str | None = None) -> float:
    """Sum of |quantity| * mark over open positions, optionally leaving one symbol out."""
    total = 0.0
    for sym, mark in zip(symbols, marks, strict=True):
        pos = pf.positions.get(sym)
        if pos is not None and sym != exclude:
            total += abs(pos.quantity) * mark
    return total


def open_position(pf: Portfolio, position: Position, fee: float) -> Portfolio:
    """Add a new position (there must be none open for its symbol)."""
    if position.symbol in pf.positions:
        raise ValueError(f"{position.symbol}: a position is already open (no pyramiding)")
    positions = dict(pf.positions)
    positions[position.symbol] = position
    return replace(
        pf,
        cash=pf.cash - position.margin - fee,
        positions=positions,
        fees_paid=pf.fees_paid + fee,
    )


def close_position(pf: Portfolio, symbol: str, price: float, fee: float) -> tuple[Portfolio, float]:
    """Close the whole position at `price`; returns the new state and the price PnL of the position."""
    pos = pf.positions[symbol]
    pnl = pos.quantity * (price - pos.entry_price)
    positions = dict(pf.positions)
    del positions[symbol]
    new = replace(
        pf,
        cash=pf.cash + pos.margin + pnl - fee,
        positions=positions,
        realized_pnl=pf.realized_pnl + pnl,
        fees_paid=pf.fees_paid + fee,
    )
    return new, pnl


def liquidate_position(pf: Portfolio, symbol: str) -> tuple[Portfolio, float]:
    """Liquidate an isolated position: its whole margin is lost. Returns the new state and the loss (-margin)."""
    pos = pf.positions[symbol]
    positions = dict(pf.positions)
    del positions[symbol]
    return replace(pf, positions=positions, realized_pnl=pf.realized_pnl - pos.margin), -pos.margin


def apply_funding(pf: Portfolio, symbol: str, payment: float, maintenance_margin_rate: float) -> Portfolio:
    """Charge (payment > 0) or credit (payment < 0) funding to an open position's isolated margin."""
    pos = pf.positions[symbol]
    margin = pos.margin - payment
    liq = margin_liquidation_price(pos.entry_price, pos.quantity, margin, maintenance_margin_rate)
    positions = dict(pf.positions)
    positions[symbol] = replace(pos, margin=margin, liquidation_price=liq, funding_paid=pos.funding_paid + payment)
    return replace(pf, positions=positions, funding_paid=pf.funding_paid + payment)


def add_to_position(
    pf: Portfolio, symbol: str, quantity: float, price: float, fee: float, maintenance_margin_rate: float
) -> Portfolio:
    """Grow an open position by `quantity` (signed like the position) at `price`: the entry price becomes the
    quantity-weighted average (as exchanges report it) and the added notional posts margin at the position's
    leverage. A live account needs it when the exchange fills more than one order into a position (a partial
    entry completed later, or a manual trade); the simulator never pyramids."""
    pos = pf.positions[symbol]
    if quantity * pos.quantity <= 0:
        raise ValueError(f"{symbol}: adding {quantity} to a position of {pos.quantity} does not grow it")
    total = pos.quantity + quantity
    entry = (pos.quantity * pos.entry_price + quantity * price) / total
    added_margin = abs(quantity) * price / pos.leverage
    margin = pos.margin + added_margin
    positions = dict(pf.positions)
    positions[symbol] = replace(
        pos,
        quantity=total,
        entry_price=entry,
        margin=margin,
        entry_fee=pos.entry_fee + fee,
        liquidation_price=margin_liquidation_price(entry, total, margin, maintenance_margin_rate),
    )
    return replace(pf, cash=pf.cash - added_margin - fee, positions=positions, fees_paid=pf.fees_paid + fee)


def reduce_position(
    pf: Portfolio, symbol: str, quantity: float, price: float, fee: float, maintenance_margin_rate: float
) -> tuple[Portfolio, float]:
    """Close `quantity` (> 0, less than the whole) of an open position at `price`; the rest stays open.

    The closed share releases its share of the margin; returns the new state and the price PnL of the closed part.
    A partial fill of a closing order on an exchange is the case the simulator never meets.
    """
    pos = pf.positions[symbol]
    size = abs(pos.quantity)
    if not 0.0 < quantity < size:
        raise ValueError(f"{symbol}: reduce by {quantity} must be between 0 and the position's {size}")
    share = quantity / size
    pnl = pos.direction * quantity * (price - pos.entry_price)
    released = pos.margin * share
    positions = dict(pf.positions)
    rest = pos.quantity - pos.direction * quantity
    margin = pos.margin - released
    positions[symbol] = replace(
        pos,
        quantity=rest,
        margin=margin,
        entry_fee=pos.entry_fee * (1.0 - share),
        funding_paid=pos.funding_paid * (1.0 - share),
        liquidation_price=margin_liquidation_price(pos.entry_price, rest, margin, maintenance_margin_rate),
    )
    new = replace(
        pf,
        cash=pf.cash + released + pnl - fee,
        positions=positions,
        realized_pnl=pf.realized_pnl + pnl,
        fees_paid=pf.fees_paid + fee,
    )
    return new, pnl


def charge_cash(pf: Portfolio, payment: float) -> Portfolio:
    """Funding charged (payment > 0) or credited to the account's cash: an exchange settled it on a position that
    closed in the same instant, so no open position's margin can carry it."""
    return replace(pf, cash=pf.cash - payment, funding_paid=pf.funding_paid + payment)
