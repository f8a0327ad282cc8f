"""`ingest`: refresh candles and funding into the local cache, through ccxt (online) or from the sample (offline).

One task per unit (a symbol's candles at one timeframe, or its funding), so a failing download retries on its own
and a report lists each unit. Retries are here because these tasks are network I/O; the library underneath also
retries transient HTTP failures with backoff inside one attempt.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from arena_lib.data.ingest import IngestItem, Source, refresh_candles, refresh_funding

DEFAULT_SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT"]


@task(name="refresh-candles", retries=2, retry_delay_seconds=[10, 60])
def candles_task(symbol: str, timeframe: str, options: dict[str, Any]) -> IngestItem:
    return refresh_candles(symbol, timeframe, **options)


@task(name="refresh-funding", retries=2, retry_delay_seconds=[10, 60])
def funding_task(symbol: str, options: dict[str, Any]) -> IngestItem:
    return refresh_funding(symbol, **options)


@flow(name="ingest")
def ingest(
    symbols: list[str] | None = None,
    timeframes: list[str] | None = None,
    source: Source = "sample",
    funding: bool = True,
    exchange_id: str = "binance",
    exchange_url: str | None = None,
    cache_root: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """Refresh every symbol x timeframe's candles, then each symbol's funding; returns the per-unit report.

    `source="sample"` (the default, offline) seeds the cache from the bundled real sample; `source="exchange"`
    downloads the closed bars since the last cached one through ccxt (`exchange_url` redirects its hosts, e.g. to
    a proxy). An unreachable exchange fails the unit after its retries; it never falls back to the sample.
    """
    options: dict[str, Any] = {
        "source": source,
        "cache_root": cache_root,
        "exchange_id": exchange_id,
        "exchange_url": exchange_url,
        "since": since,
        "max_retries": 2,
    }
    items = [
        candles_task(symbol, timeframe, options)
        for symbol in symbols or DEFAULT_SYMBOLS
        for timeframe in timeframes or ["1h"]
    ]
    if funding:
        items += [funding_task(symbol, options) for symbol in symbols or DEFAULT_SYMBOLS]
    log = get_run_logger()
    for item in items:
        note = f" ({'; '.join(item.problems)})" if item.problems else ""
        log.info(
            "%s %s: %d rows, +%d from %s%s", item.symbol, item.dataset, item.rows, item.rows_added, item.origin, note
        )
    return {
        "source": source,
        "rows_added": sum(item.rows_added for item in items),
        "items": [item.to_dict() for item in items],
    }
