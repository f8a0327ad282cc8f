"""Rule-selection statistics: every threshold trades the same predictions; PBO and DSR come from that grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_lib.core.config import BacktestConfig
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.research.evaluation import backtest_predictions
from arena_lib.research.overfitting import deflated_sharpe_ratio, pbo_cscv, trial_sharpe_variance
from arena_lib.research.rule_selection import rule_selection

SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(SYMBOLS, "1h", "2024-03-01", "2024-03-20")


def _momentum_probabilities(market: MarketData) -> pd.Series:
    """P(up) from the sign and size of the past 6-bar return: known at each close, so no look-ahead."""
    parts = []
    for j, symbol in enumerate(market.symbols):
        close = pd.Series(market.close[:, j], index=market.index())
        score = 0.5 + np.tanh(close.pct_change(6) * 20) * 0.2
        index = pd.MultiIndex.from_arrays([close.index, [symbol] * len(close)], names=["timestamp", "symbol"])
        parts.append(pd.Series(score.to_numpy(), index=index).dropna())
    return pd.concat(parts).sort_index()


def test_the_grid_is_the_thresholds_tried_and_the_stats_match_their_definitions(market: MarketData) -> None:
    prediction = _momentum_probabilities(market)
    config = BacktestConfig(symbols=SYMBOLS)
    sel = rule_selection(
        prediction, market, config, "classification", threshold=0.03, thresholds=(0.0, 0.05, 0.1), fraction=0.3
    )
    assert list(sel.returns.columns) == ["threshold=0", "threshold=0.03", "threshold=0.05", "threshold=0.1"]
    assert sel.chosen == "threshold=0.03"
    direct = backtest_predictions(prediction, market, config, "classification", threshold=0.03, fraction=0.3)
    np.testing.assert_allclose(sel.returns[sel.chosen], direct.equity.pct_change().fillna(0.0))
    assert sel.pbo == pbo_cscv(sel.returns, n_splits=8).pbo
    expected = deflated_sharpe_ratio(sel.returns[sel.chosen].to_numpy(), 4, trial_sharpe_variance(sel.returns))
    assert sel.deflated_sharpe == pytest.approx(expected)
    assert 0.0 <= sel.pbo <= 1.0
    assert 0.0 <= sel.deflated_sharpe <= 1.0
    assert sel.summary() == {"pbo": sel.pbo, "deflated_sharpe": sel.deflated_sharpe, "rule_trials": 4.0}


def test_a_rule_that_never_trades_has_no_deflated_sharpe_to_pass_with(market: MarketData) -> None:
    prediction = _momentum_probabilities(market)
    sel = rule_selection(
        prediction, market, BacktestConfig(symbols=SYMBOLS), "classification", threshold=0.45, thresholds=(0.0,)
    )
    assert sel.deflated_sharpe == 0.0


def test_bad_grids_and_short_windows_are_refused(market: MarketData) -> None:
    prediction = _momentum_probabilities(market)
    config = BacktestConfig(symbols=SYMBOLS)
    with pytest.raises(ValueError, match="at least two thresholds"):
        rule_selection(prediction, market, config, "classification", threshold=0.02, thresholds=(0.02,))
    with pytest.raises(ValueError, match=">= 0"):
        rule_selection(prediction, market, config, "classification", threshold=0.02, thresholds=(-0.1,))
    short = load_market(SYMBOLS, "1h", "2024-03-01 00:00", "2024-03-01 10:00")
    with pytest.raises(ValueError, match="too few for 8 CSCV blocks"):
        rule_selection(prediction, short, config, "classification", threshold=0.02)
