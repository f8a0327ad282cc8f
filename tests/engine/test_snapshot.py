"""MarketSnapshot is point in time: closed bars only, settled funding only, higher timeframes from closed bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.market import MarketData
from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.data.snapshot import MarketSnapshot


@pytest.fixture(scope="module")
def market() -> MarketData:
    frames = {s: load_sample(s, "1h", "2024-03-01", "2024-03-10") for s in ("BTC/USDT", "ETH/USDT")}
    funding = {s: load_sample_funding(s, "2024-03-01", "2024-03-10") for s in frames}
    return MarketData.from_frames(frames, "1h", funding)


def test_snapshot_sees_only_closed_bars(market: MarketData) -> None:
    i = 50
    snap = MarketSnapshot(market, i)
    assert snap.timestamp == pd.Timestamp(market.times[i], tz="UTC") + pd.Timedelta("1h")
    bars = snap.ohlcv("BTC/USDT")
    assert bars.index[-1] == pd.Timestamp(market.times[i], tz="UTC")
    assert (bars.index + pd.Timedelta("1h") <= snap.timestamp).all()
    assert snap.close("BTC/USDT") == bars["close"].iloc[-1]
    np.testing.assert_array_equal(snap.closes("BTC/USDT", 5), bars["close"].to_numpy()[-5:])
    with pytest.raises(ValueError, match="read-only"):
        snap.closes("BTC/USDT", 5)[0] = 0.0


def test_resampled_4h_excludes_the_open_bucket(market: MarketData) -> None:
    # Row 49 closes at 02:00 on day 3, inside the 00:00-04:00 bucket: that bucket must not be visible yet.
    i = 49
    snap = MarketSnapshot(market, i)
    four = snap.resampled("BTC/USDT", "4h")
    assert (four.index + pd.Timedelta("4h") <= snap.timestamp).all()
    later = MarketSnapshot(market, i + 2).resampled("BTC/USDT", "4h")  # closes at 04:00: bucket complete
    assert len(later) == len(four) + 1
    hours = snap.ohlcv("BTC/USDT", None)
    bucket = market.series["BTC/USDT"].frame.loc[later.index[-1] : later.index[-1] + pd.Timedelta("3h")]
    assert later["high"].iloc[-1] == bucket["high"].max()
    assert later["open"].iloc[-1] == bucket["open"].iloc[0]
    assert len(hours) == i + 1


def test_funding_rate_is_the_last_settled(market: MarketData) -> None:
    rates = market.funding_series["BTC/USDT"]
    settle = rates.index[3]
    row = int(np.searchsorted(market.times, settle.value)) - 1  # bar that closes exactly at the settlement
    snap = MarketSnapshot(market, row)
    assert snap.timestamp == settle
    assert snap.funding_rate("BTC/USDT") == rates.iloc[3]
    assert MarketSnapshot(market, row - 1).funding_rate("BTC/USDT") == rates.iloc[2]


def test_content_hash_is_stable_and_time_specific(market: MarketData) -> None:
    a, b = MarketSnapshot(market, 30), MarketSnapshot(market, 30)
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != MarketSnapshot(market, 31).content_hash()


def test_unknown_symbol_is_a_clear_error(market: MarketData) -> None:
    with pytest.raises(KeyError, match="unknown symbol"):
        MarketSnapshot(market, 0).close("DOGE/USDT")
