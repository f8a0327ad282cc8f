"""A model version's paper record, read from the arena ledger: what `paper -> live` is judged on.

Why the ledger and not the training run: a backtest is what earned the version `paper`; `live` asks whether it
then traded well on bars it had never seen, through the same engine, costs and risk limits as the live job will.
So the live gates read the equity and fills that paper jobs (`flows/trade.py` -> `trade_step`, run
`paper-job-<job>`) committed for this version, scored with the same analytics as every backtest
(`arena_lib.analytics.metrics`).

Which bars a version traded: a model agent is a `run_agents` row whose `model` is the URI it loads. A pinned URI
(`models:/name/7`) names its version. An alias URI (`models:/name@paper`) is resolved at every bar (the job
rebuilds its agents each invocation), and the ledger does not record which version it resolved to; the alias's
promotion history in MLflow (`arena.history.paper`: every promote and rollback with its time) does. A round was
traded by the version that held the alias when the round started (`rounds.wall_started`, the job's wall clock).
Rounds within `ALIAS_MOVE_GUARD` of an alias move are left out (the agent may have been built just before the
move, and the two hosts' clocks may differ), and so are rounds before the oldest history entry (trimmed
history) or after the last one when the alias now sits elsewhere (moved by hand): unknown bars are never credited.

How the bars are scored: a bar's return `E_k / E_(k-1) - 1` is the version's when it traded both rounds `k-1` and
`k` (the positions held over the bar were its decisions); the first bar after each hand-over is the previous
holder's. The version's returns are chained into one equity curve (gaps between stints are not periods), and the
same curve gives Sharpe, drawdown and the probabilistic Sharpe; trades are the entry fills of scored rounds. The
baseline is the best Sharpe of the run's baseline agents (`buy_and_hold`, ... as in strategy validation) on the
same rounds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from arena_lib.arena.store import ArenaStore

__all__ = [
    "ALIAS_MOVE_GUARD",
    "PAPER_METRIC_NAMES",
    "PaperRecord",
    "PaperSearch",
    "find_paper_record",
    "holder_intervals",
    "ledger_url",
]

PAPER_METRIC_NAMES: dict[str, tuple[tuple[str, ...], ...]] = {
    "min_oos_trades": (("paper_trades",),),
    "min_sharpe_margin": (("paper_sharpe", "paper_best_baseline_sharpe"),),
    "min_deflated_sharpe": (("paper_probabilistic_sharpe",),),
    "max_drawdown": (("paper_max_drawdown",),),
}
"""Gate -> the paper-record metric it reads (the gates `checks.METRIC_NAMES` reads from a training run)."""

ALIAS_MOVE_GUARD = pd.Timedelta(minutes=15)
"""Rounds that started this close to an alias move (either side) are credited to no version."""

PAPER_ALIAS = "paper"
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class PaperRecord:
    """The bars one agent of one paper run traded with one model version, and their scores."""

    run_id: str
    agent: str
    model_uri: str
    version: str
    attributed_by: str  # "pinned version URI" | "alias history"
    rounds: int  # rounds the version traded (attributed to it)
    scored_bars: int  # bars whose return is the version's (both ends traded by it)
    days: float  # time covered by the scored bars
    first: pd.Timestamp | None  # bar close of the first scored bar
    last: pd.Timestamp | None
    metrics: dict[str, float]
    baselines: dict[str, float]  # baseline agent -> Sharpe on the same bars
    excluded: dict[str, int]  # why the run's other rounds were not credited -> how many

    def summary(self) -> str:
        """One line: where the record is and what it covers."""
        span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M} UTC" if self.first is not None else "-"
        return (
            f"run {self.run_id}, agent {self.agent} ({self.model_uri}, {self.attributed_by}): "
            f"{self.scored_bars} bars traded by version {self.version} over {self.days:.1f} days ({span})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "model_uri": self.model_uri,
            "version": self.version,
            "attributed_by": self.attributed_by,
            "rounds": self.rounds,
            "scored_bars": self.scored_bars,
            "days": round(self.days, 4),
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "baselines": {k: _json_float(v) for k, v in self.baselines.items()},
            "excluded": dict(self.excluded),
        }


@dataclass(frozen=True)
class PaperSearch:
    """What was looked at: the ledger, the record chosen (None: none found), the others, and why none (if so)."""

    ledger: str  # the store URL, password masked
    record: PaperRecord | None
    others: tuple[PaperRecord, ...] = ()
    reason: str = ""
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "record": None if self.record is None else self.record.to_dict(),
            "others": [r.summary() for r in self.others],
            "reason": self.reason,
            "notes": list(self.notes),
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------------------- the ledger
def ledger_url(db_url: str | None) -> str:
    """`db_url`, else the arena store's default (`ARENA_DB_URL`, else `<project>/.arena/arena.db`)."""
    from arena_lib.arena.store import default_db_url

    return db_url or default_db_url()


def _missing_sqlite(url: str) -> str | None:
    """The path of a SQLite ledger file that does not exist (opening it would create an empty one), else None."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    from pathlib import Path

    path = Path(parsed.database)
    return None if path.exists() else str(path)


# -------------------------------------------------------------------------------------------- alias attribution
@dataclass(frozen=True)
class HolderInterval:
    """One stretch of time during which one version (None: an unknown one) held the alias."""

    start: int  # epoch ns, inclusive
    end: int | None  # exclusive; None: open
    version: str | None  # None: unknown holder


def holder_intervals(history: Sequence[Mapping[str, Any]], current: str | None) -> list[HolderInterval]:
    """Who held the alias when, from its promotion history (oldest first) and its holder now.

    Before the oldest entry the holder is unknown (the history may have been trimmed). After the newest one it is
    that entry's version, unless the alias is now held by another (moved outside promote/rollback): unknown then.
    """
    moves = [(int(pd.Timestamp(h["at"]).value), str(h["version"])) for h in history if h.get("at") and h.get("version")]
    moves.sort(key=lambda m: m[0])
    if not moves:
        return [HolderInterval(np.iinfo(np.int64).min, None, None)]
    out = [HolderInterval(np.iinfo(np.int64).min, moves[0][0], None)]
    for (at, version), (nxt, _) in itertools.pairwise(moves):
        out.append(HolderInterval(at, nxt, version))
    last_at, last_version = moves[-1]
    out.append(HolderInterval(last_at, None, last_version if current == last_version else None))
    return out


def _attribute(
    wall: np.ndarray, intervals: Sequence[HolderInterval], version: str
) -> tuple[np.ndarray, dict[str, int]]:
    """Which rounds (by wall start) were traded by `version`, and how many others were left out for which reason."""
    mine = np.zeros(len(wall), dtype=bool)
    unknown = np.zeros(len(wall), dtype=bool)
    for iv in intervals:
        inside = wall >= iv.start
        if iv.end is not None:
            inside &= wall < iv.end
        if iv.version is None:
            unknown |= inside
        elif iv.version == version:
            mine |= inside
    guard = int(ALIAS_MOVE_GUARD.value)
    near = np.zeros(len(wall), dtype=bool)
    for iv in intervals[1:]:  # the first interval starts at -inf: no move there
        near |= np.abs(wall - iv.start) < guard
    excluded = {
        "other_versions": int((~mine & ~unknown).sum()),
        "holder_unknown": int((unknown & ~near).sum()),
        "near_an_alias_move": int((mine & near).sum()),
    }
    return mine & ~near, excluded


# ----------------------------------------------------------------------------------------------------- scoring
def _chained(equity: pd.Series, scored: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """The scored bars' returns chained into one curve from the equity before the first; and those returns."""
    values = equity.to_numpy(np.float64)
    prev, cur = values[:-1], values[1:]
    alive = prev > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(alive, cur / np.where(alive, prev, 1.0) - 1.0, 0.0)
    returns = step[scored[1:]]
    first = int(np.argmax(scored))  # scored[0] is False: a scored bar has a round before it
    start = values[first - 1]
    curve = start * np.cumprod(1.0 + returns)
    index = equity.index[[first - 1, *np.flatnonzero(scored)]]
    return pd.Series(np.concatenate([[start], curve]), index=index, dtype=np.float64), returns


def _scores(
    curve: pd.Series, returns: np.ndarray, ppy: float, trades: int, baselines: Mapping[str, float]
) -> dict[str, float]:
    from arena_lib.analytics.metrics import max_drawdown, sharpe

    out = {"paper_trades": float(trades), "paper_bars": float(len(returns))}
    sr = sharpe(curve, periods_per_year=ppy)
    dd = max_drawdown(curve)
    if math.isfinite(sr):
        out["paper_sharpe"] = sr
    if math.isfinite(dd):
        out["paper_max_drawdown"] = dd
    finite = [v for v in baselines.values() if math.isfinite(v)]
    if finite:
        out["paper_best_baseline_sharpe"] = max(finite)
    psr = _probabilistic_sharpe(returns)
    if psr is not None:
        out["paper_probabilistic_sharpe"] = psr
    return out


def _probabilistic_sharpe(returns: np.ndarray) -> float | None:
    """The deflated Sharpe of one track (no selection among trials): P(true Sharpe > 0); None when undefined."""
    from arena_lib.research.overfitting import deflated_sharpe_ratio

    if len(returns) < 3:
        return None
    try:
        value = deflated_sharpe_ratio(returns, n_trials=1, sr_variance=0.0)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _model_version(uri: str, name: str) -> tuple[str, str] | None:
    """('version', '7') for `models:/name/7`, ('alias', 'paper') for `models:/name@paper`, None for another model."""
    prefix = f"models:/{name}"
    if not uri.startswith(prefix):
        return None
    rest = uri[len(prefix) :]
    if rest.startswith("@"):
        return "alias", rest[1:]
    if rest.startswith("/") and rest[1:].isdigit():
        return "version", rest[1:]
    return None


def _records_of_run(
    store: ArenaStore,
    run: Any,
    name: str,
    version: str,
    intervals: Sequence[HolderInterval],
    baseline_agents: Sequence[str],
) -> list[PaperRecord]:
    from arena_lib.analytics.metrics import sharpe
    from arena_lib.data.market import ns_to_index
    from arena_lib.data.resample import timeframe_to_ns

    agents = store.run_agents(run.run_id)
    wanted: list[tuple[Any, str]] = []
    for a in agents:
        ref = _model_version(a.model, name)
        if ref == ("alias", PAPER_ALIAS):
            wanted.append((a, "alias history"))
        elif ref == ("version", version):
            wanted.append((a, "pinned version URI"))
    if not wanted:
        return []
    rounds = store.rounds_frame(run.run_id).set_index("round_no").sort_index()
    equity = store.equity_frame(run.run_id)
    fills = store.fills_frame(run.run_id)
    ppy = pd.Timedelta(days=365.25).value / timeframe_to_ns(run.timeframe)
    baselines = [a.agent for a in agents if a.model in baseline_agents]
    out = []
    for agent, how in wanted:
        mine_eq = equity[equity["agent"] == agent.agent].set_index("round_no").sort_index()
        frame = rounds.join(mine_eq[["equity"]], how="inner")
        if frame.empty:
            continue
        wall = frame["wall_started"].to_numpy(np.int64)
        if how == "alias history":
            traded, excluded = _attribute(wall, intervals, version)
        else:
            traded, excluded = np.ones(len(frame), dtype=bool), {}
        round_no = frame.index.to_numpy(np.int64)
        # A bar is the version's when it traded the round before it too (consecutive rounds of the ledger).
        scored = np.zeros(len(frame), dtype=bool)
        scored[1:] = traded[1:] & traded[:-1] & (np.diff(round_no) == 1)
        if not scored.any():
            out.append(_empty_record(run.run_id, agent, version, how, int(traded.sum()), excluded))
            continue
        ts = frame["ts"].to_numpy(np.int64)
        curve_eq = pd.Series(frame["equity"].to_numpy(np.float64), index=ns_to_index(ts))
        curve, returns = _chained(curve_eq, scored)
        scored_rounds = set(round_no[scored].tolist())
        f = fills[(fills["agent"] == agent.agent) & fills["round_no"].isin(scored_rounds)]
        trades = int((f["kind"].astype(str) == "entry").sum())
        scores: dict[str, float] = {}
        for b in baselines:
            b_eq = equity[equity["agent"] == b].set_index("round_no")["equity"].reindex(frame.index)
            if b_eq.isna().any():
                continue
            b_curve, _ = _chained(pd.Series(b_eq.to_numpy(np.float64), index=curve_eq.index), scored)
            scores[b] = sharpe(b_curve, periods_per_year=ppy)
        days = float(np.diff(ts)[scored[1:]].sum()) / _DAY_NS
        out.append(
            PaperRecord(
                run_id=run.run_id,
                agent=agent.agent,
                model_uri=agent.model,
                version=version,
                attributed_by=how,
                rounds=int(traded.sum()),
                scored_bars=int(scored.sum()),
                days=days,
                first=pd.Timestamp(int(ts[scored][0]), tz="UTC"),
                last=pd.Timestamp(int(ts[scored][-1]), tz="UTC"),
                metrics=_scores(curve, returns, ppy, trades, scores),
                baselines=scores,
                excluded=excluded,
            )
        )
    return out


def _empty_record(
    run_id: str, agent: Any, version: str, how: str, rounds: int, excluded: dict[str, int]
) -> PaperRecord:
    return PaperRecord(
        run_id=run_id,
        agent=agent.agent,
        model_uri=agent.model,
        version=version,
        attributed_by=how,
        rounds=rounds,
        scored_bars=0,
        days=0.0,
        first=None,
        last=None,
        metrics={"paper_trades": 0.0, "paper_bars": 0.0},
        baselines={},
        excluded=excluded,
    )


def find_paper_record(
    registered_model: str,
    version: str,
    *,
    history: Sequence[Mapping[str, Any]],
    current_holder: str | None,
    db_url: str | None = None,
    job: str | None = None,
) -> PaperSearch:
    """The paper record of `registered_model` version `version` in the arena ledger at `db_url` (default: the
    arena store's), from the paper runs (only `paper-job-<job>` when `job` is given).

    `history` is the `paper` alias's promotion history and `current_holder` the version holding `paper` now; they
    attribute the rounds of agents that load `models:/<name>@paper`. When several agents or runs traded the
    version, the record with the most scored bars is judged and the others are listed.
    """
    from arena_lib.arena.store import ArenaStore, redact_url
    from arena_lib.research.validation import DEFAULT_BASELINES

    url = ledger_url(db_url)
    shown = redact_url(url)
    missing = _missing_sqlite(url)
    if missing is not None:
        return PaperSearch(shown, None, reason=f"no arena ledger at {missing}: no paper job has run there")
    store = ArenaStore(url)
    try:
        runs = store.runs()
        runs = runs[runs["mode"] == "paper"]
        if job is not None:
            runs = runs[runs["run_id"] == f"paper-job-{job}"]
        where = f"paper run paper-job-{job}" if job is not None else "paper run"
        if runs.empty:
            return PaperSearch(shown, None, reason=f"no {where} in the ledger {shown}")
        intervals = holder_intervals(history, current_holder)
        notes = []
        if history and intervals[-1].version is None:
            notes.append(
                f"{registered_model}@{PAPER_ALIAS} is held by version {current_holder or 'none'} but its history ends "
                f"at version {history[-1].get('version')}: bars since that move are credited to no version"
            )
        records: list[PaperRecord] = []
        for run_id in runs["run_id"]:
            records += _records_of_run(
                store, store.get_run(run_id), registered_model, version, intervals, DEFAULT_BASELINES
            )
    finally:
        store.engine.dispose()
    if not records:
        reason = (
            f"no {where} in {shown} has an agent trading {registered_model} version {version} "
            f"(models:/{registered_model}@{PAPER_ALIAS} or models:/{registered_model}/{version})"
        )
        return PaperSearch(shown, None, reason=reason, notes=tuple(notes))
    records.sort(key=lambda r: (r.scored_bars, r.last.value if r.last is not None else 0), reverse=True)
    best = records[0]
    reason = "" if best.scored_bars else f"{best.summary()}: no bar of it is attributable to version {version}"
    return PaperSearch(shown, best, tuple(records[1:]), reason=reason, notes=tuple(notes))
