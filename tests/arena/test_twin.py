"""`arena twin`: a paper run replayed through the simulator, and its equity gap split into parts.

The paper runs here are played offline by `ArenaRunner` over the bundled sample (a paper run's ledger is the same
whatever feed filled it). The brokers below are TEST DOUBLES labelled as such: the simulator with a known extra
slippage, or with an exchange-side stop fill the simulator never makes; the twin must find exactly those.

`--from-cache`: an LLM agent plays a paper run through the real openai SDK against the loopback server
(`tests.servers.llm`, answering from the scripted TEST FIXTURES of `tests.arena.conftest`), recording its responses
in a cache; the twin re-asks it from that cache in strict mode and must reproduce the run exactly, and a cache
with one entry deleted must fall back to the recorded decisions from that round and say so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from arena_lib.agents.base import Agent
from arena_lib.agents.llm.agent import LLMAgent
from arena_lib.agents.llm.cache import ResponseCache
from arena_lib.agents.registry import build_agent
from arena_lib.arena import twin as tw
from arena_lib.arena.rounds import ArenaRunner
from arena_lib.arena.session import Roster, create_run, load_arena_market
from arena_lib.arena.store import ArenaStore
from arena_lib.arena.twin import PARTS, TwinError, TwinReport, twin_report
from arena_lib.cli.main import app
from arena_lib.core.config import CostModel
from arena_lib.core.spec import AgentSpec
from arena_lib.core.types import Fill, FillKind, OrderSide
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.data.tape import OPEN, MarketTape
from arena_lib.engine.broker import Broker, SimBroker, exit_order_id
from arena_lib.engine.portfolio import Portfolio, close_position
from tests.arena.conftest import ENV, QUANT, WINDOW_BARS, Desk, arena_config, buyer, holder, llm_config
from tests.servers.llm import LLMServer

HOLDER = AgentSpec("buy_and_hold", {"fraction": 0.4})
COSTS = CostModel(fee_bps=5.0, slippage_bps=1.0, impact_coef=0.0)
EXTRA_BPS = 20.0


def _config(quant: tuple[AgentSpec, ...] = (HOLDER, QUANT)):  # type: ignore[no-untyped-def]
    cfg = arena_config(quant=quant)
    return replace(cfg, market=cfg.market.model_copy(update={"costs": COSTS}))


def _paper_run(store: ArenaStore, run_id: str, brokers: Sequence[Broker] | None = None, quant=(HOLDER, QUANT)):  # type: ignore[no-untyped-def]
    config = _config(quant)
    market, first = load_arena_market(config)
    agents = [build_agent(s) for s in config.quant]
    create_run(store, config, Roster(agents), market, "paper", run_id)
    made = brokers(config, market, agents) if callable(brokers) else None
    runner = ArenaRunner(config, agents, market, store, run_id, first_row=first, brokers=made)
    try:
        runner.run()
    finally:
        runner.close()
    return config, market


def _assert_adds_up(report: TwinReport) -> None:
    for a in report.agents:
        assert sum(a.parts().values()) == pytest.approx(a.gap, abs=1e-9)
        assert a.gap == pytest.approx(a.real_equity - a.twin_equity, abs=1e-12)


@pytest.fixture
def store(tmp_path: Path) -> ArenaStore:
    return ArenaStore(f"sqlite:///{tmp_path}/arena.db")


def test_a_run_on_the_simulator_has_no_twin_gap(store: ArenaStore) -> None:
    _paper_run(store, "paper-sim")
    report = twin_report(store, "paper-sim")
    assert [a.agent for a in report.agents] == ["buy_and_hold", "sma_cross"]
    assert report.agents[0].real_fills > 0
    for a in report.agents:
        assert a.gap == 0.0
        assert all(v == pytest.approx(0.0, abs=1e-9) for v in a.parts().values())
        assert a.one_sided_fills == 0
        assert a.source == "recorded decisions"
    assert report.fills["matched"].all()
    _assert_adds_up(report)


class _SlippingBroker(SimBroker):
    """TEST DOUBLE: the simulator, with EXTRA_BPS more adverse slippage than the run's cost model."""


def _slipping(config, market, agents):  # type: ignore[no-untyped-def]
    costs = COSTS.model_copy(update={"slippage_bps": COSTS.slippage_bps + EXTRA_BPS})
    slipped = config.market.model_copy(update={"costs": costs})
    return [_SlippingBroker(slipped, market.symbols, f"paper-slip/{a.name}") for a in agents]


def test_an_injected_slippage_shows_up_in_the_slippage_part(store: ArenaStore) -> None:
    _, market = _paper_run(store, "paper-slip", _slipping)
    report = twin_report(store, "paper-slip")
    _assert_adds_up(report)
    holder = report.agents[0]
    real = report.fills[(report.fills["agent"] == "buy_and_hold") & (report.fills["side_of"] == "real")]
    assert len(real) == 2
    assert real["matched"].all()
    opens = {
        (s, int(t)): float(market.open[i, j]) for i, t in enumerate(market.times) for j, s in enumerate(market.symbols)
    }
    expected = -sum(r.quantity * opens[(r.symbol, int(r.ts))] * EXTRA_BPS / 1e4 for r in real.itertuples())
    assert holder.slippage == pytest.approx(expected, rel=1e-9)
    assert holder.latency == pytest.approx(0.0, abs=1e-9)  # both filled at the same next open
    assert abs(holder.fees) < 0.01 * abs(holder.slippage)  # sized on the slipped price: the notional barely moves
    assert abs(holder.residual) < abs(holder.slippage)
    # the per-fill table: slippage vs the decision's close, in bps, includes the open-vs-close move (latency)
    for r in real.itertuples():
        assert r.slippage_usd == pytest.approx(r.latency_usd + r.execution_usd)
        assert r.execution_usd / (r.quantity * r.arrival_price) * 1e4 == pytest.approx(EXTRA_BPS + 1.0, rel=1e-9)


class _ExchangeStopBroker(SimBroker):
    """TEST DOUBLE: the simulator, except that the "exchange" stops BTC/USDT out at the open of one chosen bar."""

    stop_at_ns = 0

    def settle(self, tape: MarketTape, pf: Portfolio, fills: list[Fill]) -> Portfolio:
        pf = super().settle(tape, pf, fills)
        pos = pf.positions.get("BTC/USDT")
        if tape.time_ns == self.stop_at_ns and pos is not None:
            price = tape.value(0, OPEN)
            fee = abs(pos.quantity) * price * self._fee
            pf, pnl = close_position(pf, "BTC/USDT", price, fee)
            oid = exit_order_id(self.account_id, tape.time_ns, "BTC/USDT", FillKind.STOP_LOSS)
            fills.append(
                Fill(
                    oid,
                    "BTC/USDT",
                    tape.time_ns,
                    OrderSide.SELL,
                    abs(pos.quantity),
                    price,
                    fee,
                    FillKind.STOP_LOSS,
                    pnl,
                    pos.funding_paid,
                    margin=pos.margin,
                    leverage=pos.leverage,
                )
            )
        return pf


def test_a_fill_only_the_real_run_made_is_a_one_sided_fill(store: ArenaStore) -> None:
    def brokers(config, market, agents):  # type: ignore[no-untyped-def]
        _ExchangeStopBroker.stop_at_ns = int(market.times[-6])
        return [_ExchangeStopBroker(config.market, market.symbols, f"paper-stop/{a.name}") for a in agents]

    _, market = _paper_run(store, "paper-stop", brokers, quant=(HOLDER,))
    report = twin_report(store, "paper-stop")
    _assert_adds_up(report)
    holder = report.agents[0]
    fills = report.fills
    alone = fills[~fills["matched"]]
    stop = alone[alone["kind"] == "stop_loss"]
    assert stop["side_of"].tolist() == ["real"]
    # every one-sided fill's PnL to the last close, less its fee: real ones count for, twin ones against
    last = {s: float(market.close[-1, j]) for j, s in enumerate(market.symbols)}
    expected = 0.0
    for r in alone.itertuples():
        sign = 1.0 if r.side == "buy" else -1.0
        value = sign * r.quantity * (last[r.symbol] - r.price)
        expected += value if r.side_of == "real" else -value
    fees = store.fills_frame("paper-stop")
    fee_of = dict(zip(fees["fill_id"], fees["fee"], strict=True))
    expected -= sum(fee_of.get(r.fill_id, 0.0) for r in alone.itertuples() if r.side_of == "real")
    expected += sum(r.fee for r in alone.itertuples() if r.side_of == "twin")
    assert holder.one_sided == pytest.approx(expected, rel=1e-9)
    assert holder.one_sided_fills == len(alone) >= 1
    assert holder.gap != 0.0


def test_a_replay_or_unknown_run_has_no_twin(store: ArenaStore) -> None:
    config = _config()
    market, _first = load_arena_market(config)
    agents = [build_agent(QUANT)]
    create_run(store, config, Roster(agents), market, "replay", "replay-1")
    with pytest.raises(TwinError, match="replay run"):
        twin_report(store, "replay-1")
    with pytest.raises(TwinError, match="no run 'nope'"):
        twin_report(store, "nope")


def test_the_cli_prints_the_table_and_refuses_a_replay_run(store: ArenaStore, tmp_path: Path) -> None:
    _paper_run(store, "paper-cli", _slipping_for("paper-cli"))
    config = _config()
    market, _ = load_arena_market(config)
    create_run(store, config, Roster([build_agent(QUANT)]), market, "replay", "replay-cli")
    db = ["--db", f"sqlite:///{tmp_path}/arena.db"]
    cli = CliRunner()

    res = cli.invoke(app, ["twin", "paper-cli", *db])
    assert res.exit_code == 0, res.output
    assert "buy_and_hold" in res.output
    assert "slippage" in res.output
    assert "residual" in res.output

    res = cli.invoke(app, ["twin", "paper-cli", "--json", *db])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    for a in payload["agents"]:
        assert sum(a[p] for p in PARTS) == pytest.approx(a["gap"], abs=1e-9)
    assert {"reference_price", "price", "slippage_bps", "slippage_usd"} <= set(payload["fills"][0])

    res = cli.invoke(app, ["twin", "replay-cli", *db])
    assert res.exit_code == 2
    assert "replay run" in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = cli.invoke(app, ["twin", "missing", *db])
    assert res.exit_code == 2
    assert "no run 'missing'" in res.output


def _slipping_for(run_id: str):  # type: ignore[no-untyped-def]
    def make(config, market, agents):  # type: ignore[no-untyped-def]
        costs = COSTS.model_copy(update={"slippage_bps": COSTS.slippage_bps + EXTRA_BPS})
        slipped = config.market.model_copy(update={"costs": costs})
        return [_SlippingBroker(slipped, market.symbols, f"{run_id}/{a.name}") for a in agents]

    return make


def test_the_monitor_shows_each_fills_slippage_and_the_twin_gap(
    store: ArenaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arena_lib.monitor import queries as q
    from tests.monitor.test_app_pages import no_failure, open_app, texts

    _paper_run(store, "paper-mon", _slipping_for("paper-mon"))
    fills = q.trades(store, "paper-mon", "buy_and_hold")
    # 20 + 1 bps against the open, plus the small open-vs-close move (the reference is the decision bar's close)
    assert fills["slippage_bps"].tolist() == pytest.approx([21.0, 21.0], abs=0.1)
    assert (fills["reference_price"] > 0).all()
    gap = q.twin_gap(store, "paper-mon")
    assert gap["agent"].tolist() == ["buy_and_hold", "sma_cross"]
    assert (gap["slippage"] < 0).all()

    at = open_app(f"sqlite:///{tmp_path}/arena.db", monkeypatch, "views/agent.py")
    no_failure(at)
    assert "Gap to the simulated twin" in texts(at)


# -- --from-cache: LLM agents re-asked from the response cache in strict mode -------------------------------------


def _llm_paper_run(  # type: ignore[no-untyped-def]
    store: ArenaStore,
    run_id: str,
    server: LLMServer,
    desk: Desk,
    cache: ResponseCache,
    brokers=None,
    invalidation="rsi14 > 80",
    pct=0.4,
):
    """A paper run of a scalping LLM agent (adaptive: its prompts show its stats, its exit plans and an
    invalidation condition) beside the buy-and-hold quant, its responses recorded in `cache`."""
    desk.routes["trader"] = buyer(target_pct=pct, stop_pct=pct, invalidation=invalidation)
    cfg = llm_config(server, "trader", adaptive=True)
    config = arena_config(cfg, quant=(HOLDER,))
    config = replace(config, market=config.market.model_copy(update={"costs": COSTS}))
    market, first = load_arena_market(config)
    agents = [build_agent(HOLDER), LLMAgent(cfg, cache=cache, cache_mode="use", env=ENV)]
    create_run(store, config, Roster(agents), market, "paper", run_id)
    made = brokers(config, market, agents) if callable(brokers) else None
    runner = ArenaRunner(config, agents, market, store, run_id, first_row=first, brokers=made)
    try:
        runner.run()
    finally:
        runner.close()
    return config, market


def _replay(report: TwinReport, agent: str):  # type: ignore[no-untyped-def]
    return next(r for r in report.replays if r.agent == agent)


def test_from_cache_reasks_the_llm_agent_and_reproduces_its_run_exactly(
    store: ArenaStore, server: LLMServer, desk: Desk, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    _llm_paper_run(store, "paper-llm", server, desk, cache)
    calls = server.calls()
    assert calls == WINDOW_BARS
    fills = store.fills_frame("paper-llm")
    assert {"entry", "take_profit", "stop_loss"} <= set(fills[fills["agent"] == "trader"]["kind"])

    report = twin_report(store, "paper-llm", from_cache=True, cache=ResponseCache(cache.url))

    assert server.calls() == calls  # strict: nothing was asked of the server
    by = {a.agent: a for a in report.agents}
    assert by["trader"].source == "cache (strict)"
    assert by["buy_and_hold"].source == "recorded decisions"
    trader = _replay(report, "trader")
    assert (trader.reasked, trader.differing, trader.fallback_round, trader.miss) == (WINDOW_BARS, 0, None, "")
    assert [r.agent for r in report.replays] == ["trader"]  # quant agents are never re-asked
    assert report.divergences == []
    assert "the run's own market data" in report.warmup
    for a in report.agents:
        assert a.gap == 0.0
        assert all(v == pytest.approx(0.0, abs=1e-9) for v in a.parts().values())
        assert a.one_sided_fills == 0
    assert by["trader"].real_fills == by["trader"].twin_fills > 0
    assert report.fills["matched"].all()

    res = CliRunner().invoke(
        app,
        ["twin", "paper-llm", "--from-cache", "--json", "--db", str(store.engine.url), "--cache-db", cache.url],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["replays"] == [
        {
            "agent": "trader",
            "source": "cache (strict)",
            "reasked": WINDOW_BARS,
            "differing": 0,
            "differing_rounds": [],
            "fallback_round": None,
            "miss": "",
        }
    ]
    assert {a["agent"]: a["gap"] for a in payload["agents"]} == {"buy_and_hold": 0.0, "trader": 0.0}

    # The warm-up is what makes the first prompt the run's: one bar of history less and its indicators differ.
    full = tw.warmup_history

    def one_bar_less(frames: tw.LedgerFrames) -> tuple[MarketData, int, str]:
        market, rows, note = full(frames)
        return market, rows - 1, note

    monkeypatch.setattr(tw, "warmup_history", one_bar_less)
    short = _replay(twin_report(store, "paper-llm", from_cache=True, cache=ResponseCache(cache.url)), "trader")
    assert (short.source, short.reasked, short.fallback_round) == ("recorded decisions", 0, 0)
    assert short.miss.startswith("round 0: the twin's prompt differs from the run's (line ")
    assert "current_ema20 = " in short.miss


def test_a_cache_missing_one_entry_falls_back_to_the_record_from_that_round(
    store: ArenaStore, server: LLMServer, desk: Desk, cache: ResponseCache
) -> None:
    # an invalidation condition that holds often: after the miss the twin's engine closes on it from the
    # recorded notes, as the run's engine did
    _llm_paper_run(store, "paper-gap", server, desk, cache, invalidation="rsi14 > 55", pct=1.5)
    gone = 7
    decisions = store.decisions_frame("paper-gap", "trader")
    assert (decisions[decisions["source"] == "invalidation"]["round_no"] > gone).sum() >= 2
    calls = store.llm_calls_frame("paper-gap", "trader")
    key = calls.loc[calls["round_no"] == gone, "cache_key"].item()
    with cache.engine.begin() as conn:
        assert conn.execute(text("DELETE FROM llm_cache WHERE key = :k"), {"k": key}).rowcount == 1

    report = twin_report(store, "paper-gap", from_cache=True, cache=ResponseCache(cache.url))

    trader = _replay(report, "trader")
    assert trader.source == f"cache until round {gone}, then recorded"
    assert trader.fallback_round == gone
    assert trader.reasked == gone  # rounds 0 .. gone-1 came from the cache
    assert trader.differing == 0
    assert trader.miss == f"round {gone}: the run's own request is not in the cache"
    by = {a.agent: a for a in report.agents}
    assert by["trader"].source == trader.source
    for a in report.agents:  # the recorded decisions after the miss are the run's: still no gap
        assert a.gap == 0.0
        assert a.one_sided_fills == 0
    twin_exits = report.fills[(report.fills["side_of"] == "twin") & (report.fills["kind"] == "exit")]
    assert (twin_exits["round_no"] > gone).sum() >= 2

    res = CliRunner().invoke(
        app, ["twin", "paper-gap", "--from-cache", "--db", str(store.engine.url), "--cache-db", cache.url]
    )
    assert res.exit_code == 0, res.output
    assert f"cache until round {gone}, then recorded: trader" in res.output
    assert f"cache miss: round {gone}: the run's own request is not in the cache" in res.output


def test_when_the_twins_account_differs_the_prompt_differs_and_the_cache_says_so(
    store: ArenaStore, server: LLMServer, desk: Desk, cache: ResponseCache
) -> None:
    _llm_paper_run(store, "paper-llm-slip", server, desk, cache, brokers=_slipping_for("paper-llm-slip"))

    report = twin_report(store, "paper-llm-slip", from_cache=True, cache=ResponseCache(cache.url))

    trader = _replay(report, "trader")
    entries = store.fills_frame("paper-llm-slip")
    first_fill = int(entries[entries["agent"] == "trader"]["round_no"].min())
    # the run's fills were slipped: from the first one on the run's account (cash, equity) is not the twin's
    assert trader.fallback_round is not None
    assert 0 < trader.fallback_round <= first_fill + 1
    assert trader.source == f"cache until round {trader.fallback_round}, then recorded"
    assert trader.miss.startswith(f"round {trader.fallback_round}: the twin's prompt differs from the run's (line ")
    assert trader.differing == 0
    _assert_adds_up(report)
    assert {a.agent: a.gap != 0.0 for a in report.agents} == {"buy_and_hold": True, "trader": True}


def test_from_cache_names_the_missing_warm_up_history(
    store: ArenaStore,
    server: LLMServer,
    desk: Desk,
    cache: ResponseCache,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARENA_DATA_CACHE", str(tmp_path / "no-ingest-cache"))  # the bundled sample only
    # A run on the sample's first hours, over bars that are not `load_arena_market`'s (a live feed's, say): the
    # twin needs the paper feed's warm-up before its first round, which no local data holds.
    market = load_market(("BTC/USDT", "ETH/USDT"), "1h", "2022-01-01T02:00", "2022-01-01T06:00")
    config = arena_config()
    config = replace(
        config, market=config.market.model_copy(update={"start": "2022-01-01T04:00", "end": "2022-01-01T06:00"})
    )
    desk.routes["trader"] = holder()  # too little history for a price in the prompt: it holds
    cfg = llm_config(server, "trader")
    config = config.with_llm((cfg,))
    agents: list[Agent] = [LLMAgent(cfg, cache=cache, env=ENV)]
    create_run(store, config, Roster(agents), market, "paper", "paper-early")
    runner = ArenaRunner(config, agents, market, store, "paper-early", first_row=2)
    try:
        runner.run()
    finally:
        runner.close()

    with pytest.raises(TwinError, match=r"needs the 298 1h bars before the first round \(2021-12-19T") as info:
        twin_report(store, "paper-early", from_cache=True, cache=ResponseCache(cache.url))
    assert "BTC/USDT (has 2022-01-01T00:00:00+00:00 to 2022-01-01T03:00:00+00:00)" in str(info.value)
    assert twin_report(store, "paper-early").agents[0].gap == 0.0  # the recorded twin needs no history

    res = CliRunner().invoke(
        app, ["twin", "paper-early", "--from-cache", "--db", str(store.engine.url), "--cache-db", cache.url]
    )
    assert res.exit_code == 2
    assert "missing in the local data" in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
