"""Read-only views of the MLflow store for the monitor: experiments, runs, registered models, gate reports.

Why a reader of its own: the monitor must show what research produced without ever writing to MLflow, and without
turning a missing store into a fresh one (MLflow creates and migrates a sqlite database on first contact). So
`tracking_store` checks, without importing mlflow, whether the configured store exists; `open_client` refuses a
missing or unreadable one with a message that says what to run; and every listing is bounded (newest first), so a
store with years of runs still renders in a second. Gate reports are what `arena_lib.workflow.promotion.aliases.promote`
wrote: `gate_reports/<alias>-<stamp>.json` artifacts on a run, found through its `gate.<alias>.report` tags.

mlflow is imported inside functions: importing it costs seconds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from arena_lib.workflow import tracking
from arena_lib.workflow.promotion.aliases import REPORT_DIR

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

RUN_COLUMNS = ["run_id", "run_name", "experiment", "status", "started", "ended", "duration_s", "git_sha", "user"]
MODEL_COLUMNS = ["model", "version", "aliases", "status", "run_id", "created", "paper_since", "description"]
REPORT_COLUMNS = [
    "evaluated_at",
    "alias",
    "passed",
    "failed",
    "registered_model",
    "version",
    "run_id",
    "run_name",
    "artifact",
]
CHECK_COLUMNS = ["name", "passed", "value", "threshold", "detail"]
_ALIAS_ORDER = {alias: k for k, alias in enumerate(tracking.ALIASES)}


class TrackingUnavailableError(RuntimeError):
    """The MLflow store is missing, unreadable or unreachable; the message says which and what to do."""


@dataclass(frozen=True)
class TrackingStore:
    """Where the monitor reads MLflow from, and whether anything is there yet."""

    uri: str
    """The tracking URI with credentials masked (safe to show)."""
    exists: bool
    message: str


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if not raw or raw == ":memory:" else Path(raw)


def tracking_store(uri: str | None = None) -> TrackingStore:
    """The configured store (`tracking.tracking_uri()` unless given) and whether it exists; no mlflow import.

    A sqlite store exists when its file does; a server or database URL is assumed to exist until `open_client`
    contacts it.
    """
    uri = uri or tracking.tracking_uri()
    shown = tracking.redact_text(uri)
    path = _sqlite_file(uri)
    if path is not None and not path.is_file():
        return TrackingStore(
            shown,
            False,
            f"No MLflow store yet at {path}: runs appear here once a research notebook has logged one "
            "(`arena notebook run notebooks/20_train_xgboost.ipynb`).",
        )
    if uri.startswith("file:") or (path is None and "://" not in uri):
        return TrackingStore(shown, True, f"file store {shown} (MLflow 3 deprecates it; prefer sqlite or a server)")
    return TrackingStore(shown, True, f"MLflow store {shown}")


def open_client(uri: str | None = None) -> MlflowClient:
    """An `MlflowClient` on the store, after checking that it exists and answers; never creates a store.

    Raises TrackingUnavailableError with the (redacted) URI and the reason.
    """
    uri = uri or tracking.tracking_uri()
    where = tracking_store(uri)
    if not where.exists:
        raise TrackingUnavailableError(where.message)
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # sqlite corruption, a server that is down, a bad URL: all mean "cannot read"
        reason = tracking.redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise TrackingUnavailableError(f"cannot read the MLflow store {where.uri}: {reason}") from None
    return client


def _utc_ms(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _utc_column(values: Iterable[int | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(list(values), dtype="float64"), unit="ms", utc=True)


# ----------------------------------------------------------------------------------------------------- experiments
def experiments(client: MlflowClient, *, max_results: int = 200) -> pd.DataFrame:
    """Active experiments, most recently updated first: experiment_id, name, created, last_update, artifact_location."""
    found = client.search_experiments(max_results=max_results, order_by=["last_update_time DESC"])
    frame = pd.DataFrame(
        {
            "experiment_id": [str(e.experiment_id) for e in found],
            "name": [e.name for e in found],
            "created": _utc_column(e.creation_time for e in found),
            "last_update": _utc_column(e.last_update_time for e in found),
            "artifact_location": [e.artifact_location for e in found],
        }
    )
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------------ runs
def _run_row(run: Run, names: Mapping[str, str]) -> dict[str, Any]:
    info, tags = run.info, run.data.tags
    started, ended = _utc_ms(info.start_time), _utc_ms(info.end_time)
    return {
        "run_id": info.run_id,
        "run_name": info.run_name or "",
        "experiment": names.get(str(info.experiment_id), str(info.experiment_id)),
        "status": info.status,
        "started": started,
        "ended": ended,
        "duration_s": (ended - started).total_seconds() if started is not None and ended is not None else None,
        "git_sha": tags.get("arena.git_sha", "")[:12],
        "user": tags.get("mlflow.user", ""),
    }


def runs(
    client: MlflowClient,
    experiment_ids: Sequence[str] | None = None,
    *,
    max_results: int = 100,
    max_metrics: int = 40,
) -> pd.DataFrame:
    """Runs newest first (at most `max_results`), with their latest metric values as extra columns.

    Columns: `RUN_COLUMNS`, then one column per metric (the `max_metrics` metrics most runs logged, by name).
    `experiment_ids` None: every active experiment.
    """
    if max_results < 1:
        raise ValueError(f"max_results must be at least 1, got {max_results}")
    exps = experiments(client)
    names = dict(zip(exps["experiment_id"], exps["name"], strict=True))
    ids = list(experiment_ids) if experiment_ids is not None else list(names)
    if not ids:
        return pd.DataFrame(columns=RUN_COLUMNS)
    found = client.search_runs(ids, max_results=max_results, order_by=["attributes.start_time DESC"])
    rows = [_run_row(r, names) for r in found]
    metrics = pd.DataFrame([dict(r.data.metrics) for r in found], index=range(len(found)))
    if len(metrics.columns) > max_metrics:
        keep = metrics.notna().sum().sort_values(ascending=False, kind="stable").index[:max_metrics]
        metrics = metrics[sorted(keep)]
    else:
        metrics = metrics[sorted(metrics.columns)]
    base = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for col in ("started", "ended"):
        base[col] = pd.to_datetime(base[col], utc=True)
    return pd.concat([base, metrics.add_prefix("metric.")], axis=1)


# -------------------------------------------------------------------------------------------------------- registry
def registered_models(client: MlflowClient, *, max_models: int = 100, max_versions: int = 20) -> pd.DataFrame:
    """Every version of each registered model (newest `max_versions` per model), with the aliases it holds.

    Columns: `MODEL_COLUMNS`; `aliases` is a list ordered candidate, paper, live (other aliases after them).
    """
    rows: list[dict[str, Any]] = []
    for model in client.search_registered_models(max_results=max_models):
        held: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            held.setdefault(str(version), []).append(alias)
        versions = client.search_model_versions(
            f"name='{_quote(model.name)}'", max_results=max_versions, order_by=["version_number DESC"]
        )
        for v in versions:
            aliases = sorted(held.get(str(v.version), []), key=lambda a: (_ALIAS_ORDER.get(a, 99), a))
            rows.append(
                {
                    "model": model.name,
                    "version": int(v.version),
                    "aliases": aliases,
                    "status": v.status,
                    "run_id": v.run_id or "",
                    "created": _utc_ms(v.creation_timestamp),
                    "paper_since": (v.tags or {}).get("arena.paper_since", ""),
                    "description": v.description or "",
                }
            )
    frame = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    return frame.sort_values(["model", "version"], ascending=[True, False], kind="stable").reset_index(drop=True)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


# ---------------------------------------------------------------------------------------------------- gate reports
def _gate_runs(client: MlflowClient, experiment_ids: list[str], max_runs: int) -> list[Run]:
    """Runs that carry a gate report for any alias, newest first, without duplicates."""
    seen: dict[str, Run] = {}
    for alias in tracking.ALIASES:
        found = client.search_runs(
            experiment_ids,
            filter_string=f"tags.`gate.{alias}.report` LIKE '%'",
            max_results=max_runs,
            order_by=["attributes.start_time DESC"],
        )
        for run in found:
            seen.setdefault(run.info.run_id, run)
    ordered = sorted(seen.values(), key=lambda r: r.info.start_time or 0, reverse=True)
    return ordered[:max_runs]


def read_gate_report(client: MlflowClient, run_id: str, artifact: str) -> dict[str, Any]:
    """One gate report (the JSON `promote` wrote) as a dict; ValueError when the artifact is not a report."""
    if not artifact.startswith(f"{REPORT_DIR}/") or not artifact.endswith(".json"):
        raise ValueError(f"{artifact!r} is not a gate report (expected {REPORT_DIR}/<alias>-<stamp>.json)")
    with tempfile.TemporaryDirectory(prefix="arena-gate-") as tmp:
        local = Path(client.download_artifacts(run_id, artifact, tmp))
        data = json.loads(local.read_text())
    if not isinstance(data, dict) or "checks" not in data:
        raise ValueError(f"run {run_id}: {artifact} holds no gate checks")
    return data


def gate_reports(
    client: MlflowClient, *, max_runs: int = 50, max_reports: int = 200
) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, Any]]]:
    """Gate reports of the newest `max_runs` runs that were judged, newest report first.

    Returns (summary, reports): the summary has `REPORT_COLUMNS`; `reports` maps (run_id, artifact) to the full
    report for `gate_checks`. A report that cannot be read is listed with `passed` None and the reason in `failed`.
    """
    exps = experiments(client)
    ids = list(exps["experiment_id"])
    rows: list[dict[str, Any]] = []
    reports: dict[tuple[str, str], dict[str, Any]] = {}
    if not ids:
        return pd.DataFrame(columns=REPORT_COLUMNS), reports
    for run in _gate_runs(client, ids, max_runs):
        run_id = run.info.run_id
        for item in client.list_artifacts(run_id, REPORT_DIR):
            if item.is_dir or not item.path.endswith(".json") or len(rows) >= max_reports:
                continue
            row: dict[str, Any] = {"run_id": run_id, "run_name": run.info.run_name or "", "artifact": item.path}
            try:
                data = read_gate_report(client, run_id, item.path)
            except (OSError, ValueError) as exc:
                rows.append({**row, "alias": _alias_of(item.path), "passed": None, "failed": [f"unreadable: {exc}"]})
                continue
            reports[(run_id, item.path)] = data
            stamp = data.get("evaluated_at")
            rows.append(
                {
                    **row,
                    "evaluated_at": pd.Timestamp(str(stamp)) if stamp else None,
                    "alias": data.get("alias", _alias_of(item.path)),
                    "passed": bool(data.get("passed")),
                    "failed": list(data.get("failed") or []),
                    "registered_model": data.get("registered_model") or "",
                    "version": data.get("version") or "",
                }
            )
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    frame["evaluated_at"] = pd.to_datetime(frame["evaluated_at"], utc=True)
    frame = frame.sort_values("evaluated_at", ascending=False, na_position="last", kind="stable")
    return frame.reset_index(drop=True), reports


def _alias_of(artifact: str) -> str:
    return Path(artifact).stem.split("-", 1)[0]


def _show(value: Any) -> str:
    """A check's value or threshold as text: numbers to 6 significant digits (60.0 -> "60"), None as ""."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def gate_checks(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per check of a gate report: name, passed, value, threshold, detail (values as text: they mix types)."""
    rows = []
    for check in report.get("checks") or []:
        rows.append(
            {
                "name": str(check.get("name", "")),
                "passed": bool(check.get("passed")),
                "value": _show(check.get("value")),
                "threshold": _show(check.get("threshold")),
                "detail": str(check.get("detail", "")),
            }
        )
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)
