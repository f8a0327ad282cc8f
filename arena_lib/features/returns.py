"""Returns, log returns, z-scores and range positions, plus the rolling statistics the other modules build on.

Why the rolling kernels live here: returns and their rolling moments are the base layer of nearly every other
feature (volatility, cross-asset beta, funding z-scores), and they must be fast, NaN-aware and point-in-time.
They are numba loops that run once over the data (O(n), not O(n * window)): Welford's mean and sum of squares
are updated as a value enters and leaves the window, on values shifted by a recent level of the series, and every
``window`` bars the window is recomputed exactly and re-centred, so rounding cannot drift over a long history and
sums of squares do not cancel on prices (pandas' rolling std loses up to 1e-4 relative on 2-bar windows of log
prices; these stay within 1e-9 of a two-pass computation). A window that
holds a NaN yields NaN. Each output depends only on inputs at or before it, so truncating the history never
changes earlier values; a different *start* changes only the last bits (relative 1e-12 on real data).

Units: returns are fractions per bar (0.01 = 1%), lags and windows are in bars of the input timeframe.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import talib
from numba import njit

from arena_lib.features.registry import FeatureInput, FloatArray, register

RET_LAGS: tuple[int, ...] = (1, 2, 4, 12, 24, 72, 168)
ZSCORE_WINDOWS: tuple[int, ...] = (24, 72, 168)
RANGE_WINDOWS: tuple[int, ...] = (24, 168)


# -- rolling kernels -------------------------------------------------------------------------------------------------
REFRESH_EVERY = 1024
"""At most this many bars (and at least the window, at most 32 windows) between exact recomputations of a
window's moments: bounds rounding drift, and keeps the shift close to the window's level."""


@njit(cache=True)
def _refresh(x: FloatArray, i: int, n: int, shift: float) -> tuple[float, float, float, int]:  # pragma: no cover
    """Exact (shift, shifted mean, sum of squares, count) of the finite values in ``x[i - n + 1 .. i]``."""
    s = 0.0
    count = 0
    for j in range(max(0, i - n + 1), i + 1):
        if np.isfinite(x[j]):
            s += x[j] - shift
            count += 1
    if count == 0:
        return shift, 0.0, 0.0, 0
    shift += s / count  # re-centre on the window's mean
    mean = 0.0
    for j in range(max(0, i - n + 1), i + 1):
        if np.isfinite(x[j]):
            mean += x[j] - shift
    mean /= count
    m2 = 0.0
    for j in range(max(0, i - n + 1), i + 1):
        if np.isfinite(x[j]):
            e = x[j] - shift - mean
            m2 += e * e
    return shift, mean, m2, count


@njit(cache=True)
def _moments_kernel(x: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:  # pragma: no cover - numba
    """Rolling mean and sum of squared deviations; windows holding a NaN read NaN.

    A full window of finite values replaces the leaving value by the entering one (one multiply, no division);
    otherwise Welford adds and removes single values, restarting after a stretch of NaNs. Which update runs
    depends only on the data so far, so a truncated history takes the same steps as the full one.
    """
    size = x.shape[0]
    mean_out = np.full(size, np.nan)
    m2_out = np.full(size, np.nan)
    period = max(n, min(REFRESH_EVERY, 32 * n))
    inv_n = 1.0 / n
    count = 0
    bad = 0
    shift = 0.0
    mean = 0.0
    m2 = 0.0
    countdown = period
    for i in range(size):
        v = x[i]
        if count == n and np.isfinite(v):  # full window in, full window out
            v -= shift
            u = x[i - n] - shift
            old = mean
            mean += (v - u) * inv_n
            m2 += (v - u) * (v - mean + u - old)
        else:
            if np.isfinite(v):
                if count == 0:
                    shift = v
                    mean = 0.0
                    m2 = 0.0
                count += 1
                d = (v - shift) - mean
                mean += d / count
                m2 += d * ((v - shift) - mean)
            else:
                bad += 1
            if i >= n:
                u = x[i - n]
                if np.isfinite(u):
                    count -= 1
                    if count > 0:
                        d = (u - shift) - mean
                        mean -= d / count
                        m2 -= d * ((u - shift) - mean)
                else:
                    bad -= 1
        countdown -= 1
        if countdown == 0:
            countdown = period
            if count > 0:
                shift, mean, m2, count = _refresh(x, i, n, shift)
        if i >= n - 1 and bad == 0:
            mean_out[i] = shift + mean
            m2_out[i] = m2
    return mean_out, m2_out


def _moments(x: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    return _moments_kernel(np.ascontiguousarray(x, dtype=np.float64), n)


@njit(cache=True)
def _rolling_comoments(  # pragma: no cover - numba
    x: FloatArray, y: FloatArray, n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rolling covariance, var(x) and var(y) (ddof=1) over pairs where both are finite; NaN if any pair is not.

    The same scheme as ``_moments_kernel``: shifted Welford updates, and an exact re-centred refresh every
    ``max(n, min(REFRESH_EVERY, 32 * n))`` bars.
    """
    size = x.shape[0]
    cov_out = np.full(size, np.nan)
    vx_out = np.full(size, np.nan)
    vy_out = np.full(size, np.nan)
    count = 0
    bad = 0
    hx = hy = 0.0  # shifts
    mx = my = sxx = syy = sxy = 0.0
    period = max(n, min(REFRESH_EVERY, 32 * n))
    countdown = period
    for i in range(size):
        a = x[i]
        b = y[i]
        if np.isfinite(a) and np.isfinite(b):
            if count == 0:
                hx, hy = a, b
                mx = my = sxx = syy = sxy = 0.0
            count += 1
            dx = (a - hx) - mx
            dy = (b - hy) - my
            mx += dx / count
            my += dy / count
            sxx += dx * ((a - hx) - mx)
            syy += dy * ((b - hy) - my)
            sxy += dx * ((b - hy) - my)
        else:
            bad += 1
        if i >= n:
            a = x[i - n]
            b = y[i - n]
            if np.isfinite(a) and np.isfinite(b):
                count -= 1
                if count > 0:
                    dx = (a - hx) - mx
                    dy = (b - hy) - my
                    mx -= dx / count
                    my -= dy / count
                    sxx -= dx * ((a - hx) - mx)
                    syy -= dy * ((b - hy) - my)
                    sxy -= dx * ((b - hy) - my)
            else:
                bad -= 1
        countdown -= 1
        if countdown == 0:
            countdown = period
        if countdown == period and count > 0:
            sa = sb = 0.0
            for j in range(i - n + 1, i + 1):
                if j >= 0 and np.isfinite(x[j]) and np.isfinite(y[j]):
                    sa += x[j] - hx
                    sb += y[j] - hy
            hx += sa / count
            hy += sb / count
            mx = my = 0.0
            for j in range(i - n + 1, i + 1):
                if j >= 0 and np.isfinite(x[j]) and np.isfinite(y[j]):
                    mx += x[j] - hx
                    my += y[j] - hy
            mx /= count
            my /= count
            sxx = syy = sxy = 0.0
            for j in range(i - n + 1, i + 1):
                if j >= 0 and np.isfinite(x[j]) and np.isfinite(y[j]):
                    ex = x[j] - hx - mx
                    ey = y[j] - hy - my
                    sxx += ex * ex
                    syy += ey * ey
                    sxy += ex * ey
        if i >= n - 1 and bad == 0 and n > 1:
            cov_out[i] = sxy / (n - 1)
            vx_out[i] = max(sxx, 0.0) / (n - 1)
            vy_out[i] = max(syy, 0.0) / (n - 1)
    return cov_out, vx_out, vy_out


def _check_window(n: int) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"window must be a positive integer, got {n!r}")
    return int(n)


def rolling_mean_std(x: FloatArray, n: int, ddof: int = 1) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation (``ddof=1`` as pandas) of the last ``n`` values, in one pass.

    NaN during warm-up and for any window holding a NaN.
    """
    n = _check_window(n)
    mean, m2 = _moments(x, n)
    if n - ddof <= 0:
        return mean, np.full(len(mean), np.nan)
    return mean, np.sqrt(np.maximum(m2, 0.0) / (n - ddof))


def rolling_mean(x: FloatArray, n: int) -> FloatArray:
    """Mean of the last ``n`` values; NaN during warm-up and for any window holding a NaN."""
    return _moments(x, _check_window(n))[0]


def rolling_std(x: FloatArray, n: int, ddof: int = 1) -> FloatArray:
    """Standard deviation of the last ``n`` values (sample std, ``ddof=1``, as pandas); NaN as ``rolling_mean``."""
    return rolling_mean_std(x, n, ddof)[1]


def rolling_sum(x: FloatArray, n: int) -> FloatArray:
    """Sum of the last ``n`` values; NaN as ``rolling_mean``."""
    return rolling_mean(x, n) * n


FLAT_RTOL = 1e-9
"""A window whose std is below ``FLAT_RTOL * |mean|`` is flat: what is left is rounding noise, not variation."""


def rolling_zscore(x: FloatArray, n: int) -> FloatArray:
    """``(x - mean) / std`` over the last ``n`` values (sample std).

    A flat window (all values equal, e.g. a funding rate pinned at 0.01% for weeks) reads 0, since the value is
    the window's mean; without that guard the rounding noise of the mean (1e-20) would be blown up into a
    meaningless +-1.
    """
    mean, std = rolling_mean_std(x, n)
    flat = std <= FLAT_RTOL * np.abs(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat, 0.0, (x - mean) / std)


def rolling_fraction(flags: FloatArray, n: int) -> FloatArray:
    """Fraction of the last ``n`` values that are > 0, counted exactly with integer prefix sums; NaN as above."""
    n = _check_window(n)
    valid = np.isfinite(flags)
    hits = np.concatenate([[0], np.cumsum(valid & (np.where(valid, flags, 0.0) > 0))])
    known = np.concatenate([[0], np.cumsum(valid)])
    out = np.full(len(flags), np.nan)
    if len(flags) >= n:
        full = (known[n:] - known[:-n]) == n
        out[n - 1 :] = np.where(full, (hits[n:] - hits[:-n]) / n, np.nan)
    return out


def rolling_cov_var(x: FloatArray, y: FloatArray, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rolling ``(cov(x, y), var(x), var(y))`` with ``ddof=1``; NaN for windows with a missing pair."""
    xa = np.ascontiguousarray(x, dtype=np.float64)
    ya = np.ascontiguousarray(y, dtype=np.float64)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same shape, got {xa.shape} and {ya.shape}")
    return _rolling_comoments(xa, ya, _check_window(n))


def lag_diff(x: FloatArray, k: int) -> FloatArray:
    """``x[t] - x[t - k]`` with NaN for the first ``k`` values."""
    out = np.full(len(x), np.nan)
    if k < len(x):
        out[k:] = x[k:] - x[:-k]
    return out


def log_close(inp: FeatureInput) -> FloatArray:
    """Natural log of the close, cached per input."""
    result: FloatArray = inp.cached("log_close", lambda: np.log(inp.close))
    return result


def log_returns(inp: FeatureInput, k: int = 1) -> FloatArray:
    """``log(close[t] / close[t - k])``, cached per input and lag."""
    result: FloatArray = inp.cached(f"logret_{k}", lambda: lag_diff(log_close(inp), k))
    return result


def safe_div(a: FloatArray, b: FloatArray) -> FloatArray:
    """``a / b`` with NaN where ``b`` is zero or not finite (never inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((b != 0) & np.isfinite(b), a / b, np.nan)


# -- features --------------------------------------------------------------------------------------------------------
def _ret(inp: FeatureInput, n: int) -> FloatArray:
    return np.expm1(log_returns(inp, n))


def _logret(inp: FeatureInput, n: int) -> FloatArray:
    return log_returns(inp, n)


def _zscore_close(inp: FeatureInput, n: int) -> FloatArray:
    return rolling_zscore(inp.close, n)


def _zscore_logret(inp: FeatureInput, n: int) -> FloatArray:
    return rolling_zscore(log_returns(inp, 1), n)


def _up_fraction(inp: FeatureInput, n: int) -> FloatArray:
    return rolling_fraction(log_returns(inp, 1), n)


def _drawdown_from_high(inp: FeatureInput, n: int) -> FloatArray:
    return inp.close / talib.MAX(inp.high, timeperiod=n) - 1.0


def _rise_from_low(inp: FeatureInput, n: int) -> FloatArray:
    return inp.close / talib.MIN(inp.low, timeperiod=n) - 1.0


def _sharpe(inp: FeatureInput, n: int) -> FloatArray:
    """Log return over ``n`` bars divided by the volatility expected over ``n`` bars (std of 1-bar returns)."""
    r = log_returns(inp, 1)
    return safe_div(log_returns(inp, n), rolling_std(r, n) * np.sqrt(n))


for _n in RET_LAGS:
    register(f"ret_{_n}", lookback=_n, group="returns", description=f"simple return over the last {_n} bars")(
        partial(_ret, n=_n)
    )
for _n in RET_LAGS:
    register(f"logret_{_n}", lookback=_n, group="returns", description=f"log return over the last {_n} bars")(
        partial(_logret, n=_n)
    )
for _n in ZSCORE_WINDOWS:
    register(
        f"zscore_close_{_n}",
        lookback=_n - 1,
        group="returns",
        description=f"z-score of the close against its last {_n} closes (sample std)",
    )(partial(_zscore_close, n=_n))
for _n in (24, 168):
    register(
        f"zscore_logret_{_n}",
        lookback=_n,
        group="returns",
        description=f"z-score of the 1-bar log return against the last {_n} of them",
    )(partial(_zscore_logret, n=_n))
    register(
        f"up_frac_{_n}", lookback=_n, group="returns", description=f"fraction of the last {_n} bars that closed up"
    )(partial(_up_fraction, n=_n))
    register(
        f"sharpe_{_n}",
        lookback=_n,
        group="returns",
        description=f"{_n}-bar log return over its expected std (1-bar return std times sqrt({_n}))",
    )(partial(_sharpe, n=_n))
for _n in RANGE_WINDOWS:
    register(
        f"dd_high_{_n}",
        lookback=_n - 1,
        group="returns",
        description=f"close relative to the highest high of the last {_n} bars, minus 1 (<= 0)",
    )(partial(_drawdown_from_high, n=_n))
    register(
        f"rise_low_{_n}",
        lookback=_n - 1,
        group="returns",
        description=f"close relative to the lowest low of the last {_n} bars, minus 1 (>= 0)",
    )(partial(_rise_from_low, n=_n))
