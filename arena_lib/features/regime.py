"""Complexity ("chaos theory") and regime features: Hurst, fractal dimension, entropies, Lyapunov, vol regimes.

Why: these describe *how* a price moves rather than where: persistent or mean-reverting (Hurst, autocorrelation,
variance ratio), smooth or jagged (fractal dimension), predictable or noisy (entropies), sensitive to initial
conditions (largest Lyapunov exponent), calm or turbulent (volatility regime).

Point in time, and cost. Every value at bar ``t`` is computed from a window that ends at ``t``. The expensive
estimators run on a *sparse schedule*: only on bars whose close time is a whole multiple of ``every`` bars since
the epoch (e.g. every 24h at 00:00 UTC), and the bars in between carry the **last past evaluation** forward
(never a later one), so a value may be up to ``every - 1`` bars stale. The schedule depends on timestamps, not on
where a history starts, so truncated and full histories evaluate on the same bars. Their declared lookback is
``window + every - 1`` (plus one for return-based inputs).

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
  bars. With the HMM, the costliest feature here (``benchmarks/features.py`` reports each one's cost).
- Volatility regime: percentile rank of the 24-bar volatility within the last 720 bars, and its tercile label.
- HMM regime: a 2-state Gaussian HMM of log returns (``hmmlearn``), refitted every 336 bars on the trailing 1008
  returns only, with a deterministic initialization; each bar reads the *filtered* probability of the high-variance
  state from a forward pass over its last 48 returns. A model fitted on the whole history, or smoothed (Viterbi,
  forward-backward) probabilities, would both leak the future; neither is used.
"""

from __future__ import annotations

import itertools
import logging
import math
from functools import partial

import numpy as np
import talib
from numba import njit

from arena_lib.data.resample import timeframe_to_ns
from arena_lib.features import core
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
from arena_lib.features.volatility import close_to_close_vol

HURST_LAGS: tuple[int, ...] = (1, 2, 4, 8, 16)
LYAP_PARAMS = {"emb_dim": 6, "lag": 1, "min_tsep": 12, "trajectory_len": 16}
HMM_REFIT_EVERY, HMM_WINDOW, HMM_FILTER = 336, 1008, 48


# -- the sparse schedule ---------------------------------------------------------------------------------------------
def evaluation_rows(inp: FeatureInput, every: int) -> np.ndarray:
    """Rows whose close time is a whole multiple of ``every`` bars since the epoch (all rows when ``every == 1``)."""
    bar = timeframe_to_ns(inp.timeframe)
    close_bars = (inp.index.as_unit("ns").asi8 + bar) // bar
    return np.flatnonzero(close_bars % every == 0)


def carry_forward(size: int, rows: np.ndarray, values: FloatArray) -> FloatArray:
    """Each row gets the value of the last evaluation row at or before it (NaN before the first)."""
    position = np.searchsorted(rows, np.arange(size), side="right") - 1
    out = np.full(size, np.nan)
    seen = position >= 0
    out[seen] = values[position[seen]]
    return out


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


# -- volatility regimes ----------------------------------------------------------------------------------------------
@njit(cache=True)
def _rolling_pct_rank(x: FloatArray, window: int) -> FloatArray:  # pragma: no cover - numba
    """Fraction of the last ``window`` values that are <= the current one; NaN if any is missing."""
    out = np.full(x.shape[0], np.nan)
    for i in range(window - 1, x.shape[0]):
        v = x[i]
        if not np.isfinite(v):
            continue
        below = 0
        ok = True
        for j in range(i - window + 1, i + 1):
            if not np.isfinite(x[j]):
                ok = False
                break
            if x[j] <= v:
                below += 1
        if ok:
            out[i] = below / window
    return out


def _vol_pct_rank(inp: FeatureInput, window: int, inner: int) -> FloatArray:
    result: FloatArray = inp.cached(
        f"vol_pct_rank_{window}_{inner}", lambda: _rolling_pct_rank(close_to_close_vol(inp, inner), window)
    )
    return result


def _vol_regime(inp: FeatureInput, window: int, inner: int) -> FloatArray:
    rank = _vol_pct_rank(inp, window, inner)
    return np.where(np.isnan(rank), np.nan, np.digitize(rank, [1 / 3, 2 / 3], right=True).astype(np.float64))


def _trend_regime(inp: FeatureInput) -> FloatArray:
    """+1 when close and SMA(24) are both above SMA(168), -1 when both below, else 0."""
    fast = inp.cached("sma_24", lambda: core.sma(inp.close, 24))
    slow = inp.cached("sma_168", lambda: core.sma(inp.close, 168))
    c = inp.close
    up = (c > slow) & (fast > slow)
    down = (c < slow) & (fast < slow)
    return np.where(np.isnan(slow), np.nan, up.astype(np.float64) - down.astype(np.float64))


# -- HMM regime (refitted on past data only, filtered probabilities) -------------------------------------------------
HmmParams = tuple[FloatArray, FloatArray, FloatArray]  # means, variances, 2x2 transition matrix; state 1 = high var


def fit_hmm(returns: FloatArray) -> HmmParams | None:
    """2-state Gaussian HMM of (percent) returns, deterministic start; states ordered by variance, None on failure.

    The start is fixed (equal means, half and double the sample variance, sticky transitions) instead of
    hmmlearn's k-means, so a refit on the same window is bit-identical and costs ~10 ms instead of ~1 s.
    """
    from hmmlearn.hmm import GaussianHMM  # lazy: hmmlearn imports scikit-learn

    x = (returns * 100.0).reshape(-1, 1)
    var = float(x.var())
    if not var > 0:
        return None
    model = GaussianHMM(n_components=2, covariance_type="diag", n_iter=30, tol=1e-4, init_params="", params="stmc")
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])
    model.means_ = np.full((2, 1), float(x.mean()))
    model.covars_ = np.array([[0.5 * var], [2.0 * var]])
    logger = logging.getLogger("hmmlearn")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "model is not converging" chatter: the fit is still usable
    try:
        model.fit(x)
    except (ValueError, np.linalg.LinAlgError):
        return None
    finally:
        logger.setLevel(level)
    means = model.means_.ravel().astype(np.float64)
    variances = np.diagonal(model.covars_, axis1=1, axis2=2).ravel().astype(np.float64)
    trans = np.asarray(model.transmat_, dtype=np.float64)
    if not (np.isfinite(means).all() and np.isfinite(variances).all() and np.isfinite(trans).all()):
        return None
    order = np.argsort(variances, kind="stable")
    return means[order], variances[order], trans[np.ix_(order, order)]


@njit(cache=True)
def _hmm_filter(  # pragma: no cover - numba
    x: FloatArray, model_of_row: np.ndarray, means: FloatArray, variances: FloatArray, trans: FloatArray, span: int
) -> FloatArray:
    """P(state 1 | last ``span`` observations) by a forward pass from the stationary distribution, per row."""
    out = np.full(x.shape[0], np.nan)
    for t in range(span - 1, x.shape[0]):
        k = model_of_row[t]
        if k < 0:
            continue
        a01 = trans[k, 0, 1]
        a10 = trans[k, 1, 0]
        p1 = a01 / (a01 + a10) if a01 + a10 > 0 else 0.5
        alpha0 = 1.0 - p1
        alpha1 = p1
        ok = True
        for s in range(t - span + 1, t + 1):
            v = x[s]
            if not np.isfinite(v):
                ok = False
                break
            pred0 = alpha0 * trans[k, 0, 0] + alpha1 * trans[k, 1, 0]
            pred1 = alpha0 * trans[k, 0, 1] + alpha1 * trans[k, 1, 1]
            z0 = (v - means[k, 0]) ** 2 / variances[k, 0]
            z1 = (v - means[k, 1]) ** 2 / variances[k, 1]
            # likelihoods relative to the larger one, so long quiet or wild stretches cannot underflow
            zmin = min(z0, z1)
            lik0 = np.exp(-0.5 * (z0 - zmin)) / np.sqrt(variances[k, 0])
            lik1 = np.exp(-0.5 * (z1 - zmin)) / np.sqrt(variances[k, 1])
            alpha0 = pred0 * lik0
            alpha1 = pred1 * lik1
            total = alpha0 + alpha1
            if not total > 0:
                ok = False
                break
            alpha0 /= total
            alpha1 /= total
        if ok:
            out[t] = alpha1
    return out


def _hmm_high_vol_prob(inp: FeatureInput) -> FloatArray:
    r = log_returns(inp, 1)
    rows = evaluation_rows(inp, HMM_REFIT_EVERY)
    fitted: list[HmmParams] = []
    model_at_row = np.full(len(rows), -1.0)
    for k, row in enumerate(rows):
        if row >= HMM_WINDOW:
            chunk = r[row - HMM_WINDOW + 1 : row + 1]
            params = fit_hmm(chunk) if np.isfinite(chunk).all() else None
            if params is not None:
                model_at_row[k] = len(fitted)
                fitted.append(params)
    if not fitted:
        return np.full(len(inp), np.nan)
    model_of_row = np.nan_to_num(carry_forward(len(inp), rows, model_at_row), nan=-1.0).astype(np.int64)
    means = np.array([f[0] for f in fitted])
    variances = np.array([f[1] for f in fitted])
    trans = np.array([f[2] for f in fitted])
    return _hmm_filter(r * 100.0, model_of_row, means, variances, trans, HMM_FILTER)


# -- registration ----------------------------------------------------------------------------------------------------
def _sparse_lookback(window: int, every: int, returns_based: bool) -> int:
    return window - 1 + every - 1 + int(returns_based)


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
    lookback=_sparse_lookback(128, 1, False),
    group="complexity",
    description="Higuchi fractal dimension (kmax 10, antropy) of the last 128 log closes; 1.5 = random walk",
)(partial(_higuchi, window=128, every=1))
register(
    "sampen_128",
    lookback=_sparse_lookback(128, 4, True),
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
    lookback=_sparse_lookback(336, 24, True),
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
register(
    "vol_pct_rank_720",
    lookback=24 + 719,
    group="regime",
    description="percentile rank of the 24-bar volatility within its last 720 values, 0-1",
)(partial(_vol_pct_rank, window=720, inner=24))
register(
    "vol_regime_3",
    lookback=24 + 719,
    group="regime",
    description="volatility tercile within the last 720 bars: 0 calm, 1 normal, 2 turbulent",
)(partial(_vol_regime, window=720, inner=24))
register(
    "trend_regime",
    lookback=167,
    group="regime",
    description="+1 close and SMA(24) above SMA(168), -1 both below, 0 mixed",
)(_trend_regime)
register(
    "hmm_high_vol_prob",
    lookback=HMM_WINDOW + HMM_REFIT_EVERY - 1 + 1,
    group="regime",
    description=(
        f"filtered P(high-variance state) of a 2-state Gaussian HMM refitted every {HMM_REFIT_EVERY} bars on the "
        f"past {HMM_WINDOW} log returns, over the last {HMM_FILTER} returns"
    ),
)(_hmm_high_vol_prob)
