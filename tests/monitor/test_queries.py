"""The monitor's page queries on the demo replay, a random ledger and a big store.

The curves, returns, positions, fills and decision log are checked against the store's own frames (pandas over
every row) and the leaderboard's figures. A synthetic store with 200,000 fills checks that the pages read only
summaries and bounded pages, by counting the rows the database driver hands over (no timing is asserted). The
leaderboard has its own tests (`test_leaderboard_sql.py`), and so does opening the store (`test_store.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql

from arena_lib.analytics import metrics
from arena_lib.arena.store import ArenaStore
from arena_lib.monitor import queries as q
from arena_lib.monitor import risk
from arena_lib.monitor.leaderboard_sql import leaderboard
from arena_lib.monitor.store import open_store
from tests.monitor.conftest import T0, H

EXACT = {"rel": 1e-9, "abs": 1e-12}


# -- curves and returns ---------------------------------------------------------------------------------------------
def test_equity_curves_keep_ends_respect_max_points_and_the_deepest_drawdown(ledger: tuple[ArenaStore, str]) -> None:
    store, run_id = ledger
    eq = store.equity_frame(run_id)
    board = leaderboard(store, run_id).set_index("agent")
    full = q.equity_curves(store, run_id)
    for agent, g in eq.groupby("agent"):
        curve = full[full["agent"] == agent]
        series = pd.Series(g["equity"].to_numpy())
        assert list(curve["equity"]) == pytest.approx(list(series))  # small enough: every row
        assert list(curve["drawdown"]) == pytest.approx(list(metrics.drawdown_series(series)))
    for max_points in (2, 7, 50):
        small = q.equity_curves(store, run_id, max_points=max_points)
        assert list(small.columns) == ["ts", "agent", "equity", "drawdown", "return_pct", "round_no"]
        assert str(small["ts"].dtype) == "datetime64[ns, UTC]"
        for agent, curve in small.groupby("agent"):
            rows = eq[eq["agent"] == agent]
            assert len(curve) <= max_points
            assert curve["round_no"].iloc[0] == rows["round_no"].min()
            assert curve["round_no"].iloc[-1] == rows["round_no"].max()
            assert curve["equity"].iloc[-1] == pytest.approx(rows["equity"].iloc[-1])
            assert curve["ts"].is_monotonic_increasing
            # Each point carries its bucket's deepest drawdown, so the curve shows the run's worst.
            assert curve["drawdown"].min() == pytest.approx(board.loc[agent, "max_drawdown"], **EXACT)
            assert curve["return_pct"].iloc[-1] == pytest.approx(board.loc[agent, "return_pct"], **EXACT)


def test_equity_curves_for_a_period_start_from_the_value_before_it(ledger: tuple[ArenaStore, str]) -> None:
    store, run_id = ledger
    start, end = pd.Timestamp(T0 + 30 * H, tz="UTC"), pd.Timestamp(T0 + 60 * H, tz="UTC")
    curves = q.equity_curves(store, run_id, start=start, end=end, max_points=10)
    assert curves["ts"].min() == start
    assert curves["ts"].max() == end
    eq = store.equity_frame(run_id)
    beta = eq[eq["agent"] == "beta"].set_index("round_no")["equity"]
    first = curves[curves["agent"] == "beta"].iloc[0]
    assert first["return_pct"] == pytest.approx((beta[30] / beta[29] - 1) * 100)
    assert first["drawdown"] == 0.0


def test_agent_returns_compound_to_the_final_equity(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    returns = q.agent_returns(store, run_id, portfolio=True)
    eq = store.equity_frame(run_id)
    assert isinstance(returns.index, pd.DatetimeIndex)
    assert str(returns.index.tz) == "UTC"
    assert len(returns) == eq["round_no"].nunique()
    for agent, g in eq.groupby("agent"):
        assert 10_000.0 * float(np.prod(1 + returns[agent])) == pytest.approx(g["equity"].iloc[-1], rel=1e-12)
    total = eq.groupby("round_no")["equity"].sum()
    assert 60_000.0 * float(np.prod(1 + returns["portfolio"])) == pytest.approx(total.iloc[-1], rel=1e-12)
    tail = q.agent_returns(store, run_id, max_points=10)
    assert len(tail) == 10
    pd.testing.assert_frame_equal(tail, returns.drop(columns="portfolio").iloc[-10:], check_freq=False)
    table = risk.var_cvar(returns, min_observations=10)
    assert set(table["agent"]) == {*eq["agent"].unique(), "portfolio"}


# -- positions, trades, decisions -----------------------------------------------------------------------------------
def test_positions_are_marked_at_the_last_snapshot_and_reconcile_with_equity(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    pos = q.positions(store, run_id)
    accounts = store.load_accounts(run_id)
    eq = store.equity_frame(run_id)
    last = eq[eq["round_no"] == eq["round_no"].max()].set_index("agent")["equity"]
    for agent, acc in accounts.items():
        held = pos[pos["agent"] == agent]
        # cash + margin + unrealized PnL is the equity row of the last round: the marks are that round's closes.
        assert acc.cash + float((held["margin"] + held["unrealized_pnl"]).sum()) == pytest.approx(last[agent])
    scalper = q.positions(store, run_id, "scalper").iloc[0]
    assert scalper["side"] == "long"
    assert scalper["invalidation"] == "BTC close below 1000"
    assert scalper["stop_loss"] < scalper["entry_price"] < scalper["take_profit"]
    assert scalper["opened_at"].tzinfo is not None
    exp = q.exposure(store, run_id).set_index(["agent", "symbol"])
    assert exp.loc[("scalper", "BTC/USDT"), "share_of_equity"] == pytest.approx(scalper["notional"] / last["scalper"])
    assert (exp["notional"] >= 0).all()


def test_trades_are_the_newest_fills_first(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    fills = store.fills_frame(run_id)
    page = q.trades(store, run_id, limit=7)
    assert len(page) == 7
    assert page["ts"].is_monotonic_decreasing
    assert page["ts"].iloc[0] == pd.Timestamp(fills["ts"].max(), unit="ns", tz="UTC")
    mine = q.trades(store, run_id, "roundtrip", limit=500)
    assert len(mine) == (fills["agent"] == "roundtrip").sum()
    assert set(mine["agent"]) == {"roundtrip"}
    assert q.fill_count(store, run_id) == len(fills)


def test_decision_rounds_and_round_detail_of_a_language_model(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    rounds = q.decision_rounds(store, run_id, "scalper", limit=5)
    assert list(rounds["round_no"]) == [24, 23, 22, 21, 20]
    assert rounds["actions"].str.contains("BTC/USDT").all()
    assert rounds["parse_ok"].all()
    quant = q.decision_rounds(store, run_id, "sma_cross", limit=500)
    assert quant["rejected"].sum() == 15
    assert quant["parse_ok"].isna().all()
    detail = q.round_detail(store, run_id, "scalper", 0)
    assert detail is not None
    assert detail.prompt_version == "v1"
    assert "BTC" in detail.user_prompt
    assert detail.system_prompt
    assert '"buy_to_enter"' in detail.raw_response
    assert detail.parse_ok is True
    btc = detail.decisions.set_index("symbol").loc["BTC/USDT"]
    assert btc["action"] == "enter_long"
    assert bool(btc["approved"])
    assert "scripted entry" in btc["reason"]
    assert btc["stop_loss"] < btc["take_profit"]
    assert detail.ts == pd.Timestamp(store.rounds_frame(run_id)["ts"].iloc[0], unit="ns", tz="UTC")


def test_round_detail_of_a_quant_agent_has_verdicts_and_no_prompt(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    rejected = q.decision_rounds(store, run_id, "sma_cross")
    round_no = int(rejected.loc[rejected["rejected"] > 0, "round_no"].iloc[0])
    detail = q.round_detail(store, run_id, "sma_cross", round_no)
    assert detail is not None
    assert detail.system_prompt == detail.user_prompt == detail.raw_response == ""
    assert detail.parse_ok is None
    refused = detail.decisions[detail.decisions["approved"] == False]  # noqa: E712 - a nullable column
    assert len(refused) > 0
    assert (refused["verdict"] != "").all()
    assert q.round_detail(store, run_id, "sma_cross", 10_000) is None


def test_runs_agents_and_last_round(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    runs = q.list_runs(store)
    row = runs.iloc[0]
    assert row["agents"] == 6
    assert row["symbols"] == "BTC/USDT, ETH/USDT"
    assert row["last_round"] == 24
    assert row["start"] == pd.Timestamp("2025-03-01", tz="UTC")
    last = q.last_round(store)
    assert last is not None
    assert last.run_id == run_id
    assert last.round_no == 24
    assert (
        row["last_bar"] == last.bar_close == pd.Timestamp(store.rounds_frame(run_id)["ts"].max(), unit="ns", tz="UTC")
    )
    assert last.committed_at > pd.Timestamp(row["created_at"])
    agents = q.run_agents(store, run_id).set_index("agent")
    assert agents.loc["scalper", "kind"] == "llm"
    assert agents.loc["scalper", "prompt_version"] == "v1"
    assert agents["initial_cash"].eq(10_000.0).all()


# -- empty and wrong input ------------------------------------------------------------------------------------------
def test_an_empty_store_gives_empty_frames_with_their_columns(empty_store_url: str) -> None:
    store = open_store(empty_store_url)
    assert q.list_runs(store).empty
    assert list(q.list_runs(store).columns) == [*q._RUN_SCHEMA]
    for frame in (
        q.run_agents(store, "none"),
        q.equity_curves(store, "none"),
        q.positions(store, "none"),
        q.exposure(store, "none"),
        q.trades(store, "none"),
        q.decision_rounds(store, "none", "x"),
    ):
        assert frame.empty
        assert len(frame.columns) > 0
    assert q.agent_returns(store, "none").empty
    assert q.last_round(store) is None
    assert q.round_detail(store, "none", "x", 0) is None
    assert q.fill_count(store, "none") == 0


def test_bad_arguments_are_refused(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    with pytest.raises(ValueError, match="positive integer"):
        q.trades(store, run_id, limit=0)
    with pytest.raises(ValueError, match="at least 2"):
        q.equity_curves(store, run_id, max_points=1)
    with pytest.raises(ValueError, match="after end"):
        q.equity_curves(store, run_id, start="2025-03-02", end="2025-03-01")


def test_every_statement_also_compiles_for_postgresql(demo: tuple[ArenaStore, str]) -> None:
    """What the pages run through SQLAlchemy compiles for PostgreSQL too (SQLite-only functions would not)."""
    store, run_id = demo
    seen: list[Any] = []

    def collect(conn: Any, clause: Any, *args: Any) -> None:
        seen.append(clause)

    event.listen(store.engine, "before_execute", collect)
    try:
        _every_page(store, run_id)
    finally:
        event.remove(store.engine, "before_execute", collect)
    assert len(seen) > 20
    for clause in seen:
        sql = str(clause.compile(dialect=postgresql.psycopg.dialect()))
        assert "PRAGMA" not in sql


def _every_page(store: ArenaStore, run_id: str) -> None:
    q.list_runs(store)
    q.run_agents(store, run_id)
    leaderboard(store, run_id, start="2025-03-01 05:00")
    q.equity_curves(store, run_id, max_points=5)
    q.positions(store, run_id)
    q.exposure(store, run_id)
    q.trades(store, run_id)
    q.decision_rounds(store, run_id, "scalper")
    q.round_detail(store, run_id, "scalper", 1)
    q.agent_returns(store, run_id)
    q.last_round(store)
    q.fill_count(store, run_id)


# -- a big store: only summaries and pages leave the database -------------------------------------------------------
class _CountingCursor(sqlite3.Cursor):
    """A sqlite3 cursor that counts the rows it hands over (class-level, reset by the test)."""

    rows = 0

    def fetchone(self) -> Any:
        row = super().fetchone()
        _CountingCursor.rows += row is not None
        return row

    def fetchmany(self, size: int = 1) -> list[Any]:
        rows = super().fetchmany(size)
        _CountingCursor.rows += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = super().fetchall()
        _CountingCursor.rows += len(rows)
        return rows


class _CountingConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _CountingCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaStore, Any]]:
    from benchmarks.monitor_store import build_store

    path = tmp_path_factory.mktemp("big_store") / "arena.db"
    synth = build_store(f"sqlite:///{path}", fills=200_000, agents=8, symbols=2, decisions=False)
    engine = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(path, factory=_CountingConnection, check_same_thread=False)
    )
    store = ArenaStore(synth.url, engine=engine)
    yield store, synth
    engine.dispose()


def _fetched(fn: Any) -> tuple[int, Any]:
    _CountingCursor.rows = 0
    out = fn()
    return _CountingCursor.rows, out


def test_pages_fetch_summaries_and_bounded_pages_from_a_200k_fill_store(big: tuple[ArenaStore, Any]) -> None:
    store, synth = big
    run, agents, rounds = synth.run_id, len(synth.agents), synth.rounds
    assert synth.rows["fills"] >= 200_000
    n, board = _fetched(lambda: leaderboard(store, run, latency_rounds=500, curve_rows=1000))
    assert len(board) == agents
    assert (board["trades"] == rounds // 2).all()  # every other fill closes a trade in this synthetic run
    # Summaries per agent, a bounded latency window, and each agent's equity column thinned to `curve_rows`
    # numbers: nothing per fill.
    assert n <= agents * 1001 + agents * 500 + 200
    n, page = _fetched(lambda: q.trades(store, run, limit=300))
    assert len(page) == 300
    assert n <= agents * 300 + 10
    n, curves = _fetched(lambda: q.equity_curves(store, run, max_points=400))
    assert curves.groupby("agent").size().max() <= 400
    assert n <= agents * 400 + 50
    n, returns = _fetched(lambda: q.agent_returns(store, run, max_points=1000))
    assert len(returns) == 1000
    assert n <= agents * 1001 + 50
    n, count = _fetched(lambda: q.fill_count(store, run))
    assert count == synth.rows["fills"]
    assert n == 1
    n, _ = _fetched(lambda: q.positions(store, run))
    assert n <= 2 * agents + 10
