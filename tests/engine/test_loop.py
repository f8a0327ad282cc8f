"""Executable specification of the step loop `run_replay`: fairness, point-in-time snapshots, fills, fees, funding,
order ids, and intrabar stops.

Most tests replay the real offline sample with small scripted agents defined here. The intrabar tests use a
CONSTRUCTED FIXTURE (`_constructed_market`): a handful of hand-written bars of a fictitious TEST/USDT, because the
exact cases (stop and take-profit in the same bar, a gap through a level) must be pinned down bar by bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.base import AccountView
from arena_lib.agents.baselines import BuyAndHold, SmaCross
from arena_lib.core.clock import SimulatedClock
from arena_lib.core.config import BacktestConfig, CostModel, ExecutionConfig
from arena_lib.core.types import Action, Decision
from arena_lib.data.market import MarketData
from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.engine.broker import order_id
from arena_lib.engine.loop import run_replay
from arena_lib.engine.rules import liquidation_price

BTC, ETH, SOL = "BTC/USDT", "ETH/USDT", "SOL/USDT"
HOUR = 3_600_000_000_000
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@dataclass
class Scripted:
    """Plays `script[bar index]` and records every snapshot, account and clock reading it was given."""

    name: str
    script: dict[int, list[Decision]] = field(default_factory=dict)
    clock: SimulatedClock | None = None
    snapshots: list[MarketSnapshot] = field(default_factory=list)
    snapshot_ids: list[int] = field(default_factory=list)
    accounts: list[AccountView] = field(default_factory=list)
    clock_ns: list[int] = field(default_factory=list)

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]:
        self.snapshots.append(snapshot)
        self.snapshot_ids.append(id(snapshot))
        self.accounts.append(account)
        if self.clock is not None:
            self.clock_ns.append(self.clock.now_ns())
        return self.script.get(snapshot.index, [])


def _config(
    fill: str = "next_open", fee_bps: float = 5.0, slippage_bps: float = 2.0, symbols: tuple[str, ...] = (BTC,)
) -> BacktestConfig:
    return BacktestConfig(
        symbols=symbols,
        costs=CostModel(fee_bps=fee_bps, slippage_bps=slippage_bps),
        execution=ExecutionConfig(fill=fill),
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def three_symbols() -> MarketData:
    """Real BTC/ETH 1h bars with funding, and SOL only from 2023-01-04 (as if listed later)."""
    frames = {
        BTC: load_sample(BTC, "1h", "2023-01-01", "2023-01-08"),
        ETH: load_sample(ETH, "1h", "2023-01-01", "2023-01-08"),
        SOL: load_sample(SOL, "1h", "2023-01-04", "2023-01-08"),
    }
    funding = {s: load_sample_funding(s) for s in (BTC, ETH)}
    return MarketData.from_frames(frames, "1h", funding)


@pytest.fixture(scope="module")
def btc() -> MarketData:
    frames = {BTC: load_sample(BTC, "1h", "2023-01-01", "2023-01-04")}
    return MarketData.from_frames(frames, "1h", {BTC: load_sample_funding(BTC)})


# ---------------------------------------------------------------------------------------------------------------
# fairness and point in time
# ---------------------------------------------------------------------------------------------------------------
def test_every_agent_gets_the_same_snapshot_object(three_symbols: MarketData) -> None:
    a, b = Scripted("a"), Scripted("b", script={3: [Decision(BTC, Action.ENTER_LONG, size=0.5)]})
    trader = BuyAndHold(fraction=0.3)  # a third agent that trades, so the accounts differ
    run_replay([a, trader, b], three_symbols, _config(symbols=three_symbols.symbols))
    n = three_symbols.n_bars
    assert len(a.snapshots) == len(b.snapshots) == n
    assert a.snapshot_ids == b.snapshot_ids
    assert all(x is y for x, y in zip(a.snapshots, b.snapshots, strict=True))
    assert [s.index for s in a.snapshots] == list(range(n))
    assert all(x.content_hash() == y.content_hash() for x, y in zip(a.snapshots, b.snapshots, strict=True))
    # same snapshot, different (isolated) accounts
    assert a.accounts[-1].positions == {}
    assert b.accounts[-1].positions != {}


def test_snapshot_shows_only_closed_bars(three_symbols: MarketData) -> None:
    m = three_symbols
    clock = SimulatedClock()
    agent = Scripted("watcher", clock=clock)
    run_replay([agent], m, _config(symbols=m.symbols), clock=clock)
    funding = pd.read_parquet(SAMPLE / "binance-usdm_BTC-USDT-PERP_funding_8h.parquet")["funding_rate"]
    sol_first = load_sample(SOL, "1h", "2023-01-04", "2023-01-08").index[0]
    for i, snap in enumerate(agent.snapshots):
        t_open = int(m.times[i])
        # the decision time is the bar's close, and the injected clock says so too
        assert snap.timestamp_ns == t_open + HOUR == agent.clock_ns[i]
        assert snap.timestamp == pd.Timestamp(t_open + HOUR, tz="UTC")
        for sym in m.symbols:
            bars = snap.ohlcv(sym)
            assert (bars.index.as_unit("ns").asi8 <= t_open).all()
            assert snap.bar_count(sym) == len(bars) == len(snap.closes(sym))
            window = snap.window(sym)
            assert all(len(v) == len(bars) for v in window.values())
            if len(bars) == 0:
                assert sym == SOL
                assert snap.timestamp <= sol_first
                assert math.isnan(snap.close(sym))
                continue
            last = snap.bar(sym)
            assert last.timestamp <= t_open
            assert snap.close(sym) == last.close == snap.closes(sym)[-1] == bars["close"].iloc[-1]
            if snap.has_bar(sym):
                assert last.timestamp == t_open  # the bar that just closed is the newest one visible
                assert last.close == m.close[i, m.symbols.index(sym)]
            closes = snap.closes(sym)
            assert not closes.flags.writeable
            with pytest.raises(ValueError):
                closes[-1] = 0.0
        # funding: the latest rate settled at or before now, never a later one
        settled = funding[funding.index <= snap.timestamp]
        assert snap.funding_rate(BTC) == settled.iloc[-1]
        assert math.isnan(snap.funding_rate(SOL))


def test_snapshot_before_a_symbol_is_listed(three_symbols: MarketData) -> None:
    snap = MarketSnapshot(three_symbols, 0)
    assert not snap.has_bar(SOL)
    assert snap.has_bar(BTC)
    assert snap.bar_count(SOL) == 0
    assert len(snap.closes(SOL)) == 0
    with pytest.raises(LookupError):
        snap.bar(SOL)
    with pytest.raises(KeyError):
        snap.close("DOGE/USDT")


# ---------------------------------------------------------------------------------------------------------------
# fills, fees, order ids
# ---------------------------------------------------------------------------------------------------------------
ENTER_AT, EXIT_AT = 5, 20


def _round_trip(market: MarketData, fill: str, run_id: str = "rt") -> tuple[Scripted, pd.DataFrame]:
    agent = Scripted(
        "trip",
        script={
            ENTER_AT: [Decision(BTC, Action.ENTER_LONG, size=0.5, leverage=2.0)],
            EXIT_AT: [Decision(BTC, Action.CLOSE)],
        },
    )
    result = run_replay([agent], market, _config(fill=fill), run_id=run_id)["trip"]
    return agent, result.fills


def test_next_open_fills_at_the_next_bars_open_with_slippage_and_fee(btc: MarketData) -> None:
    agent, fills = _round_trip(btc, "next_open")
    assert list(fills["kind"]) == ["entry", "exit"]
    entry, exit_ = fills.iloc[0], fills.iloc[1]
    o = btc.open[:, 0]
    # entry: bought at the open of the bar after the signal, 2 bps worse
    assert entry["timestamp"] == pd.Timestamp(int(btc.times[ENTER_AT + 1]), tz="UTC")
    assert entry["side"] == "buy"
    assert entry["price"] == o[ENTER_AT + 1] * (1 + 2e-4)
    # sized from equity at fill time: margin + fee = 0.5 * 10_000
    notional = 0.5 * 10_000.0 / (1 / 2.0 + 5e-4)
    assert entry["quantity"] == pytest.approx(notional / entry["price"], rel=1e-12)
    assert entry["fee"] == pytest.approx(entry["quantity"] * entry["price"] * 5e-4, rel=1e-12)
    assert entry["quantity"] * entry["price"] / 2.0 + entry["fee"] == pytest.approx(5_000.0, rel=1e-12)
    # exit: sold at the next open, 2 bps worse, same fee rate, pnl on the price difference
    assert exit_["timestamp"] == pd.Timestamp(int(btc.times[EXIT_AT + 1]), tz="UTC")
    assert exit_["side"] == "sell"
    assert exit_["quantity"] == entry["quantity"]
    assert exit_["price"] == o[EXIT_AT + 1] * (1 - 2e-4)
    assert exit_["fee"] == pytest.approx(exit_["quantity"] * exit_["price"] * 5e-4, rel=1e-12)
    assert exit_["realized_pnl"] == pytest.approx(entry["quantity"] * (exit_["price"] - entry["price"]), rel=1e-12)
    # what the agent saw: the position right after the fill, flat again after the exit, cash reconciled
    assert agent.accounts[ENTER_AT].positions == {}
    pos = agent.accounts[ENTER_AT + 1].positions[BTC]
    assert pos.entry_price == entry["price"]
    assert pos.leverage == 2.0
    final = agent.accounts[EXIT_AT + 1]
    assert final.positions == {}
    assert final.cash == pytest.approx(
        10_000.0 - entry["fee"] - exit_["fee"] + exit_["realized_pnl"] - exit_["funding"], rel=1e-12
    )


def test_close_mode_fills_at_the_signal_close(btc: MarketData) -> None:
    agent, fills = _round_trip(btc, "close")
    entry, exit_ = fills.iloc[0], fills.iloc[1]
    c = btc.close[:, 0]
    assert entry["timestamp"] == pd.Timestamp(int(btc.times[ENTER_AT]) + HOUR, tz="UTC")
    assert entry["price"] == c[ENTER_AT] * (1 + 2e-4)
    assert exit_["timestamp"] == pd.Timestamp(int(btc.times[EXIT_AT]) + HOUR, tz="UTC")
    assert exit_["price"] == c[EXIT_AT] * (1 - 2e-4)
    for f in (entry, exit_):
        assert f["fee"] == pytest.approx(f["quantity"] * f["price"] * 5e-4, rel=1e-12)
    # filled before the bar's equity is recorded: the agent's next view already holds the position
    assert BTC in agent.accounts[ENTER_AT + 1].positions


def test_fees_are_fee_bps_of_notional_on_every_fill(btc: MarketData) -> None:
    config = BacktestConfig(symbols=(BTC,), costs=CostModel(fee_bps=7.5, slippage_bps=1.0))
    agent = SmaCross(fast=3, slow=8, allow_short=True, leverage=2, stop_loss_pct=0.004, take_profit_pct=0.004)
    fills = run_replay([agent], btc, config)[agent.name].fills
    assert {"entry", "exit", "stop_loss", "take_profit"} <= set(fills["kind"])
    traded = fills[fills["kind"] != "liquidation"]
    assert np.allclose(traded["fee"], traded["quantity"] * traded["price"] * 7.5e-4, rtol=1e-12, atol=0)


def test_order_ids_are_deterministic(btc: MarketData) -> None:
    _, first = _round_trip(btc, "next_open", run_id="run-7")
    _, again = _round_trip(btc, "next_open", run_id="run-7")
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    t_enter = int(btc.times[ENTER_AT]) + HOUR  # the round is named by its decision time, the signal bar's close
    t_exit = int(btc.times[EXIT_AT]) + HOUR
    assert list(first["order_id"]) == [f"run-7/trip/{t_enter}/{BTC}", f"run-7/trip/{t_exit}/{BTC}"]
    assert order_id("run-7", "trip", t_enter, BTC) == first["order_id"].iloc[0]
    _, other = _round_trip(btc, "close", run_id="run-8")
    assert list(other["order_id"]) == [f"run-8/trip/{t_enter}/{BTC}", f"run-8/trip/{t_exit}/{BTC}"]


def test_agent_names_must_be_unique(btc: MarketData) -> None:
    with pytest.raises(ValueError, match="unique"):
        run_replay([Scripted("twin"), Scripted("twin")], btc, _config())


def test_equity_curve_is_indexed_by_bar_close(btc: MarketData) -> None:
    result = run_replay([Scripted("idle")], btc, _config())["idle"]
    assert list(result.equity.index) == list(btc.close_times())
    assert (result.equity == 10_000.0).all()
    assert result.fills.empty
    assert result.verdicts == []


# ---------------------------------------------------------------------------------------------------------------
# funding
# ---------------------------------------------------------------------------------------------------------------
def test_funding_is_charged_at_settlement_to_positions_held_into_the_bar(btc: MarketData) -> None:
    """Hand-check against the sample's funding file: at 2023-01-01 08:00 a long pays qty * open * rate.

    The payment comes out of the position's isolated margin (cash is untouched), and the liquidation price moves with
    the margin: ``entry * (1 + mmr) - margin / q`` for a long, ``entry * (1 - mmr) + margin / |q|`` for a short.
    """
    rates = pd.read_parquet(SAMPLE / "binance-usdm_BTC-USDT-PERP_funding_8h.parquet")["funding_rate"]
    settle = pd.Timestamp("2023-01-01 08:00", tz="UTC")
    rate = float(rates.loc[settle])
    assert rate != 0.0
    k = int(np.searchsorted(btc.times, settle.value))  # the bar that opens at the settlement
    assert btc.times[k] == settle.value

    long_ = Scripted("long", script={3: [Decision(BTC, Action.ENTER_LONG, size=0.5)]})
    short = Scripted("short", script={3: [Decision(BTC, Action.ENTER_SHORT, size=0.5)]})
    late = Scripted("late", script={k - 1: [Decision(BTC, Action.ENTER_LONG, size=0.5)]})  # fills at k's open
    run_replay([long_, short, late], btc, _config(), run_id="fund")

    mark = float(btc.open[k, 0])
    closes = btc.close[:, 0]
    mmr = 0.005
    for agent, sign in ((long_, +1), (short, -1)):
        qty = agent.accounts[k - 1].positions[BTC].quantity
        assert np.sign(qty) == sign
        before, after = agent.accounts[k - 1], agent.accounts[k]
        pos0, pos1 = before.positions[BTC], after.positions[BTC]
        payment = qty * mark * rate
        assert after.cash == before.cash  # funding never touches cash ...
        assert pos1.margin == pytest.approx(pos0.margin - payment, rel=1e-12)  # ... it comes out of the margin
        assert pos1.funding_paid == pytest.approx(payment, rel=1e-12)
        assert sign * (pos0.margin - pos1.margin) > 0  # the long pays a positive rate, the short receives it
        entry = pos1.entry_price
        assert pos1.liquidation_price == pytest.approx(entry * (1 + sign * mmr) - pos1.margin / qty, rel=1e-12)
        # either way the liquidation price moves up by payment / qty = mark * rate
        assert pos1.liquidation_price - pos0.liquidation_price == pytest.approx(mark * rate, rel=1e-9)
        # equity moved by the payment plus the price move from close k-1 to close k
        assert after.equity - before.equity == pytest.approx(-payment + qty * (closes[k] - closes[k - 1]), abs=1e-9)
        # no funding in between settlements
        assert agent.accounts[k - 2].cash == before.cash == agent.accounts[k + 1].cash
        assert agent.accounts[k - 2].positions[BTC].margin == pos0.margin
        assert agent.accounts[k + 1].positions[BTC].margin == pos1.margin
    # a position opened at the settlement bar's open was not held into it: it pays nothing then
    late_pos = late.accounts[k].positions[BTC]
    assert late_pos.opened_at == settle.value
    assert late_pos.funding_paid == 0.0
    assert late.accounts[k].cash == pytest.approx(10_000.0 - late_pos.margin - late_pos.entry_fee, rel=1e-12)

    # over the whole hold: the sum of qty * open * rate over every settlement after the entry
    qty = long_.accounts[-1].positions[BTC].quantity
    held = rates[
        (rates.index > pd.Timestamp(int(btc.times[4]), tz="UTC"))
        & (rates.index <= pd.Timestamp(int(btc.times[-1]), tz="UTC"))
    ]
    expected = sum(qty * float(btc.open[int(np.searchsorted(btc.times, t.value)), 0]) * r for t, r in held.items())
    assert len(held) >= 8
    assert long_.accounts[-1].positions[BTC].funding_paid == pytest.approx(expected, rel=1e-12)
    # and the margin carries all of it: the entry margin less the funding paid, with the cash still at its entry level
    held_at_entry = long_.accounts[4].positions[BTC]  # filled at bar 4's open, before any settlement
    assert held_at_entry.funding_paid == 0.0
    entry_margin = abs(qty) * held_at_entry.entry_price / held_at_entry.leverage
    assert held_at_entry.margin == pytest.approx(entry_margin, rel=1e-12)
    assert long_.accounts[-1].positions[BTC].margin == pytest.approx(entry_margin - expected, rel=1e-12)
    assert long_.accounts[-1].cash == long_.accounts[4].cash


def test_funding_settled_before_the_first_bar_is_dropped(btc: MarketData) -> None:
    """LIBRARY BUG (reported): `MarketData.from_frames` maps every funding event to the first bar opening at or after
    it, so all events *before* the window (2022 here) pile up on the first bar: `funding[0]` reads ~0.0417 instead of
    the 0.0001 that settled at 2023-01-01 00:00, and the data hash changes with funding history outside the window.
    (No PnL is affected, since no position can be held into a symbol's first bar.) Fix in `from_frames`:
    `ok = (first < len(s.times)) & (ft >= s.times[0])`."""
    rates = pd.read_parquet(SAMPLE / "binance-usdm_BTC-USDT-PERP_funding_8h.parquet")["funding_rate"]
    first = pd.Timestamp(int(btc.times[0]), tz="UTC")
    assert btc.funding[0, 0] == rates.loc[first]
    in_window = MarketData.from_frames({BTC: btc.series[BTC].frame}, "1h", {BTC: rates[rates.index >= first]})
    assert np.array_equal(in_window.funding, btc.funding)
    assert in_window.fingerprint() == btc.fingerprint()


# ---------------------------------------------------------------------------------------------------------------
# intrabar stops on a CONSTRUCTED FIXTURE
# ---------------------------------------------------------------------------------------------------------------
TEST = "TEST/USDT"
QUIET = (100.0, 101.0, 99.0, 100.0)


def _constructed_market(bar2: tuple[float, float, float, float]) -> MarketData:
    """CONSTRUCTED FIXTURE, not market data: four quiet bars at 100 except bar 2, which the test chooses."""
    rows = [QUIET, QUIET, bar2, QUIET]
    index = pd.date_range("2024-01-01", periods=len(rows), freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"])
    frame["volume"] = 1_000.0
    return MarketData.from_frames({TEST: frame}, "1h")


def _run_constructed(bar2: tuple[float, float, float, float], decision: Decision) -> tuple[Scripted, pd.DataFrame]:
    market = _constructed_market(bar2)
    agent = Scripted("stopper", script={0: [decision]})
    config = BacktestConfig(symbols=(TEST,), costs=CostModel(fee_bps=5.0, slippage_bps=1.0))
    return agent, run_replay([agent], market, config)["stopper"].fills


LONG = Decision(TEST, Action.ENTER_LONG, size=0.5, stop_loss=95.0, take_profit=105.0)
SHORT = Decision(TEST, Action.ENTER_SHORT, size=0.5, stop_loss=105.0, take_profit=95.0)
INTRABAR = [
    # id, decision, bar 2 (open, high, low, close), expected exit kind, expected exit price
    ("long stop touched", LONG, (100, 101, 94, 96), "stop_loss", 95 * (1 - 1e-4)),
    ("long take-profit touched (a limit: no slippage)", LONG, (100, 106, 99, 104), "take_profit", 105.0),
    ("long both touched: the stop counts", LONG, (100, 106, 94, 100), "stop_loss", 95 * (1 - 1e-4)),
    ("long gap through the stop: the open", LONG, (93, 94, 90, 92), "stop_loss", 93 * (1 - 1e-4)),
    ("long gap through the take-profit: the open", LONG, (107, 108, 106, 107), "take_profit", 107.0),
    ("long no trigger", LONG, (100, 104.9, 95.1, 100), None, None),
    ("short stop touched", SHORT, (100, 106, 99, 104), "stop_loss", 105 * (1 + 1e-4)),
    ("short both touched: the stop counts", SHORT, (100, 106, 94, 100), "stop_loss", 105 * (1 + 1e-4)),
    ("short gap through the take-profit: the open", SHORT, (92, 93, 90, 92), "take_profit", 92.0),
]


@pytest.mark.parametrize(("decision", "bar2", "kind", "price"), [c[1:] for c in INTRABAR], ids=[c[0] for c in INTRABAR])
def test_intrabar_exits_on_constructed_bars(
    decision: Decision, bar2: tuple, kind: str | None, price: float | None
) -> None:
    agent, fills = _run_constructed(bar2, decision)
    entry = fills.iloc[0]
    assert entry["kind"] == "entry"
    assert entry["price"] == 100.0 * (1 + decision.direction * 1e-4)  # filled at bar 1's open
    t2 = pd.Timestamp("2024-01-01 02:00", tz="UTC")
    if kind is None:
        assert len(fills) == 1
        assert TEST in agent.accounts[2].positions
        return
    assert len(fills) == 2
    exit_ = fills.iloc[1]
    assert exit_["kind"] == kind
    assert exit_["timestamp"] == t2  # in the bar that touched the level
    assert exit_["price"] == pytest.approx(price, rel=1e-12)
    assert exit_["side"] == ("sell" if decision.direction > 0 else "buy")
    # an engine-made exit: run id / agent / bar open (epoch ns) / symbol / kind
    assert exit_["order_id"] == f"replay/stopper/{t2.value}/{TEST}/{kind}"
    assert exit_["order_id"] == f"replay/stopper/1704074400000000000/TEST/USDT/{kind}"
    pnl = decision.direction * entry["quantity"] * (exit_["price"] - entry["price"])
    assert exit_["realized_pnl"] == pytest.approx(pnl, rel=1e-12)
    assert exit_["fee"] == pytest.approx(exit_["quantity"] * exit_["price"] * 5e-4, rel=1e-12)
    # the agent deciding at bar 2's close is already flat, and its cash reflects the exit
    seen = agent.accounts[2]
    assert seen.positions == {}
    assert seen.cash == pytest.approx(10_000.0 - entry["fee"] - exit_["fee"] + pnl, rel=1e-12)


def test_liquidation_on_constructed_bars_loses_the_margin_only() -> None:
    decision = Decision(TEST, Action.ENTER_LONG, size=0.5, leverage=5.0)  # no stop
    agent, fills = _run_constructed((100, 101, 70, 75), decision)
    entry, liq = fills.iloc[0], fills.iloc[1]
    assert liq["kind"] == "liquidation"
    assert liq["price"] == pytest.approx(liquidation_price(entry["price"], 1, 5.0, 0.005), rel=1e-12)
    margin = entry["quantity"] * entry["price"] / 5.0
    assert liq["realized_pnl"] == pytest.approx(-margin, rel=1e-12)
    assert liq["fee"] == 0.0
    assert liq["order_id"] == "replay/stopper/1704074400000000000/TEST/USDT/liquidation"
    seen = agent.accounts[2]
    assert seen.positions == {}
    # the bar closed at 75, far below the liquidation price (~80.5): the account still lost only the margin + fee
    assert seen.equity == seen.cash == pytest.approx(10_000.0 - margin - entry["fee"], rel=1e-12)


def test_stop_is_not_checked_on_the_signal_bar_itself() -> None:
    """Filled at bar 1's open: a stop can trigger in bar 1 (the fill bar), never on bar 0 where it was decided."""
    market_rows = [(100.0, 101.0, 90.0, 100.0), (100.0, 101.0, 94.0, 100.0), QUIET, QUIET]
    index = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(market_rows, index=index, columns=["open", "high", "low", "close"])
    frame["volume"] = 1_000.0  # CONSTRUCTED FIXTURE
    market = MarketData.from_frames({TEST: frame}, "1h")
    agent = Scripted("stopper", script={0: [LONG]})
    config = BacktestConfig(symbols=(TEST,), costs=CostModel(fee_bps=5.0, slippage_bps=1.0))
    fills = run_replay([agent], market, config)["stopper"].fills
    assert list(fills["kind"]) == ["entry", "stop_loss"]
    assert list(fills["timestamp"]) == [index[1], index[1]]  # entered at bar 1's open, stopped inside bar 1
