"""A loopback HTTP server that speaks Binance's public spot and USDⓈ-M futures REST APIs, for offline tests of the
real ccxt code.

FIXTURE DATA: every candle and funding rate served here comes from the bundled real sample (``data/sample/``, real
Binance bars and USDⓈ-M perpetual funding); nothing is synthesized. Fields of the kline array that the sample does
not hold (quote volume, trade count, taker-buy volumes) are sent as ``"0"``/``0``; the funding ``markPrice``, which
the sample does not hold either, is sent as ``""`` (as Binance does for its older funding records).
The sample holds no perpetual candles and no mark or index prices: ``/fapi/v1/klines`` serves the sample's *spot*
candles as the perpetual's, and ``/fapi/v1/premiumIndex`` derives its prices from them (``markPrice``,
``indexPrice`` and ``estimatedSettlePrice`` are all the open of the sample's 1h bar that contains "now", the last
price known at or before "now"); its ``lastFundingRate`` is the latest *settled* sample rate (Binance sends the
predicted rate of the running interval, which the sample does not hold), ``interestRate`` is Binance's default
``0.0001``, and ``nextFundingTime`` is the sample's next settlement after "now" (or the last one plus 8h).
``/api/v3/exchangeInfo`` and ``/fapi/v1/exchangeInfo`` are minimal payloads in Binance's shape for BTCUSDT and
ETHUSDT (filters as Binance published them for these pairs). The bar that contains the server's "now" is served
with the sample's final values, where the live API would show a partial bar; funding events are served once their
settlement time is at or before "now".

Endpoints (paths, parameters and error bodies as Binance documents them):
- ``GET /api/v3/ping`` -> ``{}``; ``GET /api/v3/time`` -> ``{"serverTime": now}``
- ``GET /api/v3/exchangeInfo`` -> timezone, serverTime, rateLimits, exchangeFilters, symbols
- ``GET /api/v3/klines?symbol&interval[&startTime][&endTime][&limit]`` -> at most ``limit`` (default 500, max
  1000) bars by open time ascending: from ``startTime`` when given, else the latest ones up to ``endTime``/now.
  Only intervals present in the sample (1h, 1d) are served; others answer ``-1120 Invalid interval``.
- ``GET /fapi/v1/ping`` -> ``{}``; ``GET /fapi/v1/time`` -> ``{"serverTime": now}``
- ``GET /fapi/v1/exchangeInfo`` -> timezone, serverTime, futuresType, rateLimits, exchangeFilters, assets, symbols
  (the BTCUSDT and ETHUSDT perpetuals)
- ``GET /fapi/v1/fundingRate?[symbol][&startTime][&endTime][&limit]`` -> at most ``limit`` (default 100, max 1000)
  ``{"symbol","fundingTime","fundingRate","markPrice"}`` by funding time ascending: from ``startTime`` when given,
  else the latest ones up to ``endTime``/now; without ``symbol``, every listed perpetual's.
- ``GET /fapi/v1/klines?symbol&interval[&startTime][&endTime][&limit]`` -> the perpetual's candles, paged as
  ``/api/v3/klines`` (default limit 500, max 1500 as Binance allows on /fapi); FIXTURE: the spot sample's bars
- ``GET /fapi/v1/premiumIndex[?symbol]`` -> ``{"symbol","markPrice","indexPrice","estimatedSettlePrice",
  "lastFundingRate","interestRate","nextFundingTime","time"}``, a list of every listed perpetual's without
  ``symbol``; FIXTURE: prices and rate derived from the sample as described above
- unknown symbol: HTTP 400 ``{"code":-1121,"msg":"Invalid symbol."}``

Test controls: ``fail_next`` (answer the next N requests with 503/429/..), ``timeout_next`` (hold them longer
than the client waits), ``delist`` (a symbol disappears, spot and perpetual, after clients loaded markets),
``requests`` (count per path) and ``request_log`` (path and query of each request).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from arena_lib.data.sample import sample_dir

INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}

# Per-pair exchange filters in Binance's exchangeInfo shape (values as published for these pairs).
_PAIRS: dict[str, dict[str, Any]] = {
    "BTCUSDT": {
        "base": "BTC",
        "tick": "0.01000000",
        "step": "0.00001000",
        "min_qty": "0.00001000",
        "max_qty": "9000.00000000",
        "market_max": "76.55253826",
    },
    "ETHUSDT": {
        "base": "ETH",
        "tick": "0.01000000",
        "step": "0.00010000",
        "min_qty": "0.00010000",
        "max_qty": "9000.00000000",
        "market_max": "2163.76813229",
    },
}


def _symbol_info(symbol: str) -> dict[str, Any]:
    pair = _PAIRS[symbol]
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": pair["base"],
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": pair["tick"],
                "maxPrice": "1000000.00000000",
                "tickSize": pair["tick"],
            },
            {"filterType": "LOT_SIZE", "minQty": pair["min_qty"], "maxQty": pair["max_qty"], "stepSize": pair["step"]},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": pair["market_max"],
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


# USDⓈ-M perpetuals in Binance's /fapi/v1/exchangeInfo shape (values close to those Binance published for them).
_PERPS: dict[str, dict[str, Any]] = {
    "BTCUSDT": {
        "base": "BTC",
        "price_precision": 2,
        "quantity_precision": 3,
        "tick": "0.10",
        "min_price": "261.10",
        "max_price": "809484",
        "min_qty": "0.001",
        "max_qty": "1000",
        "market_max": "120",
        "notional": "100",
        "underlying_sub_type": ["PoW"],
    },
    "ETHUSDT": {
        "base": "ETH",
        "price_precision": 2,
        "quantity_precision": 3,
        "tick": "0.01",
        "min_price": "39.86",
        "max_price": "306177",
        "min_qty": "0.001",
        "max_qty": "10000",
        "market_max": "2000",
        "notional": "20",
        "underlying_sub_type": ["Layer-1"],
    },
}
_PERPETUAL_DELIVERY_MS = 4133404800000  # Binance's "no delivery" date (2100-12-25) for perpetual contracts
_FAPI_ONBOARD_MS = 1569398400000  # 2019-09-25, when Binance listed its first USDⓈ-M perpetuals


def _perp_info(symbol: str) -> dict[str, Any]:
    perp = _PERPS[symbol]
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": _PERPETUAL_DELIVERY_MS,
        "onboardDate": _FAPI_ONBOARD_MS,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": perp["base"],
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": perp["price_precision"],
        "quantityPrecision": perp["quantity_precision"],
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": perp["underlying_sub_type"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": perp["min_price"],
                "maxPrice": perp["max_price"],
                "tickSize": perp["tick"],
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": perp["min_qty"],
                "maxQty": perp["max_qty"],
                "stepSize": perp["min_qty"],
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": perp["min_qty"],
                "maxQty": perp["market_max"],
                "stepSize": perp["min_qty"],
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": perp["notional"]},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


@dataclass
class _Failure:
    status: int  # HTTP status to answer, or 0 for "hold the request for delay_s, then answer normally"
    path: str | None
    delay_s: float = 0.0


@dataclass(frozen=True)
class _Series:
    """One symbol/interval of sample candles: open times (ms) and the kline rows Binance would send."""

    open_ms: np.ndarray
    rows: list[list[Any]]


@dataclass(frozen=True)
class _Error:
    """A Binance error body (``{"code", "msg"}``), answered with HTTP 400."""

    body: dict[str, Any]


def _paging(
    query: dict[str, str], default_limit: int, max_limit: int = 1000
) -> tuple[int, int | None, int | None] | _Error:
    """``limit``, ``startTime`` and ``endTime`` of a history request, checked as Binance checks them."""
    try:
        limit = int(query.get("limit", str(default_limit)))
        start = int(query["startTime"]) if "startTime" in query else None
        end = int(query["endTime"]) if "endTime" in query else None
    except ValueError:
        return _Error({"code": -1100, "msg": "Illegal characters found in a parameter."})
    if not 1 <= limit <= max_limit:
        return _Error({"code": -1130, "msg": "Invalid data sent for a parameter."})
    if start is not None and end is not None and start > end:
        return _Error({"code": -1023, "msg": "Start time is greater than end time."})
    return limit, start, end


@functools.lru_cache(maxsize=16)
def _load_series(path: Path, interval_ms: int) -> _Series:
    """Kline rows for one sample file; cached, so starting a fresh server per test costs little."""
    frame = pd.read_parquet(path)
    open_ms = pd.DatetimeIndex(frame.index).as_unit("ms").asi8.astype(np.int64)
    rows = [
        [
            int(t),
            f"{o:.8f}",
            f"{h:.8f}",
            f"{lo:.8f}",
            f"{c:.8f}",
            f"{v:.8f}",
            int(t) + interval_ms - 1,
            "0",
            0,
            "0",
            "0",
            "0",
        ]
        for t, o, h, lo, c, v in zip(
            open_ms, frame["open"], frame["high"], frame["low"], frame["close"], frame["volume"], strict=True
        )
    ]
    return _Series(open_ms=open_ms, rows=rows)


@dataclass(frozen=True)
class _Funding:
    """One perpetual's funding events: settlement times (ms) and the records Binance would send."""

    time_ms: np.ndarray
    rows: list[dict[str, Any]]


@functools.lru_cache(maxsize=8)
def _load_funding(path: Path, symbol: str) -> _Funding:
    """Funding records for one sample file; cached like the candles."""
    frame = pd.read_parquet(path)
    time_ms = pd.DatetimeIndex(frame.index).as_unit("ms").asi8.astype(np.int64)
    rows = [
        {"symbol": symbol, "fundingTime": int(t), "fundingRate": f"{rate:.8f}", "markPrice": ""}
        for t, rate in zip(time_ms, frame["funding_rate"], strict=True)
    ]
    return _Funding(time_ms=time_ms, rows=rows)


class BinanceSpotServer:
    """Binance spot and USDⓈ-M REST on ``http://127.0.0.1:<port>``; use as a context manager (``with ... as server``).

    ``symbols`` are the listed spot pairs, ``perps`` the listed USDⓈ-M perpetuals (both from the sample).
    """

    def __init__(
        self,
        symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
        now_ms: int | None = None,
        perps: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    ) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self.requests: Counter[str] = Counter()
        self.request_log: list[tuple[str, dict[str, str]]] = []
        self.listed = list(symbols)
        self.delisted: set[str] = set()
        self._data: dict[tuple[str, str], _Series] = {}
        folder = sample_dir()
        for symbol in symbols:
            base = _PAIRS[symbol]["base"]
            for interval in ("1h", "1d"):
                path = folder / f"binance_{base}-USDT_{interval}.parquet"
                if path.is_file():
                    self._data[(symbol, interval)] = _load_series(path, INTERVAL_MS[interval])
        self.perps = list(perps)
        self._funding: dict[str, _Funding] = {}
        for symbol in perps:
            path = folder / f"binance-usdm_{_PERPS[symbol]['base']}-USDT-PERP_funding_8h.parquet"
            if path.is_file():
                self._funding[symbol] = _load_funding(path, symbol)
        if now_ms is None:  # default: half way through the last sample hour, so that bar is still open
            last = max(int(s.open_ms[-1]) for (_, iv), s in self._data.items() if iv == "1h")
            now_ms = last + INTERVAL_MS["1h"] // 2
        self.now_ms = now_ms
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="binance-loopback", daemon=True
        )

    # ---- lifecycle -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> BinanceSpotServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BinanceSpotServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- test controls ---------------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 503, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path``, or any path) with HTTP ``status``."""
        with self._lock:
            self._failures.extend(_Failure(status, path) for _ in range(count))

    def timeout_next(self, count: int, delay_s: float, path: str | None = None) -> None:
        """Hold the next ``count`` requests for ``delay_s`` seconds before answering (client-side timeouts)."""
        with self._lock:
            self._failures.extend(_Failure(0, path, delay_s) for _ in range(count))

    def delist(self, symbol: str) -> None:
        """Make ``symbol`` unknown from now on, as after a delisting that clients' cached markets do not know."""
        with self._lock:
            self.delisted.add(symbol)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_log.clear()

    # ---- request handling ------------------------------------------------------------------------------------
    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.path is None or failure.path == path:
                    return self._failures.pop(i)
        return None

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v3/ping":
            return 200, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": self.now_ms}
        if path == "/api/v3/exchangeInfo":
            return 200, self._exchange_info()
        if path == "/api/v3/klines":
            return self._klines(query)
        if path == "/fapi/v1/ping":
            return 200, {}
        if path == "/fapi/v1/time":
            return 200, {"serverTime": self.now_ms}
        if path == "/fapi/v1/exchangeInfo":
            return 200, self._fapi_exchange_info()
        if path == "/fapi/v1/fundingRate":
            return self._funding_rate(query)
        if path == "/fapi/v1/klines":
            return self._fapi_klines(query)
        if path == "/fapi/v1/premiumIndex":
            return self._premium_index(query)
        return 404, None

    def _exchange_info(self) -> dict[str, Any]:
        with self._lock:
            symbols = [s for s in self.listed if s not in self.delisted]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(s) for s in symbols],
        }

    def _fapi_exchange_info(self) -> dict[str, Any]:
        with self._lock:
            symbols = [s for s in self.perps if s not in self.delisted]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [_perp_info(s) for s in symbols],
        }

    def _funding_rate(self, query: dict[str, str]) -> tuple[int, Any]:
        symbol = query.get("symbol")
        with self._lock:
            live = [s for s in self.perps if s not in self.delisted and s in self._funding]
        if symbol is not None and symbol not in live:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        paging = _paging(query, default_limit=100)
        if isinstance(paging, _Error):
            return 400, paging.body
        limit, start, end = paging
        # Settled events only: those at or before the server's now (and endTime).
        hi_time = self.now_ms if end is None else min(end, self.now_ms)
        rows: list[dict[str, Any]] = []
        for name in [symbol] if symbol is not None else live:
            series = self._funding[name]
            hi = int(np.searchsorted(series.time_ms, hi_time, side="right"))
            lo = int(np.searchsorted(series.time_ms, start, side="left")) if start is not None else 0
            rows.extend(series.rows[lo:hi])
        rows.sort(key=lambda row: (row["fundingTime"], row["symbol"]))
        return 200, rows[:limit] if start is not None else rows[-limit:]

    def _live_perps(self) -> list[str]:
        with self._lock:
            return [s for s in self.perps if s not in self.delisted]

    def _fapi_klines(self, query: dict[str, str]) -> tuple[int, Any]:
        """Perpetual candles: the spot sample's bars (FIXTURE: the sample holds no perpetual candles)."""
        for name in ("symbol", "interval"):
            if not query.get(name):
                return 400, {
                    "code": -1102,
                    "msg": f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                }
        symbol, interval = query["symbol"], query["interval"]
        if symbol not in self._live_perps():
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        series = self._perp_series(symbol, interval)
        if interval not in INTERVAL_MS or series is None:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        paging = _paging(query, default_limit=500, max_limit=1500)  # /fapi allows 1500 bars per page
        if isinstance(paging, _Error):
            return 400, paging.body
        limit, start, end = paging
        hi_time = self.now_ms if end is None else min(end, self.now_ms)
        hi = int(np.searchsorted(series.open_ms, hi_time, side="right"))
        if start is not None:
            lo = int(np.searchsorted(series.open_ms, start, side="left"))
            return 200, series.rows[lo : min(hi, lo + limit)]
        return 200, series.rows[max(0, hi - limit) : hi]

    def _perp_series(self, symbol: str, interval: str) -> _Series | None:
        series = self._data.get((symbol, interval))
        if series is None and symbol in _PERPS:  # a perpetual whose spot pair is not listed: read the sample file
            path = sample_dir() / f"binance_{_PERPS[symbol]['base']}-USDT_{interval}.parquet"
            if interval in INTERVAL_MS and path.is_file():
                series = _load_series(path, INTERVAL_MS[interval])
        return series

    def _premium_index(self, query: dict[str, str]) -> tuple[int, Any]:
        """Mark/index price and funding of each perpetual at the server's now (FIXTURE: derived from the sample)."""
        symbol = query.get("symbol")
        live = self._live_perps()
        if symbol is not None and symbol not in live:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        entries = [self._premium_entry(name) for name in ([symbol] if symbol is not None else live)]
        if symbol is not None:
            return 200, entries[0]
        return 200, entries

    def _premium_entry(self, symbol: str) -> dict[str, Any]:
        now = self.now_ms
        series = self._perp_series(symbol, "1h")
        price = ""
        if series is not None:
            i = int(np.searchsorted(series.open_ms, now, side="right")) - 1  # the bar that contains now
            if i >= 0:
                price = series.rows[i][1]  # its open: the last price known at or before now
        funding = self._funding.get(symbol)
        last_rate, next_time = "0.00000000", now - now % (8 * 3_600_000) + 8 * 3_600_000
        if funding is not None and len(funding.time_ms):
            k = int(np.searchsorted(funding.time_ms, now, side="right"))  # settlements at or before now
            if k > 0:
                last_rate = funding.rows[k - 1]["fundingRate"]
            if k < len(funding.time_ms):
                next_time = int(funding.time_ms[k])
            else:
                next_time = int(funding.time_ms[-1]) + 8 * 3_600_000
                while next_time <= now:
                    next_time += 8 * 3_600_000
        return {
            "symbol": symbol,
            "markPrice": price,
            "indexPrice": price,
            "estimatedSettlePrice": price,
            "lastFundingRate": last_rate,
            "interestRate": "0.00010000",
            "nextFundingTime": next_time,
            "time": now,
        }

    def _klines(self, query: dict[str, str]) -> tuple[int, Any]:
        for name in ("symbol", "interval"):
            if not query.get(name):
                return 400, {
                    "code": -1102,
                    "msg": f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                }
        symbol, interval = query["symbol"], query["interval"]
        if symbol not in self.listed or symbol in self.delisted:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        series = self._data.get((symbol, interval))
        if interval not in INTERVAL_MS or series is None:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        paging = _paging(query, default_limit=500)
        if isinstance(paging, _Error):
            return 400, paging.body
        limit, start, end = paging
        # Bars that have opened by the server's now exist; later ones do not yet.
        hi_time = self.now_ms if end is None else min(end, self.now_ms)
        hi = int(np.searchsorted(series.open_ms, hi_time, side="right"))
        if start is not None:
            lo = int(np.searchsorted(series.open_ms, start, side="left"))
            return 200, series.rows[lo : min(hi, lo + limit)]
        return 200, series.rows[max(0, hi - limit) : hi]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests[parts.path] += 1
                    server.request_log.append((parts.path, query))
                failure = server._take_failure(parts.path)
                if failure is not None and failure.status == 0:
                    time.sleep(failure.delay_s)
                elif failure is not None:
                    self._send_failure(failure.status)
                    return
                status, payload = server._route(parts.path, query)
                if payload is None:
                    self._send(status, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
                    return
                self._send(
                    status, json.dumps(payload, separators=(",", ":")).encode(), "application/json;charset=UTF-8"
                )

            def _send_failure(self, status: int) -> None:
                if status == 429:
                    body = {
                        "code": -1003,
                        "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
                        "Please use the websocket for live updates to avoid bans.",
                    }
                    self._send(
                        status, json.dumps(body).encode(), "application/json;charset=UTF-8", {"Retry-After": "1"}
                    )
                else:
                    self._send(
                        status, b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", "text/html"
                    )

            def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("x-mbx-used-weight-1m", str(server.requests[urlsplit(self.path).path]))
                    for key, value in (extra or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        return Handler
