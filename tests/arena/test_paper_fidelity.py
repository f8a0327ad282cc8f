"""Paper trading of perpetuals: funding and mark prices through the real ccxt USDⓈ-M client (a loopback Binance
server over the real sample), charged and shown point in time, and `arena run --resume` of a paper run.

The server's "now" moves an hour at a time and the feed's clock follows it, so each round sees exactly what had
happened by then: bars that closed, funding that settled, mark prices read.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from arena_lib.agents.base import AccountView
from arena_lib.agents.llm.prompt import PromptBuilder, format_number
from arena_lib.arena import paper
from arena_lib.arena.config import ArenaConfig, RoundSettings
from arena_lib.arena.paper import CcxtPaperFeed, paper_feed, run_paper
from arena_lib.arena.rounds import ArenaRunner
from arena_lib.arena.session import build_roster, create_run, resume_run, start_paper_run
from arena_lib.arena.store import ArenaStore
from arena_lib.cli.main import app
from arena_lib.core.clock import SimulatedClock
from arena_lib.core.config import BacktestConfig, RiskLimits
from arena_lib.core.spec import AgentSpec
from arena_lib.data import api_urls_for_host, make_exchange
from arena_lib.data.funding_source import make_perp_exchange
from arena_lib.data.sample import sample_dir
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.data.tape import MarketTape
from tests.servers.binance import INTERVAL_MS, BinanceSpotServer

HOUR_MS = INTERVAL_MS["1h"]
SYMBOLS = ("BTC/USDT", "ETH/USDT")
SETTLE = pd.Timestamp("2026-05-16 16:00", tz="UTC")  # a settlement inside the sample's last hours


def _ms(ts: str | pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).value) // 1_000_000


def _sample_bars(sym: str, tf: str = "1h") -> pd.DataFrame:
    return pd.read_parquet(sample_dir() / f"binance_{sym.split('/')[0]}-USDT_{tf}.parquet")


def _open_at(sym: str, ts: pd.Timestamp) -> float:
    """The sample's 1h bar open at `ts`."""
    return float(_sample_bars(sym)["open"].to_numpy()[_sample_bars(sym).index.get_loc(ts)])


def _rate_at(sym: str, ts: pd.Timestamp) -> float:
    """The sample's funding rate that settled at `ts`."""
    rates = _sample_funding(sym)
    return float(rates.to_numpy()[rates.index.get_loc(ts)])


def _sample_funding(sym: str) -> pd.Series:
    path = sample_dir() / f"binance-usdm_{sym.split('/')[0]}-USDT-PERP_funding_8h.parquet"
    return pd.read_parquet(path)["funding_rate"]


@pytest.fixture
def server() -> Iterator[BinanceSpotServer]:
    with BinanceSpotServer() as srv:
        yield srv


class _HourPasses(threading.Event):
    """A stop event whose wait lets an hour of market time pass on the exchange and on the feed's clock."""

    def __init__(self, server: BinanceSpotServer, clock: SimulatedClock) -> None:
        super().__init__()
        self.server, self.clock = server, clock

    def wait(self, timeout: float | None = None) -> bool:
        self.server.now_ms += HOUR_MS
        self.clock.advance_to(self.server.now_ms * 1_000_000)
        return self.is_set()


def _feed(server: BinanceSpotServer, clock: SimulatedClock, timeframe: str = "1h", bars: int = 250) -> CcxtPaperFeed:
    spot = make_exchange(
        "binance",
        urls_override=api_urls_for_host("binance", server.url),
        options={"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
    )
    perp = make_perp_exchange("binance", server.url)
    assert perp.id == "binanceusdm"
    return CcxtPaperFeed(spot, SYMBOLS, timeframe, bars, clock=clock, perp_exchange=perp)


def _config() -> ArenaConfig:
    market = BacktestConfig(symbols=SYMBOLS, timeframe="1h", risk=RiskLimits(allow_reversal=False))
    quant = (AgentSpec("buy_and_hold", {"fraction": 0.4}), AgentSpec("noop", {}, "cash"))
    return ArenaConfig(market=market, rounds=RoundSettings(history_bars=250), quant=quant, llm=())


def _no_event_after_close(tape: MarketTape) -> None:
    for j in range(len(tape.symbols)):
        times, _ = tape.funding_history(j, 2**62)
        assert len(times) == 0 or times.max() <= tape.last_close_ns
        reading = tape.mark_price(j, 2**62)
        assert reading is None or reading[0] <= tape.last_close_ns


def test_funding_is_charged_at_settlement_on_a_held_paper_position_and_shown_to_agents(
    server: BinanceSpotServer, tmp_path: Path
) -> None:
    server.now_ms = _ms(SETTLE - pd.Timedelta(hours=2, minutes=30))  # 13:30: the 12:00 bar is the newest closed
    clock = SimulatedClock(server.now_ms * 1_000_000)
    hours = _HourPasses(server, clock)
    feed = _feed(server, clock)
    config = _config()
    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    roster = build_roster(config)
    runner = ArenaRunner(config, roster.agents, feed, store, "paper-funding")
    create_run(store, config, roster, "live", "paper", "paper-funding")
    assert feed.funding_note == ""  # both perpetuals are listed: funding is read, not skipped

    seen: list[tuple[int, MarketSnapshot, float]] = []
    for _ in range(5):  # decision rounds on the 12:00 .. 16:00 bars, one hour apart
        played = run_paper(runner, feed, every_s=0.0, rounds=1, stop=hours)
        assert [o.decided for o in played] == [True]
        paid = store.load_accounts("paper-funding")["buy_and_hold"].funding_paid
        seen.append((runner.tape.time_ns, MarketSnapshot.of(runner.tape), paid))
        _no_event_after_close(runner.tape)
        hours.wait()
    runner.close()
    opens = [pd.Timestamp(t, tz="UTC") for t, _, _ in seen]
    assert opens == [SETTLE - pd.Timedelta(hours=h) for h in (4, 3, 2, 1, 0)]

    rates = {s: _sample_funding(s) for s in SYMBOLS}
    before = {s: float(rates[s][rates[s].index < SETTLE].iloc[-1]) for s in SYMBOLS}
    at = {s: _rate_at(s, SETTLE) for s in SYMBOLS}
    # Before the settlement its rate is nowhere: the snapshots show the previous one, and nothing was charged.
    for _, snap, paid in seen[:3]:
        assert paid == 0.0
        for s in SYMBOLS:
            assert snap.funding_rate(s) == pytest.approx(before[s])
    # The bar that closes at the settlement shows its rate (settled at its close), still uncharged ...
    _, snap, paid = seen[3]
    assert paid == 0.0
    for s in SYMBOLS:
        assert snap.funding_rate(s) == pytest.approx(at[s])
    # ... and the position held into the next bar pays quantity x that bar's open x rate, at that bar's open.
    accounts = store.load_accounts("paper-funding")
    held = accounts["buy_and_hold"].positions
    assert sorted(held) == list(SYMBOLS)
    expected = {}
    for s in SYMBOLS:
        bar_open = _open_at(s, SETTLE)
        expected[s] = held[s].quantity * bar_open * at[s]
        assert held[s].quantity > 0  # long: a positive rate is paid, a negative one received
        assert held[s].funding_paid == pytest.approx(expected[s], rel=1e-9)
        assert math.copysign(1, held[s].funding_paid) == math.copysign(1, at[s])
    assert seen[4][2] == pytest.approx(sum(expected.values()), rel=1e-9)
    assert accounts["cash"].funding_paid == 0.0  # no position, no funding

    # The LLM prompt shows the settled rate the snapshot holds (not "not available").
    snap = seen[3][1]
    account = AccountView(cash=10_000.0, equity=10_000.0, initial_cash=10_000.0, positions={})
    prompt = PromptBuilder().build(
        snap, account, symbols=SYMBOLS, started_at_ns=snap.timestamp_ns, invocation=3, max_leverage=1.0
    )
    for s in SYMBOLS:
        assert f"Funding Rate: {format_number(at[s], 4)}" in prompt.user
    assert "Funding Rate: not available" not in prompt.user

    # Mark prices (/fapi/v1/premiumIndex) are shown from the first close after they were read: the first round
    # has none (the reading at 13:30 came after its 13:00 close), the next shows that 13:30 reading.
    assert all(math.isnan(seen[0][1].mark_price(s)) for s in SYMBOLS)
    for k in range(1, 5):
        read_at = SETTLE - pd.Timedelta(minutes=150) + pd.Timedelta(hours=k - 1)  # the previous poll: 13:30 + ..
        for s in SYMBOLS:
            bars = _sample_bars(s)
            expected_mark = float(bars["open"][bars.index <= read_at].iloc[-1])
            assert seen[k][1].mark_price(s) == pytest.approx(expected_mark)


def test_no_funding_event_or_mark_price_reaches_the_tape_before_it_happened(server: BinanceSpotServer) -> None:
    """Daily bars: events that settled after the newest closed bar, though before now, wait for the bar that
    contains them."""
    day = pd.Timestamp("2026-01-04", tz="UTC")
    server.now_ms = _ms(day + pd.Timedelta(hours=17, minutes=30))  # 08:00 and 16:00 settled; the day still forms
    clock = SimulatedClock(server.now_ms * 1_000_000)
    feed = _feed(server, clock, timeframe="1d", bars=60)
    tape = MarketTape(SYMBOLS, "1d")
    feed.warm_up(tape)
    while feed.advance(tape):
        pass
    assert pd.Timestamp(tape.last_close_ns, tz="UTC") == day
    _no_event_after_close(tape)
    for j, s in enumerate(SYMBOLS):
        times, _ = tape.funding_history(j, 2**62)
        assert pd.Timestamp(int(times[-1]), tz="UTC") == day  # 00:00 settled at the close; 08:00/16:00 not yet
        assert math.isnan(MarketSnapshot.of(tape).mark_price(s))  # read at 17:30: after this close
    # The job path (`market()`): the same cut, as a MarketData a scheduled job replays.
    market = feed.market()
    for s in SYMBOLS:
        series = market.funding_series[s]
        assert series.index.max() == day
        assert len(series) > 50  # the history before the first bar too, so the first snapshot shows a rate

    # The next day closes: its row brings the day's settlements (and the one at its close) and the 17:30 reading.
    server.now_ms += 7 * HOUR_MS
    clock.advance_to(server.now_ms * 1_000_000)
    assert feed.poll(tape) == 1
    assert feed.advance(tape) == 1
    _no_event_after_close(tape)
    snap = MarketSnapshot.of(tape)
    for j, s in enumerate(SYMBOLS):
        times, rates = tape.funding_history(j, 2**62)
        new = pd.DatetimeIndex(pd.to_datetime(times[-3:], utc=True))
        assert list(new) == [day + pd.Timedelta(hours=h) for h in (8, 16, 24)]
        sample = _sample_funding(s)
        assert np.allclose(rates[-3:], sample.loc[new].to_numpy())
        assert snap.mark_price(s) == pytest.approx(_open_at(s, day + pd.Timedelta(hours=17)))
    # Funding is charged at the open of the first bar at or after settlement: this bar (opening at 00:00) pays the
    # events of the previous day after its open (08:00, 16:00, 00:00); today's 08:00, 16:00 and 24:00 wait.
    assert tape.funding_due is not None
    due = {}
    for j, s in enumerate(SYMBOLS):
        sample = _sample_funding(s)
        due[j] = float(sample[(sample.index > day - pd.Timedelta(days=1)) & (sample.index <= day)].sum())
    assert dict(tape.funding_due) == pytest.approx(due)


def test_an_exchange_without_a_linear_swap_client_says_funding_is_unavailable(server: BinanceSpotServer) -> None:
    config = ArenaConfig(
        market=BacktestConfig(symbols=("BTC/USDT",), timeframe="1h"),
        rounds=RoundSettings(history_bars=60, exchange="coinbase"),
        quant=(AgentSpec("noop", {}, "cash"),),
        llm=(),
    )
    feed = paper_feed(config)  # builds clients only: no request is made
    assert feed.perp_exchange is None
    assert "funding unavailable" in feed.funding_note
    assert "coinbase" in feed.funding_note


def _yaml(tmp_path: Path) -> Path:
    cfg = {
        "symbols": list(SYMBOLS),
        "timeframe": "1h",
        "arena": {"history_bars": 250},
        "agents": [{"agent": "buy_and_hold", "params": {"fraction": 0.4}}, {"agent": "noop", "label": "cash"}],
    }
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _dead_writer() -> str:
    """A lease owner token of a process on this host that has exited (a killed `arena run`)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()[:64]}:{proc.stdout.strip()}:deadbeef"


def test_a_paper_run_killed_and_resumed_with_resume_continues_the_same_ledger(
    server: BinanceSpotServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.now_ms = _ms(SETTLE - pd.Timedelta(hours=3, minutes=30))
    clock = SimulatedClock(server.now_ms * 1_000_000)
    monkeypatch.setattr(paper, "WallClock", lambda: clock)  # the CLI's feed reads the exchange's "now"
    db = f"sqlite:///{tmp_path}/arena.db"
    store = ArenaStore(db)
    cli = CliRunner()
    common = ["--exchange-url", server.url, "--every", "1s", "--json", "--db", db, "--cache-mode", "off"]

    res = cli.invoke(app, ["run", "--config", str(_yaml(tmp_path)), "--mode", "paper", "--rounds", "1", *common])
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout.strip().splitlines()[-1])["run_id"]
    assert store.get_run(run_id).status == "stopped"
    cash_after_entry_order = store.load_accounts(run_id)["buy_and_hold"].cash

    # The process is killed while it holds the run (status "running", its writer lease live), two hours pass.
    store.acquire_lease(run_id, ttl_s=600, owner=_dead_writer())
    store.set_status(run_id, "running", store.get_run(run_id).message)
    for _ in range(2):
        server.now_ms += HOUR_MS
    clock.advance_to(server.now_ms * 1_000_000)

    res = cli.invoke(app, ["run", "--resume", run_id, "--rounds", "1", *common])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert (out["run_id"], out["status"], out["rounds"]) == (run_id, "stopped", 1)

    # Three hours later, another resume (through the session API this time), across the funding settlement.
    server.now_ms += 3 * HOUR_MS
    clock.advance_to(server.now_ms * 1_000_000)
    report = resume_run(run_id, store, rounds=1, exchange_url=server.url, every_s=1.0, clock=clock)
    assert (report.status, report.rounds) == ("stopped", 1)

    rounds = store.rounds_frame(run_id)
    assert rounds["round_no"].tolist() == list(range(len(rounds)))  # one ledger, no round twice, none skipped
    assert rounds["ts"].diff().dropna().eq(HOUR_MS * 1_000_000).all()
    assert len(rounds) == 6  # 11:00 decided; 12:00 settled, 13:00 decided; 14:00, 15:00 settled, 16:00 decided
    fills = store.fills_frame(run_id, "buy_and_hold")
    assert sorted(fills["symbol"]) == list(SYMBOLS)  # bought once, after the first round; never again
    accounts = store.load_accounts(run_id)
    held = accounts["buy_and_hold"]
    assert held.last_round == accounts["cash"].last_round == 5
    assert held.cash < cash_after_entry_order  # the entry filled after the restart, from the restored account
    expected = sum(held.positions[s].quantity * _open_at(s, SETTLE) * _rate_at(s, SETTLE) for s in SYMBOLS)
    assert held.funding_paid == pytest.approx(expected, rel=1e-9)  # charged once, in a bar settled on resume


def test_start_paper_run_records_missing_funding_in_the_run_message(server: BinanceSpotServer, tmp_path: Path) -> None:
    """A symbol without a perpetual on the exchange: the run says so instead of silently charging nothing."""
    server.perps = ["BTCUSDT"]  # ETHUSDT has no perpetual listed here
    server.now_ms = _ms(SETTLE)
    clock = SimulatedClock(server.now_ms * 1_000_000)
    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    report = start_paper_run(_config(), store, every_s=1.0, rounds=1, exchange_url=server.url, clock=clock)
    assert report.status == "stopped"
    message = store.get_run(report.run_id).message
    assert "funding unavailable for ETH/USDT" in message
    assert "binanceusdm" in message
    assert message == report.message
