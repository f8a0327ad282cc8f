"""Read-only queries over the arena store for the monitor; every statement aggregates or is bounded in SQL.

Why this sits beside `arena_lib.arena.standings`: the standings load every fill, decision and equity row of a run
into pandas, which suits a report at the end of a run and not a page that must answer within about two seconds on
a store with millions of fills. Here each statement aggregates (GROUP BY, correlated index look-ups, one window
function) or is bounded (LIMIT, a window of rounds) in the database, so pandas sees per-agent summaries, pages,
downsampled curves and, for the Sharpe, one number per agent and round. The statements are SQLAlchemy Core over
`ArenaStore.engine` and use only what SQLite (3.25 or later) and PostgreSQL share: the tests hold them to the
pandas standings on SQLite, and they were once checked the same way on a PostgreSQL 15 server by hand (the test
suite has no server). Nothing here writes.

SQLite notes, measured with benchmarks/monitor_store.py: its window functions cost about ten times a primary-key
self-join or an index walk per row, so trades are paired by walking the (run_id, agent, seq) index; an index on
fills (run_id, agent, symbol, seq) makes each walk one seek.

Conventions: the store keeps epoch-ns integers; they come back as UTC pandas Timestamps. An unknown run id reads
as a run with no rows yet (empty frames with the documented columns, never an exception), because a dashboard may
ask about a run removed between two refreshes.

This module is longer than the usual 400 lines on purpose: it is the one contract between the store and the
monitor's pages (one function per page element), and its functions share the round-window and typing helpers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from typing import cast as cast_type

import numpy as np
import pandas as pd
from sqlalchemy import Float, and_, case, cast, event, func, null, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from arena_lib.analytics.metrics import DAYS_PER_YEAR, max_drawdown, sharpe
from arena_lib.arena import schema as t
from arena_lib.arena.standings import COLUMNS
from arena_lib.arena.store import DB_URL_ENV, ArenaStore, default_db_url, redact_url
from arena_lib.core.types import Action, FillKind
from arena_lib.data.resample import TimeLike, to_utc_timestamp

_RUNS = t.RunRow.__table__
_AGENTS = t.RunAgentRow.__table__
_ACCOUNTS = t.AccountRow.__table__
_POSITIONS = t.PositionRow.__table__
_ROUNDS = t.RoundRow.__table__
_SNAPSHOTS = t.SnapshotRow.__table__
_PROMPTS = t.PromptRow.__table__
_CALLS = t.LLMCallRow.__table__
_DECISIONS = t.DecisionRow.__table__
_FILLS = t.FillRow.__table__
_EQUITY = t.EquityRow.__table__

_ENTRY = FillKind.ENTRY.value
_INVALIDATION = "invalidation"  # decisions the engine made when an exit plan's invalidation fired
_YEAR_NS = DAYS_PER_YEAR * 86_400e9
_HOUR_NS = 3_600e9
_SQLITE_MMAP_BYTES = 1 << 30  # address space only: pages are read as they are touched
_SQLITE_CACHE_KIB = 65_536
_NAT = cast_type(pd.Timestamp, pd.NaT)  # missing times are NaT, which pandas types apart from Timestamp

NOT_COMPUTED_IN_SQL = ("median_hold_hours",)
"""Leaderboard columns left NaN: a median needs every trade's duration in memory (no portable SQL median)."""


def _schema(spec: str) -> dict[str, str | None]:
    """Columns and dtypes from "name name:dtype ...": `_schema("a b:float64") == {"a": None, "b": "float64"}`."""
    return {name: (dtype or None) for name, _, dtype in (item.partition(":") for item in spec.split())}


# Each frame's columns in order, "name:dtype" ("utc": epoch ns to UTC Timestamps; no dtype: as the database
# returns it). Empty results keep these columns and dtypes.
_RUN_SCHEMA = _schema(
    "run_id mode status created_at:utc start end timeframe symbols agents:int64 last_round:int64 last_bar:utc message"
)
_AGENT_SCHEMA = _schema(
    "agent kind provider model prompt_version training_cutoff cutoff_overlap:bool initial_cash:float64"
)
_CURVE_SCHEMA = _schema("ts:utc agent equity:float64 drawdown:float64 return_pct:float64 round_no:int64")
_POSITION_SCHEMA = _schema(
    "agent symbol side quantity:float64 entry_price:float64 mark:float64 notional:float64 "
    "unrealized_pnl:float64 leverage:float64 margin:float64 liquidation_price:float64 stop_loss:float64 "
    "take_profit:float64 invalidation opened_at:utc"
)
_TRADE_SCHEMA = _schema(
    "ts:utc agent symbol side kind quantity:float64 price:float64 fee:float64 realized_pnl:float64 "
    "leverage:float64 note round_no:int64"
)
_DECISION_ROUND_SCHEMA = _schema("round_no:int64 ts:utc actions rejected:int64 clamped:int64 parse_ok:boolean")
_DECISION_SCHEMA = _schema(
    "symbol source action size:float64 size_unit leverage:float64 stop_loss:float64 take_profit:float64 "
    "invalidation confidence:float64 approved:boolean clamped:bool verdict reason"
)
_EXPOSURE_SCHEMA = _schema("agent symbol side notional:float64 signed_notional:float64 share_of_equity:float64")


class StoreUnavailableError(RuntimeError):
    """The arena store cannot be read (corrupt file, unreachable server, missing driver)."""


@dataclass
class RoundDetail:
    """Everything one agent saw and did in one round: the prompt, the raw answer, the parsed decisions and verdicts."""

    run_id: str
    agent: str
    round_no: int
    ts: pd.Timestamp
    prompt_version: str
    system_prompt: str = field(repr=False)
    user_prompt: str = field(repr=False)
    raw_response: str = field(repr=False)
    parse_ok: bool | None  # None: the agent is not a language model
    problems: list[str]
    error: str
    latency_s: float
    cost_usd: float
    decisions: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class LastRound:
    """The newest committed round: which bar it decided on and when it was written (wall clock)."""

    run_id: str
    round_no: int
    bar_close: pd.Timestamp
    committed_at: pd.Timestamp
    wall_s: float


@dataclass(frozen=True)
class _Window:
    """Rounds of a period: `first`..`last` fall in [start, end]; `before` is the last round before start."""

    before: int | None
    first: int | None
    last: int | None


# -- opening the store --------------------------------------------------------------------------------------------
def open_store(url: str | None = None) -> ArenaStore:
    """The store at `url` (None: `default_db_url()`), probed with a cheap SELECT.

    A missing SQLite file becomes an empty store, as on a new install (`ArenaStore` creates the tables). A file
    that is not a database, an unreachable server or a missing driver raises `StoreUnavailableError`.
    """
    target = url or default_db_url()
    try:
        store = ArenaStore(target)
    except (SQLAlchemyError, OSError, ImportError) as exc:
        raise StoreUnavailableError(_unavailable(target, exc)) from exc
    if store.engine.dialect.name == "sqlite":
        event.listen(store.engine, "connect", _sqlite_reader_settings)
        store.engine.dispose()  # pooled connections opened before the listener lack the settings
    try:
        with store.engine.connect() as conn:
            conn.execute(select(_RUNS.c.run_id).limit(1)).all()
    except SQLAlchemyError as exc:
        store.engine.dispose()
        raise StoreUnavailableError(_unavailable(target, exc)) from exc
    return store


def _sqlite_reader_settings(dbapi_conn: Any, _record: Any) -> None:
    """Read the file through memory-mapped I/O with a larger page cache: the monitor's scans visit rows in index
    order, which on a store written round by round jumps between pages; both settings belong to this connection
    only and change nothing in the file."""
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    cursor.close()


def _unavailable(url: str, exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return (
        f"cannot read the arena store at {redact_url(url)}: {type(cause).__name__}: {cause}. "
        f"Point the monitor at a readable store with the {DB_URL_ENV} environment variable "
        "(a SQLAlchemy URL such as sqlite:////abs/path/arena.db or postgresql+psycopg://user@host/db)."
    )


# -- runs and agents ----------------------------------------------------------------------------------------------
def list_runs(store: ArenaStore, *, limit: int | None = None) -> pd.DataFrame:
    """Runs, newest first, with their agent count and the bar close of their last committed round."""
    runs = _RUNS.c
    agents = select(func.count()).select_from(_AGENTS).where(_AGENTS.c.run_id == runs.run_id).scalar_subquery()
    last_bar = (
        select(_ROUNDS.c.ts)
        .where(_ROUNDS.c.run_id == runs.run_id, _ROUNDS.c.round_no == runs.last_round)
        .scalar_subquery()
    )
    stmt = select(
        runs.run_id,
        runs.mode,
        runs.status,
        runs.created_at,
        runs.start,
        runs.end,
        runs.timeframe,
        runs.symbols,
        agents.label("agents"),
        runs.last_round,
        last_bar.label("last_bar"),
        runs.message,
    ).order_by(runs.created_at.desc(), runs.run_id.desc())
    if limit is not None:
        stmt = stmt.limit(_positive(limit, "limit"))
    with store.engine.connect() as conn:
        frame = _frame(conn.execute(stmt).all(), _RUN_SCHEMA)
    frame["symbols"] = [", ".join(s) if isinstance(s, list) else (s or "") for s in frame["symbols"]]
    for col in ("start", "end"):
        frame[col] = pd.DatetimeIndex([_maybe_utc(v) for v in frame[col]], dtype="datetime64[ns, UTC]")
    return frame


def run_agents(store: ArenaStore, run_id: str) -> pd.DataFrame:
    """The agents of a run with their identity and the flags the leaderboard shows, by name."""
    a = _AGENTS.c
    stmt = select(*(a[c] for c in _AGENT_SCHEMA)).where(a.run_id == run_id).order_by(a.agent)
    with store.engine.connect() as conn:
        return _frame(conn.execute(stmt).all(), _AGENT_SCHEMA)


def fill_count(store: ArenaStore, run_id: str) -> int:
    """How many fills a run has (a COUNT in the database)."""
    stmt = select(func.count()).select_from(_FILLS).where(_FILLS.c.run_id == run_id)
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def last_round(store: ArenaStore, run_id: str | None = None) -> LastRound | None:
    """The last committed round of `run_id`, or of whichever run committed most recently (None: no round yet)."""
    r, runs = _ROUNDS.c, _RUNS.c
    stmt = select(r.run_id, r.round_no, r.ts, r.wall_started, r.wall_s).join_from(
        _ROUNDS, _RUNS, and_(runs.run_id == r.run_id, runs.last_round == r.round_no)
    )
    if run_id is not None:
        stmt = stmt.where(r.run_id == run_id)
    stmt = stmt.order_by(r.wall_started.desc()).limit(1)
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return LastRound(
        run_id=row.run_id,
        round_no=int(row.round_no),
        bar_close=_stamp(row.ts),
        committed_at=_stamp(int(row.wall_started) + round(float(row.wall_s) * 1e9)),
        wall_s=float(row.wall_s),
    )


# -- the leaderboard ----------------------------------------------------------------------------------------------
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
    """One row per agent ranked by account value, with `arena_lib.arena.standings.COLUMNS`, aggregated in SQL.

    The figures follow `arena_leaderboard` (and, with a period, `period_results`): the equity rows give the
    account value and, through `arena_lib.analytics.metrics`, the Sharpe (per-bar returns, annualised by the median
    bar spacing) and max drawdown; round trips are paired from the fills in SQL exactly as `trades_from_fills`
    pairs them; reliability columns come from the decisions (engine-made invalidation exits excluded) and the
    model calls. A period `[start, end]` (UTC, inclusive) measures returns from the account value just before
    `start`.

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
    lo, hi = _bounds(start, end)
    if latency_rounds is not None:
        _positive(latency_rounds, "latency_rounds")
    with store.engine.connect() as conn:
        agents = conn.execute(
            select(*(_AGENTS.c[c] for c in _AGENT_SCHEMA)).where(_AGENTS.c.run_id == run_id).order_by(_AGENTS.c.agent)
        ).all()
        if not agents:
            return pd.DataFrame(columns=COLUMNS)
        names = [a.agent for a in agents]
        window = _round_window(conn, run_id, lo, hi)
        if flip_flop_bars is None:
            flip_flop_bars = _flip_flop_bars(conn, run_id)
        first_gap, median_gap = _bar_spacing(conn, run_id, window)
        ppy = _YEAR_NS / median_gap if median_gap else math.nan
        values = _account_values(conn, run_id, window)
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
    board = pd.DataFrame(rows).sort_values("account_value", ascending=False, kind="stable").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reindex(columns=COLUMNS)


def _round_window(conn: Connection, run_id: str, lo: int | None, hi: int | None) -> _Window:
    """The rounds of [lo, hi] (epoch ns, inclusive) and the last round before lo, from the small rounds table."""
    r = _ROUNDS.c
    inside = [
        cond for cond in (None if lo is None else r.ts >= lo, None if hi is None else r.ts <= hi) if cond is not None
    ]
    in_period = and_(*inside) if inside else None
    picked = r.round_no if in_period is None else case((in_period, r.round_no))
    before = null() if lo is None else func.max(case((r.ts < lo, r.round_no)))
    row = conn.execute(
        select(before, func.min(picked), func.max(picked)).select_from(_ROUNDS).where(r.run_id == run_id)
    ).one()
    return _Window(*(None if v is None else int(v) for v in row))


def _in_window(round_no: Any, window: _Window) -> ColumnElement[bool]:
    return round_no.between(window.first, window.last)


def _flip_flop_bars(conn: Connection, run_id: str) -> int:
    config = conn.execute(select(_RUNS.c.config).where(_RUNS.c.run_id == run_id)).scalar()
    rounds = config.get("rounds", {}) if isinstance(config, dict) else {}
    return int(rounds.get("flip_flop_bars", 6))


def _bar_spacing(conn: Connection, run_id: str, window: _Window) -> tuple[int | None, float | None]:
    """The first and the median spacing (ns) of the period's bar closes (its first 1,001 rounds)."""
    if window.first is None:
        return None, None
    r = _ROUNDS.c
    stmt = select(r.ts).where(r.run_id == run_id, _in_window(r.round_no, window)).order_by(r.round_no).limit(1001)
    ts = np.asarray(conn.execute(stmt).scalars().all(), dtype=np.int64)
    if len(ts) < 2:
        return None, None
    gaps = np.diff(ts)
    median = float(np.median(gaps))
    return int(gaps[0]), (median if median > 0 else None)


def _account_values(conn: Connection, run_id: str, window: _Window) -> dict[str, tuple[Any, Any]]:
    """Per agent: equity at the period's last round and just before it starts (None where there is none)."""
    a, e = _AGENTS.c, _EQUITY.c

    def equity_at_or_before(round_no: int | None) -> Any:
        if round_no is None:
            return null()
        return (
            select(e.equity)
            .where(e.run_id == a.run_id, e.agent == a.agent, e.round_no <= round_no)
            .order_by(e.round_no.desc())
            .limit(1)
            .scalar_subquery()
        )

    stmt = select(a.agent, equity_at_or_before(window.last), equity_at_or_before(window.before)).where(
        a.run_id == run_id
    )
    return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}


def _curve_stats(
    conn: Connection, run_id: str, window: _Window, agents: list[str], ppy: float, curve_rows: int | None
) -> dict[str, tuple[float, float]]:
    """Per agent: (Sharpe, max drawdown) of the period's equity rows, by `arena_lib.analytics.metrics` itself.

    Each agent's equity column is read (one number per round; at most `curve_rows` of them, else every k-th
    round, which makes the Sharpe one of k-bar returns) through the DBAPI cursor: in SQLite that costs a third of
    the window functions a running peak and a previous row would take in SQL, and the figures are then exactly
    those of the standings.
    """
    if window.first is None or window.last is None:
        return {}
    e = _EQUITY.c
    n = window.last - window.first + 1
    step = 1 if curve_rows is None or n <= curve_rows else math.ceil(n / curve_rows)
    out: dict[str, tuple[float, float]] = {}
    for agent in agents:
        stmt = select(e.equity).where(e.run_id == run_id, e.agent == agent, _in_window(e.round_no, window))
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
    f = _FILLS.c
    conds: list[ColumnElement[bool]] = [f.run_id == run_id]
    if lo is not None:
        conds.append(f.ts >= lo)
    if hi is not None:
        conds.append(f.ts <= hi)
    return conds


def _fill_stats(conn: Connection, run_id: str, lo: int | None, hi: int | None) -> dict[str, dict[str, Any]]:
    f = _FILLS.c
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
    x, e, x1, e1, walk = (_FILLS.alias(n) for n in ("x", "e", "x1", "e1", "walk"))

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


def _decision_stats(conn: Connection, run_id: str, window: _Window, agents: list[str]) -> dict[str, dict[str, Any]]:
    if window.first is None:
        return {}
    d = _DECISIONS.c

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
        .where(d.run_id == run_id, d.agent.in_(agents), d.source != _INVALIDATION, _in_window(d.round_no, window))
        .group_by(d.agent)
    )
    return {row.agent: row._asdict() for row in conn.execute(stmt)}


def _call_stats(conn: Connection, run_id: str, window: _Window) -> dict[str, dict[str, Any]]:
    if window.first is None:
        return {}
    c = _CALLS.c
    bad = or_(c.parse_ok.is_(None), c.parse_ok.is_(False), func.coalesce(c.error, "") != "")
    stmt = (
        select(
            c.agent,
            func.count().label("n"),
            func.sum(c.cost_usd).label("cost"),
            func.sum(case((bad, 1), else_=0)).label("bad"),
        )
        .where(c.run_id == run_id, _in_window(c.round_no, window))
        .group_by(c.agent)
    )
    return {row.agent: row._asdict() for row in conn.execute(stmt)}


def _latencies(
    conn: Connection,
    run_id: str,
    window: _Window,
    latency_rounds: int | None,
    agents: list[str],
    llm_agents: Sequence[str],
) -> dict[str, np.ndarray]:
    """Seconds per turn over the window's last `latency_rounds` rounds: model calls, else one per decision round."""
    if window.first is None or window.last is None:
        return {}
    first = window.first if latency_rounds is None else max(window.first, window.last - latency_rounds + 1)
    recent = _Window(None, first, window.last)
    out: dict[str, list[float]] = {}
    c = _CALLS.c
    calls = select(c.agent, c.latency_s).where(c.run_id == run_id, _in_window(c.round_no, recent))
    for agent, latency in conn.execute(calls):
        out.setdefault(agent, []).append(float(latency))
    d = _DECISIONS.c
    turns = (
        select(d.agent, func.max(d.latency_s))
        .where(
            d.run_id == run_id,
            d.agent.in_([a for a in agents if a not in llm_agents]),
            d.source != _INVALIDATION,
            _in_window(d.round_no, recent),
        )
        .group_by(d.agent, d.round_no)
    )
    for agent, latency in conn.execute(turns):
        out.setdefault(agent, []).append(float(latency))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


# -- curves and returns -------------------------------------------------------------------------------------------
def equity_curves(
    store: ArenaStore,
    run_id: str,
    *,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    max_points: int = 1500,
) -> pd.DataFrame:
    """Long frame (ts, agent, equity, drawdown, return_pct, round_no), at most `max_points` rows per agent.

    Downsampled in SQL in one pass over the equity rows (no join back, whose plan SQLite gets wrong without
    statistics): the period's first round is kept, and the later rounds fall into buckets of `step` consecutive
    rounds counted back from the last round, each shown by its last row; so the first and the last points are
    exact. `drawdown` is the fraction below the running peak of the period, and for a bucket it is the deepest
    drawdown inside the bucket, so downsampling never hides a trough. `return_pct` is measured from the account
    value just before `start` (or the initial cash), as the leaderboard's period returns are.
    """
    _positive(max_points, "max_points")
    if max_points < 2:
        raise ValueError(f"max_points={max_points} must be at least 2 (the first and the last point)")
    lo, hi = _bounds(start, end)
    with store.engine.connect() as conn:
        window = _round_window(conn, run_id, lo, hi)
        if window.first is None or window.last is None:
            return _frame([], _CURVE_SCHEMA)
        first, last = window.first, window.last
        step = max(1, math.ceil((last - first) / (max_points - 1)))
        e = _EQUITY.c
        peak = func.max(e.equity).over(partition_by=e.agent, order_by=e.round_no)
        ranked = (
            select(
                e.agent,
                e.round_no,
                e.ts,
                e.equity,
                case((e.round_no == first, -1), else_=(last - e.round_no) // step).label("bucket"),
                case((peak > 0, e.equity / peak - 1.0)).label("dd"),
            )
            .where(e.run_id == run_id, _in_window(e.round_no, window))
            .subquery("ranked")
        )
        r = ranked.c
        shown = or_(r.round_no == first, (last - r.round_no) % step == 0)  # each bucket's last row
        stmt = (
            select(
                func.max(case((shown, r.ts))).label("ts"),
                r.agent,
                func.max(case((shown, r.equity))).label("equity"),
                func.min(r.dd).label("drawdown"),
                func.max(r.round_no).label("round_no"),
            )
            .group_by(r.agent, r.bucket)
            .order_by(r.agent, func.max(r.round_no))
        )
        rows = conn.execute(stmt).all()
        bases = _bases(conn, run_id, window)
    frame = pd.DataFrame(rows, columns=["ts", "agent", "equity", "drawdown", "round_no"])
    frame["drawdown"] = frame["drawdown"].astype(np.float64).clip(-1.0, 0.0)
    base = frame["agent"].map(bases).astype(np.float64)
    frame["return_pct"] = (frame["equity"].astype(np.float64) / base - 1.0) * 100.0
    return _typed(frame, _CURVE_SCHEMA)


def _bases(conn: Connection, run_id: str, window: _Window) -> dict[str, float]:
    """Each agent's starting capital for the period: its equity just before it, else its initial cash."""
    values = _account_values(conn, run_id, window)
    cash = _pairs(conn.execute(select(_AGENTS.c.agent, _AGENTS.c.initial_cash).where(_AGENTS.c.run_id == run_id)))
    before = {agent: v[1] for agent, v in values.items()}
    return {a: float(initial if before.get(a) is None else before[a]) for a, initial in cash.items()}


def agent_returns(
    store: ArenaStore, run_id: str, *, max_points: int | None = 5000, portfolio: bool = False
) -> pd.DataFrame:
    """Per-bar simple returns of each agent's equity, wide: a UTC DatetimeIndex of bar closes, one column per agent.

    The run's first bar is measured from the initial cash. `max_points` keeps the most recent bars (None: all) so
    the horizon stays one bar, which VaR and correlations need; the fetch is bounded to those rows. A ruined
    account (equity at or below 0) returns 0 afterwards, as `metrics.simple_returns` defines. With `portfolio`,
    a column "portfolio" holds the return of all agents together: summed PnL over summed previous equity.
    """
    if max_points is not None:
        _positive(max_points, "max_points")
    e = _EQUITY.c
    empty = pd.DataFrame(index=pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="ts"))
    with store.engine.connect() as conn:
        window = _round_window(conn, run_id, None, None)
        if window.first is None or window.last is None:
            return empty
        cash = _pairs(conn.execute(select(_AGENTS.c.agent, _AGENTS.c.initial_cash).where(_AGENTS.c.run_id == run_id)))
        lo = window.first if max_points is None else max(window.first, window.last - max_points + 1)
        stmt = select(e.round_no, e.ts, e.agent, e.equity).where(
            e.run_id == run_id, e.agent.in_(list(cash)), e.round_no.between(max(window.first, lo - 1), window.last)
        )
        rows = conn.execute(stmt).all()
    if not rows:
        return empty
    long = pd.DataFrame(rows, columns=["round_no", "ts", "agent", "equity"])
    wide = long.pivot(index="round_no", columns="agent", values="equity").sort_index().astype(np.float64)
    ts = long.drop_duplicates("round_no").set_index("round_no")["ts"].reindex(wide.index)
    if portfolio:
        name = "portfolio" if "portfolio" not in wide.columns else "portfolio (all agents)"
        cash[name] = float(sum(cash.get(a, 0.0) for a in wide.columns))
        wide[name] = wide.sum(axis=1, min_count=1)
    initial = pd.Series({c: float(cash.get(c, np.nan)) for c in wide.columns}, dtype=np.float64)
    prev = wide.shift(1)
    if wide.index[0] == window.first:
        prev.iloc[0] = initial.reindex(wide.columns).to_numpy()
    alive = prev > 0
    returns = (wide / prev.where(alive) - 1.0).where(alive, 0.0).where(wide.notna())
    keep = wide.index >= lo
    out = returns.loc[keep]
    out.index = _utc(ts.loc[keep].to_numpy()).rename("ts")
    out.columns.name = None
    return out


# -- positions, exposure and fills --------------------------------------------------------------------------------
def positions(store: ArenaStore, run_id: str, agent: str | None = None) -> pd.DataFrame:
    """Open positions after each account's last committed round, marked at that round's snapshot close."""
    p, acc = _POSITIONS.c, _ACCOUNTS.c
    stmt = select(
        p.agent,
        p.symbol,
        p.quantity,
        p.entry_price,
        p.leverage,
        p.margin,
        p.liquidation_price,
        p.stop_loss,
        p.take_profit,
        p.invalidation,
        p.opened_at,
        acc.last_round,
    ).join_from(_POSITIONS, _ACCOUNTS, and_(acc.run_id == p.run_id, acc.agent == p.agent))
    stmt = stmt.where(p.run_id == run_id).order_by(p.agent, p.symbol)
    if agent is not None:
        stmt = stmt.where(p.agent == agent)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        marks = _snapshot_closes(conn, run_id, {int(r.last_round) for r in rows})
    frame = pd.DataFrame(rows, columns=[*(c.name for c in stmt.selected_columns)])
    if frame.empty:
        return _frame([], _POSITION_SCHEMA)
    qty = frame["quantity"].astype(np.float64)
    frame["side"] = np.where(qty > 0, "long", "short")
    frame["mark"] = [
        marks.get(int(r), {}).get(s, math.nan) for r, s in zip(frame["last_round"], frame["symbol"], strict=True)
    ]
    frame["notional"] = qty.abs() * frame["mark"]
    frame["unrealized_pnl"] = qty * (frame["mark"] - frame["entry_price"].astype(np.float64))
    return _typed(frame, _POSITION_SCHEMA)


def _snapshot_closes(conn: Connection, run_id: str, rounds: Iterable[int]) -> dict[int, dict[str, float]]:
    """Each round's snapshot content reduced to symbol -> last close (the mark its equity row used)."""
    wanted = sorted(rounds)
    if not wanted:
        return {}
    r, s = _ROUNDS.c, _SNAPSHOTS.c
    stmt = (
        select(r.round_no, s.content)
        .join_from(_ROUNDS, _SNAPSHOTS, s.snapshot_hash == r.snapshot_hash)
        .where(r.run_id == run_id, r.round_no.in_(wanted))
    )
    out: dict[int, dict[str, float]] = {}
    for round_no, content in conn.execute(stmt):
        bars = content if isinstance(content, dict) else {}
        out[int(round_no)] = {
            sym: float(bar["c"]) for sym, bar in bars.items() if isinstance(bar, dict) and bar.get("c") is not None
        }
    return out


def exposure(store: ArenaStore, run_id: str) -> pd.DataFrame:
    """Each open position's notional (>= 0, with its side and a signed copy) as a share of its agent's equity."""
    pos = positions(store, run_id)
    if pos.empty:
        return _frame([], _EXPOSURE_SCHEMA)
    e, acc = _EQUITY.c, _ACCOUNTS.c
    last = (
        select(e.equity)
        .where(e.run_id == acc.run_id, e.agent == acc.agent, e.round_no == acc.last_round)
        .scalar_subquery()
    )
    with store.engine.connect() as conn:
        equity = _pairs(conn.execute(select(acc.agent, last).where(acc.run_id == run_id)))
    out = pos[["agent", "symbol", "side", "notional"]].copy()
    out["signed_notional"] = np.where(out["side"] == "long", 1.0, -1.0) * out["notional"]
    agent_equity = out["agent"].map(equity).astype(np.float64)
    out["share_of_equity"] = out["notional"] / agent_equity.where(agent_equity > 0)
    return _typed(out, _EXPOSURE_SCHEMA)


def trades(store: ArenaStore, run_id: str, agent: str | None = None, *, limit: int = 500) -> pd.DataFrame:
    """The newest `limit` fills (of one agent, or of all), newest first.

    Each agent's newest fills come from the (run_id, agent, seq) index, and the agents' pages are merged here,
    so no statement sorts a run's whole fills table.
    """
    _positive(limit, "limit")
    f = _FILLS.c
    cols = [f[c] for c in _TRADE_SCHEMA]
    with store.engine.connect() as conn:
        if agent is None:
            names = list(conn.execute(select(_AGENTS.c.agent).where(_AGENTS.c.run_id == run_id)).scalars())
        else:
            names = [agent]
        rows: list[Any] = []
        for name in names:
            stmt = select(*cols, f.seq).where(f.run_id == run_id, f.agent == name).order_by(f.seq.desc()).limit(limit)
            rows.extend(conn.execute(stmt).all())
    frame = pd.DataFrame(rows, columns=[*_TRADE_SCHEMA, "seq"])
    if not frame.empty:
        frame = frame.sort_values(["ts", "agent", "seq"], ascending=[False, True, False], kind="stable")
    return _typed(frame.head(limit).reset_index(drop=True), _TRADE_SCHEMA)


# -- decisions ----------------------------------------------------------------------------------------------------
def decision_rounds(store: ArenaStore, run_id: str, agent: str, *, limit: int = 500) -> pd.DataFrame:
    """The newest `limit` rounds in which `agent` decided or was asked, newest first, one row per round.

    `actions` reads like "BTC/USDT enter_long, ETH/USDT hold" (an engine-made exit is marked "(invalidation)"),
    `rejected` and `clamped` count the RiskEngine's refusals and reductions, `parse_ok` is NA for agents that are
    not language models.
    """
    _positive(limit, "limit")
    d, c = _DECISIONS.c, _CALLS.c
    with store.engine.connect() as conn:
        decided = (
            select(d.round_no)
            .where(d.run_id == run_id, d.agent == agent)
            .group_by(d.round_no)
            .order_by(d.round_no.desc())
            .limit(limit)
        )
        asked = select(c.round_no).where(c.run_id == run_id, c.agent == agent).order_by(c.round_no.desc()).limit(limit)
        wanted = sorted({*conn.execute(decided).scalars(), *conn.execute(asked).scalars()}, reverse=True)[:limit]
        if not wanted:
            return _frame([], _DECISION_ROUND_SCHEMA)
        rows = conn.execute(
            select(d.round_no, d.symbol, d.action, d.source, d.approved, d.clamped)
            .where(d.run_id == run_id, d.agent == agent, d.round_no.in_(wanted))
            .order_by(d.round_no, d.id)
        ).all()
        parsed = _pairs(
            conn.execute(
                select(c.round_no, c.parse_ok).where(c.run_id == run_id, c.agent == agent, c.round_no.in_(wanted))
            )
        )
        stamps = _pairs(
            conn.execute(
                select(_ROUNDS.c.round_no, _ROUNDS.c.ts)
                .where(_ROUNDS.c.run_id == run_id)
                .where(_ROUNDS.c.round_no.in_(wanted))
            )
        )
    per_round: dict[int, dict[str, Any]] = {r: {"actions": [], "rejected": 0, "clamped": 0} for r in wanted}
    for row in rows:
        acc = per_round[int(row.round_no)]
        mark = f" ({row.source})" if row.source == _INVALIDATION else ""
        acc["actions"].append(f"{row.symbol} {row.action}{mark}")
        acc["rejected"] += row.approved is not None and not row.approved
        acc["clamped"] += bool(row.clamped)
    records = [
        (
            r,
            stamps.get(r),
            ", ".join(per_round[r]["actions"]),
            per_round[r]["rejected"],
            per_round[r]["clamped"],
            None if r not in parsed or parsed[r] is None else bool(parsed[r]),
        )
        for r in wanted
    ]
    return _frame(records, _DECISION_ROUND_SCHEMA)


def round_detail(store: ArenaStore, run_id: str, agent: str, round_no: int) -> RoundDetail | None:
    """One agent's round in full (None when it neither decided nor was asked in that round).

    A language model's round has its prompt (found through `llm_calls.prompt_sha`), its raw answer exactly as
    received, the parse outcome and its problems; a quant agent's has empty prompt and answer strings.
    """
    d, c = _DECISIONS.c, _CALLS.c
    with store.engine.connect() as conn:
        call = conn.execute(select(_CALLS).where(c.run_id == run_id, c.agent == agent, c.round_no == round_no)).first()
        decisions = conn.execute(
            select(*(d[col] for col in _DECISION_SCHEMA), d.latency_s)
            .where(d.run_id == run_id, d.agent == agent, d.round_no == round_no)
            .order_by(d.id)
        ).all()
        if call is None and not decisions:
            return None
        ts = conn.execute(
            select(_ROUNDS.c.ts).where(_ROUNDS.c.run_id == run_id, _ROUNDS.c.round_no == round_no)
        ).scalar()
        version = conn.execute(
            select(_AGENTS.c.prompt_version).where(_AGENTS.c.run_id == run_id, _AGENTS.c.agent == agent)
        ).scalar()
        prompt = None
        if call is not None:
            prompt = conn.execute(select(_PROMPTS).where(_PROMPTS.c.sha256 == call.prompt_sha)).first()
    frame = _frame([r[:-1] for r in decisions], _DECISION_SCHEMA)
    latency = float(call.latency_s) if call is not None else max((float(r[-1]) for r in decisions), default=0.0)
    return RoundDetail(
        run_id=run_id,
        agent=agent,
        round_no=int(round_no),
        ts=_stamp(ts),
        prompt_version=(prompt.version if prompt is not None else version) or "",
        system_prompt=prompt.system if prompt is not None else "",
        user_prompt=prompt.user if prompt is not None else "",
        raw_response=(call.raw or "") if call is not None else "",
        parse_ok=None if call is None else bool(call.parse_ok),
        problems=[str(p) for p in (call.problems or [])] if call is not None else [],
        error=(call.error or "") if call is not None else "",
        latency_s=latency,
        cost_usd=float(call.cost_usd) if call is not None else 0.0,
        decisions=frame,
    )


# -- helpers ------------------------------------------------------------------------------------------------------
def _bounds(start: TimeLike | None, end: TimeLike | None) -> tuple[int | None, int | None]:
    lo = None if start is None else int(to_utc_timestamp(start, "start").value)
    hi = None if end is None else int(to_utc_timestamp(end, "end").value)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {pd.Timestamp(lo, tz='UTC')} is after end {pd.Timestamp(hi, tz='UTC')}")
    return lo, hi


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _stamp(ns: Any) -> pd.Timestamp:
    return _NAT if ns is None else pd.Timestamp(int(ns), unit="ns", tz="UTC")


def _maybe_utc(value: Any) -> pd.Timestamp:
    """A run's start/end text as a UTC Timestamp; NaT when absent or unreadable (it is shown, never computed on)."""
    try:
        return _NAT if value in (None, "") else to_utc_timestamp(value)
    except ValueError:
        return _NAT


def _utc(values: Any) -> pd.DatetimeIndex:
    """Epoch-ns integers (None for missing) as a UTC DatetimeIndex, without a lossy trip through float."""
    ints = pd.Series(list(values) if not isinstance(values, pd.Series) else values, dtype=object).astype("Int64")
    return pd.DatetimeIndex(pd.to_datetime(ints, unit="ns", utc=True))


def _frame(rows: Sequence[Any], schema: Mapping[str, str | None]) -> pd.DataFrame:
    return _typed(pd.DataFrame(list(rows), columns=list(schema)), schema)


def _typed(frame: pd.DataFrame, schema: Mapping[str, str | None]) -> pd.DataFrame:
    """`frame`'s schema columns in order, with their dtypes (also when it is empty)."""
    out = frame.reindex(columns=list(schema)).reset_index(drop=True)
    for col, dtype in schema.items():
        if dtype == "utc":
            out[col] = _utc(out[col])
        elif dtype is not None:
            out[col] = out[col].astype(cast_type(Any, dtype))
    return out


def _pairs(result: Iterable[Any]) -> dict[Any, Any]:
    """A two-column result as a dict of first column -> second column."""
    return {row[0]: row[1] for row in result}


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _share(count: Any, total: int) -> float:
    return float(count or 0) / total * 100.0 if total else math.nan


def _percentile(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else math.nan
