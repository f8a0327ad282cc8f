"""High-level replays: load a market, run agents through the one loop, and save what they produced.

This is the layer the command line, notebooks and flows share, so that `arena backtest`, `make demo` and a
notebook cell all run exactly the same code path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from arena_lib.agents.base import Agent
from arena_lib.agents.registry import make_agent
from arena_lib.arena.leaderboard import leaderboard
from arena_lib.config import BacktestConfig
from arena_lib.data.history import load_bars, load_funding_history
from arena_lib.data.loader import load_checked
from arena_lib.data.market import MarketData
from arena_lib.data.resample import to_utc_timestamp
from arena_lib.data.sample import normalize_symbol, select_window
from arena_lib.engine.loop import ProgressCallback, run_replay
from arena_lib.engine.results import BacktestResult


def load_market(
    symbols: Sequence[str],
    timeframe: str,
    start: str | None = None,
    end: str | None = None,
    data_paths: Sequence[str | Path] | None = None,
) -> MarketData:
    """Bars for `symbols` with funding: the bundled sample extended by what `ingest` cached
    (`arena_lib.data.history`), or user files in the standard format.

    Every frame passes the quality checks first (gaps are allowed and reported; bad candles raise). With
    `data_paths`, each file is one symbol named after its file stem.
    """
    if start is not None and end is not None and to_utc_timestamp(start, "start") >= to_utc_timestamp(end, "end"):
        raise ValueError(f"start {start} must be before end {end}")
    frames: dict[str, pd.DataFrame] = {}
    funding: dict[str, pd.Series] = {}
    if data_paths:
        for path in data_paths:
            frame = load_checked(path, timeframe)
            frames[Path(path).name.split(".")[0]] = select_window(frame, start, end)
    else:
        for sym in symbols:
            norm = normalize_symbol(sym)
            frames[norm] = load_bars(norm, timeframe, start, end)  # quality-checked on load
            funding[norm] = load_funding_history(norm, start, end)
    empty = [s for s, f in frames.items() if f.empty]
    if empty:
        raise ValueError(f"no bars for {empty} between {start} and {end}")
    return MarketData.from_frames(frames, timeframe, funding)


@dataclass(frozen=True)
class AgentSpec:
    """An agent entry of a competition config: registry name, parameters and an optional display label."""

    agent: str
    params: Mapping[str, Any]
    label: str | None = None

    def build(self) -> Agent:
        return make_agent(self.agent, self.params, label=self.label)


def load_competition(path: str | Path) -> tuple[BacktestConfig, list[AgentSpec]]:
    """Read a competition YAML: the `BacktestConfig` keys plus an `agents:` list."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    specs = [AgentSpec(a["agent"], a.get("params", {}), a.get("label")) for a in raw.pop("agents", [])]
    if not specs:
        raise ValueError(f"{path}: a competition needs an 'agents:' list")
    if "symbols" in raw:
        raw["symbols"] = tuple(raw["symbols"])
    return BacktestConfig.model_validate(raw), specs


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


def save_result(result: BacktestResult, market: MarketData, out_dir: Path, config: BacktestConfig) -> dict[str, Path]:
    """Write equity, fills and trades (parquet), metrics and spec (JSON), and the interactive HTML report."""
    from arena_lib.reporting import backtest_figure, write_html

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "equity": out_dir / "equity.parquet",
        "fills": out_dir / "fills.parquet",
        "trades": out_dir / "trades.parquet",
        "metrics": out_dir / "metrics.json",
        "spec": out_dir / "spec.json",
    }
    result.equity.to_frame("equity").to_parquet(paths["equity"])
    result.fills.to_parquet(paths["fills"])
    result.trades.to_parquet(paths["trades"])
    paths["metrics"].write_text(json.dumps(_jsonable(result.metrics), indent=2))
    spec = {"agent": result.agent, "config": config.model_dump(mode="json"), **result.meta}
    paths["spec"].write_text(json.dumps(spec, indent=2, default=str))
    for sym in market.symbols:
        fname = "report.html" if len(market.symbols) == 1 else f"report_{sym.replace('/', '-')}.html"
        paths[f"report:{sym}"] = write_html(backtest_figure(result, market, sym), out_dir / fname)
    return paths


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float) and v != v:
            out[k] = None
        elif hasattr(v, "item"):
            out[k] = v.item()
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        else:
            out[k] = str(v)
    return out
