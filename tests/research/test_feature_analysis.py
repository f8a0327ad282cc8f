"""Feature ICs: hand-computed ranks, per-period stability, redundancy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_lib.research.feature_analysis import feature_ic_table, redundant_pairs


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    index = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC", name="timestamp")
    rng = np.random.default_rng(1)
    forward = pd.Series(rng.normal(size=120), index=index)
    X = pd.DataFrame(
        {
            "signal": forward * 2 + 1,  # a monotone transform of the forward return: IC exactly 1
            "inverse": -(forward.to_numpy() ** 3),  # monotone decreasing: IC exactly -1
            "noise": rng.normal(size=120),
        },
        index=index,
    )
    return X, forward


def test_ic_is_the_rank_correlation_and_periods_are_calendar_months() -> None:
    X, forward = _frame()
    table = feature_ic_table(X, forward)
    assert table.loc["signal", "ic"] == pytest.approx(1.0)
    assert table.loc["inverse", "ic"] == pytest.approx(-1.0)
    assert table.loc["signal", "periods"] == 4  # Jan..Apr 2024 (120 days from Jan 1 end on Apr 29)
    assert table.loc["signal", "same_sign_share"] == 1.0
    assert abs(table.loc["noise", "ic"]) < 0.3
    assert table.index[-1] == "noise"  # sorted by |IC|
    expected = X["noise"].rank().corr(forward.rank())
    assert table.loc["noise", "ic"] == pytest.approx(expected)


def test_redundant_pairs_and_index_mismatch() -> None:
    X, forward = _frame()
    pairs = redundant_pairs(X, threshold=0.95)
    assert pairs[["feature_a", "feature_b"]].values.tolist() == [["signal", "inverse"]]
    with pytest.raises(ValueError, match="share one index"):
        feature_ic_table(X, forward.iloc[1:])
