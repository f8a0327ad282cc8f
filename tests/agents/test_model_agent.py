"""The ML agent: a registered model, loaded by alias, trades identically on the step and batch paths, refuses a
feature mismatch by name, and plays in the arena beside LLM and rule agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.model_agent import FeatureMismatchError, ModelAgent, load_model_agent, targets_from_predictions
from arena_lib.agents.registry import make_agent
from arena_lib.core.config import BacktestConfig
from arena_lib.core.spec import AgentSpec
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.engine.kernel import run_batch
from arena_lib.engine.loop import run_replay
from arena_lib.models.estimators import ModelSpec
from arena_lib.research.dataset import DEFAULT_FEATURES, make_dataset
from arena_lib.research.training import fit_final
from arena_lib.workflow import tracking
from arena_lib.workflow.tracking import register_trained_model

SYMBOLS = ("BTC/USDT", "ETH/USDT")
NAME = "agent_xgb"


@pytest.fixture(scope="module", autouse=True)
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelAgent]:
    """An XGBoost model trained on Jan-Feb 2024 and registered as `agent_xgb@paper` in a throwaway store."""
    root = tmp_path_factory.mktemp("model-agent")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        market = load_market(SYMBOLS, "1h", "2024-01-01", "2024-03-01")
        frames = {s: market.series[s].frame for s in SYMBOLS}
        dataset = make_dataset(frames, DEFAULT_FEATURES, horizon=4)
        model = fit_final(ModelSpec(kind="xgboost", params={"n_estimators": 40, "max_depth": 3}), dataset)
        with tracking.start_run("model-agent-tests"):
            rule = {"threshold": 0.01, "fraction": 0.4, "allow_short": True}
            register_trained_model(model, dataset.X.iloc[:20], NAME, alias="paper", trading_rule=rule)
        yield load_model_agent(NAME, "paper")
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(SYMBOLS, "1h", "2024-03-01", "2024-03-21")


def test_the_agent_is_loaded_by_alias_with_its_validated_trading_rule(registered: ModelAgent) -> None:
    assert registered.name == f"{NAME}@paper"
    assert registered.model_uri == f"models:/{NAME}@paper"
    assert (registered.threshold, registered.fraction, registered.allow_short) == (0.01, 0.4, True)
    assert registered.features == DEFAULT_FEATURES
    via_registry = make_agent("model", {"model": NAME, "alias": "paper", "fraction": "0.2"})
    assert isinstance(via_registry, ModelAgent)
    assert via_registry.fraction == 0.2  # an explicit parameter overrides the stored rule


def test_predictions_are_the_models_on_the_training_features(registered: ModelAgent, market: MarketData) -> None:
    predictions = registered.predictions(market)
    frames = {s: market.series[s].frame for s in SYMBOLS}
    X = make_dataset(frames, DEFAULT_FEATURES, horizon=1).X  # the rows training would use
    np.testing.assert_allclose(predictions.loc[X.index].to_numpy(), registered.model.predict(X), rtol=1e-6)
    assert predictions.drop(X.index).iloc[:-2].isna().all()  # warm-up rows: no opinion (the last bar has no label)


def test_step_and_batch_paths_trade_identically(registered: ModelAgent, market: MarketData) -> None:
    config = BacktestConfig(symbols=SYMBOLS, timeframe="1h")
    batch = run_batch(registered, market, config)
    step = run_replay([registered], market, config)[registered.name]
    assert len(batch.fills) > 5
    cols = ["order_id", "symbol", "side", "quantity", "price", "fee", "kind"]
    pd.testing.assert_frame_equal(step.fills[cols].reset_index(drop=True), batch.fills[cols].reset_index(drop=True))
    np.testing.assert_allclose(step.equity.to_numpy(), batch.equity.to_numpy(), rtol=1e-9)


def test_targets_follow_the_rule() -> None:
    p = pd.Series([0.9, 0.52, 0.5, 0.1, np.nan])
    assert targets_from_predictions(p, "classification", threshold=0.05, fraction=0.5).tolist()[:4] == [
        0.5,
        0.0,
        0.0,
        -0.5,
    ]
    assert np.isnan(targets_from_predictions(p, "classification").iloc[4])
    long_only = targets_from_predictions(p, "classification", allow_short=False)
    assert long_only.iloc[3] == 0.0
    with pytest.raises(ValueError, match=r"below 0\.5"):
        targets_from_predictions(p, "classification", threshold=0.5)


def test_a_feature_mismatch_is_refused_and_named() -> None:
    other = [f for f in DEFAULT_FEATURES if f != "rsi_14"] + ["rsi_7"]
    with pytest.raises(FeatureMismatchError, match=r"missing \['rsi_14'\]; extra \['rsi_7'\]"):
        load_model_agent(NAME, "paper", features=other)
    reordered = list(reversed(DEFAULT_FEATURES))
    with pytest.raises(FeatureMismatchError, match="reordered"):
        load_model_agent(NAME, "paper", features=reordered)


def test_a_missing_alias_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match=r"cannot load model 'models:/agent_xgb@live'.*20_train_xgboost"):
        load_model_agent(NAME, "live")


def test_the_ml_agent_plays_in_the_arena_beside_llm_and_rule_agents(tmp_path: Path) -> None:
    from arena_lib.arena.session import start_run
    from arena_lib.arena.standings import arena_leaderboard
    from arena_lib.arena.store import ArenaStore
    from tests.arena.conftest import ENV, KEY, QUANT, Desk, arena_config, buyer, llm_config
    from tests.servers.llm import LLMServer, Script

    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    with LLMServer(Script(Desk({"steady": buyer()})), api_key=KEY) as server:
        config = arena_config(
            llm_config(server, "steady"),
            quant=(AgentSpec("model", {"model": NAME, "alias": "paper"}, label="xgb"), QUANT),
        )
        report = start_run(config, store, env=ENV)
    board = arena_leaderboard(store, report.run_id).set_index("agent")
    assert set(board.index) == {"xgb", "sma_cross", "steady"}
    assert board.loc["xgb", "kind"] == "model"
    assert board.loc["xgb", "model"] == f"models:/{NAME}@paper"
    assert board.loc["steady", "kind"] == "llm"
    assert (
        store.decisions_frame(report.run_id).query("agent == 'xgb'")["action"].isin(["enter_long", "enter_short"]).any()
    )
