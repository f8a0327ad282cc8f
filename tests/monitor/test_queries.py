"""The monitor's SQL queries against the pandas standings, on the demo replay, a random ledger and a big store.

The key specification is agreement: `leaderboard` (aggregated in SQL) must give the numbers of
`arena_lib.arena.standings.arena_leaderboard` (pandas over every row) on the same run, and with a period those of
`period_results`. The random ledger exercises what the short demo cannot: flip-flops, exits whose entry lies before
the period, a round missing from one agent's equity, failed model calls, invalidation exits. A synthetic store with
200,000 fills checks that the pages read only summaries and bounded pages, by counting the rows the database
driver hands over (no timing is asserted).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, event, insert
from sqlalchemy.dialects import postgresql

from arena_lib.arena import schema as t
from arena_lib.arena.standings import COLUMNS, arena_leaderboard, flip_flops, period_results, results_from_store
from arena_lib.arena.store import ArenaStore
from arena_lib.analytics import metrics
from arena_lib.monitor import queries as q
from arena_lib.monitor import risk

H = 3_600_000_000_000
T0 = 1_735_689_600_000_000_000  # 2025-01-01 00:00 UTC
EXACT = {"rel": 1e-9, "abs": 1e-12}
# Compared with the pandas standings; median_hold_hours is checked apart (see `leaderboard`).
COMPARED = [c for c in COLUMNS if c not in ("rank", "agent", "kind", "model", "median_hold_hours")]


# -- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(demo_store_url: str) -> Iterator[tuple[ArenaStore, str]]:
    store = q.open_store(demo_store_url)
    yield store, q.list_runs(store)["run_id"].iloc[0]
    store.engine.dispose()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaStore, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('random_ledger')}/arena.db"
    run_id = _write_random_run(url, seed=11)
    store = q.open_store(url)
    yield store, run_id
    store.engine.dispose()


def _write_random_run(url: str, seed: int, rounds: int = 120) -> str:
    """A run of random but well-formed ledger rows: per (agent, coin) fills alternate entry and exit, as the engine
    writes them (it never adds to an open position); a fill executes at the next bar's open, one bar before its
    round's close. Agent "gamma" has no equity row for round 40."""
    rng = np.random.default_rng(seed)
    run_id = f"random-{seed}"
    coins = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    kinds = {"alpha": "llm", "beta": "quant", "gamma": "quant"}
    ts = [T0 + i * H for i in range(rounds)]
    rows: dict[type[t.Base], list[dict[str, Any]]] = {k: [] for k in (t.FillRow, t.EquityRow, t.DecisionRow)}
    rows[t.LLMCallRow] = []
    for agent in kinds:
        seq, open_side = 0, dict.fromkeys(coins)
        equity = 10_000.0
        for i in range(rounds):
            equity *= 1.0 + rng.normal(0.0, 0.01)
            if not (agent == "gamma" and i == 40):
                rows[t.EquityRow].append(
                    {
                        "run_id": run_id,
                        "agent": agent,
                        "round_no": i,
                        "ts": ts[i],
                        "cash": equity,
                        "equity": equity,
                        "gross_exposure": 0.0,
                    }
                )
            latency = float(rng.uniform(0.001, 2.0))
            for coin in coins:
                held = open_side[coin]
                if i > 0 and rng.random() < (0.35 if held is None else 0.4):
                    if held is None:
                        kind, side = "entry", str(rng.choice(["buy", "sell"]))
                    else:
                        kind, side = (
                            str(rng.choice(["exit", "stop_loss", "take_profit"])),
                            {"buy": "sell"}.get(held, "buy"),
                        )
                    open_side[coin] = side if kind == "entry" else None
                    rows[t.FillRow].append(
                        {
                            "fill_id": f"{run_id}/{agent}/{seq}",
                            "order_id": f"{run_id}/{agent}/{seq}",
                            "run_id": run_id,
                            "agent": agent,
                            "round_no": i,
                            "seq": seq,
                            "symbol": coin,
                            "ts": ts[i] - H,
                            "side": str(side),
                            "kind": str(kind),
                            "quantity": 0.1,
                            "price": 100.0,
                            "fee": float(rng.uniform(0.01, 2.0)),
                            "realized_pnl": 0.0 if kind == "entry" else float(rng.normal(0.0, 5.0)),
                            "funding": 0.0 if kind == "entry" else float(rng.normal(0.0, 0.1)),
                            "leverage": float(rng.choice([1.0, 2.0, 5.0])),
                            "margin": 5.0,
                            "note": "",
                        }
                    )
                    seq += 1
                if rng.random() < 0.6:
                    approved = rng.choice([True, False, None])
                    rows[t.DecisionRow].append(
                        {
                            "run_id": run_id,
                            "round_no": i,
                            "agent": agent,
                            "symbol": coin,
                            "ts": ts[i],
                            "source": str(rng.choice(["agent", "agent", "fallback", "invalidation"])),
                            "action": str(rng.choice(["hold", "enter_long", "enter_short", "close"])),
                            "size": 0.1,
                            "size_unit": "fraction",
                            "leverage": 1.0,
                            "stop_loss": None,
                            "take_profit": None,
                            "invalidation": "",
                            "confidence": None if rng.random() < 0.3 else float(rng.random()),
                            "risk_usd": None,
                            "reason": "random",
                            "approved": None if approved is None else bool(approved),
                            "clamped": bool(rng.random() < 0.2),
                            "fraction": 0.1,
                            "verdict": "",
                            "latency_s": latency,
                        }
                    )
            if kinds[agent] == "llm" and rng.random() < 0.9:
                rows[t.LLMCallRow].append(
                    {
                        "run_id": run_id,
                        "round_no": i,
                        "agent": agent,
                        "prompt_sha": "none",
                        "raw": "{}",
                        "parse_ok": bool(rng.random() < 0.8),
                        "error": "" if rng.random() < 0.9 else "deadline",
                        "problems": [],
                        "cost_usd": float(rng.uniform(0, 0.01)),
                        "latency_s": latency,
                    }
                )
    store = ArenaStore(url)
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.RunRow),
            [
                {
                    "run_id": run_id,
                    "created_at": T0,
                    "mode": "replay",
                    "status": "completed",
                    "spec_hash": "x",
                    "config": {"rounds": {"flip_flop_bars": 3}},
                    "symbols": coins,
                    "timeframe": "1h",
                    "last_round": rounds - 1,
                    "message": "",
                }
            ],
        )
        conn.execute(
            insert(t.RunAgentRow),
            [{"run_id": run_id, "agent": a, "kind": k, "model": a, "initial_cash": 10_000.0} for a, k in kinds.items()],
        )
        conn.execute(
            insert(t.RoundRow),
            [
                {
                    "run_id": run_id,
                    "round_no": i,
                    "ts": ts[i],
                    "snapshot_hash": f"h{i}",
                    "wall_started": T0 + i,
                    "wall_s": 0.5,
                }
                for i in range(rounds)
            ],
        )
        for table, records in rows.items():
            conn.execute(insert(table), records)
    store.engine.dispose()
    return run_id


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


# -- the leaderboard ------------------------------------------------------------------------------------------------
def test_leaderboard_agrees_with_the_pandas_standings_on_the_demo_run(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    ours, expected = q.leaderboard(store, run_id), arena_leaderboard(store, run_id)
    assert list(ours.columns) == COLUMNS
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
    ours, expected = q.leaderboard(store, run_id), arena_leaderboard(store, run_id)
    _assert_board_matches(ours, expected, COMPARED)
    assert ours["flip_flops"].sum() > 0  # the data has flip-flops, so the comparison above covers them
    assert ours.set_index("agent").loc["alpha", "invalid_output_rate"] > 0
    skipped = q.leaderboard(store, run_id, flip_flops=False)
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
    ours = q.leaderboard(store, run_id, start=lo, end=hi).set_index("agent")
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
    board = q.leaderboard(store, run_id, start=pd.Timestamp(T0 + 30 * H, tz="UTC")).set_index("agent")
    assert board.loc["beta", "return_pct"] == pytest.approx((beta.iloc[-1] / beta[29] - 1) * 100, **EXACT)


# -- curves and returns ---------------------------------------------------------------------------------------------
def test_equity_curves_keep_ends_respect_max_points_and_the_deepest_drawdown(ledger: tuple[ArenaStore, str]) -> None:
    store, run_id = ledger
    eq = store.equity_frame(run_id)
    board = q.leaderboard(store, run_id).set_index("agent")
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


# -- empty, unreadable and wrong input ------------------------------------------------------------------------------
def test_an_empty_store_gives_empty_frames_with_their_columns(empty_store_url: str) -> None:
    store = q.open_store(empty_store_url)
    assert q.list_runs(store).empty
    assert list(q.list_runs(store).columns) == [*q._RUN_SCHEMA]
    assert list(q.leaderboard(store, "none").columns) == COLUMNS
    assert q.leaderboard(store, "none").empty
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


def test_an_unreadable_store_raises_a_clear_error(unreadable_store_url: str) -> None:
    with pytest.raises(q.StoreUnavailableError) as err:
        q.open_store(unreadable_store_url)
    message = str(err.value)
    assert unreadable_store_url.removeprefix("sqlite:///") in message
    assert "not a database" in message
    assert "ARENA_DB_URL" in message


def test_a_password_never_reaches_the_error_message() -> None:
    with pytest.raises(q.StoreUnavailableError) as err:
        q.open_store("postgresql+psycopg://arena:s3cret@127.0.0.1:1/arena")
    assert "s3cret" not in str(err.value)
    assert "***" in str(err.value)


def test_a_missing_sqlite_file_opens_as_a_new_empty_store(tmp_path: Path) -> None:
    store = q.open_store(f"sqlite:///{tmp_path}/new.db")
    assert q.list_runs(store).empty


def test_bad_arguments_are_refused(demo: tuple[ArenaStore, str]) -> None:
    store, run_id = demo
    with pytest.raises(ValueError, match="positive integer"):
        q.trades(store, run_id, limit=0)
    with pytest.raises(ValueError, match="at least 2"):
        q.equity_curves(store, run_id, max_points=1)
    with pytest.raises(ValueError, match="after end"):
        q.leaderboard(store, run_id, start="2025-03-02", end="2025-03-01")
    with pytest.raises(ValueError, match="not a valid timestamp"):
        q.leaderboard(store, run_id, start="someday")


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
    q.leaderboard(store, run_id, start="2025-03-01 05:00")
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
    n, board = _fetched(lambda: q.leaderboard(store, run, latency_rounds=500, curve_rows=1000))
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
