"""Rolling volatility estimators, ATR, and the shape of the return distribution.

Why several estimators: close-to-close volatility wastes the information in each bar's range. Parkinson uses the
high-low range, Garman-Klass adds open and close, Rogers-Satchell stays unbiased under drift, and Yang-Zhang also
handles the jump between one bar's close and the next bar's open. On the same bars they differ, and the
differences (e.g. range-based vs close-to-close) are themselves informative.

Units: standard deviations of log returns *per bar* of the input timeframe (multiply by ``sqrt(24 * 365)`` to
annualize hourly figures); ATR is in price units and ``natr`` is ATR divided by the close. Each estimator's window
``n`` is in bars; a value needs the last ``n`` bars (plus the previous close where it uses one).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from arena_lib.features import core
from arena_lib.features.registry import FeatureInput, FloatArray, register, wilder_warmup
from arena_lib.features.returns import log_returns, rolling_mean, rolling_std, safe_div

VOL_WINDOWS: tuple[int, ...] = (24, 72, 168)
RANGE_VOL_WINDOWS: tuple[int, ...] = (24, 168)
ATR_PERIODS: tuple[int, ...] = (14, 24)
_LN2 = np.log(2.0)


def _log_hl(inp: FeatureInput) -> FloatArray:
    result: FloatArray = inp.cached("log_hl", lambda: np.log(inp.high / inp.low))
    return result


def _log_co(inp: FeatureInput) -> FloatArray:
    result: FloatArray = inp.cached("log_co", lambda: np.log(inp.close / inp.open))
    return result


def _sqrt_nonneg(var: FloatArray) -> FloatArray:
    """Square root of a variance estimate, clipping the tiny negatives that rounding can produce to 0."""
    return np.sqrt(np.where(var < 0, 0.0, var))


def close_to_close_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Sample standard deviation of the last ``n`` one-bar log returns."""
    result: FloatArray = inp.cached(f"vol_cc_{n}", lambda: rolling_std(log_returns(inp, 1), n))
    return result


def parkinson_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Parkinson (1980): ``sqrt(mean(ln(H/L)^2) / (4 ln 2))`` over ``n`` bars."""
    return np.sqrt(rolling_mean(_log_hl(inp) ** 2, n) / (4.0 * _LN2))


def garman_klass_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Garman-Klass (1980): ``sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2))`` over ``n`` bars."""
    per_bar = 0.5 * _log_hl(inp) ** 2 - (2.0 * _LN2 - 1.0) * _log_co(inp) ** 2
    return _sqrt_nonneg(rolling_mean(per_bar, n))


def _rs_per_bar(inp: FeatureInput) -> FloatArray:
    def compute() -> FloatArray:
        ho = np.log(inp.high / inp.open)
        hc = np.log(inp.high / inp.close)
        lo = np.log(inp.low / inp.open)
        lc = np.log(inp.low / inp.close)
        out: FloatArray = hc * ho + lc * lo
        return out

    result: FloatArray = inp.cached("rs_per_bar", compute)
    return result


def rogers_satchell_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Rogers-Satchell (1991): ``sqrt(mean(ln(H/C) ln(H/O) + ln(L/C) ln(L/O)))``; unbiased under a drift."""
    return _sqrt_nonneg(rolling_mean(_rs_per_bar(inp), n))


def yang_zhang_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Yang-Zhang (2000): open-jump variance + k * open-to-close variance + (1 - k) * Rogers-Satchell variance.

    ``k = 0.34 / (1.34 + (n + 1) / (n - 1))`` minimizes the estimator's variance. The open jump is
    ``ln(O[t] / C[t - 1])``, so the first bar of a history has none and the value needs ``n`` previous bars.
    """
    jump = np.full(len(inp), np.nan)
    jump[1:] = np.log(inp.open[1:] / inp.close[:-1])
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    var = (
        rolling_std(jump, n) ** 2 + k * rolling_std(_log_co(inp), n) ** 2 + (1 - k) * rolling_mean(_rs_per_bar(inp), n)
    )
    return _sqrt_nonneg(var)


def average_true_range(inp: FeatureInput, n: int) -> FloatArray:
    """Wilder's ATR (``core.atr``), cached per period."""
    result: FloatArray = inp.cached(f"atr_{n}", lambda: core.atr(inp.high, inp.low, inp.close, n))
    return result


def normalized_atr(inp: FeatureInput, n: int) -> FloatArray:
    """ATR divided by the close: the typical bar range as a fraction of price."""
    return average_true_range(inp, n) / inp.close


def _vol_ratio(inp: FeatureInput, short: int, long: int) -> FloatArray:
    return safe_div(close_to_close_vol(inp, short), close_to_close_vol(inp, long))


def _downside_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Root mean square of the negative one-bar log returns (positive ones count as 0) over ``n`` bars."""
    r = log_returns(inp, 1)
    return np.sqrt(rolling_mean(np.where(r < 0, r * r, np.where(np.isnan(r), np.nan, 0.0)), n))


def _vol_of_vol(inp: FeatureInput, n: int, inner: int) -> FloatArray:
    """Coefficient of variation of the ``inner``-bar volatility over ``n`` bars: how unstable volatility is."""
    vol = close_to_close_vol(inp, inner)
    return safe_div(rolling_std(vol, n), rolling_mean(vol, n))


def _return_moment(inp: FeatureInput, n: int, moment: str) -> FloatArray:
    """Rolling skewness or excess kurtosis of one-bar log returns (pandas' bias-corrected estimators)."""
    rolling = pd.Series(log_returns(inp, 1)).rolling(n, min_periods=n)
    out = rolling.skew() if moment == "skew" else rolling.kurt()
    return out.to_numpy(dtype=np.float64)


_ESTIMATORS = {
    "parkinson": (parkinson_vol, 1, "Parkinson high-low"),
    "gk": (garman_klass_vol, 1, "Garman-Klass OHLC"),
    "rs": (rogers_satchell_vol, 1, "Rogers-Satchell OHLC"),
    "yz": (yang_zhang_vol, 0, "Yang-Zhang (open jump + open-close + Rogers-Satchell)"),
}

for _n in VOL_WINDOWS:
    register(
        f"vol_cc_{_n}",
        lookback=_n,
        group="volatility",
        description=f"close-to-close volatility: sample std of the last {_n} one-bar log returns",
    )(partial(close_to_close_vol, n=_n))
for _key, (_func, _offset, _label) in _ESTIMATORS.items():
    for _n in RANGE_VOL_WINDOWS:
        register(
            f"vol_{_key}_{_n}",
            lookback=_n - _offset,
            group="volatility",
            description=f"{_label} volatility per bar over the last {_n} bars",
        )(partial(_func, n=_n))
register(
    "vol_ratio_24_168",
    lookback=168,
    group="volatility",
    description="24-bar over 168-bar close-to-close volatility (> 1: volatility expanding)",
)(partial(_vol_ratio, short=24, long=168))
register(
    "vol_down_168",
    lookback=168,
    group="volatility",
    description="downside semi-deviation: RMS of the negative one-bar log returns over 168 bars",
)(partial(_downside_vol, n=168))
register(
    "vol_of_vol_168",
    lookback=24 + 168 - 1,
    group="volatility",
    description="coefficient of variation of the 24-bar volatility over 168 bars",
)(partial(_vol_of_vol, n=168, inner=24))
register("skew_168", lookback=168, group="volatility", description="skewness of the last 168 one-bar log returns")(
    partial(_return_moment, n=168, moment="skew")
)
register(
    "kurt_168", lookback=168, group="volatility", description="excess kurtosis of the last 168 one-bar log returns"
)(partial(_return_moment, n=168, moment="kurt"))
for _n in ATR_PERIODS:
    register(
        f"natr_{_n}",
        lookback=wilder_warmup(_n),
        group="volatility",
        recursive=True,
        description=f"Wilder ATR({_n}) divided by the close (scale-free)",
    )(partial(normalized_atr, n=_n))
register(
    "atr_14",
    lookback=wilder_warmup(14),
    group="volatility",
    recursive=True,
    description="Wilder ATR(14) in price units (not comparable across symbols: prefer natr_14)",
)(partial(average_true_range, n=14))
