"""A loopback Binance USDⓈ-M futures *trading* server, for offline tests of the real ccxt ``binanceusdm`` code.

FIXTURE: what is real and what is modelled.

- Real: the public market data comes from :class:`tests.servers.binance.BinanceSpotServer` (the bundled real
  sample: Binance bars and USDⓈ-M funding; ``/fapi/v1/klines`` are the sample's spot bars, as that server
  documents); each perpetual's default price is the close of the sample's last 1h bar completed at the
  server's "now" (``now_ms``). ``/fapi/v1/premiumIndex`` is the base server's entry with ``markPrice``/``indexPrice``/
  ``estimatedSettlePrice`` replaced by the current price (mark = last here), and ``lastFundingRate`` by the rate
  of the latest ``charge_funding``. (Both paths fall back to this module's own answers if the base server does
  not route them.)
- Modelled: the matching engine, the accounts and every private endpoint. Paths, parameter names, JSON field
  names and error ``{"code", "msg"}`` bodies follow Binance's documentation and the fields ccxt 4.5.90's parsers
  read; the numbers are a simple model (below), not Binance's risk engine.

Paths ccxt 4.5.90 ``binanceusdm`` calls (found by running it against this server, see
``tests/exchange/test_loopback_futures.py``):

- ``load_markets``: with keys set, first ``GET /sapi/v1/capital/config/getall`` and ``GET /sapi/v1/margin/allPairs``
  (signed; served minimally here), then ``GET /fapi/v1/exchangeInfo`` (the base server's payload)
- ``fetch_time``: ``GET /fapi/v1/time`` (the wall clock, as signed requests are checked against it)
- ``create_order`` market/limit: ``POST /fapi/v1/order``. Conditional orders (``stopPrice``/``triggerPrice``,
  ``stopLossPrice``, ``takeProfitPrice``) go to Binance's Algo Service since its Dec-2025 migration:
  ``POST /fapi/v1/algoOrder`` with ``algoType=CONDITIONAL``, ``clientAlgoId`` and ``triggerPrice``. This server,
  like Binance, rejects STOP_MARKET/TAKE_PROFIT_MARKET on ``/fapi/v1/order`` with ``-4120``.
- ``cancel_order``: ``DELETE /fapi/v1/order``; with ``params={'trigger': True}``: ``DELETE /fapi/v1/algoOrder``
- ``fetch_order``: ``GET /fapi/v1/order`` (``orderId`` or ``origClientOrderId``); with ``trigger``:
  ``GET /fapi/v1/algoOrder`` (``algoId`` or ``clientAlgoId``)
- ``fetch_orders``: ``GET /fapi/v1/allOrders``
- ``fetch_open_orders``: ``GET /fapi/v1/openOrders``; with ``trigger``: ``GET /fapi/v1/openAlgoOrders``
- ``cancel_all_orders``: ``DELETE /fapi/v1/allOpenOrders``; with ``trigger``: ``DELETE /fapi/v1/algoOpenOrders``
- ``fetch_positions``: ``GET /fapi/v1/leverageBracket`` (once, cached by ccxt), then ``GET /fapi/v3/positionRisk``
- ``fetch_balance``: ``GET /fapi/v3/account``
- ``fetch_my_trades``: ``GET /fapi/v1/userTrades``
- ``set_leverage``: ``POST /fapi/v1/leverage``; ``set_margin_mode``: ``POST /fapi/v1/marginType``
- ``fetch_mark_price`` / ``fetch_funding_rate``: ``GET /fapi/v1/premiumIndex``
- ``fetch_funding_history``: ``GET /fapi/v1/income?incomeType=FUNDING_FEE``
- ``fetch_ohlcv``: ``GET /fapi/v1/klines``
- also served: ``GET /fapi/v2/positionRisk``, ``GET /fapi/v2/account`` (ccxt's ``useV2`` option),
  ``GET|POST /fapi/v1/positionSide/dual``, ``GET /fapi/v1/multiAssetsMargin``, ``GET /fapi/v1/symbolConfig``.

The model (one-way mode only, ``positionSide`` ``BOTH``; USDT is the only margin asset):

- Each perpetual has one current price (``set_price``); mark price = last price = index price.
- MARKET orders fill in full at the current price as taker (``partial_next`` makes the next ones fill a part and
  end ``EXPIRED``). LIMIT GTC orders fill at once at the current price when marketable, else rest and fill at
  their limit price when ``set_price`` crosses it (same commission rate: there is no maker rebate model).
- Conditional (algo) orders STOP_MARKET/TAKE_PROFIT_MARKET rest as ``NEW`` until ``set_price`` crosses the
  trigger by Binance's side rule (STOP_MARKET SELL: price <= trigger, BUY: price >= trigger; TAKE_PROFIT_MARKET
  mirrored). A triggered order becomes a MARKET order in the matching engine (``actualOrderId``, its
  ``clientOrderId`` is the ``clientAlgoId``) that fills at the NEW price (a stop-market is a market order: a
  gap through the trigger fills at the gapped price; set the price exactly to the trigger for a fill there);
  the algo order ends ``FINISHED``. A reduce-only/close-position order with nothing to reduce ends ``EXPIRED``
  and opens nothing. Reduce-only orders are never auto-cancelled when the position closes another way. An
  order that would trigger at once is rejected (``-2021``).
- Accounting per account, exact (``Decimal``): walletBalance = initial + Σ realizedPnl − Σ commission + Σ funding
  (every term is also an ``/fapi/v1/income`` record: REALIZED_PNL, COMMISSION, FUNDING_FEE). Commission =
  price * qty * ``commission``. Entry price is the average; reducing realizes (price − entry) * qty; an order
  may reverse through zero unless reduce-only. Initial margin = |notional| / leverage; isolatedWallet = entry
  notional / leverage (no manual margin transfers); availableBalance = walletBalance − isolated wallets + cross
  unrealized PnL − cross position margin − open LIMIT order margin. liquidationPrice uses the first leverage
  bracket's maintenance rate only (isolated: entry * (1 ∓ 1/leverage ± mmr); cross: the single-position formula
  on the cross wallet). No liquidations, no ADL, no price bands, no self-trade, no order-count limits.
- Auth: ``X-MBX-APIKEY`` of a known account, HMAC-SHA256 ``signature`` over query string + body, ``timestamp``
  within ``recvWindow`` (default 5000 ms, max 60000) of this machine's wall clock. Orders, trades and income
  are stamped with the wall clock too (``clock_ms``), as the live exchange stamps them; the public market data
  keeps the sample's ``now_ms``.
- Client order ids follow Binance's rule ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``; an id equal to one of the account's
  OPEN orders is rejected (``-4116``), reusing a finished order's id is accepted, as on Binance.
  ``origClientOrderId`` look-ups answer the open order with that id, else the newest.

Error classes: ccxt chooses its per-market error table by the URL's host, so ``futures_client`` maps the loopback
URL to Binance's hosts for that look-up only; then, as live: -2019 InsufficientFunds, -2022/-4164/-4116/-4120
InvalidOrder, -2021 OrderImmediatelyFillable, -2011/-2013 OrderNotFound, -1121 BadSymbol, -1100 BadRequest,
-4046 MarginModeAlreadySet, -4047/-4048 OperationRejected, -1021 InvalidNonce, -1022/-2014/-2015
AuthenticationError (ccxt turns -2015 into DDoSProtection once that client has authenticated successfully),
HTTP 429/418 DDoSProtection, 5xx ExchangeNotAvailable, a held answer RequestTimeout.

Test controls: ``set_price``, ``partial_next``, ``charge_funding``, ``manual_order``, ``reject_next_order``,
``timestamp_error_next``, ``timeout_after_accept_next``, ``rate_limit_next`` (429), ``ban_next`` (418),
``fail_next``/``timeout_next`` (the base server's: 5xx, and a hold *before* handling). Inspection:
``account_state``, ``trades``, ``orders``, ``algo_orders``, ``income``, ``orders_by_client_id``, ``calls``
(method, path, params without secrets; the signature is kept).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from tests.servers.binance import INTERVAL_MS, BinanceSpotServer

ZERO = Decimal(0)
MONEY = Decimal("0.00000001")
WEEK_MS = 7 * 86_400_000
FUNDING_INTERVAL_MS = 8 * 3_600_000
CLIENT_ID_RULE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
DEFAULT_LEVERAGE = 20
_JSON = "application/json;charset=UTF-8"

# Leverage brackets in Binance's /fapi/v1/leverageBracket shape (first tiers of those Binance published).
_BRACKETS: dict[str, list[tuple[int, int, int, str, str]]] = {
    # (initialLeverage, notionalCap, notionalFloor, maintMarginRatio, cum)
    "BTCUSDT": [
        (125, 50_000, 0, "0.004", "0.0"),
        (100, 600_000, 50_000, "0.005", "50.0"),
        (75, 3_000_000, 600_000, "0.0065", "950.0"),
        (50, 12_000_000, 3_000_000, "0.01", "11450.0"),
    ],
    "ETHUSDT": [
        (125, 50_000, 0, "0.004", "0.0"),
        (100, 600_000, 50_000, "0.005", "50.0"),
        (75, 3_000_000, 600_000, "0.0065", "950.0"),
        (50, 12_000_000, 3_000_000, "0.01", "11450.0"),
    ],
}

# Paths of the signed (USER_DATA / TRADE) endpoints, by method.
_ORDER_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/algoOrder"})


class BinanceError(Exception):
    """A Binance error answer: HTTP ``status`` with body ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status

    @property
    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def _fmt(value: Decimal, places: int = 8) -> str:
    """A decimal as Binance writes it: fixed places, never exponent notation."""
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}" if places > 0 else f"{value.quantize(Decimal(1)):f}"


def _dec(params: dict[str, str], name: str) -> Decimal | None:
    """Parameter ``name`` as a Decimal (None when absent); malformed numbers answer -1100 as Binance does."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9.]+$'."
        ) from None
    if not value.is_finite():
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9.]+$'.")
    return value


def _int(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None


def _bool(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is 'true, false'.")
    return raw == "true"


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


@dataclass
class _Perp:
    """One perpetual's trading rules, read from the base server's ``/fapi/v1/exchangeInfo`` payload."""

    symbol: str
    tick: Decimal
    min_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    price_places: int
    qty_places: int
    mmr: Decimal


@dataclass
class _Order:
    """A matching-engine order (``/fapi/v1/order``)."""

    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    orig_type: str
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    reduce_only: bool
    close_position: bool
    time_in_force: str
    time: int
    update_time: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    source: str = "api"  # "api" (sent by a client), "web" (manual_order), "algo" (a triggered conditional order)


@dataclass
class _AlgoOrder:
    """A conditional order of Binance's Algo Service (``/fapi/v1/algoOrder``)."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    trigger_price: Decimal
    reduce_only: bool
    close_position: bool
    working_type: str
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: str = ""
    actual_price: Decimal = ZERO


@dataclass
class _Position:
    amt: Decimal = ZERO
    entry: Decimal = ZERO
    update_time: int = 0


@dataclass
class _Account:
    api_key: str
    secret: str
    initial: Decimal
    wallet: Decimal
    positions: dict[str, _Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)  # "CROSSED" or "ISOLATED"
    orders: list[_Order] = field(default_factory=list)
    algo_orders: list[_AlgoOrder] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    income: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Call:
    """One request as the server saw it (no secrets: the signature is kept, the HMAC secret never travels)."""

    method: str
    path: str
    params: dict[str, str]
    api_key: str | None
    status: int


@dataclass
class _Hold:
    count: int
    delay_s: float
    path: str | None


class BinanceFuturesServer(BinanceSpotServer):
    """Binance USDⓈ-M trading (and the base server's public data) on ``http://127.0.0.1:<port>``.

    ``accounts`` maps an API key to ``(secret, initial USDT wallet balance)``. ``commission`` is the taker rate
    charged on every fill. ``now_ms`` is the market-data clock of the base server (default: in the last sample
    hour). Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(
        self,
        accounts: dict[str, tuple[str, float | str | Decimal]],
        commission: float | str | Decimal = "0.0004",
        now_ms: int | None = None,
        perps: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    ) -> None:
        super().__init__(symbols=perps, now_ms=now_ms, perps=perps)
        self._book = threading.RLock()  # trading state; the base `_lock` guards its counters and failures
        self.commission = Decimal(str(commission))
        self.clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
        self.calls: list[Call] = []
        self._accounts = {
            key: _Account(key, secret, Decimal(str(initial)), Decimal(str(initial)))
            for key, (secret, initial) in accounts.items()
        }
        self._rules = {info["symbol"]: self._perp_rules(info) for info in self._fapi_exchange_info()["symbols"]}
        self._prices = {symbol: self._sample_close(symbol) for symbol in self._rules}
        self._funding_rates: dict[str, Decimal] = {}
        self._ids = {"order": 8_389_765_000, "algo": 4_000_000, "trade": 5_000_000, "tran": 9_000_000_000}
        self._partial: list[Decimal] = []
        self._rejects: list[BinanceError] = []
        self._timestamp_errors = 0
        self._holds: list[_Hold] = []
        self._retry_after: dict[int, str] = {429: "1", 418: "60"}

    def start(self) -> BinanceFuturesServer:
        super().start()
        return self

    def __enter__(self) -> BinanceFuturesServer:
        return self.start()

    # ---- setup helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _perp_rules(info: dict[str, Any]) -> _Perp:
        filters = {f["filterType"]: f for f in info["filters"]}
        symbol = info["symbol"]
        return _Perp(
            symbol=symbol,
            tick=Decimal(filters["PRICE_FILTER"]["tickSize"]),
            min_price=Decimal(filters["PRICE_FILTER"]["minPrice"]),
            step=Decimal(filters["LOT_SIZE"]["stepSize"]),
            min_qty=Decimal(filters["LOT_SIZE"]["minQty"]),
            max_qty=Decimal(filters["LOT_SIZE"]["maxQty"]),
            market_max_qty=Decimal(filters["MARKET_LOT_SIZE"]["maxQty"]),
            min_notional=Decimal(filters["MIN_NOTIONAL"]["notional"]),
            price_places=int(info["pricePrecision"]),
            qty_places=int(info["quantityPrecision"]),
            mmr=Decimal(_BRACKETS.get(symbol, _BRACKETS["BTCUSDT"])[0][3]),
        )

    def _sample_close(self, symbol: str) -> Decimal:
        """The close of the sample's last 1h bar completed at ``now_ms``: the real price known at "now" (the bar
        that contains "now" closes in its future)."""
        series = self._data.get((symbol, "1h"))
        if series is None:
            return Decimal("1000")
        i = max(0, int(np.searchsorted(series.open_ms, self.now_ms - INTERVAL_MS["1h"], side="right")) - 1)
        return Decimal(series.rows[i][4]).quantize(self._rules[symbol].tick)

    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _symbol(self, symbol: str) -> str:
        """Binance id of ``symbol`` ("BTCUSDT", "BTC/USDT" or "BTC/USDT:USDT")."""
        plain = symbol.split(":")[0].replace("/", "")
        if plain not in self._rules:
            raise KeyError(f"unknown perpetual {symbol!r}; listed: {sorted(self._rules)}")
        return plain

    # ---- test controls ---------------------------------------------------------------------------------------
    def price(self, symbol: str) -> Decimal:
        with self._book:
            return self._prices[self._symbol(symbol)]

    def set_price(self, symbol: str, price: float | str | Decimal) -> None:
        """Move ``symbol``'s price (mark = last); resting LIMIT and conditional orders it crosses execute now."""
        sym = self._symbol(symbol)
        with self._book:
            self._prices[sym] = Decimal(str(price))
            for account in self._accounts.values():
                self._trigger(account, sym)

    def partial_next(self, count: int, ratio: float | str = "0.5") -> None:
        """The next ``count`` MARKET orders fill only ``ratio`` of their quantity and end EXPIRED (IOC remainder)."""
        with self._book:
            self._partial.extend(Decimal(str(ratio)) for _ in range(count))

    def reject_next_order(self, code: int = -2019, msg: str = "Margin is insufficient.", status: int = 400) -> None:
        """Answer the next order placement (``/fapi/v1/order`` or ``algoOrder`` POST) with this error, unexecuted."""
        with self._book:
            self._rejects.append(BinanceError(code, msg, status))

    def timestamp_error_next(self, count: int = 1) -> None:
        """Answer the next ``count`` signed requests with -1021 (timestamp outside the recvWindow)."""
        with self._book:
            self._timestamp_errors += count

    def timeout_after_accept_next(self, count: int, delay_s: float, path: str | None = None) -> None:
        """Execute the next ``count`` order placements (or requests to ``path``), then hold the answer ``delay_s``.

        The client times out although the exchange accepted (and maybe filled) the order: the case an
        idempotent client must resolve with its client order id.
        """
        with self._book:
            self._holds.append(_Hold(count, delay_s, path))

    def rate_limit_next(self, count: int = 1, retry_after_s: int = 1, path: str | None = None) -> None:
        """Answer the next ``count`` requests with HTTP 429, ``Retry-After`` and Binance's -1003 body."""
        self._retry_after[429] = str(retry_after_s)
        self.fail_next(count, 429, path)

    def ban_next(self, count: int = 1, retry_after_s: int = 60, path: str | None = None) -> None:
        """Answer the next ``count`` requests with HTTP 418 (IP banned after ignoring 429s) and ``Retry-After``."""
        self._retry_after[418] = str(retry_after_s)
        self.fail_next(count, 418, path)

    def charge_funding(self, symbol: str, rate: float | str | Decimal) -> dict[str, Decimal]:
        """Settle funding on every open ``symbol`` position at ``rate``; returns each account's payment.

        payment = −positionAmt * mark * rate (longs pay a positive rate), booked as a FUNDING_FEE income.
        """
        sym = self._symbol(symbol)
        rate_d = Decimal(str(rate))
        paid: dict[str, Decimal] = {}
        with self._book:
            self._funding_rates[sym] = rate_d
            now = self.clock_ms()
            for account in self._accounts.values():
                position = account.positions.get(sym)
                if position is None or position.amt == 0:
                    continue
                payment = (-position.amt * self._prices[sym] * rate_d).quantize(MONEY)
                account.wallet += payment
                self._book_income(account, sym, "FUNDING_FEE", payment, now, trade_id="")
                paid[account.api_key] = payment
        return paid

    def manual_order(
        self, api_key: str, symbol: str, side: str, qty: float | str | Decimal, client_id: str | None = None
    ) -> dict[str, Any]:
        """Fill a MARKET order placed out of band (a human on the web UI): no margin or filter checks."""
        sym = self._symbol(symbol)
        with self._book:
            account = self._accounts[api_key]
            now = self.clock_ms()
            order = _Order(
                order_id=self._next_id("order"),
                client_id=client_id or f"web_{uuid.uuid4().hex[:20]}",
                symbol=sym,
                side=side.upper(),
                type="MARKET",
                orig_type="MARKET",
                qty=Decimal(str(qty)),
                price=ZERO,
                stop_price=ZERO,
                reduce_only=False,
                close_position=False,
                time_in_force="GTC",
                time=now,
                update_time=now,
                source="web",
            )
            account.orders.append(order)
            self._fill(account, order, order.qty, self._prices[sym])
            order.status = "FILLED"
            return self._order_payload(order)

    # ---- inspection ------------------------------------------------------------------------------------------
    def account_state(self, api_key: str) -> dict[str, Any]:
        """Balances (Decimal), non-zero positions and open orders of one account, as the model holds them."""
        with self._book:
            account = self._accounts[api_key]
            positions = {
                sym: {
                    "positionAmt": p.amt,
                    "entryPrice": p.entry,
                    "markPrice": self._prices[sym],
                    "unRealizedProfit": self._upnl(sym, p),
                    "notional": p.amt * self._prices[sym],
                    "leverage": self._leverage(account, sym),
                    "marginType": self._margin_type(account, sym),
                    "isolatedWallet": self._isolated_wallet(account, sym, p),
                    "liquidationPrice": self._liquidation_price(account, sym, p),
                }
                for sym, p in account.positions.items()
                if p.amt != 0
            }
            return {
                "walletBalance": account.wallet,
                "initialBalance": account.initial,
                "availableBalance": self._available(account),
                "unrealizedProfit": sum((self._upnl(s, p) for s, p in account.positions.items()), ZERO),
                "positions": positions,
                "openOrders": [self._order_payload(o) for o in account.orders if o.status == "NEW"],
                "openAlgoOrders": [self._algo_payload(a) for a in account.algo_orders if a.status == "NEW"],
            }

    def trades(self, api_key: str) -> list[dict[str, Any]]:
        with self._book:
            return [dict(t) for t in self._accounts[api_key].trades]

    def orders(self, api_key: str) -> list[dict[str, Any]]:
        """Every matching-engine order of the account (placed, manual and triggered), oldest first."""
        with self._book:
            return [self._order_payload(o) for o in self._accounts[api_key].orders]

    def algo_orders(self, api_key: str) -> list[dict[str, Any]]:
        with self._book:
            return [self._algo_payload(a) for a in self._accounts[api_key].algo_orders]

    def income(self, api_key: str) -> list[dict[str, Any]]:
        with self._book:
            return [dict(i) for i in self._accounts[api_key].income]

    def orders_by_client_id(self, api_key: str) -> dict[str, list[dict[str, Any]]]:
        """Client-sent orders (regular and algo) grouped by client id: a list longer than 1 is a reused id."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self._book:
            account = self._accounts[api_key]
            for order in account.orders:
                if order.source == "api":
                    out.setdefault(order.client_id, []).append(self._order_payload(order))
            for algo in account.algo_orders:
                out.setdefault(algo.client_algo_id, []).append(self._algo_payload(algo))
        return out

    # ---- model: prices, margins ------------------------------------------------------------------------------
    def _leverage(self, account: _Account, sym: str) -> int:
        return account.leverage.get(sym, DEFAULT_LEVERAGE)

    def _margin_type(self, account: _Account, sym: str) -> str:
        return account.margin_type.get(sym, "CROSSED")

    def _upnl(self, sym: str, p: _Position) -> Decimal:
        return (p.amt * (self._prices[sym] - p.entry)).quantize(MONEY)

    def _isolated_wallet(self, account: _Account, sym: str, p: _Position) -> Decimal:
        if self._margin_type(account, sym) != "ISOLATED" or p.amt == 0:
            return ZERO
        return (abs(p.amt) * p.entry / self._leverage(account, sym)).quantize(MONEY)

    def _position_margin(self, account: _Account, sym: str, p: _Position) -> Decimal:
        return (abs(p.amt) * self._prices[sym] / self._leverage(account, sym)).quantize(MONEY)

    def _open_order_margin(self, account: _Account, sym: str | None = None) -> Decimal:
        total = ZERO
        for o in account.orders:
            if o.status == "NEW" and not o.reduce_only and (sym is None or o.symbol == sym):
                total += (o.qty - o.executed) * o.price / self._leverage(account, o.symbol)
        return total.quantize(MONEY)

    def _cross_wallet(self, account: _Account) -> Decimal:
        return account.wallet - sum((self._isolated_wallet(account, s, p) for s, p in account.positions.items()), ZERO)

    def _available(self, account: _Account) -> Decimal:
        cross = [(s, p) for s, p in account.positions.items() if self._margin_type(account, s) == "CROSSED"]
        return (
            self._cross_wallet(account)
            + sum((self._upnl(s, p) for s, p in cross), ZERO)
            - sum((self._position_margin(account, s, p) for s, p in cross), ZERO)
            - self._open_order_margin(account)
        )

    def _liquidation_price(self, account: _Account, sym: str, p: _Position) -> Decimal:
        """A one-position estimate from the first bracket's maintenance rate (Binance's is account-wide)."""
        if p.amt == 0:
            return ZERO
        mmr, lev = self._rules[sym].mmr, Decimal(self._leverage(account, sym))
        if self._margin_type(account, sym) == "ISOLATED":
            price = p.entry * (1 - 1 / lev + mmr) if p.amt > 0 else p.entry * (1 + 1 / lev - mmr)
        else:
            wallet = self._cross_wallet(account)
            if p.amt > 0:
                price = (p.amt * p.entry - wallet) / (p.amt * (1 - mmr))
            else:
                price = (wallet - p.amt * p.entry) / (abs(p.amt) * (1 + mmr))
        return max(price, ZERO).quantize(MONEY)

    # ---- model: fills ----------------------------------------------------------------------------------------
    def _book_income(self, account: _Account, sym: str, kind: str, amount: Decimal, now: int, trade_id: str) -> None:
        account.income.append(
            {
                "symbol": sym,
                "incomeType": kind,
                "income": _fmt(amount),
                "asset": "USDT",
                "info": kind,
                "time": now,
                "tranId": self._next_id("tran"),
                "tradeId": trade_id,
            }
        )

    def _fill(self, account: _Account, order: _Order, qty: Decimal, price: Decimal) -> None:
        """Execute ``qty`` of ``order`` at ``price``: position, wallet, trade and income records."""
        sym, now = order.symbol, self.clock_ms()
        p = account.positions.setdefault(sym, _Position())
        signed = qty if order.side == "BUY" else -qty
        realized = ZERO
        if p.amt == 0 or (p.amt > 0) == (signed > 0):
            new_amt = p.amt + signed
            p.entry = (abs(p.amt) * p.entry + qty * price) / abs(new_amt)
            p.amt = new_amt
        else:
            closed = min(qty, abs(p.amt))
            realized = (closed * (price - p.entry) * (1 if p.amt > 0 else -1)).quantize(MONEY)
            new_amt = p.amt + signed
            if new_amt == 0:
                p.entry = ZERO
            elif (new_amt > 0) != (p.amt > 0):  # reversed through zero: the rest opens at this price
                p.entry = price
            p.amt = new_amt
        p.update_time = now
        commission = (qty * price * self.commission).quantize(MONEY)
        account.wallet += realized - commission
        trade_id = self._next_id("trade")
        account.trades.append(
            {
                "buyer": order.side == "BUY",
                "commission": _fmt(commission),
                "commissionAsset": "USDT",
                "id": trade_id,
                "maker": False,
                "orderId": order.order_id,
                "price": _fmt(price, self._rules[sym].price_places),
                "qty": _fmt(qty, self._rules[sym].qty_places),
                "quoteQty": _fmt(qty * price),
                "realizedPnl": _fmt(realized),
                "side": order.side,
                "positionSide": "BOTH",
                "symbol": sym,
                "time": now,
            }
        )
        if realized != 0:
            self._book_income(account, sym, "REALIZED_PNL", realized, now, str(trade_id))
        self._book_income(account, sym, "COMMISSION", -commission, now, str(trade_id))
        order.executed += qty
        order.cum_quote += qty * price
        order.update_time = now

    def _reducible(self, account: _Account, sym: str, side: str) -> Decimal:
        """How much a reduce-only ``side`` order may trade: the opposite position's size, else nothing."""
        amt = account.positions.get(sym, _Position()).amt
        if (side == "SELL" and amt > 0) or (side == "BUY" and amt < 0):
            return abs(amt)
        return ZERO

    def _check_margin(self, account: _Account, sym: str, side: str, qty: Decimal, price: Decimal) -> None:
        """-2019 when the opening part of an order needs more initial margin + commission than is available."""
        reducing = self._reducible(account, sym, side)
        opening = max(qty - reducing, ZERO)
        lev = self._leverage(account, sym)
        freed = min(qty, reducing) * price / lev
        need = opening * price / lev + qty * price * self.commission
        if opening > 0 and need > self._available(account) + freed:
            raise BinanceError(-2019, "Margin is insufficient.")

    def _trigger(self, account: _Account, sym: str) -> None:
        """Execute the LIMIT and conditional orders the current price crosses, oldest first."""
        price = self._prices[sym]
        for order in [o for o in account.orders if o.symbol == sym and o.status == "NEW"]:
            crossed = price <= order.price if order.side == "BUY" else price >= order.price
            if crossed:
                self._execute_resting(account, order)
        for algo in [a for a in account.algo_orders if a.symbol == sym and a.status == "NEW"]:
            if self._crossed(algo, price):
                self._execute_algo(account, algo)

    @staticmethod
    def _crossed(algo: _AlgoOrder, price: Decimal) -> bool:
        stop = algo.order_type == "STOP_MARKET"
        if algo.side == "SELL":
            return price <= algo.trigger_price if stop else price >= algo.trigger_price
        return price >= algo.trigger_price if stop else price <= algo.trigger_price

    def _execute_resting(self, account: _Account, order: _Order) -> None:
        qty = order.qty - order.executed
        if order.reduce_only:
            qty = min(qty, self._reducible(account, order.symbol, order.side))
        if qty > 0:
            self._fill(account, order, qty, order.price)
        order.status = "FILLED" if order.executed == order.qty else "EXPIRED"
        order.update_time = self.clock_ms()

    def _execute_algo(self, account: _Account, algo: _AlgoOrder) -> None:
        """A triggered conditional order becomes a MARKET order at the current price (or expires: nothing to reduce)."""
        sym, price, now = algo.symbol, self._prices[algo.symbol], self.clock_ms()
        algo.trigger_time = algo.update_time = now
        qty = algo.qty
        if algo.reduce_only or algo.close_position:
            reducible = self._reducible(account, sym, algo.side)
            qty = reducible if algo.close_position else min(qty, reducible)
            if qty == 0:
                algo.status = "EXPIRED"
                return
        else:
            try:
                self._check_margin(account, sym, algo.side, qty, price)
            except BinanceError:
                algo.status = "REJECTED"
                return
        order = _Order(
            order_id=self._next_id("order"),
            client_id=algo.client_algo_id,
            symbol=sym,
            side=algo.side,
            type="MARKET",
            orig_type=algo.order_type,
            qty=qty,
            price=ZERO,
            stop_price=algo.trigger_price,
            reduce_only=algo.reduce_only,
            close_position=algo.close_position,
            time_in_force="GTC",
            time=now,
            update_time=now,
            source="algo",
        )
        account.orders.append(order)
        self._fill(account, order, qty, price)
        order.status = "FILLED"
        algo.status = "FINISHED"
        algo.actual_order_id = str(order.order_id)
        algo.actual_price = price

    # ---- payloads --------------------------------------------------------------------------------------------
    def _order_payload(self, o: _Order, response: bool = False) -> dict[str, Any]:
        rules = self._rules[o.symbol]
        avg = o.cum_quote / o.executed if o.executed else ZERO
        body: dict[str, Any] = {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": o.status,
            "clientOrderId": o.client_id,
            "price": _fmt(o.price, rules.price_places) if o.price else "0",
            "avgPrice": _fmt(avg, rules.price_places + 3),
            "origQty": _fmt(o.qty, rules.qty_places),
            "executedQty": _fmt(o.executed, rules.qty_places),
            "cumQuote": _fmt(o.cum_quote, rules.price_places + 3),
            "timeInForce": o.time_in_force,
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": o.close_position,
            "side": o.side,
            "positionSide": "BOTH",
            "stopPrice": _fmt(o.stop_price, rules.price_places) if o.stop_price else "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.orig_type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": o.update_time,
        }
        if response:  # POST/DELETE answers carry cumQty and no "time"
            body["cumQty"] = body["executedQty"]
        else:
            body["time"] = o.time
        return body

    def _algo_payload(self, a: _AlgoOrder, query: bool = False) -> dict[str, Any]:
        rules = self._rules[a.symbol]
        body: dict[str, Any] = {
            "algoId": a.algo_id,
            "clientAlgoId": a.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": a.order_type,
            "symbol": a.symbol,
            "side": a.side,
            "positionSide": "BOTH",
            "timeInForce": "GTC",
            "quantity": _fmt(a.qty, rules.qty_places),
            "algoStatus": a.status,
            "triggerPrice": _fmt(a.trigger_price, rules.price_places),
            "price": "0.00",
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": a.working_type,
            "priceMatch": "NONE",
            "closePosition": a.close_position,
            "priceProtect": False,
            "reduceOnly": a.reduce_only,
            "activatePrice": "",
            "callbackRate": "",
            "createTime": a.create_time,
            "updateTime": a.update_time,
            "triggerTime": a.trigger_time,
            "goodTillDate": 0,
        }
        if query:
            body["actualOrderId"] = a.actual_order_id
            body["actualPrice"] = _fmt(a.actual_price, rules.price_places + 3)
        return body

    # ---- endpoint helpers ------------------------------------------------------------------------------------
    def _rules_for(self, params: dict[str, str]) -> _Perp:
        sym = _required(params, "symbol")
        with self._lock:
            delisted = sym in self.delisted
        if sym not in self._rules or delisted:
            raise BinanceError(-1121, "Invalid symbol.")
        return self._rules[sym]

    def _check_qty(self, rules: _Perp, qty: Decimal, market: bool) -> None:
        if qty <= 0:
            raise BinanceError(-4003, "Quantity less than or equal to zero.")
        if qty % rules.step != 0:
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < rules.min_qty:
            raise BinanceError(-4004, "Quantity less than or equal to min quantity.")
        if qty > (rules.market_max_qty if market else rules.max_qty):
            raise BinanceError(-4005, "Quantity greater than max quantity.")

    def _check_price(self, rules: _Perp, price: Decimal, name: str = "price") -> None:
        if price <= 0:
            raise BinanceError(-4006 if name == "stopPrice" else -4001, "Price less than 0.")
        if price % rules.tick != 0:
            raise BinanceError(-4014, "Price not increased by tick size.")
        if price < rules.min_price:
            raise BinanceError(-4013, "Price less than min price.")

    def _check_client_id(self, account: _Account, client_id: str, name: str, algo: bool) -> None:
        if not CLIENT_ID_RULE.match(client_id):
            raise BinanceError(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$'.",
            )
        open_ids = (
            {a.client_algo_id for a in account.algo_orders if a.status == "NEW"}
            if algo
            else {o.client_id for o in account.orders if o.status == "NEW"}
        )
        if client_id in open_ids:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")

    def _check_one_way(self, params: dict[str, str]) -> None:
        if params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")

    def _find_order(self, account: _Account, params: dict[str, str], sym: str) -> _Order:
        order_id = _int(params, "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise BinanceError(-1102, "Either orderId or origClientOrderId must be sent.")
        found = [
            o
            for o in account.orders
            if o.symbol == sym and (o.order_id == order_id if order_id is not None else o.client_id == client_id)
        ]
        if not found:
            raise BinanceError(-2013, "Order does not exist.")
        open_ = [o for o in found if o.status == "NEW"]
        return open_[-1] if open_ else found[-1]

    def _find_algo(self, account: _Account, params: dict[str, str]) -> _AlgoOrder:
        algo_id = _int(params, "algoId")
        client_id = params.get("clientAlgoId")
        if algo_id is None and not client_id:
            raise BinanceError(-1102, "Either algoId or clientAlgoId must be sent.")
        found = [
            a
            for a in account.algo_orders
            if (a.algo_id == algo_id if algo_id is not None else a.client_algo_id == client_id)
        ]
        if not found:
            raise BinanceError(-2013, "Order does not exist.")
        open_ = [a for a in found if a.status == "NEW"]
        return open_[-1] if open_ else found[-1]

    @staticmethod
    def _window(params: dict[str, str], default_limit: int, max_limit: int) -> tuple[int | None, int | None, int]:
        start, end = _int(params, "startTime"), _int(params, "endTime")
        limit = _int(params, "limit", default_limit)
        assert limit is not None
        if not 1 <= limit <= max_limit:
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1023, "Start time is greater than end time.")
        return start, end, limit

    # ---- private endpoints -----------------------------------------------------------------------------------
    def _new_order(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        rules = self._rules_for(params)
        sym = rules.symbol
        side = _required(params, "side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        kind = _required(params, "type")
        if kind in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise BinanceError(
                -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
            )
        if kind not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        self._check_one_way(params)
        qty = _dec(params, "quantity")
        if qty is None:
            raise BinanceError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        self._check_qty(rules, qty, market=kind == "MARKET")
        reduce_only = _bool(params, "reduceOnly")
        price = self._prices[sym]
        limit_price = ZERO
        if kind == "LIMIT":
            limit = _dec(params, "price")
            if limit is None:
                raise BinanceError(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
            self._check_price(rules, limit)
            if params.get("timeInForce", "GTC") != "GTC":
                raise BinanceError(-1116, "Invalid timeInForce (this fixture models GTC only).")
            limit_price = limit
        notional_price = limit_price if kind == "LIMIT" else price
        if not reduce_only and qty * notional_price < rules.min_notional:
            raise BinanceError(
                -4164, f"Order's notional must be no smaller than {rules.min_notional} (unless you choose reduce only)."
            )
        client_id = params.get("newClientOrderId") or f"web_{uuid.uuid4().hex[:20]}"
        self._check_client_id(account, client_id, "newClientOrderId", algo=False)
        if reduce_only and self._reducible(account, sym, side) == 0:
            raise BinanceError(-2022, "ReduceOnly Order is rejected.")
        if not reduce_only:
            self._check_margin(account, sym, side, qty, notional_price)
        now = self.clock_ms()
        order = _Order(
            order_id=self._next_id("order"),
            client_id=client_id,
            symbol=sym,
            side=side,
            type=kind,
            orig_type=kind,
            qty=qty,
            price=limit_price,
            stop_price=ZERO,
            reduce_only=reduce_only,
            close_position=False,
            time_in_force=params.get("timeInForce", "GTC"),
            time=now,
            update_time=now,
        )
        account.orders.append(order)
        if kind == "MARKET":
            self._execute_market(account, order, rules)
        elif (side == "BUY" and price <= limit_price) or (side == "SELL" and price >= limit_price):
            fill_qty = min(qty, self._reducible(account, sym, side)) if reduce_only else qty
            self._fill(account, order, fill_qty, price)  # marketable: takes the current price
            order.status = "FILLED" if order.executed == order.qty else "EXPIRED"
        return 200, self._order_payload(order, response=True)

    def _execute_market(self, account: _Account, order: _Order, rules: _Perp) -> None:
        qty = order.qty
        if order.reduce_only:
            qty = min(qty, self._reducible(account, order.symbol, order.side))
        if self._partial:
            ratio = self._partial.pop(0)
            qty = (qty * ratio).quantize(rules.step, rounding=ROUND_DOWN)
        if qty > 0:
            self._fill(account, order, qty, self._prices[order.symbol])
        order.status = "FILLED" if order.executed == order.qty else "EXPIRED"

    def _new_algo_order(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        rules = self._rules_for(params)
        sym = rules.symbol
        if _required(params, "algoType") != "CONDITIONAL":
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        side = _required(params, "side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        kind = _required(params, "type")
        if kind not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise BinanceError(-1116, "Invalid orderType (this fixture models STOP_MARKET and TAKE_PROFIT_MARKET).")
        self._check_one_way(params)
        close_position = _bool(params, "closePosition")
        reduce_only = _bool(params, "reduceOnly")
        if close_position and (reduce_only or "quantity" in params):
            name = "reduceOnly" if reduce_only else "quantity"
            raise BinanceError(-1106, f"Parameter '{name}' sent when not required.")
        trigger = _dec(params, "triggerPrice")
        if trigger is None:
            raise BinanceError(-1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.")
        self._check_price(rules, trigger, "stopPrice")
        qty = ZERO
        if not close_position:
            given = _dec(params, "quantity")
            if given is None:
                raise BinanceError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
            self._check_qty(rules, given, market=True)
            qty = given
            if not reduce_only and qty * trigger < rules.min_notional:
                raise BinanceError(
                    -4164,
                    f"Order's notional must be no smaller than {rules.min_notional} (unless you choose reduce only).",
                )
        client_id = params.get("clientAlgoId") or uuid.uuid4().hex[:22]
        self._check_client_id(account, client_id, "clientAlgoId", algo=True)
        now = self.clock_ms()
        algo = _AlgoOrder(
            algo_id=self._next_id("algo"),
            client_algo_id=client_id,
            symbol=sym,
            side=side,
            order_type=kind,
            qty=qty,
            trigger_price=trigger,
            reduce_only=reduce_only,
            close_position=close_position,
            working_type=params.get("workingType", "CONTRACT_PRICE"),
            create_time=now,
            update_time=now,
        )
        if self._crossed(algo, self._prices[sym]):
            raise BinanceError(-2021, "Order would immediately trigger.")
        account.algo_orders.append(algo)
        return 200, self._algo_payload(algo)

    def _cancel_order(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        rules = self._rules_for(params)
        try:
            order = self._find_order(account, params, rules.symbol)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(-2011, "Unknown order sent.") from None
            raise
        if order.status != "NEW":
            raise BinanceError(-2011, "Unknown order sent.")
        order.status, order.update_time = "CANCELED", self.clock_ms()
        return 200, self._order_payload(order, response=True)

    def _cancel_algo(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        try:
            algo = self._find_algo(account, params)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(-2011, "Unknown order sent.") from None
            raise
        if algo.status != "NEW":
            raise BinanceError(-2011, "Unknown order sent.")
        algo.status, algo.update_time = "CANCELED", self.clock_ms()
        return 200, {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}

    def _cancel_all(self, account: _Account, params: dict[str, str], algo: bool) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol
        now = self.clock_ms()
        items: list[Any] = account.algo_orders if algo else account.orders
        for item in items:
            if item.symbol == sym and item.status == "NEW":
                item.status, item.update_time = "CANCELED", now
        return 200, {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _query_order(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        rules = self._rules_for(params)
        return 200, self._order_payload(self._find_order(account, params, rules.symbol))

    def _query_algo(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        return 200, self._algo_payload(self._find_algo(account, params), query=True)

    def _open_orders(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol if "symbol" in params else None
        return 200, [self._order_payload(o) for o in account.orders if o.status == "NEW" and sym in (None, o.symbol)]

    def _all_orders(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        """``fetch_orders``: the symbol's orders by id, from ``orderId`` or within ``startTime``/``endTime``."""
        sym = self._rules_for(params).symbol
        start, end, limit = self._window(params, default_limit=500, max_limit=1000)
        rows = [o for o in account.orders if o.symbol == sym]
        order_id = _int(params, "orderId")
        if order_id is not None:
            return 200, [self._order_payload(o) for o in rows if o.order_id >= order_id][:limit]
        lo, hi = start if start is not None else 0, end if end is not None else 2**62
        return 200, [self._order_payload(o) for o in rows if lo <= o.time <= hi][-limit:]

    def _open_algo_orders(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol if "symbol" in params else None
        return 200, [
            self._algo_payload(a) for a in account.algo_orders if a.status == "NEW" and sym in (None, a.symbol)
        ]

    def _user_trades(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol
        start, end, limit = self._window(params, default_limit=500, max_limit=1000)
        if start is not None and end is not None and end - start > WEEK_MS:
            raise BinanceError(-1127, "More than 7 days between startTime and endTime.")
        order_id, from_id = _int(params, "orderId"), _int(params, "fromId")
        rows = [t for t in account.trades if t["symbol"] == sym]
        if order_id is not None:
            rows = [t for t in rows if t["orderId"] == order_id]
        if from_id is not None:
            return 200, [t for t in rows if t["id"] >= from_id][:limit]
        if start is not None:
            hi = end if end is not None else start + WEEK_MS
            return 200, [t for t in rows if start <= t["time"] <= hi][:limit]
        hi = end if end is not None else self.clock_ms()
        lo = hi - WEEK_MS
        return 200, [t for t in rows if lo <= t["time"] <= hi][-limit:]

    def _income(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        start, end, limit = self._window(params, default_limit=100, max_limit=1000)
        rows = account.income
        if "symbol" in params:
            rows = [r for r in rows if r["symbol"] == params["symbol"]]
        if params.get("incomeType"):
            rows = [r for r in rows if r["incomeType"] == params["incomeType"]]
        if start is None and end is None:  # Binance: the recent 7 days
            now = self.clock_ms()
            return 200, [r for r in rows if r["time"] >= now - WEEK_MS][-limit:]
        lo = start if start is not None else 0
        hi = end if end is not None else 2**62
        return 200, [r for r in rows if lo <= r["time"] <= hi][:limit]

    def _set_leverage(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol
        leverage = _int(params, "leverage")
        max_leverage = _BRACKETS.get(sym, _BRACKETS["BTCUSDT"])[0][0]
        if leverage is None or not 1 <= leverage <= max_leverage:
            raise BinanceError(-4028, f"Leverage {params.get('leverage', '')} is not valid")
        account.leverage[sym] = leverage
        cap = next(b[1] for b in _BRACKETS.get(sym, _BRACKETS["BTCUSDT"]) if b[0] >= leverage)
        return 200, {"leverage": leverage, "maxNotionalValue": str(cap), "symbol": sym}

    def _set_margin_type(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol
        wanted = _required(params, "marginType").upper()
        if wanted not in ("ISOLATED", "CROSSED"):
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        if wanted == self._margin_type(account, sym):
            raise BinanceError(-4046, "No need to change margin type.")
        if account.positions.get(sym, _Position()).amt != 0:
            raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.symbol == sym and o.status == "NEW" for o in account.orders):
            raise BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")
        account.margin_type[sym] = wanted
        return 200, {"code": 200, "msg": "success"}

    def _position_fields(self, account: _Account, sym: str, p: _Position) -> dict[str, Any]:
        mark = self._prices[sym]
        isolated = self._margin_type(account, sym) == "ISOLATED"
        iso_wallet = self._isolated_wallet(account, sym, p)
        upnl = self._upnl(sym, p)
        margin = self._position_margin(account, sym, p)
        rules = self._rules[sym]
        break_even = p.entry * (1 + self.commission) if p.amt > 0 else p.entry * (1 - self.commission)
        return {
            "symbol": sym,
            "positionSide": "BOTH",
            "positionAmt": _fmt(p.amt, rules.qty_places),
            "entryPrice": _fmt(p.entry),
            "breakEvenPrice": _fmt(break_even if p.amt else ZERO),
            "markPrice": _fmt(mark),
            "unRealizedProfit": _fmt(upnl),
            "liquidationPrice": _fmt(self._liquidation_price(account, sym, p)),
            "isolatedMargin": _fmt(iso_wallet + upnl if isolated and p.amt else ZERO),
            "notional": _fmt(p.amt * mark),
            "isolatedWallet": _fmt(iso_wallet),
            "initialMargin": _fmt(margin),
            "maintMargin": _fmt(abs(p.amt) * mark * rules.mmr),
            "updateTime": p.update_time,
        }

    def _position_risk(self, account: _Account, params: dict[str, str], v2: bool) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol if "symbol" in params else None
        rows = []
        for name in self._rules:
            if sym not in (None, name):
                continue
            p = account.positions.get(name, _Position())
            has_orders = any(o.symbol == name and o.status == "NEW" for o in account.orders)
            if not v2 and p.amt == 0 and not has_orders:  # v3 lists only symbols with a position or open orders
                continue
            row = self._position_fields(account, name, p)
            if v2:
                row = {k: row[k] for k in row if k not in ("initialMargin", "maintMargin")}
                lev = self._leverage(account, name)
                row |= {
                    "leverage": str(lev),
                    "maxNotionalValue": str(
                        next(b[1] for b in _BRACKETS.get(name, _BRACKETS["BTCUSDT"]) if b[0] >= lev)
                    ),
                    "marginType": "isolated" if self._margin_type(account, name) == "ISOLATED" else "cross",
                    "isAutoAddMargin": "false",
                }
            else:
                row |= {
                    "marginAsset": "USDT",
                    "positionInitialMargin": row["initialMargin"],
                    "openOrderInitialMargin": _fmt(self._open_order_margin(account, name)),
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                }
            rows.append(row)
        return 200, rows

    def _account(self, account: _Account, params: dict[str, str], v2: bool) -> tuple[int, Any]:
        now = self.clock_ms()
        upnl = sum((self._upnl(s, p) for s, p in account.positions.items()), ZERO)
        cross = [(s, p) for s, p in account.positions.items() if self._margin_type(account, s) == "CROSSED"]
        cross_upnl = sum((self._upnl(s, p) for s, p in cross), ZERO)
        pos_im = sum((self._position_margin(account, s, p) for s, p in account.positions.items()), ZERO)
        order_im = self._open_order_margin(account)
        maint = sum((abs(p.amt) * self._prices[s] * self._rules[s].mmr for s, p in account.positions.items()), ZERO)
        available = self._available(account)
        totals = {
            "totalInitialMargin": _fmt(pos_im + order_im),
            "totalMaintMargin": _fmt(maint),
            "totalWalletBalance": _fmt(account.wallet),
            "totalUnrealizedProfit": _fmt(upnl),
            "totalMarginBalance": _fmt(account.wallet + upnl),
            "totalPositionInitialMargin": _fmt(pos_im),
            "totalOpenOrderInitialMargin": _fmt(order_im),
            "totalCrossWalletBalance": _fmt(self._cross_wallet(account)),
            "totalCrossUnPnl": _fmt(cross_upnl),
            "availableBalance": _fmt(available),
            "maxWithdrawAmount": _fmt(max(available, ZERO)),
        }
        asset = {
            "asset": "USDT",
            "walletBalance": totals["totalWalletBalance"],
            "unrealizedProfit": totals["totalUnrealizedProfit"],
            "marginBalance": totals["totalMarginBalance"],
            "maintMargin": totals["totalMaintMargin"],
            "initialMargin": totals["totalInitialMargin"],
            "positionInitialMargin": totals["totalPositionInitialMargin"],
            "openOrderInitialMargin": totals["totalOpenOrderInitialMargin"],
            "crossWalletBalance": totals["totalCrossWalletBalance"],
            "crossUnPnl": totals["totalCrossUnPnl"],
            "availableBalance": totals["availableBalance"],
            "maxWithdrawAmount": totals["maxWithdrawAmount"],
            "updateTime": now,
        }
        positions = []
        for sym, p in account.positions.items():
            if p.amt == 0 and not v2:
                continue
            row = self._position_fields(account, sym, p)
            entry = {
                "symbol": sym,
                "positionSide": "BOTH",
                "positionAmt": row["positionAmt"],
                "unrealizedProfit": row["unRealizedProfit"],
                "isolatedMargin": row["isolatedMargin"],
                "notional": row["notional"],
                "isolatedWallet": row["isolatedWallet"],
                "initialMargin": row["initialMargin"],
                "maintMargin": row["maintMargin"],
                "updateTime": p.update_time,
            }
            if v2:
                entry |= {
                    "leverage": str(self._leverage(account, sym)),
                    "isolated": self._margin_type(account, sym) == "ISOLATED",
                    "entryPrice": row["entryPrice"],
                    "breakEvenPrice": row["breakEvenPrice"],
                    "positionInitialMargin": row["initialMargin"],
                    "openOrderInitialMargin": _fmt(self._open_order_margin(account, sym)),
                }
            positions.append(entry)
        body: dict[str, Any] = dict(totals)
        if v2:
            body = {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0} | body
        return 200, body | {"assets": [asset], "positions": positions}

    def _leverage_bracket(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol if "symbol" in params else None
        rows = [
            {
                "symbol": name,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": i + 1,
                        "initialLeverage": lev,
                        "notionalCap": cap,
                        "notionalFloor": floor,
                        "maintMarginRatio": float(mmr),
                        "cum": float(cum),
                    }
                    for i, (lev, cap, floor, mmr, cum) in enumerate(_BRACKETS.get(name, _BRACKETS["BTCUSDT"]))
                ],
            }
            for name in self._rules
            if sym in (None, name)
        ]
        return 200, rows[0] if sym is not None else rows

    def _symbol_config(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        sym = self._rules_for(params).symbol if "symbol" in params else None
        return 200, [
            {
                "symbol": name,
                "marginType": self._margin_type(account, name),
                "isAutoAddMargin": False,
                "leverage": self._leverage(account, name),
                "maxNotionalValue": str(
                    next(
                        b[1] for b in _BRACKETS.get(name, _BRACKETS["BTCUSDT"]) if b[0] >= self._leverage(account, name)
                    )
                ),
            }
            for name in self._rules
            if sym in (None, name)
        ]

    def _dual_side(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        if _bool(params, "dualSidePosition"):
            raise BinanceError(-1000, "This fixture models one-way mode (dualSidePosition=false) only.")
        raise BinanceError(-4059, "No need to change position side.")

    def _private_routes(self) -> dict[tuple[str, str], Callable[[_Account, dict[str, str]], tuple[int, Any]]]:
        return {
            ("POST", "/fapi/v1/order"): self._new_order,
            ("GET", "/fapi/v1/order"): self._query_order,
            ("DELETE", "/fapi/v1/order"): self._cancel_order,
            ("POST", "/fapi/v1/algoOrder"): self._new_algo_order,
            ("GET", "/fapi/v1/algoOrder"): self._query_algo,
            ("DELETE", "/fapi/v1/algoOrder"): self._cancel_algo,
            ("GET", "/fapi/v1/openOrders"): self._open_orders,
            ("GET", "/fapi/v1/allOrders"): self._all_orders,
            ("GET", "/fapi/v1/openAlgoOrders"): self._open_algo_orders,
            ("DELETE", "/fapi/v1/allOpenOrders"): lambda a, p: self._cancel_all(a, p, algo=False),
            ("DELETE", "/fapi/v1/algoOpenOrders"): lambda a, p: self._cancel_all(a, p, algo=True),
            ("GET", "/fapi/v1/userTrades"): self._user_trades,
            ("GET", "/fapi/v1/income"): self._income,
            ("POST", "/fapi/v1/leverage"): self._set_leverage,
            ("POST", "/fapi/v1/marginType"): self._set_margin_type,
            ("GET", "/fapi/v3/positionRisk"): lambda a, p: self._position_risk(a, p, v2=False),
            ("GET", "/fapi/v2/positionRisk"): lambda a, p: self._position_risk(a, p, v2=True),
            ("GET", "/fapi/v3/account"): lambda a, p: self._account(a, p, v2=False),
            ("GET", "/fapi/v2/account"): lambda a, p: self._account(a, p, v2=True),
            ("GET", "/fapi/v1/leverageBracket"): self._leverage_bracket,
            ("GET", "/fapi/v1/symbolConfig"): self._symbol_config,
            ("GET", "/fapi/v1/positionSide/dual"): lambda a, p: (200, {"dualSidePosition": False}),
            ("POST", "/fapi/v1/positionSide/dual"): self._dual_side,
            ("GET", "/fapi/v1/multiAssetsMargin"): lambda a, p: (200, {"multiAssetsMargin": False}),
            ("GET", "/sapi/v1/capital/config/getall"): self._coins,
            ("GET", "/sapi/v1/margin/allPairs"): self._margin_pairs,
        }

    def _margin_pairs(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        """Binance's cross-margin pair list, which ccxt's ``load_markets`` also fetches when keys are set."""
        return 200, [
            {
                "id": 351637150141315861 + i,
                "symbol": sym,
                "base": sym.removesuffix("USDT"),
                "quote": "USDT",
                "isMarginTrade": True,
                "isBuyAllowed": True,
                "isSellAllowed": True,
            }
            for i, sym in enumerate(self._rules)
        ]

    def _coins(self, account: _Account, params: dict[str, str]) -> tuple[int, Any]:
        """Binance's wallet coin list, which ccxt's ``load_markets`` fetches whenever keys are set (spot wallet
        balances are zero here: this fixture models the USDⓈ-M wallet only)."""
        names = {"USDT": "TetherUS", "BTC": "Bitcoin", "ETH": "Ethereum"}
        return 200, [
            {
                "coin": coin,
                "depositAllEnable": True,
                "withdrawAllEnable": True,
                "name": name,
                "free": "0",
                "locked": "0",
                "freeze": "0",
                "withdrawing": "0",
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": False,
                "trading": True,
                "networkList": [
                    {
                        "network": coin if coin != "USDT" else "ETH",
                        "coin": coin,
                        "withdrawIntegerMultiple": "0.00000001",
                        "isDefault": True,
                        "depositEnable": True,
                        "withdrawEnable": True,
                        "depositDesc": "",
                        "withdrawDesc": "",
                        "specialTips": "",
                        "name": name,
                        "resetAddressStatus": False,
                        "addressRegex": "^(0x)[0-9A-Fa-f]{40}$",
                        "memoRegex": "",
                        "withdrawFee": "0.0001",
                        "withdrawMin": "0.001",
                        "withdrawMax": "10000",
                        "minConfirm": 12,
                        "unLockConfirm": 0,
                        "sameAddress": False,
                        "busy": False,
                    }
                ],
            }
            for coin, name in names.items()
        ]

    # ---- public endpoints: the base server's, with this server's prices --------------------------------------
    def _premium_entry(self, symbol: str) -> dict[str, Any]:
        """The base server's premiumIndex entry with mark/index/settle price = the current price (``set_price``)
        and, once ``charge_funding`` ran, its rate as ``lastFundingRate``."""
        base = getattr(super(), "_premium_entry", None)
        with self._book:
            mine = self._premium_row(symbol)
        if base is None:
            return mine
        row: dict[str, Any] = base(symbol)
        mark = mine["markPrice"]
        row.update(markPrice=mark, indexPrice=mark, estimatedSettlePrice=mark)
        if symbol in self._funding_rates:
            row["lastFundingRate"] = mine["lastFundingRate"]
        return row

    def _premium_row(self, sym: str) -> dict[str, Any]:
        mark = _fmt(self._prices[sym])
        rate = self._funding_rates.get(sym)
        if rate is None:  # the sample's latest settled rate at the server's now
            series = self._funding.get(sym)
            rate = ZERO
            if series is not None:
                i = int(np.searchsorted(series.time_ms, self.now_ms, side="right")) - 1
                rate = Decimal(series.rows[i]["fundingRate"]) if i >= 0 else ZERO
        return {
            "symbol": sym,
            "markPrice": mark,
            "indexPrice": mark,
            "estimatedSettlePrice": mark,
            "lastFundingRate": _fmt(rate),
            "interestRate": "0.00010000",
            "nextFundingTime": (self.now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS,
            "time": self.now_ms,
        }

    def _own_premium_index(self, query: dict[str, str]) -> tuple[int, Any]:
        """Fallback for a base server that does not route ``/fapi/v1/premiumIndex``."""
        sym = query.get("symbol")
        if sym is not None and (sym not in self._rules or sym in self.delisted):
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        rows = [self._premium_entry(name) for name in self._rules if sym in (None, name)]
        return 200, rows[0] if sym is not None else rows

    def _own_fapi_klines(self, query: dict[str, str]) -> tuple[int, Any]:
        """Fallback for a base server that does not route ``/fapi/v1/klines``: the sample's spot bars."""
        if query.get("symbol") not in self._rules:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        query = dict(query)
        if "limit" in query and query["limit"].isdigit() and 1000 < int(query["limit"]) <= 1500:
            query["limit"] = "1000"
        return self._klines(query)

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """The base server's public routes first; ours only for paths it does not serve.

        The trading server's time is the wall clock its signed requests are checked against (the base server's
        market-data "now" stays the sample's), so a client that re-syncs its clock after -1021 gets the right one.
        """
        if path in ("/fapi/v1/time", "/api/v3/time"):
            return 200, {"serverTime": self.clock_ms()}
        status, payload = super()._route(path, query)
        if status != 404 or payload is not None:
            return status, payload
        if path == "/fapi/v1/premiumIndex":
            return self._own_premium_index(query)
        if path == "/fapi/v1/klines":
            return self._own_fapi_klines(query)
        return 404, None

    # ---- request handling ------------------------------------------------------------------------------------
    def _authenticate(self, headers: Any, raw_query: str, raw_body: str, params: dict[str, str]) -> _Account:
        """Binance's checks in its order: API key, timestamp/recvWindow, signature."""
        api_key = headers.get("X-MBX-APIKEY")
        if not api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        account = self._accounts.get(api_key)
        if account is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        with self._book:
            forced = self._timestamp_errors > 0
            if forced:
                self._timestamp_errors -= 1
        stamp = _int(params, "timestamp")
        if stamp is None:
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        window = _int(params, "recvWindow", 5000)
        assert window is not None
        if window > 60_000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = int(time.time() * 1000)
        if forced or stamp > now + 1000 or now - stamp > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        signature = params.get("signature", "")
        signed = _strip_signature(raw_query) + _strip_signature(raw_body)
        expected = hmac.new(account.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower(), expected):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        return account

    def _handle_private(
        self, method: str, path: str, headers: Any, raw_query: str, raw_body: str, params: dict[str, str]
    ) -> tuple[int, Any, str | None]:
        route = self._private_routes().get((method, path))
        api_key = headers.get("X-MBX-APIKEY")
        try:
            account = self._authenticate(headers, raw_query, raw_body, params)
            placing = method == "POST" and path in _ORDER_PATHS
            with self._book:
                if placing and self._rejects:
                    raise self._rejects.pop(0)
                if route is None:
                    return 404, None, api_key
                status, payload = route(account, params)
        except BinanceError as exc:
            return exc.status, exc.body, api_key
        return status, payload, api_key

    def _take_hold(self, method: str, path: str) -> float:
        with self._book:
            for hold in self._holds:
                matches = path == hold.path if hold.path else (method == "POST" and path in _ORDER_PATHS)
                if matches:
                    hold.count -= 1
                    if hold.count <= 0:
                        self._holds.remove(hold)
                    return hold.delay_s
        return 0.0

    def _is_private(self, method: str, path: str) -> bool:
        return (method, path) in self._private_routes() or (
            path.startswith("/fapi/") and path not in _PUBLIC_FAPI and method in ("POST", "DELETE", "PUT")
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Binance: ccxt's session reuses the connection
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw_body = self.rfile.read(length).decode() if length else ""
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                params.update(parse_qsl(raw_body, keep_blank_values=True))
                path = parts.path
                with server._lock:
                    server.requests[path] += 1
                    server.request_log.append((path, dict(params)))
                failure = server._take_failure(path)
                if failure is not None and failure.status == 0:
                    time.sleep(failure.delay_s)
                elif failure is not None:
                    server._log(method, path, params, self.headers.get("X-MBX-APIKEY"), failure.status)
                    self._send_failure(failure.status)
                    return
                api_key: str | None = None
                if server._is_private(method, path):
                    status, payload, api_key = server._handle_private(
                        method, path, self.headers, parts.query, raw_body, params
                    )
                    delay = server._take_hold(method, path)
                    if delay:
                        time.sleep(delay)
                elif method == "GET":
                    status, payload = server._route(path, params)
                else:
                    status, payload = 404, None
                server._log(method, path, params, api_key, status)
                if payload is None:
                    self._send(status, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
                    return
                self._send(status, json.dumps(payload, separators=(",", ":")).encode(), _JSON)

            def _send_failure(self, status: int) -> None:
                retry = server._retry_after.get(status)
                if status == 429:
                    body = {
                        "code": -1003,
                        "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. "
                        "Please use the websocket for live updates to avoid bans.",
                    }
                    self._send(status, json.dumps(body).encode(), _JSON, {"Retry-After": retry or "1"})
                elif status == 418:
                    until = int(time.time() * 1000) + 1000 * int(retry or "60")
                    body = {
                        "code": -1003,
                        "msg": f"Way too many requests; IP(127.0.0.1) banned until {until}. "
                        "Please use the websocket for live updates to avoid bans.",
                    }
                    self._send(status, json.dumps(body).encode(), _JSON, {"Retry-After": retry or "60"})
                else:
                    self._send(
                        status, f"<html><body><h1>{status} Service Unavailable</h1></body></html>".encode(), "text/html"
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

    def _log(self, method: str, path: str, params: dict[str, str], api_key: str | None, status: int) -> None:
        with self._lock:
            self.calls.append(Call(method, path, dict(params), api_key, status))


_PUBLIC_FAPI = frozenset(
    {"/fapi/v1/ping", "/fapi/v1/time", "/fapi/v1/exchangeInfo", "/fapi/v1/fundingRate", "/fapi/v1/premiumIndex"}
)


def _strip_signature(raw: str) -> str:
    """The signed text of a query string or body: everything but its ``signature`` parameter."""
    kept = [part for part in raw.split("&") if part and not part.startswith("signature=")]
    return "&".join(kept)


# Real hosts by path prefix: ccxt chooses its per-market exception table from the request URL's host.
_REAL_HOSTS = (
    ("/fapi/", "https://fapi.binance.com"),
    ("/futures/data", "https://fapi.binance.com"),
    ("/dapi/", "https://dapi.binance.com"),
    ("/eapi/", "https://eapi.binance.com"),
    ("/papi/", "https://papi.binance.com"),
    ("/", "https://api.binance.com"),
)


def _loopback_aware(cls: type[Any], base_url: str) -> type[Any]:
    """``cls`` whose error mapping treats ``base_url`` as Binance's real hosts.

    ccxt's binance picks the exception table by URL host (``https://fapi.binance.com/`` -> its "linear" table,
    where -2019 is InsufficientFunds and -4164 InvalidOrder); on a loopback URL it would fall back to the
    common table (-2019 -> plain ExchangeError) and tests would see other classes than live code does. Only
    the URL handed to that look-up is rewritten; requests still go to the loopback.
    """

    def get_exceptions_by_url(self: Any, url: str | None, exact_or_broad: str) -> dict[str, Any]:
        if url is not None and url.startswith(base_url + "/"):
            path = url[len(base_url) :]
            host = next(real for prefix, real in _REAL_HOSTS if path.startswith(prefix))
            url = host + path
        result: dict[str, Any] = cls.get_exceptions_by_url(self, url, exact_or_broad)
        return result

    return type(cls.__name__, (cls,), {"get_exceptions_by_url": get_exceptions_by_url})


def futures_client(
    server: BinanceSpotServer,
    api_key: str,
    secret: str,
    *,
    timeout_ms: int = 2_000,
    options: dict[str, Any] | None = None,
    asynchronous: bool = False,
) -> Any:
    """A real ccxt ``binanceusdm`` client whose REST hosts all point at ``server`` (paths kept).

    Sync by default (``ccxt.binanceusdm``); ``asynchronous=True`` gives ``ccxt.async_support.binanceusdm`` (the
    caller awaits ``close()``). ccxt's rate limiter is off (the loopback has no limits unless a test injects
    them); ``options`` are merged into ccxt's ``options``. The one change to ccxt's behaviour is the error-table
    look-up (see ``_loopback_aware``), so each Binance error code maps to the exception class it maps to live.
    """
    from arena_lib.data import api_urls_for_host

    if asynchronous:
        import ccxt.async_support as ccxt_async

        cls: type[Any] = ccxt_async.binanceusdm
    else:
        import ccxt

        cls = ccxt.binanceusdm
    exchange = _loopback_aware(cls, server.url)(
        {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": False,
            "timeout": timeout_ms,
            "options": dict(options or {}),
        }
    )
    exchange.urls["api"] = api_urls_for_host("binanceusdm", server.url)["api"]
    return exchange


__all__ = ["INTERVAL_MS", "BinanceError", "BinanceFuturesServer", "Call", "futures_client"]
