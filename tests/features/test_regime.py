"""Regime features: the volatility and trend labels, and the HMM's filtered high-variance probability."""

from __future__ import annotations

import numpy as np

from arena_lib.features.pipeline import compute_features
from tests.features.conftest import bars

RNG = np.random.default_rng(20240101)


def test_regimes_are_labels_and_the_hmm_finds_a_volatile_stretch() -> None:
    """Calm, a volatile burst, calm again, then a second burst: once a refit has seen the first burst, the filtered
    high-variance probability is low in the calm stretch and high in the second burst."""
    segments = [(1100, 0.002), (200, 0.02), (600, 0.002), (200, 0.02)]
    returns = np.concatenate([RNG.standard_normal(size) * sigma for size, sigma in segments])
    frame = bars(100 * np.exp(np.cumsum(returns)))
    out = compute_features(frame, ["hmm_high_vol_prob", "vol_regime_3", "vol_pct_rank_720", "trend_regime"])
    prob = out["hmm_high_vol_prob"]
    assert prob.iloc[:1008].isna().all()  # the first fit needs 1008 past returns
    assert prob.iloc[1500:1900].mean() < 0.1
    assert prob.iloc[-150:].mean() > 0.9
    assert set(out["vol_regime_3"].dropna().unique()) <= {0.0, 1.0, 2.0}
    assert out["vol_regime_3"].iloc[-1] == 2.0
    assert out["vol_pct_rank_720"].dropna().between(0, 1).all()
    assert set(out["trend_regime"].dropna().unique()) <= {-1.0, 0.0, 1.0}
