"""The exchange edge: paginated OHLCV downloads through ccxt, with retries, and an incremental parquet cache.

Why here and only here: exchange calls are I/O and fail in many ways (timeouts, 5xx, rate limits, unknown
symbols). This module turns them into one behaviour: transient network failures are retried with exponential
backoff, exchange refusals become a clear ``DataSourceError`` naming exchange, symbol and timeframe, and a bar that
is still forming is never returned (it would leak the future into a backtest and change after the fact).

"Now" is an argument (``now_ms``), defaulting to the exchange's own clock, so tests and replays are deterministic.
ccxt is imported lazily: ``import arena_lib.data`` stays cheap.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from arena_lib.data.errors import DataNotFoundError, DataSourceError
from arena_lib.data.loader import load_ohlcv
from arena_lib.data.quality import check_ohlcv
from arena_lib.data.resample import OHLCV_COLUMNS, TimeLike, timeframe_to_ns, to_utc_timestamp

if TYPE_CHECKING:
    from ccxt.base.exchange import Exchange

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF_S = 60.0
URL_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+")
"""The scheme and host of a URL (``https://api.binance.com``), as ccxt's API URLs start."""


def to_epoch_ms(value: TimeLike, name: str) -> int:
    """``value`` (any `TimeLike`; ``name`` labels its error) as integer epoch milliseconds, as ccxt takes times."""
    return int(to_utc_timestamp(value, name).value) // 1_000_000


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _rewrite_hosts(node: Any, base_url: str) -> Any:
    if isinstance(node, str):
        return URL_HOST.sub(base_url.rstrip("/"), node, count=1)
    if isinstance(node, dict):
        return {k: _rewrite_hosts(v, base_url) for k, v in node.items()}
    return node


def api_urls_for_host(exchange_id: str, base_url: str) -> dict[str, Any]:
    """``urls_override`` that sends every REST API call of ``exchange_id`` to ``base_url`` (paths are kept).

    Used to point the real ccxt code at a loopback server that speaks the exchange's protocol, or at a proxy.
    """
    import ccxt

    default_api = getattr(ccxt, exchange_id)().urls["api"]
    return {"api": _rewrite_hosts(default_api, base_url)}


def make_exchange(exchange_id: str, urls_override: dict[str, Any] | None = None, **options: Any) -> Exchange:
    """Build a ccxt exchange with ccxt's own rate limiter on; ``options`` are ccxt constructor settings.

    ``urls_override`` is deep-merged into ``exchange.urls`` (see ``api_urls_for_host``). Public market data needs
    no keys; pass ``apiKey``/``secret`` in ``options`` only for private endpoints.
    """
    import ccxt

    if exchange_id not in ccxt.exchanges:
        raise DataSourceError(
            f"unknown exchange id {exchange_id!r}; see ccxt.exchanges for the {len(ccxt.exchanges)} supported ids"
        )
    config: dict[str, Any] = {"enableRateLimit": True, **options}
    exchange: Exchange = getattr(ccxt, exchange_id)(config)
    if urls_override:
        exchange.urls = _deep_merge(exchange.urls, urls_override)
    return exchange


def with_retries(
    call: Callable[[], T], what: str, max_retries: int, backoff_s: float, sleep: Callable[[float], None]
) -> T:
    """Run ``call``; retry ccxt network errors with exponential backoff, translate exchange errors."""
    import ccxt

    attempt = 0
    while True:
        try:
            return call()
        except ccxt.NetworkError as exc:
            if attempt >= max_retries:
                raise DataSourceError(
                    f"{what}: still failing after {max_retries} retries ({type(exc).__name__}: {exc})"
                ) from exc
            delay = min(backoff_s * (2**attempt), MAX_BACKOFF_S)
            log.warning("%s: %s, retry %d/%d in %.2fs", what, type(exc).__name__, attempt + 1, max_retries, delay)
            sleep(delay)
            attempt += 1
        except ccxt.ExchangeError as exc:
            raise DataSourceError(f"{what}: the exchange refused the request ({type(exc).__name__}: {exc})") from exc
        except ccxt.BaseError as exc:
            raise DataSourceError(f"{what}: ccxt failed ({type(exc).__name__}: {exc})") from exc


def _frame(rows: list[list[Any]]) -> pd.DataFrame:
    if not rows:
        index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="timestamp")
        return pd.DataFrame({c: np.array([], dtype=np.float64) for c in OHLCV_COLUMNS}, index=index)
    arr = np.asarray([r[:6] for r in rows], dtype=np.float64)
    stamps = pd.to_datetime(arr[:, 0].astype(np.int64), unit="ms", utc=True)
    index = pd.DatetimeIndex(stamps).as_unit("ns").rename("timestamp")
    return pd.DataFrame({c: arr[:, i + 1] for i, c in enumerate(OHLCV_COLUMNS)}, index=index)


def fetch_ohlcv(
    exchange: Exchange,
    symbol: str,
    timeframe: str,
    since: TimeLike,
    until: TimeLike | None = None,
    limit: int = 1000,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    now_ms: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Download every *closed* bar with open time in ``[since, until)`` (integers are epoch ms).

    Pages of ``limit`` bars are requested, advancing past the last bar received, until ``until``, until no
    closed bar can exist any more (``now_ms``, default ``exchange.milliseconds()``), or until the exchange returns
    nothing new. The bar that is still forming (close time after ``now_ms``) is dropped. Network failures
    (timeouts, 5xx, rate limits) are retried ``max_retries`` times with exponential backoff starting at
    ``backoff_s``; exchange errors (unknown symbol, bad request) raise ``DataSourceError`` at once.
    Pages are merged, sorted and de-duplicated by timestamp; gaps are left as the exchange reports them.
    """
    if limit < 1 or max_retries < 0 or backoff_s < 0:
        raise ValueError(f"need limit >= 1, max_retries >= 0, backoff_s >= 0; got {limit}, {max_retries}, {backoff_s}")
    step = timeframe_to_ns(timeframe) // 1_000_000
    start = to_epoch_ms(since, "since")
    stop = to_epoch_ms(until, "until") if until is not None else None
    now = int(now_ms if now_ms is not None else exchange.milliseconds())
    what = f"{exchange.id} {symbol} {timeframe}"
    if not getattr(exchange, "enableRateLimit", True):
        log.warning("%s: enableRateLimit is off; the exchange may ban this client", what)
    # The last open time whose bar has closed by `now` (and lies before `until`).
    last_open = now - step
    if stop is not None:
        last_open = min(last_open, stop - 1)
    params: dict[str, Any] = {} if stop is None else {"until": stop - 1}

    rows: list[list[Any]] = []
    cursor = start
    while cursor <= last_open:
        page_since = cursor
        request = functools.partial(
            exchange.fetch_ohlcv, symbol, timeframe, since=page_since, limit=limit, params=dict(params)
        )
        batch: list[list[Any]] = with_retries(
            request,
            what,
            max_retries,
            backoff_s,
            sleep,
        )
        batch = [row for row in batch if row[0] >= page_since]
        if not batch:
            break
        rows.extend(batch)
        cursor = max(int(row[0]) for row in batch) + step
    frame = _frame([row for row in rows if row[0] <= last_open])
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    log.info("%s: %d closed bars from %s", what, len(frame), pd.Timestamp(start, unit="ms", tz="UTC"))
    return frame


def symbol_key(symbol: str) -> str:
    """``BTC/USDT:USDT`` as ``BTC-USDT-USDT``: a symbol as it appears in cache file names."""
    return re.sub(r"[^A-Za-z0-9]+", "-", symbol).strip("-")


class OhlcvCache:
    """Parquet cache of exchange OHLCV, one file per exchange/symbol/timeframe, updated incrementally.

    Why: re-downloading years of bars for each run is slow and hammers the exchange. ``update`` asks only for
    bars after the last cached one (and before the first, when ``since`` reaches further back), merges, runs the
    quality checks, and replaces the file atomically so a crash never leaves a half-written cache.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, exchange_id: str, symbol: str, timeframe: str) -> Path:
        """Where the bars of one exchange/symbol/timeframe live, e.g. ``root/binance/BTC-USDT_1h.parquet``."""
        timeframe_to_ns(timeframe)  # validate
        return self.root / exchange_id / f"{symbol_key(symbol)}_{timeframe}.parquet"

    def entries(self) -> list[str]:
        """Cached series as ``exchange/SYMBOL_timeframe`` strings (for listings and error messages)."""
        if not self.root.is_dir():
            return []
        return sorted(f"{p.parent.name}/{p.stem}" for p in self.root.glob("*/*.parquet"))

    def load(self, exchange_id: str, symbol: str, timeframe: str) -> pd.DataFrame:
        """The cached bars; ``DataNotFoundError`` listing what is cached when there are none."""
        path = self.path(exchange_id, symbol, timeframe)
        if not path.is_file():
            cached = ", ".join(self.entries()) or "nothing yet"
            raise DataNotFoundError(
                f"no cached {exchange_id} {symbol} {timeframe} bars in {self.root}; cached: {cached}"
            )
        return load_ohlcv(path)

    def update(
        self,
        exchange: Exchange,
        symbol: str,
        timeframe: str,
        since: TimeLike,
        until: TimeLike | None = None,
        now_ms: int | None = None,
        **fetch_options: Any,
    ) -> pd.DataFrame:
        """Fetch the missing closed bars since ``since``, merge them into the cache, check and save; return all.

        Raises ``DataQualityError`` (and leaves the cache untouched) when the merged bars fail the checks.
        ``fetch_options`` go to ``fetch_ohlcv`` (``limit``, ``max_retries``, ``backoff_s``, ``sleep``).
        """
        path = self.path(exchange.id, symbol, timeframe)
        step = timeframe_to_ns(timeframe) // 1_000_000
        since_ms = to_epoch_ms(since, "since")
        now = int(now_ms if now_ms is not None else exchange.milliseconds())
        parts: list[pd.DataFrame] = []
        if path.is_file():
            cached = load_ohlcv(path)
            parts.append(cached)
        if parts and len(parts[0]):
            cached_ns = pd.DatetimeIndex(parts[0].index).as_unit("ns").asi8
            first_ms, last_ms = int(cached_ns.min()) // 1_000_000, int(cached_ns.max()) // 1_000_000
            if since_ms < first_ms:
                parts.insert(
                    0, fetch_ohlcv(exchange, symbol, timeframe, since_ms, first_ms, now_ms=now, **fetch_options)
                )
            parts.append(
                fetch_ohlcv(
                    exchange, symbol, timeframe, max(since_ms, last_ms + step), until, now_ms=now, **fetch_options
                )
            )
        else:
            parts.append(fetch_ohlcv(exchange, symbol, timeframe, since_ms, until, now_ms=now, **fetch_options))
        merged = pd.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else parts[-1]
        merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        check_ohlcv(merged, timeframe).raise_if_failed(f"{exchange.id} {symbol} {timeframe} cache update")
        self._write_atomic(merged, path)
        return merged

    @staticmethod
    def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            frame.to_parquet(tmp, engine="pyarrow", compression="zstd", index=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


# -- exchange minimums ----------------------------------------------------------------------------------------------
def _market_for(markets: Mapping[str, Any], symbol: str) -> Any:
    """The ccxt market of a config symbol: its linear perpetual (``BTC/USDT`` -> ``BTC/USDT:USDT``, the market the
    engine simulates) when loaded, else the market of that exact name (a spot pair, or a symbol given with its
    settle currency); None when neither is loaded."""
    if ":" not in symbol and "/" in symbol:
        perp = f"{symbol}:{symbol.split('/', 1)[1]}"
        if perp in markets:
            return markets[perp]
    return markets.get(symbol)


def _market_minimums(markets: Mapping[str, Any], symbols: Iterable[str], limit: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for symbol in symbols:
        market = _market_for(markets, symbol)
        try:
            value = market["limits"][limit]["min"]
        except (KeyError, TypeError):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number) and number >= 0:
            out[symbol] = number
    return out


def min_notional_from_markets(markets: Mapping[str, Any], symbols: Iterable[str]) -> dict[str, float]:
    """Each symbol's minimum order notional (``market['limits']['cost']['min']``, quote currency) from ccxt's loaded
    `markets` (``exchange.load_markets()``), keyed by the symbols as given: the shape of
    `ExecutionConfig.min_notional`. A symbol's linear perpetual is preferred to its spot pair (see `_market_for`);
    symbols with no market or no published minimum are left out, so the config's `default_min_notional` applies.
    On Binance USDⓈ-M, ccxt fills ``cost.min`` from the MIN_NOTIONAL filter (``notional``)."""
    return _market_minimums(markets, symbols, "cost")


def min_amount_from_markets(markets: Mapping[str, Any], symbols: Iterable[str]) -> dict[str, float]:
    """Each symbol's minimum order quantity (``market['limits']['amount']['min']``, base asset) from ccxt's loaded
    `markets`, keyed by the symbols as given: the shape of `ExecutionConfig.min_amount`. Symbols with no market or
    no published minimum are left out (no amount minimum). On Binance, ccxt fills ``amount.min`` from LOT_SIZE
    ``minQty``."""
    return _market_minimums(markets, symbols, "amount")
