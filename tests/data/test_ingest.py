"""refresh_data / refresh_candles / refresh_funding: the offline sample and a loopback Binance through real ccxt.

Both sources are the same real Binance data (the server serves the sample), so the cache must hold exactly the
sample's bars and rates whichever source filled it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from arena_lib.data import DataSourceError, OhlcvCache, load_sample, load_sample_funding
from arena_lib.data.funding_source import FundingCache
from arena_lib.data.ingest import (
    CACHE_ENV,
    IngestReport,
    default_cache_root,
    make_candle_exchange,
    refresh_candles,
    refresh_data,
    refresh_funding,
)
from tests.servers.binance import BinanceSpotServer

HOUR_MS = 3_600_000


def ms(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000)


def no_sleep(_: float) -> None:
    pass


def test_default_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("ARENA_HOME", str(tmp_path / "home"))
    assert default_cache_root() == (tmp_path / "home").resolve() / "data" / "cache"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_root() == (tmp_path / "elsewhere").resolve()


def test_sample_ingest_fills_the_cache_and_a_second_run_adds_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    report = refresh_data(["BTC/USDT", "SOL-USDT"], ["1h", "1d"], source="sample")
    root = tmp_path / "cache"
    assert isinstance(report, IngestReport)
    assert report.cache_root == root.resolve()
    assert [(i.symbol, i.dataset) for i in report.items] == [
        ("BTC/USDT", "1h"),
        ("BTC/USDT", "1d"),
        ("SOL/USDT", "1h"),
        ("SOL/USDT", "1d"),
        ("BTC/USDT", "funding"),
        ("SOL/USDT", "funding"),
    ]
    assert {i.source for i in report.items} == {"sample"}
    # the files OhlcvCache/FundingCache would write, holding exactly the sample
    ohlcv, funding = OhlcvCache(root), FundingCache(root)
    pdt.assert_frame_equal(ohlcv.load("binance", "BTC/USDT", "1h"), load_sample("BTC/USDT", "1h"))
    pdt.assert_frame_equal(ohlcv.load("binance", "SOL/USDT", "1d"), load_sample("SOL/USDT", "1d"))
    pdt.assert_series_equal(funding.load("binance", "BTC/USDT"), load_sample_funding("BTC/USDT"))
    btc_1h = report.items[0]
    assert btc_1h.path == ohlcv.path("binance", "BTC/USDT", "1h").resolve()
    assert btc_1h.rows == btc_1h.rows_added == len(load_sample("BTC/USDT", "1h"))
    assert btc_1h.first == pd.Timestamp("2022-01-01T00:00Z")
    assert btc_1h.problems == ("1 gap, 1 missing bars (first: 2023-03-24T13:00:00+00:00 .. 2023-03-24T13:00:00+00:00)",)
    sol_funding = report.items[-1]
    assert (sol_funding.path, sol_funding.rows) == (None, 0)
    assert "no funding" in sol_funding.problems[0]
    assert sorted(p.name for p in (root / "binance").iterdir()) == [
        "BTC-USDT_1d.parquet",
        "BTC-USDT_1h.parquet",
        "BTC-USDT_funding.parquet",
        "SOL-USDT_1d.parquet",
        "SOL-USDT_1h.parquet",
    ]
    assert report.to_dict()["rows_added"] == report.rows_added > 0

    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "binance").iterdir()}
    again = refresh_data(["BTC/USDT", "SOL/USDT"], ["1h", "1d"], source="sample")
    assert again.rows_added == 0
    assert [i.rows for i in again.items] == [i.rows for i in report.items]
    assert {p.name: p.stat().st_mtime_ns for p in (root / "binance").iterdir()} == stamps  # nothing rewritten


def test_sample_ingest_respects_since_and_now(tmp_path: Path) -> None:
    first = refresh_candles(
        "ETH", "1h", source="sample", cache_root=tmp_path, since="2024-01-01", now_ms=ms("2024-01-02")
    )
    assert (first.rows, first.last) == (24, pd.Timestamp("2024-01-01T23:00Z"))  # the bar closing at now is in
    later = refresh_candles(
        "ETH", "1h", source="sample", cache_root=tmp_path, since="2024-01-01", now_ms=ms("2024-01-03")
    )
    assert (later.rows, later.rows_added) == (48, 24)
    rates = refresh_funding("ETH", source="sample", cache_root=tmp_path, since="2024-01-01", now_ms=ms("2024-01-02"))
    assert (rates.rows, rates.last) == (4, pd.Timestamp("2024-01-02T00:00Z"))  # settled at now counts
    pdt.assert_series_equal(
        FundingCache(tmp_path).load("binance", "ETH"), load_sample_funding("ETH", "2024-01-01", "2024-01-02")
    )


def test_bad_requests_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source='sample' cannot fill the 'okx' cache"):
        refresh_data(["BTC/USDT"], ["1h"], source="sample", exchange_id="okx", cache_root=tmp_path)
    with pytest.raises(ValueError, match="source must be one of"):
        refresh_data(["BTC/USDT"], ["1h"], source="live", cache_root=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbols must not be empty"):
        refresh_data([], ["1h"], source="sample", cache_root=tmp_path)
    with pytest.raises(ValueError, match="spot pair"):
        refresh_candles("BTC/USDT:USDT", "1h", source="sample", cache_root=tmp_path)
    with pytest.raises(ValueError):
        refresh_data(["BTC/USDT"], ["1h", "1hour"], source="sample", cache_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_exchange_ingest_through_ccxt_matches_the_sample(binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    now = binance_server.now_ms  # half way through the sample's last hour
    report = refresh_data(
        ["BTC/USDT"], "1h", source="exchange", cache_root=tmp_path, exchange_url=binance_server.url, now_ms=now
    )
    candles, funding = report.items
    last_closed = pd.Timestamp(now - HOUR_MS // 2 - HOUR_MS, unit="ms", tz="UTC")
    since = pd.Timestamp(now, unit="ms", tz="UTC") - pd.Timedelta(days=30)  # the default lookback
    cached = OhlcvCache(tmp_path).load("binance", "BTC/USDT", "1h")
    pdt.assert_frame_equal(cached, load_sample("BTC/USDT", "1h", since, last_closed))
    rates = FundingCache(tmp_path).load("binance", "BTC/USDT")
    pdt.assert_series_equal(rates, load_sample_funding("BTC/USDT", since, pd.Timestamp(now, unit="ms", tz="UTC")))
    assert (candles.source, candles.exchange, candles.rows, candles.rows_added) == ("exchange", "binance", 719, 719)
    assert candles.origin == f"binance @ {binance_server.url}"
    assert funding.origin == f"binance @ {binance_server.url}"
    assert (funding.dataset, funding.rows, funding.rows_added, funding.problems) == ("funding", 90, 90, ())
    # candles from spot markets only, funding from USDⓈ-M only
    assert binance_server.requests["/api/v3/exchangeInfo"] == 1
    assert binance_server.requests["/fapi/v1/exchangeInfo"] == 1

    binance_server.now_ms = now + HOUR_MS  # the open bar has closed: the next run fetches only it
    binance_server.reset_counts()
    again = refresh_data(
        ["BTC/USDT"],
        "1h",
        source="exchange",
        cache_root=tmp_path,
        exchange_url=binance_server.url,
        now_ms=binance_server.now_ms,
    )
    assert [i.rows_added for i in again.items] == [1, 0]
    (klines,) = [q for p, q in binance_server.request_log if p == "/api/v3/klines"]
    assert int(klines["startTime"]) == int(last_closed.value // 10**6) + HOUR_MS


def test_exchange_continues_a_sample_seeded_cache(binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    seed_until = ms("2026-05-10")
    refresh_data(["ETH/USDT"], ["1h"], source="sample", cache_root=tmp_path, now_ms=seed_until, funding=True)
    exchange = make_candle_exchange("binance", binance_server.url, timeout=2_000)
    item = refresh_candles(
        "ETH/USDT", "1h", source="exchange", cache_root=tmp_path, exchange=exchange, now_ms=binance_server.now_ms
    )
    assert item.rows_added == 6 * 24 + 18  # 2026-05-10 00:00 .. 2026-05-16 17:00
    assert item.origin == f"binance @ {binance_server.url}"  # the host the given exchange object talks to
    pdt.assert_frame_equal(
        OhlcvCache(tmp_path).load("binance", "ETH/USDT", "1h"), load_sample("ETH", "1h", None, "2026-05-16T17:00")
    )
    rates = refresh_funding(
        "ETH/USDT",
        source="exchange",
        cache_root=tmp_path,
        exchange_url=binance_server.url,
        now_ms=binance_server.now_ms,
    )
    assert rates.rows_added == 2 + 5 * 3 + 3  # settlements after the seeded 2026-05-10 00:00 up to 05-16 16:00
    pdt.assert_series_equal(
        FundingCache(tmp_path).load("binance", "ETH"), load_sample_funding("ETH", None, "2026-05-16T16:00")
    )


def test_a_symbol_without_a_perpetual_skips_funding(tmp_path: Path) -> None:
    with BinanceSpotServer(perps=("BTCUSDT",)) as server:
        report = refresh_data(
            ["ETH/USDT"],
            ["1h"],
            source="exchange",
            cache_root=tmp_path,
            exchange_url=server.url,
            now_ms=server.now_ms,
            since=server.now_ms - 5 * HOUR_MS,
        )
    candles, funding = report.items
    assert candles.rows == 4
    assert (funding.path, funding.rows, funding.problems) == (
        None,
        0,
        ("binance lists no perpetual ETH/USDT:USDT; skipped",),
    )
    assert report.problems == ["ETH/USDT funding: binance lists no perpetual ETH/USDT:USDT; skipped"]


def test_an_unreachable_exchange_raises_and_never_falls_back(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    delays: list[float] = []
    with pytest.raises(DataSourceError) as info:
        refresh_data(
            ["BTC/USDT"],
            ["1h"],
            source="exchange",
            cache_root=tmp_path,
            exchange_url=url,
            max_retries=2,
            sleep=delays.append,
        )
    message = str(info.value)
    assert f"exchange 'binance' at {url} is unreachable" in message
    assert "does not fall back to the bundled sample" in message
    assert delays == [1.0, 2.0]
    assert not any(tmp_path.iterdir())


def test_a_unit_retries_network_errors_and_raises_refusals(binance_server: BinanceSpotServer, tmp_path: Path) -> None:
    binance_server.fail_next(1, status=503, path="/api/v3/klines")
    item = refresh_candles(
        "BTC/USDT",
        "1h",
        source="exchange",
        cache_root=tmp_path,
        exchange_url=binance_server.url,
        now_ms=binance_server.now_ms,
        since=binance_server.now_ms - 3 * HOUR_MS,
        sleep=no_sleep,
    )
    assert item.rows == 2
    with pytest.raises(DataSourceError, match="BadSymbol"):
        refresh_candles(
            "DOGE/USDT", "1h", source="exchange", cache_root=tmp_path, exchange_url=binance_server.url, sleep=no_sleep
        )
