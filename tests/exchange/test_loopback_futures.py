"""The loopback Binance USDⓈ-M trading server, driven only through the real ccxt ``binanceusdm`` client.

These tests pin two things the order-management code relies on: which HTTP paths ccxt 4.5.90 calls (so the
fixture answers what the live client sends), and which ccxt exception class each Binance fault becomes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:  # `tests` is not an installed package
    sys.path.insert(0, str(_REPO_ROOT))

from tests.servers.binance_futures import BinanceFuturesServer, futures_client  # noqa: E402

KEY, SECRET = "test-key-1", "test-secret-1"
OTHER_KEY, OTHER_SECRET = "test-key-2", "test-secret-2"
BTC = "BTC/USDT:USDT"
TRIGGER = {"trigger": True}  # ccxt's switch to Binance's Algo Service endpoints for conditional orders


@pytest.fixture
def server() -> Iterator[BinanceFuturesServer]:
    with BinanceFuturesServer({KEY: (SECRET, 10_000), OTHER_KEY: (OTHER_SECRET, 50)}) as srv:
        srv.set_price("BTCUSDT", "50000")
        yield srv


@pytest.fixture
def client(server: BinanceFuturesServer) -> Any:
    exchange = futures_client(server, KEY, SECRET)
    exchange.load_markets()
    return exchange


def _paths(server: BinanceFuturesServer, since: int) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in server.calls[since:]]


def _wallet_identity(server: BinanceFuturesServer, key: str) -> None:
    """walletBalance = initial + Σ realizedPnl − Σ commission + Σ funding, exactly (from the trade/income records)."""
    state = server.account_state(key)
    trades = server.trades(key)
    funding = [Decimal(i["income"]) for i in server.income(key) if i["incomeType"] == "FUNDING_FEE"]
    expected = (
        state["initialBalance"]
        + sum((Decimal(t["realizedPnl"]) for t in trades), Decimal(0))
        - sum((Decimal(t["commission"]) for t in trades), Decimal(0))
        + sum(funding, Decimal(0))
    )
    assert state["walletBalance"] == expected
    assert state["walletBalance"] - state["initialBalance"] == sum(Decimal(i["income"]) for i in server.income(key))


def test_markets_load_through_the_paths_ccxt_calls(server: BinanceFuturesServer) -> None:
    exchange = futures_client(server, KEY, SECRET)
    markets = exchange.load_markets()
    assert BTC in markets
    assert markets[BTC]["swap"]
    assert markets[BTC]["linear"]
    # With keys set, ccxt also fetches the wallet coin list and the margin pairs.
    assert _paths(server, 0) == [
        ("GET", "/sapi/v1/capital/config/getall"),
        ("GET", "/sapi/v1/margin/allPairs"),
        ("GET", "/fapi/v1/exchangeInfo"),
    ]
    before = server.clock_ms()
    assert before <= exchange.fetch_time() <= server.clock_ms()  # the wall clock signed requests are checked against
    assert server.calls[-1].path == "/fapi/v1/time"


def test_leverage_and_margin_mode(server: BinanceFuturesServer, client: Any) -> None:
    assert client.set_leverage(5, BTC)["leverage"] == 5
    client.set_margin_mode("isolated", BTC)
    assert _paths(server, -2) == [("POST", "/fapi/v1/leverage"), ("POST", "/fapi/v1/marginType")]
    with pytest.raises(ccxt.MarginModeAlreadySet):  # -4046 "No need to change margin type."
        client.set_margin_mode("isolated", BTC)
    client.create_order(BTC, "market", "buy", 0.01)
    with pytest.raises(ccxt.OperationRejected):  # -4048 with a position open
        client.set_margin_mode("cross", BTC)
    position = client.fetch_positions([BTC])[0]
    assert position["marginMode"] == "isolated"
    assert position["info"]["isolatedWallet"] == "100.00000000"  # 0.01 * 50000 / 5
    # Isolated estimate: entry * (1 - 1/leverage + mmr) with the first bracket's 0.4 %.
    assert position["liquidationPrice"] == pytest.approx(50000 * (1 - 0.2 + 0.004))
    state = server.account_state(KEY)
    assert state["positions"]["BTCUSDT"]["leverage"] == 5


def test_market_orders_positions_and_balance_arithmetic(server: BinanceFuturesServer, client: Any) -> None:
    client.set_leverage(10, BTC)
    buy = client.create_order(BTC, "market", "buy", 0.02, params={"clientOrderId": "open-1"})
    assert buy["status"] == "closed"
    assert buy["filled"] == 0.02
    assert buy["average"] == 50000
    server.set_price(BTC, "51000")
    # A sell of 0.03 closes the long (+20 realized) and reverses into a 0.01 short at 51000.
    sell = client.create_order(BTC, "market", "sell", 0.03)
    assert sell["filled"] == 0.03
    (position,) = client.fetch_positions([BTC])
    assert position["side"] == "short"
    assert position["contracts"] == 0.01
    assert position["entryPrice"] == 51000
    server.set_price(BTC, "50500")
    assert position["unrealizedPnl"] == 0  # fetched before the move
    (position,) = client.fetch_positions([BTC])
    assert position["unrealizedPnl"] == pytest.approx(5.0)
    trades = client.fetch_my_trades(BTC)
    assert [t["info"]["realizedPnl"] for t in trades] == ["0.00000000", "20.00000000"]
    commission = Decimal("0.0004") * (Decimal("0.02") * 50000 + Decimal("0.03") * 51000)
    assert sum(Decimal(t["info"]["commission"]) for t in trades) == commission
    wallet = Decimal(10_000) + 20 - commission
    balance = client.fetch_balance()
    assert server.calls[-1].path == "/fapi/v3/account"
    assert Decimal(balance["info"]["totalWalletBalance"]) == wallet
    assert balance["USDT"]["total"] == pytest.approx(float(wallet + 5))  # marginBalance = wallet + uPnL
    assert balance["USDT"]["used"] == pytest.approx(50.5)  # 0.01 * 50500 / 10
    _wallet_identity(server, KEY)


def test_stop_and_take_profit_trigger_on_set_price(server: BinanceFuturesServer, client: Any) -> None:
    client.create_order(BTC, "market", "buy", 0.01)
    stop = client.create_order(BTC, "market", "sell", 0.01, params={"stopPrice": 49000, "reduceOnly": True})
    take = client.create_order(BTC, "market", "sell", 0.01, params={"takeProfitPrice": 52000, "reduceOnly": True})
    assert _paths(server, -2) == [("POST", "/fapi/v1/algoOrder")] * 2  # conditional orders: Algo Service
    assert stop["status"] == "open"
    assert stop["triggerPrice"] == 49000
    assert client.fetch_open_orders(BTC) == []  # the matching engine holds no conditional orders
    assert {o["id"] for o in client.fetch_open_orders(BTC, params=TRIGGER)} == {stop["id"], take["id"]}
    assert server.calls[-1].path == "/fapi/v1/openAlgoOrders"

    server.set_price(BTC, "48900")  # gaps through the stop: it fills at the new price
    assert client.fetch_positions([BTC]) == []
    done = client.fetch_order(stop["id"], BTC, params=TRIGGER)
    assert server.calls[-1].path == "/fapi/v1/algoOrder"
    assert done["status"] == "closed"
    assert done["info"]["algoStatus"] == "FINISHED"
    child = client.fetch_order(done["info"]["actualOrderId"], BTC)
    assert child["status"] == "closed"
    assert child["average"] == 48900
    assert child["info"]["origType"] == "STOP_MARKET"
    # The take-profit is NOT cancelled with the position: the client must cancel it...
    assert [o["id"] for o in client.fetch_open_orders(BTC, params=TRIGGER)] == [take["id"]]
    # ...else it triggers with nothing to reduce and expires without opening a position.
    server.set_price(BTC, "52000")
    assert client.fetch_order(take["id"], BTC, params=TRIGGER)["status"] == "expired"
    assert client.fetch_positions([BTC]) == []
    _wallet_identity(server, KEY)


def test_reduce_only_market_order_with_no_position_is_rejected(client: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        client.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})


def test_cancel_and_cancel_all(server: BinanceFuturesServer, client: Any) -> None:
    limit = client.create_order(BTC, "limit", "buy", 0.01, 45000)
    assert limit["status"] == "open"
    assert client.cancel_order(limit["id"], BTC)["status"] == "canceled"
    assert server.calls[-1].method == "DELETE"
    assert server.calls[-1].path == "/fapi/v1/order"
    with pytest.raises(ccxt.OrderNotFound):  # -2011 Unknown order sent.
        client.cancel_order(limit["id"], BTC)
    client.create_order(BTC, "market", "buy", 0.01)
    client.create_order(BTC, "limit", "buy", 0.01, 45000)
    stop = client.create_order(BTC, "market", "sell", 0.01, params={"stopPrice": 48000, "reduceOnly": True})
    client.cancel_all_orders(BTC)
    assert server.calls[-1].path == "/fapi/v1/allOpenOrders"
    assert client.fetch_open_orders(BTC) == []
    assert len(client.fetch_open_orders(BTC, params=TRIGGER)) == 1  # allOpenOrders leaves algo orders alone
    assert client.cancel_order(stop["id"], BTC, params=TRIGGER)["id"] == stop["id"]
    client.create_order(BTC, "market", "sell", 0.01, params={"stopPrice": 48000, "reduceOnly": True})
    client.cancel_all_orders(BTC, params=TRIGGER)
    assert server.calls[-1].path == "/fapi/v1/algoOpenOrders"
    assert client.fetch_open_orders(BTC, params=TRIGGER) == []


def test_fetch_my_trades_since(server: BinanceFuturesServer, client: Any) -> None:
    clock = iter([1_000_000, 1_000_000, 2_000_000, 2_000_000, 2_000_000, 2_000_000])
    base = server.clock_ms()
    server.clock_ms = lambda: base - 3_000_000 + next(clock, 2_000_000)
    client.create_order(BTC, "market", "buy", 0.01)
    client.create_order(BTC, "market", "buy", 0.02)
    times = [t["time"] for t in server.trades(KEY)]
    assert times[0] < times[1]
    later = client.fetch_my_trades(BTC, since=times[1])
    assert server.calls[-1].path == "/fapi/v1/userTrades"
    assert server.calls[-1].params["startTime"] == str(times[1])
    assert [t["amount"] for t in later] == [0.02]
    assert len(client.fetch_my_trades(BTC, since=times[0])) == 2


def test_fetch_order_by_client_id_and_duplicate_rules(server: BinanceFuturesServer, client: Any) -> None:
    first = client.create_order(BTC, "limit", "buy", 0.01, 45000, params={"clientOrderId": "bot-1"})
    found = client.fetch_order(None, BTC, params={"origClientOrderId": "bot-1"})
    assert server.calls[-1].params["origClientOrderId"] == "bot-1"
    assert "orderId" not in server.calls[-1].params
    assert found["id"] == first["id"]
    assert found["clientOrderId"] == "bot-1"
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):  # the id of an OPEN order
        client.create_order(BTC, "limit", "buy", 0.01, 45000, params={"clientOrderId": "bot-1"})
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "not allowed!"})
    client.cancel_order(first["id"], BTC)
    # A finished order's id is accepted again, as on Binance: the server keeps both for tests to catch it.
    client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "bot-1"})
    assert [o["status"] for o in server.orders_by_client_id(KEY)["bot-1"]] == ["CANCELED", "FILLED"]


def test_partial_fill_expires_the_rest(server: BinanceFuturesServer, client: Any) -> None:
    server.partial_next(1, "0.5")
    order = client.create_order(BTC, "market", "buy", 0.031)
    assert order["status"] == "expired"
    assert order["filled"] == 0.015
    assert order["amount"] == 0.031
    assert client.fetch_positions([BTC])[0]["contracts"] == 0.015
    assert client.create_order(BTC, "market", "buy", 0.01)["status"] == "closed"


def test_order_filters(server: BinanceFuturesServer, client: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # 0.001 * 50000 < MIN_NOTIONAL 100
        client.create_order(BTC, "market", "buy", 0.001)
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        client.create_order(BTC, "market", "buy", 5)  # 250000 / 20x = 12500 > 10000
    server.delist("BTCUSDT")
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        client.create_order(BTC, "market", "buy", 0.01)


@pytest.mark.parametrize(
    ("inject", "expected"),
    [
        (lambda s: s.reject_next_order(-2019, "Margin is insufficient."), ccxt.InsufficientFunds),
        (lambda s: s.rate_limit_next(1), ccxt.DDoSProtection),  # 429: ccxt raises DDoSProtection itself
        (lambda s: s.ban_next(1), ccxt.DDoSProtection),  # 418
        (lambda s: s.fail_next(1, 503), ccxt.ExchangeNotAvailable),
        (lambda s: s.timestamp_error_next(1), ccxt.InvalidNonce),  # -1021
    ],
    ids=["reject-2019", "429", "418", "503", "timestamp-1021"],
)
def test_faults_surface_as_ccxt_exceptions(
    server: BinanceFuturesServer, client: Any, inject: Any, expected: type[Exception]
) -> None:
    inject(server)
    with pytest.raises(expected):
        client.create_order(BTC, "market", "buy", 0.01)
    assert server.trades(KEY) == []  # nothing executed
    assert client.create_order(BTC, "market", "buy", 0.01)["status"] == "closed"  # one-shot


def test_rate_limit_answer_carries_retry_after(server: BinanceFuturesServer, client: Any) -> None:
    server.rate_limit_next(1, retry_after_s=7)
    with pytest.raises(ccxt.DDoSProtection) as info:
        client.fetch_balance()
    assert '"code": -1003' in str(info.value)
    assert client.last_response_headers["Retry-After"] == "7"


def test_timeout_after_accept_leaves_the_order_on_the_exchange(server: BinanceFuturesServer) -> None:
    client = futures_client(server, KEY, SECRET, timeout_ms=300)
    client.load_markets()
    server.timeout_after_accept_next(1, delay_s=0.6)
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "lost-answer"})
    # The order exists: a client that resolves by its own id finds it filled instead of sending it again.
    order = client.fetch_order(None, BTC, params={"origClientOrderId": "lost-answer"})
    assert order["status"] == "closed"
    assert order["filled"] == 0.01


def test_authentication_failures(server: BinanceFuturesServer) -> None:
    bad_secret = futures_client(server, KEY, "wrong-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad_secret.fetch_balance(params={"type": "swap"})
    unknown = futures_client(server, "nobody", SECRET)
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        unknown.load_markets()
    assert server.calls[-1].status == 401
    assert all(SECRET not in str(c) and "wrong-secret" not in str(c) for c in server.calls)


def test_funding_income_and_mark_price(server: BinanceFuturesServer, client: Any) -> None:
    mark = client.fetch_mark_price(BTC)
    assert mark["markPrice"] == 50000
    assert server.calls[-1].path == "/fapi/v1/premiumIndex"
    client.create_order(BTC, "market", "sell", 0.02)
    paid = server.charge_funding(BTC, "0.0001")
    assert paid == {KEY: Decimal("0.1")}  # a short receives a positive rate: 0.02 * 50000 * 0.0001
    assert client.fetch_funding_rate(BTC)["fundingRate"] == 0.0001
    history = client.fetch_funding_history(BTC)
    assert server.calls[-1].path == "/fapi/v1/income"
    assert server.calls[-1].params["incomeType"] == "FUNDING_FEE"
    assert [h["amount"] for h in history] == [0.1]
    _wallet_identity(server, KEY)


def test_manual_order_and_ohlcv(server: BinanceFuturesServer, client: Any) -> None:
    order = server.manual_order(KEY, BTC, "BUY", "0.03")
    assert order["clientOrderId"].startswith("web_")
    assert client.fetch_positions([BTC])[0]["contracts"] == 0.03
    bars = client.fetch_ohlcv(BTC, "1h", limit=3)
    assert server.calls[-1].path == "/fapi/v1/klines"
    assert len(bars) == 3
    _wallet_identity(server, KEY)


def test_async_client_and_order_history(server: BinanceFuturesServer, client: Any) -> None:
    client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "hist-1"})
    assert [o["clientOrderId"] for o in client.fetch_orders(BTC)] == ["hist-1"]
    assert server.calls[-1].path == "/fapi/v1/allOrders"

    async def balance() -> Any:
        exchange = futures_client(server, KEY, SECRET, asynchronous=True)
        try:
            return await exchange.fetch_balance()
        finally:
            await exchange.close()

    assert asyncio.run(balance())["USDT"]["total"] == pytest.approx(float(server.account_state(KEY)["walletBalance"]))
