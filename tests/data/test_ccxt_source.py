"""fetch_ohlcv / OhlcvCache with the real ccxt binance client against a loopback Binance spot server.

The server answers from the bundled real sample, so "the right bars" means: exactly the sample's bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest

from arena_lib.data import (
    DataNotFoundError,
    DataQualityError,
    DataSourceError,
    OhlcvCache,
    api_urls_for_host,
    fetch_ohlcv,
    load_sample,
    make_exchange,
)
from tests.servers.binance import BinanceSpotServer

KLINES = "/api/v3/klines"
HOUR_MS = 3_600_000


def ms(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000)


def no_sleep(delays: list[float]) -> Any:
    return delays.append


def test_markets_come_from_spot_exchange_info_only(binance: Any, binance_server: BinanceSpotServer) -> None:
    binance.load_markets()
    assert sorted(binance.markets) == ["BTC/USDT", "ETH/USDT"]
    market = binance.market("BTC/USDT")
    assert market["spot"]
    assert market["precision"]["price"] == 0.01
    assert market["limits"]["cost"]["min"] == 5.0
    assert dict(binance_server.requests) == {"/api/v3/exchangeInfo": 1}  # no /fapi, /dapi, /sapi calls


def test_pagination_over_more_than_1000_bars_gives_exactly_the_sample(
    binance: Any, binance_server: BinanceSpotServer
) -> None:
    since, until = pd.Timestamp("2024-01-01T00:00Z"), pd.Timestamp("2024-01-01T00:00Z") + pd.Timedelta(hours=2500)
    frame = fetch_ohlcv(binance, "BTC/USDT", "1h", since, until, now_ms=binance_server.now_ms)
    expected = load_sample("BTC", "1h", since, until - pd.Timedelta(hours=1))
    assert len(frame) == 2500
    pdt.assert_frame_equal(frame, expected)
    pages = [q for path, q in binance_server.request_log if path == KLINES]
    assert [int(q["startTime"]) for q in pages] == [
        ms("2024-01-01"),
        ms("2024-01-01") + 1000 * HOUR_MS,
        ms("2024-01-01") + 2000 * HOUR_MS,
    ]
    assert {q["limit"] for q in pages} == {"1000"}
    assert {q["endTime"] for q in pages} == {str(int(until.value // 10**6) - 1)}


def test_pagination_across_a_real_gap(binance: Any, binance_server: BinanceSpotServer) -> None:
    frame = fetch_ohlcv(binance, "ETH/USDT", "1h", "2023-03-20", "2023-03-28", now_ms=binance_server.now_ms, limit=50)
    pdt.assert_frame_equal(frame, load_sample("ETH", "1h", "2023-03-20", "2023-03-27T23:00"))
    assert len(frame) == 8 * 24 - 1  # the 2023-03-24 13:00 outage stays missing


def test_the_still_open_last_bar_is_dropped(binance: Any, binance_server: BinanceSpotServer) -> None:
    last_open = load_sample("BTC", "1h").index[-1]
    binance_server.now_ms = int(last_open.value // 10**6) + 30 * 60_000  # half way through the last hour
    frame = fetch_ohlcv(binance, "BTC/USDT", "1h", last_open - pd.Timedelta(hours=48), now_ms=binance_server.now_ms)
    served = [q for path, q in binance_server.request_log if path == KLINES]
    assert len(served) == 1
    assert frame.index[-1] == last_open - pd.Timedelta(hours=1)
    assert len(frame) == 48
    # once the bar has closed it is returned
    binance_server.now_ms = int(last_open.value // 10**6) + HOUR_MS
    frame = fetch_ohlcv(binance, "BTC/USDT", "1h", last_open - pd.Timedelta(hours=48), now_ms=binance_server.now_ms)
    assert frame.index[-1] == last_open
    assert len(frame) == 49


def test_daily_bars(binance: Any, binance_server: BinanceSpotServer) -> None:
    frame = fetch_ohlcv(binance, "ETH/USDT", "1d", "2021-01-01", "2024-01-01", now_ms=binance_server.now_ms)
    pdt.assert_frame_equal(frame, load_sample("ETH", "1d", "2021-01-01", "2023-12-31"))
    assert binance_server.requests[KLINES] == 2


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_injected_failures_succeeds(binance: Any, binance_server: BinanceSpotServer, status: int) -> None:
    binance.load_markets()
    binance_server.fail_next(2, status=status, path=KLINES)
    delays: list[float] = []
    frame = fetch_ohlcv(
        binance,
        "BTC/USDT",
        "1h",
        "2024-05-01",
        "2024-05-02",
        backoff_s=0.25,
        sleep=no_sleep(delays),
        now_ms=binance_server.now_ms,
    )
    pdt.assert_frame_equal(frame, load_sample("BTC", "1h", "2024-05-01", "2024-05-01T23:00"))
    assert binance_server.requests[KLINES] == 3
    assert delays == [0.25, 0.5]  # exponential backoff


def test_retry_after_a_client_timeout(binance_server: BinanceSpotServer) -> None:
    exchange = make_exchange(
        "binance",
        urls_override=api_urls_for_host("binance", binance_server.url),
        options={"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
        timeout=300,
    )
    exchange.load_markets()
    binance_server.timeout_next(1, delay_s=1.0, path=KLINES)
    delays: list[float] = []
    frame = fetch_ohlcv(
        exchange,
        "BTC/USDT",
        "1h",
        "2024-05-01",
        "2024-05-01T06:00",
        sleep=no_sleep(delays),
        now_ms=binance_server.now_ms,
    )
    assert len(frame) == 6
    assert len(delays) == 1
    assert binance_server.requests[KLINES] == 2


def test_persistent_failure_raises_after_max_retries(binance: Any, binance_server: BinanceSpotServer) -> None:
    binance.load_markets()
    binance_server.fail_next(50, status=503, path=KLINES)
    delays: list[float] = []
    with pytest.raises(DataSourceError) as info:
        fetch_ohlcv(
            binance,
            "BTC/USDT",
            "1h",
            "2024-05-01",
            max_retries=3,
            backoff_s=1.0,
            sleep=no_sleep(delays),
            now_ms=binance_server.now_ms,
        )
    message = str(info.value)
    assert "binance BTC/USDT 1h" in message
    assert "after 3 retries" in message
    assert "ExchangeNotAvailable" in message
    assert binance_server.requests[KLINES] == 4
    assert delays == [1.0, 2.0, 4.0]


def test_unknown_symbol_is_a_clear_data_source_error(binance: Any, binance_server: BinanceSpotServer) -> None:
    with pytest.raises(DataSourceError, match=r"binance DOGE/USDT 1h: the exchange refused the request \(BadSymbol"):
        fetch_ohlcv(binance, "DOGE/USDT", "1h", "2024-01-01", now_ms=binance_server.now_ms)
    assert binance_server.requests[KLINES] == 0  # ccxt knew from the markets; nothing retried


def test_server_side_invalid_symbol_is_not_retried(binance: Any, binance_server: BinanceSpotServer) -> None:
    binance.load_markets()
    binance_server.delist("ETHUSDT")  # gone after the client cached its markets
    with pytest.raises(DataSourceError, match=r"binance ETH/USDT 1h.*BadSymbol.*-1121.*Invalid symbol"):
        fetch_ohlcv(binance, "ETH/USDT", "1h", "2024-01-01", now_ms=binance_server.now_ms, sleep=no_sleep([]))
    assert binance_server.requests[KLINES] == 1


def test_cache_update_is_incremental(binance: Any, binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    cache = OhlcvCache(tmp_path / "cache")
    first = cache.update(binance, "BTC/USDT", "1h", "2024-01-01", now_ms=ms("2024-03-01"))
    pdt.assert_frame_equal(first, load_sample("BTC", "1h", "2024-01-01", "2024-02-29T23:00"))
    assert binance_server.requests[KLINES] == 2  # 1440 bars: two pages

    binance_server.reset_counts()
    second = cache.update(binance, "BTC/USDT", "1h", "2024-01-01", now_ms=ms("2024-03-02"))
    assert binance_server.request_log == [(KLINES, binance_server.request_log[0][1])]
    assert int(binance_server.request_log[0][1]["startTime"]) == ms("2024-03-01")  # only bars after the cache
    pdt.assert_frame_equal(second, load_sample("BTC", "1h", "2024-01-01", "2024-03-01T23:00"))
    pdt.assert_frame_equal(cache.load("binance", "BTC/USDT", "1h"), second)

    binance_server.reset_counts()
    cache.update(binance, "BTC/USDT", "1h", "2024-01-01", now_ms=ms("2024-03-02"))
    assert binance_server.requests[KLINES] == 0  # nothing new can have closed

    binance_server.reset_counts()
    older = cache.update(binance, "BTC/USDT", "1h", "2023-12-31", now_ms=ms("2024-03-02"))
    (query,) = [q for path, q in binance_server.request_log if path == KLINES]
    assert (int(query["startTime"]), int(query["endTime"])) == (ms("2023-12-31"), ms("2024-01-01") - 1)
    pdt.assert_frame_equal(older, load_sample("BTC", "1h", "2023-12-31", "2024-03-01T23:00"))
    assert [p.name for p in (tmp_path / "cache" / "binance").iterdir()] == ["BTC-USDT_1h.parquet"]  # no temp files


def test_cache_refuses_bad_bars_and_keeps_the_old_file(
    binance: Any, binance_server: BinanceSpotServer, tmp_path: Path
) -> None:
    cache = OhlcvCache(tmp_path)
    cache.update(binance, "ETH/USDT", "1h", "2024-01-01", now_ms=ms("2024-01-02"))
    path = cache.path("binance", "ETH/USDT", "1h")
    frame = pd.read_parquet(path)
    frame.iloc[5, frame.columns.get_loc("close")] = -1.0
    frame.to_parquet(path)
    before = path.read_bytes()
    with pytest.raises(DataQualityError, match="nonpositive_price row 5"):
        cache.update(binance, "ETH/USDT", "1h", "2024-01-01", now_ms=ms("2024-01-03"))
    assert path.read_bytes() == before


def test_cache_load_lists_what_is_cached(binance: Any, binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    cache = OhlcvCache(tmp_path)
    with pytest.raises(DataNotFoundError, match="cached: nothing yet"):
        cache.load("binance", "BTC/USDT", "1h")
    cache.update(binance, "ETH/USDT", "1d", "2024-01-01", now_ms=ms("2024-01-10"))
    with pytest.raises(DataNotFoundError, match=r"cached: binance/ETH-USDT_1d"):
        cache.load("binance", "BTC/USDT", "1h")


def test_make_exchange() -> None:
    with pytest.raises(DataSourceError, match="unknown exchange id 'nope'"):
        make_exchange("nope")
    exchange = make_exchange("binance", urls_override=api_urls_for_host("binance", "http://127.0.0.1:9"), timeout=1234)
    assert exchange.enableRateLimit is True
    assert exchange.timeout == 1234
    assert exchange.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
    assert exchange.urls["api"]["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
    assert all(url.startswith("http://127.0.0.1:9/") for url in exchange.urls["api"].values())
    assert exchange.urls["www"] == "https://www.binance.com"  # only the API hosts were overridden
