"""The Prefect flows end to end under `prefect_test_harness`, on the bundled sample, with every store temporary.

The chain is the design card's promise: a notebook trains and registers a model (research), the gates re-judge the
run and move the alias (validate_and_promote), and a trading job loads the model by that alias and trades through
the arena's engine loop (trade). A failing gate and the kill switch stop the chain with a message that says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_lib.arena.store import ArenaStore
from arena_lib.workflow import tracking
from tests.tool_homes import MLFLOW_ENV, redirect_tool_homes, reset_mlflow

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL = "flow_xgb"
TRAIN = {
    "symbols": ["BTC/USDT", "ETH/USDT"],
    "start": "2024-01-01",
    "end": "2024-03-15",
    "n_splits": 3,
    "xgb_params": {"n_estimators": 30, "max_depth": 3},
    "registered_model": MODEL,
}
LENIENT = {  # every gate on and measured; thresholds a tiny training run clears (this tests the plumbing)
    "version": 1,
    "min_oos_trades": 1,
    "min_sharpe_margin": -100.0,
    "max_pbo": 1.0,
    "min_deflated_sharpe": 0.0,
    "max_drawdown": -1.0,
    "lookahead": {"symbol": "ETH/USDT", "bars": 200, "cuts": 2},
    "llm_cutoff": True,
    "min_paper_days": 14,
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MLflow, the arena store, the LLM cache and the data cache in a temporary folder for the whole module."""
    root = tmp_path_factory.mktemp("flow-stores")
    with pytest.MonkeyPatch.context() as mp:
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        (root / "mlruns").mkdir()
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        mp.setenv("ARENA_DB_URL", f"sqlite:///{root / 'arena.db'}")
        mp.setenv("ARENA_LLM_CACHE_URL", f"sqlite:///{root / 'llm_cache.db'}")
        mp.setenv("ARENA_DATA_CACHE", str(root / "cache"))
        redirect_tool_homes(mp, root / "homes")
        yield root
        reset_mlflow()


def _write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _job_config(root: Path, alias: str = "paper") -> str:
    """Two days of March 2024 after the training window: buy-and-hold beside the model loaded by alias."""
    return _write(
        root / f"job-{alias}.yaml",
        {
            "symbols": ["BTC/USDT", "ETH/USDT"],
            "timeframe": "1h",
            "start": "2024-03-16",
            "end": "2024-03-18",
            "arena": {"bars_per_round": 1, "deadline_s": 30},
            "agents": [
                {"agent": "buy_and_hold", "params": {"fraction": 0.3}},
                {"agent": "model", "label": f"{MODEL}@{alias}", "params": {"model": MODEL, "alias": alias}},
            ],
        },
    )


@pytest.fixture(scope="module")
def trained(stores: Path) -> str:
    """research: the XGBoost notebook with tiny parameters registers `flow_xgb` version 1 as `candidate`."""
    from flows.research import research

    out = research("notebooks/20_train_xgboost.ipynb", TRAIN)
    assert out["status"] == "FINISHED"
    assert tracking.alias_version(MODEL, "candidate") == "1"
    return out["run_id"]


def test_ingest_seeds_the_cache_from_the_sample_and_a_rerun_adds_nothing(stores: Path) -> None:
    from flows.ingest import ingest

    first = ingest(symbols=["BTC/USDT", "ETH/USDT"], timeframes=["1h"], source="sample")
    datasets = {(i["symbol"], i["dataset"]) for i in first["items"]}
    assert datasets == {("BTC/USDT", "1h"), ("ETH/USDT", "1h"), ("BTC/USDT", "funding"), ("ETH/USDT", "funding")}
    assert first["rows_added"] > 20_000
    for item in first["items"]:
        assert Path(item["path"]).is_file()
        assert item["source"] == "sample"
    assert ingest(symbols=["BTC/USDT", "ETH/USDT"], timeframes=["1h"], source="sample")["rows_added"] == 0


def test_a_failing_gate_leaves_the_aliases_and_names_the_check(stores: Path, trained: str) -> None:
    from flows.validate_and_promote import validate_and_promote

    strict = _write(stores / "strict.yaml", {**LENIENT, "min_oos_trades": 1_000_000})
    before = {a: tracking.alias_version(MODEL, a) for a in ("candidate", "paper", "live")}
    state = validate_and_promote(trained, alias="paper", registered_model=MODEL, gates=strict, return_state=True)
    assert state.is_failed()
    assert "failed min_oos_trades" in str(state.message)
    assert "< 1000000" in str(state.message)
    assert {a: tracking.alias_version(MODEL, a) for a in ("candidate", "paper", "live")} == before
    reports = [a.path for a in tracking.client().list_artifacts(trained, "gate_reports")]
    assert any(p.startswith("gate_reports/paper-") for p in reports), "the failed report is still recorded"


def test_research_then_promote_then_trade_runs_end_to_end(stores: Path, trained: str) -> None:
    from flows.trade import trade
    from flows.validate_and_promote import validate_and_promote

    gates = _write(stores / "lenient.yaml", LENIENT)
    promoted = validate_and_promote(trained, alias="paper", registered_model=MODEL, gates=gates)
    assert promoted["version"] == "1"
    assert tracking.alias_version(MODEL, "paper") == "1"

    config = _job_config(stores)
    first = trade(config=config, job="chain", mode="replay", bars=24)
    assert first["skipped"] == {}
    again = trade(config=config, job="chain", mode="replay", bars=24)
    assert again["run_id"] == first["run_id"], "every invocation continues the job's one run"

    store = ArenaStore()
    run_id = first["run_id"]
    agents = {r.agent: r for r in store.run_agents(run_id)}
    assert agents[f"{MODEL}@paper"].model == f"models:/{MODEL}@paper"
    assert store.rounds_frame(run_id)["round_no"].tolist() == list(range(48))
    decisions = store.decisions_frame(run_id, f"{MODEL}@paper")
    assert len(decisions) > 0, "the model agent decided on every round"
    fills = store.fills_frame(run_id)
    assert len(fills) > 0
    assert set(fills["agent"]) >= {"buy_and_hold"}


def test_a_halted_store_stops_trade_with_the_reason(stores: Path) -> None:
    from flows.trade import trade

    store = ArenaStore()
    store.set_halt(True, reason="exchange maintenance", by="ops", at_ns=1_700_000_000_000_000_000)
    try:
        state = trade(config=_job_config(stores), job="halted", mode="replay", bars=4, return_state=True)
        assert state.is_cancelled()
        assert "exchange maintenance" in str(state.message)
        assert "ops" in str(state.message)
        assert "replay-job-halted" not in set(store.runs()["run_id"]), "no bar was played"
    finally:
        store.set_halt(False, by="ops", at_ns=1_700_000_000_000_000_001)


def test_live_trading_without_the_latch_is_refused_naming_every_missing_item(
    stores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.trade import trade

    monkeypatch.delenv("ARENA_LIVE_CONFIRM", raising=False)
    state = trade(config=_job_config(stores), mode="live", return_state=True)
    assert state.is_failed()
    message = str(state.message)
    assert "mode: live" in message
    assert "ARENA_LIVE_CONFIRM=LIVE" in message


def test_report_runs_the_arena_report_notebook_for_the_period(stores: Path) -> None:
    from flows.report import report
    from flows.trade import trade

    run_id = trade(config=_job_config(stores), job="report", mode="replay", bars=12)["run_id"]
    out = report(run_id=run_id, days=1.0, end="2024-03-16T12:00:00+00:00")
    run = tracking.client().get_run(out["run_id"])
    assert run.data.params["run_id"] == run_id
    assert run.data.params["period_start"].startswith("2024-03-15T12:00")


def test_deployments_carry_the_schedules_and_the_trade_limit(stores: Path) -> None:
    from flows.deploy import deployments

    built = {d.name: d for d in deployments()}
    assert set(built) == {"ingest-hourly", "trade-every-bar", "retrain-weekly", "report-daily"}
    crons = {name: d.schedules[0].schedule.cron for name, d in built.items()}
    assert crons == {
        "ingest-hourly": "1 * * * *",
        "trade-every-bar": "1 * * * *",
        "retrain-weekly": "30 2 * * 1",
        "report-daily": "15 0 * * *",
    }
    trade = built["trade-every-bar"]
    assert trade.concurrency_limit == 1
    assert trade.concurrency_options is not None
    assert trade.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert all(d.concurrency_limit is None for n, d in built.items() if n != "trade-every-bar")
    assert built["trade-every-bar"].parameters["mode"] == "paper", "paper by default"


def test_retries_are_on_io_tasks_only() -> None:
    from flows.ingest import candles_task, funding_task
    from flows.trade import fetch_latest_bars, play_new_bars

    assert candles_task.retries > 0
    assert funding_task.retries > 0
    assert fetch_latest_bars.retries > 0
    assert play_new_bars.retries == 0


def test_the_server_accepts_the_deployments_with_the_trade_limit(stores: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.deploy import deployments

    for deployment in deployments():
        deployment.apply()
    with get_client(sync_client=True) as client:
        trade = client.read_deployment_by_name("trade/trade-every-bar")
        ingest = client.read_deployment_by_name("ingest/ingest-hourly")
    assert trade.global_concurrency_limit is not None
    assert trade.global_concurrency_limit.limit == 1
    assert ingest.global_concurrency_limit is None
    assert [s.schedule.cron for s in trade.schedules] == ["1 * * * *"]


def test_retrain_registers_a_candidate_that_takes_paper_only_if_it_wins(stores: Path, trained: str) -> None:
    from flows.retrain import retrain
    from flows.validate_and_promote import validate_and_promote

    gates = _write(stores / "lenient.yaml", LENIENT)
    if tracking.alias_version(MODEL, "paper") is None:
        validate_and_promote(trained, alias="paper", registered_model=MODEL, gates=gates)
    incumbent = tracking.alias_version(MODEL, "paper")
    params = {"n_splits": 3, "xgb_params": {"n_estimators": 20, "max_depth": 2}}
    out = retrain(
        registered_model=MODEL,
        symbols=["BTC/USDT", "ETH/USDT"],
        train_days=60,
        end="2024-03-15",
        parameters=params,
        gates=gates,
    )
    assert out["window"] == ["2024-01-15T00:00:00+00:00", "2024-03-15T00:00:00+00:00"]
    candidate = tracking.alias_version(MODEL, "candidate")
    assert candidate is not None
    assert candidate != incumbent
    assert tracking.client().get_model_version(MODEL, candidate).run_id == out["run_id"]
    theirs = tracking.client().get_run(trained).data.metrics["oof_bt_sharpe"]
    mine = tracking.client().get_run(out["run_id"]).data.metrics["oof_bt_sharpe"]
    if mine > theirs:
        assert out["promoted"]
        assert tracking.alias_version(MODEL, "paper") == candidate
    else:
        assert not out["promoted"]
        assert "beats_paper" in out["reason"]
        assert tracking.alias_version(MODEL, "paper") == incumbent
