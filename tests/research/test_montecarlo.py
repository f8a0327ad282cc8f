"""Monte Carlo drawdowns and ruin against closed-form answers for Brownian motion, and a known GARCH process."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arena_lib.analytics.metrics import max_drawdown
from arena_lib.research.montecarlo import (
    drawdown_distribution,
    path_max_drawdowns,
    risk_of_ruin,
    simulate_returns,
)

# Broadie, Glasserman & Kou (1997): a barrier watched only at discrete steps acts like the continuous barrier
# moved away by beta * sigma * sqrt(dt), beta = -zeta(1/2) / sqrt(2 pi).
BGK_BETA = 0.5826


def _zero_mean_log_returns(sigma: float, n: int = 1000) -> tuple[np.ndarray, float]:
    """Simple returns whose log returns alternate +-sigma: mean exactly 0; and their sample std (ddof=1)."""
    logs = np.tile([sigma, -sigma], n // 2)
    return np.expm1(logs), float(np.std(logs, ddof=1))


def test_hand_paths_ruin_and_drawdown() -> None:
    paths = np.array([[1.0, 0.8, 0.4, 0.9], [1.0, 1.2, 0.7, 1.5], [2.0, 1.5, 0.9, 1.0]])
    # Relative to their starts the minima are 0.4, 0.7, 0.45: two of three fall below half.
    assert risk_of_ruin(paths, 0.5) == pytest.approx(2 / 3)
    assert risk_of_ruin(paths, 0.4) == 0.0  # "below" is strict
    curve = np.array([1.0, 1.2, 0.9, 1.5, 1.2])
    assert path_max_drawdowns(curve[None, :])[0] == pytest.approx(0.9 / 1.2 - 1)
    assert path_max_drawdowns(curve[None, :])[0] == pytest.approx(max_drawdown(pd.Series(curve)))
    with pytest.raises(ValueError, match="ruin_level"):
        risk_of_ruin(paths, 1.5)


@pytest.mark.parametrize("method", ["gbm", "block_bootstrap"])
def test_zero_volatility_positive_drift_never_draws_down(method: str) -> None:
    r = np.full(500, 0.001)
    result = drawdown_distribution(r, n_paths=200, horizon=300, method=method, seed=0)
    assert (result.max_drawdowns == 0.0).all()
    assert result.risk_of_ruin(0.99) == 0.0
    np.testing.assert_allclose(result.final_returns, 1.001**300 - 1, rtol=1e-9)
    assert result.quantiles["max_drawdown"][0.5] == 0.0


def test_gbm_barrier_probability_matches_the_reflection_principle() -> None:
    # For driftless Brownian log equity with volatility sigma per step, P(min over T steps < -a) is
    # 2 Phi(-a / (sigma sqrt T)) (reflection principle), with the discrete-monitoring correction of BGK.
    returns, sigma = _zero_mean_log_returns(0.01)
    horizon = 250
    result = drawdown_distribution(returns, n_paths=40_000, horizon=horizon, method="gbm", seed=1)
    assert result.params["mu"] == pytest.approx(0.0, abs=1e-15)
    assert result.params["sigma"] == pytest.approx(sigma)
    for a in (0.1, 0.2, 0.3):
        expected = 2 * stats.norm.cdf(-(a + BGK_BETA * sigma) / (sigma * math.sqrt(horizon)))
        assert result.risk_of_ruin(math.exp(-a)) == pytest.approx(expected, abs=0.01)  # ~4 standard errors
    # The mean maximum drawdown of log equity for driftless BM is sqrt(pi/2) sigma sqrt(T) (Magdon-Ismail et al.
    # 2004); discrete monitoring misses the peak and the trough by about BGK_BETA * sigma each.
    log_mdd = -np.log1p(result.max_drawdowns)
    expected_mdd = math.sqrt(math.pi / 2) * sigma * math.sqrt(horizon) - 2 * BGK_BETA * sigma
    assert log_mdd.mean() == pytest.approx(expected_mdd, rel=0.015)


@pytest.mark.parametrize("block_method", ["stationary", "circular"])
def test_block_bootstrap_preserves_the_mean_return(block_method: str) -> None:
    r = np.random.default_rng(0).normal(0.001, 0.01, 1000)
    sims = simulate_returns(r, n_paths=2000, horizon=500, block=24, seed=3, block_method=block_method)
    assert sims.shape == (2000, 500)
    assert sims.mean() == pytest.approx(r.mean(), abs=2e-4)
    assert set(np.unique(sims)).issubset(set(r))  # resampled, not invented


@pytest.mark.parametrize("method", ["block_bootstrap", "gbm"])
def test_seed_makes_results_reproducible(method: str) -> None:
    r = np.random.default_rng(1).normal(0.0, 0.01, 400)
    a = drawdown_distribution(r, n_paths=300, method=method, seed=7)
    b = drawdown_distribution(r, n_paths=300, method=method, seed=7)
    c = drawdown_distribution(r, n_paths=300, method=method, seed=8)
    np.testing.assert_array_equal(a.max_drawdowns, b.max_drawdowns)
    np.testing.assert_array_equal(a.final_returns, b.final_returns)
    assert not np.array_equal(a.max_drawdowns, c.max_drawdowns)


def test_result_shapes_quantiles_and_kept_paths() -> None:
    r = np.random.default_rng(2).normal(0.0002, 0.01, 300)
    result = drawdown_distribution(r, n_paths=50, horizon=120, keep_paths=True, quantile_levels=(0.05, 0.5))
    assert result.paths is not None
    assert result.paths.shape == (50, 121)
    assert (result.paths[:, 0] == 1.0).all()
    np.testing.assert_allclose(result.max_drawdowns, path_max_drawdowns(result.paths))
    np.testing.assert_allclose(result.final_returns, result.paths[:, -1] - 1)
    assert result.risk_of_ruin(0.9) == risk_of_ruin(result.paths, 0.9)
    assert set(result.quantiles) == {"max_drawdown", "final_return"}
    assert result.quantiles["max_drawdown"][0.05] == pytest.approx(np.quantile(result.max_drawdowns, 0.05))
    assert set(result.summary()) >= {"max_drawdown_q0.05", "risk_of_ruin_50", "mean_max_drawdown"}


def test_total_loss_ruins_the_path() -> None:
    r = np.array([0.01, -1.2, 0.02, 0.01])  # a leveraged wipe-out
    result = drawdown_distribution(r, n_paths=200, horizon=40, block=None, seed=0)
    hit = result.min_equity == 0.0
    assert hit.any()
    assert (result.max_drawdowns[hit] == -1.0).all()
    assert (result.final_returns[hit] == -1.0).all()
    with pytest.raises(ValueError, match="-100%"):
        drawdown_distribution(r, n_paths=10, method="gbm")


def _garch_series(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    var = omega / (1 - alpha - beta)
    for t in range(n):
        out[t] = math.sqrt(var) * rng.standard_normal()
        var = omega + alpha * out[t] ** 2 + beta * var
    return out


def test_garch_recovers_a_known_process_and_clusters_volatility() -> None:
    omega, alpha, beta = 5e-6, 0.10, 0.85  # unconditional sd sqrt(omega / 0.05) = 1%
    r = _garch_series(3000, omega, alpha, beta, seed=0)
    result = drawdown_distribution(r, n_paths=500, horizon=250, method="garch", garch_dist="normal", seed=0)
    p = result.params
    assert p["alpha"] == pytest.approx(alpha, abs=0.04)
    assert p["beta"] == pytest.approx(beta, abs=0.06)
    sims = simulate_returns(r, n_paths=1000, horizon=1500, method="garch", garch_dist="normal", seed=1)
    long_run_sd = math.sqrt(p["omega"] / (1 - p["persistence"]))
    assert sims[:, 500:].std() == pytest.approx(long_run_sd, rel=0.05)

    def sq_autocorr(x: np.ndarray) -> float:
        s = x**2 - (x**2).mean(axis=1, keepdims=True)
        return float((s[:, 1:] * s[:, :-1]).sum() / (s * s).sum())

    # Lag-1 autocorrelation of squared GARCH(1,1) returns (Bollerslev 1988), finite when 3a^2 + 2ab + b^2 < 1:
    # rho_1 = a (1 - a b - b^2) / (1 - 2 a b - b^2). Volatility clustering survives the simulation; GBM has none.
    a, b = p["alpha"], p["beta"]
    assert 3 * a**2 + 2 * a * b + b**2 < 1
    rho_1 = a * (1 - a * b - b**2) / (1 - 2 * a * b - b**2)
    assert sq_autocorr(sims) == pytest.approx(rho_1, abs=0.04)
    gbm = simulate_returns(r, n_paths=1000, horizon=1500, method="gbm", seed=1)
    assert abs(sq_autocorr(gbm)) < 0.01
    assert result.quantiles["max_drawdown"][0.5] < 0


def test_bad_arguments_raise() -> None:
    r = np.random.default_rng(3).normal(0, 0.01, 50)
    with pytest.raises(ValueError, match="at least 100"):
        drawdown_distribution(r, n_paths=10, method="garch")
    with pytest.raises(ValueError, match="method"):
        drawdown_distribution(r, n_paths=10, method="heston")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_paths"):
        drawdown_distribution(r, n_paths=0)
    with pytest.raises(ValueError, match="no dispersion"):
        drawdown_distribution(np.full(200, 0.001), n_paths=10, method="garch")
