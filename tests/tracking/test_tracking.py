"""`workflow.tracking` against a real MLflow sqlite store: where it lives, what runs log, redaction, the registry."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from arena_lib.core import paths
from arena_lib.workflow import tracking

SECRET_KEY_VALUE = "sk-abcdefghijklmnopqrstuvwx0123456789"
DB_URL = "postgresql://arena:hunter2@db.internal:5432/arena"


def _read_artifact(run_id: str, path: str) -> str:
    return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


# ------------------------------------------------------------------------------------------------ where it lives
def test_default_uri_is_absolute_sqlite_under_project_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARENA_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    expected = f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert tracking.default_tracking_uri() == expected
    assert tracking.tracking_uri() == expected
    assert expected.startswith("sqlite:////")  # four slashes: an absolute path, independent of the cwd
    assert (tmp_path / "mlruns").is_dir()
    assert tracking.artifact_root() == tmp_path.resolve() / "mlruns" / "artifacts"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"
    other = tmp_path / "elsewhere" / "store.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    assert tracking.artifact_root() == other.parent / "artifacts"


def test_project_root_walks_up_from_a_notebook_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    deep = project / "notebooks" / "research"
    deep.mkdir(parents=True)
    (project / "arena_lib").mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.delenv("ARENA_HOME")
    monkeypatch.chdir(deep)
    assert paths.project_root() == project.resolve()
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == tmp_path.resolve()  # no project above: the cwd


def test_experiment_artifacts_live_under_mlruns_artifacts(arena_home: Path) -> None:
    exp_id = tracking.experiment_id("tracking artifacts")
    assert tracking.experiment_id("tracking artifacts") == exp_id
    experiment = tracking.client().get_experiment(exp_id)
    assert experiment.artifact_location == (arena_home / "mlruns" / "artifacts" / "tracking_artifacts").as_uri()
    with tracking.start_run("tracking artifacts") as run:
        mlflow.log_text("hello", "notes/hello.txt")
    written = arena_home / "mlruns" / "artifacts" / "tracking_artifacts" / run.info.run_id / "artifacts" / "notes"
    assert (written / "hello.txt").read_text() == "hello"


# ------------------------------------------------------------------------------------------------------------ runs
def test_start_run_logs_params_spec_and_provenance(git_head: str) -> None:
    spec = {"agent": "sma_cross", "params": {"fast": 3, "slow": 8}, "symbols": ["BTC/USDT", "ETH/USDT"]}
    params = {"model": {"depth": 3, "eta": 0.1}, "symbols": ["BTC/USDT", "ETH/USDT"], "notes": "x" * 7000}
    with tracking.start_run(
        "tracking-provenance", run_name="r1", params=params, spec=spec, data_hash="abc123", tags={"purpose": "test"}
    ) as run:
        logged = tracking.log_metrics({"sharpe": 1.5, "broken": math.nan, "huge": math.inf}, step=2)
    assert logged == {"sharpe": 1.5}
    stored = tracking.client().get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.info.run_name == "r1"
    p = stored.data.params
    assert p["model.depth"] == "3"
    assert p["model.eta"] == "0.1"
    assert json.loads(p["symbols"]) == ["BTC/USDT", "ETH/USDT"]
    assert len(p["notes"]) == tracking.MAX_PARAM_LENGTH
    assert p["notes"].endswith("chars]")
    t = stored.data.tags
    assert t["arena.git_sha"] == git_head
    assert t["mlflow.source.git.commit"] == git_head
    assert t["arena.git_dirty"] == "false"
    assert t["arena.data_hash"] == "abc123"
    assert t["arena.version"] == tracking.arena_version() != ""
    assert t["purpose"] == "test"
    assert stored.data.metrics == {"sharpe": 1.5}
    assert json.loads(_read_artifact(run.info.run_id, "spec.json")) == spec


def test_git_state_sees_a_dirty_tree(arena_home: Path, git_head: str) -> None:
    assert paths.git_state() == (git_head, False)
    scratch = arena_home / "scratch.py"
    scratch.write_text("x = 1\n")
    try:
        assert paths.git_state() == (git_head, True)
    finally:
        scratch.unlink()


def test_a_failing_block_marks_the_run_failed() -> None:
    with pytest.raises(ZeroDivisionError), tracking.start_run("tracking-failures") as run:
        _ = 1 / 0
    assert tracking.client().get_run(run.info.run_id).info.status == "FAILED"
    assert mlflow.active_run() is None


def test_resuming_mlflow_run_id_logs_into_it_and_leaves_its_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a notebook kernel does: MLFLOW_RUN_ID names the run its owner opened and will end."""
    mlc = tracking.client()
    owner = mlc.create_run(tracking.experiment_id("tracking-resume"))
    run_id = owner.info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with tracking.start_run("not-created", params={"alpha": 1}, data_hash="h1") as run:
        assert run.info.run_id == run_id
        tracking.log_metrics({"first": 1.0})
    assert mlc.get_run(run_id).info.status == "RUNNING"
    # a later cell resumes the same run again (mlflow's end_run would have unset the variable)
    with tracking.start_run("not-created", params={"alpha": 1, "beta": "b"}) as again:
        assert again.info.run_id == run_id
        tracking.log_metrics({"second": 2.0})
    with pytest.raises(ValueError, match=r"alpha: run has '1', new value '2'"):  # noqa: SIM117
        with tracking.start_run("not-created", params={"alpha": 2}):
            pytest.fail("a clashing param must stop the block before it runs")
    stored = mlc.get_run(run_id)
    assert stored.info.status == "RUNNING"
    assert stored.data.metrics == {"first": 1.0, "second": 2.0}
    assert stored.data.params == {"alpha": "1", "beta": "b"}
    assert stored.data.tags["arena.data_hash"] == "h1"
    assert mlc.get_experiment_by_name("not-created") is None
    assert mlflow.active_run() is None
    mlc.set_terminated(run_id, "FINISHED")  # the owner ends it
    assert mlc.get_run(run_id).info.status == "FINISHED"


def test_resume_false_opens_a_child_of_the_env_run(monkeypatch: pytest.MonkeyPatch) -> None:
    mlc = tracking.client()
    outer = mlc.create_run(tracking.experiment_id("tracking-resume")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)
    with tracking.start_run("tracking-children", resume=False) as child:
        assert child.info.run_id != outer
    assert mlc.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == outer
    assert mlc.get_run(outer).info.status == "RUNNING"
    mlc.set_terminated(outer)


def test_nested_runs_need_nested_true() -> None:
    with tracking.start_run("tracking-nesting") as parent:
        with pytest.raises(RuntimeError, match="already active"), tracking.start_run("tracking-nesting"):
            pass
        with tracking.start_run("tracking-nesting", nested=True) as child:
            pass
    tags = tracking.client().get_run(child.info.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id


# ------------------------------------------------------------------------------------------------------- redaction
def test_redact_masks_secret_keys_and_credential_values() -> None:
    data: dict[str, Any] = {
        "api_key": SECRET_KEY_VALUE,
        "OPENAI_API_KEY": "x",
        "apiKey": "x",
        "client_secret": "x",
        "hf_token": "x",
        "password": "x",
        "Authorization": "Bearer abc",
        "exchange": {"passphrase": "x", "private_key": "x", "name": "binance"},
        "max_tokens": 256,
        "token_limit": 1000,
        "db_url": DB_URL,
        "urls": [DB_URL, "https://example.com/a"],
        "note": f"key {SECRET_KEY_VALUE} leaked",
        "header": "Bearer abcdefghijklmnopqrstuvwxyz",
    }
    clean = tracking.redact(data)
    for key in ("api_key", "OPENAI_API_KEY", "apiKey", "client_secret", "hf_token", "password", "Authorization"):
        assert clean[key] == "***", key
    assert clean["exchange"] == {"passphrase": "***", "private_key": "***", "name": "binance"}
    assert clean["max_tokens"] == 256
    assert clean["token_limit"] == 1000
    assert clean["db_url"] == "postgresql://***@db.internal:5432/arena"
    assert clean["urls"] == ["postgresql://***@db.internal:5432/arena", "https://example.com/a"]
    assert clean["note"] == "key *** leaked"
    assert clean["header"] == "***"
    assert data["api_key"] == SECRET_KEY_VALUE  # the input is not modified


def test_secrets_never_reach_the_store() -> None:
    params = {"api_key": SECRET_KEY_VALUE, "llm": {"base_url": "https://user:hunter2@llm.example/v1", "max_tokens": 9}}
    spec = {"store": {"url": DB_URL}, "llm": {"api_key": SECRET_KEY_VALUE}}
    tags = {"authorization": f"Bearer {SECRET_KEY_VALUE}", "db": DB_URL}
    with tracking.start_run("tracking-redaction", params=params, spec=spec, tags=tags) as run:
        pass
    stored = tracking.client().get_run(run.info.run_id)
    spec_text = _read_artifact(run.info.run_id, "spec.json")
    everything = json.dumps([stored.data.params, stored.data.tags]) + spec_text
    assert "hunter2" not in everything
    assert SECRET_KEY_VALUE not in everything
    assert stored.data.params["api_key"] == "***"
    assert stored.data.params["llm.base_url"] == "https://***@llm.example/v1"
    assert stored.data.params["llm.max_tokens"] == "9"
    assert stored.data.tags["authorization"] == "***"
    assert json.loads(spec_text)["store"]["url"] == "postgresql://***@db.internal:5432/arena"


# -------------------------------------------------------------------------------------------- metrics and artifacts
def test_logging_helpers_need_a_run_and_numbers() -> None:
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        tracking.log_metrics({"x": 1.0})
    with tracking.start_run("tracking-helpers"), pytest.raises(TypeError, match="metric 'label' must be a number"):
        tracking.log_metrics({"label": "high"})


def test_log_figure_and_frame_write_readable_artifacts(arena_home: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    frame = pd.DataFrame(
        {"close": [100.0, 101.5, 99.0]}, index=pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC")
    )
    plotly_fig = go.Figure(go.Scatter(x=frame.index, y=frame["close"]))
    mpl_fig, ax = plt.subplots()
    ax.plot(frame["close"].to_numpy())
    with tracking.start_run("tracking-artifacts-helpers") as run:
        html = tracking.log_figure(plotly_fig, "figures/equity")
        png = tracking.log_figure(mpl_fig, "figures/close")
        parquet = tracking.log_frame(frame, "tables/close")
        csv = tracking.log_frame(frame, "tables/close.csv")
        with pytest.raises(TypeError, match="plotly or matplotlib"):
            tracking.log_figure(frame, "nope")
        with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
            tracking.log_frame(frame, "tables/close.xlsx")
    plt.close(mpl_fig)
    assert (html, png, parquet, csv) == (
        "figures/equity.html",
        "figures/close.png",
        "tables/close.parquet",
        "tables/close.csv",
    )
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(arena_home / "dl")))
    assert "cdn.plot.ly" in (folder / html).read_text()
    assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pd.testing.assert_frame_equal(pd.read_parquet(folder / parquet), frame, check_freq=False)
    assert (folder / csv).read_text().splitlines()[0] == ",close"


# -------------------------------------------------------------------------------------------------------- registry
class _Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return model_input * 2


def test_registry_aliases_round_trip() -> None:
    name = "arena-test-doubler"
    with tracking.start_run("tracking-registry"):
        info = mlflow.pyfunc.log_model(name="model", python_model=_Doubler(), pip_requirements=[])
    assert tracking.register_model(info.model_uri, name) == "1"
    assert tracking.alias_version(name, "candidate") == "1"
    assert tracking.register_model(info.model_uri, name, alias=None, tags={"api_key": "x"}) == "2"
    assert tracking.alias_version(name, "candidate") == "1"
    assert tracking.client().get_model_version(name, "2").tags == {"api_key": "***"}
    tracking.set_alias(name, "paper", "2")
    assert tracking.alias_version(name, "paper") == "2"
    assert tracking.model_uri(name, "paper") == f"models:/{name}@paper"
    loaded = mlflow.pyfunc.load_model(tracking.model_uri(name, "paper"))
    assert loaded.predict(pd.DataFrame({"x": [1.5]}))["x"].tolist() == [3.0]
    tracking.remove_alias(name, "paper")
    assert tracking.alias_version(name, "paper") is None
    assert tracking.alias_version("arena-no-such-model", "live") is None


def test_unknown_alias_is_refused_before_anything_is_registered() -> None:
    for call in (
        lambda: tracking.model_uri("m", "production"),
        lambda: tracking.set_alias("m", "prod", "1"),
        lambda: tracking.alias_version("m", "staging"),
        lambda: tracking.register_model("models:/m-123", "arena-never-registered", alias="prod"),
    ):
        with pytest.raises(ValueError, match="use one of candidate, paper, live"):
            call()
    assert tracking.client().search_registered_models(filter_string="name = 'arena-never-registered'") == []
