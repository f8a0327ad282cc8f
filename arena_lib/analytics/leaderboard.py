"""Leaderboard of a replay or backtest: one row per agent, ranked, with the metrics and the risk column.

The columns, their order and their units are `analytics.columns.BACKTEST_BOARD`'s; this module only fills them
from each result's metrics. A result is anything shaped like `arena_lib.engine.results.BacktestResult` (the
`ScoredResult` protocol), so this floor never imports the engine above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from arena_lib.analytics.columns import BACKTEST_BOARD

__all__ = ["ScoredResult", "leaderboard"]


class ScoredResult(Protocol):
    """What the board reads of one account's result (`BacktestResult` has it)."""

    @property
    def metrics(self) -> dict[str, Any]: ...

    @property
    def final_equity(self) -> float: ...

    @property
    def verdicts(self) -> Sequence[Any]: ...  # risk verdicts; those with reasons were refused or clamped


def leaderboard(results: Mapping[str, ScoredResult], rank_by: str = BACKTEST_BOARD.rank_by) -> pd.DataFrame:
    """Rank agents by `rank_by` (descending). `rejections` counts decisions the RiskEngine refused or clamped."""
    columns = [n for n in BACKTEST_BOARD.names if n != "rank"]
    rows = []
    for name, res in results.items():
        m = res.metrics
        row = {"agent": name, **{k: m.get(k) for k in columns if k in m}}
        row["final_equity"] = res.final_equity
        row["rejections"] = sum(1 for v in res.verdicts if v.reasons)
        rows.append(row)
    if not rows:
        return BACKTEST_BOARD.empty()
    board = pd.DataFrame(rows).reindex(columns=columns)
    board = board.sort_values(rank_by, ascending=False, na_position="last").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board
