"""The monitor's MLflow reader against a real (temporary) MLflow store: runs, registry aliases, gate reports.

The store is written the way research writes it: `tracking.start_run` runs with metrics, registered model versions,
and `promotion.promote`, which writes the gate reports (`gate_reports/<alias>-<stamp>.json` + `gate.<alias>.*`
tags). The model artifact is a minimal `MLmodel` file (no trained model: the gates judged here read run metrics,
and training one would cost seconds for nothing the reader looks at).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from arena_lib.core.clock import SimulatedClock
from arena_lib.monitor import research
from arena_lib.workflow import tracking
from arena_lib.workflow.promotion import Gates, promote
from tests.tool_homes import MLFLOW_ENV, redirect_tool_homes, reset_mlflow

GATES = Gates.model_validate(
    {
        "version": 1,
        "min_oos_trades": 30,
        "min_sharpe_margin": 0.1,
        "max_pbo": 0.5,
        "min_deflated_sharpe": None,
        "max_drawdown": -0.3,
        "lookahead": None,
        "llm_cutoff": None,
        "min_paper_days": None,
    }
)
GOOD = {
    "oos_trades": 60,
    "wf_oos_sharpe": 1.4,
    "best_baseline_oos_sharpe": 0.6,
    "pbo": 0.2,
    "wf_oos_max_drawdown": -0.1,
}
T0 = pd.Timestamp("2026-01-05 12:00", tz="UTC")


@dataclass(frozen=True)
class Store:
    uri: str
    good_run: str
    bad_run: str
    plain_run: str


def _register(run_id: str, name: str) -> str:
    """A model version of `name` for run `run_id`, backed by a minimal MLmodel file."""
    mlc = tracking.client()
    mlc.log_text(run_id, "artifact_path: model\nflavors: {}\nmetadata: {}\n", "model/MLmodel")
    if not mlc.search_registered_models(f"name='{name}'"):
        mlc.create_registered_model(name)
    return str(mlc.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version)


def build_store(root: Path, mp: pytest.MonkeyPatch) -> Store:
    """A fresh MLflow store under `root`, pointed at by `MLFLOW_TRACKING_URI` (set through `mp`), as research leaves it:
    a feature run, a refused candidate and a promoted one (candidate, then paper) of the model `eth_xgb`."""
    (root / "mlruns").mkdir(parents=True)
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    for name in MLFLOW_ENV:
        mp.delenv(name, raising=False)
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("ARENA_HOME", str(root))
    redirect_tool_homes(mp, root / "homes")
    with tracking.start_run("features", run_name="feature-scan") as run:
        tracking.log_metrics({"n_features": 12})
    plain = run.info.run_id
    with tracking.start_run("xgb-eth", run_name="weak") as run:
        tracking.log_metrics({**GOOD, "oos_trades": 5})
    bad = run.info.run_id
    _register(bad, "eth_xgb")
    with tracking.start_run("xgb-eth", run_name="strong") as run:
        tracking.log_metrics(GOOD)
    good = run.info.run_id
    _register(good, "eth_xgb")
    refused = promote(bad, "candidate", gates=GATES, clock=SimulatedClock(T0.value))
    assert not refused.promoted
    assert promote(good, "candidate", gates=GATES, clock=SimulatedClock(T0.value + 10**9)).promoted
    assert promote(good, "paper", gates=GATES, clock=SimulatedClock(T0.value + 2 * 10**9)).promoted
    return Store(uri, good, bad, plain)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with pytest.MonkeyPatch.context() as mp:
        yield build_store(tmp_path_factory.mktemp("research-store"), mp)
        reset_mlflow()


def test_a_missing_store_is_reported_not_created(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    where = research.tracking_store(uri)
    assert where.exists is False
    assert "No MLflow store yet" in where.message
    with pytest.raises(research.TrackingUnavailableError, match="No MLflow store yet"):
        research.open_client(uri)
    assert not (tmp_path / "nowhere").exists()


def test_an_unreadable_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"not a database at all\n" * 100)
    with pytest.raises(research.TrackingUnavailableError, match="cannot read the MLflow store"):
        research.open_client(f"sqlite:///{path}")


def test_credentials_in_a_server_url_are_masked() -> None:
    where = research.tracking_store("postgresql://alice:hunter2@db.internal/mlflow")
    assert "hunter2" not in where.uri
    assert "hunter2" not in where.message
    assert where.exists


def test_experiments_and_runs_newest_first_with_metrics(store: Store) -> None:
    client = research.open_client(store.uri)
    exps = research.experiments(client)
    assert {"features", "xgb-eth"} <= set(exps["name"])
    assert str(exps["created"].dtype) == "datetime64[ms, UTC]" or exps["created"].dt.tz is not None

    runs = research.runs(client)
    assert list(runs["run_id"][:3]) == [store.good_run, store.bad_run, store.plain_run]
    assert list(runs.columns[: len(research.RUN_COLUMNS)]) == research.RUN_COLUMNS
    good = runs.set_index("run_id").loc[store.good_run]
    assert good["experiment"] == "xgb-eth"
    assert good["run_name"] == "strong"
    assert good["status"] == "FINISHED"
    assert good["metric.wf_oos_sharpe"] == pytest.approx(1.4)
    assert good["metric.gate.paper.passed"] == 1.0  # promote logs the verdict as a metric too
    assert good["duration_s"] >= 0
    assert runs["started"].dt.tz is not None

    xgb_id = exps.set_index("name").loc["xgb-eth", "experiment_id"]
    only = research.runs(client, [xgb_id], max_results=1)
    assert list(only["run_id"]) == [store.good_run]
    narrow = research.runs(client, max_metrics=2)
    assert len([c for c in narrow.columns if c.startswith("metric.")]) == 2
    with pytest.raises(ValueError, match="max_results"):
        research.runs(client, max_results=0)


def test_registered_versions_carry_their_aliases(store: Store) -> None:
    models = research.registered_models(research.open_client(store.uri))
    assert list(models.columns) == research.MODEL_COLUMNS
    eth = models[models["model"] == "eth_xgb"].set_index("version")
    assert list(eth.index) == [2, 1]  # newest version first
    assert eth.loc[2, "aliases"] == ["candidate", "paper"]
    assert eth.loc[2, "run_id"] == store.good_run
    assert eth.loc[2, "paper_since"].startswith("2026-01-05T12:00:02")
    assert eth.loc[1, "aliases"] == []


def test_gate_reports_passed_and_refused(store: Store) -> None:
    client = research.open_client(store.uri)
    summary, reports = research.gate_reports(client)
    assert list(summary.columns) == research.REPORT_COLUMNS
    assert len(summary) == 3
    assert list(summary["alias"]) == ["paper", "candidate", "candidate"]  # newest evaluation first
    assert summary["evaluated_at"].iloc[0] == T0 + pd.Timedelta(seconds=2)
    refused = summary[summary["run_id"] == store.bad_run].iloc[0]
    assert refused["passed"] is False or refused["passed"] == False  # noqa: E712 (numpy bool)
    assert refused["failed"] == ["min_oos_trades"]
    assert refused["registered_model"] == "eth_xgb"
    assert refused["version"] == "1"
    assert refused["artifact"].startswith("gate_reports/candidate-")

    checks = research.gate_checks(reports[(store.bad_run, refused["artifact"])])
    assert list(checks.columns) == research.CHECK_COLUMNS
    row = checks.set_index("name").loc["min_oos_trades"]
    assert not row["passed"]
    assert row["value"] == "5"
    assert row["threshold"] == "30"
    assert checks["passed"].sum() == len(checks) - 1

    with pytest.raises(ValueError, match="not a gate report"):
        research.read_gate_report(client, store.good_run, "model/MLmodel")
