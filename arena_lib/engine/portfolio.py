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
