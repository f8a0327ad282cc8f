"""PBO by CSCV, PSR, DSR and walk-forward summaries, each against a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arena_lib.analytics.metrics import sharpe
from arena_lib.research.bootstrap import equity_from_returns, sharpe_by_column, sharpe_ratio
from arena_lib.research.overfitting import (
    EULER_GAMMA,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    trial_sharpe_variance,
    walk_forward_oos,
)

LN3 = math.log(3.0)


def _mean(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=0)


# ------------------------------------------------------------------------------------------------ Sharpe helper


def test_column_sharpe_is_the_engine_sharpe_per_period() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.normal(0.001, 0.02, size=(300, 4))
    engine = [sharpe(equity_from_returns(matrix[:, j]), periods_per_year=1.0) for j in range(4)]
    np.testing.assert_allclose(sharpe_by_column(matrix), engine, rtol=1e-9)
    assert sharpe_ratio(matrix[:, 0], 8766.0) == pytest.approx(engine[0] * math.sqrt(8766.0), rel=1e-12)


# ------------------------------------------------------------------------------------------------ PBO


def test_pbo_hand_computed_four_blocks_three_strategies() -> None:
    # One row per block, metric = mean, so in-sample/out-of-sample values are pair sums / 2 (compared as sums).
    #         A  B  C
    m = np.array(
        [
            [5, 1, 0],  # block 0
            [5, 1, 5],  # block 1
            [2, 3, 6],  # block 2
            [6, 3, 1],  # block 3
        ],
        dtype=float,
    )
    # IS {0,1}: A10 B2 C5 -> A; OOS {2,3}: A8 B6 C7 -> A ranks 3 of 3 -> omega 3/4 -> ln 3
    # IS {0,2}: A7 B4 C6  -> A; OOS {1,3}: A11 B4 C6 -> rank 3 -> ln 3
    # IS {0,3}: A11 B4 C1 -> A; OOS {1,2}: A7 B4 C11 -> rank 2 -> omega 1/2 -> 0
    # IS {1,2}: A7 B4 C11 -> C; OOS {0,3}: A11 B4 C1 -> rank 1 -> omega 1/4 -> -ln 3
    # IS {1,3}: A11 B4 C6 -> A; OOS {0,2}: A7 B4 C6 -> rank 3 -> ln 3
    # IS {2,3}: A8 B6 C7  -> A; OOS {0,1}: A10 B2 C5 -> rank 3 -> ln 3
    result = pbo_cscv(m, n_splits=4, metric=_mean)
    np.testing.assert_allclose(result.logits, [LN3, LN3, 0.0, -LN3, LN3, LN3], atol=1e-12)
    np.testing.assert_allclose(result.oos_rank, [0.75, 0.75, 0.5, 0.25, 0.75, 0.75])
    assert result.selected.tolist() == [0, 0, 0, 2, 0, 0]
    assert result.pbo == pytest.approx(2 / 6)
    assert result.n_combinations == 6
    np.testing.assert_allclose(result.is_metric, [5.0, 3.5, 5.5, 5.5, 5.5, 4.0])
    np.testing.assert_allclose(result.oos_metric, [4.0, 5.5, 3.5, 0.5, 3.5, 5.0])
    slope, intercept = np.polyfit(result.is_metric, result.oos_metric, 1)
    assert result.degradation_slope == pytest.approx(slope)
    assert result.degradation_intercept == pytest.approx(intercept)


def test_pbo_out_of_sample_ties_take_the_average_rank() -> None:
    # Block 0 -> A best in-sample; block 1 OOS: A1 B2 C3 -> A rank 1 -> omega 1/4 -> ln(1/3).
    # Block 1 -> C best in-sample; block 0 OOS: A3 B2 C2 -> B and C tie for ranks 1-2 -> 1.5 -> omega 0.375.
    m = np.array([[3.0, 2.0, 2.0], [1.0, 2.0, 3.0]])
    result = pbo_cscv(m, n_splits=2, metric=_mean)
    np.testing.assert_allclose(result.logits, [math.log(1 / 3), math.log(0.375 / 0.625)])
    assert result.pbo == 1.0


def test_pbo_hand_computed_sharpe_two_blocks_two_strategies() -> None:
    # Two rows per block; a two-point sample (a, b) has std |a - b| / sqrt(2).
    m = np.array(
        [
            [0.01, 0.00],  # block 0: A mean .02, sd .02/sqrt2 -> SR sqrt2; B mean .005, sd .01/sqrt2 -> SR 1/sqrt2
            [0.03, 0.01],
            [0.00, 0.02],  # block 1: A mean .01, sd .02/sqrt2 -> SR 1/sqrt2; B mean .04, sd .04/sqrt2 -> SR sqrt2
            [0.02, 0.06],
        ]
    )
    # Each half's winner is the other half's loser: omega = 1/3, logit ln(1/2), PBO 1.
    result = pbo_cscv(m, n_splits=2)
    np.testing.assert_allclose(result.is_metric, [math.sqrt(2), math.sqrt(2)])
    np.testing.assert_allclose(result.oos_metric, [1 / math.sqrt(2), 1 / math.sqrt(2)])
    np.testing.assert_allclose(result.logits, [math.log(0.5), math.log(0.5)])
    assert result.pbo == 1.0


def test_dominant_strategy_has_pbo_zero() -> None:
    rng = np.random.default_rng(0)
    n = 8
    m = rng.normal(0.0, 0.01, size=(320, n))
    m[:, 3] += 0.05  # Sharpe about 5 per period in every block: best in- and out-of-sample everywhere
    result = pbo_cscv(pd.DataFrame(m, columns=[f"s{j}" for j in range(n)]), n_splits=8)
    assert result.pbo == 0.0
    assert (result.selected == 3).all()
    np.testing.assert_allclose(result.logits, math.log(n))  # rank N of N: omega N/(N+1)
    assert result.strategies[3] == "s3"
    assert result.prob_oos_loss == 0.0


def test_pure_noise_has_pbo_near_one_half() -> None:
    # Selecting the best of 10 noise strategies: the winner is at or below the OOS median half the time. One
    # matrix gives a noisy PBO (combinations share data), so average 50 fixed seeds (sd of the mean ~0.03).
    pbos = [pbo_cscv(np.random.default_rng(seed).normal(0, 0.01, (400, 10)), n_splits=8).pbo for seed in range(50)]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.1)


def test_default_sixteen_splits_and_fast_path_matches_generic_metric() -> None:
    m = np.random.default_rng(1).normal(0.0002, 0.01, (480, 6))
    fast = pbo_cscv(m)
    assert fast.n_combinations == math.comb(16, 8) == 12870
    generic = pbo_cscv(m, n_splits=8, metric=sharpe_by_column)
    quick = pbo_cscv(m, n_splits=8)
    np.testing.assert_allclose(quick.is_metric, generic.is_metric, rtol=1e-9)
    np.testing.assert_allclose(quick.logits, generic.logits)
    assert quick.pbo == generic.pbo


def test_pbo_rejects_bad_input() -> None:
    m = np.zeros((40, 3)) + np.random.default_rng(2).normal(size=(40, 3))
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(m, n_splits=5)
    with pytest.raises(ValueError, match="at least 2 columns"):
        pbo_cscv(m[:, :1], n_splits=4)
    with pytest.raises(ValueError, match="blocks"):
        pbo_cscv(m[:10], n_splits=8)
    bad = m.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pbo_cscv(bad, n_splits=4)


# ------------------------------------------------------------------------------------------------ PSR / DSR


def test_psr_matches_an_independent_hand_computation() -> None:
    # Independent computation (not from the paper): SR 0.1 per period, 100 returns, skew -1, raw kurtosis 5.
    sr, n, skew, kurt = 0.1, 100, -1.0, 5.0
    z = (sr - 0.0) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt) == pytest.approx(stats.norm.cdf(z), abs=1e-12)
    assert probabilistic_sharpe_ratio(0.05, 0.05, 50) == pytest.approx(0.5)


def test_psr_rejects_excess_kurtosis() -> None:
    with pytest.raises(ValueError, match="excess"):
        probabilistic_sharpe_ratio(0.1, 0.0, 100, skew=0.0, kurtosis=0.0)  # excess kurtosis of a normal


def test_dsr_reproduces_the_paper_numerical_example() -> None:
    # Bailey & López de Prado (2014), numerical example: N = 100 trials, variance of the annualised Sharpe
    # across trials 1/2, daily returns over 5 years (T = 1250, 250 days a year), best annualised SR 2.5,
    # skew -3, kurtosis 10. The paper reports SR0 ~= 0.1132 (per day) and DSR ~= 0.9004 (values recalled to
    # four decimals; the independent scipy computation below pins them exactly).
    v = 0.5 / 250  # annual variance -> per-day variance of SR estimates
    sr = 2.5 / math.sqrt(250)
    sr0 = expected_max_sharpe(100, v)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(sr, 100, v, n=1250, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    z_max = (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / 100) + EULER_GAMMA * stats.norm.ppf(1 - 1 / (100 * math.e))
    assert sr0 == pytest.approx(math.sqrt(v) * z_max, rel=1e-12)
    z = (sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2)
    assert dsr == pytest.approx(stats.norm.cdf(z), abs=1e-12)


def test_expected_max_sharpe_matches_simulated_maximum_of_normals() -> None:
    # The extreme-value formula approximates E[max of N standard normals] (Bailey & López de Prado 2014, Appendix).
    draws = np.random.default_rng(3).standard_normal((20_000, 100)).max(axis=1)
    assert expected_max_sharpe(100, 1.0) == pytest.approx(draws.mean(), rel=0.02)
    assert expected_max_sharpe(1, 1.0) == 0.0
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))


def test_dsr_from_returns_uses_per_period_sharpe_and_raw_kurtosis() -> None:
    rng = np.random.default_rng(4)
    r = rng.standard_t(5, size=2000) * 0.01 + 0.001
    sr = float(sharpe_by_column(r)[0])
    kurt = float(stats.kurtosis(r, fisher=False))
    assert kurt > 3.0  # raw kurtosis of fat tails: a normal would be 3
    expected = deflated_sharpe_ratio(sr, 20, 0.001, n=2000, skew=float(stats.skew(r)), kurtosis=kurt)
    assert deflated_sharpe_ratio(r, 20, 0.001) == pytest.approx(expected, abs=1e-12)
    # Passing the annualised Sharpe instead would overstate it: the per-period convention matters.
    annual = sr * math.sqrt(365.25)
    assert deflated_sharpe_ratio(annual, 20, 0.001, n=2000) > deflated_sharpe_ratio(sr, 20, 0.001, n=2000)


def test_dsr_argument_errors() -> None:
    with pytest.raises(ValueError, match="pass n"):
        deflated_sharpe_ratio(0.1, 10, 0.01)
    with pytest.raises(ValueError, match="contradicts"):
        deflated_sharpe_ratio(np.linspace(-0.01, 0.02, 50), 10, 0.01, n=49)
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 0.01)


def test_trial_sharpe_variance_is_the_variance_of_the_trials_sharpes() -> None:
    m = np.random.default_rng(5).normal(0.0005, 0.01, (250, 12))
    per_trial = [sharpe_ratio(m[:, j]) for j in range(12)]
    assert trial_sharpe_variance(m) == pytest.approx(np.var(per_trial, ddof=1), rel=1e-9)


def test_min_track_record_length_makes_psr_hit_the_confidence_level() -> None:
    sr, skew, kurt = 0.08, -0.5, 6.0
    n = min_track_record_length(sr, 0.0, skew, kurt, alpha=0.05)
    term = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    assert n == pytest.approx(1 + term * (stats.norm.ppf(0.95) / sr) ** 2)
    # At that length, PSR(0) = 95% exactly (PSR uses sqrt(n - 1)).
    z = sr * math.sqrt(n - 1) / math.sqrt(term)
    assert stats.norm.cdf(z) == pytest.approx(0.95)
    assert min_track_record_length(0.0, 0.1) == math.inf


# ------------------------------------------------------------------------------------------------ walk-forward


def test_walk_forward_oos_summary_by_hand() -> None:
    oos = {"2024Q1": [0.01, -0.005, 0.02], "2024Q2": [-0.01, 0.0, 0.005]}
    ins = [[0.02, 0.01, 0.015, -0.005], [0.01, 0.012, -0.002, 0.02]]
    summary = walk_forward_oos(oos, ins, periods_per_year=1.0)
    folds = summary.folds
    assert list(folds.index) == ["2024Q1", "2024Q2"]
    assert folds.loc["2024Q1", "oos_total_return"] == pytest.approx(1.01 * 0.995 * 1.02 - 1)
    assert folds.loc["2024Q2", "oos_total_return"] == pytest.approx(0.99 * 1.0 * 1.005 - 1)
    assert summary.share_profitable == 0.5
    all_oos = np.array([0.01, -0.005, 0.02, -0.01, 0.0, 0.005])
    assert summary.oos_sharpe == pytest.approx(all_oos.mean() / all_oos.std(ddof=1))
    q1 = np.array(oos["2024Q1"])
    assert folds.loc["2024Q1", "oos_sharpe"] == pytest.approx(q1.mean() / q1.std(ddof=1))
    is_sr = [np.mean(f) / np.std(f, ddof=1) for f in ins]
    assert folds["is_sharpe"].tolist() == pytest.approx(is_sr)
    assert summary.mean_degradation == pytest.approx(np.mean(folds["oos_sharpe"] - np.array(is_sr)))
    assert summary.efficiency == pytest.approx(summary.mean_oos_sharpe / np.mean(is_sr))
    assert folds.loc["2024Q1", "oos_max_drawdown"] == pytest.approx(-0.005)


def test_walk_forward_oos_infers_annualisation_from_the_index() -> None:
    index = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    r = pd.Series(np.random.default_rng(6).normal(0.0, 0.01, 48), index=index)
    summary = walk_forward_oos([r.iloc[:24], r.iloc[24:]])
    assert summary.oos_sharpe == pytest.approx(sharpe_ratio(r.to_numpy()) * math.sqrt(8766.0))
    assert math.isnan(summary.mean_is_sharpe)
    with pytest.raises(ValueError, match="periods_per_year"):
        walk_forward_oos([[0.01, 0.02]])
