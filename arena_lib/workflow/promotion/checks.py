"""Judge one MLflow run against the promotion gates: one `GateCheck` per gate, each with its value and threshold.

Why each gate reads named metrics from the run: a gate report must be reproducible from what the run logged, so
nothing is recomputed here except the look-ahead test (which needs only the model's feature list). A gate whose
metric the run did not log fails as "not measured": a run cannot pass by not measuring. `METRIC_NAMES` lists, per
gate, the metric sets it accepts: the strategy-validation names (`StrategyValidation.summary()`) first, then the
training notebook's out-of-fold backtest names.

`live` is different: it is judged on the version's paper record in the arena ledger, not on the run's backtest
(`arena_lib.workflow.promotion.paper`). The same check functions then read the record's metrics
(`PAPER_METRIC_NAMES`) instead of the run's, `min_paper_days` counts the days of paper bars the version traded,
a `paper_record` check says which record was judged (or why there is none), and `max_pbo` is n/a (the
probability of backtest overfitting is a property of the research's selection among variants, checked when the
version got `paper`; a paper record is one track).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from arena_lib.core.clock import Clock, WallClock
from arena_lib.workflow import tracking
from arena_lib.workflow.promotion.config import Gates, LookaheadGate, load_gates
from arena_lib.workflow.promotion.paper import PAPER_METRIC_NAMES, PaperSearch, find_paper_record

if TYPE_CHECKING:
    from pathlib import Path

    from mlflow.entities import Run

__all__ = [
    "CUTOFF_KEYS",
    "HISTORY_TAG",
    "LLM_MARKER_KEYS",
    "METRIC_NAMES",
    "PAPER_SINCE_TAG",
    "WINDOW_START_KEYS",
    "GateCheck",
    "GateReport",
    "ModelRef",
    "PromotionError",
    "alias_history",
    "evaluate_gates",
    "find_model_version",
    "lookahead_on_sample",
]

METRIC_NAMES: dict[str, tuple[tuple[str, ...], ...]] = {
    "min_oos_trades": (("oos_trades",), ("oof_bt_trades",)),
    "min_sharpe_margin": (
        ("wf_oos_sharpe", "best_baseline_oos_sharpe"),
        ("oof_bt_sharpe", "oof_buy_hold_sharpe"),
    ),
    "max_pbo": (("pbo",),),
    "min_deflated_sharpe": (("deflated_sharpe",),),
    "max_drawdown": (("wf_oos_max_drawdown",), ("oof_bt_max_drawdown",)),
}
"""Gate -> the metric sets it accepts, in order of preference; the first set the run logged in full is used."""

CUTOFF_KEYS: tuple[str, ...] = ("llm.training_cutoff", "training_cutoff")
"""Run tags or params holding an LLM's training cutoff (a date)."""
WINDOW_START_KEYS: tuple[str, ...] = ("llm.window_start", "window_start", "start")
"""Run tags or params holding the start of the window the LLM was tested on."""
LLM_MARKER_KEYS: tuple[str, ...] = ("llm.provider", "provider")
"""Run tags or params that mark a run as an LLM's even when it logged no cutoff."""
PAPER_SINCE_TAG = "arena.paper_since"
"""Model-version tag: when the version got the `paper` alias through `promote` (ISO 8601, UTC). Informational: the
`min_paper_days` gate counts the paper bars the version traded in the arena ledger."""
HISTORY_TAG = "arena.history.{alias}"
"""Registered-model tag: the alias's promotion history, a JSON list of {action, version, previous, at, by_run}."""

_RUN_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class PromotionError(ValueError):
    """Bad input to a promotion: no such run, no model version, an ambiguous model, an unknown alias."""


@dataclass(frozen=True)
class ModelRef:
    """One registered model version."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class GateCheck:
    """The outcome of one gate: what was measured, against what, and why it passed or failed."""

    name: str
    value: float | str | None
    threshold: float | str | None
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateReport:
    """Every enabled gate's check for one run and target alias, with the settings it was judged by."""

    run_id: str
    alias: str
    registered_model: str | None
    version: str | None
    checks: tuple[GateCheck, ...]
    disabled: tuple[str, ...]
    gates: dict[str, Any] = field(repr=False)
    gates_digest: str
    evaluated_at: str
    paper_record: dict[str, Any] | None = None  # `live` only: the paper record judged (`PaperSearch.to_dict`)

    @property
    def passed(self) -> bool:
        """True when every check passed (gates switched off in the file are listed in `disabled`)."""
        return all(c.passed for c in self.checks)

    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if not c.passed]

    def to_frame(self) -> pd.DataFrame:
        """One row per check: name (index), value, threshold, passed, detail."""
        rows = [asdict(c) for c in self.checks]
        return pd.DataFrame(rows, columns=["name", "value", "threshold", "passed", "detail"]).set_index("name")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what `promote` writes to `gate_reports/<alias>-<stamp>.json`."""
        return {
            "run_id": self.run_id,
            "alias": self.alias,
            "registered_model": self.registered_model,
            "version": self.version,
            "passed": self.passed,
            "failed": self.failed(),
            "checks": [asdict(c) for c in self.checks],
            "disabled": list(self.disabled),
            "gates": self.gates,
            "gates_digest": self.gates_digest,
            "evaluated_at": self.evaluated_at,
            "paper_record": self.paper_record,
        }


@dataclass(frozen=True)
class _Run:
    """What the checks read: the run's metrics, its params and tags, and its model version."""

    run_id: str
    alias: str
    metrics: Mapping[str, float]
    facts: Mapping[str, str]  # tags override params of the same name
    ref: ModelRef | None
    metadata: Mapping[str, Any] | None
    metadata_note: str
    version_tags: Mapping[str, str]
    version_aliases: tuple[str, ...]
    now: pd.Timestamp
    metric_names: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=lambda: METRIC_NAMES)
    paper: PaperSearch | None = None  # `live`: the paper record whose metrics `metrics` holds

    def fact(self, keys: tuple[str, ...]) -> tuple[str, str] | None:
        return next(((k, self.facts[k]) for k in keys if self.facts.get(k, "").strip()), None)

    @property
    def is_llm(self) -> bool:
        return self.metadata is None and (self.fact(CUTOFF_KEYS) or self.fact(LLM_MARKER_KEYS)) is not None


def check_alias(alias: str) -> None:
    """PromotionError unless `alias` is one of `tracking.ALIASES`."""
    if alias not in tracking.ALIASES:
        raise PromotionError(f"unknown alias {alias!r}: use one of {', '.join(tracking.ALIASES)}")


def get_run(run_id: str) -> Run:
    """The MLflow run `run_id`, or a PromotionError naming the store it was looked up in."""
    from mlflow.exceptions import MlflowException

    if not _RUN_ID.match(run_id or ""):
        raise PromotionError(f"{run_id!r} is not an MLflow run id")
    try:
        return tracking.client().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PromotionError(f"no MLflow run {run_id} in {tracking.redact_text(tracking.tracking_uri())}") from None
        raise


def alias_history(registered_model: str, alias: str) -> list[dict[str, Any]]:
    """The promotion history of `registered_model@alias`, oldest first (empty when it has none)."""
    import json

    from mlflow.exceptions import MlflowException

    check_alias(alias)
    try:
        model = tracking.client().get_registered_model(registered_model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PromotionError(f"no registered model {registered_model!r}") from None
        raise
    text = model.tags.get(HISTORY_TAG.format(alias=alias))
    if not text:
        return []
    entries = json.loads(text)
    if not isinstance(entries, list):
        raise PromotionError(f"{registered_model}: tag {HISTORY_TAG.format(alias=alias)} is not a JSON list")
    return entries


def find_model_version(run_id: str, registered_model: str | None = None) -> ModelRef | None:
    """The model version that run `run_id` registered (None when it registered none).

    A run that registered versions of several models needs `registered_model`; a run that registered one model
    twice resolves to its newest version.
    """
    if not _RUN_ID.match(run_id or ""):
        raise PromotionError(f"{run_id!r} is not an MLflow run id")
    found = list(tracking.client().search_model_versions(f"run_id='{run_id}'"))
    names = sorted({str(v.name) for v in found})
    if registered_model is not None:
        found = [v for v in found if v.name == registered_model]
        if not found:
            has = f"it registered {', '.join(names)}" if names else "it registered no model"
            raise PromotionError(f"run {run_id} registered no version of {registered_model!r}; {has}")
    elif len(names) > 1:
        raise PromotionError(f"run {run_id} registered several models ({', '.join(names)}): choose one with --model")
    if not found:
        return None
    newest = max(found, key=lambda v: int(v.version))
    return ModelRef(str(newest.name), str(newest.version))


def lookahead_on_sample(names: list[str], setting: LookaheadGate) -> tuple[dict[str, pd.Timestamp], str]:
    """Run `lookahead_check` for `names` on the latest `setting.bars` 1h bars of the sample: (leaks, window text).

    The BTC bars and the symbol's funding are passed only when a feature needs them (`FeatureSpec.needs`).
    """
    from arena_lib.data.sample import load_sample, load_sample_funding
    from arena_lib.features.lookahead import default_cuts, lookahead_check
    from arena_lib.features.registry import resolve

    needs = set().union(*(spec.needs for spec in resolve(names)))
    frame = load_sample(setting.symbol, "1h").iloc[-setting.bars :]
    if len(frame) < setting.bars:
        raise ValueError(f"the sample holds {len(frame)} {setting.symbol} 1h bars, the gate asks for {setting.bars}")
    first, last = frame.index[0], frame.index[-1]
    btc = load_sample("BTC/USDT", "1h", first, last) if "btc" in needs else None
    funding = load_sample_funding(setting.symbol, first - pd.Timedelta(days=1), last) if "funding" in needs else None
    cuts = default_cuts(len(frame), n_cuts=setting.cuts)
    leaks = lookahead_check(frame, names, btc=btc, funding=funding, cuts=cuts)
    window = f"{len(cuts)} cuts of the latest {len(frame)} {setting.symbol} 1h bars ({first:%Y-%m-%d}..{last:%Y-%m-%d})"
    return leaks, window


# ------------------------------------------------------------------------------------------------------ the checks
def _not_measured(run: _Run, name: str, threshold: float | str | None) -> GateCheck:
    sets = [" + ".join(s) for s in run.metric_names[name]]
    needs = " or ".join(sets)
    where = "on the paper record" if run.paper is not None else "by this run"
    return GateCheck(name, None, threshold, False, f"not measured {where} (needs metric {needs})")


def _metrics(run: _Run, name: str) -> tuple[tuple[str, ...], tuple[float, ...]] | None:
    for keys in run.metric_names.get(name, ()):
        if all(k in run.metrics for k in keys):
            return keys, tuple(float(run.metrics[k]) for k in keys)
    return None


def _min_oos_trades(run: _Run, setting: int) -> GateCheck:
    got = _metrics(run, "min_oos_trades")
    if got is None:
        return _not_measured(run, "min_oos_trades", setting)
    (key,), (value,) = got
    ok = value >= setting
    return GateCheck("min_oos_trades", value, setting, ok, f"{key} {value:g} {'>=' if ok else '<'} {setting}")


def _min_sharpe_margin(run: _Run, setting: float) -> GateCheck:
    got = _metrics(run, "min_sharpe_margin")
    if got is None:
        return _not_measured(run, "min_sharpe_margin", setting)
    (k_sr, k_base), (sr, base) = got
    margin = sr - base
    ok = margin >= setting
    detail = f"{k_sr} {sr:.3f} - {k_base} {base:.3f} = {margin:.3f} {'>=' if ok else '<'} {setting:g}"
    return GateCheck("min_sharpe_margin", margin, setting, ok, detail)


def _max_pbo(run: _Run, setting: float) -> GateCheck:
    if run.paper is not None:
        detail = "n/a on a paper record: PBO measures the research's selection among variants (judged for paper)"
        return GateCheck("max_pbo", None, setting, True, detail)
    got = _metrics(run, "max_pbo")
    if got is None:
        return _not_measured(run, "max_pbo", setting)
    (key,), (value,) = got
    ok = value < setting
    return GateCheck("max_pbo", value, setting, ok, f"{key} {value:.3f} {'<' if ok else '>='} {setting:g}")


def _min_deflated_sharpe(run: _Run, setting: float) -> GateCheck:
    got = _metrics(run, "min_deflated_sharpe")
    if got is None:
        return _not_measured(run, "min_deflated_sharpe", setting)
    (key,), (value,) = got
    ok = value >= setting
    return GateCheck("min_deflated_sharpe", value, setting, ok, f"{key} {value:.3f} {'>=' if ok else '<'} {setting:g}")


def _max_drawdown(run: _Run, setting: float) -> GateCheck:
    got = _metrics(run, "max_drawdown")
    if got is None:
        return _not_measured(run, "max_drawdown", setting)
    (key,), (value,) = got
    ok = value >= setting
    relation = "is not deeper than" if ok else "is deeper than"
    return GateCheck("max_drawdown", value, setting, ok, f"{key} {value:.1%} {relation} the {setting:.1%} limit")


def _lookahead(run: _Run, setting: LookaheadGate) -> GateCheck:
    from arena_lib.data.errors import DataError

    if run.is_llm:
        return GateCheck("lookahead", None, 0, True, "n/a: an LLM run has no feature list (see llm_cutoff)")
    if run.metadata is None:
        return GateCheck("lookahead", None, 0, False, f"not measured: {run.metadata_note}")
    names = [str(n) for n in run.metadata.get("arena_features", [])]
    if not names:
        return GateCheck("lookahead", None, 0, False, "not measured: the model's metadata lists no features")
    try:
        leaks, window = lookahead_on_sample(names, setting)
    except (KeyError, ValueError, DataError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() adds quotes
        return GateCheck("lookahead", None, 0, False, f"could not run: {reason}")
    if leaks:
        listed = ", ".join(f"{n} (first at {t:%Y-%m-%d %H:%M})" for n, t in leaks.items())
        return GateCheck("lookahead", float(len(leaks)), 0, False, f"features change when the future is cut: {listed}")
    return GateCheck("lookahead", 0.0, 0, True, f"all {len(names)} features identical on {window}")


def _date(text: str) -> pd.Timestamp | None:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(stamp) else stamp


def _llm_cutoff(run: _Run, setting: bool) -> GateCheck:
    if run.metadata is not None:
        kind = run.metadata.get("arena_kind", "trained")
        return GateCheck("llm_cutoff", None, None, True, f"n/a: a trained {kind} model has no LLM training cutoff")
    cutoff = run.fact(CUTOFF_KEYS)
    if cutoff is None:
        if run.is_llm:
            keys = " or ".join(CUTOFF_KEYS)
            return GateCheck("llm_cutoff", None, None, False, f"not measured: an LLM run without a {keys} tag/param")
        return GateCheck("llm_cutoff", None, None, True, "n/a: no LLM in this run")
    start = run.fact(WINDOW_START_KEYS)
    if start is None:
        keys = " or ".join(WINDOW_START_KEYS)
        return GateCheck("llm_cutoff", None, cutoff[1], False, f"not measured: no test-window start ({keys})")
    cut, begin = _date(cutoff[1]), _date(start[1])
    if cut is None or begin is None:
        detail = f"unreadable dates: {cutoff[0]}={cutoff[1]!r}, {start[0]}={start[1]!r}"
        return GateCheck("llm_cutoff", start[1], cutoff[1], False, detail)
    ok = begin.date() > cut.date()
    relation = "after" if ok else "on or before"
    detail = f"window starts {begin:%Y-%m-%d}, {relation} the training cutoff {cut:%Y-%m-%d}"
    return GateCheck("llm_cutoff", start[1], cutoff[1], ok, detail)


def _min_paper_days(run: _Run, setting: float) -> GateCheck:
    if run.alias != "live":
        return GateCheck("min_paper_days", None, setting, True, "n/a: checked only when promoting to live")
    record = run.paper.record if run.paper is not None else None
    if record is None:
        reason = run.paper.reason if run.paper is not None else "no paper record was read"
        return GateCheck("min_paper_days", 0.0, setting, False, f"0 paper days: {reason}")
    ok = record.days >= setting
    detail = (
        f"{record.days:.1f} days {'>=' if ok else '<'} {setting:g} of paper bars traded by version {record.version} "
        f"({record.scored_bars} bars in run {record.run_id})"
    )
    return GateCheck("min_paper_days", round(record.days, 4), setting, ok, detail)


def _paper_record(run: _Run) -> GateCheck:
    """Which paper record `live` is judged on, or why there is none (then every record gate is unmeasured)."""
    search = run.paper
    if search is None or search.record is None or search.record.scored_bars == 0:
        reason = search.reason if search is not None else "no paper record was read"
        notes = f" ({'; '.join(search.notes)})" if search is not None and search.notes else ""
        return GateCheck("paper_record", None, "paper run", False, f"no paper record: {reason}{notes}")
    record = search.record
    detail = record.summary()
    left_out = {k: v for k, v in record.excluded.items() if v}
    if left_out:
        detail += "; rounds not credited: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in left_out.items())
    if search.others:
        detail += f"; {len(search.others)} shorter record(s) not judged"
    if search.notes:
        detail += "; " + "; ".join(search.notes)
    return GateCheck("paper_record", float(record.scored_bars), "paper run", True, detail)


def _holds_paper(run: _Run) -> GateCheck:
    if run.ref is None:
        return GateCheck("holds_paper", None, "paper", False, "the run registered no model version")
    ok = "paper" in run.version_aliases
    held = ", ".join(run.version_aliases) or "no alias"
    detail = (
        f"{run.ref.name} version {run.ref.version} holds paper"
        if ok
        else f"live needs the version to hold paper first; {run.ref.name} version {run.ref.version} holds {held}"
    )
    return GateCheck("holds_paper", held, "paper", ok, detail)


_CHECKS: dict[str, Callable[[_Run, Any], GateCheck]] = {
    "min_oos_trades": _min_oos_trades,
    "min_sharpe_margin": _min_sharpe_margin,
    "max_pbo": _max_pbo,
    "min_deflated_sharpe": _min_deflated_sharpe,
    "max_drawdown": _max_drawdown,
    "lookahead": _lookahead,
    "llm_cutoff": _llm_cutoff,
    "min_paper_days": _min_paper_days,
}


def _read_paper(ref: ModelRef | None, gates: Gates, db_url: str | None) -> PaperSearch:
    """The version's paper record in the arena ledger (`db_url`, else the gates file's, else the store default)."""
    from arena_lib.arena.store import redact_url
    from arena_lib.workflow.promotion.paper import ledger_url

    source = gates.paper_ledger
    url = db_url or source.db_url
    if ref is None:
        return PaperSearch(redact_url(ledger_url(url)), None, reason="the run registered no model version")
    return find_paper_record(
        ref.name,
        ref.version,
        history=alias_history(ref.name, "paper"),
        current_holder=tracking.alias_version(ref.name, "paper"),
        db_url=url,
        job=source.job,
    )


def _read_run(run_id: str, alias: str, ref: ModelRef | None, now: pd.Timestamp) -> _Run:
    from arena_lib.models.store import model_metadata

    mlflow_run = get_run(run_id)
    metadata: dict[str, Any] | None = None
    note = "the run registered no model version (no feature list to check)"
    tags: dict[str, str] = {}
    aliases: tuple[str, ...] = ()
    if ref is not None:
        version = tracking.client().get_model_version(ref.name, ref.version)
        tags, aliases = dict(version.tags), tuple(version.aliases)
        try:
            metadata = model_metadata(ref.uri)
        except ValueError as exc:
            note = str(exc)
    return _Run(
        run_id=run_id,
        alias=alias,
        metrics=dict(mlflow_run.data.metrics),
        facts={**mlflow_run.data.params, **mlflow_run.data.tags},
        ref=ref,
        metadata=metadata,
        metadata_note=note,
        version_tags=tags,
        version_aliases=aliases,
        now=now,
    )


def beats_incumbent(run: _Run, incumbent_alias: str) -> GateCheck:
    """The challenger's out-of-sample Sharpe against the version holding `incumbent_alias` now, on the same metric.

    Why the same metric: a retrained model is judged the way its incumbent was (walk-forward or out-of-fold Sharpe,
    whichever both runs logged), so the comparison is like for like. No incumbent, or the challenger itself holding
    the alias, passes: there is nothing to beat.
    """
    name = f"beats_{incumbent_alias}"
    if run.ref is None:
        return GateCheck(name, None, incumbent_alias, False, "not measured: the run registered no model version")
    holder = tracking.alias_version(run.ref.name, incumbent_alias)
    if holder is None or holder == run.ref.version:
        detail = f"no other version holds {run.ref.name}@{incumbent_alias}: nothing to beat"
        return GateCheck(name, None, incumbent_alias, True, detail)
    incumbent_run = tracking.client().get_model_version(run.ref.name, holder).run_id
    theirs = dict(get_run(incumbent_run).data.metrics) if incumbent_run else {}
    for k_sr, _ in METRIC_NAMES["min_sharpe_margin"]:
        if k_sr in run.metrics and k_sr in theirs:
            mine, other = float(run.metrics[k_sr]), float(theirs[k_sr])
            ok = mine > other
            detail = (
                f"{k_sr} {mine:.3f} {'>' if ok else '<='} {other:.3f} of version {holder} "
                f"(run {incumbent_run}), the holder of @{incumbent_alias}"
            )
            return GateCheck(name, mine, other, ok, detail)
    detail = f"not measured: no out-of-sample Sharpe logged by both this run and version {holder}'s run"
    return GateCheck(name, None, incumbent_alias, False, detail)


def judge(
    run_id: str,
    alias: str,
    gates: Gates,
    ref: ModelRef | None,
    now: pd.Timestamp,
    must_beat: str | None = None,
    paper_db_url: str | None = None,
) -> GateReport:
    """The gate report of run `run_id` (whose model version is `ref`) for `alias` at time `now`.

    `live` is judged on the version's paper record in the arena ledger at `paper_db_url` (default: the gates
    file's `paper_ledger.db_url`, else the arena store's): the run's own metrics are not read. `must_beat` adds
    the challenger check `beats_<alias>` against the version holding that alias now.
    """
    if alias == "live" and must_beat is not None:
        raise PromotionError("must_beat compares training backtests; live is judged on the paper record alone")
    run = _read_run(run_id, alias, ref, now)
    if alias == "live":
        paper = _read_paper(ref, gates, paper_db_url)
        metrics = paper.record.metrics if paper.record is not None else {}
        run = replace(run, metrics=metrics, metric_names=PAPER_METRIC_NAMES, paper=paper)
    enabled = gates.enabled()
    checks = [_CHECKS[name](run, setting) for name, setting in enabled.items()]
    if alias == "live":
        checks[:0] = [_holds_paper(run), _paper_record(run)]
    if must_beat is not None:
        check_alias(must_beat)
        checks.append(beats_incumbent(run, must_beat))
    return GateReport(
        run_id=run_id,
        alias=alias,
        registered_model=ref.name if ref else None,
        version=ref.version if ref else None,
        checks=tuple(checks),
        disabled=tuple(gates.disabled()),
        gates=gates.model_dump(mode="json"),
        gates_digest=gates.digest(),
        evaluated_at=now.isoformat(),
        paper_record=None if run.paper is None else tracking.redact(run.paper.to_dict()),
    )


def evaluate_gates(
    run_id: str,
    alias: str,
    gates: Gates | str | Path | None = None,
    *,
    registered_model: str | None = None,
    clock: Clock | None = None,
    must_beat: str | None = None,
    paper_db_url: str | None = None,
) -> GateReport:
    """Judge run `run_id` for `alias` against `gates` (a `Gates`, a gates file, or None for `configs/gates.yaml`).

    Writes nothing: `promote` evaluates, records the report and moves the alias. Promoting to `live` adds the
    `holds_paper` check (the version must hold `paper` now) and judges the version's paper record in the arena
    ledger at `paper_db_url` instead of the run's metrics (see the module docstring).

    Raises:
        PromotionError: unknown alias, no such run, or a run with several registered models and no
            `registered_model`.
        GatesConfigError: a bad gates file.
    """
    check_alias(alias)
    resolved = gates if isinstance(gates, Gates) else load_gates(gates)
    get_run(run_id)
    ref = find_model_version(run_id, registered_model)
    now = pd.Timestamp((clock or WallClock()).now_ns(), tz="UTC")
    return judge(run_id, alias, resolved, ref, now, must_beat, paper_db_url)
