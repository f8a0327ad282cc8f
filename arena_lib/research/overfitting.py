"""Backtest overfitting: how much of the best backtest is selection luck?

* :func:`pbo_cscv` — the Probability of Backtest Overfitting by Combinatorially Symmetric Cross-Validation.
  Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", *Journal of Computational
  Finance* 20(4), 2017 (SSRN 2326253, 2015).
* :func:`probabilistic_sharpe_ratio` — Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier",
  *Journal of Risk* 15(2), 2012.
* :func:`deflated_sharpe_ratio` — Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", *Journal of Portfolio Management* 40(5), 2014.
* :func:`walk_forward_oos` — a summary of out-of-sample walk-forward results (and their decay from in-sample).

Units: every Sharpe ratio in the PSR/DSR formulas is **per period** (not annualised: divide an annual Sharpe by
``sqrt(periods_per_year)``), ``n`` is the number of return periods, ``skew`` the sample skewness and ``kurtosis``
the **raw** fourth standardised moment (normal = 3; scipy's ``kurtosis(x, fisher=False)``), not the excess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from arena_lib.analytics.metrics import _ZERO_DISPERSION, max_drawdown, total_return
from arena_lib.research.bootstrap import (
    equity_from_returns,
    resolve_periods_per_year,
    returns_array,
    sharpe_by_column,
    sharpe_moment_term,
    sharpe_ratio,
)

__all__ = [
    "EULER_GAMMA",
    "PBOResult",
    "WalkForwardSummary",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "min_track_record_length",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "trial_sharpe_variance",
    "walk_forward_oos",
]

EULER_GAMMA: float = 0.5772156649015329
"""The Euler-Mascheroni constant, in the expected maximum of N standard normals."""

Metric = Callable[[np.ndarray], np.ndarray]
"""A performance metric: (periods x strategies) returns -> one value per strategy (higher is better)."""


# ================================================================================================ PBO by CSCV


@dataclass(frozen=True)
class PBOResult:
    """What CSCV found, one entry per combination ``c`` of in-sample blocks (in ``itertools.combinations`` order).

    Attributes:
        pbo: probability of backtest overfitting, the share of combinations with ``logit <= 0``: the strategy
            that was best in-sample ranked at or below the median out-of-sample.
        logits: ``lambda_c = ln(omega_c / (1 - omega_c))``.
        oos_rank: ``omega_c = rank_c / (N + 1)``, the relative out-of-sample rank (in ``(0, 1)``) of the
            in-sample winner, ranks ascending (1 = worst), ties averaged.
        selected: column index of the in-sample winner per combination.
        is_metric, oos_metric: the winner's metric in-sample and out-of-sample.
        degradation_slope, degradation_intercept: least squares fit ``oos_metric = a + b * is_metric`` over the
            combinations; ``b < 0`` means a better in-sample result predicts a worse out-of-sample one (NaN when
            the in-sample metric does not vary).
        prob_oos_loss: share of combinations where the winner's out-of-sample metric is negative.
        n_combinations: ``C(S, S/2)``; n_splits: ``S``; strategies: column labels.
    """

    pbo: float
    logits: np.ndarray
    oos_rank: np.ndarray
    selected: np.ndarray
    is_metric: np.ndarray
    oos_metric: np.ndarray
    degradation_slope: float
    degradation_intercept: float
    prob_oos_loss: float
    n_combinations: int
    n_splits: int
    strategies: tuple[str, ...]

    def summary(self) -> dict[str, float | int]:
        """Scalar results, ready for MLflow or JSON."""
        return {
            "pbo": self.pbo,
            "logit_median": float(np.median(self.logits)),
            "degradation_slope": self.degradation_slope,
            "prob_oos_loss": self.prob_oos_loss,
            "n_combinations": self.n_combinations,
            "n_splits": self.n_splits,
            "n_strategies": len(self.strategies),
        }


def _as_matrix(returns_matrix: ArrayLike | pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(returns_matrix, pd.DataFrame):
        labels = tuple(str(c) for c in returns_matrix.columns)
        values = returns_matrix.to_numpy(dtype=np.float64)
    else:
        values = np.asarray(returns_matrix, dtype=np.float64)
        labels = tuple(str(i) for i in range(values.shape[1])) if values.ndim == 2 else ()
    if values.ndim != 2:
        raise ValueError(f"returns_matrix must be 2-D (periods x strategies), got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("returns_matrix contains NaN or inf; align the strategies on common periods first")
    return values, labels


def _sharpe_from_moments(count: np.ndarray, total: np.ndarray, squares: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per-period Sharpe from sums over rows of returns centred by `shift` (same result as `sharpe_by_column`)."""
    n = count[:, None]
    mean_c = total / n
    var = np.maximum(squares - n * mean_c * mean_c, 0.0) / (n - 1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > _ZERO_DISPERSION, (mean_c + shift) / np.where(sd > 0, sd, 1.0), np.nan)


def _cscv_metrics(
    values: np.ndarray, blocks: list[np.ndarray], combos: np.ndarray, metric: Metric | None
) -> tuple[np.ndarray, np.ndarray]:
    """(combinations x strategies) in-sample and out-of-sample metric values."""
    s = len(blocks)
    if metric is None:
        # Default Sharpe: add up per-block sums instead of recomputing 2 x C(S, S/2) standard deviations.
        shift = values.mean(axis=0)
        centred = values - shift
        count = np.array([len(b) for b in blocks], dtype=np.float64)
        total = np.stack([centred[b].sum(axis=0) for b in blocks])
        squares = np.stack([(centred[b] ** 2).sum(axis=0) for b in blocks])
        member = np.zeros((len(combos), s))
        member[np.arange(len(combos))[:, None], combos] = 1.0
        outside = 1.0 - member
        is_vals = _sharpe_from_moments(member @ count, member @ total, member @ squares, shift)
        oos_vals = _sharpe_from_moments(outside @ count, outside @ total, outside @ squares, shift)
        return is_vals, oos_vals
    is_rows, oos_rows = [], []
    for combo in combos:
        chosen = set(combo.tolist())
        inside = np.concatenate([blocks[i] for i in range(s) if i in chosen])
        rest = np.concatenate([blocks[i] for i in range(s) if i not in chosen])
        is_rows.append(np.asarray(metric(values[inside]), dtype=np.float64))
        oos_rows.append(np.asarray(metric(values[rest]), dtype=np.float64))
    return np.stack(is_rows), np.stack(oos_rows)


def pbo_cscv(
    returns_matrix: ArrayLike | pd.DataFrame,
    n_splits: int = 16,
    metric: Metric | None = None,
) -> PBOResult:
    """Probability of Backtest Overfitting by Combinatorially Symmetric Cross-Validation (Bailey et al.).

    1. Split the T rows (periods, in time order) of the (T x N) matrix of strategy returns into ``S = n_splits``
       contiguous blocks of (nearly) equal size (``np.array_split``).
    2. For each of the ``C(S, S/2)`` ways to pick half of the blocks: the picked blocks, in time order, are the
       in-sample set J, the others the out-of-sample complement.
    3. Pick the strategy ``n*`` with the best in-sample metric; find its relative out-of-sample rank
       ``omega_c = rank(n*) / (N + 1)`` among all N strategies (ascending, ties averaged) and its logit
       ``lambda_c = ln(omega_c / (1 - omega_c))``.
    4. ``PBO = #{c: lambda_c <= 0} / C(S, S/2)``: how often the in-sample winner is at or below the median
       out of sample. A skilled selection has PBO near 0; selecting among pure noise gives about 0.5 (exactly
       ``1/2`` in expectation for an even N).

    Args:
        returns_matrix: (T x N) per-period returns of N strategy variants (columns) over the same T periods;
            a DataFrame's column labels are kept.
        n_splits: S, even, >= 2; each block needs at least 2 rows for the default Sharpe metric.
        metric: ``f(returns[rows, :]) -> values[N]``, higher is better. Default: the per-period Sharpe ratio
            (:func:`arena_lib.research.bootstrap.sharpe_by_column`), computed from block sums. NaN values (an
            undefined metric) rank below every number.

    Raises:
        ValueError: an odd or too small S, fewer than 2 strategies, too few rows per block, or NaN input.
    """
    values, labels = _as_matrix(returns_matrix)
    t, n = values.shape
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even integer >= 2, got {n_splits!r}")
    if n < 2:
        raise ValueError(f"CSCV compares strategies: need at least 2 columns, got {n}")
    min_rows = 1 if metric is not None else 2
    if t < n_splits * min_rows:
        raise ValueError(f"{t} periods cannot make {n_splits} blocks of at least {min_rows} rows each")
    blocks = np.array_split(np.arange(t), n_splits)
    combos = np.array(list(combinations(range(n_splits), n_splits // 2)), dtype=np.int64)
    is_vals, oos_vals = _cscv_metrics(values, blocks, combos, metric)
    if is_vals.shape != (len(combos), n) or oos_vals.shape != (len(combos), n):
        raise ValueError(f"metric must return one value per strategy ({n}), got shape {is_vals.shape[1:]}")
    ranked_is = np.where(np.isnan(is_vals), -np.inf, is_vals)
    if np.isneginf(ranked_is).all(axis=1).any():
        raise ValueError("the metric is undefined (NaN) for every strategy in some in-sample set")
    selected = np.argmax(ranked_is, axis=1)
    rows = np.arange(len(combos))
    ranks = stats.rankdata(np.where(np.isnan(oos_vals), -np.inf, oos_vals), method="average", axis=1)
    omega = ranks[rows, selected] / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    is_best, oos_best = is_vals[rows, selected], oos_vals[rows, selected]
    slope, intercept = _fit_line(is_best, oos_best)
    finite_oos = oos_best[np.isfinite(oos_best)]
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        oos_rank=omega,
        selected=selected,
        is_metric=is_best,
        oos_metric=oos_best,
        degradation_slope=slope,
        degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(finite_oos < 0.0)) if len(finite_oos) else math.nan,
        n_combinations=len(combos),
        n_splits=int(n_splits),
        strategies=labels,
    )


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares ``y = a + b x`` over finite pairs: ``(b, a)``; NaN when x does not vary."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan, math.nan
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx <= 1e-24 * max(1.0, float(x @ x)):
        return math.nan, math.nan
    slope = float(dx @ (y - y.mean())) / sxx
    return slope, float(y.mean() - slope * x.mean())


# ================================================================================================ PSR / DSR


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probability that the true Sharpe ratio exceeds `sr_benchmark`, given an estimate `sr` from `n` returns.

    Bailey & López de Prado (2012), eq. for PSR:

        PSR(SR*) = Phi( (SR - SR*) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2) )

    All Sharpe ratios per period (not annualised); `kurtosis` raw (normal = 3).

    Raises:
        ValueError: ``n < 2``, or impossible moments (see :func:`arena_lib.research.bootstrap.sharpe_moment_term`).
    """
    if n < 2:
        raise ValueError(f"n must be the number of returns (>= 2), got {n}")
    term = sharpe_moment_term(sr, skew, kurtosis)
    z = (sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(term)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum of `n_trials` per-period Sharpe ratios whose true value is 0 (Bailey & López de Prado 2014).

        SR0 = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

    with ``V`` the variance of the Sharpe estimates across the trials and ``gamma`` the Euler-Mascheroni
    constant (an extreme-value approximation of E[max of N normals]). One trial involves no selection: 0.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    if not math.isfinite(sr_variance) or sr_variance < 0:
        raise ValueError(f"sr_variance must be a finite number >= 0, got {sr_variance}")
    if n_trials == 1:
        return 0.0
    z = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * stats.norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return float(math.sqrt(sr_variance) * z)


def trial_sharpe_variance(returns_matrix: ArrayLike | pd.DataFrame) -> float:
    """Variance (ddof=1) across columns of the per-period Sharpe ratios of all the trials: the DSR's ``V``."""
    values, _ = _as_matrix(returns_matrix)
    srs = sharpe_by_column(values)
    srs = srs[np.isfinite(srs)]
    if len(srs) < 2:
        raise ValueError("need at least 2 trials with a defined Sharpe ratio to estimate their variance")
    return float(np.var(srs, ddof=1))


def deflated_sharpe_ratio(
    returns_or_sr: ArrayLike | float,
    n_trials: int,
    sr_variance: float,
    *,
    n: int | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
) -> float:
    """Deflated Sharpe Ratio: the PSR against the Sharpe that the best of `n_trials` null strategies would show.

        DSR = PSR(SR0),  SR0 = expected_max_sharpe(n_trials, sr_variance)

    (Bailey & López de Prado 2014.) It is the probability that the selected strategy's true Sharpe exceeds what
    selection alone explains, after non-normality and sample length.

    Args:
        returns_or_sr: the selected strategy's per-period returns (then ``n``, skewness and raw kurtosis are
            estimated from them unless given), or its per-period Sharpe ratio (then `n` is required, and skew and
            kurtosis default to the normal 0 and 3).
        n_trials: how many strategy variants were tried (independent trials; use an effective number when they
            are correlated).
        sr_variance: variance of the per-period Sharpe ratios across those trials
            (:func:`trial_sharpe_variance`).

    Raises:
        ValueError: a scalar Sharpe without `n`, an `n` that contradicts the returns, or impossible moments.
    """
    if np.ndim(returns_or_sr) == 0:
        if n is None:
            raise ValueError("pass n (number of returns) with a scalar Sharpe ratio, or pass the returns")
        sr = float(returns_or_sr)  # type: ignore[arg-type]
        skew = 0.0 if skew is None else skew
        kurtosis = 3.0 if kurtosis is None else kurtosis
    else:
        r = returns_array(returns_or_sr, min_length=3)
        if n is not None and n != len(r):
            raise ValueError(f"n={n} contradicts the {len(r)} returns passed")
        n = len(r)
        sr = float(sharpe_by_column(r)[0])
        if math.isnan(sr):
            raise ValueError("the returns have no dispersion: their Sharpe ratio is undefined")
        skew = float(stats.skew(r)) if skew is None else skew
        kurtosis = float(stats.kurtosis(r, fisher=False)) if kurtosis is None else kurtosis
    return probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, sr_variance), n, skew, kurtosis)


def min_track_record_length(
    sr: float, sr_benchmark: float = 0.0, skew: float = 0.0, kurtosis: float = 3.0, alpha: float = 0.05
) -> float:
    """Returns needed before ``PSR(sr_benchmark) >= 1 - alpha`` (Bailey & López de Prado 2012, MinTRL).

        MinTRL = 1 + (1 - skew * SR + (kurtosis - 1) / 4 * SR^2) * (z_{1-alpha} / (SR - SR*))^2

    Per-period Sharpe ratios; the result is a number of periods. ``inf`` when ``SR <= SR*``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if sr <= sr_benchmark:
        return math.inf
    term = sharpe_moment_term(sr, skew, kurtosis)
    return 1.0 + term * (float(stats.norm.ppf(1.0 - alpha)) / (sr - sr_benchmark)) ** 2


# ================================================================================================ walk-forward


@dataclass(frozen=True)
class WalkForwardSummary:
    """Out-of-sample walk-forward results.

    Attributes:
        folds: one row per fold: ``bars``, ``oos_sharpe`` (annualised), ``oos_total_return``,
            ``oos_max_drawdown`` (negative fraction), and with in-sample returns ``is_sharpe`` and
            ``degradation = oos_sharpe - is_sharpe``.
        oos_sharpe: annualised Sharpe of all out-of-sample returns concatenated in fold order.
        oos_total_return: compounded return of the concatenated out-of-sample returns.
        share_profitable: fraction of folds whose out-of-sample total return is > 0.
        mean_oos_sharpe, mean_is_sharpe, mean_degradation: means over folds (NaN without in-sample data).
        efficiency: ``mean_oos_sharpe / mean_is_sharpe`` (walk-forward efficiency), NaN unless the in-sample
            mean is positive.
    """

    folds: pd.DataFrame
    oos_sharpe: float
    oos_total_return: float
    share_profitable: float
    mean_oos_sharpe: float
    mean_is_sharpe: float
    mean_degradation: float
    efficiency: float

    def summary(self) -> dict[str, float | int]:
        """Scalar results, ready for MLflow or JSON."""
        return {
            "folds": len(self.folds),
            "oos_sharpe": self.oos_sharpe,
            "oos_total_return": self.oos_total_return,
            "share_profitable": self.share_profitable,
            "mean_oos_sharpe": self.mean_oos_sharpe,
            "mean_is_sharpe": self.mean_is_sharpe,
            "mean_degradation": self.mean_degradation,
            "efficiency": self.efficiency,
        }


def _fold_list(folds: Sequence[Any] | Mapping[Any, Any], name: str) -> tuple[list[Any], list[Any]]:
    if isinstance(folds, Mapping):
        labels, series = list(folds.keys()), list(folds.values())
    else:
        labels, series = list(range(len(folds))), list(folds)
    if not series:
        raise ValueError(f"{name} is empty: pass one return series per fold")
    return labels, series


def walk_forward_oos(
    returns_by_fold: Sequence[Any] | Mapping[Any, Any],
    is_returns_by_fold: Sequence[Any] | Mapping[Any, Any] | None = None,
    periods_per_year: float | None = None,
) -> WalkForwardSummary:
    """Summarise per-period out-of-sample returns of each walk-forward fold (optionally against in-sample).

    Args:
        returns_by_fold: one return series per fold (arrays or Series; a mapping keeps its keys as fold labels),
            in time order.
        is_returns_by_fold: the in-sample returns of the same folds (same length and order), to measure the
            in-sample -> out-of-sample decay.
        periods_per_year: for annualising Sharpe ratios; inferred from the first fold's DatetimeIndex if omitted.

    Sharpe ratios and total returns come from :mod:`arena_lib.analytics.metrics` on the compounded equity.
    """
    labels, oos = _fold_list(returns_by_fold, "returns_by_fold")
    ppy = resolve_periods_per_year(oos[0], periods_per_year)
    rows = []
    arrays = []
    for label, fold in zip(labels, oos, strict=True):
        r = returns_array(fold, name=f"fold {label!r} returns", min_length=1)
        arrays.append(r)
        equity = equity_from_returns(r)
        rows.append(
            {
                "fold": label,
                "bars": len(r),
                "oos_sharpe": sharpe_ratio(r, ppy),
                "oos_total_return": total_return(equity),
                "oos_max_drawdown": max_drawdown(equity),
            }
        )
    frame = pd.DataFrame(rows).set_index("fold")
    mean_is = mean_deg = efficiency = math.nan
    if is_returns_by_fold is not None:
        _, ins = _fold_list(is_returns_by_fold, "is_returns_by_fold")
        if len(ins) != len(oos):
            raise ValueError(f"{len(ins)} in-sample folds for {len(oos)} out-of-sample folds; pass one per fold")
        frame["is_sharpe"] = [sharpe_ratio(returns_array(f, name="in-sample returns"), ppy) for f in ins]
        frame["degradation"] = frame["oos_sharpe"] - frame["is_sharpe"]
        mean_is = float(frame["is_sharpe"].mean())
        mean_deg = float(frame["degradation"].mean())
    mean_oos = float(frame["oos_sharpe"].mean())
    if math.isfinite(mean_is) and mean_is > 0:
        efficiency = mean_oos / mean_is
    concatenated = np.concatenate(arrays)
    return WalkForwardSummary(
        folds=frame,
        oos_sharpe=sharpe_ratio(concatenated, ppy),
        oos_total_return=total_return(equity_from_returns(concatenated)),
        share_profitable=float((frame["oos_total_return"] > 0).mean()),
        mean_oos_sharpe=mean_oos,
        mean_is_sharpe=mean_is,
        mean_degradation=mean_deg,
        efficiency=efficiency,
    )
