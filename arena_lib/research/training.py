"""Cross-validate a ``ModelSpec`` on a ``Dataset`` with time-ordered folds, then fit the final model.

Why: the only honest estimate of a trading model's skill is out-of-fold, from folds that respect time (walk-forward
or purged k-fold, see ``dataset.time_splits``). Each fold builds a fresh model from the spec and fits it on its
training rows only; the scaler inside a Keras model is adapted there too. The out-of-fold predictions are what
``evaluation.backtest_predictions`` trades, and their metrics are what a run logs.

Usage::

    cv = cross_validate(ModelSpec(kind="xgboost"), ds, scheme="walk_forward", n_splits=5)
    cv.metrics["auc"], cv.folds[["test_start", "auc"]]
    model = fit_final(ModelSpec(kind="xgboost"), ds)   # then model_store.log_model(model, ds.X)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from arena_lib.models.estimators import Model, ModelSpec, build_model, context_bars
from arena_lib.research.dataset import Dataset, Scheme, time_splits
from arena_lib.research.evaluation import prediction_metrics


@dataclass(frozen=True, eq=False)
class CVResult:
    """Out-of-fold predictions (test rows only, each from a model that never saw its fold), per-fold and overall
    metrics. ``oof`` is indexed like the dataset's rows; ``folds`` has one row per fold."""

    oof: pd.Series
    folds: pd.DataFrame
    metrics: dict[str, float]


def _check_task(spec: ModelSpec, dataset: Dataset) -> None:
    if spec.task != dataset.task:
        raise ValueError(f"the spec's task is {spec.task!r} but the dataset's labels are for {dataset.task!r}")


def _predict_with_context(model: Model, dataset: Dataset, test_rows: np.ndarray, context: int) -> np.ndarray:
    """Predictions for ``test_rows``; a sequence model also gets the ``context`` bars before the fold as input.

    Those earlier rows contribute their features only (known before the test period): no label is read.
    """
    if context == 0 or len(test_rows) == 0:
        return model.predict(dataset.X.iloc[test_rows])
    at = pd.DatetimeIndex(dataset.X.index.get_level_values(0)).asi8
    times = dataset.times().asi8
    first = int(np.searchsorted(times, at[test_rows].min()))
    lo, hi = times[max(0, first - context)], at[test_rows].max()
    window_rows = np.flatnonzero((at >= lo) & (at <= hi))
    if not np.isin(test_rows, window_rows).all():
        raise RuntimeError("a test fold's rows must be contiguous in time to add sequence context")
    pred = model.predict(dataset.X.iloc[window_rows])
    where = np.searchsorted(window_rows, test_rows)
    return pred[where]


def cross_validate(
    spec: ModelSpec,
    dataset: Dataset,
    *,
    scheme: Scheme = "walk_forward",
    n_splits: int = 5,
    embargo: int = 0,
    train_bars: int | None = None,
    expanding: bool = True,
) -> CVResult:
    """Fit ``spec`` on each fold's training rows, predict its test rows, and score them fold by fold and overall.

    Raises:
        ValueError: the spec's task differs from the dataset's, or the dataset is too short for the folds.
    """
    _check_task(spec, dataset)
    splits = time_splits(dataset, scheme, n_splits, embargo=embargo, train_bars=train_bars, expanding=expanding)
    context = context_bars(spec)
    row_times = pd.DatetimeIndex(dataset.X.index.get_level_values(0))
    pieces: list[pd.Series] = []
    rows: list[dict[str, object]] = []
    for fold, (train, test) in enumerate(splits):
        model = build_model(spec, dataset.features).fit(dataset.X.iloc[train], dataset.y.iloc[train])
        pred = _predict_with_context(model, dataset, test, context)
        oof = pd.Series(pred, index=dataset.X.index[test], name="prediction")
        pieces.append(oof)
        fold_metrics = prediction_metrics(dataset.y.iloc[test], oof, dataset.forward_return.iloc[test], spec.task)
        rows.append(
            {
                "fold": fold,
                "train_start": row_times[train].min(),
                "train_end": row_times[train].max(),
                "test_start": row_times[test].min(),
                "test_end": row_times[test].max(),
                "n_train": len(train),
                "n_test": len(test),
                **fold_metrics,
            }
        )
    oof_all = pd.concat(pieces).sort_index(level=[0, 1])
    y = dataset.y.reindex(oof_all.index)
    fwd = dataset.forward_return.reindex(oof_all.index)
    return CVResult(
        oof=oof_all,
        folds=pd.DataFrame(rows).set_index("fold"),
        metrics=prediction_metrics(y, oof_all, fwd, spec.task),
    )


def fit_final(spec: ModelSpec, dataset: Dataset) -> Model:
    """``spec`` fitted on every row of ``dataset``: the model to register once cross-validation has judged it."""
    _check_task(spec, dataset)
    return build_model(spec, dataset.features).fit(dataset.X, dataset.y)


__all__ = ["CVResult", "cross_validate", "fit_final"]
