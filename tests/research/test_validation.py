"""`validate_strategy`: walk-forward selection uses past data only, and the report's numbers are the parts' numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena_lib.core.config import BacktestConfig
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.research.bootstrap import sharpe_ratio
from arena_lib.research.overfitting import pbo_cscv, walk_forward_oos
from arena_lib.research.validation import StrategyValidation, expand_grid, validate_strategy

SYMBOLS = ("BTC/USDT", "ETH/USDT")
GRID = {"fast": [12, 24], "slow": [48, 96]}


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(SYMBOLS, "1h", "2024-01-01", "2024-03-01")


@pytest.fixture(scope="module")
def config() -> BacktestConfig:
    return BacktestConfig(symbols=SYMBOLS, timeframe="1h")


@pytest.fixture(scope="module")
def report(market: MarketData, config: BacktestConfig) -> StrategyValidation:
    return validate_strategy(
        "sma_cross", GRID, market, config, base_params={"fraction": 0.4}, n_folds=3, mc_methods=("gbm",), mc_paths=50
    )


def test_expand_grid_overrides_the_base_and_refuses_an_empty_axis() -> None:
    assert expand_grid({"fraction": 0.5, "fast": 1}, {"fast": [2, 3]}) == [
        {"fraction": 0.5, "fast": 2},
        {"fraction": 0.5, "fast": 3},
    ]
    with pytest.raises(ValueError, match=r"\['slow'\] have no values"):
        expand_grid({}, {"slow": []})


def test_each_fold_chooses_the_best_in_sample_variant_and_keeps_its_next_window(report: StrategyValidation) -> None:
    returns = report.returns
    assert len(report.fold_choices) == 3
    oos_parts = []
    for row in report.fold_choices.itertuples():
        test_start = returns.index.get_loc(row.test_start)
        in_sample = returns.iloc[:test_start]  # expanding: everything before the test window
        best = max(returns.columns, key=lambda c: sharpe_ratio(in_sample[c].to_numpy()))
        assert row.chosen == best
        oos_parts.append(returns.loc[row.test_start : row.test_end, best])
    pd.testing.assert_series_equal(report.oos_returns, pd.concat(oos_parts), check_names=False)
    assert report.walk_forward.oos_sharpe == pytest.approx(walk_forward_oos(oos_parts).oos_sharpe)


def test_summary_carries_the_statistics_the_gates_read(report: StrategyValidation) -> None:
    s = report.summary()
    assert s["pbo"] == pytest.approx(pbo_cscv(report.returns, n_splits=8).pbo)
    assert 0.0 <= s["deflated_sharpe"] <= 1.0
    assert s["deflated_sharpe"] <= s["probabilistic_sharpe"]  # deflating against 4 trials can only lower it
    assert s["sharpe_ci_low"] <= s["sharpe"] <= s["sharpe_ci_high"]
    assert s["oos_trades"] > 0
    oos_equity = (1 + report.oos_returns).cumprod()
    assert s["wf_oos_max_drawdown"] == pytest.approx(float((oos_equity / oos_equity.cummax().clip(lower=1) - 1).min()))
    assert math.isnan(s["baseline_noop_oos_sharpe"])  # cash has no return dispersion
    assert s["best_baseline_oos_sharpe"] == s["baseline_buy_and_hold_oos_sharpe"]
    assert report.selected in report.variants.index
    assert report.variants.loc[report.selected, "sharpe"] == report.variants["sharpe"].max()
    assert list(report.entry_delay.index) == [0, 1, 2, 3]
    assert set(report.sensitivity["parameter"]) >= {"<base>", "fast", "slow"}
    assert np.isfinite([v for k, v in s.items() if k.startswith("mc_")]).all()


def test_a_market_too_short_for_the_folds_is_refused(market: MarketData, config: BacktestConfig) -> None:
    short = load_market(SYMBOLS, "1h", "2024-01-01", "2024-01-01 05:00")
    with pytest.raises(ValueError, match="needs at least 12 bars"):
        validate_strategy("sma_cross", GRID, short, config, n_folds=5)
    with pytest.raises(ValueError, match="at least 2 variants"):
        validate_strategy("sma_cross", {"fast": [12]}, market, config)


def test_the_report_writes_the_summary_and_every_figure(report: StrategyValidation, tmp_path: Path) -> None:
    from arena_lib.reports.validation import validation_figures, write_validation_report

    paths = write_validation_report(report, tmp_path / "report")
    summary = json.loads(paths["summary"].read_text())
    assert summary["selected"] == report.selected
    assert summary["metrics"]["pbo"] == pytest.approx(report.summary()["pbo"])
    assert summary["metrics"]["baseline_noop_oos_sharpe"] is None  # NaN becomes null, never a bare NaN token
    html = paths["report"].read_text()
    assert html.count("plotly-graph-div") == len(validation_figures(report)) == 6
    assert pd.read_csv(paths["variants"], index_col=0).index.tolist() == report.variants.index.tolist()
