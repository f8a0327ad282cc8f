"""MLflow round trips: a logged model reloads as the same class and predicts exactly as before logging."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import pytest

from arena_lib.data.sample import load_sample
from arena_lib.models.estimators import LSTMModel, MLPModel, ModelSpec, XGBoostModel
from arena_lib.models.store import load_model, log_model, model_features
from arena_lib.research.dataset import Dataset, make_dataset
from arena_lib.research.training import fit_final

SPECS = {
    "xgboost": ModelSpec(kind="xgboost", params={"n_estimators": 15, "max_depth": 3}),
    "mlp": ModelSpec(kind="mlp", epochs=1, params={"hidden_units": [8]}),
    "lstm": ModelSpec(kind="lstm", window=5, epochs=1, params={"lstm_units": 4}),
}
CLASSES = {"xgboost": XGBoostModel, "mlp": MLPModel, "lstm": LSTMModel}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    frames = {s: load_sample(s, "1h", "2024-05-01", "2024-05-15") for s in ("BTC/USDT", "DOGE/USDT")}
    return make_dataset(frames, horizon=2)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway sqlite tracking store and artifact folder in a temporary folder (never ~ or the repo's mlruns/),
    one per module: creating the store's tables costs more than a test."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("KERAS_HOME", str(root / "keras"))
        mlflow.set_tracking_uri(uri)
        try:
            yield mlflow.create_experiment("models", artifact_location=(root / "artifacts").as_uri())
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("kind", ["xgboost", "mlp", "lstm"])
def test_logged_model_reloads_and_predicts_the_same(dataset: Dataset, experiment: str, kind: str) -> None:
    model = fit_final(SPECS[kind], dataset)
    before = model.predict(dataset.X)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = log_model(model, dataset.X, extra_metadata={"arena_horizon": dataset.horizon, "note": "test"})
    assert info.signature is not None
    assert info.metadata is not None
    assert info.metadata["arena_features"] == list(dataset.features)
    assert info.metadata["arena_kind"] == kind
    assert info.metadata["arena_task"] == "classification"
    assert info.metadata["arena_horizon"] == 2
    assert info.metadata["note"] == "test"
    uri = f"runs:/{run.info.run_id}/model"
    assert model_features(uri) == dataset.features
    loaded = load_model(uri)
    assert type(loaded) is CLASSES[kind]
    assert loaded.spec == model.spec
    assert loaded.features == model.features
    after = loaded.predict(dataset.X)
    np.testing.assert_array_equal(after, before)
    if kind == "lstm":
        assert np.isnan(after).sum() == 2 * (SPECS["lstm"].window - 1)
        inputs = info.signature.inputs.to_dict()[0]
        assert list(inputs["tensor-spec"]["shape"]) == [-1, 5, len(dataset.features)]


def test_registered_alias_loads_like_the_run(dataset: Dataset, experiment: str) -> None:
    model = fit_final(SPECS["xgboost"], dataset)
    with mlflow.start_run(experiment_id=experiment):
        info = log_model(model, dataset.X, name="clf")
    version = mlflow.register_model(info.model_uri, "arena-test-model")
    mlflow.MlflowClient().set_registered_model_alias("arena-test-model", "paper", version.version)
    uri = "models:/arena-test-model@paper"
    assert model_features(uri) == dataset.features
    np.testing.assert_array_equal(load_model(uri).predict(dataset.X), model.predict(dataset.X))
    with pytest.raises(ValueError, match="missing \\['ret_1'\\]"):
        load_model(uri).predict(dataset.X.drop(columns="ret_1"))


def test_log_model_refuses_misuse(dataset: Dataset, experiment: str) -> None:
    model = fit_final(SPECS["xgboost"], dataset)
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_model(model, dataset.X)
    with mlflow.start_run(experiment_id=experiment):
        with pytest.raises(ValueError, match="may not override \\['arena_features'\\]"):
            log_model(model, dataset.X, extra_metadata={"arena_features": ["x"]})
        with pytest.raises(ValueError, match="extra \\['junk'\\]"):
            log_model(model, dataset.X.assign(junk=0.0))
