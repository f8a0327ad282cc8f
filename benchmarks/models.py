"""Model training speed on the real sample: XGBoost `hist` fits at two sizes, and one Keras MLP epoch for reference.

    .venv/bin/python benchmarks/models.py            # 6 symbols x their full 1h history, DEFAULT_FEATURES
    .venv/bin/python benchmarks/models.py --quick    # smoke-run sizes: 2 symbols x 1,500 bars, 1 repeat, 20 trees

What is measured:

1. Dataset. `make_dataset(frames)` (DEFAULT_FEATURES, horizon 1, classification) on the chosen bars: rows, and
   the seconds spent (features plus labels), for scale.
2. XGBoost. `build_model(ModelSpec(kind="xgboost")).fit(X, y)` with the library's defaults (300 trees, depth 4,
   `tree_method="hist"`) on the device `xgboost_device()` picks, on the whole panel ("large") and on the first
   symbol's last year ("small"); then `predict` on the whole panel. One untimed fit on a few rows goes first
   (library load, device probe).
3. MLP, for reference. A Keras MLP (64-32, batch 256) fitted for one epoch and for three; the difference over
   two is the cost of one more epoch, without TensorFlow's import and graph tracing (reported apart). Skip it
   with `--only xgboost`.

Timing: best of several repeats (`time.perf_counter`, a `gc.collect()` before each). There is no target here: the
figures say what a training costs on this machine (its cores are in the JSON). Results go to
`benchmarks/models_results.json` (or `--output`) and a table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib
    sys.path.insert(0, str(ROOT))

from arena_lib.data.sample import available_symbols, load_sample  # noqa: E402
from arena_lib.models.estimators import ModelSpec, build_model, xgboost_device  # noqa: E402
from arena_lib.research.dataset import DEFAULT_FEATURES, Dataset, make_dataset  # noqa: E402
from benchmarks._common import aligned_table, best_of, command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "models_results.json"
BTC = "BTC/USDT"
SIZES: dict[str, dict[str, Any]] = {
    "full": {"symbols": 6, "bars": None, "small_bars": 8_760, "repeats": 3, "n_estimators": 300, "mlp_repeats": 1},
    "quick": {"symbols": 2, "bars": 1_500, "small_bars": 600, "repeats": 1, "n_estimators": 20, "mlp_repeats": 1},
}


# -- data ------------------------------------------------------------------------------------------------------------
def load_frames(n_symbols: int, bars: int | None) -> dict[str, pd.DataFrame]:
    """The first ``n_symbols`` sample symbols (BTC first), full 1h history, or its last ``bars`` bars."""
    symbols = [BTC] + [s for s in available_symbols("1h") if s != BTC]
    frames = {}
    for symbol in symbols[:n_symbols]:
        frame = load_sample(symbol, "1h")
        frames[symbol] = frame.iloc[-bars:] if bars else frame
    return frames


def build_dataset(frames: Mapping[str, pd.DataFrame]) -> tuple[Dataset, float]:
    t0 = time.perf_counter()
    ds = make_dataset(frames)
    return ds, time.perf_counter() - t0


def _span(ds: Dataset) -> str:
    times = ds.times()
    return f"{times[0]:%Y-%m-%d}..{times[-1]:%Y-%m-%d}"


# -- 2. xgboost ------------------------------------------------------------------------------------------------------
def bench_xgboost(large: Dataset, small: Dataset, n_estimators: int, repeats: int) -> dict[str, Any]:
    spec = ModelSpec(kind="xgboost", params={"n_estimators": n_estimators})
    warm = large.subset(np.arange(min(len(large), 500)))
    build_model(spec.model_copy(update={"params": {"n_estimators": 2}}), large.features).fit(warm.X, warm.y)
    out: dict[str, Any] = {"device": xgboost_device(), "params": spec.resolved_params()}
    model: Any = None
    for label, ds in (("large", large), ("small", small)):
        best, all_s, fitted = best_of(lambda ds=ds: build_model(spec, ds.features).fit(ds.X, ds.y), repeats)
        out[label] = {
            "rows": len(ds),
            "symbols": list(ds.symbols()),
            "span": _span(ds),
            "fit_s": best,
            "fit_all_s": all_s,
            "rows_per_s": len(ds) / best,
            "us_per_row_per_tree": best / len(ds) / n_estimators * 1e6,
        }
        if label == "large":
            model = fitted
    predict_s, predict_all, _ = best_of(lambda: model.predict(large.X), repeats)
    out["large"] |= {"predict_s": predict_s, "predict_all_s": predict_all}
    return out


# -- 3. mlp ----------------------------------------------------------------------------------------------------------
def bench_mlp(ds: Dataset, repeats: int) -> dict[str, Any]:
    one = ModelSpec(kind="mlp", epochs=1)
    three = one.model_copy(update={"epochs": 3})
    warm = ds.subset(np.arange(min(len(ds), 512)))
    t0 = time.perf_counter()
    build_model(one, ds.features).fit(warm.X, warm.y)  # imports TensorFlow, traces the graph once
    warmup_s = time.perf_counter() - t0
    one_s, one_all, _ = best_of(lambda: build_model(one, ds.features).fit(ds.X, ds.y), repeats)
    three_s, three_all, _ = best_of(lambda: build_model(three, ds.features).fit(ds.X, ds.y), repeats)
    per_epoch = max(three_s - one_s, 0.0) / 2
    return {
        "rows": len(ds),
        "params": one.resolved_params(),
        "batch_size": one.batch_size,
        "warmup_s": warmup_s,
        "fit_1_epoch_s": one_s,
        "fit_1_epoch_all_s": one_all,
        "fit_3_epochs_s": three_s,
        "fit_3_epochs_all_s": three_all,
        "per_epoch_s": per_epoch,
        "rows_per_s_per_epoch": len(ds) / per_epoch if per_epoch > 0 else None,
    }


# -- report ----------------------------------------------------------------------------------------------------------
def render_table(results: dict[str, Any]) -> str:
    lines: list[tuple[str, ...]] = []
    d = results["dataset"]
    lines.append(("make_dataset (features + labels)", f"{d['rows']:,}", f"{d['build_s']:.2f} s", d["span"]))
    if "xgboost" in results:
        x = results["xgboost"]
        trees = x["params"]["n_estimators"]
        for label in ("large", "small"):
            r = x[label]
            lines.append(
                (
                    f"xgboost fit, {label} ({trees} trees, hist, {x['device']})",
                    f"{r['rows']:,}",
                    f"{r['fit_s']:.2f} s",
                    f"{r['rows_per_s']:,.0f} rows/s, {len(r['symbols'])} symbol(s) {r['span']}",
                )
            )
        lines.append(("xgboost predict, large", f"{x['large']['rows']:,}", f"{x['large']['predict_s']:.3f} s", ""))
    if "mlp" in results:
        m = results["mlp"]
        lines.append(("mlp fit, 1 epoch (incl. graph build)", f"{m['rows']:,}", f"{m['fit_1_epoch_s']:.2f} s", ""))
        lines.append(("mlp, one more epoch", f"{m['rows']:,}", f"{m['per_epoch_s']:.2f} s", f"batch {m['batch_size']}"))
    return aligned_table(("benchmark", "rows", "time", "note"), lines)


def environment(with_keras: bool) -> dict[str, Any]:
    versions = {p: version(p) for p in ("numpy", "pandas", "xgboost")}
    if with_keras:
        versions |= {p: version(p) for p in ("tensorflow", "keras")}
    return _environment(**versions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes: 2 symbols x 1,500 bars, 1 repeat")
    parser.add_argument("--symbols", type=int, help="number of sample symbols (BTC first; up to 6)")
    parser.add_argument("--bars", type=int, help="use only the last N bars of each symbol")
    parser.add_argument("--repeats", type=int, help="repeats of every timing (best counts)")
    parser.add_argument("--only", choices=("xgboost", "mlp"), action="append", help="run only these")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    if args.symbols:
        sizes["symbols"] = args.symbols
    if args.bars:
        sizes["bars"] = args.bars
    if args.repeats:
        sizes["repeats"] = sizes["mlp_repeats"] = args.repeats
    which = tuple(args.only) if args.only else ("xgboost", "mlp")

    started = time.perf_counter()
    frames = load_frames(int(sizes["symbols"]), sizes["bars"])
    large, build_s = build_dataset(frames)
    first = next(iter(frames))
    small, _ = build_dataset({first: frames[first].iloc[-int(sizes["small_bars"]) :]})
    results: dict[str, Any] = {
        "dataset": {
            "rows": len(large),
            "features": list(DEFAULT_FEATURES),
            "symbols": list(large.symbols()),
            "span": _span(large),
            "data_hash": large.data_hash,
            "build_s": build_s,
        }
    }
    if "xgboost" in which:
        results["xgboost"] = bench_xgboost(large, small, int(sizes["n_estimators"]), int(sizes["repeats"]))
    if "mlp" in which:
        results["mlp"] = bench_mlp(large, int(sizes["mlp_repeats"]))
    payload = {
        "mode": mode,
        "sizes": sizes,
        "command": command_line("benchmarks/models.py", argv),
        "data": f"real Binance 1h sample: {', '.join(frames)}",
        "environment": environment("mlp" in which),
        "results": results,
        "total_s": time.perf_counter() - started,
    }
    return write_results(payload, args.output, render_table(results))


if __name__ == "__main__":
    sys.exit(main())
