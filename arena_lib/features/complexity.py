"""Complexity ("chaos theory") features: Hurst, fractal dimension, entropies, Lyapunov, autocorrelation.

Why: these describe *how* a price moves rather than where: persistent or mean-reverting (Hurst, autocorrelation,
variance ratio), smooth or jagged (fractal dimension), predictable or noisy (entropies), sensitive to initial
conditions (largest Lyapunov exponent). The regime models (volatility tercile, trend, HMM) are in
``features.regime``.

Point in time, and cost. Every value at bar ``t`` is computed from a window that ends at ``t``. The expensive
estimators run on the sparse schedule of ``features.schedule`` (evaluated on bars whose close time is a whole
multiple of ``every`` bars since the epoch, the last past evaluation carried forward), so their declared lookback
is ``window + every - 1`` (plus one for return-based inputs).

- Hurst: the generalized Hurst exponent (q=2): the slope of log RMS(log p[t] - log p[t - q]) against log q for
  q = 1, 2, 4, 8, 16 over the window. 0.5 for a random walk, above for trending, below for mean-reverting series.
  Dense (every bar), from rolling means.
- Katz fractal dimension: vectorized form of ``antropy.katz_fd`` (same formula) on log prices, dense.
- Higuchi fractal dimension and sample entropy: ``antropy``'s algorithms (the tests hold these kernels to
  ``antropy.higuchi_fd`` / ``antropy.sample_entropy`` on real windows), rolled inside one cached numba loop, on
  log closes every bar and on log returns every 4 bars. Not ``antropy`` itself: it compiles its numba kernels
  eagerly, without a cache, at import (about 10 s per process here), and its per-window Python call would
  dominate.
- Permutation entropy (order 3): ordinal patterns of log returns counted in the window with integer prefix sums
  (exact, dense); equals ``antropy.perm_entropy(normalize=True)`` when no two returns in a pattern tie.
- Largest Lyapunov exponent: Rosenstein's method exactly as ``nolds.lyap_r`` (``fit="poly"``) computes it, as a
  numba kernel (``nolds`` spends ~5 ms per 336-return window in numpy, this ~0.6 ms), on log returns, every 24
  bars. With the HMM of ``features.regime``, the costliest feature (``benchmarks/features.py`` reports each one's
  cost).
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import numpy as np
import talib
from numba import njit

from arena_lib.features.registry import FeatureInput, FloatArray, register
from arena_lib.features.returns import (
    lag_diff,
    log_close,
    log_returns,
    rolling_cov_var,
    rolling_mean,
    rolling_std,
    safe_div,
)
from arena_lib.features.schedule import carry_forward, evaluation_rows, sparse_lookback

HURST_LAGS: tuple[int, ...] = (1, 2, 4, 8, 16)
LYAP_PARAMS = {"emb_dim": 6, "lag": 1, "min_tsep": 12, "trajectory_len": 16}


# -- Hurst, Katz, permutation entropy (dense, vectorized) ------------------------------------------------------------
def _hurst(inp: FeatureInput, window: int) -> FloatArray:
    logp = log_close(inp)
    x = np.log(np.asarray(HURST_LAGS, dtype=np.float64))
    log_rms = np.vstack([0.5 * np.log(rolling_mean(lag_diff(logp, q) ** 2, window)) for q in HURST_LAGS])
    xc = x - x.mean()
    with np.errstate(invalid="ignore"):
        return (xc[:, None] * (log_rms - log_rms.mean(axis=0))).sum(axis=0) / (xc * xc).sum()


def _katz(inp: FeatureInput, window: int) -> FloatArray:
    """``antropy.katz_fd`` over the last ``window`` log closes: log10(n) / (log10(n) + log10(d / L)), n = steps."""
    x = log_close(inp)
    steps = window - 1
    path = rolling_mean(np.abs(lag_diff(x, 1)), steps) * steps
    first = np.full(len(x), np.nan)
    first[steps:] = x[:-steps]
    reach = np.maximum(talib.MAX(x, timeperiod=window) - first, first - talib.MIN(x, timeperiod=window))
    ln = np.log10(steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ln / (ln + np.log10(safe_div(reach, path)))


def ordinal_patterns(x: FloatArray, order: int = 3) -> FloatArray:
    """Id (0..order!-1 as antropy hashes them) of the ordinal pattern of ``x[t - order + 1 .. t]``; NaN if unknown."""
    out = np.full(len(x), np.nan)
    if len(x) < order:
        return out
    emb = np.lib.stride_tricks.sliding_window_view(x, order)
    ranks = np.argsort(emb, axis=1, kind="stable")
    ids = (ranks * (order ** np.arange(order))).sum(axis=1).astype(np.float64)
    ids[~np.isfinite(emb).all(axis=1)] = np.nan
    out[order - 1 :] = ids
    return out


def _perm_entropy(inp: FeatureInput, window: int, order: int = 3) -> FloatArray:
    patterns = ordinal_patterns(log_returns(inp, 1), order)
    valid = np.isfinite(patterns)
    weights = order ** np.arange(order)
    entropy = np.zeros(len(patterns))
    for perm in itertools.permutations(range(order)):  # every code, present or not: same sums on any history
        code = float(np.dot(perm, weights))
        hits = np.concatenate([[0], np.cumsum(patterns == code)])
        count = np.full(len(patterns), np.nan)
        count[window - 1 :] = hits[window:] - hits[:-window]
        p = count / window
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy -= np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    known = np.concatenate([[0], np.cumsum(valid)])
    full = np.zeros(len(patterns), dtype=bool)
    full[window - 1 :] = (known[window:] - known[:-window]) == window
    return np.where(full, entropy / np.log2(math.factorial(order)), np.nan)


def _autocorr(inp: FeatureInput, window: int) -> FloatArray:
    """Correlation of each one-bar log return with the previous one over the window (> 0: momentum)."""
    r = log_returns(inp, 1)
    cov, var_a, var_b = rolling_cov_var(r, np.r_[np.nan, r[:-1]], window)
    return safe_div(cov, np.sqrt(var_a * var_b))


def _variance_ratio(inp: FeatureInput, q: int, window: int) -> FloatArray:
    """Lo-MacKinlay variance ratio: var of q-bar log returns / (q * var of 1-bar ones) in the window; 1 = random."""
    return safe_div(rolling_std(log_returns(inp, q), window) ** 2, q * rolling_std(log_returns(inp, 1), window) ** 2)


# -- Higuchi FD and sample entropy (antropy's kernels, rolling inside numba) -----------------------------------------
@njit(cache=True)
def higuchi_fd(x: FloatArray, kmax: int) -> float:  # pragma: no cover - numba
    """``antropy.higuchi_fd(x, kmax)``: the same loops and the same regression (incl. its 1e-9 guard)."""
    n_times = x.shape[0]
    sx = sy = sxx = sxy = 0.0
    for k in range(1, kmax + 1):
        m_lm = 0.0
        for m in range(k):
            n_max = (n_times - m - 1) // k
            ll = 0.0
            for j in range(1, n_max + 1):
                ll += abs(x[m + j * k] - x[m + (j - 1) * k])
            ll /= k
            ll *= (n_times - 1) / (k * n_max)
            m_lm += ll
        m_lm /= k
        xr = np.log(1.0 / k)
        yr = np.log(m_lm) if m_lm > 0 else -np.inf
        sx += xr
        sy += yr
        sxx += xr * xr
        sxy += xr * yr
    return (kmax * sxy - sx * sy) / (kmax * sxx - sx * sx + 1e-9)


@njit(cache=True)
def sample_entropy(x: FloatArray, order: int, r: float) -> float:  # pragma: no cover - numba
    """``antropy.sample_entropy`` (Chebyshev distance): ``-log(A / B)``; NaN when B or A is 0 (undefined)."""
    size = x.shape[0]
    numerator = 0
    denominator = 0
    for offset in range(1, size - order):
        n_num = int(abs(x[order] - x[order + offset]) >= r)
        n_den = 0
        for idx in range(order):
            far = int(abs(x[idx] - x[idx + offset]) >= r)
            n_num += far
            n_den += far
        if n_num == 0:
            numerator += 1
        if n_den == 0:
            denominator += 1
        prev_in = int(abs(x[order] - x[offset + order]) >= r)
        for idx in range(1, size - offset - order):
            out_diff = int(abs(x[idx - 1] - x[idx + offset - 1]) >= r)
            in_diff = int(abs(x[idx + order] - x[idx + offset + order]) >= r)
            n_num += in_diff - out_diff
            n_den += prev_in - out_diff
            prev_in = in_diff
            if n_num == 0:
                numerator += 1
            if n_den == 0:
                denominator += 1
    if denominator == 0 or numerator == 0:
        return np.nan  # antropy: NaN and +inf, neither a usable feature value
    return -np.log(numerator / denominator)


@njit(cache=True)
def _windows_on_rows(
    x: FloatArray, rows: np.ndarray, window: int, kind: int, param: int
) -> FloatArray:  # pragma: no cover
    """Higuchi FD (kind 0, kmax=param) or sample entropy (kind 1, order=param, r=0.2 std) per schedule row."""
    out = np.full(rows.shape[0], np.nan)
    for k in range(rows.shape[0]):
        row = rows[k]
        if row < window - 1:
            continue
        chunk = x[row - window + 1 : row + 1]
        if not np.all(np.isfinite(chunk)):
            continue
        if kind == 0:
            out[k] = higuchi_fd(chunk, param)
        else:
            out[k] = sample_entropy(chunk, param, float(0.2 * np.std(chunk)))
    return out


def _on_schedule(inp: FeatureInput, x: FloatArray, window: int, every: int, kind: int, param: int) -> FloatArray:
    rows = evaluation_rows(inp, every)
    values = _windows_on_rows(np.ascontiguousarray(x), rows, window, kind, param)
    return carry_forward(len(inp), rows, np.where(np.isfinite(values), values, np.nan))


def _higuchi(inp: FeatureInput, window: int, every: int) -> FloatArray:
    return _on_schedule(inp, log_close(inp), window, every, kind=0, param=10)


def _sample_entropy(inp: FeatureInput, window: int, every: int) -> FloatArray:
    return _on_schedule(inp, log_returns(inp, 1), window, every, kind=1, param=2)


# -- largest Lyapunov exponent (Rosenstein, as nolds.lyap_r) ---------------------------------------------------------
@njit(cache=True)
def lyap_rosenstein(  # pragma: no cover - numba
    data: FloatArray, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int
) -> float:
    """``nolds.lyap_r(data, emb_dim, lag, min_tsep, trajectory_len=..., fit="poly")``; NaN if too short."""
    m = data.shape[0] - (emb_dim - 1) * lag
    ntraj = m - trajectory_len + 1
    if ntraj < 2 * min_tsep + 2:
        return np.nan
    nb = np.empty(ntraj, dtype=np.int64)
    for i in range(ntraj):
        best = np.inf
        arg = -1
        for j in range(ntraj):
            if abs(i - j) <= min_tsep:
                continue
            s = 0.0
            for d in range(emb_dim):
                diff = data[i + d * lag] - data[j + d * lag]
                s += diff * diff
            dist = np.sqrt(s)
            if dist < best:
                best = dist
                arg = j
        nb[i] = arg
    sx = sy = sxx = sxy = 0.0
    npts = 0
    for k in range(trajectory_len):
        total = 0.0
        count = 0
        for i in range(ntraj):
            s = 0.0
            for d in range(emb_dim):
                diff = data[i + k + d * lag] - data[nb[i] + k + d * lag]
                s += diff * diff
            dist = np.sqrt(s)
            if dist != 0.0:
                total += np.log(dist)
                count += 1
        if count > 0:
            y = total / count
            sx += k
            sy += y
            sxx += k * k
            sxy += k * y
            npts += 1
    if npts < 2:
        return np.nan
    return (npts * sxy - sx * sy) / (npts * sxx - sx * sx)


@njit(cache=True)
def _lyap_on_rows(  # pragma: no cover - numba
    x: FloatArray, rows: np.ndarray, window: int, emb_dim: int, lag: int, min_tsep: int, trajectory_len: int
) -> FloatArray:
    out = np.full(rows.shape[0], np.nan)
    for k in range(rows.shape[0]):
        row = rows[k]
        if row >= window - 1:
            chunk = x[row - window + 1 : row + 1]
            if np.all(np.isfinite(chunk)):
                out[k] = lyap_rosenstein(chunk, emb_dim, lag, min_tsep, trajectory_len)
    return out


def _lyapunov(inp: FeatureInput, window: int, every: int) -> FloatArray:
    rows = evaluation_rows(inp, every)
    p = LYAP_PARAMS
    values = _lyap_on_rows(
        log_returns(inp, 1), rows, window, p["emb_dim"], p["lag"], p["min_tsep"], p["trajectory_len"]
    )
    return carry_forward(len(inp), rows, values)


# -- registration ----------------------------------------------------------------------------------------------------
for _w in (256, 720):
    register(
        f"hurst_{_w}",
        lookback=_w - 1 + max(HURST_LAGS),
        group="complexity",
        description=f"generalized Hurst exponent (q=2, lags 1-16) of log price over {_w} bars; 0.5 = random walk",
    )(partial(_hurst, window=_w))
register(
    "fd_katz_128",
    lookback=127,
    group="complexity",
    description="Katz fractal dimension of the last 128 log closes (as antropy.katz_fd)",
)(partial(_katz, window=128))
register(
    "fd_higuchi_128",
    lookback=sparse_lookback(128, 1, False),
    group="complexity",
    description="Higuchi fractal dimension (kmax 10, antropy) of the last 128 log closes; 1.5 = random walk",
)(partial(_higuchi, window=128, every=1))
register(
    "sampen_128",
    lookback=sparse_lookback(128, 4, True),
    group="complexity",
    description="sample entropy (m=2, r=0.2 std, antropy) of the last 128 log returns, every 4 bars",
)(partial(_sample_entropy, window=128, every=4))
register(
    "perm_entropy_168",
    lookback=168 + 2,
    group="complexity",
    description="normalized permutation entropy (order 3) of the last 168 log-return patterns, 0-1",
)(partial(_perm_entropy, window=168))
register(
    "lyap_336",
    lookback=sparse_lookback(336, 24, True),
    group="complexity",
    description="largest Lyapunov exponent (Rosenstein, as nolds.lyap_r) of the last 336 log returns, every 24 bars",
)(partial(_lyapunov, window=336, every=24))
register(
    "autocorr_1_168",
    lookback=169,
    group="complexity",
    description="lag-1 autocorrelation of one-bar log returns over 168 bars",
)(partial(_autocorr, window=168))
register(
    "variance_ratio_4_168",
    lookback=168 + 3,
    group="complexity",
    description="variance ratio of 4-bar to 1-bar log returns over 168 bars (1 = random walk)",
)(partial(_variance_ratio, q=4, window=168))
