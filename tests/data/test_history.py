"""Research history: the bundled sample extended by the ingest cache (`arena_lib.data.history`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena_lib.data import DataNotFoundError, DataQualityError, OhlcvCache, load_sample, load_sample_funding
from arena_lib.data.funding_source import FundingCache
from arena_lib.data.history import latest_bar, load_bars, load_funding_history, load_market
from arena_lib.data.ingest import refresh_candles, refresh_funding

HOUR = pd.Timedelta("1h")


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=True)


def _bars_after_the_sample(symbol: str, hours: int) -> pd.DataFrame:
    """FIXTURE, not market data: the sample's last `hours` bars replayed with open times moved `hours` later, so
    that they continue the sample where a later `ingest` would have continued it."""
    tail = load_sample(symbol, "1h").iloc[-hours:].copy()
    tail.index = tail.index + hours * HOUR
    return tail


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ARENA_DATA_CACHE", str(root))
    return root


def test_without_a_cache_the_sample_is_read(cache_root: Path) -> None:
    assert load_bars("BTC/USDT", "1h", "2024-01-01", "2024-02-01").equals(
        load_sample("BTC/USDT", "1h", "2024-01-01", "2024-02-01")
    )
    assert load_funding_history("ETH/USDT").equals(load_sample_funding("ETH/USDT"))
    assert latest_bar(["BTC/USDT", "ETH/USDT"]) == min(
        load_sample(s, "1h").index.max() for s in ("BTC/USDT", "ETH/USDT")
    )


def test_a_cache_seeded_from_the_sample_changes_nothing(cache_root: Path) -> None:
    refresh_candles("BTC/USDT", "1h", source="sample", cache_root=cache_root)
    refresh_funding("BTC/USDT", source="sample", cache_root=cache_root)
    assert OhlcvCache(cache_root).entries() == ["binance/BTC-USDT_1h", "binance/BTC-USDT_funding"]
    pd.testing.assert_frame_equal(load_bars("BTC/USDT"), load_sample("BTC/USDT"), check_freq=False)
    pd.testing.assert_series_equal(load_funding_history("BTC/USDT"), load_sample_funding("BTC/USDT"))


def test_newer_cached_bars_extend_the_sample_and_win_where_both_have_a_bar(cache_root: Path) -> None:
    bundled = load_sample("BTC/USDT", "1h")
    overlap = bundled.iloc[-3:].copy()
    overlap["volume"] = overlap["volume"] + 1.0  # the exchange's later record of the same bars
    newer = _bars_after_the_sample("BTC/USDT", 24)
    _write(pd.concat([overlap, newer]), OhlcvCache(cache_root).path("binance", "BTC/USDT", "1h"))

    bars = load_bars("BTC/USDT", "1h")
    assert len(bars) == len(bundled) + 24
    assert bars.index.is_monotonic_increasing
    assert bars.index.is_unique
    assert bars.index.max() == newer.index.max()
    pd.testing.assert_frame_equal(bars.loc[overlap.index], overlap, check_freq=False)
    pd.testing.assert_frame_equal(bars.loc[newer.index], newer, check_freq=False)
    assert bars.iloc[: len(bundled) - 3].equals(bundled.iloc[:-3])
    # A window, the walk-forward end and the market the notebooks and flows read all see the new bars.
    assert len(load_bars("BTC/USDT", "1h", start=newer.index[0])) == 24
    assert latest_bar(["BTC/USDT"]) == newer.index.max()
    assert latest_bar(["BTC/USDT", "ETH/USDT"]) == load_sample("ETH/USDT", "1h").index.max()
    market = load_market(["BTC/USDT"], "1h", start=str(newer.index[0]))
    assert market.n_bars == 24


def test_newer_cached_funding_extends_the_sample(cache_root: Path) -> None:
    bundled = load_sample_funding("BTC/USDT")
    later = bundled.iloc[-5:].copy()
    later.index = later.index + pd.Timedelta("40h")  # FIXTURE: five events after the sample's last, 8h apart
    FundingCache(cache_root).merge("binance", "BTC/USDT", later)
    funding = load_funding_history("BTC/USDT")
    assert len(funding) == len(bundled) + 5
    assert funding.index.max() == later.index.max()
    assert np.array_equal(funding.iloc[-5:].to_numpy(), later.to_numpy())


def test_a_symbol_only_the_cache_holds_is_read_from_it(cache_root: Path) -> None:
    link = _bars_after_the_sample("ADA/USDT", 48)  # FIXTURE: stands in for a coin the sample does not ship
    _write(link, OhlcvCache(cache_root).path("binance", "LINK/USDT", "1h"))
    pd.testing.assert_frame_equal(load_bars("LINK/USDT"), link, check_freq=False)
    assert load_funding_history("LINK/USDT").empty
    assert load_market(["LINK/USDT"], "1h").n_bars == 48


def test_a_bad_cached_candle_is_refused_naming_the_file(cache_root: Path) -> None:
    newer = _bars_after_the_sample("BTC/USDT", 6)
    newer.iloc[2, newer.columns.get_loc("high")] = newer["low"].iloc[2] - 1.0  # high below low
    path = OhlcvCache(cache_root).path("binance", "BTC/USDT", "1h")
    _write(newer, path)
    with pytest.raises(DataQualityError, match=r"BTC-USDT_1h\.parquet"):
        load_bars("BTC/USDT")


def test_an_unknown_symbol_is_refused(cache_root: Path) -> None:
    with pytest.raises(DataNotFoundError, match="NOPE"):
        load_bars("NOPE/USDT")
