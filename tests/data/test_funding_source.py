"""fetch_funding_history / FundingCache with real ccxt against the loopback Binance USDⓈ-M endpoints.

The server answers from the bundled real sample, so "the right rates" means: exactly the sample's funding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from arena_lib.data import DataNotFoundError, DataQualityError, DataSourceError, load_funding, load_sample_funding
from arena_lib.data.funding_source import FundingCache, check_funding, fetch_funding_history, perp_symbol
from arena_lib.data.ingest import make_funding_exchange
from tests.servers.binance import BinanceSpotServer

FUNDING = "/fapi/v1/fundingRate"
HOUR_MS = 3_600_000


def ms(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000)


@pytest.fixture
def perps(binance_server: BinanceSpotServer) -> Any:
    """Real ccxt binance, swap markets only, pointed at the loopback server."""
    return make_funding_exchange("binance", binance_server.url, timeout=2_000)


def test_perp_symbol_maps_spot_pairs_to_linear_perpetuals() -> None:
    assert perp_symbol("BTC/USDT") == "BTC/USDT:USDT"
    assert perp_symbol("eth-usdt") == "ETH/USDT:USDT"
    assert perp_symbol("SOL") == "SOL/USDT:USDT"
    assert perp_symbol("BTC/USDT:USDT") == "BTC/USDT:USDT"
    assert perp_symbol("BTC/USD:BTC") == "BTC/USD:BTC"  # inverse stays inverse
    with pytest.raises(ValueError, match="empty settle currency"):
        perp_symbol("BTC/USDT:")


@pytest.mark.parametrize("exchange_id", ["binance", "binanceusdm"])
def test_pagination_gives_exactly_the_sample(binance_server: BinanceSpotServer, exchange_id: str) -> None:
    exchange = make_funding_exchange(exchange_id, binance_server.url, timeout=2_000)
    rates = fetch_funding_history(
        exchange, "BTC/USDT", "2024-01-01", "2024-03-01", limit=50, now_ms=binance_server.now_ms
    )
    expected = load_sample_funding("BTC", "2024-01-01", "2024-02-29T16:00")
    assert len(rates) == 180  # 60 days x 3 settlements
    pdt.assert_series_equal(rates, expected)
    assert exchange.markets["BTC/USDT:USDT"]["swap"]
    assert binance_server.requests["/fapi/v1/exchangeInfo"] == 1
    assert binance_server.requests["/api/v3/exchangeInfo"] == 0  # swap markets only
    pages = [q for path, q in binance_server.request_log if path == FUNDING]
    t0, every = ms("2024-01-01"), 8 * HOUR_MS
    # each page starts one ms past the last event received; the fifth finds nothing new and ends the loop
    assert [int(q["startTime"]) for q in pages] == [t0] + [t0 + k * every + 1 for k in (49, 99, 149, 179)]
    assert {q["limit"] for q in pages} == {"50"}
    assert {q["endTime"] for q in pages} == {str(ms("2024-03-01") - 1)}
    assert {q["symbol"] for q in pages} == {"BTCUSDT"}


def test_events_after_now_are_not_returned(perps: Any, binance_server: BinanceSpotServer) -> None:
    rates = fetch_funding_history(perps, "ETH/USDT:USDT", "2024-01-01", now_ms=ms("2024-01-01T12:00"))
    pdt.assert_series_equal(rates, load_sample_funding("ETH", "2024-01-01", "2024-01-01T08:00"))
    pages = [q for p, q in binance_server.request_log if p == FUNDING]
    assert {int(q["endTime"]) for q in pages} == {ms("2024-01-01T12:00")}  # the exchange is not asked past now
    assert int(pages[-1]["startTime"]) == ms("2024-01-01T08:00") + 1


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_injected_failures_succeeds(perps: Any, binance_server: BinanceSpotServer, status: int) -> None:
    perps.load_markets()
    binance_server.fail_next(2, status=status, path=FUNDING)
    delays: list[float] = []
    rates = fetch_funding_history(
        perps, "BTC/USDT", "2024-05-01", "2024-05-02", backoff_s=0.25, sleep=delays.append, now_ms=ms("2024-06-01")
    )
    pdt.assert_series_equal(rates, load_sample_funding("BTC", "2024-05-01", "2024-05-01T16:00"))
    assert delays == [0.25, 0.5]
    assert binance_server.requests[FUNDING] == 4  # 2 failures, the page, the empty page that ends the loop


def test_persistent_failure_raises_after_max_retries(perps: Any, binance_server: BinanceSpotServer) -> None:
    perps.load_markets()
    binance_server.fail_next(10, status=503, path=FUNDING)
    delays: list[float] = []
    with pytest.raises(DataSourceError, match=r"binance BTC/USDT:USDT funding: still failing after 2 retries"):
        fetch_funding_history(
            perps, "BTC/USDT", "2024-05-01", max_retries=2, sleep=delays.append, now_ms=ms("2024-06-01")
        )
    assert delays == [1.0, 2.0]


def test_unknown_symbol_is_a_clear_data_source_error(perps: Any, binance_server: BinanceSpotServer) -> None:
    with pytest.raises(DataSourceError, match=r"binance DOGE/USDT:USDT funding: the exchange refused.*BadSymbol"):
        fetch_funding_history(perps, "DOGE/USDT", "2024-01-01", now_ms=binance_server.now_ms)
    assert binance_server.requests[FUNDING] == 0  # known from the markets; nothing sent, nothing retried


def test_server_side_invalid_symbol_is_not_retried(perps: Any, binance_server: BinanceSpotServer) -> None:
    perps.load_markets()
    binance_server.delist("ETHUSDT")
    with pytest.raises(DataSourceError, match=r"ETH/USDT:USDT funding.*BadSymbol.*-1121.*Invalid symbol"):
        fetch_funding_history(perps, "ETH/USDT", "2024-01-01", now_ms=binance_server.now_ms, sleep=lambda s: None)
    assert binance_server.requests[FUNDING] == 1


def test_a_spot_only_exchange_has_no_perpetuals(binance: Any, binance_server: BinanceSpotServer) -> None:
    with pytest.raises(DataSourceError, match="BadSymbol"):
        fetch_funding_history(binance, "BTC/USDT", "2024-01-01", now_ms=binance_server.now_ms)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="need limit >= 1"):
        fetch_funding_history(None, "BTC/USDT", "2024-01-01", limit=0, now_ms=0)  # type: ignore[arg-type]


def test_cache_update_is_incremental(perps: Any, binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    cache = FundingCache(tmp_path / "cache")
    first = cache.update(perps, "BTC/USDT", "2024-01-01", now_ms=ms("2024-02-01"))
    pdt.assert_series_equal(first, load_sample_funding("BTC", "2024-01-01", "2024-02-01"))
    path = cache.path("binance", "BTC/USDT")
    assert path == tmp_path / "cache" / "binance" / "BTC-USDT_funding.parquet"
    assert cache.path("binance", "BTC/USDT:USDT") == path
    pdt.assert_frame_equal(load_funding(path), first.to_frame())  # the loader reads the cache's schema

    binance_server.reset_counts()
    second = cache.update(perps, "BTC/USDT", "2024-01-01", now_ms=ms("2024-02-02"))
    pages = [q for p, q in binance_server.request_log if p == FUNDING]
    assert int(pages[0]["startTime"]) == ms("2024-02-01") + 1  # only events after the cache
    assert len(second) == len(first) + 3
    pdt.assert_series_equal(second, load_sample_funding("BTC", "2024-01-01", "2024-02-02"))
    pdt.assert_series_equal(cache.load("binance", "BTC/USDT"), second)

    older = cache.update(perps, "BTC/USDT", "2023-12-31", now_ms=ms("2024-02-02"))
    pdt.assert_series_equal(older, load_sample_funding("BTC", "2023-12-31", "2024-02-02"))
    assert [p.name for p in path.parent.iterdir()] == ["BTC-USDT_funding.parquet"]  # no temp files


def test_cache_refuses_bad_rates_and_keeps_the_old_file(
    perps: Any, binance_server: BinanceSpotServer, tmp_path: Path
) -> None:
    cache = FundingCache(tmp_path)
    cache.update(perps, "ETH/USDT", "2024-01-01", now_ms=ms("2024-01-03"))
    path = cache.path("binance", "ETH/USDT")
    frame = pd.read_parquet(path)
    frame.iloc[3, 0] = 0.3  # 30 % per 8h: a percent stored as a fraction, not a market event
    frame.to_parquet(path)
    before = path.read_bytes()
    with pytest.raises(DataQualityError, match=r"implausible_funding_rate row 3 at 2024-01-02T00:00:00\+00:00"):
        cache.update(perps, "ETH/USDT", "2024-01-01", now_ms=ms("2024-01-04"))
    assert path.read_bytes() == before


def test_check_funding_names_every_bad_row() -> None:
    index = pd.DatetimeIndex(
        ["2024-01-01T00:00Z", "2024-01-01T08:00Z", "2024-01-01T08:00Z", "2024-01-01T04:00Z", "2024-01-02T00:00Z"]
    )
    series = pd.Series([0.0001, np.nan, 0.0002, -0.06, 0.0001], index=index, name="funding_rate")
    report = check_funding(series)
    assert not report.ok
    assert sorted((i.kind, i.row) for i in report.errors) == [
        ("duplicate_timestamp", 2),
        ("implausible_funding_rate", 3),
        ("nan", 1),
        ("out_of_order", 3),
    ]
    assert check_funding(load_sample_funding("ETH")).ok


def test_cache_load_lists_what_is_cached(perps: Any, binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    cache = FundingCache(tmp_path)
    with pytest.raises(DataNotFoundError, match="cached: nothing yet"):
        cache.load("binance", "BTC/USDT")
    cache.update(perps, "ETH/USDT", "2024-01-01", now_ms=ms("2024-01-02"))
    with pytest.raises(DataNotFoundError, match=r"cached: binance/ETH-USDT_funding"):
        cache.load("binance", "BTC/USDT")
