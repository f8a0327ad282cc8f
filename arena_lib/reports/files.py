"""Write a backtest's results to a folder: equity, fills and trades as parquet, metrics and spec as JSON, HTML reports.

One writer for `arena backtest`, `make demo` and notebooks, so a saved run always has the same files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arena_lib.core.config import BacktestConfig
from arena_lib.data.market import MarketData
from arena_lib.engine.results import BacktestResult
from arena_lib.reports.figures import backtest_figure, write_html


def save_result(result: BacktestResult, market: MarketData, out_dir: Path, config: BacktestConfig) -> dict[str, Path]:
    """Write equity, fills and trades (parquet), metrics and spec (JSON), and the interactive HTML report."""
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
