"""Feature-library speed: the full registered set on the real sample, its cost per group, and the shared core
indicators against plain pandas and the `ta` package, every ratio measured in the same run on the same bars.

    .venv/bin/python benchmarks/features.py            # 6 symbols x 2022-2025 1h bars (~35k bars each)
    .venv/bin/python benchmarks/features.py --quick    # smoke-run sizes: 2 symbols x 3,000 bars, 1 repeat

What is measured:

1. Full set. `compute_panel` of every registered feature (BTC/USDT as the cross-asset context, each symbol's real
   funding; symbols without funding get NaN funding columns), after one warm-up call that loads numba's cached
   kernels and imports hmmlearn (its time is reported apart).
2. Per group. `compute_features(frame, list_features(group))` per symbol, summed over symbols; each group on a fresh
   input, so intermediates shared across groups are counted in every group that uses them (the groups sum to more
   than the full set). The complexity and regime features are also timed one by one.
3. Shared indicators (SMA 20, EMA 20, RSI 14, MACD 12/26/9, Bollinger 20/2, ATR 14, 1-bar returns, rolling std
   24 of returns), three ways: Arena's implementation (`arena_lib.features.core` / the feature kernels, on numpy
   arrays), plain pandas written here (rolling/ewm on Series), and the `ta` package. Inputs are prepared outside
   the timer in each side's native type. Each value is checked against the pandas reference after a warm-up of
   10x the period (EMA-type seeds differ: TA-Lib seeds with an SMA, pandas' `ewm(adjust=False)` with the first
   value), so a ratio is never reported for different work. Target: Arena <= 0.5x plain pandas per indicator.

Timing: best of several repeats (`time.perf_counter`, a `gc.collect()` before each). Results go to
`benchmarks/features_results.json` (or `--output`) and a table on stdout with PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib
    sys.path.insert(0, str(ROOT))

from arena_lib.data.sample import available_symbols, load_sample, load_sample_funding  # noqa: E402
from arena_lib.features import core  # noqa: E402
from arena_lib.features.pipeline import compute_features, compute_panel  # noqa: E402
from arena_lib.features.registry import FEATURES, groups, list_features  # noqa: E402
from arena_lib.features.returns import rolling_std  # noqa: E402
from arena_lib.features.technical import bollinger_bands  # noqa: E402
from benchmarks._common import aligned_table, best_of, command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "features_results.json"
START, END = "2022-01-01", "2025-12-31"
BTC = "BTC/USDT"
TARGET_VS_PANDAS = 0.5  # Arena time / plain pandas time, per shared indicator
AGREEMENT_RTOL = 1e-6
SIZES = {
    "full": {"symbols": 6, "bars": None, "repeats": 1, "indicator_repeats": 15},
    "quick": {"symbols": 2, "bars": 3_000, "repeats": 1, "indicator_repeats": 3},
}
PER_FEATURE_GROUPS = ("complexity", "regime")


# -- data ------------------------------------------------------------------------------------------------------------
def load_frames(n_symbols: int, bars: int | None) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """The first ``n_symbols`` sample symbols (BTC first: it is the cross-asset context), 2022-2025 1h bars (the
    last ``bars`` of them when given), and each symbol's funding (empty for symbols the sample has none for)."""
    symbols = [BTC] + [s for s in available_symbols("1h") if s != BTC]
    frames: dict[str, pd.DataFrame] = {}
    for symbol in symbols[:n_symbols]:
        frame = load_sample(symbol, "1h", START, END)
        frames[symbol] = frame.iloc[-bars:] if bars else frame
    funding = {s: load_sample_funding(s) for s in frames}
    return frames, funding


# -- 1 + 2. the feature set and its groups ---------------------------------------------------------------------------
def bench_feature_set(frames: Mapping[str, pd.DataFrame], funding: Mapping[str, pd.Series], repeats: int) -> dict:
    btc = frames.get(BTC)
    first = next(iter(frames.values()))
    t0 = time.perf_counter()
    compute_features(first.iloc[:1500], btc=btc, funding=funding.get(next(iter(frames))))  # load kernels, imports
    warmup_s = time.perf_counter() - t0

    best, all_s, panel = best_of(lambda: compute_panel(frames, None, funding, btc=btc), repeats)
    n_bars = sum(len(f) for f in frames.values())
    per_group: dict[str, float] = {}
    per_feature: dict[str, float] = {}
    for group in groups():
        names = list_features(group)
        spent = 0.0
        for symbol, frame in frames.items():
            gc.collect()
            t0 = time.perf_counter()
            compute_features(frame, names, btc=btc, funding=funding.get(symbol))
            spent += time.perf_counter() - t0
        per_group[group] = spent
        if group in PER_FEATURE_GROUPS:
            for name in names:
                t0 = time.perf_counter()
                for symbol, frame in frames.items():
                    compute_features(frame, [name], btc=btc, funding=funding.get(symbol))
                per_feature[name] = time.perf_counter() - t0
    return {
        "n_symbols": len(frames),
        "n_bars_total": n_bars,
        "bars_per_symbol": {s: len(f) for s, f in frames.items()},
        "n_features": int(panel.shape[1]),
        "panel_shape": list(panel.shape),
        "non_nan_fraction": float(panel.notna().to_numpy().mean()),
        "warmup_s": warmup_s,
        "full_set_s": best,
        "full_set_all_s": all_s,
        "us_per_bar": best / n_bars * 1e6,
        "us_per_bar_per_feature": best / n_bars / panel.shape[1] * 1e6,
        "per_group_s": per_group,
        "per_feature_s": per_feature,
    }


# -- 3. shared indicators, three ways --------------------------------------------------------------------------------
def _tr_pandas(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    prev = close.shift(1)
    return pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1, skipna=False)


def pandas_indicators() -> dict[str, Callable[[dict[str, pd.Series]], Any]]:
    """The plain-pandas reference implementations (the way a notebook would write them)."""

    def rsi(s: dict[str, pd.Series]) -> pd.Series:
        delta = s["close"].diff()
        gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
        loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
        return 100 - 100 / (1 + gain / loss)

    def macd(s: dict[str, pd.Series]) -> tuple[pd.Series, pd.Series, pd.Series]:
        c = s["close"]
        line = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
        signal = line.ewm(span=9, adjust=False).mean()
        return line, signal, line - signal

    def bollinger(s: dict[str, pd.Series]) -> tuple[pd.Series, pd.Series, pd.Series]:
        roll = s["close"].rolling(20)
        mid, std = roll.mean(), roll.std(ddof=0)
        return mid, mid + 2 * std, mid - 2 * std

    return {
        "sma_20": lambda s: s["close"].rolling(20).mean(),
        "ema_20": lambda s: s["close"].ewm(span=20, adjust=False).mean(),
        "rsi_14": rsi,
        "macd_12_26_9": macd,
        "bollinger_20_2": bollinger,
        "atr_14": lambda s: _tr_pandas(s["high"], s["low"], s["close"]).ewm(alpha=1 / 14, adjust=False).mean(),
        "returns_1": lambda s: s["close"].pct_change(),
        "rolling_std_24": lambda s: s["close"].pct_change().rolling(24).std(),
    }


def arena_indicators() -> dict[str, Callable[[dict[str, np.ndarray]], Any]]:
    def returns(a: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full(len(a["close"]), np.nan)
        out[1:] = a["close"][1:] / a["close"][:-1] - 1.0
        return out

    return {
        "sma_20": lambda a: core.sma(a["close"], 20),
        "ema_20": lambda a: core.ema(a["close"], 20),
        "rsi_14": lambda a: core.rsi(a["close"], 14),
        "macd_12_26_9": lambda a: core.macd(a["close"], 12, 26, 9),
        "bollinger_20_2": lambda a: bollinger_bands(a["close"], 20, 2.0),
        "atr_14": lambda a: core.atr(a["high"], a["low"], a["close"], 14),
        "returns_1": returns,
        "rolling_std_24": lambda a: rolling_std(returns(a), 24),
    }


def ta_indicators() -> dict[str, Callable[[dict[str, pd.Series]], Any]]:
    from ta.momentum import RSIIndicator
    from ta.others import DailyReturnIndicator
    from ta.trend import MACD, EMAIndicator, SMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands

    def macd(s: dict[str, pd.Series]) -> tuple[pd.Series, pd.Series, pd.Series]:
        m = MACD(s["close"], window_slow=26, window_fast=12, window_sign=9)
        return m.macd(), m.macd_signal(), m.macd_diff()

    def bollinger(s: dict[str, pd.Series]) -> tuple[pd.Series, pd.Series, pd.Series]:
        b = BollingerBands(s["close"], window=20, window_dev=2)
        return b.bollinger_mavg(), b.bollinger_hband(), b.bollinger_lband()

    return {  # `ta` has no plain rolling std: that row has no ta column
        "sma_20": lambda s: SMAIndicator(s["close"], window=20).sma_indicator(),
        "ema_20": lambda s: EMAIndicator(s["close"], window=20).ema_indicator(),
        "rsi_14": lambda s: RSIIndicator(s["close"], window=14).rsi(),
        "macd_12_26_9": macd,
        "bollinger_20_2": bollinger,
        "atr_14": lambda s: AverageTrueRange(s["high"], s["low"], s["close"], window=14).average_true_range(),
        "returns_1": lambda s: DailyReturnIndicator(s["close"]).daily_return() / 100.0,
    }


# Bars skipped before comparing: the window, or for EMA-type indicators enough for the seeds' weight to vanish
# (TA-Lib seeds with an SMA, pandas' ewm(adjust=False) with the first value): (1 - 1/14) ** 400 ~ 1e-13.
WARMUP_BARS = {"sma_20": 20, "ema_20": 400, "rsi_14": 400, "macd_12_26_9": 400, "bollinger_20_2": 20,
               "atr_14": 400, "returns_1": 1, "rolling_std_24": 25}  # fmt: skip


def _as_arrays(out: Any) -> list[np.ndarray]:
    parts = out if isinstance(out, tuple) else (out,)
    return [np.asarray(p, dtype=np.float64) for p in parts]


def max_rel_diff(a: Any, b: Any, skip: int) -> float:
    """Largest relative difference after ``skip`` warm-up bars (NaN positions must match there)."""
    worst = 0.0
    for x, y in zip(_as_arrays(a), _as_arrays(b), strict=True):
        x, y = x[skip:], y[skip:]
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return math.inf
        ok = ~np.isnan(x)
        scale = max(float(np.max(np.abs(y[ok]))), 1e-300) if ok.any() else 1.0
        worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-9 * scale))))
    return worst


def bench_indicators(frames: Mapping[str, pd.DataFrame], repeats: int) -> dict:
    series = [{c: f[c].astype(np.float64) for c in ("high", "low", "close")} for f in frames.values()]
    arrays = [{c: np.ascontiguousarray(s[c].to_numpy()) for c in s} for s in series]
    arena, plain, peer = arena_indicators(), pandas_indicators(), ta_indicators()
    results: dict[str, Any] = {}

    def run(impl: Callable[[Any], Any], inputs: list[Any]) -> list[Any]:
        return [impl(x) for x in inputs]

    for name, fn in arena.items():
        run(fn, arrays[:1])  # first call outside the timer (imports, numba cache)
        arena_s, arena_all, arena_out = best_of(lambda fn=fn: run(fn, arrays), repeats)
        pandas_s, pandas_all, pandas_out = best_of(lambda name=name: run(plain[name], series), repeats)
        row: dict[str, Any] = {
            "arena_s": arena_s,
            "pandas_s": pandas_s,
            "arena_all_s": arena_all,
            "pandas_all_s": pandas_all,
            "ratio_vs_pandas": arena_s / pandas_s,
            "target_vs_pandas": TARGET_VS_PANDAS,
            "pass": arena_s / pandas_s <= TARGET_VS_PANDAS,
            "max_rel_diff_vs_pandas": max(
                max_rel_diff(a, p, WARMUP_BARS[name]) for a, p in zip(arena_out, pandas_out, strict=True)
            ),
        }
        if name in peer:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ta's pandas deprecation chatter
                ta_s, ta_all, ta_out = best_of(lambda name=name: run(peer[name], series), repeats)
            row |= {
                "ta_s": ta_s,
                "ta_all_s": ta_all,
                "ratio_vs_ta": arena_s / ta_s,
                "max_rel_diff_vs_ta": max(
                    max_rel_diff(a, t, WARMUP_BARS[name]) for a, t in zip(arena_out, ta_out, strict=True)
                ),
            }
        row["same_work"] = row["max_rel_diff_vs_pandas"] <= AGREEMENT_RTOL
        results[name] = row
    arena_total = sum(r["arena_s"] for r in results.values())
    pandas_total = sum(r["pandas_s"] for r in results.values())
    ta_rows = [r for r in results.values() if "ta_s" in r]
    return {
        "per_indicator": results,
        "total": {
            "arena_s": arena_total,
            "pandas_s": pandas_total,
            "ratio_vs_pandas": arena_total / pandas_total,
            "ratio_vs_ta_common": sum(r["arena_s"] for r in ta_rows) / sum(r["ta_s"] for r in ta_rows),
        },
    }


# -- report ----------------------------------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render_table(results: dict[str, Any]) -> str:
    lines: list[tuple[str, ...]] = []
    if "feature_set" in results:
        f = results["feature_set"]
        lines.append(
            (
                f"full feature set ({f['n_features']} features, {f['n_symbols']} symbols, {f['n_bars_total']:,} bars)",
                f"{f['full_set_s']:.2f} s ({f['us_per_bar']:.1f} us/bar)",
                "-",
                "-",
                "info",
                f"warm-up {f['warmup_s']:.1f} s",
            )
        )
        for group, spent in sorted(f["per_group_s"].items(), key=lambda kv: -kv[1]):
            lines.append((f"  group {group} ({len(list_features(group))})", f"{spent:.3f} s", "-", "-", "info", ""))
        for name, spent in sorted(f["per_feature_s"].items(), key=lambda kv: -kv[1]):
            lines.append((f"    {name}", f"{spent:.3f} s", "-", "-", "info", ""))
    if "indicators" in results:
        for name, r in results["indicators"]["per_indicator"].items():
            ta_part = f" | ta {r['ta_s'] * 1e3:.1f} ms ({r['ratio_vs_ta']:.2f}x)" if "ta_s" in r else " | ta: n/a"
            lines.append(
                (
                    f"indicator {name}",
                    f"{r['arena_s'] * 1e3:.2f} ms",
                    f"pandas {r['pandas_s'] * 1e3:.2f} ms{ta_part}",
                    f"{r['ratio_vs_pandas']:.3f}x",
                    f"<= {r['target_vs_pandas']:g}x",
                    _verdict(r["pass"]) + ("" if r["same_work"] else f" (MISMATCH {r['max_rel_diff_vs_pandas']:.1e})"),
                )
            )
        t = results["indicators"]["total"]
        lines.append(
            (
                "indicators, all eight",
                f"{t['arena_s'] * 1e3:.2f} ms",
                f"pandas {t['pandas_s'] * 1e3:.2f} ms",
                f"{t['ratio_vs_pandas']:.3f}x",
                f"<= {TARGET_VS_PANDAS:g}x",
                _verdict(t["ratio_vs_pandas"] <= TARGET_VS_PANDAS),
            )
        )
    return aligned_table(("benchmark", "arena", "peer", "ratio", "target", "result"), lines)


def environment() -> dict[str, Any]:
    import numba
    import ta
    import talib

    return _environment(
        numpy=np.__version__,
        pandas=pd.__version__,
        numba=numba.__version__,
        talib=talib.__version__,
        ta=getattr(ta, "__version__", "0.11"),
    )


def all_passed(results: dict[str, Any]) -> bool:
    rows = results.get("indicators", {}).get("per_indicator", {}).values()
    return all(r["pass"] and r["same_work"] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes: 2 symbols x 3,000 bars, 1 repeat")
    parser.add_argument("--symbols", type=int, help="number of sample symbols (BTC first; up to 6)")
    parser.add_argument("--bars", type=int, help="use only the last N bars of each symbol")
    parser.add_argument("--repeats", type=int, help="repeats of every timing (best counts)")
    parser.add_argument("--only", choices=("features", "indicators"), action="append", help="run only these")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    if args.symbols:
        sizes["symbols"] = args.symbols
    if args.bars:
        sizes["bars"] = args.bars
    if args.repeats:
        sizes["repeats"] = sizes["indicator_repeats"] = args.repeats
    which = tuple(args.only) if args.only else ("features", "indicators")

    started = time.perf_counter()
    frames, funding = load_frames(int(sizes["symbols"]), sizes["bars"])
    results: dict[str, Any] = {}
    if "indicators" in which:
        results["indicators"] = bench_indicators(frames, int(sizes["indicator_repeats"]))
    if "features" in which:
        results["feature_set"] = bench_feature_set(frames, funding, int(sizes["repeats"]))
    payload = {
        "mode": mode,
        "sizes": sizes,
        "command": command_line("benchmarks/features.py", argv),
        "data": f"real Binance 1h sample {START}..{END}: {', '.join(frames)}",
        "n_registered_features": len(FEATURES),
        "environment": environment(),
        "targets": {"indicator_vs_pandas": TARGET_VS_PANDAS, "agreement_rtol": AGREEMENT_RTOL},
        "results": results,
        "all_passed": all_passed(results),
        "total_s": time.perf_counter() - started,
    }
    return write_results(payload, args.output, render_table(results), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
