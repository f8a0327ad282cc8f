"""One driver for every mode: a backtest (`run_replay`) and an arena replay of the same bars are the same loop.

What is specified here:
- an LLM agent (the real openai SDK against the loopback server) sends byte-identical prompts through `run_replay`
  and through an arena replay of the same bars, and both runs produce the same fills and the same risk verdicts;
- breakers, exit plans and invalidation conditions run in a backtest exactly as in the arena;
- a broker that fails in the middle of a bar stops the run with an error naming the broker, and the ledger keeps
  the last whole bar (no half-written round, cash reconciles with the fills).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

from arena_lib.agents.llm.agent import LLMAgent
from arena_lib.agents.registry import build_agent
from arena_lib.arena.rounds import ArenaRunner
from arena_lib.arena.session import Roster, create_run, load_arena_market
from arena_lib.arena.store import ArenaStore
from arena_lib.core.types import Fill, Order
from arena_lib.data.tape import MarketTape
from arena_lib.engine.breakers import BreakerBook
from arena_lib.engine.broker import BrokerError, SimBroker
from arena_lib.engine.driver import RoundPolicy
from arena_lib.engine.loop import run_replay
from arena_lib.engine.portfolio import Portfolio
from tests.arena.conftest import ENV, Desk, Request, arena_config, buyer, llm_config
from tests.servers.llm import LLMServer, Reply

FILL_COLUMNS = ["order_id", "symbol", "side", "kind", "quantity", "price", "fee", "realized_pnl", "funding"]


class _Recording:
    """Wraps a desk behaviour and keeps every user prompt it was sent (in order), per run."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.prompts: list[str] = []

    def __call__(self, req: Request) -> Reply:
        self.prompts.append(req.user)
        return self.inner(req)  # type: ignore[operator]


def test_an_llm_agent_sends_the_same_prompts_and_gets_the_same_fills_in_a_backtest_and_an_arena(
    desk: Desk, server: LLMServer, store: ArenaStore
) -> None:
    recorder = _Recording(buyer(stop_pct=1.5, target_pct=2.0, invalidation="rsi14 > 60"))
    desk.routes["trader"] = recorder
    cfg = llm_config(server, "trader")
    config = arena_config(cfg, bars_per_round=2)
    market, first = load_arena_market(config)

    arena_agents = [LLMAgent(cfg, env=ENV), build_agent(config.quant[0])]
    run_id, _ = create_run(store, config, Roster(arena_agents), market, "replay", "parity")
    runner = ArenaRunner(config, arena_agents, market, store, run_id, first_row=first)
    try:
        runner.run()
    finally:
        runner.close()
    arena_prompts, recorder.prompts = recorder.prompts, []

    replay_agents = [LLMAgent(cfg, env=ENV), build_agent(config.quant[0])]
    rounds = config.rounds
    results = run_replay(
        replay_agents,
        market,
        config.market,
        run_id="parity",
        first_row=first,
        policy=RoundPolicy(rounds.bars_per_round, rounds.deadline_s, rounds.stats_window),
        breakers=BreakerBook(config.breakers, [a.name for a in replay_agents], config.market.execution.initial_cash),
    )

    assert len(arena_prompts) == (market.n_bars - first + 1) // 2  # every other bar is a decision round
    assert recorder.prompts == arena_prompts  # byte for byte
    ledger = store.fills_frame(run_id)
    assert (ledger["agent"] == "trader").sum() >= 2, "the scripted trader must trade for the comparison to mean much"
    assert (ledger["kind"] != "entry").any(), "and close positions (stops, targets or its invalidation)"
    for agent in ("trader", "sma_cross"):
        stored = ledger[ledger["agent"] == agent].reset_index(drop=True)
        replayed = results[agent].fills
        assert stored["order_id"].tolist() == replayed["order_id"].tolist()
        pd.testing.assert_frame_equal(
            stored.rename(columns={"ts": "timestamp"})[FILL_COLUMNS].reset_index(drop=True),
            replayed[FILL_COLUMNS].reset_index(drop=True),
            check_dtype=False,
        )
        equity = store.equity_frame(run_id)
        assert equity[equity["agent"] == agent]["equity"].tolist() == results[agent].equity.tolist()
    decisions = store.decisions_frame(run_id, "trader")
    reviewed = decisions[decisions["approved"].notna()]
    verdicts = results["trader"].verdicts
    assert [bool(x) for x in reviewed["approved"]] == [v.approved for v in verdicts]
    assert reviewed["verdict"].tolist() == ["; ".join(v.reasons) for v in verdicts]


class _FailingBroker(SimBroker):
    """TEST DOUBLE: the simulator, except that it raises once it is asked to place its third order."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.placed = 0

    def place(self, order: Order, tape: MarketTape, pf: Portfolio, marks: list[float], fills: list[Fill]) -> Portfolio:
        self.placed += 1
        if self.placed == 3:
            raise ConnectionError("exchange unreachable")
        return super().place(order, tape, pf, marks, fills)


def test_a_broker_that_fails_mid_bar_stops_the_run_and_the_ledger_keeps_the_last_whole_bar(
    store: ArenaStore,
) -> None:
    config = arena_config()
    market, first = load_arena_market(config)
    agents = [build_agent(config.quant[0])]
    run_id, _ = create_run(store, config, Roster(agents), market, "replay", "broker-fails")
    brokers: Sequence[SimBroker] = [_FailingBroker(config.market, market.symbols, f"{run_id}/sma_cross")]
    runner = ArenaRunner(config, agents, market, store, run_id, first_row=first, brokers=brokers)
    try:
        with pytest.raises(BrokerError, match=r"broker _FailingBroker of 'sma_cross' failed .*exchange unreachable"):
            runner.run()
    finally:
        runner.close()

    run = store.get_run(run_id)
    assert run.last_round >= 0
    assert set(store.rounds_frame(run_id)["round_no"]) == set(range(run.last_round + 1))  # no half-written bar
    account = store.load_accounts(run_id)["sma_cross"]
    fills = store.fills_frame(run_id, "sma_cross")
    cash = config.market.execution.initial_cash
    for f in fills.itertuples():
        if f.kind == "entry":
            cash -= f.margin + f.fee
        elif f.kind == "liquidation":
            pass
        else:
            cash += f.margin + f.realized_pnl - f.fee
    assert cash == pytest.approx(account.cash, rel=1e-12)
