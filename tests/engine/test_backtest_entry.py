"""Executable specification of `arena_lib.backtest`, the one entry point for backtesting one agent.

It picks the engine path ("auto": the batch kernel for agents with `decide_batch`, the step loop otherwise), runs
the path it is told to, and refuses what cannot run with a clear error. The batch and step results of a
TargetAgent are the same result (the full parity is `test_parity.py`). Replays the real offline sample.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import arena_lib
from arena_lib.agents.baselines import NoOpAgent, SmaCross
from arena_lib.core.config import BacktestConfig, RiskLimits
from arena_lib.data.market import MarketData
from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.engine.backtest import NoBatchPathError, backtest

SYMBOLS = ("BTC/USDT", "ETH/USDT")
# no reversals and a low leverage cap: the runs carry clamped and refused verdicts, not only plain approvals
CONFIG = BacktestConfig(symbols=SYMBOLS, risk=RiskLimits(max_leverage=2.0, allow_reversal=False))


@pytest.fixture(scope="module")
def market() -> MarketData:
    frames = {s: load_sample(s, "1h", "2022-03-01", "2022-06-30") for s in SYMBOLS}
    return MarketData.from_frames(frames, "1h", {s: load_sample_funding(s) for s in SYMBOLS})


def _sma() -> SmaCross:
    return SmaCross(fast=12, slow=48, allow_short=True, leverage=3.0, stop_loss_pct=0.05, fraction=0.4)


def test_auto_takes_the_batch_kernel_for_a_batch_agent(market: MarketData) -> None:
    result = backtest(_sma(), market, CONFIG)
    assert result.meta["path"] == "batch"
    assert len(result.fills) > 0


def test_auto_takes_the_step_loop_for_an_agent_without_decide_batch(market: MarketData) -> None:
    result = backtest(NoOpAgent(), market, CONFIG)
    assert result.meta["path"] == "step"
    assert result.final_equity == CONFIG.execution.initial_cash


@pytest.mark.parametrize("path", ["batch", "step"])
def test_the_path_asked_for_is_the_path_run(market: MarketData, path: str) -> None:
    result = backtest(_sma(), market, CONFIG, path, run_id="entry")  # type: ignore[arg-type]
    assert result.meta["path"] == path
    assert result.meta["run_id"] == "entry"
    assert result.fills["order_id"].str.startswith("entry/sma_cross/").all()


def test_batch_and_step_agree_for_a_target_agent(market: MarketData) -> None:
    batch = backtest(_sma(), market, CONFIG, "batch")
    step = backtest(_sma(), market, CONFIG, "step")
    pd.testing.assert_frame_equal(step.fills, batch.fills, check_exact=True)
    assert np.array_equal(step.equity.to_numpy(), batch.equity.to_numpy())
    assert step.verdicts == batch.verdicts
    assert step.fill_rejections == batch.fill_rejections
    pd.testing.assert_frame_equal(step.rejections(), batch.rejections())
    reasons = "; ".join(step.rejections()["reasons"])
    assert "clamped to max 2" in reasons
    assert "reversals not allowed" in reasons
    assert step.open_positions == batch.open_positions


@pytest.mark.parametrize("path", ["batch", "step"])
def test_progress_is_reported_on_both_paths(market: MarketData, path: str) -> None:
    seen: list[tuple[int, int]] = []
    backtest(_sma(), market, CONFIG, path, progress=lambda done, total: seen.append((done, total)))  # type: ignore[arg-type]
    assert seen[-1] == (market.n_bars, market.n_bars)


def test_batch_path_for_an_agent_without_decide_batch_is_a_clear_error(market: MarketData) -> None:
    with pytest.raises(NoBatchPathError, match=r"noop has no decide_batch, so it has no batch path: use path='step'"):
        backtest(NoOpAgent(), market, CONFIG, "batch")
    assert issubclass(NoBatchPathError, ValueError)


@pytest.mark.parametrize("path", ["vectorized", "", "BATCH", None])
def test_an_unknown_path_is_a_clear_error(market: MarketData, path: object) -> None:
    with pytest.raises(ValueError, match=r"path must be one of auto, batch, step; got"):
        backtest(_sma(), market, CONFIG, path)  # type: ignore[arg-type]


def test_arena_lib_exports_the_entry_point() -> None:
    assert arena_lib.backtest is backtest
    assert "backtest" in arena_lib.__all__
    with pytest.raises(AttributeError, match="no attribute 'run_batch'"):
        arena_lib.run_batch  # noqa: B018


def test_importing_the_entry_point_loads_no_engine_and_compiles_nothing() -> None:
    """`from arena_lib import backtest` in a fresh interpreter: no numba, no kernel, no step loop until a run."""
    code = (
        "import sys\n"
        "from arena_lib import backtest\n"
        "engine = ('numba', 'arena_lib.engine.kernel', 'arena_lib.engine.loop')\n"
        "loaded = [m for m in engine if m in sys.modules]\n"
        "print(backtest.__module__, loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "arena_lib.engine.backtest []"
