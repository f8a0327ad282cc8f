"""Monte Carlo drawdown and ruin: how bad could this strategy's path have been?

A backtest shows one path. Simulating many paths that share the strategy's return statistics shows the
distribution of what was luck: maximum drawdowns, final returns and the risk of ruin. Three generators:

* ``"block_bootstrap"`` — resample the strategy's own returns in blocks (stationary bootstrap of Politis & Romano
  1994 by default, or circular blocks): keeps fat tails, skew and short-range dependence; makes no model.
* ``"gbm"`` — geometric Brownian motion at the bar frequency: log returns i.i.d.
  ``N(mu, sigma^2)`` with ``mu = mean(log(1 + r))`` and ``sigma = std(log(1 + r), ddof=1)``, so that log equity
  is a random walk with drift (the discretely sampled GBM is exact, not an Euler approximation).
* ``"garch"`` — a GARCH(1,1) (Bollerslev 1986) with constant mean fitted by maximum likelihood with the ``arch``
  package (normal or standardised Student-t innovations), simulated forward from the last fitted conditional
  variance: ``r_t = mu + e_t``, ``e_t = sigma_t z_t``, ``sigma_t^2 = omega + alpha e_{t-1}^2 + beta sigma_{t-1}^2``.
  Keeps volatility clustering, which lengthens drawdowns.

Equity paths start at 1 and compound simple returns, ``E_t = prod_{s<=t} (1 + r_s)``; a return at or below -100%
ruins the path (equity 0 from then on). Maximum drawdowns follow :mod:`arena_lib.analytics.metrics`: negative
fractions in ``[-1, 0]``, the running peak including the start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from arena_lib.research.bootstrap import BlockMethod, resample_indices, returns_array

__all__ = [
    "MonteCarloResult",
    "SimMethod",
    "drawdown_distribution",
    "path_max_drawdowns",
    "risk_of_ruin",
    "simulate_returns",
]

SimMethod = Literal["block_bootstrap", "gbm", "garch"]
GarchDist = Literal["normal", "t"]
Sampler = Callable[[int, np.random.Generator], np.ndarray]

_CHUNK_CELLS = 2_000_000
"""Simulated returns held in memory at once (16 MB of float64); long or many paths run in chunks."""

_MIN_GARCH_RETURNS = 100
"""Fewer returns than this cannot pin down four GARCH parameters."""


# ------------------------------------------------------------------------------------------------ paths


def _equity(returns: np.ndarray) -> np.ndarray:
    """(paths x steps) compounded equity from simple returns, start 1 excluded; returns <= -1 ruin the path."""
    return np.cumprod(1.0 + np.maximum(returns, -1.0), axis=1)


def path_max_drawdowns(equity_paths: ArrayLike) -> np.ndarray:
    """Maximum drawdown of each row of equity, ``min_t(E_t / max(E_0..E_t) - 1)``: negative fractions.

    The first column is the starting equity (it is part of the running peak).
    """
    eq = np.asarray(equity_paths, dtype=np.float64)
    if eq.ndim != 2 or eq.shape[1] < 1:
        raise ValueError(f"equity_paths must be 2-D (paths x steps), got shape {eq.shape}")
    peak = np.maximum.accumulate(eq, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / np.where(peak > 0, peak, 1.0) - 1.0, -1.0)
    return np.clip(dd.min(axis=1), -1.0, 0.0)


def risk_of_ruin(paths: ArrayLike, ruin_level: float = 0.5) -> float:
    """Share of equity paths that ever fall below ``ruin_level`` times their starting equity.

    `paths` is (paths x steps) equity; the first column is each path's starting equity. ``ruin_level=0.5`` asks
    how often the account ever lost half of its starting capital.
    """
    eq = np.asarray(paths, dtype=np.float64)
    if eq.ndim != 2 or eq.shape[1] < 1:
        raise ValueError(f"paths must be 2-D (paths x steps), got shape {eq.shape}")
    _check_level(ruin_level)
    start = eq[:, :1]
    if (start <= 0).any():
        raise ValueError("every path must start with positive equity (first column)")
    return float(np.mean((eq / start).min(axis=1) < ruin_level))


def _check_level(ruin_level: float) -> None:
    if not 0.0 < ruin_level <= 1.0:
        raise ValueError(f"ruin_level is a fraction of the starting equity in (0, 1], got {ruin_level}")


# ------------------------------------------------------------------------------------------------ generators


def _bootstrap_sampler(r: np.ndarray, horizon: int, block: int | None, block_method: BlockMethod) -> Sampler:
    def sample(rows: int, rng: np.random.Generator) -> np.ndarray:
        return r[resample_indices(len(r), horizon, rows, block, block_method, rng)]

    return sample


def _gbm_sampler(r: np.ndarray, horizon: int) -> tuple[Sampler, dict[str, float]]:
    if (r <= -1.0).any():
        raise ValueError("GBM needs returns above -100% (log returns are undefined at or below -1)")
    logs = np.log1p(r)
    mu, sigma = float(logs.mean()), float(logs.std(ddof=1))

    def sample(rows: int, rng: np.random.Generator) -> np.ndarray:
        return np.expm1(mu + sigma * rng.standard_normal((rows, horizon)))

    return sample, {"mu": mu, "sigma": sigma}


def _garch_sampler(r: np.ndarray, horizon: int, dist: GarchDist) -> tuple[Sampler, dict[str, float]]:
    from arch import arch_model  # imported here: arch is slow to import and only this method needs it

    if len(r) < _MIN_GARCH_RETURNS:
        raise ValueError(f"a GARCH(1,1) fit needs at least {_MIN_GARCH_RETURNS} returns, got {len(r)}")
    sd = float(r.std(ddof=1))
    if sd <= 1e-12:
        raise ValueError("the returns have no dispersion: there is no volatility to model with GARCH")
    if dist not in ("normal", "t"):
        raise ValueError(f"garch_dist must be 'normal' or 't', got {dist!r}")
    scale = 1.0 / sd  # fit on unit-variance data: arch's optimiser is tuned for values of order 1
    model = arch_model(r * scale, mean="Constant", vol="GARCH", p=1, q=1, dist=dist, rescale=False)
    fit = model.fit(disp="off")
    if fit.convergence_flag != 0:
        raise ValueError(f"the GARCH(1,1) fit did not converge (optimizer flag {fit.convergence_flag})")
    p = fit.params
    mu, omega, alpha, beta = float(p["mu"]), float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"])
    nu = float(p["nu"]) if dist == "t" else math.inf
    last_var = float(np.asarray(fit.conditional_volatility)[-1]) ** 2
    last_resid = float(np.asarray(fit.resid)[-1])
    first_var = omega + alpha * last_resid**2 + beta * last_var

    def sample(rows: int, rng: np.random.Generator) -> np.ndarray:
        if math.isinf(nu):
            z = rng.standard_normal((rows, horizon))
        else:  # arch's Student-t is standardised to unit variance
            z = rng.standard_t(nu, size=(rows, horizon)) * math.sqrt((nu - 2.0) / nu)
        out = np.empty((rows, horizon))
        var = np.full(rows, first_var)
        for t in range(horizon):
            eps = np.sqrt(var) * z[:, t]
            out[:, t] = eps
            var = omega + alpha * eps * eps + beta * var
        return (mu + out) / scale

    params = {
        "mu": mu / scale,
        "omega": omega / scale**2,
        "alpha": alpha,
        "beta": beta,
        "nu": nu,
        "persistence": alpha + beta,
        "last_sigma": math.sqrt(first_var) / scale,
    }
    return sample, params


def _sampler(
    r: np.ndarray,
    horizon: int,
    method: SimMethod,
    block: int | None,
    block_method: BlockMethod,
    garch_dist: GarchDist,
) -> tuple[Sampler, dict[str, float]]:
    if method == "block_bootstrap":
        return _bootstrap_sampler(r, horizon, block, block_method), {"block": float(block or 1)}
    if method == "gbm":
        return _gbm_sampler(r, horizon)
    if method == "garch":
        return _garch_sampler(r, horizon, garch_dist)
    raise ValueError(f"method must be 'block_bootstrap', 'gbm' or 'garch', got {method!r}")


def _check_sizes(n_paths: int, horizon: int) -> None:
    for name, value in (("n_paths", n_paths), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def simulate_returns(
    returns: ArrayLike,
    n_paths: int,
    horizon: int | None = None,
    method: SimMethod = "block_bootstrap",
    block: int | None = 24,
    seed: int | None = 0,
    block_method: BlockMethod = "stationary",
    garch_dist: GarchDist = "t",
) -> np.ndarray:
    """Simulated per-period simple returns, (n_paths x horizon), from one of the module's generators.

    `horizon` defaults to the length of `returns`. The same `seed` gives the same paths.
    """
    r = returns_array(returns)
    horizon = len(r) if horizon is None else horizon
    _check_sizes(n_paths, horizon)
    sample, _ = _sampler(r, horizon, method, block, block_method, garch_dist)
    return sample(n_paths, np.random.default_rng(seed))


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class MonteCarloResult:
    """Per-path outcomes of a Monte Carlo run.

    Attributes:
        method, horizon: the generator and the number of periods per path.
        max_drawdowns: maximum drawdown per path (negative fractions in ``[-1, 0]``).
        final_returns: ``E_T / E_0 - 1`` per path.
        min_equity: lowest equity per path relative to the start (``<= 1``, the start included).
        quantiles: ``{"max_drawdown": {q: value}, "final_return": {q: value}}``.
        params: the fitted generator's parameters (GBM ``mu``/``sigma`` of log returns; GARCH ``mu``, ``omega``,
            ``alpha``, ``beta``, ``nu``, ``persistence``, ``last_sigma`` in return units; bootstrap ``block``).
        paths: equity paths (n_paths x horizon + 1, starting at 1) when ``keep_paths=True``, else None.
    """

    method: str
    horizon: int
    max_drawdowns: np.ndarray
    final_returns: np.ndarray
    min_equity: np.ndarray
    quantiles: dict[str, dict[float, float]]
    params: dict[str, float] = field(default_factory=dict)
    paths: np.ndarray | None = None

    def risk_of_ruin(self, ruin_level: float = 0.5) -> float:
        """Share of paths whose equity ever fell below ``ruin_level`` times the starting equity."""
        _check_level(ruin_level)
        return float(np.mean(self.min_equity < ruin_level))

    def summary(self) -> dict[str, float]:
        """Scalar results, ready for MLflow or JSON (ruin at a 50% loss)."""
        out = {f"max_drawdown_q{q:g}": v for q, v in self.quantiles["max_drawdown"].items()}
        out.update({f"final_return_q{q:g}": v for q, v in self.quantiles["final_return"].items()})
        out["mean_max_drawdown"] = float(self.max_drawdowns.mean())
        out["risk_of_ruin_50"] = self.risk_of_ruin(0.5)
        return out


def drawdown_distribution(
    returns: ArrayLike,
    n_paths: int = 1000,
    horizon: int | None = None,
    method: SimMethod = "block_bootstrap",
    block: int | None = 24,
    seed: int | None = 0,
    *,
    block_method: BlockMethod = "stationary",
    garch_dist: GarchDist = "t",
    quantile_levels: Sequence[float] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99),
    keep_paths: bool = False,
) -> MonteCarloResult:
    """Distribution of maximum drawdown, final return and ruin over `n_paths` simulated equity paths.

    Args:
        returns: the strategy's per-period simple returns (e.g. ``simple_returns(result.equity)``).
        n_paths: number of simulated paths.
        horizon: periods per path; defaults to the length of `returns` (the backtest's own span).
        method: ``"block_bootstrap"``, ``"gbm"`` or ``"garch"`` (see the module docstring).
        block: mean block length of the bootstrap in periods (24 = a day of hourly bars); None or 1 = i.i.d.
        seed: the same seed gives the same result.
        block_method: ``"stationary"`` (geometric block lengths) or ``"circular"`` (fixed blocks).
        garch_dist: innovations of the GARCH model, ``"t"`` (standardised Student-t) or ``"normal"``.
        quantile_levels: levels reported in ``quantiles``.
        keep_paths: also return the equity paths (memory: n_paths x (horizon + 1) floats).

    Paths are simulated in chunks of about two million values, so long horizons do not exhaust memory.
    """
    r = returns_array(returns)
    horizon = len(r) if horizon is None else horizon
    _check_sizes(n_paths, horizon)
    levels = [float(q) for q in quantile_levels]
    if any(not 0.0 <= q <= 1.0 for q in levels):
        raise ValueError(f"quantile levels must lie in [0, 1], got {list(quantile_levels)}")
    sample, params = _sampler(r, horizon, method, block, block_method, garch_dist)
    rng = np.random.default_rng(seed)
    mdd, final, low, kept = [], [], [], []
    rows_per_chunk = max(1, _CHUNK_CELLS // horizon)
    done = 0
    while done < n_paths:
        rows = min(rows_per_chunk, n_paths - done)
        equity = np.concatenate((np.ones((rows, 1)), _equity(sample(rows, rng))), axis=1)
        mdd.append(path_max_drawdowns(equity))
        final.append(equity[:, -1] - 1.0)
        low.append(equity.min(axis=1))
        if keep_paths:
            kept.append(equity)
        done += rows
    max_drawdowns, final_returns = np.concatenate(mdd), np.concatenate(final)
    quantiles = {
        "max_drawdown": {q: float(v) for q, v in zip(levels, np.quantile(max_drawdowns, levels), strict=True)},
        "final_return": {q: float(v) for q, v in zip(levels, np.quantile(final_returns, levels), strict=True)},
    }
    return MonteCarloResult(
        method=method,
        horizon=int(horizon),
        max_drawdowns=max_drawdowns,
        final_returns=final_returns,
        min_equity=np.concatenate(low),
        quantiles=quantiles,
        params=params,
        paths=np.concatenate(kept) if keep_paths else None,
    )
