"""The monitor's SQL leaderboard against the pandas standings, on the demo replay and on a random ledger.

The key specification is agreement: `leaderboard` (aggregated in SQL) must give the numbers of
`arena_lib.arena.standings.arena_leaderboard` (pandas over every row) on the same run, and with a period those of
`period_results`; both boards have the columns of `arena_lib.analytics.columns.ARENA_BOARD`. The random ledger
exercises what the short demo cannot: flip-flops, exits whose entry lies before the period, a round missing from
one agent's equity, failed model calls, invalidation exits.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from arena_lib.analytics import metrics
from arena_lib.analytics.columns import ARENA_BOARD
from arena_lib.arena.standings import arena_leaderboard, flip_flops, period_results, results_from_store
from arena_lib.arena.store import ArenaStore
from arena_lib.monitor.leaderboard_sql import NOT_COMPUTED_IN_SQL, leaderboard
from tests.monitor.conftest import T0, H

EXACT = {"rel": 1e-9, "abs": 1e-12}
# Compared with the pandas standings; median_hold_hours is checked apart (see `leaderboard`).
COMPARED = [c for c in ARENA_BOARD.names if c not in ("rank", "agent", "kind", "model", *NOT_COMPUTED_IN_SQL)]


def _assert_board_matches(ours: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    mine, theirs = ours.set_index("agent"), expected.set_index("agent")
    assert set(mine.index) == set(theirs.index)
    for col in columns:
        for agent in mine.index:
            a, b = mine.at[agent, col], theirs.at[agent, col]
            if isinstance(b, float) and math.isnan(b):
                assert isinstance(a, float), (col, agent, a, b)
                assert math.isnan(a), (col, agent, a, b)
            else:
                assert a == pytest.approx(b, **EXACT), (col, agent, a, b)


def test_leaderboard_agrees_with_the_pandas_standings_on_the_demo_run(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    ours, expected = leaderboard(store, run_id), arena_leaderboard(store, run_id)
    assert list(ours.columns) == ARENA_BOARD.names
    assert list(ours["rank"]) == list(range(1, 7))
    assert list(ours["account_value"]) == pytest.approx(list(expected["account_value"]), **EXACT)
    _assert_board_matches(ours, expected, COMPARED)
    assert ours.set_index("agent").loc["sma_cross", "risk_rejections"] == 15
    assert ours["trades"].sum() > 0
    # Both boards show the entries' mean leverage (computed here a third way).
    fills = store.fills_frame(run_id)
    entries = fills[fills["kind"] == "entry"].groupby("agent")["leverage"].mean()
    for agent, lev in ours.set_index("agent")["avg_leverage"].items():
        assert lev == pytest.approx(entries[agent]) if agent in entries else math.isnan(lev)
    assert ours["median_hold_hours"].isna().all()


def test_leaderboard_agrees_on_a_random_ledger_with_flip_flops_and_failures(ledger: tuple[ArenaStore, str]) -> None:
    store, run_id = ledger
    ours, expected = leaderboard(store, run_id), arena_leaderboard(store, run_id)
    _assert_board_matches(ours, expected, COMPARED)
    assert ours["flip_flops"].sum() > 0  # the data has flip-flops, so the comparison above covers them
    assert ours.set_index("agent").loc["alpha", "invalid_output_rate"] > 0
    skipped = leaderboard(store, run_id, flip_flops=False)
    assert skipped["flip_flops"].isna().all()
    _assert_board_matches(skipped, expected, [c for c in COMPARED if c != "flip_flops"])


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0 + 30 * H, T0 + 80 * H),  # on bar closes
        (T0 + 30 * H + 1, None),  # just after a close: that round is out
        (None, T0 + 50 * H - 1),
        (T0 + 500 * H, None),  # after the last round: nothing happened
    ],
)
def test_period_leaderboard_matches_period_results(ledger: tuple[ArenaStore, str], start: Any, end: Any) -> None:
    store, run_id = ledger
    lo = None if start is None else pd.Timestamp(start, unit="ns", tz="UTC")
    hi = None if end is None else pd.Timestamp(end, unit="ns", tz="UTC")
    ours = leaderboard(store, run_id, start=lo, end=hi).set_index("agent")
    for agent, res in period_results(results_from_store(store, run_id), lo, hi).items():
        trades = res.trades
        value, capital = res.final_equity, res.initial_cash
        expected = {
            "account_value": value,
            "pnl": value - capital,
            "return_pct": (value - capital) / capital * 100.0,
            "fees": float(res.fills["fee"].sum()) if len(res.fills) else 0.0,
            "trades": len(trades),
            "win_rate": metrics.win_rate(trades),
            "biggest_win": float(trades["pnl"].max()) if len(trades) else math.nan,
            "biggest_loss": float(trades["pnl"].min()) if len(trades) else math.nan,
            "sharpe": res.metrics["sharpe"] if len(res.equity) else math.nan,
            "max_drawdown": res.metrics["max_drawdown"] if len(res.equity) else math.nan,
            "flip_flops": flip_flops(trades, res.equity.index, 3),
        }
        row = ours.loc[agent]
        for col, want in expected.items():
            got = row[col]
            assert (
                (math.isnan(got) and math.isnan(want))
                if isinstance(want, float) and math.isnan(want)
                else (got == pytest.approx(want, **EXACT))
            ), (agent, col, got, want)


def test_period_return_is_measured_from_the_value_before_start(ledger: tuple[ArenaStore, str]) -> None:
    store, run_id = ledger
    eq = store.equity_frame(run_id)
    beta = eq[eq["agent"] == "beta"].set_index("round_no")["equity"]
    board = leaderboard(store, run_id, start=pd.Timestamp(T0 + 30 * H, tz="UTC")).set_index("agent")
    assert board.loc["beta", "return_pct"] == pytest.approx((beta.iloc[-1] / beta[29] - 1) * 100, **EXACT)


def test_an_empty_store_gives_an_empty_board_with_every_column(empty_store_url: str) -> None:
    store = ArenaStore(empty_store_url)
    board = leaderboard(store, "none")
    assert board.empty
    assert list(board.columns) == ARENA_BOARD.names
    store.engine.dispose()


def test_a_bad_period_is_refused(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    with pytest.raises(ValueError, match="after end"):
        leaderboard(store, run_id, start="2025-03-02", end="2025-03-01")
    with pytest.raises(ValueError, match="not a valid timestamp"):
        leaderboard(store, run_id, start="someday")
