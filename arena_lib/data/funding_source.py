"""Perpetual funding rates through ccxt, with the same retries as candles, and an incremental parquet cache.

Why its own module: funding is what a perpetual position pays or earns every settlement (8h on Binance), and a
backtest that holds perps without it overstates carry trades. It comes from a different market than the spot
candles (the exchange's linear swaps, e.g. Binance USDⓈ-M ``/fapi``), so it gets its own fetch, checks and files,
while sharing ``ccxt_source``'s retry/backoff and atomic-write behaviour.

Symbols: ccxt names a linear perpetual ``BASE/QUOTE:SETTLE`` (``BTC/USDT:USDT``). ``perp_symbol`` maps a spot pair
(``BTC/USDT``, ``BTC-USDT``, ``BTC``) to the linear perpetual settled in its quote currency; a symbol that already
names a settle currency is kept. The exchange object must have its swap markets loaded (see
``ingest.make_funding_exchange``); a spot-only one answers ``BadSymbol``, turned into ``DataSourceError``.

Rates are fractions per settlement (``0.0001`` = 0.01 % of the position's notional), indexed by settlement time.
A settlement is only known once it has happened, so events after ``now_ms`` are never returned.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from arena_lib.data.ccxt_source import (
    OhlcvCache,
    api_urls_for_host,
    make_exchange,
    symbol_key,
    to_epoch_ms,
    with_retries,
)
from arena_lib.data.errors import DataNotFoundError
from arena_lib.data.loader import load_funding
from arena_lib.data.quality import DUPLICATE, NAN, OUT_OF_ORDER, QualityIssue, QualityReport
from arena_lib.data.resample import TimeLike
from arena_lib.data.sample import normalize_symbol

if TYPE_CHECKING:
    from ccxt.base.exchange import Exchange

log = logging.getLogger(__name__)

FUNDING_COLUMN = "funding_rate"
MAX_ABS_FUNDING_RATE = 0.05
"""Plausibility bound per settlement: 5 %. Binance caps 8h funding at 0.3 % (BTC) to 3 % (small alts), so a larger
value is a unit error (percent stored as fraction) or a corrupt row, not a market event."""
IMPLAUSIBLE_RATE = "implausible_funding_rate"


def perp_symbol(symbol: str) -> str:
    """The ccxt linear-perpetual symbol for ``symbol``: ``'BTC/USDT'`` -> ``'BTC/USDT:USDT'``.

    A symbol with a settle currency (``'BTC/USD:BTC'``) is returned as given (upper-cased); anything else goes
    through ``normalize_symbol`` (``'btc-usdt'``, ``'BTC'`` -> ``'BTC/USDT'``) and is settled in its quote.
    """
    text = symbol.strip().upper()
    if ":" in text:
        pair, _, settle = text.partition(":")
        if not settle:
            raise ValueError(f"symbol {symbol!r} has an empty settle currency; expected e.g. 'BTC/USDT:USDT'")
        return f"{normalize_symbol(pair)}:{settle}"
    pair = normalize_symbol(text)
    return f"{pair}:{pair.split('/')[1]}"


def empty_funding() -> pd.Series:
    """A funding series with no events, in the project's shape (UTC ns index named ``timestamp``)."""
    index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="timestamp")
    return pd.Series(np.array([], dtype=np.float64), index=index, name=FUNDING_COLUMN)


def _series(records: list[tuple[int, float]]) -> pd.Series:
    if not records:
        return empty_funding()
    stamps = pd.to_datetime(np.array([t for t, _ in records], dtype=np.int64), unit="ms", utc=True)
    index = pd.DatetimeIndex(stamps).as_unit("ns").rename("timestamp")
    return pd.Series(np.array([r for _, r in records], dtype=np.float64), index=index, name=FUNDING_COLUMN)


def fetch_funding_history(
    exchange: Exchange,
    symbol: str,
    since: TimeLike,
    until: TimeLike | None = None,
    limit: int = 1000,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    now_ms: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.Series:
    """Every funding event of ``symbol``'s perpetual with settlement time in ``[since, until)`` (ints: epoch ms).

    Pages of ``limit`` events are requested through ccxt's ``fetch_funding_rate_history``, advancing past the last
    event received, until ``until``, until ``now_ms`` (default ``exchange.milliseconds()``), or until a page brings
    nothing new. Network failures are retried ``max_retries`` times with exponential backoff from ``backoff_s``;
    exchange refusals (unknown symbol, no swap markets loaded) raise ``DataSourceError`` at once, as in
    ``fetch_ohlcv``. Returns a float64 series named ``funding_rate`` (fraction per settlement), sorted and unique.
    """
    if limit < 1 or max_retries < 0 or backoff_s < 0:
        raise ValueError(f"need limit >= 1, max_retries >= 0, backoff_s >= 0; got {limit}, {max_retries}, {backoff_s}")
    perp = perp_symbol(symbol)
    start = to_epoch_ms(since, "since")
    stop = to_epoch_ms(until, "until") if until is not None else None
    now = int(now_ms if now_ms is not None else exchange.milliseconds())
    what = f"{exchange.id} {perp} funding"
    last_ok = now if stop is None else min(now, stop - 1)  # the latest settlement time that may be returned
    params: dict[str, Any] = {"until": last_ok}

    records: dict[int, float] = {}
    cursor = start
    while cursor <= last_ok:
        page_since = cursor
        request = functools.partial(
            exchange.fetch_funding_rate_history, perp, since=page_since, limit=limit, params=dict(params)
        )
        batch: list[dict[str, Any]] = with_retries(request, what, max_retries, backoff_s, sleep)
        fresh = [
            (int(entry["timestamp"]), entry.get("fundingRate"))
            for entry in batch
            if entry.get("timestamp") is not None and int(entry["timestamp"]) >= page_since
        ]
        if not fresh:
            break
        for stamp, rate in fresh:
            if stamp <= last_ok:  # a missing rate stays NaN, so check_funding names the row
                records[stamp] = float("nan") if rate is None else float(rate)
        cursor = max(stamp for stamp, _ in fresh) + 1
    series = _series(sorted(records.items()))
    log.info("%s: %d events from %s", what, len(series), pd.Timestamp(start, unit="ms", tz="UTC"))
    return series


def check_funding(series: pd.Series, max_abs_rate: float = MAX_ABS_FUNDING_RATE) -> QualityReport:
    """Errors for unsorted or duplicate settlement times, non-finite rates and ``|rate| >= max_abs_rate``.

    Each issue names its row (0-based position as given) and timestamp, like ``check_ohlcv``. Irregular spacing is
    not an error: exchanges change funding intervals per symbol (8h -> 4h) when markets run hot.
    """
    report = QualityReport(rows=len(series), timeframe=None)
    stamps = pd.DatetimeIndex(series.index).as_unit("ns")
    values = series.to_numpy(dtype=np.float64)

    def add(kind: str, row: int, detail: str) -> None:
        report.issues.append(QualityIssue(kind, "error", row, stamps[row], detail))

    ns = stamps.asi8
    for row in (np.flatnonzero(ns[1:] < ns[:-1]) + 1).tolist():
        add(OUT_OF_ORDER, row, f"settlement time before the previous row's ({stamps[row - 1].isoformat()})")
    for row in np.flatnonzero(stamps.duplicated()).tolist():
        add(DUPLICATE, row, "settlement time repeats an earlier row")
    finite = np.isfinite(values)
    for row in np.flatnonzero(~finite).tolist():
        add(NAN, row, f"funding_rate is {values[row]}")
    for row in np.flatnonzero(finite & (np.abs(np.where(finite, values, 0.0)) >= max_abs_rate)).tolist():
        add(IMPLAUSIBLE_RATE, row, f"funding_rate {values[row]:g} is not within +/-{max_abs_rate:g} per settlement")
    return report


class FundingCache:
    """Parquet cache of perpetual funding, one file per exchange/symbol (``root/binance/BTC-USDT_funding.parquet``).

    The files hold ``timestamp`` (index) and ``funding_rate`` and are read by ``loader.load_funding``. ``update``
    asks only for events after the last cached one (and before the first, when ``since`` reaches further back),
    merges, checks, and replaces the file atomically; a failed check leaves the old file as it was.
    """

    def __init__(self, root: Path | str, max_abs_rate: float = MAX_ABS_FUNDING_RATE) -> None:
        self.root = Path(root)
        self.max_abs_rate = max_abs_rate

    def path(self, exchange_id: str, symbol: str) -> Path:
        """File of one exchange/perpetual: ``BTC/USDT`` and ``BTC/USDT:USDT`` share ``BTC-USDT_funding.parquet``.

        A perpetual settled in another currency than its quote (inverse, ``BTC/USD:BTC``) keeps the settle
        currency in the name (``BTC-USD-BTC_funding.parquet``).
        """
        perp = perp_symbol(symbol)
        pair, _, settle = perp.partition(":")
        key = symbol_key(pair) if settle == pair.split("/")[1] else symbol_key(perp)
        return self.root / exchange_id / f"{key}_funding.parquet"

    def entries(self) -> list[str]:
        """Cached funding series as ``exchange/SYMBOL_funding`` strings."""
        if not self.root.is_dir():
            return []
        return sorted(f"{p.parent.name}/{p.stem}" for p in self.root.glob("*/*_funding.parquet"))

    def load(self, exchange_id: str, symbol: str) -> pd.Series:
        """The cached rates; ``DataNotFoundError`` listing what is cached when there are none."""
        path = self.path(exchange_id, symbol)
        if not path.is_file():
            cached = ", ".join(self.entries()) or "nothing yet"
            raise DataNotFoundError(f"no cached {exchange_id} {symbol} funding in {self.root}; cached: {cached}")
        series: pd.Series = load_funding(path)[FUNDING_COLUMN]
        return series

    def merge(
        self,
        exchange_id: str,
        symbol: str,
        new: pd.Series,
        keep: Literal["first", "last"] = "last",
        context: str = "",
    ) -> pd.Series:
        """Merge ``new`` events into the cached file, check, save (only when something changed); return all cached.

        On equal settlement times ``keep='last'`` lets the new value win, ``keep='first'`` the cached one.

        Raises ``DataQualityError`` naming the offending rows, and leaves the file untouched, when the merged
        series fails ``check_funding``. Used by ``update`` and by the offline sample ingest.
        """
        path = self.path(exchange_id, symbol)
        cached = load_funding(path)[FUNDING_COLUMN] if path.is_file() else empty_funding()
        parts = [s for s in (cached, new.rename(FUNDING_COLUMN)) if len(s)]
        merged = pd.concat(parts) if parts else empty_funding()
        merged = merged[~merged.index.duplicated(keep=keep)].sort_index()
        merged.index = pd.DatetimeIndex(merged.index).as_unit("ns").rename("timestamp")
        merged = merged.astype(np.float64).rename(FUNDING_COLUMN)
        check_funding(merged, self.max_abs_rate).raise_if_failed(context or f"{exchange_id} {symbol} funding cache")
        if not path.is_file() or not merged.equals(cached):
            OhlcvCache._write_atomic(merged.to_frame(), path)
        return merged

    def update(
        self,
        exchange: Exchange,
        symbol: str,
        since: TimeLike,
        until: TimeLike | None = None,
        now_ms: int | None = None,
        **fetch_options: Any,
    ) -> pd.Series:
        """Fetch the missing events since ``since``, merge them into the cache, check and save; return all cached.

        ``fetch_options`` go to ``fetch_funding_history`` (``limit``, ``max_retries``, ``backoff_s``, ``sleep``).
        """
        path = self.path(exchange.id, symbol)
        since_ms = to_epoch_ms(since, "since")
        now = int(now_ms if now_ms is not None else exchange.milliseconds())
        parts: list[pd.Series] = []
        cached = load_funding(path)[FUNDING_COLUMN] if path.is_file() else empty_funding()
        if len(cached):
            cached_ns = pd.DatetimeIndex(cached.index).as_unit("ns").asi8
            first_ms, last_ms = int(cached_ns.min()) // 1_000_000, int(cached_ns.max()) // 1_000_000
            if since_ms < first_ms:
                parts.append(fetch_funding_history(exchange, symbol, since_ms, first_ms, now_ms=now, **fetch_options))
            parts.append(
                fetch_funding_history(exchange, symbol, max(since_ms, last_ms + 1), until, now_ms=now, **fetch_options)
            )
        else:
            parts.append(fetch_funding_history(exchange, symbol, since_ms, until, now_ms=now, **fetch_options))
        new = pd.concat([p for p in parts if len(p)]) if any(len(p) for p in parts) else empty_funding()
        return self.merge(exchange.id, symbol, new, context=f"{exchange.id} {perp_symbol(symbol)} funding cache update")


# -- the linear-swap client of an exchange (paper trading's funding and mark prices) ------------------------------
LINEAR_SWAP_IDS: dict[str, str] = {
    "binance": "binanceusdm",
    "binanceusdm": "binanceusdm",
    "kucoin": "kucoinfutures",
    "kucoinfutures": "kucoinfutures",
    "kraken": "krakenfutures",
    "krakenfutures": "krakenfutures",
}
"""Exchanges whose USDⓈ-margined (linear) perpetuals live in a separate ccxt class. Others serve their swaps from
the same class (``defaultType: swap``) when ccxt lists swap markets and funding history for them."""
PERP_OPTIONS: dict[str, dict[str, Any]] = {
    "binanceusdm": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}},
}
"""ccxt options of the linear-swap client (Binance USDⓈ-M: load /fapi markets only); default ``defaultType: swap``."""


class FundingUnavailableError(LookupError):
    """The exchange has no linear perpetual funding in ccxt (or not for this symbol); the message says why."""


def linear_swap_exchange_id(exchange_id: str) -> str | None:
    """The ccxt id of ``exchange_id``'s linear-swap (USDⓈ-M) client, or None when ccxt has none with funding history.

    ``binance`` -> ``binanceusdm``; an exchange that lists swaps in its own class (``bybit``, ``okx``) maps to itself.
    """
    import ccxt

    swap_id = LINEAR_SWAP_IDS.get(exchange_id, exchange_id)
    if swap_id not in ccxt.exchanges:
        return None
    has = getattr(ccxt, swap_id)().has  # an instance: ccxt merges the capabilities of its base classes
    return swap_id if has.get("swap") and has.get("fetchFundingRateHistory") else None


def make_perp_exchange(exchange_id: str, exchange_url: str | None = None, **options: Any) -> Exchange:
    """The ccxt client of ``exchange_id``'s linear perpetuals (``binanceusdm`` for ``binance``), swap markets only.

    ``exchange_url`` redirects its REST hosts (paths kept), as for candles. Raises ``FundingUnavailableError`` when
    ccxt has no linear-swap client with funding history for the exchange.
    """
    swap_id = linear_swap_exchange_id(exchange_id)
    if swap_id is None:
        raise FundingUnavailableError(
            f"ccxt has no linear-swap (USDⓈ-M) client with funding history for exchange {exchange_id!r}"
        )
    urls = api_urls_for_host(swap_id, exchange_url) if exchange_url else None
    settings = {**PERP_OPTIONS.get(swap_id, {"defaultType": "swap"}), **options.pop("options", {})}
    return make_exchange(swap_id, urls, options=settings, **options)


def fetch_mark_reading(
    exchange: Exchange,
    symbol: str,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The perpetual's current mark price and funding (``fetchFundingRate``: Binance ``/fapi/v1/premiumIndex``).

    Returns ccxt's funding-rate structure (``markPrice``, ``indexPrice``, ``fundingRate`` = the exchange's current
    rate, ``fundingTimestamp`` = the next settlement, ``timestamp`` = when the exchange took the reading).
    """
    perp = perp_symbol(symbol)
    request = functools.partial(exchange.fetch_funding_rate, perp)
    reading: dict[str, Any] = with_retries(request, f"{exchange.id} {perp} mark price", max_retries, backoff_s, sleep)
    return reading
