"""load_ohlcv / load_funding / load_checked on real sample bars written in every supported format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from arena_lib.data import (
    DataError,
    DataNotFoundError,
    DataQualityError,
    load_checked,
    load_funding,
    load_ohlcv,
    load_sample_funding,
    timeframe_from_name,
)


@pytest.fixture
def bars(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[1000:1048]


def _iso_csv(frame: pd.DataFrame) -> str:
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index_label="timestamp")


def _assert_same(loaded: pd.DataFrame, expected: pd.DataFrame) -> None:
    pdt.assert_frame_equal(loaded, expected)
    assert str(loaded.index.tz) == "UTC"
    assert loaded.index.name == "timestamp"
    assert list(loaded.dtypes) == ["float64"] * 5


def test_csv_iso(tmp_path: Path, bars: pd.DataFrame) -> None:
    path = tmp_path / "btc_1h.csv"
    path.write_text(_iso_csv(bars))
    _assert_same(load_ohlcv(path), bars)


def test_csv_gz(tmp_path: Path, bars: pd.DataFrame) -> None:
    path = tmp_path / "btc_1h.csv.gz"
    path.write_bytes(gzip.compress(_iso_csv(bars).encode()))
    _assert_same(load_ohlcv(path), bars)


def test_parquet_with_index_and_with_column(tmp_path: Path, bars: pd.DataFrame) -> None:
    indexed = tmp_path / "a.parquet"
    bars.to_parquet(indexed)
    _assert_same(load_ohlcv(indexed), bars)
    column = tmp_path / "b.parquet"
    bars.reset_index().to_parquet(column, index=False)
    _assert_same(load_ohlcv(column), bars)


def test_epoch_milliseconds(tmp_path: Path, bars: pd.DataFrame) -> None:
    frame = bars.copy()
    frame.index = frame.index.as_unit("ms").asi8
    path = tmp_path / "ms.csv"
    frame.to_csv(path, index_label="timestamp")
    _assert_same(load_ohlcv(path), bars)


def test_offsets_and_naive_iso_become_utc(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T02:00:00+02:00,1,2,0.5,1.5,10\n"
        "2024-01-01 01:00:00,1,2,0.5,1.5,10\n"
    )
    loaded = load_ohlcv(path)
    assert list(loaded.index) == [pd.Timestamp("2024-01-01T00:00Z"), pd.Timestamp("2024-01-01T01:00Z")]


def test_extra_columns_are_dropped(tmp_path: Path, bars: pd.DataFrame) -> None:
    path = tmp_path / "extra.parquet"
    bars.assign(trades=7).to_parquet(path)
    _assert_same(load_ohlcv(path), bars)


def test_missing_file_lists_what_is_there(tmp_path: Path, bars: pd.DataFrame) -> None:
    bars.to_parquet(tmp_path / "present_1h.parquet")
    with pytest.raises(DataNotFoundError, match=r"absent\.csv.*present_1h\.parquet"):
        load_ohlcv(tmp_path / "absent.csv")


def test_missing_columns_are_named(tmp_path: Path, bars: pd.DataFrame) -> None:
    path = tmp_path / "nov.csv"
    path.write_text(_iso_csv(bars.drop(columns=["volume", "low"])))
    with pytest.raises(DataError, match=r"missing columns \['low', 'volume'\]"):
        load_ohlcv(path)


def test_unparseable_timestamps_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,1\nyesterday,1,2,0.5,1.5,1\n"
    )
    with pytest.raises(DataError, match=r"1 unparseable timestamps \(row 1: 'yesterday'\)"):
        load_ohlcv(path)


def test_epoch_seconds_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "secs.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1704067200,1,2,0.5,1.5,1\n1704070800,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="epoch seconds"):
        load_ohlcv(path)


def test_non_numeric_values_and_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,one,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="column 'open' is not numeric"):
        load_ohlcv(path)
    other = tmp_path / "bars.xlsx"
    other.write_bytes(b"")
    with pytest.raises(DataError, match="unsupported file type"):
        load_ohlcv(other)


def test_raw_order_is_kept_and_load_checked_refuses_it(tmp_path: Path, bars: pd.DataFrame) -> None:
    shuffled = bars.iloc[[0, 2, 1, 3, 3]]
    path = tmp_path / "btc_1h.csv"
    path.write_text(_iso_csv(shuffled))
    loaded = load_ohlcv(path)
    assert list(loaded.index) == list(shuffled.index)  # not sorted, not deduplicated
    with pytest.raises(DataQualityError) as info:
        load_checked(path)
    kinds = {issue.kind for issue in info.value.report.errors}
    assert kinds == {"out_of_order", "duplicate_timestamp"}
    assert str(path) in str(info.value)


def test_load_checked_accepts_gaps_and_infers_timeframe(tmp_path: Path, bars: pd.DataFrame) -> None:
    gappy = bars.drop(bars.index[10:13])
    named = tmp_path / "btc_1h.parquet"
    gappy.to_parquet(named)
    pdt.assert_frame_equal(load_checked(named), gappy)
    unnamed = tmp_path / "btc.parquet"  # no timeframe in the name: inferred from spacing
    gappy.to_parquet(unnamed)
    pdt.assert_frame_equal(load_checked(unnamed), gappy)
    shifted = gappy.copy()
    shifted.index = shifted.index + pd.Timedelta(minutes=30)
    shifted.to_parquet(named)
    with pytest.raises(DataQualityError, match="off_boundary"):
        load_checked(named)
    assert load_checked(named, timeframe="30m") is not None


def test_timeframe_from_name() -> None:
    assert timeframe_from_name("binance_BTC-USDT_1h.parquet") == "1h"
    assert timeframe_from_name("/x/y/eth_4h.csv.gz") == "4h"
    assert timeframe_from_name("binance-usdm_BTC-USDT-PERP_funding_8h.parquet") == "8h"
    assert timeframe_from_name("prices.csv") is None


def test_load_funding(tmp_path: Path) -> None:
    rates = load_sample_funding("BTC").iloc[:30]
    path = tmp_path / "funding.csv"
    path.write_text(
        rates.to_frame().set_axis(rates.index.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(index_label="timestamp")
    )
    loaded = load_funding(path)
    pdt.assert_series_equal(loaded["funding_rate"], rates)
    path.write_text("timestamp,rate\n2024-01-01T00:00:00Z,0.0001\n")
    with pytest.raises(DataError, match=r"missing columns \['funding_rate'\]"):
        load_funding(path)
