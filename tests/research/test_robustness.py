"""Parameter and entry-delay sensitivity: an analytic function with known values, and real backtests on the engine."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.base import BatchSignals
from arena_lib.agents.registry import make_agent
from arena_lib.core.config import BacktestConfig
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.engine.kernel import run_batch
from arena_lib.engine.results import BacktestResult
from arena_lib.research.robustness import (
    SENSITIVITY_COLUMNS,
    backtest_metric,
    entry_delay_robustness,
    parameter_sensitivity,
    perturbed_values,
    shift_signals,
)

START, END = "2024-01-01", "2024-04-01"


def _analytic(p: dict[str, Any]) -> float:
    return 2 * p["x"] + p["y"] ** 2


# ------------------------------------------------------------------------------------------------ analytic


def test_sensitivity_of_an_analytic_function() -> None:
    params = {"x": 10, "y": 0.5, "mode": "fast", "allow_short": True}  # str and bool are left alone
    frame = parameter_sensitivity(_analytic, params, rel=0.2, cliff=0.1)
    assert list(frame.columns) == list(SENSITIVITY_COLUMNS)
    assert frame.loc[0, "parameter"] == "<base>"
    assert frame.loc[0, "metric"] == pytest.approx(20.25)
    rows = frame.iloc[1:].set_index(["parameter", "value"])
    # x = 10 +- 20% -> 8, 12 (integers stay integers): f = 16.25, 24.25.
    assert rows.loc[("x", 8), "metric"] == pytest.approx(16.25)
    assert rows.loc[("x", 12), "metric"] == pytest.approx(24.25)
    # y = 0.5 +- 20% -> 0.4, 0.6: f = 20.16, 20.36.
    assert rows.loc[("y", 0.4), "change"] == pytest.approx(-0.09)
    assert rows.loc[("y", 0.6), "change"] == pytest.approx(0.11)
    assert rows.loc[("x", 8), "rel_change"] == pytest.approx(-4 / 20.25)
    # A cliff is a drop of more than 10% of the base here: only x = 8 (-4 of 20.25) qualifies.
    assert frame.loc[frame["cliff"], ["parameter", "value"]].values.tolist() == [["x", 8]]
    assert set(frame["parameter"]) == {"<base>", "x", "y"}


def test_more_steps_and_integer_rounding() -> None:
    assert [v for _, v in perturbed_values(0.5, rel=0.2, steps=2)] == pytest.approx([0.4, 0.45, 0.55, 0.6])
    assert perturbed_values(24) == [(-0.2, 19), (0.2, 29)]  # 19.2 and 28.8 rounded
    assert perturbed_values(3) == [(-0.2, 2), (0.2, 4)]  # 2.4 and 3.6 round to the base 3: move one unit
    assert perturbed_values(1) == [(0.2, 2)]  # kept >= 1; 1 -> 1 is no perturbation
    assert perturbed_values(0.0) == []
    assert len(parameter_sensitivity(lambda p: 1.0, {"mode": "x"})) == 1  # nothing numeric: just the base row
    with pytest.raises(ValueError, match="rel"):
        perturbed_values(5, rel=0.0)


def test_invalid_variant_is_recorded_as_a_cliff() -> None:
    def evaluate(p: dict[str, Any]) -> float:
        if p["fast"] >= p["slow"]:
            raise ValueError("fast must be below slow")
        return float(p["slow"] - p["fast"])

    frame = parameter_sensitivity(evaluate, {"fast": 24, "slow": 28}, only=["fast"])
    bad = frame[frame["value"] == 29].iloc[0]
    assert math.isnan(bad["metric"])
    assert bad["cliff"]
    assert "fast must be below slow" in bad["error"]
    with pytest.raises(ValueError, match="unknown parameter"):
        parameter_sensitivity(evaluate, {"fast": 24, "slow": 28}, only=["medium"])


def test_entry_delay_table() -> None:
    frame = entry_delay_robustness(lambda d: 2.0 - 0.5 * d, delays=(0, 1, 2, 3))
    assert frame.index.tolist() == [0, 1, 2, 3]
    assert frame["metric"].tolist() == [2.0, 1.5, 1.0, 0.5]
    assert frame["change"].tolist() == [0.0, -0.5, -1.0, -1.5]
    assert frame["rel_change"].tolist() == [0.0, -0.25, -0.5, -0.75]
    with pytest.raises(ValueError, match="delays"):
        entry_delay_robustness(lambda d: 0.0, delays=(0, -1))


def test_shift_signals_moves_every_array_down() -> None:
    target = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, np.nan], [np.nan, 0.0]])
    stop = target * 90.0
    shifted = shift_signals(BatchSignals(target, stop_loss=stop, leverage=2.0), 1)
    np.testing.assert_array_equal(shifted.target[1:], target[:-1])
    assert np.isnan(shifted.target[0]).all()
    assert shifted.stop_loss is not None
    np.testing.assert_array_equal(shifted.stop_loss[2:], stop[1:-1])
    assert shifted.take_profit is None
    assert shifted.leverage == 2.0
    assert np.isnan(shift_signals(BatchSignals(target), 10).target).all()
    with pytest.raises(ValueError, match="delay"):
        shift_signals(BatchSignals(target), -1)


# ------------------------------------------------------------------------------------------------ real engine


@pytest.fixture(scope="module")
def market() -> MarketData:
    """Real BTC/USDT hourly bars, Q1 2024, from the bundled sample."""
    return load_market(["BTC/USDT"], "1h", START, END)


@pytest.fixture(scope="module")
def config() -> BacktestConfig:
    return BacktestConfig(symbols=("BTC/USDT",), timeframe="1h", start=START, end=END)


def test_sensitivity_of_a_real_sma_cross_backtest(market: MarketData, config: BacktestConfig) -> None:
    frame = parameter_sensitivity(lambda p: backtest_metric("sma_cross", p, market, config), {"fast": 24, "slow": 96})
    variants = frame.iloc[1:]
    assert variants[["parameter", "value"]].values.tolist() == [["fast", 19], ["fast", 29], ["slow", 77], ["slow", 115]]
    assert frame["metric"].notna().all()
    # Each row is an ordinary engine backtest: recompute two of them directly with the kernel.
    base = run_batch(make_agent("sma_cross", {"fast": 24, "slow": 96}), market, config)
    assert frame.loc[0, "metric"] == pytest.approx(base.metrics["sharpe"], rel=1e-12)
    slow_77 = run_batch(make_agent("sma_cross", {"fast": 24, "slow": 77}), market, config)
    assert variants.set_index("value").loc[77, "metric"] == pytest.approx(slow_77.metrics["sharpe"], rel=1e-12)
    assert frame["metric"].nunique() == 5  # the parameters matter: no two variants trade identically


def test_entry_delay_shifts_real_fills_by_whole_bars(market: MarketData, config: BacktestConfig) -> None:
    results: dict[int, BacktestResult] = {}

    def keep(delay: int) -> Any:
        def metric(result: BacktestResult) -> float:
            results[delay] = result
            return float(result.metrics["total_return"])

        return metric

    params = {"fast": 24, "slow": 96}
    frame = entry_delay_robustness(
        lambda d: backtest_metric("sma_cross", params, market, config, metric=keep(d), delay=d), delays=(0, 1, 3)
    )
    assert frame.loc[0, "metric"] == pytest.approx(
        run_batch(make_agent("sma_cross", params), market, config).metrics["total_return"]
    )
    first_fill = {d: r.fills["timestamp"].iloc[0] for d, r in results.items()}
    assert first_fill[1] - first_fill[0] == pd.Timedelta(hours=1)
    assert first_fill[3] - first_fill[0] == pd.Timedelta(hours=3)
    assert len(results[1].fills) == len(results[0].fills)  # same signals, one bar later
    assert frame.loc[1, "metric"] != frame.loc[0, "metric"]


def test_step_loop_agents_and_errors(market: MarketData, config: BacktestConfig) -> None:
    assert backtest_metric("noop", {}, market, config, metric="total_return") == 0.0  # runs on the step loop
    with pytest.raises(ValueError, match="entry delay needs the batch path"):
        backtest_metric("noop", {}, market, config, delay=1)
    with pytest.raises(ValueError, match="unknown metric"):
        backtest_metric("buy_and_hold", {}, market, config, metric="alpha")
    with pytest.raises(ValueError, match="delay"):
        backtest_metric("buy_and_hold", {}, market, config, delay=-1)
