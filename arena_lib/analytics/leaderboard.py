"""Leaderboard of a replay: one row per agent, ranked, with the metrics and the reliability columns."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from arena_lib.engine.results import BacktestResult

COLUMNS = [
    "agent",
    "final_equity",
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "turnover",
    "fees_share_of_pnl",
    "rejections",
]


def leaderboard(results: Mapping[str, BacktestResult], rank_by: str = "total_return") -> pd.DataFrame:
    """Rank agents by `rank_by` (descending). `rejections` counts decisions the RiskEngine refused or clamped."""
    rows = []
    for name, res in results.items():
        m = res.metrics
        row = {"agent": name, **{k: m.get(k) for k in COLUMNS if k in m}}
        row["final_equity"] = res.final_equity
        row["rejections"] = sum(1 for v in res.verdicts if v.reasons)
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["rank", *COLUMNS])
    board = pd.DataFrame(rows).reindex(columns=COLUMNS)
    board = board.sort_values(rank_by, ascending=False, na_position="last").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board
