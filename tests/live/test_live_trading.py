"""Live trading through ccxt against the loopback Binance USDⓈ-M exchange: orders, exits, reconciliation, faults,
the latch, caps, and secrets. Each test ends with the ledger equal to the exchange."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from arena_lib.arena.config import load_arena_config
from arena_lib.arena.store import ArenaStore
from arena_lib.core.clock import WallClock
from arena_lib.execution.client_ids import Purpose, client_order_id
from arena_lib.execution.latch import LiveNotArmedError
from arena_lib.execution.live_broker import ledger_wallet
from tests.live.conftest import ENV, KEY, SECRET, LiveRig, arena_yaml, market_until


def assert_reconciled(rig: LiveRig) -> None:
    """Ledger equals exchange: the position and the wallet balance."""
    state = rig.server.account_state(KEY)
    acc = next(iter(rig.store.load_accounts(rig.run_id).values()))
    from arena_lib.engine.portfolio import Portfolio

    pf = Portfolio(acc.cash, acc.positions)
    assert rig.ledger_position() == pytest.approx(rig.exchange_position(), abs=1e-12)
    assert ledger_wallet(pf) == pytest.approx(float(state["walletBalance"]), abs=1e-6)
    for d in rig.server.orders_by_client_id(KEY).values():
        assert len(d) == 1, f"client id sent twice: {d}"


def test_an_entry_goes_out_with_a_deterministic_id_leverage_margin_mode_and_exits_on_the_exchange(rig: LiveRig) -> None:
    report = rig.step(0)
    assert report.status == "running"
    assert report.rounds == 1
    bar_ns = int(market_until(0).close_times_ns[-1])
    cid = client_order_id(rig.run_id, "bot", bar_ns, "BTC/USDT", Purpose.ENTRY)
    orders = rig.server.orders_by_client_id(KEY)
    assert cid in orders
    assert orders[cid][0]["type"] == "MARKET"
    state = rig.server.account_state(KEY)
    pos = state["positions"]["BTCUSDT"]
    assert (int(pos["leverage"]), pos["marginType"]) == (2, "ISOLATED")
    assert float(pos["positionAmt"]) * float(pos["entryPrice"]) <= 1000  # the account's max order notional
    algos = {a["orderType"]: a for a in state["openAlgoOrders"]}
    assert set(algos) == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    assert all(a["reduceOnly"] for a in algos.values())
    fills = rig.store.fills_frame(rig.run_id)
    assert fills["source"].tolist() == ["order"]
    assert fills["order_id"].tolist() == [cid]
    assert_reconciled(rig)


def test_a_close_cancels_the_exits_and_the_ledger_follows(rig: LiveRig) -> None:
    rig.step(0)
    rig.step(1)
    state = rig.server.account_state(KEY)
    assert state["positions"] == {}
    assert state["openAlgoOrders"] == []
    assert rig.store.fills_frame(rig.run_id)["kind"].tolist() == ["entry", "exit"]
    assert_reconciled(rig)


def test_a_stop_filled_on_the_exchange_is_imported_and_its_take_profit_cancelled(rig: LiveRig) -> None:
    rig.step(0)
    algos = rig.server.account_state(KEY)["openAlgoOrders"]
    stop = float(next(a for a in algos if a["orderType"] == "STOP_MARKET")["triggerPrice"])
    rig.server.set_price("BTCUSDT", stop)  # fires while the job sleeps between bars
    market = market_until(1)
    from arena_lib.arena.live import live_step

    live_step(rig.config, rig.store, market, job=rig.job, connect=rig.connect, env=ENV)
    fills = rig.store.fills_frame(rig.run_id)
    stop_fill = fills[fills["kind"] == "stop_loss"]
    assert len(stop_fill) == 1
    assert stop_fill["source"].iloc[0] == "exchange"
    assert stop_fill["price"].iloc[0] == pytest.approx(stop)
    first_take = next(a for a in rig.server.algo_orders(KEY) if a["orderType"] == "TAKE_PROFIT_MARKET")
    assert first_take["algoStatus"] == "CANCELED"  # the other exit of the closed position
    assert_reconciled(rig)


def test_a_manual_trade_is_imported_with_its_source(rig: LiveRig) -> None:
    rig.step(0)
    rig.server.manual_order(KEY, "BTCUSDT", "SELL", "0.005")
    rig.step(1)  # the agent closes what is left
    fills = rig.store.fills_frame(rig.run_id)
    assert "manual" in fills["source"].tolist()
    assert_reconciled(rig)


def test_a_difference_nothing_explains_halts_the_account_and_names_it(rig: LiveRig) -> None:
    rig.step(0)
    with rig.server._book:  # a deposit the ledger cannot see
        rig.server._accounts[KEY].wallet += 250
    rig.step(1)
    breakers = rig.store.latest_breakers(rig.run_id)
    halted = [b for b in breakers if b.state == "halted"]
    assert halted
    assert "wallet" in halted[0].reason
    assert "+250" in halted[0].reason
    decisions = rig.store.decisions_frame(rig.run_id)
    assert set(decisions[decisions["round_no"] == 1]["source"]) == {"breaker"}  # not asked, nothing sent


def test_an_order_below_the_exchange_minimum_is_recorded_and_never_sent(rig: LiveRig, tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(arena_yaml(params="{fraction: 0.001}"))
    rig.config = load_arena_config(path)
    rig.step(0)
    rej = rig.store.rejections_frame(rig.run_id)
    assert len(rej) == 1
    assert "minimum" in rej["reason"].iloc[0]
    assert rig.server.orders(KEY) == []


@pytest.mark.parametrize(
    "fault",
    ["timeout_after_accept", "503", "429", "timestamp", "insufficient_margin", "ban", "partial"],
)
def test_every_exchange_fault_ends_with_the_ledger_equal_to_the_exchange(rig: LiveRig, fault: str) -> None:
    s = rig.server
    if fault == "timeout_after_accept":
        s.timeout_after_accept_next(1, delay_s=3.0, path="/fapi/v1/order")
    elif fault == "503":
        s.fail_next(1, 503, path="/fapi/v1/order")
    elif fault == "429":
        s.rate_limit_next(1, retry_after_s=1, path="/fapi/v1/order")
    elif fault == "timestamp":
        s.timestamp_error_next(1)
    elif fault == "insufficient_margin":
        s.reject_next_order(-2019, "Margin is insufficient.")
    elif fault == "ban":
        s.ban_next(1, retry_after_s=600, path="/fapi/v1/order")
    elif fault == "partial":
        s.partial_next(1, "0.5")
    report = rig.step(0)
    assert report.status == "running"
    rej = rig.store.rejections_frame(rig.run_id)
    if fault == "insufficient_margin":
        assert "Margin is insufficient" in rej["reason"].iloc[0]
    if fault == "ban":
        assert "rate limited" in rej["reason"].iloc[0]
    if fault in ("timeout_after_accept", "503", "429", "timestamp", "partial"):
        assert rig.exchange_position() > 0
    assert_reconciled(rig)
    rig.step(1)
    assert_reconciled(rig)


def test_the_latch_names_every_missing_item_and_starts_nothing(rig: LiveRig, tmp_path: Path) -> None:
    path = tmp_path / "paper.yaml"
    path.write_text(arena_yaml().replace("mode: live\n", ""))
    rig.config = load_arena_config(path)
    from arena_lib.arena.live import live_step

    with pytest.raises(LiveNotArmedError) as err:
        live_step(rig.config, rig.store, market_until(0), job="t", connect=rig.connect, env={})
    text = str(err.value)
    assert "mode: live" in text
    assert "ARENA_LIVE_CONFIRM=LIVE" in text
    assert "ARENA_LIVE_API_KEY" in text
    assert rig.store.runs().empty
    assert rig.server.calls == []


def test_a_symbol_the_exchange_does_not_list_is_refused_before_sending(rig: LiveRig, tmp_path: Path) -> None:
    path = tmp_path / "sol.yaml"
    path.write_text(arena_yaml().replace("[BTC/USDT, ETH/USDT]", "[BTC/USDT, SOL/USDT]"))
    rig.config = load_arena_config(path)
    from arena_lib.arena.live import connect_accounts
    from arena_lib.execution.latch import AccountSecrets
    from arena_lib.execution.venue import UnknownSymbolError

    with pytest.raises(UnknownSymbolError, match="SOL/USDT"):
        connect_accounts(rig.config, {"bot": AccountSecrets(KEY, SECRET)}, rig.connect)
    assert rig.server.orders(KEY) == []


def test_keys_never_reach_the_ledger_logs_or_errors(
    rig: LiveRig, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    rig.server.reject_next_order(-2019, "Margin is insufficient.")
    rig.step(0)
    rig.step(1)
    dump = (
        "\n".join(rig.store.engine.raw_connection().iterdump())
        if hasattr(rig.store.engine.raw_connection(), "iterdump")
        else ""
    )
    db = Path(str(rig.store.engine.url.database)).read_bytes()
    for secret in (KEY, SECRET):
        assert secret.encode() not in db
        assert secret not in caplog.text
        assert secret not in dump
    rej = rig.store.rejections_frame(rig.run_id)
    assert all(KEY not in r and SECRET not in r for r in rej["reason"])


def test_halt_with_flatten_closes_positions_and_cancels_exits_and_records_it(rig: LiveRig) -> None:
    rig.step(0)
    assert rig.exchange_position() > 0
    rig.store.set_halt(True, reason="test", by="ops", at_ns=WallClock().now_ns(), flatten=True)
    report = rig.step(1)
    assert report.status == "halted"
    state = rig.server.account_state(KEY)
    assert state["positions"] == {}
    assert state["openAlgoOrders"] == []
    fills = rig.store.fills_frame(rig.run_id)
    assert fills["kind"].tolist()[-1] == "exit"
    assert_reconciled(rig)


def test_halt_without_flatten_leaves_the_exits_on_the_exchange(rig: LiveRig) -> None:
    rig.step(0)
    rig.store.set_halt(True, reason="test", by="ops", at_ns=WallClock().now_ns())
    assert rig.step(1).status == "halted"
    state = rig.server.account_state(KEY)
    assert rig.exchange_position() > 0
    assert len(state["openAlgoOrders"]) == 2


def test_a_new_run_on_an_account_that_is_not_flat_halts_at_once(rig: LiveRig) -> None:
    rig.server.manual_order(KEY, "ETHUSDT", "BUY", "0.05")
    rig.step(0)
    halted = [b for b in rig.store.latest_breakers(rig.run_id) if b.state == "halted"]
    assert halted
    assert "ETH/USDT" in halted[0].reason
    assert rig.server.orders_by_client_id(KEY) == {} or all(
        not cid.startswith("ar") for cid in rig.server.orders_by_client_id(KEY)
    )


def test_a_store_reopened_keeps_the_broker_state(rig: LiveRig, tmp_path: Path) -> None:
    rig.step(0)
    url = str(rig.store.engine.url)
    rig.store.engine.dispose()
    rig.store = ArenaStore(url)
    rig.step(1)
    rig.step(2)
    assert_reconciled(rig)


def test_the_next_prompt_context_shows_the_exchange_stop_with_its_price_and_reason(
    rig: LiveRig, tmp_path: Path
) -> None:
    from tests.live.agents import Recorder

    Recorder.contexts.clear()
    path = tmp_path / "recorder.yaml"
    path.write_text(arena_yaml(agent="tests.live.agents:Recorder"))
    rig.config = load_arena_config(path)
    rig.step(0)
    algos = rig.server.account_state(KEY)["openAlgoOrders"]
    stop = float(next(a for a in algos if a["orderType"] == "STOP_MARKET")["triggerPrice"])
    rig.server.set_price("BTCUSDT", stop)
    from arena_lib.arena.live import live_step

    live_step(rig.config, rig.store, market_until(1), job=rig.job, connect=rig.connect, env=ENV)
    assert Recorder.contexts[0].recent_exits == ()
    (closed,) = Recorder.contexts[1].recent_exits
    assert (closed.symbol, closed.side, closed.reason) == ("BTC/USDT", "long", "stop-loss filled on the exchange")
    assert closed.exit_price == pytest.approx(stop)


def test_the_prompt_lists_positions_closed_since_the_last_decision() -> None:
    from arena_lib.agents.base import AccountView
    from arena_lib.agents.llm.prompt import PromptBuilder
    from arena_lib.agents.turn import ClosedPosition
    from arena_lib.data.snapshot import MarketSnapshot
    from arena_lib.data.tape import MarketTape
    from arena_lib.engine.feeds import ReplayFeed

    market = market_until(0)
    feed = ReplayFeed(market, market.n_bars - 1)
    tape = MarketTape(market.symbols, market.timeframe)
    feed.warm_up(tape)
    feed.advance(tape)
    snap = MarketSnapshot.of(tape)
    closed = ClosedPosition("BTC/USDT", "long", 0.011, 81_342.2, -25.3, "stop-loss filled on the exchange", 0)
    builder = PromptBuilder("v2")
    args = {"symbols": snap.symbols, "started_at_ns": snap.timestamp_ns, "invocation": 2, "max_leverage": 5.0}
    view = AccountView(10_000.0, 10_000.0, 10_000.0, {})
    with_exit = builder.build(snap, view, recent_exits=[closed], **args).user
    assert "BTC long closed: quantity = 0.011" in with_exit
    assert "exit_price = 81342.2" in with_exit
    assert "reason = stop-loss filled on the exchange" in with_exit
    assert "Closed since your last decision" not in builder.build(snap, view, **args).user
