"""VaR, CVaR and correlation of `arena_lib.monitor.risk` against hand-worked examples and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from arena_lib.monitor import risk

# Twenty returns, sorted here for the hand computation: the 5% tail of twenty points lies between the first two.
TWENTY = np.array([-0.05, -0.03, -0.02, -0.015, -0.01, -0.005, 0.0, 0.0, 0.002, 0.004,
                   0.005, 0.006, 0.008, 0.01, 0.012, 0.015, 0.02, 0.025, 0.03, 0.04])  # fmt: skip


def test_historical_var_cvar_match_a_hand_computation() -> None:
    # numpy's linear quantile at p = 0.05 over n = 20: position p * (n - 1) = 0.95 between r(0) = -0.05 and
    # r(1) = -0.03, so Q = -0.05 + 0.95 * 0.02 = -0.031, VaR = 0.031; the tail {r <= -0.031} is {-0.05}.
    var, cvar = risk.historical(np.random.default_rng(0).permutation(TWENTY), 0.95)
    assert var == pytest.approx(0.031, abs=1e-15)
    assert cvar == pytest.approx(0.05, abs=1e-15)
    # At 90%: position 1.9 between r(1) = -0.03 and r(2) = -0.02: Q = -0.021; the tail is {-0.05, -0.03}.
    var, cvar = risk.historical(TWENTY, 0.90)
    assert var == pytest.approx(0.021, abs=1e-15)
    assert cvar == pytest.approx(0.04, abs=1e-15)


def test_parametric_var_cvar_match_scipy_normal() -> None:
    mu, sd = TWENTY.mean(), TWENTY.std(ddof=1)
    for level in (0.95, 0.99):
        var, cvar = risk.parametric(TWENTY, level)
        assert var == pytest.approx(-stats.norm.ppf(1 - level, loc=mu, scale=sd), rel=1e-12)
        # Expected shortfall of a normal: -(mu - sd * pdf(z) / (1 - level)), z the level quantile.
        z = stats.norm.ppf(level)
        assert cvar == pytest.approx(-(mu - sd * stats.norm.pdf(z) / (1 - level)), rel=1e-12)
        # ... which is the mean loss beyond VaR, by integration.
        tail_mean = stats.norm.expect(lambda x: x, loc=mu, scale=sd, ub=-var, conditional=True)
        assert cvar == pytest.approx(-tail_mean, rel=1e-6)


def test_var_cvar_frame_has_every_agent_level_and_method() -> None:
    rng = np.random.default_rng(7)
    returns = pd.DataFrame({"a": rng.normal(0, 0.01, 500), "b": rng.normal(0.001, 0.02, 500)})
    out = risk.var_cvar(returns)
    assert list(out.columns) == risk.VAR_COLUMNS
    assert len(out) == 2 * 2 * 2
    assert set(out["method"]) == set(risk.METHODS)
    assert (out["observations"] == 500).all()
    # CVaR is the mean beyond VaR, so never smaller; a wider distribution has the larger risk.
    assert (out["cvar"] >= out["var"]).all()
    by = out.set_index(["agent", "level", "method"])
    assert by.loc[("b", 0.99, "historical"), "var"] > by.loc[("a", 0.99, "historical"), "var"]
    assert by.loc[("a", 0.99, "parametric"), "var"] > by.loc[("a", 0.95, "parametric"), "var"]
    # 500 normal draws: the historical and parametric 95% VaR agree to within sampling error.
    assert by.loc[("a", 0.95, "historical"), "var"] == pytest.approx(by.loc[("a", 0.95, "parametric"), "var"], rel=0.2)


def test_too_few_observations_give_nan_and_say_how_many() -> None:
    short = np.r_[[0.01, -0.02, np.nan, 0.0], np.full(26, np.nan)]
    returns = pd.DataFrame({"short": short, "long": np.linspace(-0.02, 0.02, 30)})
    out = risk.var_cvar(returns, levels=(0.95,)).set_index(["agent", "method"])
    assert out.loc[("short", "historical"), "observations"] == 3
    assert math.isnan(out.loc[("short", "historical"), "var"])
    assert math.isnan(out.loc[("short", "parametric"), "cvar"])
    assert math.isfinite(out.loc[("long", "historical"), "var"])
    lowered = risk.var_cvar(returns, levels=(0.95,), min_observations=3).set_index(["agent", "method"])
    assert math.isfinite(lowered.loc[("short", "historical"), "var"])


def test_a_flat_series_has_no_risk_and_an_empty_frame_gives_no_rows() -> None:
    flat = risk.var_cvar(pd.DataFrame({"cash": np.zeros(50)}))
    assert (flat["var"] == 0).all()
    assert (flat["cvar"] == 0).all()
    empty = risk.var_cvar(pd.DataFrame())
    assert list(empty.columns) == risk.VAR_COLUMNS
    assert empty.empty


def test_bad_inputs_are_refused_with_a_reason() -> None:
    returns = pd.DataFrame({"a": np.zeros(30)})
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        risk.var_cvar(returns, levels=(95,))
    with pytest.raises(ValueError, match="non-numeric"):
        risk.var_cvar(pd.DataFrame({"a": ["x"] * 30}))
    with pytest.raises(TypeError, match="DataFrame"):
        risk.var_cvar([0.1, 0.2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        risk.correlation(returns, min_periods=1)


def test_correlation_needs_overlap_and_leaves_constant_series_out() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, 200)
    returns = pd.DataFrame(
        {"x": x, "same": 2 * x, "opposite": -x, "cash": np.zeros(200), "late": np.r_[np.full(190, np.nan), x[-10:]]}
    )
    corr = risk.correlation(returns)
    assert corr.loc["x", "same"] == pytest.approx(1.0)
    assert corr.loc["x", "opposite"] == pytest.approx(-1.0)
    assert math.isnan(corr.loc["x", "cash"])
    assert math.isnan(corr.loc["x", "late"])  # 10 common bars < 20
    assert risk.correlation(returns, min_periods=10).loc["x", "late"] == pytest.approx(1.0)
