"""Read-only queries behind the monitor's pages: runs, curves, returns, positions, fills and the decision log.

Why one module: it is the contract between the store and the pages, one function per page element, and every
statement in it aggregates or is bounded in SQL (GROUP BY, LIMIT, a window of rounds, downsampling), so a page
answers within about two seconds on a store with millions of fills. The leaderboard has its own module
(`monitor.leaderboard_sql`), and opening the store and the helpers shared with it are in `monitor.store`. Nothing
here writes. Conventions (UTC timestamps, unknown runs read as empty) are those of `monitor.store`.

This module is longer than the usual 400 lines on purpose: splitting the page queries further would scatter one
contract over several files whose functions share the same schemas and helpers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Connection

from arena_lib.arena import schema as t
from arena_lib.arena.store import ArenaStore
from arena_lib.data.resample import TimeLike
from arena_lib.monitor.store import (
    ACCOUNTS,
    AGENTS,
    CALLS,
    DECISIONS,
    EQUITY,
    FILLS,
    INVALIDATION_SOURCE,
    POSITIONS,
    PROMPTS,
    ROUNDS,
    RUNS,
    SNAPSHOTS,
    RoundWindow,
    account_values,
    in_window,
    maybe_utc,
    pairs,
    parse_schema,
    period_bounds,
    positive_int,
    round_window,
    schema_frame,
    utc_index,
    utc_stamp,
    with_schema,
)

__all__ = [
    "LastRound",
    "RoundDetail",
    "agent_returns",
    "decision_rounds",
    "equity_curves",
    "exposure",
    "fill_count",
    "last_round",
    "list_runs",
    "positions",
    "round_detail",
    "run_agents",
    "trades",
    "twin_gap",
]

# Each frame's columns in order, "name:dtype" ("utc": epoch ns to UTC Timestamps; no dtype: as the database
# returns it). Empty results keep these columns and dtypes.
_RUN_SCHEMA = parse_schema(
    "run_id mode status created_at:utc start end timeframe symbols agents:int64 last_round:int64 last_bar:utc message"
)
_AGENT_SCHEMA = parse_schema(
    "agent kind provider model prompt_version training_cutoff cutoff_overlap:bool initial_cash:float64"
)
_CURVE_SCHEMA = parse_schema("ts:utc agent equity:float64 drawdown:float64 return_pct:float64 round_no:int64")
_POSITION_SCHEMA = parse_schema(
    "agent symbol side quantity:float64 entry_price:float64 mark:float64 notional:float64 "
    "unrealized_pnl:float64 leverage:float64 margin:float64 liquidation_price:float64 stop_loss:float64 "
    "take_profit:float64 invalidation opened_at:utc"
)
_TRADE_SCHEMA = parse_schema(
    "ts:utc agent symbol side kind quantity:float64 price:float64 fee:float64 realized_pnl:float64 "
    "leverage:float64 note round_no:int64 reference_price:float64 slippage_bps:float64"
)
_TWIN_SCHEMA = parse_schema(
    "agent real_equity:float64 twin_equity:float64 gap:float64 fees:float64 slippage:float64 funding:float64 "
    "latency:float64 one_sided:float64 residual:float64 one_sided_fills:int64 source"
)
ORDERS = t.OrderRow.__table__
_DECISION_ROUND_SCHEMA = parse_schema("round_no:int64 ts:utc actions rejected:int64 clamped:int64 parse_ok:boolean")
_DECISION_SCHEMA = parse_schema(
    "symbol source action size:float64 size_unit leverage:float64 stop_loss:float64 take_profit:float64 "
    "invalidation confidence:float64 approved:boolean clamped:bool verdict reason"
)
_EXPOSURE_SCHEMA = parse_schema("agent symbol side notional:float64 signed_notional:float64 share_of_equity:float64")


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


# -- runs and agents ----------------------------------------------------------------------------------------------
def list_runs(store: ArenaStore, *, limit: int | None = None) -> pd.DataFrame:
    """Runs, newest first, with their agent count and the bar close of their last committed round."""
    runs = RUNS.c
    agents = select(func.count()).select_from(AGENTS).where(AGENTS.c.run_id == runs.run_id).scalar_subquery()
    last_bar = (
        select(ROUNDS.c.ts)
        .where(ROUNDS.c.run_id == runs.run_id, ROUNDS.c.round_no == runs.last_round)
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
        stmt = stmt.limit(positive_int(limit, "limit"))
    with store.engine.connect() as conn:
        frame = schema_frame(conn.execute(stmt).all(), _RUN_SCHEMA)
    frame["symbols"] = [", ".join(s) if isinstance(s, list) else (s or "") for s in frame["symbols"]]
    for col in ("start", "end"):
        frame[col] = pd.DatetimeIndex([maybe_utc(v) for v in frame[col]], dtype="datetime64[ns, UTC]")
    return frame


def run_agents(store: ArenaStore, run_id: str) -> pd.DataFrame:
    """The agents of a run with their identity and the flags the leaderboard shows, by name."""
    a = AGENTS.c
    stmt = select(*(a[c] for c in _AGENT_SCHEMA)).where(a.run_id == run_id).order_by(a.agent)
    with store.engine.connect() as conn:
        return schema_frame(conn.execute(stmt).all(), _AGENT_SCHEMA)


def fill_count(store: ArenaStore, run_id: str) -> int:
    """How many fills a run has (a COUNT in the database)."""
    stmt = select(func.count()).select_from(FILLS).where(FILLS.c.run_id == run_id)
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def last_round(store: ArenaStore, run_id: str | None = None) -> LastRound | None:
    """The last committed round of `run_id`, or of whichever run committed most recently (None: no round yet)."""
    r, runs = ROUNDS.c, RUNS.c
    stmt = select(r.run_id, r.round_no, r.ts, r.wall_started, r.wall_s).join_from(
        ROUNDS, RUNS, and_(runs.run_id == r.run_id, runs.last_round == r.round_no)
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
        bar_close=utc_stamp(row.ts),
        committed_at=utc_stamp(int(row.wall_started) + round(float(row.wall_s) * 1e9)),
        wall_s=float(row.wall_s),
    )


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
    positive_int(max_points, "max_points")
    if max_points < 2:
        raise ValueError(f"max_points={max_points} must be at least 2 (the first and the last point)")
    lo, hi = period_bounds(start, end)
    with store.engine.connect() as conn:
        window = round_window(conn, run_id, lo, hi)
        if window.first is None or window.last is None:
            return schema_frame([], _CURVE_SCHEMA)
        first, last = window.first, window.last
        step = max(1, math.ceil((last - first) / (max_points - 1)))
        e = EQUITY.c
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
            .where(e.run_id == run_id, in_window(e.round_no, window))
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
    return with_schema(frame, _CURVE_SCHEMA)


def _bases(conn: Connection, run_id: str, window: RoundWindow) -> dict[str, float]:
    """Each agent's starting capital for the period: its equity just before it, else its initial cash."""
    values = account_values(conn, run_id, window)
    cash = pairs(conn.execute(select(AGENTS.c.agent, AGENTS.c.initial_cash).where(AGENTS.c.run_id == run_id)))
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
        positive_int(max_points, "max_points")
    e = EQUITY.c
    empty = pd.DataFrame(index=pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="ts"))
    with store.engine.connect() as conn:
        window = round_window(conn, run_id, None, None)
        if window.first is None or window.last is None:
            return empty
        cash = pairs(conn.execute(select(AGENTS.c.agent, AGENTS.c.initial_cash).where(AGENTS.c.run_id == run_id)))
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
    out.index = utc_index(ts.loc[keep].to_numpy()).rename("ts")
    out.columns.name = None
    return out


# -- positions, exposure and fills --------------------------------------------------------------------------------
def positions(store: ArenaStore, run_id: str, agent: str | None = None) -> pd.DataFrame:
    """Open positions after each account's last committed round, marked at that round's snapshot close."""
    p, acc = POSITIONS.c, ACCOUNTS.c
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
    ).join_from(POSITIONS, ACCOUNTS, and_(acc.run_id == p.run_id, acc.agent == p.agent))
    stmt = stmt.where(p.run_id == run_id).order_by(p.agent, p.symbol)
    if agent is not None:
        stmt = stmt.where(p.agent == agent)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        marks = _snapshot_closes(conn, run_id, {int(r.last_round) for r in rows})
    frame = pd.DataFrame(rows, columns=[*(c.name for c in stmt.selected_columns)])
    if frame.empty:
        return schema_frame([], _POSITION_SCHEMA)
    qty = frame["quantity"].astype(np.float64)
    frame["side"] = np.where(qty > 0, "long", "short")
    frame["mark"] = [
        marks.get(int(r), {}).get(s, math.nan) for r, s in zip(frame["last_round"], frame["symbol"], strict=True)
    ]
    frame["notional"] = qty.abs() * frame["mark"]
    frame["unrealized_pnl"] = qty * (frame["mark"] - frame["entry_price"].astype(np.float64))
    return with_schema(frame, _POSITION_SCHEMA)


def _snapshot_closes(conn: Connection, run_id: str, rounds: Iterable[int]) -> dict[int, dict[str, float]]:
    """Each round's snapshot content reduced to symbol -> last close (the mark its equity row used)."""
    wanted = sorted(rounds)
    if not wanted:
        return {}
    r, s = ROUNDS.c, SNAPSHOTS.c
    stmt = (
        select(r.round_no, s.content)
        .join_from(ROUNDS, SNAPSHOTS, s.snapshot_hash == r.snapshot_hash)
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
        return schema_frame([], _EXPOSURE_SCHEMA)
    e, acc = EQUITY.c, ACCOUNTS.c
    last = (
        select(e.equity)
        .where(e.run_id == acc.run_id, e.agent == acc.agent, e.round_no == acc.last_round)
        .scalar_subquery()
    )
    with store.engine.connect() as conn:
        equity = pairs(conn.execute(select(acc.agent, last).where(acc.run_id == run_id)))
    out = pos[["agent", "symbol", "side", "notional"]].copy()
    out["signed_notional"] = np.where(out["side"] == "long", 1.0, -1.0) * out["notional"]
    agent_equity = out["agent"].map(equity).astype(np.float64)
    out["share_of_equity"] = out["notional"] / agent_equity.where(agent_equity > 0)
    return with_schema(out, _EXPOSURE_SCHEMA)


def trades(store: ArenaStore, run_id: str, agent: str | None = None, *, limit: int = 500) -> pd.DataFrame:
    """The newest `limit` fills (of one agent, or of all), newest first, with their slippage.

    Each agent's newest fills come from the (run_id, agent, seq) index, and the agents' pages are merged here,
    so no statement sorts a run's whole fills table. `reference_price` is the order's (the decision bar's close;
    NaN for the engine's own exits: stops, targets, liquidations), `slippage_bps` the fill price against it,
    positive when adverse: side * (price / reference - 1) * 1e4.
    """
    positive_int(limit, "limit")
    f = FILLS.c
    cols = [f[c] for c in _TRADE_SCHEMA if c not in ("reference_price", "slippage_bps")]
    cols.append(ORDERS.c.reference_price)
    joined = FILLS.outerjoin(ORDERS, ORDERS.c.order_id == f.order_id)
    with store.engine.connect() as conn:
        if agent is None:
            names = list(conn.execute(select(AGENTS.c.agent).where(AGENTS.c.run_id == run_id)).scalars())
        else:
            names = [agent]
        rows: list[Any] = []
        for name in names:
            stmt = (
                select(*cols, f.seq)
                .select_from(joined)
                .where(f.run_id == run_id, f.agent == name)
                .order_by(f.seq.desc())
                .limit(limit)
            )
            rows.extend(conn.execute(stmt).all())
    frame = pd.DataFrame(rows, columns=[*[c for c in _TRADE_SCHEMA if c != "slippage_bps"], "seq"])
    ref = pd.to_numeric(frame["reference_price"], errors="coerce")
    side = np.where(frame["side"] == "buy", 1.0, -1.0)
    frame["slippage_bps"] = side * (pd.to_numeric(frame["price"], errors="coerce") / ref.where(ref > 0) - 1.0) * 1e4
    if not frame.empty:
        frame = frame.sort_values(["ts", "agent", "seq"], ascending=[False, True, False], kind="stable")
    return with_schema(frame.head(limit).reset_index(drop=True), _TRADE_SCHEMA)


def twin_gap(store: ArenaStore, run_id: str) -> pd.DataFrame:
    """Each agent's equity gap against the run's simulated twin, with its parts (`arena_lib.arena.twin`).

    Empty for a replay run (it ran on the simulator) or a run with no committed round. It replays the whole run,
    so the monitor caches it per run version.
    """
    from arena_lib.arena.twin import TwinError, twin_report

    try:
        report = twin_report(store, run_id)
    except TwinError:
        return schema_frame([], _TWIN_SCHEMA)
    return with_schema(report.table(), _TWIN_SCHEMA)


# -- decisions ----------------------------------------------------------------------------------------------------
def decision_rounds(store: ArenaStore, run_id: str, agent: str, *, limit: int = 500) -> pd.DataFrame:
    """The newest `limit` rounds in which `agent` decided or was asked, newest first, one row per round.

    `actions` reads like "BTC/USDT enter_long, ETH/USDT hold" (an engine-made exit is marked "(invalidation)"),
    `rejected` and `clamped` count the RiskEngine's refusals and reductions, `parse_ok` is NA for agents that are
    not language models.
    """
    positive_int(limit, "limit")
    d, c = DECISIONS.c, CALLS.c
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
            return schema_frame([], _DECISION_ROUND_SCHEMA)
        rows = conn.execute(
            select(d.round_no, d.symbol, d.action, d.source, d.approved, d.clamped)
            .where(d.run_id == run_id, d.agent == agent, d.round_no.in_(wanted))
            .order_by(d.round_no, d.id)
        ).all()
        parsed = pairs(
            conn.execute(
                select(c.round_no, c.parse_ok).where(c.run_id == run_id, c.agent == agent, c.round_no.in_(wanted))
            )
        )
        stamps = pairs(
            conn.execute(
                select(ROUNDS.c.round_no, ROUNDS.c.ts)
                .where(ROUNDS.c.run_id == run_id)
                .where(ROUNDS.c.round_no.in_(wanted))
            )
        )
    per_round: dict[int, dict[str, Any]] = {r: {"actions": [], "rejected": 0, "clamped": 0} for r in wanted}
    for row in rows:
        acc = per_round[int(row.round_no)]
        mark = f" ({row.source})" if row.source == INVALIDATION_SOURCE else ""
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
    return schema_frame(records, _DECISION_ROUND_SCHEMA)


def round_detail(store: ArenaStore, run_id: str, agent: str, round_no: int) -> RoundDetail | None:
    """One agent's round in full (None when it neither decided nor was asked in that round).

    A language model's round has its prompt (found through `llm_calls.prompt_sha`), its raw answer exactly as
    received, the parse outcome and its problems; a quant agent's has empty prompt and answer strings.
    """
    d, c = DECISIONS.c, CALLS.c
    with store.engine.connect() as conn:
        call = conn.execute(select(CALLS).where(c.run_id == run_id, c.agent == agent, c.round_no == round_no)).first()
        decisions = conn.execute(
            select(*(d[col] for col in _DECISION_SCHEMA), d.latency_s)
            .where(d.run_id == run_id, d.agent == agent, d.round_no == round_no)
            .order_by(d.id)
        ).all()
        if call is None and not decisions:
            return None
        ts = conn.execute(select(ROUNDS.c.ts).where(ROUNDS.c.run_id == run_id, ROUNDS.c.round_no == round_no)).scalar()
        version = conn.execute(
            select(AGENTS.c.prompt_version).where(AGENTS.c.run_id == run_id, AGENTS.c.agent == agent)
        ).scalar()
        prompt = None
        if call is not None:
            prompt = conn.execute(select(PROMPTS).where(PROMPTS.c.sha256 == call.prompt_sha)).first()
    frame = schema_frame([r[:-1] for r in decisions], _DECISION_SCHEMA)
    latency = float(call.latency_s) if call is not None else max((float(r[-1]) for r in decisions), default=0.0)
    return RoundDetail(
        run_id=run_id,
        agent=agent,
        round_no=int(round_no),
        ts=utc_stamp(ts),
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
