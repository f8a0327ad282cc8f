"""The RiskEngine: a mandatory hop between every decision and the broker, in every mode.

It reviews a decision against the account and the hard limits, and returns a `RiskVerdict`: rejected with a reason,
or approved, possibly clamped, with every clamp named. Fill-time caps that depend on the fill price (position
notional, gross exposure, free margin) are applied by the broker with the shared `rules.entry_size`, and their
reasons are recorded on the fill.
"""

from __future__ import annotations

import math

from arena_lib.agents.base import AccountView
from arena_lib.core.config import RiskLimits
from arena_lib.core.types import Action, Decision, RiskVerdict, SizeUnit


def _finite_positive(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


class RiskEngine:
    """Validates, clamps or rejects decisions; never lets an unreviewed decision reach a broker."""

    def __init__(self, limits: RiskLimits, fee_rate: float) -> None:
        self.limits = limits
        self.fee_rate = fee_rate

    def review(self, decision: Decision, account: AccountView, price: float) -> RiskVerdict:
        """Rule on one decision given the account and the latest price of its symbol."""

        def reject(reason: str) -> RiskVerdict:
            return RiskVerdict(decision, approved=False, reasons=(reason,))

        if decision.action is Action.HOLD:
            return reject("hold: nothing to do")
        if not (math.isfinite(price) and price > 0):
            return reject(f"{decision.symbol}: no valid price at decision time")
        current = account.direction(decision.symbol)
        if decision.action is Action.CLOSE:
            if current == 0:
                return reject(f"{decision.symbol}: no open position to close")
            return RiskVerdict(decision, approved=True)

        reasons: list[str] = []
        if not _finite_positive(decision.size):
            return reject(f"size must be a positive finite number, got {decision.size!r}")
        lev = decision.leverage
        if not _finite_positive(lev):
            return reject(f"leverage must be a positive finite number, got {lev!r}")
        if lev > self.limits.max_leverage:
            reasons.append(f"leverage {lev:g} clamped to max {self.limits.max_leverage:g}")
            lev = self.limits.max_leverage
        if current == decision.direction:
            return reject(f"{decision.symbol}: position already open in that direction (no pyramiding)")
        if current != 0 and not self.limits.allow_reversal:
            return reject(f"{decision.symbol}: opposite position open; close it first (reversals not allowed)")
        bad_level = self._check_levels(decision, price)
        if bad_level:
            return reject(bad_level)

        fraction = self._fraction(decision, account.equity, price, lev)
        if not _finite_positive(fraction):
            return reject(f"size {decision.size!r} {decision.size_unit.value} is not a positive amount of equity")
        if fraction > 1.0:
            reasons.append(f"size is {fraction:.0%} of equity: clamped to 100%")
            fraction = 1.0
        return RiskVerdict(decision, approved=True, fraction=fraction, leverage=lev, reasons=tuple(reasons))

    def _fraction(self, decision: Decision, equity: float, price: float, leverage: float) -> float:
        """Express the requested size as the fraction of equity it commits (margin plus entry fee)."""
        if decision.size_unit is SizeUnit.FRACTION:
            return decision.size
        if not (equity > 0):
            return float("nan")
        per_notional = 1.0 / leverage + self.fee_rate
        notional = decision.size * price if decision.size_unit is SizeUnit.QUANTITY else decision.size
        return notional * per_notional / equity

    @staticmethod
    def _check_levels(decision: Decision, price: float) -> str:
        d = decision.direction
        side = "long" if d > 0 else "short"
        if decision.stop_loss is not None:
            sl = decision.stop_loss
            if not _finite_positive(sl) or (sl - price) * d >= 0:
                return f"stop-loss {sl!r} is on the wrong side of the price {price:g} for a {side}"
        if decision.take_profit is not None:
            tp = decision.take_profit
            if not _finite_positive(tp) or (tp - price) * d <= 0:
                return f"take-profit {tp!r} is on the wrong side of the price {price:g} for a {side}"
        return ""
