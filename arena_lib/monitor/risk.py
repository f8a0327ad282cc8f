"""Value at risk, expected shortfall (CVaR) and return correlations for the monitor's risk page.

Pure functions on per-period simple returns, wide: one column per agent and one row per bar, as
`arena_lib.monitor.queries.agent_returns` returns them (its optional "portfolio" column, the agents' summed PnL
over their summed equity, is then just one more column here). No I/O.

Definitions, per column over its non-NaN returns r_1..r_n and a confidence level a (0.95, 0.99):
- historical: VaR_a = -Q(1 - a), with Q the empirical quantile interpolated linearly between order statistics
  (numpy's default, Hyndman-Fan type 7); CVaR_a = -mean{r_i : r_i <= Q(1 - a)}, the mean loss in that tail.
- parametric: the returns read as normal with the sample mean m and standard deviation s (ddof=1):
  VaR_a = s * z_a - m and CVaR_a = s * pdf(z_a) / (1 - a) - m, with z_a the standard normal a-quantile.
Both are fractions of the capital lost in one period: 0.02 is a 2% loss, and a negative figure means that even the
tail of the distribution is a gain. They describe the returns they are given: a bar's horizon, and the window the
caller fetched.

Too few observations: a column with fewer than `min_observations` returns (default `MIN_OBSERVATIONS` = 20) gets
NaN for both methods. Each row reports its `observations`, because a 99% historical figure from fewer than 100
returns rests on one or two of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

MIN_OBSERVATIONS = 20
"""Fewest non-NaN returns for a VaR/CVaR figure or a correlation: fewer give NaN."""

METHODS = ("historical", "parametric")
VAR_COLUMNS = ["agent", "level", "method", "var", "cvar", "observations"]
_STANDARD_NORMAL = NormalDist()


def var_cvar(
    returns: pd.DataFrame | pd.Series,
    levels: Sequence[float] = (0.95, 0.99),
    *,
    min_observations: int = MIN_OBSERVATIONS,
) -> pd.DataFrame:
    """One row per (agent, level, method): VaR and CVaR as positive loss fractions per period (see the module)."""
    frame = _as_frame(returns)
    checked = [_level(x) for x in levels]
    if min_observations < 2:
        raise ValueError(f"min_observations={min_observations} must be at least 2 (a standard deviation needs two)")
    rows = []
    for column in frame.columns:
        r = frame[column].to_numpy(dtype=np.float64)
        r = r[~np.isnan(r)]
        enough = len(r) >= min_observations
        for level in checked:
            hist = historical(r, level) if enough else (math.nan, math.nan)
            para = parametric(r, level) if enough else (math.nan, math.nan)
            rows.append((column, level, "historical", *hist, len(r)))
            rows.append((column, level, "parametric", *para, len(r)))
    out = pd.DataFrame(rows, columns=VAR_COLUMNS)
    return out.astype({"level": np.float64, "var": np.float64, "cvar": np.float64, "observations": np.int64})


def historical(returns: np.ndarray, level: float) -> tuple[float, float]:
    """(VaR, CVaR) of `returns` at `level` from the empirical distribution (the module's definitions)."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) == 0:
        return math.nan, math.nan
    cut = float(np.quantile(r, 1.0 - _level(level)))
    tail = r[r <= cut]
    return -cut, -float(tail.mean())


def parametric(returns: np.ndarray, level: float) -> tuple[float, float]:
    """(VaR, CVaR) of `returns` at `level` under a normal fit with the sample mean and std (ddof=1)."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return math.nan, math.nan
    a = _level(level)
    mean, sd = float(r.mean()), float(r.std(ddof=1))
    z = _STANDARD_NORMAL.inv_cdf(a)
    return sd * z - mean, sd * _STANDARD_NORMAL.pdf(z) / (1.0 - a) - mean


def correlation(returns: pd.DataFrame, min_periods: int = MIN_OBSERVATIONS, method: str = "pearson") -> pd.DataFrame:
    """Pairwise correlation of the agents' returns over the bars both have (NaN below `min_periods` of them).

    A column that never moves (a cash-only agent) has no correlation with anything: its row and column are NaN.
    """
    frame = _as_frame(returns)
    if min_periods < 2:
        raise ValueError(f"min_periods={min_periods} must be at least 2 (a correlation needs two observations)")
    if method not in ("pearson", "spearman", "kendall"):
        raise ValueError(f"method={method!r} must be one of 'pearson', 'spearman', 'kendall'")
    return frame.corr(method=method, min_periods=min_periods)  # type: ignore[arg-type]


def _as_frame(returns: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(returns, pd.Series):
        returns = returns.to_frame(name=returns.name if returns.name is not None else "returns")
    if not isinstance(returns, pd.DataFrame):
        raise TypeError(f"returns must be a pandas DataFrame (one column per agent), not {type(returns).__name__}")
    bad = [c for c in returns.columns if not pd.api.types.is_numeric_dtype(returns[c])]
    if bad:
        raise ValueError(f"returns must be numeric per-period fractions; non-numeric columns: {bad}")
    return returns


def _level(level: float) -> float:
    value = float(level)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence level {level!r} must be strictly between 0 and 1 (e.g. 0.95)")
    return value
