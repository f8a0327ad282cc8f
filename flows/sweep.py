"""`sweep`: a parameter grid backtested over several windows, spread over a Dask cluster by prefect-dask.

Every (variant, window) cell is scored by `arena_lib.research.sweep.evaluate_cells` on the engine with the
configured costs; cells are dealt into one task per worker slot (`plan_tasks`: tasks of about equal cost, each with
a share of every window), because each Prefect task costs its worker about 0.1 s of CPU. Inputs are checked and
every window's bars are loaded in the flow before any task is submitted: a bad agent, grid, parameter or window
fails the run before a cluster starts. The results (one row per cell, a per-window summary, the best variant) are
returned and logged to MLflow in one run from the flow's own process, so workers never need MLflow.

Where the tasks run is configuration, read when `run_sweep` is called (not at import):

- default: a `distributed.LocalCluster` with one single-threaded worker *process* per core (`ARENA_DASK_WORKERS`
  or `n_workers` to change). Processes, not threads: a cell spends most of its time in pandas and Python (the
  metrics, the fill table), which hold the GIL, so threads gave no speedup here (`benchmarks/sweep.py`). Each
  worker process takes a few seconds to start (imports), so `run_sweep` starts the cluster on its first call and
  keeps it for the next ones in the same process (a notebook's sweeps), until `close_local_clusters()` or exit;
  `reuse_cluster=False`, or running the (async) `sweep` flow itself (as a deployment does), starts one per run.
  Its workers are pointed at the flow's own Prefect API, so they never start a temporary server of their own.
- remote: `ARENA_DASK_ADDRESS=tcp://scheduler:8786` (or `address=`) submits to a running Dask scheduler instead.
  Its workers need this project installed (the same commit, so `arena_lib` and `flows` import), and the flow
  must report to a Prefect server they can reach (`PREFECT_API_URL=http://server:4200/api` where the flow runs;
  Prefect sends its settings along with each task). Against Prefect's temporary local server, each remote worker
  would start a temporary server of its own. Market data travels with the tasks, so workers need no data files.
  For example: `dask scheduler` on one machine, `dask worker tcp://scheduler:8786 --nworkers auto --nthreads 1`
  on each of the others.

    from flows.sweep import run_sweep
    result = run_sweep("sma_cross", {"fast": [12, 24], "slow": [48, 96]}, windows=4)
    result.cells            # one row per (variant, window)
    result.windows          # per window: best variant, median cell, walk-forward out-of-sample score
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import pandas as pd
from distributed import LocalCluster
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect_dask import DaskTaskRunner

from arena_lib.core.config import BacktestConfig, CostModel
from arena_lib.core.settings import settings
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.research.sweep import (
    CellGroup,
    Window,
    evaluate_groups,
    plan_tasks,
    resolve_windows,
    results_frame,
    sweep_summary,
    sweep_variants,
    window_summary,
)

ADDRESS_ENV = "ARENA_DASK_ADDRESS"
WORKERS_ENV = "ARENA_DASK_WORKERS"
WORKER_CONFIG: dict[str, Any] = {
    # Dask pins glibc's trim threshold so that workers hand memory back to the OS sooner; that also turns off
    # glibc's adaptive mmap threshold, and a cell's many short-lived pandas arrays then cost about 10% more.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # The statistical profiler samples the running task's stack every 10 ms and needs the GIL the cell is using.
    "distributed.worker.profile.enabled": False,
    # Housekeeping that wakes every 20-500 ms in the scheduler, each nanny (all in the flow's process) and each
    # worker, on the same cores as the cells: event-loop health ticks, the nannies' memory polls, host metrics.
    # A sweep's tasks run for seconds to minutes, so polling once a second still catches a runaway worker.
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Dask settings for a sweep's local cluster (scheduler, nannies and workers): together about 15% less CPU per cell
and half the flow process's background CPU (measured as for `benchmarks/sweep.py`). Give a remote cluster the
same, e.g. `DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False` in its workers' environment."""
TASKS_PER_SLOT = 1
"""Tasks per worker thread. One: `plan_tasks` already deals the cells into tasks of about equal cost, and every
further task costs its worker about 0.1 s of CPU (a new Prefect API client and settings per task run). More would
only help workers of unequal speed."""
EXPERIMENT = "sweeps"


# ---------------------------------------------------------------------------------------------------- where it runs
def prefect_api_url() -> str:
    """The Prefect API this process reports to: the running flow's, else the configured one, else the temporary
    local server that Prefect starts for this process (started here if need be, and then reused by its flows)."""
    from prefect import get_client

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.client is not None:
        return str(ctx.client.api_url)
    return str(get_client(sync_client=True).api_url)


def local_cluster(**kwargs: Any) -> LocalCluster:
    """A `LocalCluster` whose worker processes report task runs to the flow's Prefect API.

    Why: a worker process that finds no `PREFECT_API_URL` starts its own temporary Prefect server (10-20 s, and
    its runs land in the wrong database). Inside a flow run, prefect-dask calls this on the first submit; outside
    one (a cluster kept warm for several runs, given to them by address) the process's own API is used. Thread
    workers share the flow's process and need nothing.
    """
    kwargs.setdefault("dashboard_address", ":0")  # any free port: a fixed 8787 collides on a shared machine
    if kwargs.get("processes", True):
        kwargs["env"] = {"PREFECT_API_URL": prefect_api_url(), **(kwargs.get("env") or {})}
    with dask.config.set(WORKER_CONFIG):  # read by each worker's nanny as the cluster starts them
        return LocalCluster(**kwargs)


def default_workers() -> int:
    """`ARENA_DASK_WORKERS`, else one worker per core (a value that is not a whole number >= 1 is a ConfigError)."""
    workers = settings().dask_workers
    return workers if workers is not None else os.cpu_count() or 1


def sweep_task_runner(
    address: str | None = None, n_workers: int | None = None, processes: bool = True
) -> DaskTaskRunner:
    """The Dask task runner for a sweep: a running scheduler (`address` or `ARENA_DASK_ADDRESS`), else a local cluster.

    The local cluster has `n_workers` (default `default_workers()`) single-threaded workers, processes by default.
    """
    address = address or settings().dask_address
    if address:
        if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")):
            raise ValueError(f"Dask scheduler address {address!r} must look like tcp://host:8786")
        return DaskTaskRunner(address=address)
    return local_task_runner(default_workers() if n_workers is None else n_workers, processes)


def local_task_runner(n_workers: int, processes: bool = True) -> DaskTaskRunner:
    """A task runner that starts a `local_cluster` of `n_workers` single-threaded workers for each flow run."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    return DaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": processes},
    )


_SHARED: dict[tuple[int, bool, str], LocalCluster] = {}


def shared_local_cluster(n_workers: int, processes: bool = True) -> LocalCluster:
    """A `local_cluster` of `n_workers` single-threaded workers, started on first use and kept for this process.

    Kept per Prefect API as well: workers report to the API they were started with, so a new temporary server (a
    test harness, say) gets a new cluster and the old one is closed.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    api = prefect_api_url() if processes else ""
    for key, cluster in list(_SHARED.items()):
        if (key[2] != api and key[1]) or cluster.status.name not in ("created", "running"):
            _SHARED.pop(key).close()
    key = (n_workers, processes, api)
    if key not in _SHARED:
        if not _SHARED:
            atexit.register(close_local_clusters)
        _SHARED[key] = local_cluster(n_workers=n_workers, threads_per_worker=1, processes=processes)
    return _SHARED[key]


def close_local_clusters() -> None:
    """Stop the clusters `run_sweep` kept (their worker processes exit); the next sweep starts a new one."""
    while _SHARED:
        _SHARED.popitem()[1].close()


def _worker_slots() -> int:
    """Threads across the run's Dask workers (this starts the local cluster); 1 for a non-Dask runner."""
    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx is not None else None
    if isinstance(runner, DaskTaskRunner):
        return max(1, sum(runner.client.nthreads().values()))
    return 1


# ---------------------------------------------------------------------------------------------------- the flow
@task(name="sweep-cells", cache_policy=NO_CACHE, persist_result=False, task_run_name="part{part}")
def sweep_cells_task(agent: str, groups: list[CellGroup], config: BacktestConfig, part: int) -> list[dict[str, Any]]:
    """Score one task's cells, which may span windows (runs on a Dask worker); `part` only names the task run."""
    return evaluate_groups(agent, groups, config)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: `cells` (one row per variant x window), `windows` (per-window summary), the best."""

    cells: pd.DataFrame
    windows: pd.DataFrame
    best_variant: str
    best_params: dict[str, Any]
    summary: dict[str, float]
    tasks: int
    mlflow_run_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _data_hash(markets: Sequence[MarketData]) -> str:
    return hashlib.sha256(",".join(m.fingerprint() for m in markets).encode()).hexdigest()[:16]


# prefect-dask's runner is a TaskRunner of its own future type, which Prefect's invariant annotation rejects.
@flow(name="sweep", persist_result=False, task_runner=local_task_runner(os.cpu_count() or 1))  # type: ignore[arg-type]
async def sweep(
    agent: str,
    grid: dict[str, list[Any]],
    symbols: list[str] | None = None,
    timeframe: str = "1h",
    windows: int | list[list[str]] = 4,
    start: str | None = None,
    end: str | None = None,
    costs: dict[str, float] | None = None,
    base_params: dict[str, Any] | None = None,
    cells_per_task: int | None = None,
    track: bool = True,
    experiment: str = EXPERIMENT,
) -> SweepResult:
    """Backtest every variant of `grid` (on top of `base_params`) for registry agent `agent` in every window.

    `windows`: a count of consecutive windows of equal bar counts over [`start`, `end`] (default: the whole
    sample), or a list of [start, end] pairs (inclusive bar open times, UTC). `costs`: `CostModel` fields
    (`fee_bps`, `slippage_bps`, `impact_coef`). `cells_per_task`: default about `TASKS_PER_SLOT` tasks per worker.
    With `track`, one MLflow run in `experiment` gets the inputs as params, the summary as metrics and
    `sweep_results.csv` / `sweep_windows.csv`. Called directly, it starts a local process cluster of one worker
    per core; `run_sweep` reads `ARENA_DASK_ADDRESS` / `ARENA_DASK_WORKERS` when called.

    Why `async`: Prefect's sync flow engine joins its heartbeat thread at the end of a run, and that thread sleeps
    in whole seconds, so every sync flow run ends on the next whole second after it started (0.5 s lost on
    average, a tenth of a short sweep); the async engine lets the thread end by itself, heartbeats kept. The
    body is sync work all the same. `run_sweep` runs it from sync code (a notebook's too); called directly it
    is `asyncio.run(sweep(...))`, or `await sweep(...)` in a notebook.
    """
    log = get_run_logger()
    t0 = time.perf_counter()
    if cells_per_task is not None and cells_per_task < 1:
        raise ValueError(f"cells_per_task must be at least 1, got {cells_per_task}")
    syms = list(symbols or ["BTC/USDT"])
    config = BacktestConfig(symbols=tuple(syms), timeframe=timeframe, costs=CostModel.model_validate(costs or {}))
    variants = sweep_variants(agent, grid, base_params)
    coverage = load_market(syms, timeframe)
    cuts = resolve_windows(windows, coverage, start, end)
    markets = [load_market(syms, timeframe, *w.bounds()) for w in cuts]
    t_prepared = time.perf_counter()

    slots = _worker_slots()
    t_cluster = time.perf_counter()
    n_cells = len(variants.params) * len(cuts)
    n_tasks = math.ceil(n_cells / cells_per_task) if cells_per_task else TASKS_PER_SLOT * slots
    plan = plan_tasks(variants, cuts, markets, n_tasks)
    # Each task carries its windows' bars (workers need no data files): tens of MB per task, which Dask warns of.
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GB"}):
        futures = [sweep_cells_task.submit(agent, groups, config, part) for part, groups in enumerate(plan)]
    log.info(
        "%d cells (%d variants x %d windows) in %d tasks on %d worker slots",
        *(n_cells, len(variants.params), len(cuts), len(futures), slots),
    )
    rows = await asyncio.to_thread(lambda: [row for f in futures for row in f.result()])  # the loop stays free
    t_computed = time.perf_counter()

    cells = results_frame(rows, variants.labels)
    per_window = window_summary(cells)
    best, summary = sweep_summary(cells, per_window)
    for _, row in per_window.iterrows():
        log.info(
            "window %d [%s, %s]: best %s (Sharpe %.2f), median Sharpe %.2f, walk-forward OOS Sharpe %.2f",
            *(row["window"], row["window_start"], row["window_end"], row["best_variant"], row["best_sharpe"]),
            *(row["median_sharpe"], row["oos_sharpe"]),
        )
    run_id = None
    if track:
        inputs = {"agent": agent, "grid": variants.grid, "base_params": dict(base_params or {})}
        run_id = _log_to_mlflow(experiment, inputs, cuts, config, markets, cells, per_window, best, summary)
    timings = {
        "prepare_s": t_prepared - t0,
        "cluster_s": t_cluster - t_prepared,
        "compute_s": t_computed - t_cluster,
        "total_s": time.perf_counter() - t0,
    }
    return SweepResult(
        cells=cells,
        windows=per_window,
        best_variant=best,
        best_params=dict(variants.params[variants.labels.index(best)]),
        summary=summary,
        tasks=len(futures),
        mlflow_run_id=run_id,
        timings=timings,
    )


def _log_to_mlflow(
    experiment: str,
    inputs: Mapping[str, Any],
    cuts: Sequence[Window],
    config: BacktestConfig,
    markets: Sequence[MarketData],
    cells: pd.DataFrame,
    per_window: pd.DataFrame,
    best: str,
    summary: Mapping[str, float],
) -> str:
    """One MLflow run: inputs as params (and `spec.json`), the summary as metrics, both tables as CSV artifacts."""
    from arena_lib.workflow import tracking

    params = {
        **inputs,
        "windows": [list(w.bounds()) for w in cuts],
        "symbols": list(config.symbols),
        "timeframe": config.timeframe,
        "costs": config.costs.model_dump(),
    }
    spec = {**params, "config": config.model_dump(mode="json"), "spec_hash": config.spec_hash()}
    with tracking.start_run(
        experiment,
        run_name=f"sweep-{inputs['agent']}",
        params=params,
        spec=spec,
        data_hash=_data_hash(markets),
        tags={"arena.kind": "sweep", "sweep.best_variant": best},
    ) as run:
        tracking.log_metrics(summary)
        tracking.log_frame(cells, "sweep_results.csv")
        tracking.log_frame(per_window, "sweep_windows.csv")
        return str(run.info.run_id)


def run_sweep(
    agent: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    address: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    reuse_cluster: bool = True,
    **kwargs: Any,
) -> SweepResult:
    """Run the `sweep` flow on the task runner configured now; `kwargs` go to the flow.

    A scheduler `address` (or `ARENA_DASK_ADDRESS`) wins; otherwise a local cluster of `n_workers` (default
    `default_workers()`) that is kept for this process's next sweeps (`shared_local_cluster`), or with
    `reuse_cluster=False` one started and stopped by this run (`sweep_task_runner`).
    """
    if reuse_cluster and not (address or settings().dask_address):
        cluster = shared_local_cluster(default_workers() if n_workers is None else n_workers, processes)
        runner = DaskTaskRunner(address=cluster.scheduler_address)
    else:
        runner = sweep_task_runner(address, n_workers, processes)
    configured = sweep.with_options(task_runner=runner)  # type: ignore[arg-type]  # see the @flow above
    return run_coro_as_sync(configured(agent, {k: list(v) for k, v in grid.items()}, **kwargs))
