"""Sweep scale-out: the `sweep` flow on one Dask worker against two, every timing taken in the same run.

    .venv/bin/python benchmarks/sweep.py              # 200 variants x 4 windows x 6 symbols (about 10 minutes)
    .venv/bin/python benchmarks/sweep.py --quick      # smoke-run sizes (seconds of compute, plus start-ups)
    .venv/bin/python benchmarks/sweep.py --only local --only pool --repeats 5 --output /tmp/sweep.json

The workload is CPU-bound: an SMA-crossover grid (fast x slow x long-only/long-short) on the real Binance 1h
sample of all six coins, cut into 4 consecutive windows, every cell scored by the engine with fees and slippage.
What is timed, on 1 worker and on 2 (`time.perf_counter`, a `gc.collect()` before each run):

0. In-process serial: the same cells in a plain loop in this process: the compute without any orchestration.
1. `pool`, the ceiling: the flow's tasks on a `ProcessPoolExecutor` started and warmed beforehand, without Prefect
   or Dask: the speedup this machine offers to this work at that moment.
2. `local`, the default and the target's subject: `run_sweep(n_workers=n)`, whose local cluster is started by the
   process's first sweep (timed apart: `local_cluster_first_run_s`) and kept for the next ones.
3. `cold`: `run_sweep(n_workers=n, reuse_cluster=False)`, a cluster started and stopped by each run (as the
   `sweep` flow called directly does), so these times include the workers' start-up (their imports).
4. `warm` (`--only warm`): a cluster started apart and given by address, the `ARENA_DASK_ADDRESS` path.
5. `threads` (`--only threads`): `run_sweep(processes=False)`. Why processes are the default: a cell spends most
   of its time in pandas and Python (metrics, the fill table), which hold the GIL, so a second thread adds little.

Each configuration runs 1 worker then 2, `--repeats` times, alternating so that the load of a shared machine
drifts over both alike; the best of the repeats counts. Before any timing numba's kernels are compiled (or
loaded from its cache) here and in every worker, and one small flow run starts Prefect's temporary server. Every
run's cells must equal the in-process loop's (`same_results`), so a ratio is never reported for different work.
The target (near-linear: >= 1.8x on 2 workers) applies to `local`; compare it with the pool's ceiling from the
same run. `flow_overhead_s` is the wall time of a one-cell sweep on the kept cluster: the fixed cost of any
sweep (Prefect's flow run and one task), which a small sweep cannot spread over its workers. Results go to
`benchmarks/sweep_results.json` (or `--output`); the figures belong to the run that wrote it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib and flows
    sys.path.insert(0, str(ROOT))

# Before Prefect is imported: its temporary server may start slowly on a busy shared machine, and per-task INFO
# lines would bury the table.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pandas as pd  # noqa: E402
from distributed import Client  # noqa: E402

import flows  # noqa: E402, F401 - Prefect's project-local home and defaults, before Prefect is imported
from arena_lib.core.config import BacktestConfig, CostModel  # noqa: E402
from arena_lib.data.history import load_market  # noqa: E402
from arena_lib.data.market import MarketData  # noqa: E402
from arena_lib.research.sweep import (  # noqa: E402
    CellGroup,
    SweepVariants,
    Window,
    evaluate_cells,
    evaluate_groups,
    plan_tasks,
    resolve_windows,
    results_frame,
    sweep_variants,
)
from benchmarks._common import aligned_table, best_of, command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402
from flows.sweep import (  # noqa: E402
    TASKS_PER_SLOT,
    SweepResult,
    close_local_clusters,
    local_cluster,
    run_sweep,
    shared_local_cluster,
)

DEFAULT_OUTPUT = ROOT / "benchmarks" / "sweep_results.json"
TARGETS = {"local_speedup_2_workers": 1.8}  # near-linear on 2 cores: at least 90% parallel efficiency
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "symbols": ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT"],
        "grid": {
            "fast": [4, 6, 8, 12, 16, 20, 24, 32, 40, 48],
            "slow": [64, 72, 96, 120, 144, 168, 200, 240, 288, 336],
            "allow_short": [False, True],
        },
        "windows": 4,
        "start": None,
        "end": None,
        "repeats": 3,
    },
    "quick": {
        "symbols": ["BTC/USDT"],
        "grid": {"fast": [6, 12], "slow": [48, 96]},
        "windows": 2,
        "start": "2024-01-01",
        "end": "2024-03-31",
        "repeats": 1,
    },
}
COSTS = {"fee_bps": 10.0, "slippage_bps": 5.0}
AGENT = "sma_cross"


def _sweep_kwargs(sizes: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbols": sizes["symbols"],
        "windows": sizes["windows"],
        "start": sizes["start"],
        "end": sizes["end"],
        "costs": COSTS,
        "track": False,
    }


@dataclass(frozen=True)
class Work:
    """The sweep's inputs, prepared once as the flow prepares them: variants, costs, windows and their bars."""

    variants: SweepVariants
    config: BacktestConfig
    windows: list[Window]
    markets: list[MarketData]

    @classmethod
    def prepare(cls, sizes: dict[str, Any]) -> Work:
        symbols = sizes["symbols"]
        windows = resolve_windows(sizes["windows"], load_market(symbols, "1h"), sizes["start"], sizes["end"])
        return cls(
            sweep_variants(AGENT, sizes["grid"]),
            BacktestConfig(symbols=tuple(symbols), costs=CostModel(**COSTS)),
            windows,
            [load_market(symbols, "1h", *w.bounds()) for w in windows],
        )

    def plan(self, slots: int) -> list[list[CellGroup]]:
        """The flow's split of the cells for `slots` workers (`plan_tasks`, `TASKS_PER_SLOT` tasks per slot)."""
        return plan_tasks(self.variants, self.windows, self.markets, TASKS_PER_SLOT * slots)

    def loop(self) -> pd.DataFrame:
        """Every cell, one after another in this process."""
        rows = [r for groups in self.plan(1) for r in evaluate_groups(AGENT, groups, self.config)]
        return results_frame(rows, self.variants.labels)

    def on_pool(self, pool: ProcessPoolExecutor, slots: int) -> pd.DataFrame:
        """Every cell on a process pool, in the flow's tasks (no Prefect, no Dask)."""
        futures = [pool.submit(evaluate_groups, AGENT, groups, self.config) for groups in self.plan(slots)]
        return results_frame([r for f in futures for r in f.result()], self.variants.labels)


def _warm_worker(seconds: float = 0.0) -> float:
    """Run on every worker before timing: the imports and numba's kernels, as a first task would pay them."""
    t0 = time.perf_counter()
    import prefect.task_engine  # noqa: F401

    from arena_lib.agents.registry import make_agent
    from arena_lib.engine.backtest import backtest

    market = load_market(["BTC/USDT"], "1h", "2024-01-01", "2024-01-10")
    backtest(make_agent(AGENT, {"fast": 6, "slow": 24}), market, BacktestConfig(), "batch")
    time.sleep(seconds)  # keeps this worker busy, so that the pool starts the next one for the next call
    return time.perf_counter() - t0


Outcome = tuple[pd.DataFrame, dict[str, Any]]


def _sweep_outcome(result: SweepResult) -> Outcome:
    return result.cells, {"tasks": result.tasks, **result.timings}


def _one_against_two(label: str, repeats: int, run: Callable[[int], Outcome]) -> dict[str, Any]:
    """`run(1)` then `run(2)`, `repeats` times: alternating, so a shared machine's load drift hits both alike."""
    out: dict[str, Any] = {}
    for _ in range(repeats):
        for n in (1, 2):
            gc.collect()
            t0 = time.perf_counter()
            cells, info = run(n)
            wall = time.perf_counter() - t0
            entry = out.setdefault(f"{n}_workers", {"all_s": [], "runs": [], "cells": cells})
            entry["all_s"].append(wall)
            entry["runs"].append(info)
    for n in (1, 2):
        out[f"{n}_workers"]["best_s"] = min(out[f"{n}_workers"]["all_s"])
    out["speedup"] = out["1_workers"]["best_s"] / out["2_workers"]["best_s"]
    times = {n: [round(t, 2) for t in out[f"{n}_workers"]["all_s"]] for n in (1, 2)}
    print(f"  {label}: 1 worker {times[1]} s, 2 workers {times[2]} s, speedup {out['speedup']:.2f}x", flush=True)
    return out


KINDS = ("pool", "local", "cold", "warm", "threads")
DEFAULT_KINDS = ("pool", "local", "cold")
NAMES = {
    "pool": "process pool, no Prefect/Dask (ceiling)",
    "local": "local cluster, kept (run_sweep default)",
    "cold": "local cluster started per run",
    "warm": "cluster by address",
    "threads": "thread workers",
}
TINY = {"grid": {"fast": [12], "slow": [48]}, "windows": 1, "start": "2024-01-01", "end": "2024-01-03"}
"""One cell on three days: its wall time is the fixed cost of a sweep (the flow run, one task), not compute."""


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(sizes: dict[str, Any], repeats: int, kinds: tuple[str, ...] = DEFAULT_KINDS) -> dict[str, Any]:
    """The in-process loop, then each configuration of `kinds` on 1 and 2 workers; see the module docstring."""
    work = Work.prepare(sizes)
    t0 = time.perf_counter()
    evaluate_cells(AGENT, work.variants.params[:1], ["warm-up"], work.windows[0], work.markets[0], work.config)
    numba_warmup_s = time.perf_counter() - t0
    print("in-process serial loop ...", flush=True)
    serial_s, serial_all, reference = best_of(work.loop, repeats)
    print(f"  {len(reference)} cells: {[round(t, 2) for t in serial_all]} s", flush=True)

    base = {"agent": AGENT, "grid": sizes["grid"], **_sweep_kwargs(sizes)}
    small = {**TINY, "windows": 2, "end": "2024-01-05", "cells_per_task": 1}  # two one-cell tasks: one per worker
    t0 = time.perf_counter()
    run_sweep(**{**base, **small, "n_workers": 1, "processes": False})
    warmup_flow_s = time.perf_counter() - t0  # Prefect's temporary server starts here

    configs: dict[str, dict[str, Any]] = {}
    cluster_start_s: dict[int, float] = {}
    overhead_s = math.nan
    with ExitStack() as stack:
        stack.callback(close_local_clusters)
        if "pool" in kinds:
            print(NAMES["pool"], "...", flush=True)
            pools = {n: stack.enter_context(ProcessPoolExecutor(n, mp_context=get_context("spawn"))) for n in (1, 2)}
            for n, pool in pools.items():
                list(pool.map(_warm_worker, [0.5] * n))
            configs["pool"] = _one_against_two("pool", repeats, lambda n: (work.on_pool(pools[n], n), {}))
        if "local" in kinds:
            print(NAMES["local"], "- started by a first run_sweep, kept for the next ...", flush=True)
            for n in (1, 2):
                t0 = time.perf_counter()
                run_sweep(**{**base, **small, "n_workers": n})  # starts the kept cluster (and each worker's client)
                cluster_start_s[n] = time.perf_counter() - t0
                with Client(shared_local_cluster(n).scheduler_address) as client:
                    client.run(_warm_worker)
            configs["local"] = _one_against_two(
                "local", repeats, lambda n: _sweep_outcome(run_sweep(**base, n_workers=n))
            )
            overhead_s = min(_timed(lambda: run_sweep(**{**base, **TINY, "n_workers": 2})) for _ in range(repeats))
        if "cold" in kinds:
            print(NAMES["cold"], "- worker processes started and stopped by each run ...", flush=True)
            configs["cold"] = _one_against_two(
                "cold", repeats, lambda n: _sweep_outcome(run_sweep(**base, n_workers=n, reuse_cluster=False))
            )
        if "warm" in kinds:
            print(NAMES["warm"], "- started apart, warmed, given to each run ...", flush=True)
            addresses = {}
            for n in (1, 2):
                cluster = stack.enter_context(local_cluster(n_workers=n, threads_per_worker=1, processes=True))
                with Client(cluster.scheduler_address) as client:
                    client.run(_warm_worker)
                run_sweep(**{**base, **small, "address": cluster.scheduler_address})  # each worker's Prefect client
                addresses[n] = cluster.scheduler_address
            configs["warm"] = _one_against_two(
                "warm", repeats, lambda n: _sweep_outcome(run_sweep(**base, address=addresses[n]))
            )
        if "threads" in kinds:
            print(NAMES["threads"], "(one process, one GIL) ...", flush=True)
            configs["threads"] = _one_against_two(
                "threads", repeats, lambda n: _sweep_outcome(run_sweep(**base, n_workers=n, processes=False))
            )

    same = all(c[f"{n}_workers"].pop("cells").equals(reference) for c in configs.values() for n in (1, 2))
    speedups = {kind: c["speedup"] for kind, c in configs.items()}
    passed = same and ("local" not in kinds or speedups["local"] >= TARGETS["local_speedup_2_workers"])
    return {
        "cells": len(reference),
        "bars_per_variant": sum(m.n_bars for m in work.markets),
        "numba_warmup_s": numba_warmup_s,
        "in_process_serial": {"best_s": serial_s, "all_s": serial_all},
        "warmup_flow_s": warmup_flow_s,
        "local_cluster_first_run_s": cluster_start_s,
        "flow_overhead_s": overhead_s,
        "configurations": configs,
        "speedup_2_workers": speedups,
        "efficiency_2_workers": {k: v / 2 for k, v in speedups.items()},
        "same_results": same,
        "target": TARGETS["local_speedup_2_workers"],
        "pass": bool(passed),
    }


def render(r: dict[str, Any]) -> str:
    rows = [["in-process serial loop", f"{r['in_process_serial']['best_s']:.2f}", "", "", ""]]
    for kind, c in r["configurations"].items():
        verdict = f"target >= {r['target']:g}x  {'PASS' if r['pass'] else 'FAIL'}" if kind == "local" else ""
        one, two = c["1_workers"]["best_s"], c["2_workers"]["best_s"]
        rows.append([NAMES[kind], f"{one:.2f}", f"{two:.2f}", f"{c['speedup']:.2f}x", verdict])
    table = aligned_table(["configuration", "1 worker s", "2 workers s", "speedup", ""], rows)
    agree = "OK" if r["same_results"] else "MISMATCH (the ratios mean nothing)"
    fixed = ""
    if r["local_cluster_first_run_s"]:
        starts = ", ".join(f"{n} worker(s) {t:.1f} s" for n, t in r["local_cluster_first_run_s"].items())
        fixed = (
            f"\nfixed cost of one sweep on the kept cluster (a 1-cell sweep): {r['flow_overhead_s']:.2f} s; "
            f"first run_sweep of a process (starts the cluster, small sweep): {starts}"
        )
    return (
        f"{r['cells']} cells, {r['bars_per_variant']} bars per variant (best of the repeats)\n{table}\n"
        f"every run's cells equal the in-process loop's: {agree}{fixed}"
    )


def environment() -> dict[str, Any]:
    import dask
    import distributed
    import numba
    import prefect
    import prefect_dask

    return _environment(
        dask=dask.__version__,
        distributed=distributed.__version__,
        prefect=prefect.__version__,
        prefect_dask=prefect_dask.__version__,
        numba=numba.__version__,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes")
    parser.add_argument("--repeats", type=int, help="repeats of every timing (best counts)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--only", choices=KINDS, action="append", help="time only these configurations")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when the target is missed")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    repeats = int(args.repeats or sizes["repeats"])
    logging.getLogger("distributed").setLevel(logging.ERROR)  # worker shutdown chatter, not results
    started = time.perf_counter()
    results = bench(sizes, repeats, tuple(args.only) if args.only else DEFAULT_KINDS)
    payload = {
        "mode": mode,
        "sizes": {**sizes, "repeats": repeats, "configurations": args.only or list(DEFAULT_KINDS)},
        "command": command_line("benchmarks/sweep.py", argv),
        "data": f"real Binance 1h sample: {', '.join(sizes['symbols'])}",
        "environment": environment(),
        "targets": TARGETS,
        "results": results,
        "all_passed": results["pass"],
        "total_s": time.perf_counter() - started,
    }
    return write_results(payload, args.output, render(results), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
