"""The RiskEngine: a mandatory hop between every decision and the broker, in every mode.

It reviews a decision against the account and the hard limits, and returns a `RiskVerdict`: rejected with a reason,
or approved, possibly clamped, with every clamp named. The policy itself is `rules.review_decision`, compiled code
the batch kernel runs too; this module feeds it a `Decision` and turns its verdict code into the `RiskVerdict` and
the reasons people read (`verdict_from_code`, used by both paths, so their reasons are the same text). Fill-time caps
that depend on the fill price (position notional, gross exposure, free margin) are applied by the broker with the
shared `rules.entry_size`, and their reasons are recorded on the fill.
"""

from __future__ import annotations

import math

from arena_lib.agents.base import AccountView
from arena_lib.core.config import RiskLimits
from arena_lib.core.types import Action, Decision, RiskVerdict, SizeUnit
from arena_lib.engine import rules

_ACTIONS = {
    Action.ENTER_LONG: rules.ACTION_LONG,
    Action.ENTER_SHORT: rules.ACTION_SHORT,
    Action.CLOSE: rules.ACTION_CLOSE,
    Action.HOLD: rules.ACTION_HOLD,
}
_UNITS = {
    SizeUnit.FRACTION: rules.UNIT_FRACTION,
    SizeUnit.QUANTITY: rules.UNIT_QUANTITY,
    SizeUnit.NOTIONAL: rules.UNIT_NOTIONAL,
}


def _number(x: object) -> float:
    """`x` as a float for the compiled policy; NaN (which fails every check) for None or a non-number."""
    return float(x) if isinstance(x, int | float) else math.nan


def verdict_reasons(
    code: int, clamps: int, decision: Decision, price: float, requested: float, max_leverage: float
) -> tuple[str, ...]:
    """The reasons of a `rules.review_decision` outcome, worded from the decision as the agent gave it."""
    if code == rules.VERDICT_APPROVED and not clamps:
        return ()
    sym = decision.symbol
    if code == rules.VERDICT_APPROVED:
        reasons: list[str] = []
        if clamps & rules.CLAMP_LEVERAGE:
            reasons.append(f"leverage {decision.leverage:g} clamped to max {max_leverage:g}")
        if clamps & rules.CLAMP_SIZE:
            reasons.append(f"size is {requested:.0%} of equity: clamped to 100%")
        return tuple(reasons)
    side = "long" if decision.direction > 0 else "short"
    if code == rules.VERDICT_HOLD:
        why = "hold: nothing to do"
    elif code == rules.VERDICT_NO_PRICE:
        why = f"{sym}: no valid price at decision time"
    elif code == rules.VERDICT_NOTHING_TO_CLOSE:
        why = f"{sym}: no open position to close"
    elif code == rules.VERDICT_BAD_SIZE:
        why = f"size must be a positive finite number, got {decision.size!r}"
    elif code == rules.VERDICT_BAD_LEVERAGE:
        why = f"leverage must be a positive finite number, got {decision.leverage!r}"
    elif code == rules.VERDICT_PYRAMIDING:
        why = f"{sym}: position already open in that direction (no pyramiding)"
    elif code == rules.VERDICT_REVERSAL:
        why = f"{sym}: opposite position open; close it first (reversals not allowed)"
    elif code == rules.VERDICT_STOP_SIDE:
        why = f"stop-loss {decision.stop_loss!r} is on the wrong side of the price {price:g} for a {side}"
    elif code == rules.VERDICT_TAKE_PROFIT_SIDE:
        why = f"take-profit {decision.take_profit!r} is on the wrong side of the price {price:g} for a {side}"
    elif code == rules.VERDICT_NO_EQUITY:
        why = f"size {decision.size!r} {decision.size_unit.value} is not a positive amount of equity"
    else:
        raise ValueError(f"unknown verdict code {code}")
    return (why,)


def verdict_from_code(
    decision: Decision,
    code: int,
    clamps: int,
    fraction: float,
    leverage: float,
    requested: float,
    price: float,
    max_leverage: float,
    ts: int = 0,
) -> RiskVerdict:
    """The `RiskVerdict` for a `rules.review_decision` outcome: the one place both engine paths build verdicts."""
    reasons = verdict_reasons(code, clamps, decision, price, requested, max_leverage)
    # positional (decision, approved, fraction, leverage, reasons, ts): a batch run builds one per decision
    if code != rules.VERDICT_APPROVED:
        return RiskVerdict(decision, False, 0.0, 1.0, reasons, ts)
    return RiskVerdict(decision, True, fraction, leverage, reasons, ts)


class RiskEngine:
    """Validates, clamps or rejects decisions; never lets an unreviewed decision reach a broker."""

    def __init__(self, limits: RiskLimits, fee_rate: float) -> None:
        self.limits = limits
        self.fee_rate = fee_rate

    def review(self, decision: Decision, account: AccountView, price: float) -> RiskVerdict:
        """Rule on one decision given the account and the latest price of its symbol."""
        code, clamps, fraction, leverage, requested = rules.review_decision(
            _ACTIONS[decision.action],
            account.direction(decision.symbol),
            _number(price),
            _number(decision.size),
            _UNITS.get(decision.size_unit, rules.UNIT_NOTIONAL),  # any other unit counts as a notional
            _number(decision.leverage),
            decision.stop_loss is not None,
            _number(decision.stop_loss),
            decision.take_profit is not None,
            _number(decision.take_profit),
            _number(account.equity),
            float(self.fee_rate),
            float(self.limits.max_leverage),
            bool(self.limits.allow_reversal),
        )
        return verdict_from_code(decision, code, clamps, fraction, leverage, requested, price, self.limits.max_leverage)
