"""The arena leaderboard from the ledger: nof1's metric set plus reliability columns, LLM and quant side by side.

The columns, their order, labels and units are `arena_lib.analytics.columns.ARENA_BOARD`'s (where each one is
defined); this module computes them in pandas from every row of a run, which suits a report at the end of a run.
The monitor computes the same board in SQL (`arena_lib.monitor.leaderboard_sql`), and the tests hold the two to
each other.

Performance columns come from the same `BacktestResult` metrics as a backtest (rebuilt from the stored equity and
fills), so an arena run and a backtest of the same agent are scored identically. Reliability columns come from the
decision log: how often the model's output was unusable, how often the RiskEngine had to clamp or refuse it, how
often it flip-flopped, what it cost, and how long it took to answer. Decisions the engine made itself (an exit
plan's invalidation, a circuit breaker) are not the agent's and are left out of the decision shares and counts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from arena_lib.analytics.columns import ARENA_BOARD
from arena_lib.arena.store import ArenaStore
from arena_lib.data.market import ns_to_index
from arena_lib.data.resample import TimeLike, to_utc_timestamp
from arena_lib.engine.results import FILL_COLUMNS, BacktestResult


def results_from_store(store: ArenaStore, run_id: str) -> dict[str, BacktestResult]:
    """Each agent's equity and fills as a `BacktestResult`, so the backtest metrics apply unchanged."""
    eq = store.equity_frame(run_id)
    fills = store.fills_frame(run_id)
    agents = store.run_agents(run_id)
    out: dict[str, BacktestResult] = {}
    for a in agents:
        e = eq[eq["agent"] == a.agent]
        idx = ns_to_index(e["ts"].to_numpy(np.int64))
        f = fills[fills["agent"] == a.agent].rename(columns={"ts": "timestamp"})
        f = f.assign(timestamp=ns_to_index(f["timestamp"].to_numpy(np.int64), None)).reset_index(drop=True)
        out[a.agent] = BacktestResult(
            agent=a.agent,
            equity=pd.Series(e["equity"].to_numpy(np.float64), index=idx, name=a.agent),
            fills=f[[*FILL_COLUMNS, "round_no", "leverage"]],
            exposure=pd.Series(e["gross_exposure"].to_numpy(np.float64), index=idx, name="gross_exposure"),
            initial_cash=a.initial_cash,
            meta={"run_id": run_id, "kind": a.kind, "model": a.model},
        )
    return out


def period_results(
    results: Mapping[str, BacktestResult], start: TimeLike | None = None, end: TimeLike | None = None
) -> dict[str, BacktestResult]:
    """The results cut to `[start, end]` (UTC, inclusive; None = open), each starting from its equity at `start`.

    For reports of one day or week of a long run: the metrics then describe that period only. The account value
    just before the period (or the initial cash when the period starts with the run) is the starting capital.
    """
    lo = None if start is None else to_utc_timestamp(start, "start")
    hi = None if end is None else to_utc_timestamp(end, "end")
    out: dict[str, BacktestResult] = {}
    for name, res in results.items():
        eq = res.equity.loc[lo:hi]
        before = res.equity[res.equity.index < lo] if lo is not None else res.equity.iloc[:0]
        start_cash = float(before.iloc[-1]) if len(before) else res.initial_cash
        times = pd.DatetimeIndex(res.fills["timestamp"]) if len(res.fills) else pd.DatetimeIndex([], tz="UTC")
        keep = np.ones(len(times), dtype=bool)
        if lo is not None:
            keep &= times >= lo
        if hi is not None:
            keep &= times <= hi
        out[name] = BacktestResult(
            agent=res.agent,
            equity=eq,
            fills=res.fills.loc[keep].reset_index(drop=True),
            exposure=res.exposure.loc[lo:hi],
            initial_cash=start_cash,
            meta={
                **res.meta,
                "period": (None if lo is None else lo.isoformat(), None if hi is None else hi.isoformat()),
            },
        )
    return out


def arena_leaderboard(store: ArenaStore, run_id: str, flip_flop_bars: int | None = None) -> pd.DataFrame:
    """One row per agent, ranked by account value."""
    run = store.get_run(run_id)
    if flip_flop_bars is None:
        flip_flop_bars = int(run.config.get("rounds", {}).get("flip_flop_bars", 6))
    results = results_from_store(store, run_id)
    decisions = store.decisions_frame(run_id)
    calls = store.llm_calls_frame(run_id)
    rows = []
    for a in store.run_agents(run_id):
        res = results[a.agent]
        m = res.metrics if len(res.equity) else {}
        trades = res.trades
        dec = decisions[(decisions["agent"] == a.agent) & ~decisions["source"].isin(["invalidation", "breaker"])]
        cl = calls[calls["agent"] == a.agent]
        fills = res.fills
        entries = fills[fills["kind"] == "entry"]
        value = res.final_equity
        pnl = value - a.initial_cash
        cost = float(cl["cost_usd"].sum()) if len(cl) else 0.0
        latencies = dec.drop_duplicates("round_no")["latency_s"].to_numpy(np.float64)
        if len(cl):
            latencies = cl["latency_s"].to_numpy(np.float64)
        hold_h = (
            (trades["exit_time"] - trades["entry_time"]).dt.total_seconds() / 3600.0 if len(trades) else pd.Series([])
        )
        rows.append(
            {
                "agent": a.agent,
                "kind": a.kind,
                "model": a.model,
                "account_value": value,
                "return_pct": pnl / a.initial_cash * 100.0,
                "pnl": pnl,
                "fees": float(fills["fee"].sum()) if len(fills) else 0.0,
                "win_rate": m.get("win_rate", math.nan),
                "biggest_win": float(trades["pnl"].max()) if len(trades) else math.nan,
                "biggest_loss": float(trades["pnl"].min()) if len(trades) else math.nan,
                "sharpe": m.get("sharpe", math.nan),
                "max_drawdown": m.get("max_drawdown", math.nan),
                "trades": len(trades),
                "hold_pct": _share(dec["action"], "hold"),
                "long_pct": _share(dec["action"], "enter_long"),
                "short_pct": _share(dec["action"], "enter_short"),
                "avg_leverage": float(entries["leverage"].mean()) if len(entries) else math.nan,
                "avg_confidence": float(dec["confidence"].astype(float).mean())
                if dec["confidence"].notna().any()
                else math.nan,
                "avg_hold_hours": float(hold_h.mean()) if len(hold_h) else math.nan,
                "median_hold_hours": float(hold_h.median()) if len(hold_h) else math.nan,
                "invalid_output_rate": _invalid_rate(cl),
                "risk_clamps": int(dec["clamped"].fillna(False).astype(bool).sum()),
                "risk_rejections": int((dec["approved"] == False).sum()),  # noqa: E712 - a nullable column
                "flip_flops": flip_flops(trades, res.equity.index, flip_flop_bars),
                "llm_cost_usd": cost,
                "net_return_pct": (pnl - cost) / a.initial_cash * 100.0,
                "latency_p50": _pct(latencies, 50),
                "latency_p95": _pct(latencies, 95),
                "latency_p99": _pct(latencies, 99),
                "cutoff_overlap": bool(a.cutoff_overlap),
            }
        )
    if not rows:
        return ARENA_BOARD.empty()
    board = pd.DataFrame(rows).sort_values(ARENA_BOARD.rank_by, ascending=False, kind="stable")
    board = board.reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reindex(columns=ARENA_BOARD.names)


def _share(actions: pd.Series, value: str) -> float:
    return float((actions == value).mean() * 100.0) if len(actions) else math.nan


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else math.nan


def _invalid_rate(calls: pd.DataFrame) -> float:
    if not len(calls):
        return math.nan
    bad = (~calls["parse_ok"].astype(bool)) | (calls["error"].fillna("") != "")
    return float(bad.mean())


def flip_flops(trades: pd.DataFrame, index: pd.Index, within_bars: int) -> int:
    """Entries opposite to the previous trade on the same coin, made within `within_bars` bars of its exit."""
    if len(trades) < 2 or len(index) < 2:
        return 0
    bar = index[1] - index[0]
    count = 0
    for _, g in trades.sort_values("entry_time").groupby("symbol"):
        rows = g.to_dict("records")
        for prev, tr in itertools.pairwise(rows):
            if tr["direction"] != prev["direction"] and tr["entry_time"] - prev["exit_time"] <= within_bars * bar:
                count += 1
    return count


def export_leaderboard(board: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write the leaderboard as CSV and JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "leaderboard.csv", "json": out / "leaderboard.json"}
    board.to_csv(paths["csv"], index=False)
    board.to_json(paths["json"], orient="records", indent=2)
    return paths
