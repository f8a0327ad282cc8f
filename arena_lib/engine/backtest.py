"""Backtests of several agents on one market: the engine's entry point for the CLI, notebooks and research."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from arena_lib.agents.base import Agent
from arena_lib.analytics.leaderboard import leaderboard
from arena_lib.core.config import BacktestConfig
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.engine.loop import ProgressCallback, run_replay
from arena_lib.engine.results import BacktestResult


def run_competition(
    config: BacktestConfig,
    agents: Sequence[Agent],
    *,
    run_id: str = "replay",
    progress: ProgressCallback | None = None,
    market: MarketData | None = None,
) -> tuple[MarketData, dict[str, BacktestResult], pd.DataFrame]:
    """Replay every agent on the same snapshots; returns the market, the results and the leaderboard."""
    market = market or load_market(config.symbols, config.timeframe, config.start, config.end)
    results = run_replay(agents, market, config, run_id=run_id, progress=progress)
    return market, results, leaderboard(results)
