"""Refresh the local market-data cache: spot candles and perpetual funding, from the bundled sample or an exchange.

Why: a local copy of the exchange's history (``data/cache/`` by default) that grows incrementally, so downloads
happen on a schedule rather than inside a backtest or a trading round. (The research notebooks and replay runs read
the bundled sample, or ``ARENA_DATA_DIR``; reading this cache directly is not wired yet.) ``refresh_data`` fills
it; the Prefect ``ingest`` flow calls the per-unit functions (``refresh_candles`` for one symbol/timeframe,
``refresh_funding`` for one symbol) so each unit retries on its own.

Two sources, chosen by the operator and never swapped behind their back:

- ``"sample"`` (offline): copies the bundled real Binance sample into the cache, in exactly the files
  ``OhlcvCache``/``FundingCache`` write (``<root>/binance/BTC-USDT_1h.parquet``, ``BTC-USDT_funding.parquet``).
  Readers cannot tell the two apart; the report's ``source``/``origin`` say where rows came from. Rows already
  cached are kept as they are (only missing times are added), so a second run adds nothing and rewrites nothing.
- ``"exchange"``: downloads through ccxt, incrementally, from the last cached bar (or ``DEFAULT_LOOKBACK`` back for
  an empty cache). Candles come from the spot markets (the exchange is built spot-only, as the paper runner does);
  funding from the linear perpetual of each symbol (``BTC/USDT`` -> ``BTC/USDT:USDT``), through a second exchange
  object that loads only swap markets, so spot candles still refresh where futures APIs are blocked. An exchange
  that cannot be reached raises ``DataSourceError``; there is no silent fallback to the sample.

Failures raise (``DataSourceError``, ``DataQualityError``, ``DataNotFoundError``); the report's ``problems`` hold
what is worth knowing but not fatal: gaps in the cached bars, a symbol without a perpetual or sample funding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from arena_lib.core.settings import settings
from arena_lib.data import sample
from arena_lib.data.ccxt_source import URL_HOST, OhlcvCache, api_urls_for_host, make_exchange, with_retries
from arena_lib.data.errors import DataSourceError
from arena_lib.data.funding_source import FundingCache, empty_funding, perp_symbol
from arena_lib.data.loader import load_funding, load_ohlcv
from arena_lib.data.quality import check_ohlcv
from arena_lib.data.resample import TimeLike, timeframe_to_ns, to_utc_timestamp

if TYPE_CHECKING:
    from ccxt.base.exchange import Exchange

log = logging.getLogger(__name__)

Source = Literal["sample", "exchange"]
CACHE_ENV = "ARENA_DATA_CACHE"
"""The variable that moves the cache (`Settings.data_cache`)."""
FUNDING = "funding"
DEFAULT_LOOKBACK = pd.Timedelta(days=30)
"""How far back an empty cache is filled from an exchange when no ``since`` is given."""
SPOT_OPTIONS: dict[str, Any] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}
"""ccxt options for candles: spot markets only (no futures endpoints), as ``session.start_paper_run`` uses."""
SWAP_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}},
}
"""ccxt options for funding, per exchange: load only linear swap markets where ccxt allows it (Binance: /fapi only).
Exchanges not listed get ``{"defaultType": "swap"}`` and load all their markets."""


def default_cache_root() -> Path:
    """``$ARENA_DATA_CACHE`` when set, else ``<project root>/data/cache`` (read at call time)."""
    return settings().data_cache_dir


@dataclass(frozen=True)
class IngestItem:
    """What one unit (symbol and timeframe, or symbol and ``"funding"``) holds in the cache after a refresh.

    ``rows``/``first``/``last`` describe the whole cached series, ``rows_added`` what this refresh added;
    ``origin`` is the sample file or the exchange (and URL) the rows came from; ``path`` is ``None`` when the
    unit was skipped (see ``problems``).
    """

    symbol: str
    dataset: str
    source: Source
    exchange: str
    origin: str
    path: Path | None
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    rows_added: int
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (timestamps as ISO-8601), e.g. for a flow artifact or a log line."""
        return {
            "symbol": self.symbol,
            "dataset": self.dataset,
            "source": self.source,
            "exchange": self.exchange,
            "origin": self.origin,
            "path": None if self.path is None else str(self.path),
            "rows": self.rows,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "rows_added": self.rows_added,
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class IngestReport:
    """Every unit of one ``refresh_data`` call, in the order they ran."""

    source: Source
    cache_root: Path
    items: tuple[IngestItem, ...] = field(default_factory=tuple)

    @property
    def rows_added(self) -> int:
        return sum(item.rows_added for item in self.items)

    @property
    def problems(self) -> list[str]:
        """Every unit's problems, each prefixed with its symbol and dataset."""
        return [f"{item.symbol} {item.dataset}: {p}" for item in self.items for p in item.problems]

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "cache_root": str(self.cache_root),
            "rows_added": self.rows_added,
            "items": [item.to_dict() for item in self.items],
        }

    def summary(self) -> str:
        """One line per unit, for logs and the CLI."""
        lines = [f"ingest from {self.source} into {self.cache_root}: {self.rows_added} rows added"]
        for item in self.items:
            span = f"{item.first.isoformat()} -> {item.last.isoformat()}" if item.first and item.last else "empty"
            note = f" ({'; '.join(item.problems)})" if item.problems else ""
            lines.append(f"  {item.symbol} {item.dataset}: {item.rows} rows {span}, +{item.rows_added}{note}")
        return "\n".join(lines)


# ---- exchanges ---------------------------------------------------------------------------------------------------
def make_candle_exchange(exchange_id: str = "binance", exchange_url: str | None = None, **options: Any) -> Exchange:
    """A ccxt exchange for spot candles (spot markets only); ``exchange_url`` redirects its REST hosts."""
    urls = api_urls_for_host(exchange_id, exchange_url) if exchange_url else None
    return make_exchange(exchange_id, urls, options=SPOT_OPTIONS, **options)


def make_funding_exchange(exchange_id: str = "binance", exchange_url: str | None = None, **options: Any) -> Exchange:
    """A ccxt exchange for perpetual funding (swap markets); same id as the candle one, so both share a folder."""
    urls = api_urls_for_host(exchange_id, exchange_url) if exchange_url else None
    return make_exchange(exchange_id, urls, options=SWAP_OPTIONS.get(exchange_id, {"defaultType": "swap"}), **options)


def _origin(exchange: Exchange, exchange_url: str | None) -> str:
    """``'binance @ https://api.binance.com'``: which exchange, and which host answered (a proxy, a test server)."""
    if exchange_url:
        return f"{exchange.id} @ {exchange_url}"
    api = exchange.urls.get("api")
    hostname = str(getattr(exchange, "hostname", "") or "")
    urls = [str(u).replace("{hostname}", hostname) for u in (api.values() if isinstance(api, dict) else [api])]
    hosts = sorted({match.group(0) for url in urls if (match := URL_HOST.match(url))})
    return f"{exchange.id} @ {hosts[0]}" if len(hosts) == 1 else f"{exchange.id} (ccxt API hosts)"


def _load_markets(
    exchange: Exchange, exchange_url: str | None, max_retries: int, backoff_s: float, sleep: Callable[[float], None]
) -> None:
    """Load the exchange's markets with retries; failure is a ``DataSourceError`` saying there is no fallback."""
    import ccxt

    if exchange.markets:
        return
    try:
        with_retries(exchange.load_markets, f"{exchange.id} markets", max_retries, backoff_s, sleep)
    except DataSourceError as exc:
        where = f" at {exchange_url}" if exchange_url else ""
        state = "is unreachable" if isinstance(exc.__cause__, ccxt.NetworkError) else "refused to list its markets"
        raise DataSourceError(
            f"exchange {exchange.id!r}{where} {state}: {exc}. source='exchange' does not fall back to the bundled "
            "sample; run with source='sample' to work offline"
        ) from exc


# ---- helpers -----------------------------------------------------------------------------------------------------
def _check_source(source: str, exchange_id: str) -> None:
    if source not in get_args(Source):
        raise ValueError(f"source must be one of {list(get_args(Source))}, got {source!r}")
    if source == "sample" and exchange_id != sample.EXCHANGE:
        raise ValueError(
            f"the bundled sample is {sample.EXCHANGE} data; source='sample' cannot fill the {exchange_id!r} cache "
            f"(use exchange_id={sample.EXCHANGE!r}, or source='exchange')"
        )


def _spot_symbol(symbol: str) -> str:
    if ":" in symbol:
        raise ValueError(f"candles are ingested from spot markets; pass the spot pair, not {symbol!r}")
    return sample.normalize_symbol(symbol)


def _span(index: pd.Index) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    if not len(index):
        return None, None
    return pd.Timestamp(index.min()), pd.Timestamp(index.max())


def _gap_problems(frame: pd.DataFrame, timeframe: str) -> tuple[str, ...]:
    """Gaps are not errors (real outages stay missing) but the operator should see them."""
    report = check_ohlcv(frame, timeframe)
    if not report.gaps:
        return ()
    first, count = report.gaps[0], len(report.gaps)
    return (
        f"{count} gap{'s' if count != 1 else ''}, {report.missing_bars} missing bars "
        f"(first: {first.start.isoformat()} .. {first.end.isoformat()})",
    )


def _cached_rows(path: Path, loader: Callable[[Path], pd.DataFrame]) -> pd.DataFrame | None:
    return loader(path) if path.is_file() else None


def _update_cached(
    path: Path,
    loader: Callable[[Path], Any],
    update: Callable[[pd.Timestamp, int], Any],
    exchange: Exchange,
    since: TimeLike | None,
    now_ms: int | None,
) -> tuple[Any, int]:
    """Run a cache's ``update(start, now)`` from ``since`` (default: the last cached time) to ``now_ms`` (default: the
    exchange's clock); return what the cache then holds and how many rows the update added."""
    before = _cached_rows(path, loader)
    now = int(now_ms if now_ms is not None else exchange.milliseconds())
    held = update(_resolve_since(since, None if before is None else before.index, now), now)
    return held, len(held) - (0 if before is None else len(before))


def _resolve_since(since: TimeLike | None, cached_index: pd.Index | None, now_ms: int) -> pd.Timestamp:
    """``since`` as given; else the last cached time; else ``DEFAULT_LOOKBACK`` before now."""
    if since is not None:
        return to_utc_timestamp(since, "since")
    if cached_index is not None and len(cached_index):
        return pd.Timestamp(cached_index.max())
    return pd.Timestamp(now_ms, unit="ms", tz="UTC") - DEFAULT_LOOKBACK


def _window(index: pd.DatetimeIndex, since: TimeLike | None, last_ok: pd.Timestamp | None) -> np.ndarray:
    """Rows at or after ``since`` and at or before ``last_ok`` (either may be ``None``: no bound)."""
    mask = np.ones(len(index), dtype=bool)
    if since is not None:
        mask &= index >= to_utc_timestamp(since, "since")
    if last_ok is not None:
        mask &= index <= last_ok
    return mask


# ---- one unit ----------------------------------------------------------------------------------------------------
def refresh_candles(
    symbol: str,
    timeframe: str,
    *,
    source: Source,
    cache_root: Path | str | None = None,
    exchange_id: str = "binance",
    exchange_url: str | None = None,
    since: TimeLike | None = None,
    now_ms: int | None = None,
    exchange: Exchange | None = None,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestItem:
    """Bring one symbol/timeframe of spot candles in the cache up to date; return what the cache now holds.

    ``source='sample'``: adds the sample's bars with open time at or after ``since`` (default: all of them) whose
    bar has closed by ``now_ms`` (default: no cut); ``exchange``/``exchange_url`` are ignored. ``source='exchange'``:
    ``OhlcvCache.update`` from ``since`` (default: the last cached bar, else ``DEFAULT_LOOKBACK`` ago) up to
    ``now_ms`` (default: the exchange's clock) through ``exchange`` (default: ``make_candle_exchange(exchange_id,
    exchange_url)``), with ``max_retries``/``backoff_s``/``sleep`` for each request.
    """
    _check_source(source, exchange_id)
    step = timeframe_to_ns(timeframe)
    pair = _spot_symbol(symbol)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    cache = OhlcvCache(root)
    if source == "sample":
        return _candles_from_sample(cache, pair, timeframe, step, since, now_ms)

    ex = exchange if exchange is not None else make_candle_exchange(exchange_id, exchange_url)
    _load_markets(ex, exchange_url, max_retries, backoff_s, sleep)
    path = cache.path(ex.id, pair, timeframe)
    frame, added = _update_cached(
        path,
        load_ohlcv,
        lambda start, now: cache.update(
            ex, pair, timeframe, start, now_ms=now, max_retries=max_retries, backoff_s=backoff_s, sleep=sleep
        ),
        ex,
        since,
        now_ms,
    )
    first, last = _span(frame.index)
    log.info("%s %s %s: %d bars cached, %d added", ex.id, pair, timeframe, len(frame), added)
    return IngestItem(
        symbol=pair,
        dataset=timeframe,
        source="exchange",
        exchange=ex.id,
        origin=_origin(ex, exchange_url),
        path=path,
        rows=len(frame),
        first=first,
        last=last,
        rows_added=added,
        problems=_gap_problems(frame, timeframe),
    )


def _candles_from_sample(
    cache: OhlcvCache, pair: str, timeframe: str, step_ns: int, since: TimeLike | None, now_ms: int | None
) -> IngestItem:
    bars = sample.load_sample(pair, timeframe)
    last_ok = None if now_ms is None else pd.Timestamp(now_ms * 1_000_000 - step_ns, unit="ns", tz="UTC")
    bars = bars.loc[_window(pd.DatetimeIndex(bars.index), since, last_ok)]
    path = cache.path(sample.EXCHANGE, pair, timeframe)
    before = _cached_rows(path, load_ohlcv)
    if before is None:
        merged, added = bars, len(bars)
    else:
        new = bars.loc[~bars.index.isin(before.index)]
        merged = pd.concat([before, new]).sort_index() if len(new) else before
        added = len(new)
    check_ohlcv(merged, timeframe).raise_if_failed(f"{sample.EXCHANGE} {pair} {timeframe} cache from the sample")
    if before is None or added:
        OhlcvCache._write_atomic(merged, path)
    first, last = _span(merged.index)
    file_name = f"{sample.EXCHANGE}_{pair.replace('/', '-')}_{timeframe}.parquet"
    return IngestItem(
        symbol=pair,
        dataset=timeframe,
        source="sample",
        exchange=sample.EXCHANGE,
        origin=f"sample {sample.sample_dir() / file_name}",
        path=path,
        rows=len(merged),
        first=first,
        last=last,
        rows_added=added,
        problems=_gap_problems(merged, timeframe),
    )


def refresh_funding(
    symbol: str,
    *,
    source: Source,
    cache_root: Path | str | None = None,
    exchange_id: str = "binance",
    exchange_url: str | None = None,
    since: TimeLike | None = None,
    now_ms: int | None = None,
    exchange: Exchange | None = None,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestItem:
    """Bring one symbol's perpetual funding in the cache up to date; return what the cache now holds.

    ``symbol`` is the spot pair (``BTC/USDT``) or the perpetual (``BTC/USDT:USDT``). ``source='sample'``: adds the
    sample's settlements at or after ``since`` and at or before ``now_ms``; a sample symbol without funding is
    skipped (``problems`` says so). ``source='exchange'``: ``FundingCache.update`` through ``exchange`` (default:
    ``make_funding_exchange(exchange_id, exchange_url)``, swap markets only); a symbol the exchange lists no
    perpetual for, or an exchange without funding history in ccxt, is skipped, not an error. Defaults for
    ``since``/``now_ms`` and the retry settings are as in ``refresh_candles``.
    """
    _check_source(source, exchange_id)
    perp = perp_symbol(symbol)
    pair = perp.split(":")[0]
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    cache = FundingCache(root)
    if source == "sample":
        return _funding_from_sample(cache, pair, since, now_ms)

    ex = exchange if exchange is not None else make_funding_exchange(exchange_id, exchange_url)
    origin = _origin(ex, exchange_url)
    if not ex.has.get("fetchFundingRateHistory"):
        reason = f"ccxt has no funding history for {ex.id}; skipped"
        return IngestItem(pair, FUNDING, "exchange", ex.id, origin, None, 0, None, None, 0, (reason,))
    _load_markets(ex, exchange_url, max_retries, backoff_s, sleep)
    market = ex.markets.get(perp) if ex.markets else None
    if market is None or not market.get("swap"):
        reason = f"{ex.id} lists no perpetual {perp}; skipped"
        return IngestItem(pair, FUNDING, "exchange", ex.id, origin, None, 0, None, None, 0, (reason,))
    path = cache.path(ex.id, perp)
    series, added = _update_cached(
        path,
        load_funding,
        lambda start, now: cache.update(
            ex, perp, start, now_ms=now, max_retries=max_retries, backoff_s=backoff_s, sleep=sleep
        ),
        ex,
        since,
        now_ms,
    )
    first, last = _span(series.index)
    log.info("%s %s funding: %d events cached, %d added", ex.id, perp, len(series), added)
    return IngestItem(pair, FUNDING, "exchange", ex.id, origin, path, len(series), first, last, added)


def _funding_from_sample(cache: FundingCache, pair: str, since: TimeLike | None, now_ms: int | None) -> IngestItem:
    rates = sample.load_sample_funding(pair)
    origin = f"sample {sample.sample_dir()} ({sample.FUNDING_EXCHANGE} funding)"
    if not len(rates):
        reason = "the sample holds no funding for this symbol; skipped"
        return IngestItem(pair, FUNDING, "sample", sample.EXCHANGE, origin, None, 0, None, None, 0, (reason,))
    last_ok = None if now_ms is None else pd.Timestamp(now_ms, unit="ms", tz="UTC")
    rates = rates.loc[_window(pd.DatetimeIndex(rates.index), since, last_ok)]
    path = cache.path(sample.EXCHANGE, pair)
    before = load_funding(path)["funding_rate"] if path.is_file() else empty_funding()
    merged = cache.merge(sample.EXCHANGE, pair, rates, keep="first", context=f"{pair} funding cache from the sample")
    first, last = _span(merged.index)
    return IngestItem(
        pair, FUNDING, "sample", sample.EXCHANGE, origin, path, len(merged), first, last, len(merged) - len(before)
    )


# ---- everything --------------------------------------------------------------------------------------------------
def refresh_data(
    symbols: Iterable[str] | str,
    timeframes: Iterable[str] | str,
    *,
    source: Source,
    cache_root: Path | str | None = None,
    exchange_id: str = "binance",
    exchange_url: str | None = None,
    since: TimeLike | None = None,
    now_ms: int | None = None,
    funding: bool = True,
    exchange: Exchange | None = None,
    funding_exchange: Exchange | None = None,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestReport:
    """Refresh candles for every symbol x timeframe, then funding per symbol (when ``funding``); report it all.

    Runs ``refresh_candles``/``refresh_funding`` unit by unit and stops at the first failure (the exception
    propagates; units done before it stay cached). With ``source='exchange'`` one candle exchange and one funding
    exchange are built (or ``exchange``/``funding_exchange`` used) and shared by all units, so markets load once.
    """
    symbol_list = [symbols] if isinstance(symbols, str) else list(symbols)
    timeframe_list = [timeframes] if isinstance(timeframes, str) else list(timeframes)
    if not symbol_list:
        raise ValueError("symbols must not be empty; e.g. ['BTC/USDT']")
    if not timeframe_list and not funding:
        raise ValueError("nothing to refresh: no timeframes and funding=False")
    _check_source(source, exchange_id)
    for timeframe in timeframe_list:
        timeframe_to_ns(timeframe)  # a typo fails before anything is downloaded
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    common: dict[str, Any] = {
        "source": source,
        "cache_root": root,
        "exchange_id": exchange_id,
        "exchange_url": exchange_url,
        "since": since,
        "now_ms": now_ms,
        "max_retries": max_retries,
        "backoff_s": backoff_s,
        "sleep": sleep,
    }
    items: list[IngestItem] = []
    if timeframe_list:
        candle_ex = exchange
        if source == "exchange" and candle_ex is None:
            candle_ex = make_candle_exchange(exchange_id, exchange_url)
        for symbol in symbol_list:
            for timeframe in timeframe_list:
                items.append(refresh_candles(symbol, timeframe, exchange=candle_ex, **common))
    if funding:
        funding_ex = funding_exchange
        if source == "exchange" and funding_ex is None:
            funding_ex = make_funding_exchange(exchange_id, exchange_url)
        for symbol in symbol_list:
            items.append(refresh_funding(symbol, exchange=funding_ex, **common))
    report = IngestReport(source, root, tuple(items))
    log.info("%s", report.summary())
    return report
