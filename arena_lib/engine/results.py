"""Backtest results: fills, round-trip trades, the equity curve and metrics, identical in shape for both paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from arena_lib.analytics.trades import trades_from_fills
from arena_lib.core.types import Fill, RiskVerdict
from arena_lib.data.market import ns_to_index

FILL_COLUMNS = [
    "order_id",
    "symbol",
    "timestamp",
    "side",
    "quantity",
    "price",
    "fee",
    "kind",
    "realized_pnl",
    "funding",
    "note",
]

REJECTION_COLUMNS = ["timestamp", "symbol", "action", "approved", "reasons"]


def fills_frame(fills: Sequence[Fill]) -> pd.DataFrame:
    """Fills as a DataFrame (timestamps as UTC), one row per fill, in execution order."""
    if not fills:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FILL_COLUMNS})
    df = pd.DataFrame(
        {
            "order_id": [f.order_id for f in fills],
            "symbol": [f.symbol for f in fills],
            "timestamp": ns_to_index(np.array([f.timestamp for f in fills], dtype=np.int64), None),
            "side": [f.side.value for f in fills],
            "quantity": [f.quantity for f in fills],
            "price": [f.price for f in fills],
            "fee": [f.fee for f in fills],
            "kind": [f.kind.value for f in fills],
            "realized_pnl": [f.realized_pnl for f in fills],
            "funding": [f.funding for f in fills],
            "note": [f.note for f in fills],
        }
    )
    return df


@dataclass
class BacktestResult:
    """Everything one account produced in one replay."""

    agent: str
    equity: pd.Series
    fills: pd.DataFrame
    exposure: pd.Series
    initial_cash: float
    verdicts: list[RiskVerdict] = field(default_factory=list)
    fill_rejections: list[Any] = field(default_factory=list)
    open_positions: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    _trades: pd.DataFrame | None = None
    _metrics: dict[str, Any] | None = None

    @property
    def trades(self) -> pd.DataFrame:
        if self._trades is None:
            self._trades = trades_from_fills(self.fills)
        return self._trades

    @property
    def final_equity(self) -> float:
        return float(self.equity.iloc[-1]) if len(self.equity) else self.initial_cash

    @property
    def metrics(self) -> dict[str, Any]:
        if self._metrics is None:
            from arena_lib.analytics.metrics import summarize

            notional = float((self.fills["quantity"] * self.fills["price"]).abs().sum()) if len(self.fills) else 0.0
            self._metrics = summarize(self.equity, self.trades, fills_notional_total=notional, exposure=self.exposure)
        return self._metrics

    def rejections(self) -> pd.DataFrame:
        """Risk rejections and clamps with their reasons (the audit trail of the RiskEngine), in decision order.

        One row per verdict that carries a reason, timestamped at its decision (the bar close, UTC). Both engine
        paths record the same verdicts, so a batch run's table equals the step loop's.
        """
        flagged = [v for v in self.verdicts if v.reasons]
        return pd.DataFrame(
            {
                "timestamp": ns_to_index(np.array([v.ts for v in flagged], dtype=np.int64), None),
                "symbol": [v.decision.symbol for v in flagged],
                "action": [v.decision.action.value for v in flagged],
                "approved": [v.approved for v in flagged],
                "reasons": ["; ".join(v.reasons) for v in flagged],
            },
            columns=REJECTION_COLUMNS,
        )


def equity_series(values: np.ndarray, close_times: pd.DatetimeIndex, name: str) -> pd.Series:
    return pd.Series(values, index=close_times, name=name, dtype=np.float64)
