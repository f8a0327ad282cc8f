"""Datasets and time splits: hand-computed labels, real-sample panels, no leakage across folds, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample
from arena_lib.features.pipeline import max_lookback
from arena_lib.features.registry import FEATURES
from arena_lib.research.dataset import DEFAULT_FEATURES, Dataset, make_dataset, time_splits
from arena_lib.research.splits import purged_kfold_min_length, walk_forward_min_length

HOUR = pd.Timedelta("1h")


def _bars(closes: list[float], start: str = "2024-03-01 00:00") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(closes), freq="1h", tz="UTC")
    c = np.asarray(closes, dtype=np.float64)
    return pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1.0}, index=index)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {s: load_sample(s, "1h", "2024-01-01", "2024-01-31") for s in ("BTC/USDT", "ETH/USDT")}


@pytest.fixture(scope="module")
def dataset(frames: dict[str, pd.DataFrame]) -> Dataset:
    return make_dataset(frames, horizon=2)


# ------------------------------------------------------------------------------------------------ labels


def test_labels_and_forward_returns_by_hand() -> None:
    # ret_1 needs one bar of history; horizon 2: the last two bars of each symbol have no label.
    a = _bars([100.0, 110.0, 99.0, 99.0, 120.0, 60.0])
    b = _bars([10.0, 10.0, 12.0, 9.0, 9.0], start="2024-03-01 01:00")  # starts an hour later
    cls = make_dataset({"B/USDT": b, "A/USDT": a}, ["ret_1", "hour_sin"], horizon=2)
    t = a.index
    expected_index = pd.MultiIndex.from_tuples(
        [(t[1], "A/USDT"), (t[2], "A/USDT"), (t[2], "B/USDT"), (t[3], "A/USDT"), (t[3], "B/USDT")],
        names=["timestamp", "symbol"],
    )
    assert cls.X.index.equals(expected_index), "sorted by time then symbol; warm-up and unlabeled rows dropped"
    expected_fwd = [99 / 110 - 1, 120 / 99 - 1, 9 / 10 - 1, 60 / 99 - 1, 9 / 12 - 1]
    np.testing.assert_allclose(cls.forward_return.to_numpy(), expected_fwd)
    assert cls.y.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(cls.X["ret_1"].to_numpy(), [0.1, 99 / 110 - 1, 0.0, 0.0, 0.2])
    np.testing.assert_allclose(cls.X["hour_sin"].to_numpy()[0], math.sin(2 * math.pi * 1 / 24))

    reg = make_dataset({"B/USDT": b, "A/USDT": a}, ["ret_1", "hour_sin"], horizon=2, task="regression")
    np.testing.assert_allclose(reg.y.to_numpy(), np.log1p(expected_fwd))
    assert reg.task == "regression"
    assert reg.horizon == 2


def test_columns_follow_the_callers_order_not_the_registrys() -> None:
    ds = make_dataset({"A/USDT": _bars([100.0 + i for i in range(30)])}, ["hour_cos", "ret_1"], horizon=1)
    assert list(ds.X.columns) == ["hour_cos", "ret_1"]
    assert ds.features == ("hour_cos", "ret_1")


def test_default_features_are_registered_cheap_and_context_free() -> None:
    assert 15 <= len(DEFAULT_FEATURES) <= 25
    for name in DEFAULT_FEATURES:
        spec = FEATURES[name]
        assert not spec.needs, f"{name} needs {spec.needs}"
        assert spec.group not in ("complexity", "regime"), name
    assert max_lookback(DEFAULT_FEATURES) <= 200
    registry_order = [n for n in FEATURES if n in DEFAULT_FEATURES]
    assert registry_order == list(DEFAULT_FEATURES), "compute_panel returns them in this very order"


# ------------------------------------------------------------------------------------------------ real sample


def test_sample_panel_drops_warmup_and_unlabeled_rows(frames: dict[str, pd.DataFrame], dataset: Dataset) -> None:
    warmup = max_lookback(DEFAULT_FEATURES)
    assert len(dataset) == sum(len(f) - warmup - 2 for f in frames.values())
    assert list(dataset.X.columns) == list(DEFAULT_FEATURES)
    assert set(dataset.X.dtypes) == {np.dtype(np.float64)}
    assert np.isfinite(dataset.X.to_numpy()).all()
    btc = frames["BTC/USDT"]
    assert dataset.times()[0] == btc.index[warmup]
    assert dataset.times()[-1] == btc.index[-3]
    assert dataset.X.index.is_monotonic_increasing
    assert dataset.symbols() == ("BTC/USDT", "ETH/USDT")
    # the label of a row is the symbol's own close `horizon` bars later
    t = dataset.times()[10]
    fwd = dataset.forward_return.loc[(t, "ETH/USDT")]
    eth = frames["ETH/USDT"]["close"]
    assert fwd == pytest.approx(eth.loc[t + 2 * HOUR] / eth.loc[t] - 1)
    assert dataset.y.loc[(t, "ETH/USDT")] == float(fwd > 0)


def test_without_warmup_drop_only_nan_rows_go(frames: dict[str, pd.DataFrame], dataset: Dataset) -> None:
    loose = make_dataset(frames, horizon=2, drop_warmup=False)
    assert len(loose) > len(dataset)
    assert np.isfinite(loose.X.to_numpy()).all()


def test_data_hash_is_stable_and_tracks_the_bars(frames: dict[str, pd.DataFrame], dataset: Dataset) -> None:
    again = make_dataset(dict(reversed(list(frames.items()))), horizon=5)
    assert again.data_hash == dataset.data_hash, "the same bars hash the same, whatever the order or horizon"
    changed = dict(frames)
    eth = frames["ETH/USDT"].copy()
    eth.iloc[-1, eth.columns.get_loc("close")] *= 1.001
    changed["ETH/USDT"] = eth
    assert make_dataset(changed, horizon=2).data_hash != dataset.data_hash


def test_subset_keeps_alignment(dataset: Dataset) -> None:
    rows = np.array([0, 5, 7])
    sub = dataset.subset(rows)
    assert sub.X.index.equals(dataset.X.index[rows])
    assert sub.y.tolist() == dataset.y.iloc[rows].tolist()
    assert sub.features == dataset.features
    assert sub.data_hash == dataset.data_hash


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"horizon": 0}, "horizon must be an integer >= 1"),
        ({"features": ["ret_1", "ret_1"]}, "duplicate feature names"),
        ({"features": []}, "at least one feature"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_dataset({"A/USDT": _bars([100.0] * 10)}, **kwargs)


def test_too_few_bars_for_warmup_names_it() -> None:
    with pytest.raises(ValueError, match="warm-up 175 \\+ horizon 1"):
        make_dataset({"A/USDT": _bars([100.0 + i for i in range(150)])})


# ------------------------------------------------------------------------------------------------ splits


def _time_sets(ds: Dataset, rows: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ds.X.index.get_level_values(0)[rows]).unique()


def test_walk_forward_never_trains_on_or_next_to_the_test_window(dataset: Dataset) -> None:
    splits = time_splits(dataset, "walk_forward", n_splits=4, embargo=1)
    assert len(splits) == 4
    times = dataset.times()
    tested = []
    for train, test in splits:
        train_t, test_t = _time_sets(dataset, train), _time_sets(dataset, test)
        assert train_t.max() < test_t.min()
        gap = times.get_loc(test_t.min()) - times.get_loc(train_t.max()) - 1
        assert gap == dataset.horizon + 1, "horizon + embargo bars between the last training and first test bar"
        assert train_t[0] == times[0], "expanding window"
        # every row of a timestamp falls on one side: symbols of one bar are never split
        rows_at_test_times = np.flatnonzero(dataset.X.index.get_level_values(0).isin(test_t))
        assert np.array_equal(rows_at_test_times, test)
        tested.append(test)
    assert _time_sets(dataset, splits[-1][1]).max() == times[-1], "the last test window ends at the last bar"
    all_tested = np.concatenate(tested)
    assert len(np.unique(all_tested)) == len(all_tested), "test windows do not overlap"


def test_rolling_walk_forward_uses_train_bars(dataset: Dataset) -> None:
    splits = time_splits(dataset, "walk_forward", n_splits=3, train_bars=100, expanding=False)
    for train, _ in splits:
        assert len(_time_sets(dataset, train)) == 100


def test_purged_kfold_drops_overlapping_and_embargoed_rows(dataset: Dataset) -> None:
    h, embargo = dataset.horizon, 3
    times = dataset.times()
    splits = time_splits(dataset, "purged_kfold", n_splits=4, embargo=embargo)
    assert sum(len(test) for _, test in splits) == len(dataset), "every row is tested once"
    for train, test in splits:
        test_pos = times.get_indexer(_time_sets(dataset, test))
        train_pos = times.get_indexer(_time_sets(dataset, train))
        lo, hi = test_pos.min(), test_pos.max()
        before = train_pos[train_pos < lo]
        after = train_pos[train_pos > hi]
        assert len(before) + len(after) == len(train_pos)
        assert (before + h < lo).all(), "no training label reaches into the test fold"
        assert (after > hi + h + embargo).all(), "purge and embargo after the test fold"
        purged = set(range(max(0, lo - h), lo)) | set(range(hi + 1, min(len(times), hi + h + embargo + 1)))
        assert purged, "this fold has rows to purge"
        assert not purged & set(train_pos.tolist())


def test_too_short_dataset_names_the_minimum_bars() -> None:
    ds = make_dataset({"A/USDT": _bars([100.0 + i for i in range(12)])}, ["ret_1"], horizon=2)
    n = len(ds.times())  # 12 bars - 1 warm-up - 2 unlabeled = 9
    assert n == 9
    need = walk_forward_min_length(1, 1, gap=2 + 1, n_folds=6)
    assert need == 10
    with pytest.raises(ValueError, match=f"has {n} bars .*need at least {need}"):
        time_splits(ds, "walk_forward", n_splits=6, embargo=1)
    need_kfold = purged_kfold_min_length(5, 2, 4)
    assert need_kfold == 11
    with pytest.raises(ValueError, match=f"has {n} bars.*need at least {need_kfold}"):
        time_splits(ds, "purged_kfold", n_splits=5, embargo=4)
    assert len(time_splits(ds, "purged_kfold", n_splits=5, embargo=2)) == 5, "9 bars are enough with embargo 2"
    with pytest.raises(ValueError, match="need at least 12"):
        time_splits(ds, "walk_forward", n_splits=2, train_bars=8)


def test_split_arguments_are_checked(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="scheme must be one of"):
        time_splits(dataset, "kfold")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="embargo must be an integer >= 0"):
        time_splits(dataset, embargo=-1)
    with pytest.raises(ValueError, match="n_splits must be an integer >= 1"):
        time_splits(dataset, n_splits=0)
