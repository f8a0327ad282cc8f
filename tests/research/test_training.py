"""Cross-validation: out-of-fold predictions come from models fit on earlier (or purged) rows only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample
from arena_lib.models.estimators import ModelSpec, build_model
from arena_lib.research import training
from arena_lib.research.dataset import Dataset, make_dataset, time_splits
from arena_lib.research.evaluation import prediction_metrics

XGB = ModelSpec(kind="xgboost", params={"n_estimators": 20, "max_depth": 3})


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    frames = {s: load_sample(s, "1h", "2024-04-01", "2024-04-25") for s in ("ETH/USDT", "XRP/USDT")}
    return make_dataset(frames, horizon=3)


@pytest.fixture(autouse=True)
def _keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


class _Recorder:
    """Wraps real models and records the timestamps each fold was fit on."""

    fits: list[pd.DatetimeIndex]

    def __init__(self) -> None:
        self.fits = []

    def build(self, spec: ModelSpec, features: Any) -> Any:
        model = build_model(spec, features)
        original = model.fit

        def fit(X: pd.DataFrame, y: pd.Series) -> Any:
            self.fits.append(pd.DatetimeIndex(X.index.get_level_values(0)).unique())
            return original(X, y)

        model.fit = fit  # type: ignore[method-assign]
        return model


def test_walk_forward_oof_comes_from_models_fit_on_the_past(dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(training, "build_model", recorder.build)
    cv = training.cross_validate(XGB, dataset, scheme="walk_forward", n_splits=3, embargo=2)
    splits = time_splits(dataset, "walk_forward", 3, embargo=2)
    assert len(recorder.fits) == 3
    times = dataset.times()
    for fit_times, (_, test), (_, fold) in zip(recorder.fits, splits, cv.folds.iterrows(), strict=True):
        test_times = pd.DatetimeIndex(dataset.X.index.get_level_values(0)[test]).unique()
        assert fit_times.max() < test_times.min()
        assert times.get_loc(test_times.min()) - times.get_loc(fit_times.max()) > dataset.horizon + 2
        assert fold["n_test"] == len(test)
        assert fold["test_start"] == test_times.min()
        assert fold["train_end"] == fit_times.max()
    tested = np.concatenate([test for _, test in splits])
    assert cv.oof.index.equals(dataset.X.index[np.sort(tested)]), "out-of-fold rows are the test rows, once each"
    assert cv.oof.notna().all()
    assert ((cv.oof > 0) & (cv.oof < 1)).all()
    expected = prediction_metrics(
        dataset.y.loc[cv.oof.index], cv.oof, dataset.forward_return.loc[cv.oof.index], "classification"
    )
    assert cv.metrics == pytest.approx(expected, nan_ok=True)
    assert list(cv.folds.columns[:6]) == ["train_start", "train_end", "test_start", "test_end", "n_train", "n_test"]
    assert {"auc", "accuracy_lift", "ic", "hit_rate"} <= set(cv.folds.columns)


def test_oof_equals_a_model_fit_by_hand_on_the_fold(dataset: Dataset) -> None:
    cv = training.cross_validate(XGB, dataset, n_splits=2)
    train, test = time_splits(dataset, n_splits=2)[-1]
    by_hand = build_model(XGB, dataset.features).fit(dataset.X.iloc[train], dataset.y.iloc[train])
    np.testing.assert_array_equal(cv.oof.loc[dataset.X.index[test]].to_numpy(), by_hand.predict(dataset.X.iloc[test]))


def test_purged_kfold_tests_every_row_once_without_overlapping_labels(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(training, "build_model", recorder.build)
    cv = training.cross_validate(XGB, dataset, scheme="purged_kfold", n_splits=3, embargo=4)
    assert cv.oof.index.equals(dataset.X.index)
    times = dataset.times()
    for fit_times, (_, fold) in zip(recorder.fits, cv.folds.iterrows(), strict=True):
        lo, hi = times.get_loc(fold["test_start"]), times.get_loc(fold["test_end"])
        pos = times.get_indexer(fit_times)
        assert ((pos + dataset.horizon < lo) | (pos > hi + dataset.horizon + 4)).all()


def test_lstm_cross_validation_reads_context_before_each_fold(dataset: Dataset) -> None:
    spec = ModelSpec(kind="lstm", window=4, epochs=1, batch_size=256, params={"lstm_units": 4})
    cv = training.cross_validate(spec, dataset, n_splits=2)
    assert cv.oof.notna().all(), "the first rows of a test fold get their window from the bars before it"
    assert cv.metrics["n"] == len(cv.oof)


def test_task_mismatch_and_short_data_are_refused(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="spec's task is 'regression'"):
        training.cross_validate(XGB.model_copy(update={"task": "regression"}), dataset)
    with pytest.raises(ValueError, match="need at least"):
        training.cross_validate(XGB, dataset, n_splits=5, train_bars=len(dataset.times()))


def test_regression_cross_validation_scores_returns() -> None:
    frames = {"ETH/USDT": load_sample("ETH/USDT", "1h", "2024-04-01", "2024-04-25")}
    reg = make_dataset(frames, task="regression")
    cv = training.cross_validate(XGB.model_copy(update={"task": "regression"}), reg, n_splits=2)
    assert set(cv.metrics) == {"ic", "hit_rate", "rmse", "mae", "n"}
    assert cv.metrics["n"] == len(cv.oof)
    assert cv.metrics["rmse"] < 0.05, "hourly log returns"


def test_fit_final_fits_every_row(dataset: Dataset) -> None:
    final = training.fit_final(XGB, dataset)
    by_hand = build_model(XGB, dataset.features).fit(dataset.X, dataset.y)
    np.testing.assert_array_equal(final.predict(dataset.X), by_hand.predict(dataset.X))
