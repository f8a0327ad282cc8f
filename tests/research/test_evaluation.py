"""Prediction metrics against sklearn/scipy, the prediction-to-position mapping, and backtests through the kernel."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import log_loss, roc_auc_score

from arena_lib.core.config import BacktestConfig, CostModel
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.research.evaluation import (
    PredictionAgent,
    backtest_predictions,
    prediction_metrics,
    targets_from_predictions,
)

SYMBOLS = ("BTC/USDT", "ETH/USDT")
START, END = "2024-03-01", "2024-03-10"


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(SYMBOLS, "1h", START, END)


def _panel_index(market: MarketData, rows: list[int], symbol: str) -> pd.MultiIndex:
    times = market.index()[rows]
    return pd.MultiIndex.from_arrays([times, [symbol] * len(rows)], names=["timestamp", "symbol"])


# ------------------------------------------------------------------------------------------------ metrics


def test_classification_metrics_match_sklearn_and_hand_counts() -> None:
    y = pd.Series([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.5, 0.7, 0.8, np.nan])  # the NaN row is dropped
    fwd = pd.Series([0.02, -0.01, 0.0, 0.03, -0.02, 0.01, -0.04, 0.05])
    m = prediction_metrics(y, p, fwd, "classification")
    y7, p7, f7 = y.to_numpy()[:7], p[:7], fwd.to_numpy()[:7]
    assert m["n"] == 7
    assert m["auc"] == pytest.approx(roc_auc_score(y7, p7))
    assert m["log_loss"] == pytest.approx(log_loss(y7, p7))
    # p > 0.5 -> up: rows 0 (1, right), 1 (0, right), 2 (1, right), 3 (0 vs 1, wrong), 4 (0.5 -> 0, right),
    # 5 (1, right), 6 (1 vs 0, wrong): 5 of 7
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["majority_accuracy"] == pytest.approx(4 / 7), "4 ups of 7 labels"
    assert m["accuracy_lift"] == pytest.approx(1 / 7)
    assert m["ic"] == pytest.approx(spearmanr(p7, f7).statistic)
    # hit rate skips row 2 (zero return) and row 4 (p == 0.5): rows 0, 1, 3, 5, 6 -> right, right, wrong, right,
    # wrong
    assert m["hit_rate"] == pytest.approx(3 / 5)


def test_majority_baseline_follows_the_more_frequent_class() -> None:
    y = pd.Series([0.0, 0.0, 0.0, 1.0])
    m = prediction_metrics(y, np.array([0.6, 0.6, 0.6, 0.6]), pd.Series([-1.0, -1.0, -1.0, 1.0]), "classification")
    assert m["majority_accuracy"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["accuracy_lift"] == pytest.approx(-0.5)
    assert math.isnan(m["ic"]), "a constant prediction has no rank correlation"


def test_regression_metrics_by_hand() -> None:
    index = pd.MultiIndex.from_tuples([(i, "A") for i in range(4)])
    y = pd.Series([0.01, -0.02, 0.03, 0.0], index=index)
    pred = pd.Series([0.02, -0.01, -0.01, 0.01], index=index)
    fwd = np.expm1(y)
    m = prediction_metrics(y, pred, fwd, "regression")
    assert set(m) == {"ic", "hit_rate", "rmse", "mae", "n"}
    err = pred.to_numpy() - y.to_numpy()
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(err**2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert m["hit_rate"] == pytest.approx(2 / 3), "signs agree on rows 0 and 1, not 2; row 3 has no move"
    assert m["ic"] == pytest.approx(spearmanr(pred, fwd).statistic)


def test_metrics_align_a_series_prediction_on_the_label_index_and_handle_all_nan() -> None:
    y = pd.Series([1.0, 0.0, 1.0], index=["a", "b", "c"])
    fwd = pd.Series([0.1, -0.1, 0.2], index=["a", "b", "c"])
    shuffled = pd.Series([0.3, 0.9, 0.2], index=["b", "c", "a"])  # a: 0.2, b: 0.3, c: 0.9
    m = prediction_metrics(y, shuffled, fwd, "classification")
    assert m["auc"] == pytest.approx(roc_auc_score([1, 0, 1], [0.2, 0.3, 0.9]))
    empty = prediction_metrics(y, np.full(3, np.nan), fwd, "classification")
    assert empty["n"] == 0
    assert math.isnan(empty["auc"])
    with pytest.raises(ValueError, match="probabilities"):
        prediction_metrics(y, np.array([0.1, 1.5, 0.2]), fwd, "classification")
    with pytest.raises(ValueError, match="task must be one of"):
        prediction_metrics(y, np.zeros(3), fwd, "ranking")


# ------------------------------------------------------------------------------------------------ targets


def test_targets_from_probabilities() -> None:
    p = pd.Series([0.9, 0.56, 0.5, 0.44, 0.1, np.nan])
    assert targets_from_predictions(p, "classification").tolist()[:5] == [1.0, 1.0, 0.0, -1.0, -1.0]
    t = targets_from_predictions(p, "classification", threshold=0.05, fraction=0.5)
    assert t.tolist()[:5] == [0.5, 0.5, 0.0, -0.5, -0.5]
    t = targets_from_predictions(p, "classification", threshold=0.1, allow_short=False)
    assert t.tolist()[:5] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert math.isnan(t.iloc[5]), "no prediction, no opinion: the engine keeps what is held"
    assert t.index.equals(p.index)


def test_targets_from_predicted_returns() -> None:
    r = pd.Series([0.002, 0.0005, 0.0, -0.0005, -0.002])
    assert targets_from_predictions(r, "regression").tolist() == [1.0, 1.0, 0.0, -1.0, -1.0]
    assert targets_from_predictions(r, "regression", threshold=0.001).tolist() == [1.0, 0.0, 0.0, 0.0, -1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": -0.1}, "threshold must be"),
        ({"threshold": 0.5}, "below 0.5"),
        ({"fraction": 0.0}, "fraction must be in"),
        ({"fraction": 2.0}, "fraction must be in"),
    ],
)
def test_target_arguments_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        targets_from_predictions(pd.Series([0.6]), "classification", **kwargs)


# ------------------------------------------------------------------------------------------------ agent, backtest


def test_prediction_agent_places_targets_on_the_prediction_rows(market: MarketData) -> None:
    pred = pd.Series([0.8, 0.3, 0.7], index=_panel_index(market, [5, 9, 20], "ETH/USDT"))
    signals = PredictionAgent(pred, "classification").decide_batch(market)
    assert signals.target.shape == market.close.shape
    eth = market.symbols.index("ETH/USDT")
    assert signals.target[[5, 9, 20], eth].tolist() == [1.0, -1.0, 1.0]
    assert np.isnan(np.delete(signals.target[:, eth], [5, 9, 20])).all()
    assert np.isnan(signals.target[:, market.symbols.index("BTC/USDT")]).all()
    with pytest.raises(NotImplementedError, match="batch path only"):
        PredictionAgent(pred, "classification").decide(None, None)  # type: ignore[arg-type]
    other = pd.Series([0.8], index=_panel_index(market, [5], "DOGE/USDT"))
    with pytest.raises(ValueError, match="no prediction for any market symbol"):
        PredictionAgent(other, "classification").decide_batch(market)


def test_fills_happen_at_the_next_bar_open(market: MarketData) -> None:
    # long from the close of row 10, flat at the close of row 14: fills at the opens of rows 11 and 15
    pred = pd.Series([0.9, 0.5], index=_panel_index(market, [10, 14], "BTC/USDT"))
    result = backtest_predictions(pred, market, BacktestConfig(symbols=SYMBOLS), "classification")
    fills = result.fills
    assert fills["kind"].tolist() == ["entry", "exit"]
    assert fills["side"].tolist() == ["buy", "sell"]
    times = market.index()
    assert fills["timestamp"].tolist() == [times[11], times[15]]
    btc = market.symbols.index("BTC/USDT")
    slip = 1e-4  # the default 1 bps slippage, against the trader
    assert fills["price"].iloc[0] == pytest.approx(market.open[11, btc] * (1 + slip))
    assert fills["price"].iloc[1] == pytest.approx(market.open[15, btc] * (1 - slip))


def test_backtest_pays_costs(market: MarketData) -> None:
    rng = np.random.default_rng(0)
    rows = list(range(market.n_bars))
    pred = pd.concat(
        [pd.Series(rng.uniform(0, 1, len(rows)), index=_panel_index(market, rows, s)) for s in SYMBOLS]
    ).sort_index()
    costly = BacktestConfig(symbols=SYMBOLS, costs=CostModel(fee_bps=10, slippage_bps=5))
    free = BacktestConfig(symbols=SYMBOLS, costs=CostModel(fee_bps=0, slippage_bps=0))
    paid = backtest_predictions(pred, market, costly, "classification", fraction=0.4)
    gratis = backtest_predictions(pred, market, free, "classification", fraction=0.4)
    assert len(paid.fills) > 20
    assert paid.fills["fee"].sum() > 0
    assert gratis.fills["fee"].sum() == 0
    assert paid.final_equity < gratis.final_equity, "fees and slippage cost money on the same trades"
    assert paid.agent == "model"
