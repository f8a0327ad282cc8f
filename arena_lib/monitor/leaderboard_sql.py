"""The arena leaderboard aggregated in SQL, for the monitor: the same board as the pandas standings, at page speed.

Why this sits beside `arena_lib.arena.standings`: the standings load every fill, decision and equity row of a run
into pandas, which suits a report at the end of a run and not a page that must answer within about two seconds on
a store with millions of fills. Here each statement aggregates (GROUP BY, correlated index look-ups) in the
database, so pandas sees per-agent summaries and, for the Sharpe, one number per agent and round. The columns, their
order and units are `arena_lib.analytics.columns.ARENA_BOARD`'s, as the standings' are; the tests hold the two
boards' numbers to each other on SQLite, and they were once checked the same way on a PostgreSQL 15 server by hand
(the test suite has no server). Nothing here writes.

SQLite notes, measured with benchmarks/monitor_store.py: its window functions cost about ten times a primary-key
self-join or an index walk per row, so trades are paired by walking the (run_id, agent, seq) index; an index on
fills (run_id, agent, symbol, seq) makes each walk one seek.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, and_, case, cast, func, null, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from arena_lib.analytics.columns import ARENA_BOARD
from arena_lib.analytics.metrics import DAYS_PER_YEAR, max_drawdown, sharpe
from arena_lib.arena.store import ArenaStore
from arena_lib.core.types import Action, FillKind
from arena_lib.data.resample import TimeLike
from arena_lib.monitor.store import (
    AGENTS,
    CALLS,
    DECISIONS,
    EQUITY,
    FILLS,
    INVALIDATION_SOURCE,
    ROUNDS,
    RUNS,
    RoundWindow,
    account_values,
    in_window,
    period_bounds,
    positive_int,
    round_window,
)

__all__ = ["NOT_COMPUTED_IN_SQL", "leaderboard"]

_ENTRY = FillKind.ENTRY.value
_YEAR_NS = DAYS_PER_YEAR * 86_400e9
_HOUR_NS = 3_600e9

NOT_COMPUTED_IN_SQL = ("median_hold_hours",)
"""Leaderboard columns left NaN: a median needs every trade's duration in memory (no portable SQL median)."""


def leaderboard(
    store: ArenaStore,
    run_id: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    latency_rounds: int | None = 2000,
    flip_flop_bars: int | None = None,
    curve_rows: int | None = 500_000,
    flip_flops: bool = True,
) -> pd.DataFrame:
    """One row per agent ranked by account value, with the columns of `ARENA_BOARD`, aggregated in SQL.

    The figures follow `arena_lib.arena.standings.arena_leaderboard` (and, with a period, `period_results`): the
    equity rows give the account value and, through `arena_lib.analytics.metrics`, the Sharpe (per-bar returns,
    annualised by the median bar spacing) and max drawdown; round trips are paired from the fills in SQL exactly
    as `arena_lib.analytics.trades.trades_from_fills` pairs them; reliability columns come from the decisions
    (engine-made invalidation exits excluded) and the model calls. A period `[start, end]` (UTC, inclusive)
    measures returns from the account value just before `start`.

    Differences, all documented: `median_hold_hours` is NaN (see `NOT_COMPUTED_IN_SQL`); latency percentiles
    cover the period's last `latency_rounds` rounds (None: all), a bounded fetch of one number per agent-turn; the
    periods-per-year of the Sharpe uses the median spacing of the period's first 1,001 bar closes; above
    `curve_rows` rounds the Sharpe and drawdown use every k-th round (see `_curve_stats`); `avg_leverage` is the
    mean leverage of entry fills, as in the pandas standings;
    `flip_flops=False` leaves that column NaN and saves about half of the trade pairing's cost.

    Cost: every fill, decision and equity row of the period is visited once or a few times in the database
    (seconds for a million fills on SQLite; see benchmarks/monitor_store.py). Nothing changes between two
    committed rounds, so callers should cache the result keyed by `last_round(store, run_id)`.
    """
    lo, hi = period_bounds(start, end)
    if latency_rounds is not None:
        positive_int(latency_rounds, "latency_rounds")
    roster = AGENTS.c
    with store.engine.connect() as conn:
        agents = conn.execute(
            select(roster.agent, roster.kind, roster.model, roster.initial_cash, roster.cutoff_overlap)
            .where(roster.run_id == run_id)
            .order_by(roster.agent)
        ).all()
        if not agents:
            return ARENA_BOARD.empty()
        names = [a.agent for a in agents]
        window = round_window(conn, run_id, lo, hi)
        if flip_flop_bars is None:
            flip_flop_bars = _flip_flop_bars(conn, run_id)
        first_gap, median_gap = _bar_spacing(conn, run_id, window)
        ppy = _YEAR_NS / median_gap if median_gap else math.nan
        values = account_values(conn, run_id, window)
        curves = _curve_stats(conn, run_id, window, names, ppy, curve_rows)
        fills = _fill_stats(conn, run_id, lo, hi)
        trade_gap = None if first_gap is None else flip_flop_bars * first_gap
        trades = _trade_stats(conn, run_id, lo, hi, trade_gap if flip_flops else None)
        decisions = _decision_stats(conn, run_id, window, names)
        calls = _call_stats(conn, run_id, window)
        latencies = _latencies(conn, run_id, window, latency_rounds, names, llm_agents=list(calls))
    rows = []
    for a in agents:
        last_eq, before_eq = values.get(a.agent, (None, None))
        start_cash = float(before_eq) if before_eq is not None else float(a.initial_cash)
        value = float(last_eq) if last_eq is not None else start_cash
        pnl = value - start_cash
        tr = trades.get(a.agent)
        n_trades = int(tr["trades"]) if tr else 0
        dec = decisions.get(a.agent, {})
        n_dec = int(dec.get("n") or 0)
        call = calls.get(a.agent, {})
        cost = float(call.get("cost") or 0.0)
        lat = latencies.get(a.agent, np.empty(0))
        fill = fills.get(a.agent, {})
        rows.append(
            {
                "agent": a.agent,
                "kind": a.kind,
                "model": a.model,
                "account_value": value,
                "return_pct": pnl / start_cash * 100.0,
                "pnl": pnl,
                "fees": float(fill.get("fees") or 0.0),
                "win_rate": tr["wins"] / n_trades if tr and n_trades else math.nan,
                "biggest_win": _float(tr["best"]) if tr else math.nan,
                "biggest_loss": _float(tr["worst"]) if tr else math.nan,
                "sharpe": curves.get(a.agent, (math.nan, math.nan))[0],
                "max_drawdown": curves.get(a.agent, (math.nan, math.nan))[1],
                "trades": n_trades,
                "hold_pct": _share(dec.get("hold"), n_dec),
                "long_pct": _share(dec.get("long"), n_dec),
                "short_pct": _share(dec.get("short"), n_dec),
                "avg_leverage": _float(fill.get("avg_leverage")),
                "avg_confidence": _float(dec.get("confidence")),
                "avg_hold_hours": _float(tr["hold_ns"]) / _HOUR_NS if tr else math.nan,
                "median_hold_hours": math.nan,
                "invalid_output_rate": call["bad"] / call["n"] if call.get("n") else math.nan,
                "risk_clamps": int(dec.get("clamps") or 0),
                "risk_rejections": int(dec.get("rejections") or 0),
                "flip_flops": (int(tr["flips"] or 0) if tr and trade_gap is not None else 0)
                if flip_flops
                else math.nan,
                "llm_cost_usd": cost,
                "net_return_pct": (pnl - cost) / start_cash * 100.0,
                "latency_p50": _percentile(lat, 50),
                "latency_p95": _percentile(lat, 95),
                "latency_p99": _percentile(lat, 99),
                "cutoff_overlap": bool(a.cutoff_overlap),
            }
        )
    board = pd.DataFrame(rows).sort_values(ARENA_BOARD.rank_by, ascending=False, kind="stable")
    board = board.reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reindex(columns=ARENA_BOARD.names)


def _flip_flop_bars(conn: Connection, run_id: str) -> int:
    config = conn.execute(select(RUNS.c.config).where(RUNS.c.run_id == run_id)).scalar()
    rounds = config.get("rounds", {}) if isinstance(config, dict) else {}
    return int(rounds.get("flip_flop_bars", 6))


def _bar_spacing(conn: Connection, run_id: str, window: RoundWindow) -> tuple[int | None, float | None]:
    """The first and the median spacing (ns) of the period's bar closes (its first 1,001 rounds)."""
    if window.first is None:
        return None, None
    r = ROUNDS.c
    stmt = select(r.ts).where(r.run_id == run_id, in_window(r.round_no, window)).order_by(r.round_no).limit(1001)
    ts = np.asarray(conn.execute(stmt).scalars().all(), dtype=np.int64)
    if len(ts) < 2:
        return None, None
    gaps = np.diff(ts)
    median = float(np.median(gaps))
    return int(gaps[0]), (median if median > 0 else None)


def _curve_stats(
    conn: Connection, run_id: str, window: RoundWindow, agents: list[str], ppy: float, curve_rows: int | None
) -> dict[str, tuple[float, float]]:
    """Per agent: (Sharpe, max drawdown) of the period's equity rows, by `arena_lib.analytics.metrics` itself.

    Each agent's equity column is read (one number per round; at most `curve_rows` of them, else every k-th
    round, which makes the Sharpe one of k-bar returns) through the DBAPI cursor: in SQLite that costs a third of
    the window functions a running peak and a previous row would take in SQL, and the figures are then exactly
    those of the standings.
    """
    if window.first is None or window.last is None:
        return {}
    e = EQUITY.c
    n = window.last - window.first + 1
    step = 1 if curve_rows is None or n <= curve_rows else math.ceil(n / curve_rows)
    out: dict[str, tuple[float, float]] = {}
    for agent in agents:
        stmt = select(e.equity).where(e.run_id == run_id, e.agent == agent, in_window(e.round_no, window))
        if step > 1:
            stmt = stmt.where(or_((e.round_no - window.first) % step == 0, e.round_no == window.last))
        values = np.fromiter((r[0] for r in _fetch_rows(conn, stmt.order_by(e.round_no))), dtype=np.float64)
        if len(values):
            curve = pd.Series(values)
            out[agent] = (sharpe(curve, ppy / step), max_drawdown(curve))
    return out


def _fetch_rows(conn: Connection, stmt: Select[Any]) -> list[Any]:
    """All rows of `stmt` as the DBAPI returns them (plain tuples), for the one large read of this module.

    SQLAlchemy's Row objects cost several times the database's own work on a million rows. The statement is
    compiled for the connection's dialect and bound positionally or by name as that dialect's driver expects, so
    this stays portable; its parameters must be plain values (no expanding IN).
    """
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = tuple(params[k] for k in compiled.positiontup or ()) if compiled.positional else params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _fill_conditions(run_id: str, lo: int | None, hi: int | None) -> list[ColumnElement[bool]]:
    f = FILLS.c
    conds: list[ColumnElement[bool]] = [f.run_id == run_id]
    if lo is not None:
        conds.append(f.ts >= lo)
    if hi is not None:
        conds.append(f.ts <= hi)
    return conds


def _fill_stats(conn: Connection, run_id: str, lo: int | None, hi: int | None) -> dict[str, dict[str, Any]]:
    f = FILLS.c
    stmt = (
        select(
            f.agent,
            func.sum(f.fee).label("fees"),
            func.avg(case((f.kind == _ENTRY, f.leverage))).label("avg_leverage"),
        )
        .where(*_fill_conditions(run_id, lo, hi))
        .group_by(f.agent)
    )
    return {row.agent: row._asdict() for row in conn.execute(stmt)}


def _trade_stats(
    conn: Connection, run_id: str, lo: int | None, hi: int | None, flip_gap_ns: int | None
) -> dict[str, dict[str, Any]]:
    """Round trips per agent, paired in SQL as `trades_from_fills` pairs them, with their flip-flops.

    `trades_from_fills` keeps the latest entry per symbol and closes it at the next exit, so an exit closes a
    trade exactly when the previous fill of its agent and symbol (by `seq`, within the period) is an entry. That
    previous fill is found by walking the (run_id, agent, seq) index back from the exit (a correlated subquery
    with LIMIT 1), which SQLite runs in a fraction of the time of a LAG window over the fills. A flip-flop is a
    trade entered against the direction of the trade just before it on the same symbol, within `flip_gap_ns` of
    that trade's exit: two more steps back, the fill before the entry must be an exit within the gap and the one
    before that its entry (the engine never adds to an open position, so nothing else sits between two trades).
    """
    x, e, x1, e1, walk = (FILLS.alias(n) for n in ("x", "e", "x1", "e1", "walk"))

    def previous(fill: Any) -> ColumnElement[bool]:
        w = walk.c
        seq = (
            select(w.seq)
            .where(w.run_id == run_id, w.agent == fill.c.agent, w.symbol == fill.c.symbol, w.seq < fill.c.seq)
            .order_by(w.seq.desc())
            .limit(1)
            .correlate(fill)
            .scalar_subquery()
        )
        return seq

    def fill_before(later: Any, earlier: Any, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
        c = earlier.c
        return and_(c.run_id == run_id, c.agent == later.c.agent, c.seq == previous(later), *conds)

    conds = [x.c.run_id == run_id, x.c.kind != _ENTRY, e.c.kind == _ENTRY]
    # The entry is in the period too; `+ 0` keeps planners from reaching it through an index on ts (it is found
    # by its seq, and a ts range per exit would rescan the period's fills for each one).
    conds += [] if lo is None else [x.c.ts >= lo, e.c.ts + 0 >= lo]
    conds += [] if hi is None else [x.c.ts <= hi]
    pnl = x.c.realized_pnl - (e.c.fee + x.c.fee) - x.c.funding
    stmt = select(
        x.c.agent,
        func.count().label("trades"),
        func.sum(case((pnl > 0, 1), else_=0)).label("wins"),
        func.max(pnl).label("best"),
        func.min(pnl).label("worst"),
        func.avg(cast(x.c.ts - e.c.ts, Float)).label("hold_ns"),
    )
    # LEFT JOINs (filtered to matches in WHERE) keep the exits as the outer loop: SQLite never reorders them, and
    # with an index on fills.ts it would otherwise drive from the entries and rescan the exits for each one.
    joined: Any = x.outerjoin(e, fill_before(x, e))
    if flip_gap_ns is not None:
        # The previous trade's exit (x1), only when it is an exit within the gap, then its entry (e1).
        exit_before = fill_before(e, x1, x1.c.kind != _ENTRY, e.c.ts - x1.c.ts <= flip_gap_ns)
        entry_before = fill_before(x1, e1, e1.c.kind == _ENTRY, *([] if lo is None else [e1.c.ts + 0 >= lo]))
        joined = joined.outerjoin(x1, exit_before).outerjoin(e1, entry_before)
        flip = and_(e1.c.seq.is_not(None), e1.c.side != e.c.side)
        stmt = stmt.add_columns(func.sum(case((flip, 1), else_=0)).label("flips"))
    else:
        stmt = stmt.add_columns(null().label("flips"))
    stmt = stmt.select_from(joined).where(*conds).group_by(x.c.agent)
    return {row.agent: row._asdict() for row in conn.execute(stmt)}


def _decision_stats(conn: Connection, run_id: str, window: RoundWindow, agents: list[str]) -> dict[str, dict[str, Any]]:
    if window.first is None:
        return {}
    d = DECISIONS.c

    def count(cond: ColumnElement[bool]) -> Any:
        return func.sum(case((cond, 1), else_=0))

    stmt = (
        select(
            d.agent,
            func.count().label("n"),
            count(d.action == Action.HOLD.value).label("hold"),
            count(d.action == Action.ENTER_LONG.value).label("long"),
            count(d.action == Action.ENTER_SHORT.value).label("short"),
            func.avg(d.confidence).label("confidence"),
            count(d.clamped.is_(True)).label("clamps"),
            count(d.approved.is_(False)).label("rejections"),
        )
        .where(d.run_id == run_id, d.agent.in_(agents), d.source != INVALIDATION_SOURCE, in_window(d.round_no, window))
        .group_by(d.agent)
    )
    return {row.agent: row._asdict() for row in conn.execute(stmt)}


def _call_stats(conn: Connection, run_id: str, window: RoundWindow) -> dict[str, dict[str, Any]]:
    if window.first is None:
        return {}
    c = CALLS.c
    bad = or_(c.parse_ok.is_(None), c.parse_ok.is_(False), func.coalesce(c.error, "") != "")
    stmt = (
        select(
            c.agent,
            func.count().label("n"),
            func.sum(c.cost_usd).label("cost"),
            func.sum(case((bad, 1), else_=0)).label("bad"),
        )
        .where(c.run_id == run_id, in_window(c.round_no, window))
        .group_by(c.agent)
    )
    return {row.agent: row._asdict() for row in conn.execute(stmt)}


def _latencies(
    conn: Connection,
    run_id: str,
    window: RoundWindow,
    latency_rounds: int | None,
    agents: list[str],
    llm_agents: Sequence[str],
) -> dict[str, np.ndarray]:
    """Seconds per turn over the window's last `latency_rounds` rounds: model calls, else one per decision round."""
    if window.first is None or window.last is None:
        return {}
    first = window.first if latency_rounds is None else max(window.first, window.last - latency_rounds + 1)
    recent = RoundWindow(None, first, window.last)
    out: dict[str, list[float]] = {}
    c = CALLS.c
    calls = select(c.agent, c.latency_s).where(c.run_id == run_id, in_window(c.round_no, recent))
    for agent, latency in conn.execute(calls):
        out.setdefault(agent, []).append(float(latency))
    d = DECISIONS.c
    turns = (
        select(d.agent, func.max(d.latency_s))
        .where(
            d.run_id == run_id,
            d.agent.in_([a for a in agents if a not in llm_agents]),
            d.source != INVALIDATION_SOURCE,
            in_window(d.round_no, recent),
        )
        .group_by(d.agent, d.round_no)
    )
    for agent, latency in conn.execute(turns):
        out.setdefault(agent, []).append(float(latency))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _share(count: Any, total: int) -> float:
    return float(count or 0) / total * 100.0 if total else math.nan


def _percentile(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else math.nan
