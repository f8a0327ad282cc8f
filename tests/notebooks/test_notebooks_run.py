"""Every research notebook runs top to bottom on a fresh kernel under papermill, inside an MLflow run, with tiny
parameters; each test then checks what the notebook logged, not only that it did not fail."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from arena_lib.workflow import tracking
from arena_lib.workflow.notebooks import NotebookRun, run_notebook
from tests.notebooks.conftest import NOTEBOOKS


def _run(name: str, params: dict[str, object], tmp_path: Path) -> NotebookRun:
    return run_notebook(NOTEBOOKS / f"{name}.ipynb", params, output_dir=tmp_path)


def _stdout(run: NotebookRun) -> str:
    nb = nbformat.read(run.output_path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")


def _artifacts(run_id: str, path: str = "") -> list[str]:
    return [a.path for a in tracking.client().list_artifacts(run_id, path)]


def test_01_data_quality(tmp_path: Path) -> None:
    run = _run(
        "01_data_quality", {"symbols": ["BTC/USDT", "ETH/USDT"], "start": "2023-03-20", "end": "2023-03-30"}, tmp_path
    )
    data = tracking.client().get_run(run.run_id).data
    assert run.status == "FINISHED"
    assert data.metrics["symbols"] == 2
    assert data.metrics["missing_bars"] == 2  # the sample's one Binance outage hour, 2023-03-24 13:00, per symbol
    assert data.tags["arena.data_hash"]
    assert "notebook" in _artifacts(run.run_id)
    experiment = tracking.client().get_experiment(run.experiment_id).name
    assert experiment == "data_quality"  # the notebook's own `experiment` parameter, as in JupyterLab


def test_10_feature_engineering(tmp_path: Path) -> None:
    params = {"symbols": ["BTC/USDT", "ETH/USDT"], "start": "2024-01-01", "end": "2024-02-15"}
    run = _run("10_feature_engineering", params, tmp_path)
    assert "look-ahead check: passed" in _stdout(run)
    data = tracking.client().get_run(run.run_id).data
    assert data.metrics["lookahead_leaks"] == 0
    assert data.metrics["features"] == 25
    assert {"feature_ic.csv", "feature_ic.html"} <= set(_artifacts(run.run_id))


def test_30_llm_prompt_lab_replays_the_recorded_model_offline(tmp_path: Path) -> None:
    run = _run("30_llm_prompt_lab", {"n_snapshots": 2}, tmp_path)
    out = _stdout(run)
    assert "OFFLINE: replaying 12 recorded answers of smollm2" in out
    data = tracking.client().get_run(run.run_id).data
    assert data.tags["arena.responses"] == "recorded"
    assert data.metrics["v1.calls"] == data.metrics["v2.calls"] == 2
    assert data.metrics["v1.cache_hit_rate"] == 1.0


def test_30_llm_prompt_lab_refuses_an_unrecorded_snapshot(tmp_path: Path) -> None:
    from arena_lib.workflow.notebooks import NotebookExecutionError

    with pytest.raises(NotebookExecutionError, match="CacheMissError"):
        _run("30_llm_prompt_lab", {"n_snapshots": 2, "start": "2025-06-01"}, tmp_path)


def test_40_validate_strategy_writes_the_report(tmp_path: Path) -> None:
    params = {
        "start": "2024-01-01",
        "end": "2024-03-01",
        "grid": {"fast": [12, 24], "slow": [48, 96]},
        "n_folds": 3,
        "mc_paths": 50,
        "report_dir": str(tmp_path / "validation"),
    }
    run = _run("40_validate_strategy", params, tmp_path)
    data = tracking.client().get_run(run.run_id).data
    for key in ("wf_oos_sharpe", "pbo", "deflated_sharpe", "sharpe_ci_low", "entry_delay_1_metric", "oos_trades"):
        assert key in data.metrics
    [report] = list((tmp_path / "validation").iterdir())
    summary = json.loads((report / "summary.json").read_text())
    assert summary["metrics"]["pbo"] == pytest.approx(data.metrics["pbo"])
    assert "report.html" in [Path(p).name for p in _artifacts(run.run_id, "validation_report")]


def test_50_arena_report(tmp_path: Path) -> None:
    from arena_lib.arena.config import ArenaConfig, RoundSettings
    from arena_lib.arena.session import start_run
    from arena_lib.arena.store import ArenaStore
    from arena_lib.core.config import BacktestConfig
    from arena_lib.core.spec import AgentSpec

    config = ArenaConfig(
        market=BacktestConfig(symbols=("BTC/USDT", "ETH/USDT"), timeframe="1h", start="2025-03-01", end="2025-03-02"),
        rounds=RoundSettings(bars_per_round=2),
        quant=(AgentSpec("sma_cross", {"fast": 5, "slow": 20, "fraction": 0.5}), AgentSpec("buy_and_hold", {})),
        llm=(),
    )
    arena_run = start_run(config, ArenaStore()).run_id  # ARENA_DB_URL points at this package's store
    params = {"period_start": "2025-03-01T06:00", "report_dir": str(tmp_path / "reports")}
    run = _run("50_arena_report", params, tmp_path)
    data = tracking.client().get_run(run.run_id).data
    assert data.params["arena_run"] == arena_run
    assert data.metrics["agents"] == 2
    assert (tmp_path / "reports" / arena_run / "leaderboard.csv").is_file()
    assert "equity_race.html" in _artifacts(run.run_id)


def test_20_train_xgboost_registers_a_candidate_the_ml_agent_can_load(tmp_path: Path) -> None:
    params = {
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "start": "2024-01-01",
        "end": "2024-03-15",
        "n_splits": 3,
        "xgb_params": {"n_estimators": 30, "max_depth": 3},
        "registered_model": "nb_xgb",
    }
    run = _run("20_train_xgboost", params, tmp_path)
    data = tracking.client().get_run(run.run_id).data
    for key in ("cv_auc", "cv_log_loss", "cv_accuracy", "cv_majority_accuracy", "cv_ic", "cv_hit_rate"):
        assert key in data.metrics
    assert data.metrics["oof_bt_trades"] > 0
    # what the promotion gates read besides the backtest: selection statistics over the rules tried
    assert 0.0 <= data.metrics["pbo"] <= 1.0
    assert 0.0 <= data.metrics["deflated_sharpe"] <= 1.0
    assert data.metrics["rule_trials"] == 5
    assert {"notebook", "cv_folds.csv", "oof_equity.html", "rule_selection_returns.parquet"} <= set(
        _artifacts(run.run_id)
    )
    assert tracking.alias_version("nb_xgb", "candidate") == "1"
    assert tracking.client().get_model_version("nb_xgb", "1").run_id == run.run_id  # MLflow 3: a logged model

    from arena_lib.agents.registry import make_agent

    agent = make_agent("model", {"model": "nb_xgb", "alias": "candidate"})
    assert agent.fraction == 0.3  # the trading rule the notebook validated travels with the model
    assert agent.threshold == 0.02


def test_21_train_keras_lstm(tmp_path: Path) -> None:
    params = {
        "symbols": ["BTC/USDT"],
        "start": "2024-01-01",
        "end": "2024-02-15",
        "n_splits": 2,
        "epochs": 2,
        "model_kind": "lstm",
        "keras_params": {"lstm_units": 8, "hidden_units": []},
        "window": 12,
        "registered_model": "nb_lstm",
    }
    run = _run("21_train_keras", params, tmp_path)
    data = tracking.client().get_run(run.run_id).data
    assert "cv_auc" in data.metrics
    assert {"pbo", "deflated_sharpe", "rule_trials"} <= set(data.metrics)
    assert data.tags["arena.data_hash"]
    assert tracking.alias_version("nb_lstm", "candidate") == "1"
    from arena_lib.models.store import model_metadata

    meta = model_metadata(tracking.model_uri("nb_lstm", "candidate"))
    assert meta["arena_kind"] == "lstm"
    assert meta["arena_window"] == 12
