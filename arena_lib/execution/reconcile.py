"""Ledger against exchange: what must agree once every trade and funding payment has been imported.

After the sync has imported what the exchange did, the two must hold the same signed position in every symbol
(within half an amount step) and the same wallet balance (within `tolerance`). What still differs has no
explanation Arena can find — a deposit or withdrawal, a transfer, a fill the exchange does not report — and the
account halts with the difference named, rather than trade on a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Report:
    """The differences that remain after a sync ([] when ledger and exchange agree)."""

    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def compare(
    ledger_positions: Mapping[str, float],
    exchange_positions: Mapping[str, float],
    ledger_wallet: float,
    exchange_wallet: float,
    *,
    steps: Mapping[str, float],
    tolerance: float,
) -> Report:
    """Every symbol's signed quantity and the wallet balance; each difference named with both sides' figures."""
    report = Report()
    for sym in sorted(set(ledger_positions) | set(exchange_positions)):
        ours, theirs = ledger_positions.get(sym, 0.0), exchange_positions.get(sym, 0.0)
        if abs(ours - theirs) > max(steps.get(sym, 0.0) / 2.0, 1e-12):
            report.differences.append(
                f"{sym}: the exchange holds {theirs:+.8g} and the ledger {ours:+.8g}, and no fill explains it"
            )
    gap = exchange_wallet - ledger_wallet
    if abs(gap) > tolerance:
        report.differences.append(
            f"wallet: the exchange's balance is {gap:+,.4f} from the ledger's ({exchange_wallet:,.4f} against "
            f"{ledger_wallet:,.4f}) with no fill or funding to explain it (a deposit, withdrawal or transfer?)"
        )
    return report
