"""Arena rounds end to end: real SDKs against the loopback server, the real engine, a SQLite ledger.

What is specified here: every agent of a round is prompted from the one snapshot whose hash the round records;
agents answer concurrently under one deadline, and a slow, failing or nonsensical agent holds (with the reason and
the raw text kept) while the others trade; the engine's rules hold whatever the model says (one action per coin,
no pyramiding, no reversal, leverage caps, exit plans as stops and targets, invalidation conditions that are
evaluated safely and only when they are conditions); an agent without a key is skipped and the arena plays on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from arena_lib.agents.base import AccountView
from arena_lib.agents.llm.prompt import format_number
from arena_lib.agents.registry import build_agent
from arena_lib.agents.turn import Turn, TurnContext
from arena_lib.arena import schema as t
from arena_lib.arena.rounds import DEADLINE_GRACE_S, ArenaRunner
from arena_lib.arena.session import Roster, build_roster, create_run, load_arena_market, start_run
from arena_lib.arena.standings import arena_leaderboard
from arena_lib.arena.store import ArenaStore
from arena_lib.core.config import RiskLimits
from arena_lib.core.types import Action, Decision
from arena_lib.data.snapshot import MarketSnapshot
from tests.arena.conftest import (
    ENV,
    SYMBOLS,
    Desk,
    Request,
    always,
    answer,
    arena_config,
    buyer,
    coin,
    holder,
    llm_config,
    market_section,
    prompt_price,
)
from tests.servers.llm import CHAT_PATH, INJECTION_PREFIX, MESSAGES_PATH, LLMServer, Reply


def _decisions(store: ArenaStore, run_id: str, agent: str) -> pd.DataFrame:
    return store.decisions_frame(run_id, agent)


def _calls(store: ArenaStore, run_id: str, agent: str) -> pd.DataFrame:
    return store.llm_calls_frame(run_id, agent)


# -- one snapshot per round --------------------------------------------------------------------------------------


def test_every_prompt_of_a_round_is_built_from_the_rounds_snapshot(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    for name in ("gpt", "claude", "qwen"):
        desk.routes[name] = buyer()
    config = arena_config(
        llm_config(server, "gpt", "openai"),
        llm_config(server, "claude", "anthropic"),
        llm_config(server, "qwen", "openai_compatible"),
    )

    report = start_run(config, store, rounds=4, env=ENV)

    rounds = store.rounds_frame(report.run_id)
    assert rounds["round_no"].tolist() == [0, 1, 2, 3]
    market, first = load_arena_market(config)
    calls = store.llm_calls_frame(report.run_id)
    sent = [Request.from_body(b).user for b in (*server.bodies(CHAT_PATH), *server.bodies(MESSAGES_PATH))]
    assert len(sent) == 3 * 4
    for r in rounds.itertuples():
        i = first + r.round_no
        # The recorded hash is the snapshot's own content hash, recomputed here from the market independently.
        assert r.snapshot_hash == MarketSnapshot(market, i).content_hash()
        assert r.ts == market.close_times_ns[i]
        with store.session() as s:
            snap = s.get(t.SnapshotRow, r.snapshot_hash)
        assert snap is not None
        content = snap.content
        assert set(content) == {"ts", *SYMBOLS}  # compact: the last bar of each symbol, not the history
        for j, sym in enumerate(SYMBOLS):
            assert set(content[sym]) == {"t", "o", "h", "l", "c", "v", "funding"}
            assert content[sym]["c"] == market.close[i, j]
            assert content[sym]["t"] == market.times[i]
        in_round = calls[calls["round_no"] == r.round_no]
        assert sorted(in_round["agent"]) == ["claude", "gpt", "qwen"]
        users = []
        for sha in in_round["prompt_sha"]:
            prompt = store.prompt(sha)
            assert prompt is not None
            users.append(prompt.user)
            assert prompt.user in sent  # what the ledger keeps is what went over the wire
            for sym in SYMBOLS:
                shown = prompt_price(prompt.user, sym.split("/")[0])
                assert shown == float(format_number(content[sym]["c"], 7))
        # Accounts differ between agents; the market part of their prompts is the same text.
        assert len({market_section(u) for u in users}) == 1
    # Every agent traded on those prompts (entries approved and filled), so the round was a real one.
    fills = store.fills_frame(report.run_id)
    assert {"gpt", "claude", "qwen"} <= set(fills.loc[fills["kind"] == "entry", "agent"])


# -- concurrency and deadlines ----------------------------------------------------------------------------------


def test_llm_agents_answer_concurrently(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    names = ("a1", "a2", "a3", "a4")
    for name in names:
        desk.routes[name] = holder(latency_s=1.0)
    config = arena_config(*(llm_config(server, n) for n in names), deadline_s=10.0)

    report = start_run(config, store, rounds=1, env=ENV)

    wall = float(store.rounds_frame(report.run_id)["wall_s"].iloc[0])
    assert wall < 2.5, f"4 agents at 1 s each took {wall:.2f} s: they were not called concurrently"
    assert server.max_in_flight == 4
    calls = store.llm_calls_frame(report.run_id)
    assert len(calls) == 4
    assert calls["parse_ok"].all()
    assert (calls["error"] == "").all()


def test_an_agent_past_the_deadline_holds_while_the_others_trade(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    desk.routes["slow"] = buyer(latency_s=5.0)
    desk.routes["fast"] = buyer()
    config = arena_config(llm_config(server, "slow"), llm_config(server, "fast"), quant=(), deadline_s=1.0)

    report = start_run(config, store, rounds=2, env=ENV)

    assert report.errors == {"slow": 2}
    walls = store.rounds_frame(report.run_id)["wall_s"]
    assert (walls < 3.0).all(), f"a round waited for the slow agent: {walls.tolist()}"
    slow = _decisions(store, report.run_id, "slow")
    assert len(slow) == 4
    assert (slow["action"] == "hold").all()
    assert (slow["source"] == "fallback").all()
    assert slow["reason"].str.contains("deadline").all(), slow["reason"].tolist()
    assert store.fills_frame(report.run_id, "slow").empty
    # The missed call is in the ledger too: its prompt, the timeout, and no answer.
    calls = _calls(store, report.run_id, "slow")
    assert len(calls) == 2
    assert calls["error"].str.startswith("timeout").all()
    assert (calls["raw"] == "").all()
    assert not calls["parse_ok"].any()
    assert all(store.prompt(sha) is not None for sha in calls["prompt_sha"])
    fast = _decisions(store, report.run_id, "fast")
    entry = fast[(fast["round_no"] == 0) & (fast["symbol"] == "BTC/USDT")].iloc[0]
    assert entry["action"] == "enter_long"
    assert entry["approved"]
    assert store.fills_frame(report.run_id, "fast")["kind"].tolist() == ["entry"]
    board = arena_leaderboard(store, report.run_id).set_index("agent")
    assert board.loc["slow", "invalid_output_rate"] == 1.0  # a missed deadline is an unusable answer
    assert board.loc["fast", "invalid_output_rate"] == 0.0


class _Stuck:
    """A turn agent that ignores its deadline: the runner's own bound must cut it off."""

    name = "stuck"

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]:
        return ()

    async def play_turn(self, snapshot: MarketSnapshot, account: AccountView, context: TurnContext) -> Turn:
        await asyncio.sleep(30)
        return Turn([])


def test_an_agent_that_ignores_the_deadline_is_cut_off_by_the_runner(store: ArenaStore) -> None:
    config = arena_config(deadline_s=0.5)
    market, first = load_arena_market(config)
    agents = [_Stuck(), *(build_agent(spec) for spec in config.quant)]
    run_id, _ = create_run(store, config, Roster(agents), market, "replay", "stuck-run")
    runner = ArenaRunner(config, agents, market, store, run_id, first_row=first)
    try:
        outcome = runner.play(first)
    finally:
        runner.close()

    assert outcome.committed
    assert outcome.wall_s < 0.5 + DEADLINE_GRACE_S + 1.0
    assert "deadline of 0.5s exceeded" in outcome.errors["stuck"]
    rows = store.decisions_frame(run_id, "stuck")
    assert rows["action"].tolist() == ["hold", "hold"]
    assert rows["reason"].str.contains("deadline").all()
    assert (store.decisions_frame(run_id, "sma_cross")["action"] != "hold").any()  # the others played


def test_transient_errors_are_retried_within_the_deadline_and_a_dead_endpoint_holds(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    for name in ("flaky", "limited", "down", "garbled"):
        desk.routes[name] = buyer()
    server.script.push(Reply(fault="server_error"), model="flaky")
    server.script.push(Reply(fault="rate_limit", retry_after_s=0.3), model="limited")
    desk.routes["down"] = always(Reply(fault="server_error"))
    desk.routes["garbled"] = always(Reply(fault="malformed"))  # HTTP 200 whose body is broken JSON
    config = arena_config(
        *(llm_config(server, n) for n in ("flaky", "limited", "down", "garbled")), quant=(), deadline_s=5.0
    )

    report = start_run(config, store, rounds=1, env=ENV)

    calls = store.llm_calls_frame(report.run_id).set_index("agent")
    for name in ("flaky", "limited"):
        assert calls.loc[name, "attempts"] == 2
        assert calls.loc[name, "parse_ok"]
        assert calls.loc[name, "error"] == ""
        btc = _decisions(store, report.run_id, name).set_index("symbol").loc["BTC/USDT"]
        assert btc["action"] == "enter_long"
        assert btc["approved"]
        assert btc["source"] == "agent"
    assert calls.loc["limited", "latency_s"] >= 0.3  # it honoured retry-after
    assert server.calls(model="down") == 3  # the first attempt and max_retries=2 retries
    assert calls.loc["down", "attempts"] == 3
    assert "server_error" in calls.loc["down", "error"]
    assert "HTTP 500" in calls.loc["down", "error"]
    assert "malformed response body" in calls.loc["garbled", "error"]
    for name in ("down", "garbled"):
        rows = _decisions(store, report.run_id, name)
        assert (rows["action"] == "hold").all()
        assert (rows["source"] == "fallback").all()
        assert rows["reason"].str.startswith("model call failed").all()
    assert report.errors == {"down": 1, "garbled": 1}
    assert set(store.frame(t.OrderRow, report.run_id)["agent"]) == {"flaky", "limited"}


def test_unusable_answers_hold_and_keep_the_raw_text(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    long_btc = coin("BTC", "buy_to_enter", 0.01, 2, 90000, 80000, justification="strong trend " * 60)
    truncated_text = json.dumps(answer(long_btc, coin("ETH")))
    truncated_text = truncated_text[: max(1, len(truncated_text) // 2)]  # the server cuts the answer in half
    prose = "BTC looks strong to me, I would buy a lot of it; ETH is fine, keep it."
    desk.routes["prose"] = always(Reply(text=prose))
    desk.routes["cut"] = always(Reply(data=answer(long_btc, coin("ETH")), fault="truncated"))
    desk.routes["injected"] = always(Reply(fault="injection"))  # nothing but the injected instructions
    config = arena_config(*(llm_config(server, n) for n in ("prose", "cut", "injected")), quant=())

    report = start_run(config, store, rounds=1, env=ENV)

    calls = store.llm_calls_frame(report.run_id).set_index("agent")
    assert calls.loc["prose", "raw"] == prose
    assert calls.loc["cut", "raw"] == truncated_text
    assert calls.loc["injected", "raw"].startswith(INJECTION_PREFIX.strip())
    for name, why in (("prose", "no JSON"), ("cut", "cut off"), ("injected", "no JSON")):
        assert not calls.loc[name, "parse_ok"]
        rows = _decisions(store, report.run_id, name)
        assert (rows["action"] == "hold").all()
        assert len(rows) == 2
        assert rows["reason"].str.contains("invalid or missing output").all()
        assert rows["reason"].str.contains(why).all(), rows["reason"].tolist()
    assert store.count(t.OrderRow, report.run_id) == 0


def test_an_injected_100x_leverage_is_clamped_by_the_risk_engine(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    greedy = answer(coin("BTC", "buy_to_enter", 0.01, 100, 90000, 80000), coin("ETH"))
    desk.routes["injected"] = always(Reply(data=greedy, fault="injection"))
    config = arena_config(
        llm_config(server, "injected"), quant=(), risk=RiskLimits(max_leverage=5, allow_reversal=False)
    )

    report = start_run(config, store, rounds=2, env=ENV)

    raw = store.llm_calls_frame(report.run_id)["raw"].iloc[0]
    assert "leverage to 100" in raw  # the raw text kept, injection included
    btc = _decisions(store, report.run_id, "injected").query("round_no == 0 and symbol == 'BTC/USDT'").iloc[0]
    assert btc["leverage"] == 100.0  # what the model asked for
    assert btc["approved"]
    assert btc["clamped"]
    assert "leverage 100 clamped to max 5" in btc["verdict"]
    order = store.frame(t.OrderRow, report.run_id).iloc[0]
    assert order["leverage"] == 5.0
    entry = store.fills_frame(report.run_id).query("kind == 'entry'").iloc[0]
    assert entry["leverage"] == 5.0


# -- engine rules -----------------------------------------------------------------------------------------------


def test_one_action_per_coin_no_pyramiding_no_reversal(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    def twice(req: Request) -> Reply:
        if req.holds("BTC"):
            return Reply(data=answer(coin("BTC"), coin("ETH")))
        p = req.price("BTC")
        return Reply(
            data=answer(
                coin("BTC", "buy_to_enter", 0.01, 2, round(p * 1.05, 2), round(p * 0.95, 2)),
                coin("BTC", "sell_to_enter", 0.01, 2, round(p * 0.95, 2), round(p * 1.05, 2)),
                coin("ETH"),
            )
        )

    desk.routes["twice"] = twice
    desk.routes["pyramid"] = buyer(when_open="buy_to_enter", invalidation="rsi14 > 99")
    desk.routes["flipper"] = buyer(when_open="sell_to_enter")
    config = arena_config(*(llm_config(server, n) for n in ("twice", "pyramid", "flipper")))

    report = start_run(config, store, rounds=3, env=ENV)
    run_id = report.run_id

    # A reply naming BTC twice: the first counts, the second is never executed.
    orders = store.frame(t.OrderRow, run_id, "twice")
    assert orders[["round_no", "symbol", "action"]].values.tolist() == [[0, "BTC/USDT", "enter_long"]]
    assert any("second decision" in p for p in _calls(store, run_id, "twice")["problems"].iloc[0])
    assert len(_decisions(store, run_id, "twice").query("round_no == 0 and symbol == 'BTC/USDT'")) == 1

    # The entry of round 0 filled at round 1's open; later entries on BTC are refused while it is open.
    for name, why in (("pyramid", "no pyramiding"), ("flipper", "reversals not allowed")):
        dec = _decisions(store, run_id, name).query("symbol == 'BTC/USDT'").set_index("round_no")
        assert dec.loc[0, "approved"]
        for r in (1, 2):
            assert not dec.loc[r, "approved"], f"{name} round {r}"
            assert why in dec.loc[r, "verdict"]
        assert len(store.frame(t.OrderRow, run_id, name)) == 1
        fills = store.fills_frame(run_id, name)
        assert fills["kind"].tolist() == ["entry"]
        # The exit plan became the position's stop and target.
        pos = store.frame(t.PositionRow, run_id, name).set_index("symbol").loc["BTC/USDT"]
        assert pos["take_profit"] == dec.loc[0, "take_profit"]
        assert pos["stop_loss"] == dec.loc[0, "stop_loss"]
        assert pos["quantity"] > 0
        assert pos["entry_price"] == fills["price"].iloc[0]
    pos = store.frame(t.PositionRow, run_id, "pyramid").iloc[0]
    assert pos["invalidation"] == "rsi14 > 99"


def test_stop_loss_and_take_profit_close_positions_when_the_price_crosses(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    desk.routes["scalper"] = buyer(target_pct=0.4, stop_pct=0.4)
    config = arena_config(llm_config(server, "scalper"), quant=())

    report = start_run(config, store, env=ENV)

    market, _ = load_arena_market(config)
    fills = store.fills_frame(report.run_id)
    orders = store.frame(t.OrderRow, report.run_id).set_index("order_id")
    assert {"take_profit", "stop_loss"} <= set(fills["kind"]), fills["kind"].tolist()
    row_of = {int(ts): i for i, ts in enumerate(market.times)}
    j = SYMBOLS.index("BTC/USDT")
    last_entry = None
    for f in fills.itertuples():
        if f.kind == "entry":
            last_entry = orders.loc[f.order_id]
            continue
        assert last_entry is not None
        assert f.kind in ("take_profit", "stop_loss")
        i = row_of[f.ts]
        high, low, open_ = market.high[i, j], market.low[i, j], market.open[i, j]
        if f.kind == "take_profit":
            level = last_entry["take_profit"]
            assert high >= level
            assert f.price == (open_ if open_ >= level else level)  # at the target, or the open when it gapped
            assert f.realized_pnl > 0
        else:
            level = last_entry["stop_loss"]
            assert low <= level
            assert f.price <= level  # a stop fills at (or, with slippage, below) its level
            assert f.realized_pnl < 0
        assert f.fill_id.endswith(f"/{f.symbol}/{f.kind}#{f.kind}")


def test_invalidation_conditions_close_only_when_they_are_conditions_that_hold(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    desk.routes["never"] = buyer(invalidation="price < 1")
    desk.routes["fires"] = buyer(invalidation="price > 1", when_open="buy_to_enter")
    desk.routes["prose"] = buyer(invalidation="if the trend reverses")
    config = arena_config(*(llm_config(server, n) for n in ("never", "fires", "prose")), quant=(), bars_per_round=2)

    report = start_run(config, store, rounds=5, env=ENV)  # decision rounds 0, 2 and 4
    run_id = report.run_id

    dec = store.decisions_frame(run_id)
    engine = dec[dec["source"] == "invalidation"]
    # The entry of round 0 filled at round 1's open (not a decision round); the next decision round closes it.
    assert engine[["agent", "round_no", "symbol", "action"]].values.tolist() == [[
        "fires", 2, "BTC/USDT", "close"
    ]]  # fmt: skip
    assert "price > 1" in engine["reason"].iloc[0]
    assert engine["approved"].iloc[0]
    fired = store.fills_frame(run_id, "fires")
    assert fired[["round_no", "kind"]].values.tolist()[:2] == [[1, "entry"], [3, "exit"]]
    exposure = store.equity_frame(run_id).query("agent == 'fires'").set_index("round_no")["gross_exposure"]
    assert exposure.loc[1] > 0
    assert exposure.loc[2] > 0
    assert exposure.loc[3] == 0
    # The agent's own BTC decision of round 2 comes after the engine's close and is not executed.
    own = dec.query("agent == 'fires' and round_no == 2 and symbol == 'BTC/USDT' and source == 'agent'").iloc[0]
    assert not own["approved"]
    assert "one action per symbol" in own["verdict"]

    for name, text in (("never", "price < 1"), ("prose", "if the trend reverses")):
        assert store.fills_frame(run_id, name)["kind"].tolist() == ["entry"]
        pos = store.frame(t.PositionRow, run_id, name).set_index("symbol").loc["BTC/USDT"]
        assert pos["invalidation"] == text  # stored as given, free text included
        assert (dec.query(f"agent == '{name}' and symbol == 'BTC/USDT'")["invalidation"].iloc[0]) == text


class _TwiceAgent:
    """A plain (non-LLM) agent that names BTC twice: the engine itself must refuse the second action."""

    name = "twice_quant"

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]:
        if account.positions:
            return ()
        return (
            Decision("BTC/USDT", Action.ENTER_LONG, size=0.2),
            Decision("BTC/USDT", Action.ENTER_SHORT, size=0.2),
        )


def test_the_engine_refuses_a_second_action_on_a_coin_in_one_round(store: ArenaStore) -> None:
    config = arena_config(quant=())
    market, first = load_arena_market(config)
    agent = _TwiceAgent()
    run_id, _ = create_run(store, config, Roster([agent]), market, "replay", "twice-run")
    runner = ArenaRunner(config, [agent], market, store, run_id, first_row=first)
    try:
        outcomes = runner.run(max_rounds=2)
    finally:
        runner.close()

    assert [o.committed for o in outcomes] == [True, True]
    dec = store.decisions_frame(run_id).query("round_no == 0")
    assert dec["action"].tolist() == ["enter_long", "enter_short"]
    assert dec["approved"].tolist() == [True, False]
    assert "one action per symbol per round" in dec["verdict"].iloc[1]
    fills = store.fills_frame(run_id)
    assert fills[["round_no", "side", "kind"]].values.tolist() == [[1, "buy", "entry"]]


# -- roster ------------------------------------------------------------------------------------------------------


def test_an_llm_without_its_key_is_skipped_and_the_rest_plays(
    server: LLMServer, desk: Desk, store: ArenaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # resolve_api_key also reads ./.env: make sure none can supply the key
    desk.routes["keyed"] = buyer()
    keyless = llm_config(server, "keyless", api_key_env="ARENA_TEST_UNSET_KEY")
    config = arena_config(llm_config(server, "keyed"), keyless)

    roster = build_roster(config, env=ENV)
    assert sorted(a.name for a in roster.agents) == ["keyed", "sma_cross"]
    assert set(roster.skipped) == {"keyless"}
    assert "ARENA_TEST_UNSET_KEY" in roster.skipped["keyless"]

    report = start_run(config, store, rounds=3, env=ENV)

    assert report.status == "stopped"
    assert report.rounds == 3
    assert "ARENA_TEST_UNSET_KEY" in report.skipped["keyless"]
    assert "keyless" in store.get_run(report.run_id).message
    assert sorted(r.agent for r in store.run_agents(report.run_id)) == ["keyed", "sma_cross"]
    eq = store.equity_frame(report.run_id)
    assert sorted(set(eq["agent"])) == ["keyed", "sma_cross"]
    assert len(eq) == 2 * 3
    assert server.calls(model="keyless") == 0
    assert (store.fills_frame(report.run_id, "keyed")["kind"] == "entry").any()


def test_sync_decide_runs_one_turn_outside_the_arena(desk: Desk, server: LLMServer) -> None:
    """`LLMAgent.decide` (for `run_replay` and notebooks) sends a schema bounded by a finite leverage limit."""
    from arena_lib.agents.llm.agent import LLMAgent
    from arena_lib.data.history import load_market

    desk.routes["solo"] = buyer()
    agent = LLMAgent(llm_config(server, "solo"), env=ENV)
    market = load_market(["BTC/USDT", "ETH/USDT"], "1h", "2025-02-01", "2025-03-01")
    decisions = agent.decide(MarketSnapshot(market, market.n_bars - 1), AccountView(1e4, 1e4, 1e4, {}))
    assert {d.symbol for d in decisions} == {"BTC/USDT", "ETH/USDT"}
    assert any(d.action is Action.ENTER_LONG for d in decisions)
