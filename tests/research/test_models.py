"""Models: spec validation, column contract, fold-only scaling, fixed seeds, LSTM windows, lazy TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest

from arena_lib.data.sample import load_sample
from arena_lib.models.estimators import (
    LSTMModel,
    MLPModel,
    Model,
    ModelSpec,
    XGBoostModel,
    build_model,
    context_bars,
    infer_bar_ns,
    symbol_windows,
    xgboost_device,
)
from arena_lib.research.dataset import Dataset, make_dataset

ROOT = Path(__file__).resolve().parents[2]
XGB = ModelSpec(kind="xgboost", params={"n_estimators": 20, "max_depth": 3})
MLP = ModelSpec(kind="mlp", epochs=2, batch_size=128, params={"hidden_units": [16]})
LSTM = ModelSpec(kind="lstm", epochs=1, batch_size=128, window=6, params={"lstm_units": 8})


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    frames = {s: load_sample(s, "1h", "2024-02-01", "2024-02-20") for s in ("BTC/USDT", "SOL/USDT")}
    return make_dataset(frames)


@pytest.fixture(autouse=True)
def _keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def _halves(ds: Dataset) -> tuple[Dataset, Dataset]:
    times = ds.times()
    cut = times[len(times) // 2]
    first = np.flatnonzero(ds.X.index.get_level_values(0) < cut)
    second = np.flatnonzero(ds.X.index.get_level_values(0) >= cut)
    return ds.subset(first), ds.subset(second)


# ------------------------------------------------------------------------------------------------ spec


def test_spec_is_frozen_and_refuses_unknown_fields_and_params() -> None:
    with pytest.raises(pydantic.ValidationError):
        XGB.seed = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        ModelSpec(kind="mlp", layers=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="unknown xgboost params \\['n_trees'\\]"):
        ModelSpec(kind="xgboost", params={"n_trees": 10})
    with pytest.raises(pydantic.ValidationError, match="unknown lstm params \\['units'\\]"):
        ModelSpec(kind="lstm", params={"units": 10})
    with pytest.raises(pydantic.ValidationError, match=r"set by ModelSpec\.seed"):
        ModelSpec(kind="xgboost", params={"random_state": 1})
    with pytest.raises(pydantic.ValidationError):
        ModelSpec(kind="lstm", window=0)
    spec = ModelSpec(kind="mlp", params={"dropout": 0.0})
    assert spec.resolved_params() == {"hidden_units": [64, 32], "dropout": 0.0, "learning_rate": 1e-3}
    assert ModelSpec.model_validate_json(spec.model_dump_json()) == spec


def test_importing_models_does_not_import_tensorflow_or_xgboost() -> None:
    code = (
        "import sys, arena_lib.models.estimators, arena_lib.research.training, arena_lib.models.store\n"
        "print([m for m in ('tensorflow', 'keras', 'xgboost', 'mlflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def test_build_model_returns_the_kind_asked_for(dataset: Dataset) -> None:
    assert isinstance(build_model(XGB, dataset.features), XGBoostModel)
    assert isinstance(build_model(MLP, dataset.features), MLPModel)
    lstm = build_model(LSTM, dataset.features)
    assert isinstance(lstm, LSTMModel)
    assert isinstance(lstm, Model)
    assert context_bars(LSTM) == 5
    assert context_bars(MLP) == 0
    with pytest.raises(RuntimeError, match="not fitted"):
        lstm.predict(dataset.X)


# ------------------------------------------------------------------------------------------------ columns


@pytest.mark.parametrize("spec", [XGB, MLP], ids=["xgboost", "mlp"])
def test_predict_names_missing_extra_and_reordered_columns(dataset: Dataset, spec: ModelSpec) -> None:
    model = build_model(spec, dataset.features).fit(dataset.X, dataset.y)
    X = dataset.X
    with pytest.raises(ValueError, match="missing \\['rsi_14'\\]"):
        model.predict(X.drop(columns="rsi_14"))
    with pytest.raises(ValueError, match="extra \\['junk'\\]"):
        model.predict(X.assign(junk=1.0))
    cols = list(X.columns)
    cols[0], cols[1] = cols[1], cols[0]
    with pytest.raises(ValueError, match="reordered"):
        model.predict(X[cols])
    with pytest.raises(ValueError, match="missing"):
        build_model(spec, dataset.features).fit(X.drop(columns="ret_1"), dataset.y)


def test_fit_refuses_bad_labels(dataset: Dataset) -> None:
    model = build_model(XGB, dataset.features)
    with pytest.raises(ValueError, match=r"0\.0 or 1\.0"):
        model.fit(dataset.X, dataset.y * 2)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(dataset.X, dataset.y.where(dataset.y > 0))
    with pytest.raises(ValueError, match="rows"):
        model.fit(dataset.X, dataset.y.iloc[:-1])


# ------------------------------------------------------------------------------------------------ xgboost


def test_xgboost_predicts_probabilities_reproducibly(dataset: Dataset) -> None:
    train, test = _halves(dataset)
    a = build_model(XGB, dataset.features).fit(train.X, train.y).predict(test.X)
    b = build_model(XGB, dataset.features).fit(train.X, train.y).predict(test.X)
    assert a.shape == (len(test),)
    assert ((a > 0) & (a < 1)).all()
    assert np.array_equal(a, b), "same spec, same data, same seed: same predictions"
    other = build_model(XGB.model_copy(update={"seed": 7}), dataset.features).fit(train.X, train.y).predict(test.X)
    assert not np.array_equal(a, other), "the seed drives subsampling"


def test_xgboost_uses_hist_on_the_detected_device(dataset: Dataset) -> None:
    import xgboost

    device = xgboost_device()
    assert device in ("cpu", "cuda")
    if not xgboost.build_info().get("USE_CUDA", False):
        assert device == "cpu"
    model = build_model(XGB, dataset.features)
    estimator = model._make_estimator()
    assert estimator.get_params()["tree_method"] == "hist"
    assert estimator.get_params()["device"] == device
    assert estimator.get_params()["random_state"] == XGB.seed


def test_xgboost_regression_predicts_returns(dataset: Dataset) -> None:
    frames = {"BTC/USDT": load_sample("BTC/USDT", "1h", "2024-02-01", "2024-02-20")}
    reg = make_dataset(frames, task="regression")
    spec = XGB.model_copy(update={"task": "regression"})
    pred = build_model(spec, reg.features).fit(reg.X, reg.y).predict(reg.X)
    assert np.abs(pred).max() < 0.1, "hourly log returns, not probabilities"
    assert np.corrcoef(pred, reg.y)[0, 1] > 0, "in-sample fit follows the labels"


# ------------------------------------------------------------------------------------------------ keras


def test_mlp_scaler_is_fitted_on_the_training_rows_only(dataset: Dataset) -> None:
    train, _ = _halves(dataset)
    model = build_model(MLP, dataset.features).fit(train.X, train.y)
    assert isinstance(model, MLPModel)
    mean = np.asarray(model.scaler.mean).reshape(-1)
    variance = np.asarray(model.scaler.variance).reshape(-1)
    np.testing.assert_allclose(mean, train.X.mean().to_numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(variance, train.X.var(ddof=0).to_numpy(), rtol=1e-3, atol=1e-8)
    full = dataset.X.mean().to_numpy()
    assert not np.allclose(mean, full, rtol=1e-3, atol=1e-6), "the test rows' statistics did not leak in"
    assert model.network.layers[1].name == "scaler", "the scaler is the network's first layer"


def test_mlp_two_fits_predict_identically(dataset: Dataset) -> None:
    train, test = _halves(dataset)
    a = build_model(MLP, dataset.features).fit(train.X, train.y).predict(test.X)
    b = build_model(MLP, dataset.features).fit(train.X, train.y).predict(test.X)
    assert np.isfinite(a).all()
    assert ((a > 0) & (a < 1)).all()
    assert np.array_equal(a, b)


def test_mlp_regression_outputs_return_units(dataset: Dataset) -> None:
    frames = {"BTC/USDT": load_sample("BTC/USDT", "1h", "2024-02-01", "2024-02-20")}
    reg = make_dataset(frames, task="regression")
    spec = MLP.model_copy(update={"task": "regression"})
    pred = build_model(spec, reg.features).fit(reg.X, reg.y).predict(reg.X)
    assert np.isfinite(pred).all()
    assert np.abs(pred).max() < 0.2
    assert abs(pred.mean() - reg.y.mean()) < 3 * reg.y.std(), "the rescaling layer puts predictions in return units"


def test_lstm_windows_skip_symbol_starts_and_gaps(dataset: Dataset) -> None:
    X = dataset.X
    btc_rows = np.flatnonzero(X.index.get_level_values(1) == "BTC/USDT")
    gap_time = X.index[btc_rows[20]][0]
    gappy = X.drop(index=[(gap_time, "BTC/USDT")])  # a missing BTC bar
    bar = infer_bar_ns(gappy)
    assert bar == 3_600 * 10**9
    windows, rows = symbol_windows(gappy, 6, bar)
    assert windows.shape == (len(rows), 6, X.shape[1])
    # the window of a row holds that symbol's last six rows, oldest first
    k = 3
    row = rows[k]
    t, symbol = gappy.index[row]
    expected = gappy.xs(symbol, level=1).loc[:t].iloc[-6:].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(windows[k], expected)
    btc_times = gappy.xs("BTC/USDT", level=1).index
    covered = {gappy.index[r][0] for r in rows if gappy.index[r][1] == "BTC/USDT"}
    lacking = {t for t in btc_times if any(t - pd.Timedelta(hours=h) not in btc_times for h in range(1, 6))}
    assert covered == set(btc_times) - lacking
    assert len(lacking) == 5 + 5, "the first 5 rows, and the 5 rows after the missing bar"


def test_lstm_predicts_nan_without_a_full_window_and_reproduces(dataset: Dataset) -> None:
    train, test = _halves(dataset)
    a_model = build_model(LSTM, dataset.features).fit(train.X, train.y)
    a = a_model.predict(test.X)
    b = build_model(LSTM, dataset.features).fit(train.X, train.y).predict(test.X)
    n_symbols = len(test.symbols())
    assert np.isnan(a).sum() == n_symbols * (LSTM.window - 1)
    first_rows = test.X.groupby(level=1).head(LSTM.window - 1).index
    assert np.isnan(pd.Series(a, index=test.X.index).loc[first_rows]).all()
    assert np.array_equal(a, b, equal_nan=True)
    mean = np.asarray(a_model.scaler.mean).reshape(-1)
    np.testing.assert_allclose(mean, train.X.mean().to_numpy(), rtol=1e-4, atol=1e-6)
