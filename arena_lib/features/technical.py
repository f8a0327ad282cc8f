"""Classic technical indicators as scale-free features: trend, momentum, bands and candle shape.

Why scale-free: a model trained on BTC at $20k must read the same numbers at $100k and on DOGE at $0.1, so
moving averages enter as distances (``close / ema - 1``), MACD is divided by the price, and candle parts are
measured in ATRs or as fractions of the close. Oscillators (RSI, stochastics, ADX) are already bounded.

The shared primitives (EMA, SMA, RSI, MACD, ATR) come from ``arena_lib.features.core`` so that an "RSI 14" here
is the same number an LLM prompt or a rule agent sees; the rest are TA-Lib (C, fast) or the rolling kernels in
``returns``. EMA/Wilder-smoothed features are ``recursive`` and declare the warm-up of ``registry.ema_warmup`` /
``wilder_warmup``; windowed ones declare exactly their window.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import talib

from arena_lib.features import core
from arena_lib.features.registry import FeatureInput, FloatArray, ema_warmup, register, wilder_warmup
from arena_lib.features.returns import log_close, rolling_cov_var, rolling_mean, rolling_mean_std, safe_div
from arena_lib.features.volatility import average_true_range

EMA_SPANS: tuple[int, ...] = (12, 26, 50, 200)
SMA_WINDOWS: tuple[int, ...] = (20, 50, 200)
RSI_PERIODS: tuple[int, ...] = (7, 14, 28)
BB_WINDOWS: tuple[int, ...] = (20, 50)
BB_STDS = 2.0
MACD_WARMUP = ema_warmup(26) + ema_warmup(9)


# -- trend -----------------------------------------------------------------------------------------------------------
def _ema(inp: FeatureInput, span: int) -> FloatArray:
    result: FloatArray = inp.cached(f"ema_{span}", lambda: core.ema(inp.close, span))
    return result


def _sma(inp: FeatureInput, n: int) -> FloatArray:
    result: FloatArray = inp.cached(f"sma_{n}", lambda: core.sma(inp.close, n))
    return result


def _ema_dist(inp: FeatureInput, span: int) -> FloatArray:
    return inp.close / _ema(inp, span) - 1.0


def _sma_dist(inp: FeatureInput, n: int) -> FloatArray:
    return inp.close / _sma(inp, n) - 1.0


def _ema_cross(inp: FeatureInput, fast: int, slow: int) -> FloatArray:
    return _ema(inp, fast) / _ema(inp, slow) - 1.0


def _sma_cross(inp: FeatureInput, fast: int, slow: int) -> FloatArray:
    return _sma(inp, fast) / _sma(inp, slow) - 1.0


def _macd(inp: FeatureInput) -> tuple[FloatArray, FloatArray, FloatArray]:
    result: tuple[FloatArray, FloatArray, FloatArray] = inp.cached("macd", lambda: core.macd(inp.close, 12, 26, 9))
    return result


def _macd_part(inp: FeatureInput, part: int) -> FloatArray:
    return _macd(inp)[part] / inp.close


def _adx_part(inp: FeatureInput, which: str, n: int) -> FloatArray:
    func = {"adx": talib.ADX, "plus_di": talib.PLUS_DI, "minus_di": talib.MINUS_DI}[which]
    out: FloatArray = func(inp.high, inp.low, inp.close, timeperiod=n)
    return out


def _aroon_osc(inp: FeatureInput, n: int) -> FloatArray:
    out: FloatArray = talib.AROONOSC(inp.high, inp.low, timeperiod=n)
    return out


def _efficiency_ratio(inp: FeatureInput, n: int) -> FloatArray:
    """Kaufman's efficiency ratio: net move over the path length of the last ``n`` bars (1 = straight line)."""
    c = inp.close
    step = np.full(len(c), np.nan)
    step[1:] = np.abs(np.diff(c))
    net = np.full(len(c), np.nan)
    net[n:] = np.abs(c[n:] - c[:-n])
    return safe_div(net, rolling_mean(step, n) * n)


def _trend_fit(inp: FeatureInput, n: int) -> tuple[FloatArray, FloatArray]:
    """Least-squares slope (log price per bar) and R^2 of log close on time over the last ``n`` bars."""

    def compute() -> tuple[FloatArray, FloatArray]:
        t = np.arange(len(inp), dtype=np.float64)
        cov, var_t, var_y = rolling_cov_var(t, log_close(inp), n)
        slope = safe_div(cov, var_t)
        r2 = safe_div(cov * cov, var_t * var_y)
        return slope, r2

    result: tuple[FloatArray, FloatArray] = inp.cached(f"trend_fit_{n}", compute)
    return result


def _trend_slope(inp: FeatureInput, n: int) -> FloatArray:
    return _trend_fit(inp, n)[0]


def _trend_r2(inp: FeatureInput, n: int) -> FloatArray:
    return _trend_fit(inp, n)[1]


# -- momentum --------------------------------------------------------------------------------------------------------
def _rsi(inp: FeatureInput, n: int) -> FloatArray:
    return core.rsi(inp.close, n)


def _stoch_k(inp: FeatureInput, n: int) -> FloatArray:
    """Fast stochastic %K: where the close sits in the last ``n`` bars' high-low range, 0-100 (NaN if flat)."""

    def compute() -> FloatArray:
        hh = talib.MAX(inp.high, timeperiod=n)
        ll = talib.MIN(inp.low, timeperiod=n)
        return 100.0 * safe_div(inp.close - ll, hh - ll)

    result: FloatArray = inp.cached(f"stoch_k_{n}", compute)
    return result


def _stoch_d(inp: FeatureInput, n: int, smooth: int) -> FloatArray:
    return rolling_mean(_stoch_k(inp, n), smooth)


def _cci(inp: FeatureInput, n: int) -> FloatArray:
    out: FloatArray = talib.CCI(inp.high, inp.low, inp.close, timeperiod=n)
    return out


def _cmo(inp: FeatureInput, n: int) -> FloatArray:
    out: FloatArray = talib.CMO(inp.close, timeperiod=n)
    return out


def _ultosc(inp: FeatureInput) -> FloatArray:
    out: FloatArray = talib.ULTOSC(inp.high, inp.low, inp.close, timeperiod1=7, timeperiod2=14, timeperiod3=28)
    return out


# -- bands -----------------------------------------------------------------------------------------------------------
def bollinger_bands(close: FloatArray, n: int = 20, k: float = BB_STDS) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(middle, upper, lower) Bollinger bands: SMA(n) +- k population std (as TA-Lib and Bollinger define it)."""
    mid, std = rolling_mean_std(close, n, ddof=0)
    return mid, mid + k * std, mid - k * std


def _bollinger(inp: FeatureInput, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    result: tuple[FloatArray, FloatArray, FloatArray] = inp.cached(f"bbands_{n}", lambda: bollinger_bands(inp.close, n))
    return result


def _bb_pctb(inp: FeatureInput, n: int) -> FloatArray:
    _, upper, lower = _bollinger(inp, n)
    return safe_div(inp.close - lower, upper - lower)


def _bb_width(inp: FeatureInput, n: int) -> FloatArray:
    mid, upper, lower = _bollinger(inp, n)
    return safe_div(upper - lower, mid)


def _donchian_pos(inp: FeatureInput, n: int) -> FloatArray:
    """Where the close sits in the last ``n`` bars' high-low channel, 0-1."""
    return _stoch_k(inp, n) / 100.0


# -- candle ----------------------------------------------------------------------------------------------------------
def _candle(inp: FeatureInput, part: str, scale: str) -> FloatArray:
    o, h, lo, c = inp.open, inp.high, inp.low, inp.close
    value = {
        "body": c - o,
        "upper_wick": h - np.maximum(o, c),
        "lower_wick": np.minimum(o, c) - lo,
        "range": h - lo,
    }[part]
    denominator = average_true_range(inp, 14) if scale == "atr" else c
    return safe_div(value, denominator)


def _close_location(inp: FeatureInput) -> FloatArray:
    """Where the close sits in its own bar's range, 0 (at the low) to 1 (at the high); NaN for a flat bar."""
    return safe_div(inp.close - inp.low, inp.high - inp.low)


# -- registration ----------------------------------------------------------------------------------------------------
for _s in EMA_SPANS:
    register(
        f"ema_dist_{_s}",
        lookback=ema_warmup(_s),
        group="trend",
        recursive=True,
        description=f"close / EMA({_s}) - 1",
    )(partial(_ema_dist, span=_s))
for _n in SMA_WINDOWS:
    register(f"sma_dist_{_n}", lookback=_n - 1, group="trend", description=f"close / SMA({_n}) - 1")(
        partial(_sma_dist, n=_n)
    )
register(
    "ema_cross_12_26", lookback=ema_warmup(26), group="trend", recursive=True, description="EMA(12) / EMA(26) - 1"
)(partial(_ema_cross, fast=12, slow=26))
register("sma_cross_50_200", lookback=199, group="trend", description="SMA(50) / SMA(200) - 1")(
    partial(_sma_cross, fast=50, slow=200)
)
for _i, _part in enumerate(("line", "signal", "hist")):
    register(
        f"macd_{_part}",
        lookback=MACD_WARMUP,
        group="trend",
        recursive=True,
        description=f"MACD(12, 26, 9) {_part} divided by the close",
    )(partial(_macd_part, part=_i))
for _which, _label in (("adx", "ADX"), ("plus_di", "+DI"), ("minus_di", "-DI")):
    register(
        f"{_which}_14",
        lookback=2 * wilder_warmup(14),
        group="trend",
        recursive=True,
        description=f"Wilder's {_label}(14), 0-100",
    )(partial(_adx_part, which=_which, n=14))
register(
    "aroon_osc_25", lookback=25, group="trend", description="Aroon oscillator(25): bars since high vs low, -100..100"
)(partial(_aroon_osc, n=25))
for _n in (24, 168):
    register(
        f"efficiency_ratio_{_n}",
        lookback=_n,
        group="trend",
        description=f"Kaufman efficiency ratio over {_n} bars: |net move| / path length, 0-1",
    )(partial(_efficiency_ratio, n=_n))
    register(
        f"trend_slope_{_n}",
        lookback=_n - 1,
        group="trend",
        description=f"least-squares slope of log close per bar over the last {_n} bars",
    )(partial(_trend_slope, n=_n))
register(
    "trend_r2_168",
    lookback=167,
    group="trend",
    description="R^2 of a straight-line fit of log close over the last 168 bars (trend cleanliness)",
)(partial(_trend_r2, n=168))

for _n in RSI_PERIODS:
    register(
        f"rsi_{_n}",
        lookback=wilder_warmup(_n),
        group="momentum",
        recursive=True,
        description=f"Wilder's RSI({_n}), 0-100",
    )(partial(_rsi, n=_n))
register("stoch_k_14", lookback=13, group="momentum", description="fast stochastic %K(14), 0-100")(
    partial(_stoch_k, n=14)
)
register("stoch_d_14", lookback=15, group="momentum", description="stochastic %D: 3-bar mean of %K(14), 0-100")(
    partial(_stoch_d, n=14, smooth=3)
)
register("cci_20", lookback=19, group="momentum", description="commodity channel index(20)")(partial(_cci, n=20))
register(
    "cmo_14",
    lookback=wilder_warmup(14),
    group="momentum",
    recursive=True,
    description="Chande momentum oscillator(14), -100..100 (TA-Lib's Wilder-smoothed form)",
)(partial(_cmo, n=14))
register("ultosc", lookback=28, group="momentum", description="ultimate oscillator(7, 14, 28), 0-100")(_ultosc)

for _n in BB_WINDOWS:
    register(
        f"bb_pctb_{_n}",
        lookback=_n - 1,
        group="bands",
        description=f"Bollinger %b({_n}, 2): 0 at the lower band, 1 at the upper",
    )(partial(_bb_pctb, n=_n))
    register(
        f"bb_width_{_n}",
        lookback=_n - 1,
        group="bands",
        description=f"Bollinger bandwidth({_n}, 2): (upper - lower) / middle",
    )(partial(_bb_width, n=_n))
for _n in (24, 168):
    register(
        f"donchian_pos_{_n}",
        lookback=_n - 1,
        group="bands",
        description=f"close position in the {_n}-bar high-low channel, 0-1",
    )(partial(_donchian_pos, n=_n))

for _part in ("body", "upper_wick", "lower_wick", "range"):
    register(
        f"candle_{_part}_atr",
        lookback=wilder_warmup(14),
        group="candle",
        recursive=True,
        description=f"candle {_part.replace('_', ' ')} in units of ATR(14)" + (" (signed)" if _part == "body" else ""),
    )(partial(_candle, part=_part, scale="atr"))
for _part in ("body", "range"):
    register(
        f"candle_{_part}_pct",
        lookback=0,
        group="candle",
        description=f"candle {_part} as a fraction of the close" + (" (signed)" if _part == "body" else ""),
    )(partial(_candle, part=_part, scale="close"))
register("candle_close_loc", lookback=0, group="candle", description="close position within its bar's range, 0-1")(
    _close_location
)
