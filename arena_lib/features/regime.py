"""Regime features: where the market is in its volatility cycle and trend, and a hidden-Markov regime.

Why: a rule or a model that works in calm, trending markets often fails in turbulent or choppy ones; these columns
let a model condition on the regime, and let research split results by it. The complexity measures (Hurst,
entropies, fractal dimension, Lyapunov) are in ``features.complexity``.

- Volatility regime: percentile rank of the 24-bar volatility within the last 720 bars, and its tercile label.
- Trend regime: +1 when the close and SMA(24) are both above SMA(168), -1 when both are below, else 0.
- HMM regime: a 2-state Gaussian HMM of log returns (``hmmlearn``), refitted every 336 bars on the trailing 1008
  returns only (on the sparse schedule of ``features.schedule``), with a deterministic initialization; each bar
  reads the *filtered* probability of the high-variance state from a forward pass over its last 48 returns. A
  model fitted on the whole history, or smoothed (Viterbi, forward-backward) probabilities, would both leak the
  future; neither is used. With the Lyapunov exponent, the costliest feature (``benchmarks/features.py``).
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
from numba import njit

from arena_lib.features import core
from arena_lib.features.registry import FeatureInput, FloatArray, register
from arena_lib.features.returns import log_returns
from arena_lib.features.schedule import carry_forward, evaluation_rows
from arena_lib.features.volatility import close_to_close_vol

HMM_REFIT_EVERY, HMM_WINDOW, HMM_FILTER = 336, 1008, 48


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
