"""Paper mode: the same rounds on candles fetched live through the real ccxt code (a loopback Binance server).

The server serves real sample bars and a movable "now"; the feed's clock follows it, so each round sees exactly
the bars that had closed by then, and the bar still forming is never traded on.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from arena_lib.arena.config import ArenaConfig, RoundSettings
from arena_lib.arena.paper import CcxtPaperFeed, run_paper
from arena_lib.arena.rounds import ArenaRunner
from arena_lib.arena.session import build_roster, create_run
from arena_lib.arena.store import ArenaStore
from arena_lib.core.clock import SimulatedClock
from arena_lib.core.config import BacktestConfig, RiskLimits
from arena_lib.core.spec import AgentSpec
from arena_lib.data import api_urls_for_host, make_exchange
from tests.servers.binance import INTERVAL_MS, BinanceSpotServer

HOUR_NS = INTERVAL_MS["1h"] * 1_000_000


@pytest.fixture
def server() -> BinanceSpotServer:
    with BinanceSpotServer() as srv:
        yield srv


def _config() -> ArenaConfig:
    market = BacktestConfig(symbols=("BTC/USDT", "ETH/USDT"), timeframe="1h", risk=RiskLimits(allow_reversal=False))
    quant = (AgentSpec("buy_and_hold", {"fraction": 0.4}), AgentSpec("noop", {}, "cash"))
    return ArenaConfig(market=market, rounds=RoundSettings(history_bars=100), quant=quant, llm=())


class _HourPasses(threading.Event):
    """A stop event whose wait between polls lets an hour of market time pass on the exchange and on our clock."""

    def __init__(self, server: BinanceSpotServer, clock: SimulatedClock) -> None:
        super().__init__()
        self.server, self.clock = server, clock

    def wait(self, timeout: float | None = None) -> bool:
        self.server.now_ms += INTERVAL_MS["1h"]
        self.clock.advance_to(self.server.now_ms * 1_000_000)
        return self.is_set()


def _exchange(server: BinanceSpotServer) -> object:
    return make_exchange(
        "binance",
        urls_override=api_urls_for_host("binance", server.url),
        options={"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
    )


def test_paper_rounds_trade_on_closed_live_bars_and_resume_from_the_store(
    server: BinanceSpotServer, tmp_path: Path
) -> None:
    server.now_ms -= 3 * INTERVAL_MS["1h"]  # start three hours before the end of the sample
    clock = SimulatedClock(server.now_ms * 1_000_000)
    feed = CcxtPaperFeed(_exchange(server), ("BTC/USDT", "ETH/USDT"), "1h", history_bars=100, clock=clock)
    hours = _HourPasses(server, clock)

    config = _config()
    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    roster = build_roster(config)
    runner = ArenaRunner(config, roster.agents, feed, store, "paper-test")
    create_run(store, config, roster, "live", "paper", "paper-test")
    outcomes = run_paper(runner, feed, every_s=0.0, rounds=2, stop=hours)
    runner.close()

    assert [o.decided for o in outcomes] == [True, True]
    rounds = store.rounds_frame("paper-test")
    assert rounds["round_no"].tolist() == [0, 1]
    # Every round decided on a bar that had closed by the feed's "now", one hour apart, never on the forming bar.
    assert rounds["ts"].diff().dropna().tolist() == [HOUR_NS]
    assert (rounds["ts"] <= clock.now_ns()).all()
    fills = store.fills_frame("paper-test", "buy_and_hold")
    assert sorted(fills["symbol"]) == ["BTC/USDT", "ETH/USDT"]  # entered at the next live bar's open
    assert (fills["ts"] == rounds["ts"].iloc[0]).all()

    # A restart two hours later continues the run from the store: the bar it missed is settled without asking the
    # agents, the newest one is a decision round, and nothing is bought twice.
    hours.wait()
    hours.wait()
    feed2 = CcxtPaperFeed(_exchange(server), ("BTC/USDT", "ETH/USDT"), "1h", history_bars=100, clock=clock)
    runner2 = ArenaRunner(config, build_roster(config).agents, feed2, store, "paper-test")
    runner2.restore()
    more = run_paper(runner2, feed2, every_s=0.0, rounds=1, stop=hours)
    runner2.close()
    assert [(o.round_no, o.decided) for o in more] == [(2, False), (3, True)]
    assert len(store.fills_frame("paper-test", "buy_and_hold")) == 2


def test_a_stop_request_ends_paper_trading_between_rounds(server: BinanceSpotServer, tmp_path: Path) -> None:
    feed = CcxtPaperFeed(
        _exchange(server), ("BTC/USDT",), "1h", history_bars=60, clock=SimulatedClock(server.now_ms * 10**6)
    )
    config = ArenaConfig(
        market=BacktestConfig(symbols=("BTC/USDT",), timeframe="1h"),
        rounds=RoundSettings(history_bars=60),
        quant=(AgentSpec("noop", {}, "cash"),),
        llm=(),
    )
    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    roster = build_roster(config)
    run_id, _ = create_run(store, config, roster, "live", "paper")
    stop = threading.Event()
    runner = ArenaRunner(config, roster.agents, feed, store, run_id, stop=stop)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    outcomes = run_paper(runner, feed, every_s=30.0, rounds=None, stop=stop)  # would wait 30 s otherwise
    runner.close()
    assert len(outcomes) == 1  # the first round completed and was committed; then the stop was honoured
    assert store.get_run(run_id).last_round == 0


class _HaltAfterFirstRound(threading.Event):
    """After the first scheduled round the operator hits `arena halt` (while the job waits for its next bar)."""

    def __init__(self, store: ArenaStore, at_ns: int) -> None:
        super().__init__()
        self.store, self.at_ns = store, at_ns

    def wait(self, timeout: float | None = None) -> bool:
        self.store.set_halt(True, reason="drill", by="ops", at_ns=self.at_ns)
        return self.is_set()


def test_the_kill_switch_stops_paper_trading_mid_schedule(server: BinanceSpotServer, tmp_path: Path) -> None:
    clock = SimulatedClock(server.now_ms * 10**6)
    feed = CcxtPaperFeed(_exchange(server), ("BTC/USDT",), "1h", history_bars=60, clock=clock)
    config = ArenaConfig(
        market=BacktestConfig(symbols=("BTC/USDT",), timeframe="1h"),
        rounds=RoundSettings(history_bars=60),
        quant=(AgentSpec("buy_and_hold", {"fraction": 0.4}),),
        llm=(),
    )
    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    roster = build_roster(config)
    run_id, _ = create_run(store, config, roster, "live", "paper")
    runner = ArenaRunner(config, roster.agents, feed, store, run_id)
    outcomes = run_paper(runner, feed, every_s=0.0, rounds=5, stop=_HaltAfterFirstRound(store, server.now_ms * 10**6))
    runner.close()
    assert len(outcomes) == 1  # the second poll saw the halt before fetching or trading anything
    assert runner.halted is not None
    assert "drill" in runner.halted.describe()
