"""Score a model's predictions two ways: as forecasts (AUC, IC, hit rate...) and as trades through the engine.

Why both: a classifier can beat a coin on accuracy and still lose money once fees and slippage are paid, and a
decent rank correlation can come from a few large moves. ``prediction_metrics`` gives the statistical view with
the baselines that keep it honest (the majority-class accuracy, the lift over it); ``backtest_predictions`` puts
the same predictions through the batch kernel with the configured costs.

``targets_from_predictions`` (defined beside the ML agent, in ``arena_lib.agents.model_agent``) is the one mapping
from a model's output to a position, so a backtest of out-of-fold predictions and a paper job trade the same rule.

Alignment: a prediction at timestamp ``t`` (a bar's open time, as in the feature panel) is known at that bar's
close; the engine decides at the close of row ``t`` and, with ``fill="next_open"``, fills at the next bar's open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from arena_lib.agents.base import BatchSignals
from arena_lib.agents.model_agent import TASKS, check_panel_index, target_matrix, targets_from_predictions

if TYPE_CHECKING:
    from arena_lib.agents.base import AccountView
    from arena_lib.core.config import BacktestConfig
    from arena_lib.core.types import Decision
    from arena_lib.data.market import MarketData
    from arena_lib.data.snapshot import MarketSnapshot
    from arena_lib.engine.results import BacktestResult

CLASSIFICATION_METRICS = ("auc", "log_loss", "accuracy", "majority_accuracy", "accuracy_lift", "ic", "hit_rate", "n")
REGRESSION_METRICS = ("ic", "hit_rate", "rmse", "mae", "n")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _on_rows(values: pd.Series | np.ndarray, y: pd.Series, name: str) -> np.ndarray:
    """`values` as a float array on `y`'s rows: a Series is aligned by index, an array must match in length."""
    if isinstance(values, pd.Series):
        return values.reindex(y.index).to_numpy(dtype=np.float64)
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(out) != len(y):
        raise ValueError(f"{name} has {len(out)} values, y has {len(y)}")
    return out


def _aligned(
    y: pd.Series, prediction: pd.Series | np.ndarray, forward_return: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, predictions and forward returns as arrays on ``y``'s rows, rows with a NaN prediction dropped."""
    pred = _on_rows(prediction, y, "prediction")
    fwd = _on_rows(forward_return, y, "forward_return")
    ok = ~np.isnan(pred)
    return np.asarray(y, dtype=np.float64)[ok], pred[ok], fwd[ok]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    return float(spearmanr(a[ok], b[ok]).statistic)


def _hit_rate(score: np.ndarray, fwd: np.ndarray) -> float:
    """Share of rows where the predicted direction matches the realised one (no-call rows and flat bars ignored)."""
    s, f = np.sign(score), np.sign(fwd)
    called = (s != 0) & (f != 0) & np.isfinite(fwd)
    return float((s[called] == f[called]).mean()) if called.any() else math.nan


def prediction_metrics(
    y: pd.Series, prediction: pd.Series | np.ndarray, forward_return: pd.Series, task: str
) -> dict[str, float]:
    """Forecast quality of ``prediction`` (P(up), or a forward log return) against ``y`` and ``forward_return``.

    Classification: ``auc``, ``log_loss``, ``accuracy`` (at p > 0.5), ``majority_accuracy`` (always predicting
    the more frequent class of these very labels: the baseline an accuracy must beat), ``accuracy_lift``
    (accuracy - majority_accuracy), ``ic`` (Spearman rank correlation of prediction and forward return),
    ``hit_rate`` (sign of p - 0.5 vs sign of the forward return, ignoring p == 0.5 and zero returns) and ``n``.
    Regression: ``ic``, ``hit_rate`` (sign of the predicted return), ``rmse``, ``mae`` (against ``y``) and ``n``.
    NaN predictions are dropped first; a metric that is undefined on what is left (AUC with one class) is NaN.
    """
    from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

    _check_task(task)
    labels, pred, fwd = _aligned(y, prediction, forward_return)
    n = len(pred)
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if n == 0:
        return {name: (0.0 if name == "n" else math.nan) for name in names}
    out: dict[str, float] = {}
    if task == "classification":
        if ((pred < 0) | (pred > 1)).any():
            raise ValueError("classification predictions must be probabilities in [0, 1]")
        both = len(np.unique(labels)) == 2
        out["auc"] = float(roc_auc_score(labels, pred)) if both else math.nan
        out["log_loss"] = float(log_loss(labels, pred, labels=[0.0, 1.0]))
        out["accuracy"] = float(accuracy_score(labels, (pred > 0.5).astype(np.float64)))
        share_up = float(labels.mean())
        out["majority_accuracy"] = max(share_up, 1.0 - share_up)
        out["accuracy_lift"] = out["accuracy"] - out["majority_accuracy"]
        out["ic"] = _spearman(pred, fwd)
        out["hit_rate"] = _hit_rate(pred - 0.5, fwd)
    else:
        out["ic"] = _spearman(pred, fwd)
        out["hit_rate"] = _hit_rate(pred, fwd)
        out["rmse"] = float(math.sqrt(mean_squared_error(labels, pred)))
        out["mae"] = float(mean_absolute_error(labels, pred))
    out["n"] = float(n)
    return out


class PredictionAgent:
    """A batch agent that replays precomputed predictions (e.g. out-of-fold ones) as target positions.

    ``prediction`` is indexed by ``(timestamp, symbol)``; the target of row ``t`` comes from the prediction at
    timestamp ``t``. Rows without a prediction get NaN (hold). Batch only: a step-by-step agent must compute its
    predictions from the snapshot, which is the ML agent's job.
    """

    def __init__(
        self,
        prediction: pd.Series,
        task: str,
        *,
        threshold: float = 0.0,
        fraction: float = 1.0,
        allow_short: bool = True,
        leverage: float = 1.0,
        name: str = "model",
    ) -> None:
        check_panel_index(prediction.index, "prediction")
        self.name = name
        self.task = task
        self.leverage = float(leverage)
        self.targets = targets_from_predictions(
            prediction, task, threshold=threshold, fraction=fraction, allow_short=allow_short
        )

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]:
        raise NotImplementedError(
            "PredictionAgent replays precomputed predictions on the batch path only: use backtest_predictions() "
            "or run_batch(); an agent that decides per snapshot must compute its features and predictions live"
        )

    def decide_batch(self, market: MarketData) -> BatchSignals:
        return BatchSignals(target=target_matrix(self.targets, market), leverage=self.leverage)


def backtest_predictions(
    prediction: pd.Series,
    market: MarketData,
    config: BacktestConfig,
    task: str,
    *,
    threshold: float = 0.0,
    fraction: float = 1.0,
    allow_short: bool = True,
    name: str = "model",
    run_id: str = "replay",
) -> BacktestResult:
    """The predictions' trades through the engine's batch kernel, paying ``config.costs`` (fees, slippage)."""
    from arena_lib.engine.backtest import backtest

    agent = PredictionAgent(
        prediction, task, threshold=threshold, fraction=fraction, allow_short=allow_short, name=name
    )
    return backtest(agent, market, config, path="batch", run_id=run_id)


__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "PredictionAgent",
    "backtest_predictions",
    "prediction_metrics",
    "targets_from_predictions",
]
