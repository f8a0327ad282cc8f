"""Arena speed benchmarks, with every ratio measured against its peer in the same run.

    .venv/bin/python benchmarks/run.py            # full sizes (1M bars batch, 100k bars step loop)
    .venv/bin/python benchmarks/run.py --quick    # smoke-run sizes (well under a minute)

What is measured (see benchmarks/README.md):

1. Batch path. Arena's numba kernel (`arena_lib.engine.kernel.simulate`) and `run_batch` end to end, against
   vectorbt's `Portfolio.from_signals`, on the same SMA-crossover signals with the same fee and slippage and the same
   fill convention (Arena `next_open` = vectorbt signals shifted one bar, executed at the open). Both run once to
   compile before timing, and the best of several repeats counts. The two final equities are compared, so a ratio is
   never reported for runs that did different work.
2. Step loop. `run_replay` with `NoOpAgent` against backtesting.py's `Backtest.run` with a no-op `Strategy`: the
   per-bar overhead of each event loop.
3. Import. `from arena_lib import backtest` in a fresh interpreter, and that it pulls in none of the heavy optional
   stacks.

The bars: the real Binance BTC/USDT 1h sample, tiled end to end to the size asked for, on a synthetic hourly time
axis (starting 2000-01-01 UTC). Prices are real; timestamps are not, and every tile seam is a price jump.
Results go to `benchmarks/results.json` (or `--output`) and a table on stdout, with PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib
    sys.path.insert(0, str(ROOT))

from arena_lib.agents.base import BatchSignals  # noqa: E402
from arena_lib.agents.baselines import NoOpAgent, SmaCross  # noqa: E402
from arena_lib.core.config import BacktestConfig, CostModel, ExecutionConfig  # noqa: E402
from arena_lib.data.market import OHLCV, MarketData  # noqa: E402
from arena_lib.data.sample import load_sample  # noqa: E402
from arena_lib.engine.backtest import backtest  # noqa: E402
from arena_lib.engine.kernel import simulate, simulate_args, split_events  # noqa: E402
from arena_lib.engine.loop import run_replay  # noqa: E402
from benchmarks._common import aligned_table, best_of, command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "results.json"
SOURCE_SYMBOL = "BTC/USDT"
SYNTHETIC_SYMBOL = "BTCX/USDT"  # a name that says "not the real series"
SYNTHETIC_START = "2000-01-01"
FEE_BPS = 10.0
SLIPPAGE_BPS = 5.0
CASH = 10_000.0
FORBIDDEN_IMPORTS = ("tensorflow", "mlflow", "prefect", "streamlit")

TARGETS = {
    "batch_kernel": 1.0,  # Arena kernel time / vectorbt from_signals time
    "batch_end_to_end": 1.0,  # run_batch / (same signals + from_signals + value())
    "step_loop": 0.25,  # run_replay(NoOpAgent) / backtesting.py no-op Backtest.run
    "import_s": 1.0,  # seconds for `from arena_lib import backtest` in a fresh interpreter
}
SIZES = {
    "full": {"batch_bars": 1_000_000, "step_bars": 100_000, "repeats": 5, "step_repeats": 3, "import_repeats": 3},
    "quick": {"batch_bars": 50_000, "step_bars": 10_000, "repeats": 2, "step_repeats": 2, "import_repeats": 1},
}


# -- data ------------------------------------------------------------------------------------------------------------
def synthetic_bars(n_bars: int) -> tuple[pd.DataFrame, str]:
    """`n_bars` hourly bars: the real BTC/USDT 1h sample tiled end to end on a synthetic time axis."""
    src = load_sample(SOURCE_SYMBOL, "1h")
    reps = -(-n_bars // len(src))
    cols = {c: np.tile(src[c].to_numpy(dtype=np.float64), reps)[:n_bars] for c in OHLCV}
    index = pd.date_range(SYNTHETIC_START, periods=n_bars, freq="h", tz="UTC", name="timestamp")
    label = (
        f"synthetic time axis: real Binance {SOURCE_SYMBOL} 1h OHLCV "
        f"({src.index[0]:%Y-%m-%d}..{src.index[-1]:%Y-%m-%d}, {len(src):,} bars) tiled {n_bars / len(src):.2f}x "
        f"to {n_bars:,} bars; hourly timestamps from {SYNTHETIC_START} are synthetic; each tile seam is a price jump"
    )
    return pd.DataFrame(cols, index=index), label


def _config(fill: str = "next_open") -> BacktestConfig:
    return BacktestConfig(
        symbols=(SYNTHETIC_SYMBOL,),
        costs=CostModel(fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS, impact_coef=0.0),
        execution=ExecutionConfig(fill=fill, initial_cash=CASH),
    )


# -- timing ----------------------------------------------------------------------------------------------------------
def _ratio(arena_s: float, peer_s: float) -> float:
    return arena_s / peer_s if peer_s > 0 else math.inf


# -- 1. batch kernel vs vectorbt -------------------------------------------------------------------------------------
def vectorbt_signals(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arena targets as vectorbt long-only signals for `next_open`: shifted one bar (decide at i, fill at i+1 open)."""
    entries = np.zeros(len(target), dtype=bool)
    exits = np.zeros(len(target), dtype=bool)
    entries[1:] = target[:-1] > 0
    exits[1:] = target[:-1] == 0
    return entries, exits


def bench_batch(n_bars: int, repeats: int) -> dict[str, Any]:
    import vectorbt as vbt

    frame, label = synthetic_bars(n_bars)
    market = MarketData.from_frames({SYNTHETIC_SYMBOL: frame}, "1h")
    config = _config("next_open")
    agent = SmaCross(fast=24, slow=96)
    target = agent.decide_batch(market).target
    args = simulate_args(market, BatchSignals(target=target), config)
    close, open_ = market.close[:, 0].copy(), market.open[:, 0].copy()
    vbt_kwargs: dict[str, Any] = {
        "price": open_,
        "fees": config.costs.fee_rate,
        "slippage": config.costs.slippage_bps * 1e-4,
        "size": np.inf,
        "init_cash": CASH,
        "direction": "longonly",
    }

    def arena_kernel() -> Any:
        return simulate(*args)

    def vbt_sim() -> Any:
        entries, exits = vectorbt_signals(target[:, 0])
        return vbt.Portfolio.from_signals(close, entries, exits, **vbt_kwargs)

    def vbt_sim_value() -> Any:
        return np.asarray(vbt_sim().value())

    def arena_end_to_end() -> Any:
        return backtest(agent, market, config, "batch")  # = run_batch, through the one entry point

    def vbt_end_to_end() -> Any:
        # The same work run_batch does: compute the SMA targets, simulate, and produce the equity curve.
        t = agent.decide_batch(market).target[:, 0]
        entries, exits = vectorbt_signals(t)
        return np.asarray(vbt.Portfolio.from_signals(close, entries, exits, **vbt_kwargs).value())

    # Warm up: numba compiles (or loads from its cache) on the first call of each signature.
    t0 = time.perf_counter()
    arena_kernel()
    arena_end_to_end()
    warm_arena = time.perf_counter() - t0
    t0 = time.perf_counter()
    vbt_sim_value()
    warm_vbt = time.perf_counter() - t0

    k_s, k_all, k_out = best_of(arena_kernel, repeats)
    v_s, v_all, pf = best_of(vbt_sim, repeats)
    vv_s, vv_all, _ = best_of(vbt_sim_value, repeats)
    e_s, e_all, result = best_of(arena_end_to_end, repeats)
    ve_s, ve_all, ve_out = best_of(vbt_end_to_end, repeats)

    # Same work? Final equity and number of fills must agree (the cross-check tests hold this to 1e-9).
    arena_final = float(k_out[2][-1])
    vbt_final = float(np.asarray(pf.value())[-1])
    rel = abs(arena_final / vbt_final - 1.0)
    e2e_rel = abs(result.final_equity / float(ve_out[-1]) - 1.0)
    n_fills, n_orders = len(split_events(k_out[0][: k_out[1]])[0]), len(pf.orders.values)
    same_work = rel < 1e-6 and e2e_rel < 1e-6 and n_fills == n_orders
    return {
        "data": label,
        "n_bars": n_bars,
        "repeats": repeats,
        "signals": "SmaCross(fast=24, slow=96) long-only, fraction 1.0, leverage 1",
        "costs": {"fee_bps": FEE_BPS, "slippage_bps": SLIPPAGE_BPS},
        "fill": "Arena next_open; vectorbt signals shifted one bar, price=open",
        "warmup_s": {"arena": warm_arena, "vectorbt": warm_vbt},
        "kernel": {
            "arena_s": k_s,
            "vectorbt_s": v_s,
            "arena_ns_per_bar": k_s / n_bars * 1e9,
            "vectorbt_ns_per_bar": v_s / n_bars * 1e9,
            "ratio": _ratio(k_s, v_s),
            "target": TARGETS["batch_kernel"],
            "pass": _ratio(k_s, v_s) <= TARGETS["batch_kernel"],
            "vectorbt_with_value_s": vv_s,
            "ratio_vs_vectorbt_with_value": _ratio(k_s, vv_s),
            "all_s": {"arena": k_all, "vectorbt": v_all, "vectorbt_with_value": vv_all},
        },
        "end_to_end": {
            "arena_s": e_s,
            "vectorbt_s": ve_s,
            "arena_ns_per_bar": e_s / n_bars * 1e9,
            "vectorbt_ns_per_bar": ve_s / n_bars * 1e9,
            "ratio": _ratio(e_s, ve_s),
            "target": TARGETS["batch_end_to_end"],
            "pass": _ratio(e_s, ve_s) <= TARGETS["batch_end_to_end"],
            "arena_does": "run_batch: decide_batch, kernel, equity/exposure Series, fills DataFrame, data hash",
            "vectorbt_does": "same decide_batch, from_signals (numpy inputs), value()",
            "all_s": {"arena": e_all, "vectorbt": ve_all},
        },
        "agreement": {
            "arena_final_equity": arena_final,
            "vectorbt_final_equity": vbt_final,
            "rel_diff": rel,
            "end_to_end_rel_diff": e2e_rel,
            "arena_fills": n_fills,
            "vectorbt_orders": n_orders,
            "same_work": same_work,
        },
    }


# -- 2. step loop vs backtesting.py ----------------------------------------------------------------------------------
def bench_step(n_bars: int, repeats: int) -> dict[str, Any]:
    import backtesting
    import backtesting.backtesting as bt_module

    frame, label = synthetic_bars(n_bars)
    market = MarketData.from_frames({SYNTHETIC_SYMBOL: frame}, "1h")
    config = _config("next_open")
    data = frame.rename(columns=str.capitalize)
    heap = len(gc.get_objects())

    class NoOpStrategy(backtesting.Strategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            pass

    def arena() -> Any:
        return run_replay([NoOpAgent()], market, config)

    def peer() -> Any:
        bt = backtesting.Backtest(data, NoOpStrategy, cash=CASH, commission=config.costs.fee_rate)
        return bt.run()

    # backtesting.py wraps its loop in a tqdm progress bar; switch it off (that only makes the peer faster).
    saved = bt_module._tqdm
    bt_module._tqdm = lambda seq, **_: seq
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "prices larger than initial cash": irrelevant to a no-op
            arena()
            peer()
            a_s, a_all, result = best_of(arena, repeats)
            p_s, p_all, stats = best_of(peer, repeats)
    finally:
        bt_module._tqdm = saved
    ratio = _ratio(a_s, p_s)
    return {
        "data": label,
        "n_bars": n_bars,
        "repeats": repeats,
        "arena_s": a_s,
        "backtesting_s": p_s,
        "arena_us_per_bar": a_s / n_bars * 1e6,
        "backtesting_us_per_bar": p_s / n_bars * 1e6,
        "ratio": ratio,
        "target": TARGETS["step_loop"],
        "pass": ratio <= TARGETS["step_loop"],
        "arena_does": "run_replay([NoOpAgent()]) on a prebuilt MarketData (snapshot, decide, equity per bar)",
        "backtesting_does": "Backtest.run() with a no-op Strategy on a prebuilt Backtest (loop + compute_stats)",
        "all_s": {"arena": a_all, "backtesting": p_all},
        "gc_tracked_objects_at_start": heap,
        "vectorbt_imported": "vectorbt" in sys.modules,
        "agreement": {
            "arena_final_equity": result[NoOpAgent.name].final_equity,
            "backtesting_final_equity": float(stats["Equity Final [$]"]),
        },
    }


# -- 3. import time --------------------------------------------------------------------------------------------------
_IMPORT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from arena_lib import backtest
t1 = time.perf_counter()
after_package = sorted({m.split(".")[0] for m in sys.modules} & set(FORBIDDEN))
import arena_lib.engine.loop, arena_lib.engine.kernel, arena_lib.agents.baselines, arena_lib.data.sample
t2 = time.perf_counter()
after_engine = sorted({m.split(".")[0] for m in sys.modules} & set(FORBIDDEN))
print(json.dumps({"import_s": t1 - t0, "engine_import_s": t2 - t1, "forbidden_after_package": after_package,
                  "forbidden_after_engine": after_engine}))
"""


def bench_import(repeats: int) -> dict[str, Any]:
    code = f"FORBIDDEN = {list(FORBIDDEN_IMPORTS)!r}\n{_IMPORT_PROBE}"
    runs: list[dict[str, Any]] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=dict(os.environ)
        )
        wall = time.perf_counter() - t0
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
        probe["subprocess_wall_s"] = wall
        runs.append(probe)
    best = min(runs, key=lambda r: r["import_s"])
    forbidden = sorted({m for r in runs for m in r["forbidden_after_package"]})
    forbidden_engine = sorted({m for r in runs for m in r["forbidden_after_engine"]})
    return {
        "repeats": len(runs),
        "import_s": best["import_s"],
        "engine_import_s": best["engine_import_s"],
        "subprocess_wall_s": min(r["subprocess_wall_s"] for r in runs),
        "target_s": TARGETS["import_s"],
        "forbidden_checked": list(FORBIDDEN_IMPORTS),
        "forbidden_imported": forbidden,
        "forbidden_imported_by_engine": forbidden_engine,
        "pass": best["import_s"] < TARGETS["import_s"] and not forbidden,
        "runs": runs,
    }


# -- report ----------------------------------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render_table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []
    if "batch" in results:
        b = results["batch"]
        k, e = b["kernel"], b["end_to_end"]
        n = f"{b['n_bars']:,} bars"
        rows.append(
            (
                f"batch kernel simulate vs vbt from_signals ({n})",
                f"{k['arena_s'] * 1e3:.1f} ms ({k['arena_ns_per_bar']:.1f} ns/bar)",
                f"{k['vectorbt_s'] * 1e3:.1f} ms ({k['vectorbt_ns_per_bar']:.1f} ns/bar)",
                f"{k['ratio']:.3f}x",
                f"<= {k['target']:g}x",
                _verdict(k["pass"]),
            )
        )
        rows.append(
            (
                "  (same kernel vs vbt from_signals + value())",
                f"{k['arena_s'] * 1e3:.1f} ms",
                f"{k['vectorbt_with_value_s'] * 1e3:.1f} ms",
                f"{k['ratio_vs_vectorbt_with_value']:.3f}x",
                "info",
                "",
            )
        )
        rows.append(
            (
                f"batch run_batch end to end vs vbt pipeline ({n})",
                f"{e['arena_s'] * 1e3:.1f} ms ({e['arena_ns_per_bar']:.1f} ns/bar)",
                f"{e['vectorbt_s'] * 1e3:.1f} ms ({e['vectorbt_ns_per_bar']:.1f} ns/bar)",
                f"{e['ratio']:.3f}x",
                f"<= {e['target']:g}x",
                _verdict(e["pass"]),
            )
        )
        a = b["agreement"]
        rows.append(
            (
                "  batch results agree (final equity, fills)",
                f"{a['arena_final_equity']:.6f} / {a['arena_fills']}",
                f"{a['vectorbt_final_equity']:.6f} / {a['vectorbt_orders']}",
                f"rel {a['rel_diff']:.1e}",
                "same work",
                "OK" if a["same_work"] else "MISMATCH",
            )
        )
    if "step" in results:
        s = results["step"]
        rows.append(
            (
                f"step loop run_replay(NoOp) vs backtesting.py no-op ({s['n_bars']:,} bars)",
                f"{s['arena_s'] * 1e3:.1f} ms ({s['arena_us_per_bar']:.2f} us/bar)",
                f"{s['backtesting_s'] * 1e3:.1f} ms ({s['backtesting_us_per_bar']:.2f} us/bar)",
                f"{s['ratio']:.3f}x",
                f"<= {s['target']:g}x",
                _verdict(s["pass"]),
            )
        )
    if "import" in results:
        i = results["import"]
        forbidden = ", ".join(i["forbidden_imported"]) or "none"
        rows.append(
            (
                "from arena_lib import backtest (fresh interpreter)",
                f"{i['import_s'] * 1e3:.1f} ms",
                "-",
                "-",
                f"< {i['target_s']:g} s",
                _verdict(i["import_s"] < i["target_s"]),
            )
        )
        rows.append(
            (
                f"  imports none of {', '.join(i['forbidden_checked'])}",
                f"imported: {forbidden}",
                "-",
                "-",
                "none",
                _verdict(not i["forbidden_imported"]),
            )
        )
        rows.append(
            (
                "  (engine modules: loop, kernel, baselines, sample)",
                f"{i['engine_import_s'] * 1e3:.1f} ms",
                "-",
                "-",
                "info",
                ", ".join(i["forbidden_imported_by_engine"]) or "",
            )
        )
    return aligned_table(("benchmark", "arena", "peer", "ratio", "target", "result"), rows)


def environment() -> dict[str, Any]:
    import backtesting
    import numba
    import vectorbt

    return _environment(
        numpy=np.__version__,
        pandas=pd.__version__,
        numba=numba.__version__,
        vectorbt=vectorbt.__version__,
        backtesting=backtesting.__version__,
    )


def run_all(sizes: dict[str, int], which: tuple[str, ...] = ("batch", "step", "import")) -> dict[str, Any]:
    """Run the benchmarks; the step loop goes first, before vectorbt is imported (see the README: a large heap of
    GC-tracked objects slows the step loop's setup, and vectorbt's import alone adds ~400k of them)."""
    results: dict[str, Any] = {}
    if "step" in which:
        results["step"] = bench_step(sizes["step_bars"], sizes["step_repeats"])
    if "import" in which:
        results["import"] = bench_import(sizes["import_repeats"])
    if "batch" in which:
        results["batch"] = bench_batch(sizes["batch_bars"], sizes["repeats"])
    return {k: results[k] for k in ("batch", "step", "import") if k in results}


def all_passed(results: dict[str, Any]) -> bool:
    checks = []
    if "batch" in results:
        checks += [results["batch"]["kernel"]["pass"], results["batch"]["end_to_end"]["pass"]]
    if "step" in results:
        checks.append(results["step"]["pass"])
    if "import" in results:
        checks.append(results["import"]["pass"])
    return all(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 60 s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--batch-bars", type=int, help="override the batch benchmark's bar count")
    parser.add_argument("--step-bars", type=int, help="override the step-loop benchmark's bar count")
    parser.add_argument("--repeats", type=int, help="override the repeats of every timing")
    parser.add_argument("--only", choices=("batch", "step", "import"), action="append", help="run only these")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    if args.batch_bars:
        sizes["batch_bars"] = args.batch_bars
    if args.step_bars:
        sizes["step_bars"] = args.step_bars
    if args.repeats:
        sizes["repeats"] = sizes["step_repeats"] = sizes["import_repeats"] = args.repeats
    which = tuple(args.only) if args.only else ("batch", "step", "import")

    started = time.perf_counter()
    results = run_all(sizes, which)
    payload = {
        "mode": mode,
        "sizes": sizes,
        "command": command_line("benchmarks/run.py", argv),
        "environment": environment(),
        "targets": TARGETS,
        "results": results,
        "all_passed": all_passed(results),
        "total_s": time.perf_counter() - started,
    }
    return write_results(payload, args.output, render_table(results), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
