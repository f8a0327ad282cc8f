"""Sharpe confidence intervals: coverage of a known true Sharpe, agreement with Lo's analytic SE, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arena_lib.research.bootstrap import (
    analytic_sharpe_interval,
    bootstrap_sharpes,
    resample_indices,
    sharpe_confidence_interval,
    sharpe_standard_error,
)

MU, SIGMA = 0.0005, 0.01  # per period: true Sharpe 0.05
TRUE_SR = MU / SIGMA


def _iid(seed: int, n: int = 2000) -> np.ndarray:
    return np.random.default_rng(seed).normal(MU, SIGMA, n)


def test_interval_covers_the_true_sharpe_and_matches_lo_width() -> None:
    r = _iid(0)
    ppy = 8766.0
    low, point, high = sharpe_confidence_interval(r, periods_per_year=ppy, seed=0)
    true_annual = TRUE_SR * math.sqrt(ppy)
    assert low < true_annual < high
    assert low < point < high
    # Lo (2002): SE = sqrt((1 + SR^2/2) / n) per period; a 95% interval is about 2 * 1.96 SE wide.
    sr = point / math.sqrt(ppy)
    lo_width = 2 * stats.norm.ppf(0.975) * math.sqrt((1 + sr**2 / 2) / len(r)) * math.sqrt(ppy)
    assert high - low == pytest.approx(lo_width, rel=0.1)


def test_interval_coverage_is_close_to_nominal() -> None:
    # 200 independent samples of 250 returns: a 90% interval should cover the true Sharpe ~90% of the time
    # (binomial sd 2.1%).
    covered = 0
    for seed in range(200):
        low, _, high = sharpe_confidence_interval(_iid(seed, 250), alpha=0.1, n_boot=400, seed=seed, periods_per_year=1)
        covered += low < TRUE_SR < high
    assert 0.83 <= covered / 200 <= 0.96


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    r = _iid(1, 500)
    first = sharpe_confidence_interval(r, periods_per_year=1, seed=42, block=10)
    assert sharpe_confidence_interval(r, periods_per_year=1, seed=42, block=10) == first
    assert sharpe_confidence_interval(r, periods_per_year=1, seed=43, block=10) != first
    assert isinstance(first, tuple)
    assert first.point == first[1]


def test_block_bootstrap_widens_the_interval_for_autocorrelated_returns() -> None:
    # AR(1) returns with phi = 0.6: the variance of the mean is (1 + phi) / (1 - phi) = 4x the i.i.d. one, so an
    # i.i.d. bootstrap is far too narrow and a block bootstrap (blocks >> 1 / (1 - phi)) is about 2x wider.
    rng = np.random.default_rng(2)
    e = rng.normal(0, SIGMA, 3000)
    r = np.empty_like(e)
    r[0] = e[0]
    for t in range(1, len(e)):
        r[t] = 0.6 * r[t - 1] + e[t]
    r += MU
    iid = sharpe_confidence_interval(r, periods_per_year=1, n_boot=1000)
    for method in ("stationary", "circular"):
        blocked = sharpe_confidence_interval(r, periods_per_year=1, n_boot=1000, block=50, method=method)
        assert (blocked.high - blocked.low) > 1.5 * (iid.high - iid.low)


def test_annualisation_is_inferred_from_an_hourly_index() -> None:
    index = pd.date_range("2024-01-01", periods=600, freq="1h", tz="UTC")
    r = pd.Series(_iid(3, 600), index=index)
    hourly = sharpe_confidence_interval(r, n_boot=300)
    per_period = sharpe_confidence_interval(r.to_numpy(), n_boot=300, periods_per_year=1)
    np.testing.assert_allclose(hourly, np.array(per_period) * math.sqrt(8766.0), rtol=1e-9)
    with pytest.raises(ValueError, match="periods_per_year"):
        sharpe_confidence_interval(r.to_numpy())


def test_lo_and_mertens_standard_errors_by_hand() -> None:
    assert sharpe_standard_error(0.1, 100) == pytest.approx(math.sqrt((1 + 0.1**2 / 2) / 100))
    # Negative skew and fat tails widen the SE (Mertens): 1 - (-1)(0.1) + (6 - 1)/4 * 0.01.
    assert sharpe_standard_error(0.1, 100, skew=-1.0, kurtosis=6.0) == pytest.approx(math.sqrt(1.1125 / 100))
    with pytest.raises(ValueError, match="excess"):
        sharpe_standard_error(0.1, 100, kurtosis=0.0)


def test_analytic_interval_normal_case_by_hand() -> None:
    r = _iid(4, 1000)
    sr = r.mean() / r.std(ddof=1)
    half = stats.norm.ppf(0.975) * math.sqrt((1 + sr**2 / 2) / 1000)
    low, point, high = analytic_sharpe_interval(r, periods_per_year=1, normal=True)
    assert (low, point, high) == pytest.approx((sr - half, sr, sr + half))


def test_resample_indices_structure() -> None:
    n, size = 50, 400
    circ = resample_indices(n, size, 30, block=8, method="circular", rng=0)
    assert circ.shape == (30, size)
    # Within each block of 8, positions step by one (mod n).
    blocks = circ.reshape(30, size // 8, 8)
    assert (np.diff(blocks, axis=2) % n == 1).all()
    stat = resample_indices(n, size, 500, block=8, method="stationary", rng=0)
    breaks = (np.diff(stat, axis=1) % n) != 1  # a new block starts (or continues by chance at +1)
    assert breaks.mean() == pytest.approx(1 / 8 * (1 - 1 / n), rel=0.05)
    # Wrapping makes every position equally likely.
    counts = np.bincount(stat.ravel(), minlength=n) / stat.size
    np.testing.assert_allclose(counts, 1 / n, rtol=0.05)
    iid = resample_indices(n, 7, 3, rng=1)
    assert iid.shape == (3, 7)
    assert ((iid >= 0) & (iid < n)).all()
    with pytest.raises(ValueError, match="method"):
        resample_indices(n, size, 2, block=4, method="moving")  # type: ignore[arg-type]


def test_bootstrap_sharpes_are_centred_on_the_sample_sharpe() -> None:
    r = _iid(5, 1000)
    boots = bootstrap_sharpes(r, n_boot=2000, seed=0)
    sample_sr = r.mean() / r.std(ddof=1)
    assert boots.mean() == pytest.approx(sample_sr, abs=0.005)
    assert boots.std() == pytest.approx(math.sqrt((1 + sample_sr**2 / 2) / 1000), rel=0.1)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="NaN"):
        sharpe_confidence_interval([0.01, np.nan, 0.02, 0.0], periods_per_year=1)
    with pytest.raises(ValueError, match="alpha"):
        sharpe_confidence_interval(_iid(0, 20), alpha=1.5, periods_per_year=1)
    with pytest.raises(ValueError, match="at least 3"):
        sharpe_confidence_interval([0.01, 0.02], periods_per_year=1)
