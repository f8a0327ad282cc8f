"""The sparse schedule: evaluation bars come from timestamps, and values only ever carry forward."""

from __future__ import annotations

import numpy as np
import pandas as pd

from arena_lib.features.registry import FeatureInput
from arena_lib.features.schedule import carry_forward, evaluation_rows, sparse_lookback
from tests.features.conftest import bars


def test_evaluation_rows_depend_on_close_times_not_on_where_the_history_starts() -> None:
    full = FeatureInput(bars(np.full(60, 100.0), start="2024-01-01 00:00"))
    late = FeatureInput(bars(np.full(50, 100.0), start="2024-01-01 10:00"))
    every_4h = full.index[evaluation_rows(full, 4)]
    assert ((every_4h.hour + 1) % 4 == 0).all()  # bars closing at 04:00, 08:00, ...
    assert set(late.index[evaluation_rows(late, 4)]) == {t for t in every_4h if t >= late.index[0]}
    assert list(evaluation_rows(full, 1)) == list(range(60))


def test_carry_forward_never_reads_a_later_evaluation() -> None:
    out = carry_forward(7, np.array([2, 5]), np.array([10.0, 20.0]))
    np.testing.assert_array_equal(out, [np.nan, np.nan, 10.0, 10.0, 10.0, 20.0, 20.0])


def test_sparse_lookback_covers_the_window_and_the_staleness() -> None:
    assert sparse_lookback(128, 1, False) == 127
    assert sparse_lookback(336, 24, True) == 359
    assert pd.Timedelta(hours=sparse_lookback(128, 4, True)) == pd.Timedelta(hours=131)
