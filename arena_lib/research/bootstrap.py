"""How uncertain is a Sharpe ratio? Bootstrap confidence intervals and the analytic standard error.

Conventions (shared with :mod:`arena_lib.analytics.metrics`):

* The Sharpe ratio of per-period simple returns ``r`` is ``mean(r) / std(r, ddof=1)``; annualised, it is
  multiplied by ``sqrt(periods_per_year)`` (hourly crypto bars: 8766, daily: 365.25). A standard deviation at or
  below 1e-12 is float noise: the Sharpe is then NaN, never inf. :func:`sharpe_ratio` calls
  :func:`arena_lib.analytics.metrics.sharpe` itself; :func:`sharpe_by_column` is the same formula vectorised over
  columns, for the thousands of resamples and combinations the research statistics need.
* Formulas from the literature (standard errors, PSR, DSR) use the **per-period** (non-annualised) Sharpe ratio
  and the **raw** kurtosis (a normal distribution has kurtosis 3, not 0).

The bootstrap resamples returns with replacement: i.i.d. when ``block`` is ``None``, else in blocks so that
serial dependence (volatility clustering, autocorrelated strategy returns) survives resampling: the stationary
bootstrap of Politis & Romano (1994, JASA 89:1303), whose blocks have geometric lengths with mean ``block``, or the
circular block bootstrap of Politis & Romano (1992), with fixed-length blocks that wrap around the end.

The analytic standard error of the per-period Sharpe ratio ``SR`` estimated from ``n`` returns is

    SE(SR) = sqrt((1 - skew * SR + (kurtosis - 1) / 4 * SR^2) / n)

which is Lo (2002, *Financial Analysts Journal* 58(4):36) for i.i.d. normal returns (skew 0, kurtosis 3:
``sqrt((1 + SR^2 / 2) / n)``) and Mertens (2002) for i.i.d. non-normal returns. It ignores autocorrelation; the
block bootstrap does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from arena_lib.analytics.metrics import _ZERO_DISPERSION, infer_periods_per_year, sharpe

__all__ = [
    "BlockMethod",
    "SharpeInterval",
    "analytic_sharpe_interval",
    "bootstrap_sharpes",
    "equity_from_returns",
    "resample_indices",
    "resolve_periods_per_year",
    "returns_array",
    "sharpe_by_column",
    "sharpe_confidence_interval",
    "sharpe_moment_term",
    "sharpe_ratio",
    "sharpe_standard_error",
]

BlockMethod = Literal["stationary", "circular"]

_CHUNK_CELLS = 2_000_000
"""Resampled values held in memory at once (16 MB of float64); bootstraps run in chunks of this size."""


class SharpeInterval(NamedTuple):
    """A confidence interval for a Sharpe ratio: ``(low, point, high)``, in the units the caller asked for."""

    low: float
    point: float
    high: float


# ------------------------------------------------------------------------------------------------ inputs


def returns_array(returns: ArrayLike, name: str = "returns", min_length: int = 2) -> np.ndarray:
    """Per-period returns as a 1-D float64 array, checked for NaN/inf and length.

    Raises:
        ValueError: not one-dimensional, non-finite values, or fewer than `min_length` returns.
    """
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or inf; drop or fill them first")
    if len(values) < min_length:
        raise ValueError(f"{name} needs at least {min_length} values, got {len(values)}")
    return values


def resolve_periods_per_year(returns: Any, periods_per_year: float | None) -> float:
    """`periods_per_year` if given, else inferred from the returns' DatetimeIndex (see engine.metrics).

    Raises:
        ValueError: not given and the returns carry no DatetimeIndex to infer it from, or not positive.
    """
    if periods_per_year is None:
        index = getattr(returns, "index", None)
        if not isinstance(index, pd.DatetimeIndex):
            raise ValueError(
                "pass periods_per_year (e.g. 8766 for hourly bars, 365.25 for daily, 1 for a per-period Sharpe); "
                "it can only be inferred from a Series with a DatetimeIndex"
            )
        periods_per_year = infer_periods_per_year(index)
    ppy = float(periods_per_year)
    if not math.isfinite(ppy) or ppy <= 0:
        raise ValueError(f"periods_per_year must be a positive number, got {periods_per_year}")
    return ppy


def equity_from_returns(returns: ArrayLike, initial: float = 1.0) -> pd.Series:
    """Compounded equity ``E_0 = initial, E_t = E_{t-1} (1 + r_t)``: one more point than there are returns."""
    r = np.asarray(returns, dtype=np.float64)
    return pd.Series(initial * np.concatenate(([1.0], np.cumprod(1.0 + r))), dtype=np.float64)


# ------------------------------------------------------------------------------------------------ Sharpe


def sharpe_ratio(returns: ArrayLike, periods_per_year: float = 1.0) -> float:
    """Sharpe ratio of per-period simple returns via :func:`arena_lib.analytics.metrics.sharpe`.

    ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``; ``periods_per_year=1`` gives the per-period Sharpe the
    PSR/DSR formulas want. NaN for fewer than two returns or zero dispersion.
    """
    return sharpe(equity_from_returns(returns), periods_per_year=periods_per_year)


def sharpe_by_column(matrix: ArrayLike) -> np.ndarray:
    """Per-period Sharpe ratio of each column of a (periods x series) matrix: ``mean / std(ddof=1)``.

    The formula of :func:`arena_lib.analytics.metrics.sharpe` with ``periods_per_year=1``, vectorised; a 1-D input is
    one column. NaN where a column has fewer than two rows or a standard deviation <= 1e-12.
    """
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] < 2:
        return np.full(x.shape[1], np.nan)
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > _ZERO_DISPERSION, mean / np.where(sd > 0, sd, 1.0), np.nan)


def sharpe_moment_term(sr: float, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """``1 - skew * SR + (kurtosis - 1) / 4 * SR^2``: n times the variance of the per-period Sharpe estimator.

    Shared by the standard error (Mertens 2002) and the probabilistic Sharpe ratio (Bailey & López de Prado 2012).

    Raises:
        ValueError: a kurtosis below ``1 + skew^2``, which no distribution has; it usually means excess kurtosis
            (normal = 0) was passed where the raw kurtosis (normal = 3) is expected.
    """
    if not (math.isfinite(sr) and math.isfinite(skew) and math.isfinite(kurtosis)):
        raise ValueError(f"sr, skew and kurtosis must be finite, got {sr}, {skew}, {kurtosis}")
    if kurtosis < 1.0 + skew * skew - 1e-9:
        raise ValueError(
            f"kurtosis {kurtosis} is below 1 + skew^2 = {1.0 + skew * skew:g}, which is impossible; pass the raw "
            "kurtosis (normal = 3), not the excess kurtosis (normal = 0)"
        )
    term = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if term <= 0:  # only on the boundary kurtosis == 1 + skew^2 (a two-point distribution)
        raise ValueError(f"1 - skew*SR + (kurtosis-1)/4*SR^2 = {term:g} <= 0: the Sharpe estimator has no variance")
    return term


def sharpe_standard_error(sr: float, n: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Analytic standard error of a per-period Sharpe ratio from `n` i.i.d. returns (Lo 2002; Mertens 2002).

    ``SE = sqrt((1 - skew*SR + (kurtosis - 1)/4 * SR^2) / n)``; with the normal defaults this is Lo's
    ``sqrt((1 + SR^2/2) / n)``. Multiply by ``sqrt(periods_per_year)`` for the SE of the annualised Sharpe.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 returns, got {n}")
    return math.sqrt(sharpe_moment_term(sr, skew, kurtosis) / n)


def analytic_sharpe_interval(
    returns: ArrayLike,
    alpha: float = 0.05,
    periods_per_year: float | None = None,
    normal: bool = False,
) -> SharpeInterval:
    """Normal-approximation interval ``SR +- z_{1-alpha/2} * SE``, annualised with `periods_per_year`.

    ``normal=True`` uses Lo's i.i.d.-normal SE; otherwise the sample skewness and raw kurtosis enter (Mertens).
    `periods_per_year` is inferred from a Series' DatetimeIndex when not given (pass 1 for per-period units).
    """
    _check_alpha(alpha)
    ppy = resolve_periods_per_year(returns, periods_per_year)
    r = returns_array(returns, min_length=3)
    sr = float(sharpe_by_column(r)[0])
    if math.isnan(sr):
        return SharpeInterval(math.nan, math.nan, math.nan)
    skew, kurt = (0.0, 3.0) if normal else (float(stats.skew(r)), float(stats.kurtosis(r, fisher=False)))
    half = float(stats.norm.ppf(1.0 - alpha / 2.0)) * sharpe_standard_error(sr, len(r), skew, kurt)
    scale = math.sqrt(ppy)
    return SharpeInterval((sr - half) * scale, sr * scale, (sr + half) * scale)


# ------------------------------------------------------------------------------------------------ resampling


def resample_indices(
    n: int,
    size: int,
    n_samples: int,
    block: int | None = None,
    method: BlockMethod = "stationary",
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Bootstrap positions into a series of length `n`: an (n_samples x size) int64 array.

    ``block=None`` (or 1) draws i.i.d. positions. Otherwise ``method="stationary"`` starts a new block at each
    position with probability ``1/block`` (geometric block lengths, mean `block`), and ``"circular"`` concatenates
    blocks of exactly `block` positions; both wrap around the end of the series, so every position is drawn with
    the same probability ``1/n`` and the resampled mean is unbiased for the sample mean.
    """
    if n < 1 or size < 1 or n_samples < 1:
        raise ValueError(f"n, size and n_samples must be >= 1, got {n}, {size}, {n_samples}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if block is None or block == 1:
        return gen.integers(0, n, size=(n_samples, size), dtype=np.int64)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer (mean block length in periods), got {block!r}")
    if method == "circular":
        n_blocks = -(-size // int(block))
        starts = gen.integers(0, n, size=(n_samples, n_blocks, 1), dtype=np.int64)
        idx = (starts + np.arange(block, dtype=np.int64)) % n
        return idx.reshape(n_samples, n_blocks * int(block))[:, :size]
    if method == "stationary":
        new_block = gen.random((n_samples, size)) < 1.0 / block
        new_block[:, 0] = True
        starts = gen.integers(0, n, size=(n_samples, size), dtype=np.int64)
        steps = np.arange(size, dtype=np.int64)
        last_start = np.maximum.accumulate(np.where(new_block, steps, 0), axis=1)
        return (np.take_along_axis(starts, last_start, axis=1) + (steps - last_start)) % n
    raise ValueError(f"method must be 'stationary' or 'circular', got {method!r}")


def _chunks(total: int, per_row: int) -> Iterator[int]:
    """Row counts that split `total` rows into chunks of at most `_CHUNK_CELLS` cells."""
    rows = max(1, _CHUNK_CELLS // max(per_row, 1))
    done = 0
    while done < total:
        take = min(rows, total - done)
        yield take
        done += take


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def bootstrap_sharpes(
    returns: ArrayLike,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int | None = 0,
    method: BlockMethod = "stationary",
) -> np.ndarray:
    """Per-period Sharpe ratios of `n_boot` bootstrap resamples of `returns` (same length as the sample)."""
    r = returns_array(returns, min_length=3)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    out = []
    for rows in _chunks(n_boot, len(r)):
        sample = r[resample_indices(len(r), len(r), rows, block, method, rng)]
        out.append(sharpe_by_column(sample.T))
    return np.concatenate(out)


def sharpe_confidence_interval(
    returns: ArrayLike,
    alpha: float = 0.05,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int | None = 0,
    periods_per_year: float | None = None,
    method: BlockMethod = "stationary",
) -> SharpeInterval:
    """Percentile bootstrap interval for the annualised Sharpe ratio: ``(low, point, high)``.

    The point is the sample Sharpe (:func:`sharpe_ratio`); low and high are the ``alpha/2`` and ``1 - alpha/2``
    quantiles of the Sharpe over `n_boot` resamples (Efron's percentile method). Pass `block` (mean block length
    in periods, e.g. 24 for a day of hourly bars) for a stationary (default) or circular block bootstrap when the
    returns are serially dependent. The same `seed` gives the same interval. `periods_per_year` is inferred from a
    Series' DatetimeIndex when not given (pass 1 for per-period units). Resamples whose Sharpe is undefined (zero
    dispersion) are left out.
    """
    _check_alpha(alpha)
    ppy = resolve_periods_per_year(returns, periods_per_year)
    r = returns_array(returns, min_length=3)
    point = sharpe_ratio(r, ppy)
    boots = bootstrap_sharpes(r, n_boot, block, seed, method)
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0 or math.isnan(point):
        return SharpeInterval(math.nan, point, math.nan)
    low, high = np.quantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0]) * math.sqrt(ppy)
    return SharpeInterval(float(low), point, float(high))
