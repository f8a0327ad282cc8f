"""Backtests: `backtest` runs one agent on the engine's fitting path; `run_competition` replays several agents.

Every backtest in the library, the CLI, the flows, the benchmarks and the notebooks goes through `backtest`, so the
choice between the batch kernel and the step loop is made here only. The two paths give the same result (fills,
equity, risk verdicts, fill rejections; `tests/engine/test_parity.py`), so the choice is one of speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from arena_lib.agents.base import Agent, BatchAgent

# The engine is imported when a backtest runs, not with this module: `from arena_lib import backtest` stays cheap.
if TYPE_CHECKING:
    import pandas as pd

    from arena_lib.core.config import BacktestConfig
    from arena_lib.data.market import MarketData
    from arena_lib.engine.loop import ProgressCallback
    from arena_lib.engine.results import BacktestResult

BacktestPath = Literal["auto", "batch", "step"]
PATHS: tuple[str, ...] = ("auto", "batch", "step")


class NoBatchPathError(ValueError):
    """The batch path was asked for an agent that has no `decide_batch`."""


def backtest(
    agent: Agent,
    market: MarketData,
    config: BacktestConfig,
    path: BacktestPath = "auto",
    *,
    run_id: str = "replay",
    progress: ProgressCallback | None = None,
) -> BacktestResult:
    """Backtest one agent on `market` under `config`: the one entry point to the engine for a single account.

    `path`: "batch" runs the agent's `decide_batch` targets through the numba kernel (agents that are a
    `BatchAgent`: rules, trained models), "step" runs its `decide` bar by bar through the step loop, and "auto"
    (the default) takes the batch kernel whenever the agent has one, the step loop otherwise. `result.meta["path"]`
    says which ran. `progress(done, total)` follows the step loop's bars; the batch path reports once, at the end.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}; got {path!r}")
    if path != "step" and isinstance(agent, BatchAgent):
        from arena_lib.engine.kernel import run_batch  # numba: compiled (or loaded from its cache) on first use only

        result = run_batch(agent, market, config, run_id=run_id)
        if progress is not None:
            progress(market.n_bars, market.n_bars)
        return result
    if path == "batch":
        raise NoBatchPathError(
            f"{agent.name} has no decide_batch, so it has no batch path: use path='step' (or 'auto')"
        )
    from arena_lib.engine.loop import run_replay

    return run_replay([agent], market, config, run_id=run_id, progress=progress)[agent.name]


def run_competition(
    config: BacktestConfig,
    agents: Sequence[Agent],
    *,
    run_id: str = "replay",
    progress: ProgressCallback | None = None,
    market: MarketData | None = None,
) -> tuple[MarketData, dict[str, BacktestResult], pd.DataFrame]:
    """Replay every agent on the same snapshots; returns the market, the results and the leaderboard."""
    from arena_lib.analytics.leaderboard import leaderboard
    from arena_lib.data.history import load_market
    from arena_lib.engine.loop import run_replay

    market = market or load_market(config.symbols, config.timeframe, config.start, config.end)
    results = run_replay(agents, market, config, run_id=run_id, progress=progress)
    return market, results, leaderboard(results)
