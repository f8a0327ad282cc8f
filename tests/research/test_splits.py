"""Walk-forward and purged k-fold splits: hand-written expected folds, no leakage, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_lib.research.splits import (
    PurgedKFold,
    purged_kfold_min_length,
    walk_forward_min_length,
    walk_forward_splits,
)


def _as_lists(splits: object) -> list[tuple[list[int], list[int]]]:
    return [(train.tolist(), test.tolist()) for train, test in splits]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ walk-forward


def test_rolling_walk_forward_matches_hand_written_folds() -> None:
    # 10 bars, train 4, test 2, step defaults to test: test windows tile [4, 10).
    assert _as_lists(walk_forward_splits(10, train=4, test=2)) == [
        ([0, 1, 2, 3], [4, 5]),
        ([2, 3, 4, 5], [6, 7]),
        ([4, 5, 6, 7], [8, 9]),
    ]


def test_expanding_walk_forward_with_gap_matches_hand_written_folds() -> None:
    # 12 bars, train 4 growing, gap 1, test 3: the last window (10..12) would end past bar 11, so it is not made.
    assert _as_lists(walk_forward_splits(12, train=4, test=3, expanding=True, gap=1)) == [
        ([0, 1, 2, 3], [5, 6, 7]),
        ([0, 1, 2, 3, 4, 5, 6], [8, 9, 10]),
    ]


def test_walk_forward_custom_step_and_sized_input() -> None:
    frame = pd.DataFrame({"x": range(7)})
    assert _as_lists(walk_forward_splits(frame, train=3, test=2, step=1)) == [
        ([0, 1, 2], [3, 4]),
        ([1, 2, 3], [4, 5]),
        ([2, 3, 4], [5, 6]),
    ]


def test_walk_forward_test_always_after_train() -> None:
    for train, test in walk_forward_splits(500, train=100, test=37, step=23, gap=5):
        assert train.max() + 5 < test.min()
        assert len(test) == 37


def test_walk_forward_too_short_names_the_minimum() -> None:
    assert walk_forward_min_length(100, 20, gap=5) == 125
    assert walk_forward_min_length(100, 20, step=10, n_folds=4) == 150
    with pytest.raises(ValueError, match="has 124 bars; train 100 \\+ gap 5 \\+ test 20 need at least 125"):
        walk_forward_splits(124, train=100, test=20, gap=5)
    assert len(list(walk_forward_splits(125, train=100, test=20, gap=5))) == 1


@pytest.mark.parametrize(
    "bad", [{"train": 0, "test": 2}, {"train": 3, "test": 2, "step": 0}, {"train": 3, "test": 2.5}]
)
def test_walk_forward_rejects_bad_sizes(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        walk_forward_splits(100, **bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ purged k-fold


def test_purge_and_embargo_remove_exactly_the_hand_checked_indices() -> None:
    # 30 bars, 3 folds of 10. Labels look 2 bars ahead, so sample i's window is [i, i+2]; embargo 2 bars.
    cv = PurgedKFold(n_splits=3, embargo=2, label_horizon=2)
    folds = _as_lists(cv.split(30))
    # Fold 0 tests 0..9 (label windows reach bar 11): purge 10, 11 (windows start inside), embargo 12, 13.
    assert folds[0] == (list(range(14, 30)), list(range(10)))
    # Fold 1 tests 10..19: purge 8, 9 (windows [8,10], [9,11] reach into the test) and 20, 21; embargo 22, 23.
    assert folds[1] == ([*range(0, 8), *range(24, 30)], list(range(10, 20)))
    # Fold 2 tests 20..29: purge 18, 19; nothing follows, so no embargo.
    assert folds[2] == (list(range(0, 18)), list(range(20, 30)))


def test_fractional_embargo_is_floor_of_fraction_times_n() -> None:
    # 100 bars, 4 folds of 25, no look-ahead: embargo floor(0.05 * 100) = 5 bars after each test fold.
    folds = _as_lists(PurgedKFold(n_splits=4, embargo=0.05).split(100))
    assert folds[0] == (list(range(30, 100)), list(range(25)))
    assert folds[1] == ([*range(0, 25), *range(55, 100)], list(range(25, 50)))
    assert folds[3] == (list(range(0, 75)), list(range(75, 100)))


def test_no_purge_no_embargo_is_plain_kfold() -> None:
    n = 23
    for f, (train, test) in enumerate(PurgedKFold(n_splits=4).split(n)):
        expected_test = np.array_split(np.arange(n), 4)[f]
        assert test.tolist() == expected_test.tolist()
        assert sorted([*train.tolist(), *test.tolist()]) == list(range(n))


@pytest.mark.parametrize(("k", "horizon", "embargo"), [(5, 24, 0.01), (3, 0, 7), (6, 5, 0.0), (2, 10, 3)])
def test_train_never_overlaps_test_labels(k: int, horizon: int, embargo: float) -> None:
    n = 400
    for train, test in PurgedKFold(k, embargo=embargo, label_horizon=horizon).split(n):
        assert np.intersect1d(train, test).size == 0
        test_lo, test_hi = test.min(), test.max() + horizon
        # No training label window [i, i + h] touches the test fold's windows.
        assert not ((train <= test_hi) & (train + horizon >= test_lo)).any()
        # Everything kept after the test fold lies beyond its purge and embargo.
        after = train[train > test.max()]
        e = embargo if isinstance(embargo, int) else int(embargo * n)
        assert after.size == 0 or after.min() >= test.max() + horizon + e + 1


def test_datetime_index_with_bar_horizon_matches_positions() -> None:
    index = pd.date_range("2024-01-01", periods=60, freq="1h", tz="UTC")
    cv = PurgedKFold(n_splits=3, embargo=2, label_horizon=3)
    by_index = _as_lists(cv.split(index))
    by_frame = _as_lists(cv.split(pd.DataFrame({"x": 0.0}, index=index)))
    assert by_index == by_frame == _as_lists(cv.split(60))


def test_time_based_horizon_respects_gaps_in_the_data() -> None:
    # Hours 0..11 with hour 6 missing: 11 samples, folds of 4, 4, 3 positions. Labels look 2 hours ahead.
    index = pd.date_range("2024-01-01", periods=12, freq="1h", tz="UTC").delete(6)
    cv = PurgedKFold(n_splits=3, label_horizon=pd.Timedelta("2h"), embargo=pd.Timedelta("1h"))
    folds = _as_lists(cv.split(index))
    # Fold 0 tests hours 0-3 (labels reach 05:00): purge hours 4, 5; the embargo (05:00, 06:00] holds no bar.
    assert folds[0] == ([6, 7, 8, 9, 10], [0, 1, 2, 3])
    # Fold 1 tests hours 4, 5, 7, 8 (labels reach 10:00): purge hours 2, 3 and 9, 10; embargo drops hour 11.
    assert folds[1] == ([0, 1], [4, 5, 6, 7])
    # Fold 2 tests hours 9-11: purge hours 7, 8 (their windows reach 09:00 and 10:00).
    assert folds[2] == ([0, 1, 2, 3, 4, 5], [8, 9, 10])


def test_too_short_window_names_the_minimum_length() -> None:
    cv = PurgedKFold(n_splits=5, embargo=0.01, label_horizon=24)
    need = cv.min_length()
    assert need == purged_kfold_min_length(5, 24, 0.01)
    with pytest.raises(
        ValueError, match=f"training window has 40 bars; 5 folds with 24-bar purge and 1% embargo need at least {need}"
    ):
        cv.split(40)
    assert len(list(cv.split(120))) == 5


@pytest.mark.parametrize(
    ("k", "horizon", "embargo", "min_train"), [(5, 24, 0.01, 1), (3, 4, 2, 10), (2, 6, 0.1, 1), (7, 0, 0.03, 5)]
)
def test_min_length_is_the_exact_threshold(k: int, horizon: int, embargo: float, min_train: int) -> None:
    need = purged_kfold_min_length(k, horizon, embargo, min_train)
    cv = PurgedKFold(k, embargo=embargo, label_horizon=horizon, min_train=min_train)
    # Every length from the minimum on keeps at least min_train training samples in every fold ...
    for n in range(need, need + 60):
        assert min(len(train) for train, _ in cv._folds(np.arange(n))) >= min_train
    # ... and one bar fewer leaves some fold short.
    if need > k:
        assert min(len(train) for train, _ in cv._folds(np.arange(need - 1))) < min_train


def test_bad_purged_kfold_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_splits"):
        PurgedKFold(n_splits=1)
    with pytest.raises(ValueError, match="pass an int for a number of bars"):
        PurgedKFold(embargo=1.5)
    with pytest.raises(ValueError, match="embargo"):
        PurgedKFold(embargo=-1)
    with pytest.raises(ValueError, match="label_horizon"):
        PurgedKFold(label_horizon=-2)
    with pytest.raises(ValueError, match="needs a DatetimeIndex"):
        PurgedKFold(label_horizon=pd.Timedelta("1h")).split(100)
    shuffled = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")[::-1]
    with pytest.raises(ValueError, match="sorted"):
        PurgedKFold().split(shuffled)
    with pytest.raises(ValueError, match="no training data"):
        purged_kfold_min_length(4, 0, 0.8)
