"""resample_ohlcv: real hourly bars roll up to the shipped daily bars; closed buckets only; no look-ahead."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena_lib.data import (
    DataError,
    available_symbols,
    check_ohlcv,
    load_sample,
    resample_ohlcv,
    timeframe_to_timedelta,
)
from arena_lib.data.resample import infer_timeframe, ns_to_timeframe, to_utc_timestamp


@pytest.mark.parametrize("symbol", available_symbols("1h"))
def test_daily_from_real_hourly_equals_shipped_daily_2024(symbol: str) -> None:
    hourly = load_sample(symbol, "1h", "2024-01-01", "2024-12-31T23:00")
    assert check_ohlcv(hourly, "1h").gaps == []  # 2024 is gap-free
    daily = load_sample(symbol, "1d", "2024-01-01", "2024-12-31")
    rolled = resample_ohlcv(hourly, "1d")
    assert len(rolled) == 366
    pdt.assert_frame_equal(rolled[["open", "high", "low", "close"]], daily[["open", "high", "low", "close"]])
    pdt.assert_series_equal(rolled["volume"], daily["volume"], rtol=1e-9)


def test_four_hour_matches_pandas_epoch_aligned_resample(btc_1h: pd.DataFrame) -> None:
    hourly = btc_1h.loc["2023-03-01":"2023-04-30"]  # includes the 2023-03-24 13:00 outage
    reference = (
        hourly.resample("4h", origin="epoch", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["open"])
    )
    reference.index = reference.index.as_unit("ns")
    pdt.assert_frame_equal(resample_ohlcv(hourly, "4h"), reference, check_freq=False)
    assert (resample_ohlcv(hourly, "4h").index.hour % 4 == 0).all()


def test_four_hour_then_daily_equals_daily_from_hourly(btc_1h: pd.DataFrame) -> None:
    hourly = btc_1h.loc["2024-01-01":"2024-06-30"]
    via_4h = resample_ohlcv(resample_ohlcv(hourly, "4h"), "1d", source_tf="4h")
    direct = resample_ohlcv(hourly, "1d")
    pdt.assert_frame_equal(via_4h[["open", "high", "low", "close"]], direct[["open", "high", "low", "close"]])
    pdt.assert_series_equal(via_4h["volume"], direct["volume"], rtol=1e-12)


def test_as_of_inside_a_bucket_excludes_that_bucket(btc_1h: pd.DataFrame) -> None:
    hourly = btc_1h.loc["2024-01-01":"2024-01-02"]
    out = resample_ohlcv(hourly, "4h", as_of="2024-01-01T06:30Z")
    assert list(out.index) == [pd.Timestamp("2024-01-01T00:00Z")]
    out = resample_ohlcv(hourly, "4h", as_of="2024-01-01T08:00Z")  # the 04:00 bucket closes exactly at as_of
    assert list(out.index) == [pd.Timestamp("2024-01-01T00:00Z"), pd.Timestamp("2024-01-01T04:00Z")]
    assert out["close"].iloc[-1] == hourly.loc["2024-01-01T07:00Z", "close"]
    assert resample_ohlcv(hourly, "1d", as_of="2024-01-01T23:59Z").empty


def test_default_as_of_is_close_of_last_source_bar(btc_1h: pd.DataFrame) -> None:
    partial = btc_1h.loc["2024-01-01T00:00":"2024-01-01T05:00"]  # last bar closes 06:00: 04:00 bucket open
    assert list(resample_ohlcv(partial, "4h").index) == [pd.Timestamp("2024-01-01T00:00Z")]
    complete = btc_1h.loc["2024-01-01T00:00":"2024-01-01T07:00"]
    assert len(resample_ohlcv(complete, "4h")) == 2


def test_source_bars_after_as_of_are_invisible(btc_1h: pd.DataFrame) -> None:
    hourly = btc_1h.loc["2024-01-01":"2024-01-03"]
    early = resample_ohlcv(hourly, "1d", as_of="2024-01-02T00:00Z")
    pdt.assert_frame_equal(early, resample_ohlcv(hourly.loc[:"2024-01-01T23:00"], "1d"))


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=24 * 20), target=st.sampled_from(["2h", "4h", "8h", "1d"]))
def test_truncated_history_gives_a_prefix_of_the_full_result(cut: int, target: str) -> None:
    hourly = load_sample("ETH", "1h", "2023-03-15", "2023-04-05")  # spans the 2023-03-24 outage
    full = resample_ohlcv(hourly, target, source_tf="1h")
    part = resample_ohlcv(hourly.iloc[:cut], target, source_tf="1h")
    pdt.assert_frame_equal(part, full.iloc[: len(part)])
    # and nothing that could have closed by then is missing from the truncated result
    close_of_cut = hourly.index[cut - 1] + pd.Timedelta(hours=1)
    assert len(part) == int((full.index + timeframe_to_timedelta(target) <= close_of_cut).sum())


def test_gaps_give_partial_buckets_but_never_empty_ones(btc_1h: pd.DataFrame) -> None:
    hourly = btc_1h.loc["2024-01-01T00:00":"2024-01-01T15:00"]
    holed = hourly.drop(pd.date_range("2024-01-01T04:00", "2024-01-01T07:00", freq="1h", tz="UTC")).drop(
        pd.Timestamp("2024-01-01T09:00Z")
    )
    out = resample_ohlcv(holed, "4h")
    assert list(out.index.hour) == [0, 8, 12]  # the 04:00 bucket had no bar and does not exist
    bucket = holed.loc["2024-01-01T08:00":"2024-01-01T11:00"]
    assert len(bucket) == 3
    assert out.loc["2024-01-01T08:00Z", "high"] == bucket["high"].max()
    assert out.loc["2024-01-01T08:00Z", "volume"] == pytest.approx(bucket["volume"].sum(), rel=1e-12)


def test_weekly_buckets_open_on_monday() -> None:
    daily = load_sample("BTC", "1d", "2024-01-01", "2024-03-31")
    weekly = resample_ohlcv(daily, "1w")
    assert (weekly.index.day_of_week == 0).all()
    assert weekly["open"].iloc[0] == daily["open"].iloc[0]  # 2024-01-01 was a Monday


def test_input_contract(btc_1h: pd.DataFrame) -> None:
    hourly = btc_1h.iloc[:48]
    with pytest.raises(DataError, match="sorted and unique"):
        resample_ohlcv(hourly.iloc[::-1], "4h")
    with pytest.raises(ValueError, match="whole multiple"):
        resample_ohlcv(hourly, "90m")
    with pytest.raises(DataError, match="missing columns"):
        resample_ohlcv(hourly.drop(columns="volume"), "4h")
    with pytest.raises(DataError, match="pass source_tf"):
        resample_ohlcv(hourly.iloc[:1], "4h")
    single = resample_ohlcv(hourly.iloc[:1], "1h", source_tf="1h")
    pdt.assert_frame_equal(single, hourly.iloc[:1])


def test_timeframe_helpers() -> None:
    assert timeframe_to_timedelta("1h") == pd.Timedelta(hours=1)
    assert timeframe_to_timedelta("15m") == pd.Timedelta(minutes=15)
    assert timeframe_to_timedelta("1w") == pd.Timedelta(days=7)
    for bad in ("1M", "h", "0h", "1y"):
        with pytest.raises(ValueError, match="unsupported timeframe"):
            timeframe_to_timedelta(bad)
    assert ns_to_timeframe(4 * 3_600 * 10**9) == "4h"
    assert ns_to_timeframe(14 * 86_400 * 10**9) == "14d"
    assert infer_timeframe(load_sample("SOL", "1d").index) == "1d"
    assert to_utc_timestamp(1_704_067_200_000) == pd.Timestamp("2024-01-01T00:00Z")
    assert to_utc_timestamp("2024-01-01T01:00+01:00") == pd.Timestamp("2024-01-01T00:00Z")
    with pytest.raises(ValueError, match="not a valid timestamp"):
        to_utc_timestamp("soon", "as_of")
