"""Parameter sweeps over several backtest windows: the pure work that `flows/sweep.py` spreads over a Dask cluster.

A sweep is every combination of a parameter grid (a *variant*) backtested in every window: one *cell* is one
(variant, window) pair and gives one row of metrics. Why here and not in the flow: validating the inputs, cutting
windows, scoring a cell and ranking the variants are plain functions of data, so a notebook can run them without
Prefect, the flow stays thin, and a Dask worker only needs `evaluate_groups` and what it imports.

Every cell runs on Arena's own engine with the config's costs (`validation.run_variants`, through
`arena_lib.backtest`: the numba batch kernel for agents with `decide_batch`, the step loop otherwise), so a cell's
metrics are exactly those of a direct backtest.

Choosing the variant with the best Sharpe is itself a fit, so the per-window summary also scores the walk-forward
choice: the variant that was best in the previous window, measured in the next one (out of sample), for windows
that follow each other without overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from arena_lib.agents.registry import make_agent
from arena_lib.analytics.metrics import SUMMARY_KEYS
from arena_lib.core.config import BacktestConfig
from arena_lib.data.market import MarketData
from arena_lib.data.resample import TimeLike, to_utc_timestamp
from arena_lib.research.validation import expand_grid, run_variants

__all__ = [
    "CELL_METRICS",
    "CellGroup",
    "SweepVariants",
    "Window",
    "dealt_chunks",
    "evaluate_cell",
    "evaluate_cells",
    "evaluate_groups",
    "plan_tasks",
    "resolve_windows",
    "results_frame",
    "sweep_summary",
    "sweep_variants",
    "window_summary",
]

CELL_METRICS: tuple[str, ...] = (*SUMMARY_KEYS, "bars", "fill_rejections")
"""The metric columns of one cell: the engine's summary (`engine.metrics.summarize`), bars and fill rejections."""


# ---------------------------------------------------------------------------------------------------- the inputs
@dataclass(frozen=True)
class SweepVariants:
    """The validated variants of a sweep: full parameters (base + grid) and a label naming their grid values."""

    agent: str
    grid: dict[str, list[Any]]
    params: list[dict[str, Any]]
    labels: list[str]


def sweep_variants(
    agent: str, grid: Mapping[str, Sequence[Any]], base_params: Mapping[str, Any] | None = None
) -> SweepVariants:
    """Expand `grid` over `base_params` and build every variant once, so any bad input fails before work is sent.

    Refuses an empty grid, a grid value that is not a list, an unknown agent or parameter (from `make_agent`) and
    every variant the agent's constructor rejects (all of them listed in one error, e.g. `fast >= slow`).
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("the sweep grid is empty: give at least one parameter with a list of values")
    not_lists = [k for k, v in grid.items() if isinstance(v, str | bytes) or not isinstance(v, Sequence)]
    if not_lists:
        raise ValueError(f"grid values must be lists of values; not a list for {not_lists}")
    params = expand_grid(base_params or {}, grid)  # raises for a parameter with no values
    labels = [",".join(f"{k}={p[k]}" for k in grid) for p in params]
    if len(set(labels)) != len(labels):
        raise ValueError(f"the grid repeats a value: {sorted({x for x in labels if labels.count(x) > 1})}")
    make_agent(agent, params[0])  # an unknown agent (KeyError) or parameter (ValueError) says so once
    rejected = []
    for label, p in zip(labels, params, strict=True):
        try:
            make_agent(agent, p)
        except (ValueError, TypeError) as exc:
            rejected.append(f"{label}: {exc}")
    if rejected:
        raise ValueError(
            f"{agent}: {len(rejected)} of {len(params)} grid variants are invalid:\n  " + "\n  ".join(rejected)
        )
    return SweepVariants(agent, {k: list(v) for k, v in grid.items()}, params, labels)


@dataclass(frozen=True)
class Window:
    """One backtest window: bars with open times in [start, end] (inclusive, UTC), numbered in the given order."""

    index: int
    start: pd.Timestamp
    end: pd.Timestamp

    def bounds(self) -> tuple[str, str]:
        """ISO start and end, as `load_market` and MLflow take them."""
        return self.start.isoformat(), self.end.isoformat()


def _coverage(market: MarketData) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The span every symbol of `market` has bars in: the latest first bar to the earliest last bar."""
    firsts = [s.times[0] for s in market.series.values()]
    lasts = [s.times[-1] for s in market.series.values()]
    return pd.Timestamp(max(firsts), tz="UTC"), pd.Timestamp(min(lasts), tz="UTC")


def resolve_windows(
    windows: int | Sequence[Sequence[TimeLike]],
    coverage: MarketData,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> list[Window]:
    """Windows as given ([start, end] pairs), or `windows` consecutive ones of equal bar counts over [start, end].

    `coverage` is the whole sample of the sweep's symbols; a window (or range) reaching outside the span where
    every symbol has bars is an error that names that span, rather than a silently shorter window.
    """
    lo, hi = _coverage(coverage)
    span = f"{', '.join(coverage.symbols)} {coverage.timeframe} has bars from {lo} to {hi} (bar open times)"

    def inside(a: pd.Timestamp, b: pd.Timestamp, what: str) -> None:
        if a >= b:
            raise ValueError(f"{what}: start {a} must be before end {b}")
        if a < lo or b > hi:
            raise ValueError(f"{what} [{a}, {b}] is outside the sample: {span}")

    if isinstance(windows, bool) or not isinstance(windows, int | Sequence) or isinstance(windows, str):
        raise TypeError(f"windows must be a count or a list of [start, end] pairs, got {windows!r}")
    if isinstance(windows, int):
        a = to_utc_timestamp(start, "start") if start is not None else lo
        b = to_utc_timestamp(end, "end") if end is not None else hi
        inside(a, b, "the sweep range")
        times = coverage.times[(coverage.times >= a.value) & (coverage.times <= b.value)]
        if windows < 1 or len(times) < 2 * windows:
            raise ValueError(f"cannot cut {len(times)} bars between {a} and {b} into {windows} windows of 2+ bars")
        parts = np.array_split(times, windows)
        return [Window(k, pd.Timestamp(p[0], tz="UTC"), pd.Timestamp(p[-1], tz="UTC")) for k, p in enumerate(parts)]
    if start is not None or end is not None:
        raise ValueError("start/end cut a range into a count of windows; with explicit windows, leave them out")
    if len(windows) == 0:
        raise ValueError("no windows: give a count or at least one [start, end] pair")
    out = []
    for k, pair in enumerate(windows):
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"window {k} must be a [start, end] pair, got {pair!r}")
        w = Window(k, to_utc_timestamp(pair[0], f"window {k} start"), to_utc_timestamp(pair[1], f"window {k} end"))
        inside(w.start, w.end, f"window {k}")
        out.append(w)
    return out


# ---------------------------------------------------------------------------------------------------- the work
def evaluate_cell(
    agent: str, params: Mapping[str, Any], market: MarketData, config: BacktestConfig, label: str | None = None
) -> dict[str, float]:
    """Backtest one variant on one window's market with `config`'s costs; the engine's metrics, as floats."""
    name = label or agent
    result = run_variants(agent, [params], market, config, [name])[name]
    metrics = result.metrics
    row = {k: float(metrics.get(k, math.nan)) for k in SUMMARY_KEYS}
    row["bars"] = float(market.n_bars)
    row["fill_rejections"] = float(len(result.fill_rejections))
    return row


def evaluate_cells(
    agent: str,
    params: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    window: Window,
    market: MarketData,
    config: BacktestConfig,
) -> list[dict[str, Any]]:
    """Rows of `results_frame` for several variants on one window."""
    start, end = window.bounds()
    where = {"window": window.index, "window_start": start, "window_end": end}
    return [
        {**where, "variant": label, **dict(p), **evaluate_cell(agent, p, market, config, label)}
        for label, p in zip(labels, params, strict=True)
    ]


@dataclass(frozen=True)
class CellGroup:
    """Some variants of a sweep on one window, with that window's bars: the part of a task that shares a market."""

    window: Window
    market: MarketData
    params: list[dict[str, Any]]
    labels: list[str]


def evaluate_groups(agent: str, groups: Sequence[CellGroup], config: BacktestConfig) -> list[dict[str, Any]]:
    """Rows of `results_frame` for every cell of `groups` (the unit of work of one task)."""
    return [row for g in groups for row in evaluate_cells(agent, g.params, g.labels, g.window, g.market, config)]


def plan_tasks(
    variants: SweepVariants, windows: Sequence[Window], markets: Sequence[MarketData], n_tasks: int
) -> list[list[CellGroup]]:
    """Every (variant, window) cell dealt into `n_tasks` tasks of about equal cost (fewer if there are fewer cells).

    Cells are taken window by window and dealt back and forth (`dealt_chunks`), so each task gets an even share
    of every window's variants; a task spans several windows and carries only the bars of those it touches.
    Why few tasks that span windows rather than one task per window or per variant: each Prefect task costs its
    worker about 0.1 s of CPU (a new API client and settings per task run), and windows differ in cost too
    (up to 15% on the benchmark), so a task per window would leave a straggler.
    """
    if len(windows) != len(markets):
        raise ValueError(f"{len(windows)} windows but {len(markets)} markets")
    n_variants = len(variants.params)
    tasks = []
    for cells in dealt_chunks(n_variants * len(windows), n_tasks):
        groups: dict[int, list[int]] = {}
        for cell in cells:
            groups.setdefault(cell // n_variants, []).append(cell % n_variants)
        tasks.append(
            [
                CellGroup(windows[w], markets[w], [variants.params[i] for i in idx], [variants.labels[i] for i in idx])
                for w, idx in groups.items()
            ]
        )
    return tasks


def dealt_chunks(n_items: int, n_chunks: int) -> list[list[int]]:
    """Indices 0..n_items-1 dealt into `n_chunks` lists (none empty) back and forth: 0..n-1, then n-1..0, and so on.

    Why: cells of one grid differ in cost in patterns the grid's order repeats (a short moving average trades more
    than a long one; long-short trades more than long-only, every other variant when `allow_short` is the last grid
    key). Consecutive runs give chunks of unequal cost, and so does a plain round-robin whose stride meets such a
    pattern: dealing the evens and odds of that grid made one worker's chunks 35% dearer than the other's, a
    straggler that cost the sweep a quarter of its speedup. Dealing back and forth gives each chunk one of every
    `n_chunks` neighbours and cancels the alternation; on the benchmark's measured cell costs its chunks stay within
    6% of the mean for up to 8 chunks (`tests/flows/test_sweep.py` checks the same on a synthetic grid).
    """
    if n_items < 1 or n_chunks < 1:
        raise ValueError(f"need at least one item and one chunk, got {n_items} items and {n_chunks} chunks")
    n = min(n_chunks, n_items)
    chunks: list[list[int]] = [[] for _ in range(n)]
    for i in range(n_items):
        lap, seat = divmod(i, n)
        chunks[seat if lap % 2 == 0 else n - 1 - seat].append(i)
    return chunks


# ---------------------------------------------------------------------------------------------------- the results
def results_frame(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> pd.DataFrame:
    """One row per cell, windows in order and, within a window, variants in the order of `labels`."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        raise ValueError("the sweep produced no cells")
    rank = {label: k for k, label in enumerate(labels)}
    frame = frame.iloc[np.lexsort((frame["variant"].map(rank).to_numpy(), frame["window"].to_numpy()))]
    frame["trades"] = frame["trades"].astype(np.int64)
    frame["bars"] = frame["bars"].astype(np.int64)
    frame["fill_rejections"] = frame["fill_rejections"].astype(np.int64)
    return frame.reset_index(drop=True)


def _best(frame: pd.DataFrame, metric: str = "sharpe") -> str:
    """The variant with the highest `metric` (NaN ranks last, ties go to the first listed)."""
    values = frame[metric].to_numpy(dtype=float)
    ranked = np.where(np.isnan(values), -np.inf, values)
    return str(frame["variant"].iloc[int(np.argmax(ranked))])


def window_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per window: its best variant by Sharpe, the median cell, and the walk-forward choice's out-of-sample score.

    `oos_variant` is the previous window's best variant and `oos_sharpe` / `oos_total_return` its metrics in this
    window; they are NaN for the first window and for a window that does not start after the previous one ends.
    """
    rows = []
    prev: tuple[pd.Timestamp, str] | None = None
    for _, part in cells.groupby("window", sort=True):
        start, end = pd.Timestamp(part["window_start"].iloc[0]), pd.Timestamp(part["window_end"].iloc[0])
        best = _best(part)
        row: dict[str, Any] = {
            "window": int(part["window"].iloc[0]),
            "window_start": part["window_start"].iloc[0],
            "window_end": part["window_end"].iloc[0],
            "bars": int(part["bars"].iloc[0]),
            "cells": len(part),
            "best_variant": best,
            "best_sharpe": float(part.loc[part["variant"] == best, "sharpe"].iloc[0]),
            "median_sharpe": float(part["sharpe"].median()),
            "median_total_return": float(part["total_return"].median()),
            "oos_variant": None,
            "oos_sharpe": math.nan,
            "oos_total_return": math.nan,
        }
        if prev is not None and start > prev[0]:
            chosen = part[part["variant"] == prev[1]]
            row["oos_variant"] = prev[1]
            row["oos_sharpe"] = float(chosen["sharpe"].iloc[0])
            row["oos_total_return"] = float(chosen["total_return"].iloc[0])
        rows.append(row)
        prev = (end, best)
    return pd.DataFrame(rows)


def sweep_summary(cells: pd.DataFrame, windows: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The variant with the best mean Sharpe over the windows, and the flat scalars a tracking run logs.

    `best_mean_sharpe` is in-sample (the best of many tries); `wf_oos_sharpe_mean` (mean over windows of the
    walk-forward choice's Sharpe) and `wf_oos_total_return` (compounded) are the out-of-sample view of it.
    """
    by_variant = cells.groupby("variant", sort=False).agg(
        mean_sharpe=("sharpe", "mean"),
        min_sharpe=("sharpe", "min"),
        mean_total_return=("total_return", "mean"),
        worst_max_drawdown=("max_drawdown", "min"),
        trades=("trades", "sum"),
    )
    best = _best(by_variant.rename(columns={"mean_sharpe": "sharpe"}).reset_index())
    top = by_variant.loc[best].to_dict()
    oos = windows["oos_sharpe"].dropna()
    oos_ret = windows["oos_total_return"].dropna()
    summary = {
        "variants": float(len(by_variant)),
        "windows": float(len(windows)),
        "cells": float(len(cells)),
        "best_mean_sharpe": float(top["mean_sharpe"]),
        "best_min_sharpe": float(top["min_sharpe"]),
        "best_mean_total_return": float(top["mean_total_return"]),
        "best_worst_max_drawdown": float(top["worst_max_drawdown"]),
        "best_trades": float(top["trades"]),
        "median_cell_sharpe": float(cells["sharpe"].median()),
        "wf_oos_windows": float(len(oos)),
        "wf_oos_sharpe_mean": float(oos.mean()) if len(oos) else math.nan,
        "wf_oos_total_return": float(np.prod(1.0 + oos_ret.to_numpy()) - 1.0) if len(oos_ret) else math.nan,
    }
    return best, summary
