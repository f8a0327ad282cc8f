"""Trade pairing: the fills of one account paired into closed round trips, the input of the trade metrics.

Why here, beside `analytics.metrics`: a round trip is an analysis of fills, not part of executing them. The
backtest results, the arena standings and the monitor's SQL board all count trades, win rates and holding times
the same way only if they pair fills the same way; this is that one rule (the SQL board mirrors it statement by
statement and is tested against it).

The rule: an entry fill opens a trade on its symbol and the next exit fill on that symbol (an exit, stop, take
profit, invalidation or liquidation) closes it. The engine never adds to an open position, so at most one entry is
open per symbol; a later entry replaces an unclosed one. A trade's ``pnl`` is net: realized PnL minus the fees of
both fills minus the funding paid while it was open, in quote currency.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from arena_lib.analytics.metrics import TRADE_COLUMNS as METRIC_TRADE_COLUMNS
from arena_lib.core.types import FillKind

__all__ = ["TRADE_COLUMNS", "trades_from_fills"]

TRADE_COLUMNS = [*METRIC_TRADE_COLUMNS, "exit_kind"]
"""Columns of the trades frame: those the metrics read, plus the kind of fill that ended each trade."""


def trades_from_fills(fills: pd.DataFrame) -> pd.DataFrame:
    """Pair each entry fill with the exit that closed it into a round-trip trade (net pnl after fees and funding).

    `fills` is a fills frame (one row per fill in execution order, with symbol, timestamp, side, quantity, price,
    fee, kind, realized_pnl and funding). Positions still open at the end have no row: they are in the final
    portfolio and in the equity curve.
    """
    rows: list[dict[str, Any]] = []
    open_entries: dict[str, pd.Series] = {}
    for _, f in fills.iterrows():
        sym = f["symbol"]
        if f["kind"] == FillKind.ENTRY.value:
            open_entries[sym] = f
            continue
        entry = open_entries.pop(sym, None)
        if entry is None:
            continue
        direction = 1 if entry["side"] == "buy" else -1
        fees = float(entry["fee"] + f["fee"])
        rows.append(
            {
                "symbol": sym,
                "direction": direction,
                "entry_time": entry["timestamp"],
                "exit_time": f["timestamp"],
                "entry_price": float(entry["price"]),
                "exit_price": float(f["price"]),
                "quantity": float(entry["quantity"]),
                "pnl": float(f["realized_pnl"]) - fees - float(f["funding"]),
                "fees": fees,
                "funding": float(f["funding"]),
                "exit_kind": f["kind"],
            }
        )
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)
