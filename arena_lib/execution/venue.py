"""One exchange account through ccxt: connection, retries, the symbol map, and errors that carry no secret.

Every request goes through `Venue.call`, which retries what is worth retrying (network errors, 5xx, 429/418 rate
limits within `max_wait_s`, a clock out of the exchange's window after re-syncing) and turns the rest into an
`ExchangeRejection` carrying the exchange's own message. Orders go through `Venue.submit`, which never sends an
order twice: after any failure whose outcome is unknown (a timeout, a 5xx) it asks the exchange for the client
order id before trying again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from arena_lib.data.ccxt_source import api_urls_for_host, make_exchange
from arena_lib.execution.settings import LiveSettings

log = logging.getLogger(__name__)


class ExchangeRejection(RuntimeError):
    """The exchange refused a request, or could not be reached within the retry budget; the message is its own.

    `error` is ccxt's exception (its class says what kind of refusal it was); it is kept off the traceback chain,
    whose text could carry a request's details.
    """

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error

    def caused_by(self, *kinds: type[BaseException]) -> bool:
        return isinstance(self.error, kinds)


class UnknownSymbolError(ExchangeRejection):
    """The exchange lists no linear perpetual for an arena symbol."""


class _Redact(logging.Filter):
    """Masks an account's keys in ccxt's own debug records (it logs request headers, the API key among them)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for s in self.secrets:
                text = text.replace(s, "***")
            record.msg, record.args = text, ()
        return True


def guard_logs(secrets: tuple[str, ...]) -> None:
    """Install the key mask on ccxt's logger (once per set of keys)."""
    logger = logging.getLogger("ccxt.base.exchange")
    if not any(isinstance(f, _Redact) and f.secrets == secrets for f in logger.filters):
        logger.addFilter(_Redact(secrets))


@dataclass
class Venue:
    """A ccxt client for one exchange account, with the retry policy and the arena-symbol map."""

    exchange: Any  # ccxt.Exchange
    settings: LiveSettings
    secrets: tuple[str, ...] = ()
    sleep: Callable[[float], None] = time.sleep
    _symbols: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.secrets:
            guard_logs(self.secrets)

    @classmethod
    def connect(cls, settings: LiveSettings, api_key: str, secret: str, *, exchange_url: str | None = None) -> Venue:
        """A client for `settings.exchange` with these keys: the testnet when `sandbox`, a loopback host in tests."""
        urls = api_urls_for_host(settings.exchange, exchange_url) if exchange_url else None
        options = {
            "defaultType": "swap",
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            "adjustForTimeDifference": False,
            "fetchMarkets": {"types": ["linear"]},
        }
        exchange = make_exchange(
            settings.exchange,
            urls,
            apiKey=api_key,
            secret=secret,
            timeout=settings.timeout_ms,
            enableRateLimit=exchange_url is None,
            options=options,
        )
        if settings.sandbox:
            exchange.set_sandbox_mode(True)
        return cls(exchange, settings, tuple(s for s in (api_key, secret) if s))

    # -- markets ------------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the exchange's markets (once)."""
        if not self.exchange.markets:
            self.call("load markets", self.exchange.load_markets)

    def market_symbol(self, symbol: str) -> str:
        """The exchange's linear perpetual for an arena symbol (`BTC/USDT` -> `BTC/USDT:USDT`)."""
        found = self._symbols.get(symbol)
        if found is not None:
            return found
        self.load()
        base, _, quote = symbol.partition("/")
        markets: Mapping[str, Any] = self.exchange.markets
        for name, m in markets.items():
            if m.get("swap") and m.get("linear") and m.get("base") == base and m.get("quote") == quote:
                if m.get("active") is False:
                    break
                self._symbols[symbol] = name
                return name
        raise UnknownSymbolError(f"{self.exchange.id} lists no active linear perpetual for {symbol}")

    def market(self, symbol: str) -> Mapping[str, Any]:
        return self.exchange.market(self.market_symbol(symbol))

    # -- requests -----------------------------------------------------------------------------------------------
    def call(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        recover: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """`fn(*args, **kwargs)` with the retry policy; raises `ExchangeRejection` with the exchange's message.

        `recover`, for a request whose effect may have happened although it failed (an order), is asked after each
        such failure before a retry; a result other than None is returned as the request's.
        """
        import ccxt

        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except ccxt.NetworkError as exc:  # timeouts, 5xx, rate limits, our clock outside the exchange's window
                throttled = isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded))
                wait = self._retry_after() if throttled else min(0.2 * 2**attempt, 2.0)  # before `recover` asks
                if recover is not None:
                    found = recover()
                    if found is not None:
                        log.info("%s reached the exchange before the error (%s): adopted", what, exc)
                        return found
                prefix = f"rate limited (retry after {wait:g}s)" if throttled else ""
                if attempt >= self.settings.max_retries or (throttled and wait > self.settings.max_wait_s):
                    raise self.rejection(what, exc, prefix) from None
                if isinstance(exc, ccxt.InvalidNonce):
                    self._resync_clock()
                else:
                    self.sleep(wait)
            except ccxt.BaseError as exc:
                raise self.rejection(what, exc) from None
            attempt += 1

    def submit(
        self, symbol: str, kind: str, side: str, amount: float, client_id: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send an order exactly once: after a failure whose outcome is unknown, look the client id up first."""
        request = {"newClientOrderId": client_id, **(params or {})}
        order: dict[str, Any] = self.call(
            f"send {kind} {side} {symbol} ({client_id})",
            self.exchange.create_order,
            self.market_symbol(symbol),
            kind,
            side,
            amount,
            None,
            request,
            recover=lambda: self.find_order(symbol, client_id, conditional=kind.upper() != "MARKET"),
        )
        return order

    def find_order(self, symbol: str, client_id: str, *, conditional: bool = False) -> dict[str, Any] | None:
        """The order with this client id, or None when the exchange has none."""
        import ccxt

        params: dict[str, Any] = {"clientOrderId": client_id} if conditional else {"origClientOrderId": client_id}
        if conditional:
            params["trigger"] = True
        try:
            found: dict[str, Any] = self.call(
                "look up order", self.exchange.fetch_order, None, self.market_symbol(symbol), params
            )
        except ExchangeRejection as exc:
            if exc.caused_by(ccxt.OrderNotFound):
                return None
            raise
        return found

    def rejection(self, what: str, exc: BaseException, prefix: str = "") -> ExchangeRejection:
        """An `ExchangeRejection` naming the request and the exchange's message, with every secret masked."""
        text = f"{what}: {prefix + ': ' if prefix else ''}{type(exc).__name__}: {exc}"
        return ExchangeRejection(self.redact(text), exc)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def _retry_after(self) -> float:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        for k, v in dict(headers).items():
            if str(k).lower() == "retry-after":
                try:
                    return max(0.0, float(v))
                except ValueError:
                    break
        return 1.0

    def _resync_clock(self) -> None:
        try:
            self.exchange.load_time_difference()
        except Exception as exc:  # the retry will report the exchange's answer
            log.debug("could not re-sync the clock with %s: %s", self.exchange.id, self.redact(str(exc)))

    # -- account state ------------------------------------------------------------------------------------------
    def wallet_balance(self, quote: str = "USDT") -> float:
        """The account's wallet balance in `quote`: deposits + realized PnL - fees + funding (no unrealized PnL)."""
        bal = self.call("fetch balance", self.exchange.fetch_balance)
        info = bal.get("info") or {}
        assets = info.get("assets") if isinstance(info, dict) else None
        if isinstance(assets, list):
            for a in assets:
                if a.get("asset") == quote and a.get("walletBalance") is not None:
                    return float(a["walletBalance"])
        if isinstance(info, dict) and info.get("totalWalletBalance") is not None:
            return float(info["totalWalletBalance"])
        if isinstance(info, list):  # /fapi/v2/balance
            for a in info:
                if a.get("asset") == quote and a.get("balance") is not None:
                    return float(a["balance"])
        total = (bal.get(quote) or {}).get("total")
        if total is None:
            raise ExchangeRejection(f"{self.exchange.id} reports no {quote} balance")
        return float(total)
