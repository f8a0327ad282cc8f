"""The backtest board: the spec's columns in order, ranked, from each result's metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from arena_lib.analytics.columns import BACKTEST_BOARD
from arena_lib.analytics.leaderboard import leaderboard
from arena_lib.engine.results import BacktestResult, fills_frame


@dataclass
class _Verdict:
    reasons: tuple[str, ...]


@dataclass
class _Result:
    """Anything with metrics, a final equity and risk verdicts can be ranked (the `ScoredResult` protocol)."""

    metrics: dict[str, Any]
    final_equity: float
    verdicts: list[_Verdict] = field(default_factory=list)


def test_the_board_has_the_spec_columns_ranked_by_total_return() -> None:
    results = {
        "slow": _Result({"total_return": 0.01, "sharpe": 0.5, "win_rate": 0.4}, 1010.0),
        "fast": _Result({"total_return": 0.25, "sharpe": 1.5}, 1250.0, [_Verdict(("clamped",)), _Verdict(())]),
        "lost": _Result({"total_return": math.nan}, 900.0),
    }
    board = leaderboard(results)
    assert list(board.columns) == BACKTEST_BOARD.names
    assert list(board["agent"]) == ["fast", "slow", "lost"]  # NaN ranks last
    assert list(board["rank"]) == [1, 2, 3]
    row = board.set_index("agent").loc["fast"]
    assert row["final_equity"] == 1250.0
    assert row["rejections"] == 1  # only verdicts with reasons: refused or clamped
    assert math.isnan(row["win_rate"])  # a metric the result does not have is missing, not zero
    assert list(leaderboard(results, rank_by="sharpe")["agent"][:2]) == ["fast", "slow"]


def test_no_results_give_an_empty_board_with_every_column() -> None:
    board = leaderboard({})
    assert board.empty
    assert list(board.columns) == BACKTEST_BOARD.names


def test_a_backtest_result_is_a_scored_result() -> None:
    t = pd.date_range("2025-01-01", periods=3, freq="h", tz="UTC")
    equity = pd.Series([1000.0, 1010.0, 1005.0], index=t)
    result = BacktestResult("a", equity, fills_frame([]), pd.Series(0.0, index=t), 1000.0)
    board = leaderboard({"a": result})
    assert board.iloc[0]["final_equity"] == 1005.0
    assert board.iloc[0]["total_return"] == result.metrics["total_return"]
