"""Peer cross-checks: Arena's engine against vectorbt and backtesting.py on real BTC/USDT 1h bars.

The same precomputed `SmaCross` target series drives Arena (both the batch kernel and the step loop) and each peer,
and the tests require the same trades at the same times and the same equity. How the conventions are aligned:

- Sizing. Arena enters with ``margin + entry fee = fraction * equity``; at leverage 1 and fraction 1 that is
  ``quantity = equity / (fill_price * (1 + fee_rate))``. vectorbt's ``size=np.inf`` buys with all cash by the same
  formula (``cash / (1 + fees) / adj_price``); a short entry, or a reversal, sizes the new position from the free
  cash after the close, which is the equity Arena sizes from. backtesting.py sizes ``int(fraction * equity //
  (price * (1 + commission)))`` whole units: its default size is ``1 - sys.float_info.epsilon`` (it prints as
  ``.9999`` but is not 0.9999), so Arena's fraction 1.0 is the matching setting, and the only difference left is the
  rounding down to a whole unit (see the tolerance below).
- Timing. Arena decides at bar i's close. With ``fill="close"`` it fills at close[i]; vectorbt does that with
  ``price=close`` and signals on bar i, backtesting.py with ``trade_on_close=True``. With ``fill="next_open"`` Arena
  fills at open[i+1]; vectorbt does that with the signals shifted by one bar and ``price=open``, backtesting.py by
  default (a market order placed in ``next()`` fills at the next bar's open).
- Timestamps. Peers label a fill with the open time of the bar it happens in; Arena stamps fills with the instant they
  happen. A fill at close[i] is therefore at ``label[i] + 1h`` in Arena and a fill at open[i+1] is at ``label[i+1]``
  in both. Arena's equity curve is indexed by bar close times; the peers' by bar open times (compared by position).
- Costs. ``fee = fee_rate * notional`` per side in all three. Slippage: Arena moves the price by ``slippage_bps``
  against the trader on every market fill; vectorbt's ``slippage=`` fraction does exactly that. backtesting.py's
  ``spread`` only adjusts entries (exits fill at the raw price), so it is compared without slippage.
- End of data. Arena marks open positions at the last close and does not close them; vectorbt does the same (its
  last trade stays ``Open``), and backtesting.py does with ``finalize_trades=False``.
- Equity. All three mark to market at the close. One exception is documented and checked to the cent: backtesting.py
  records a bar's equity *before* processing the orders placed at that bar's close, so with ``trade_on_close`` its
  equity on a signal bar still includes the fee that Arena (and vectorbt) have already paid at that close.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.baselines import SmaCross
from arena_lib.core.config import BacktestConfig, CostModel, ExecutionConfig
from arena_lib.data.market import MarketData
from arena_lib.data.sample import load_sample
from arena_lib.engine.kernel import run_batch
from arena_lib.engine.loop import run_replay
from arena_lib.engine.results import BacktestResult

backtesting = pytest.importorskip("backtesting")
from backtesting.lib import FractionalBacktest  # noqa: E402

SYMBOL = "BTC/USDT"
START, END = "2023-01-01", "2024-12-31 23:00"
FEE_BPS = 10.0
CASH = 10_000.0
BAR = pd.Timedelta(hours=1)
# vectorbt runs the same float operations in a different order (e.g. cash / (1 + fee) / price versus
# equity / (1 + fee) / price): observed differences are ~3e-14 relative over ~230 trades, so 1e-9 is a safe, still
# very tight bound. Any convention difference (fee base, slippage side, sizing) shows up at 1e-5 or more.
REL = 1e-9
# Float noise allowed on top of backtesting.py's unit-rounding bound (prices are scaled by the fractional unit).
FP_SLACK = 1e-12


@functools.cache
def _btc() -> pd.DataFrame:
    return load_sample(SYMBOL, "1h", START, END)


@functools.cache
def _market() -> MarketData:
    return MarketData.from_frames({SYMBOL: _btc()}, "1h")


def _config(fill: str, slippage_bps: float) -> BacktestConfig:
    return BacktestConfig(
        symbols=(SYMBOL,),
        costs=CostModel(fee_bps=FEE_BPS, slippage_bps=slippage_bps, impact_coef=0.0),
        execution=ExecutionConfig(fill=fill, initial_cash=CASH),
    )


def _agent(allow_short: bool) -> SmaCross:
    return SmaCross(fast=24, slow=96, allow_short=allow_short, fraction=1.0, leverage=1.0)


@functools.cache
def _target(allow_short: bool) -> np.ndarray:
    """Arena's own target series (NaN = no opinion during the SMA warm-up), the single input every engine gets."""
    target = _agent(allow_short).decide_batch(_market()).target[:, 0].copy()
    target.flags.writeable = False
    return target


@functools.cache
def _arena(path: str, fill: str, slippage_bps: float, allow_short: bool) -> BacktestResult:
    market, config, agent = _market(), _config(fill, slippage_bps), _agent(allow_short)
    if path == "batch":
        return run_batch(agent, market, config)
    return run_replay([agent], market, config)[agent.name]


def _fill_offset(fill: str) -> pd.Timedelta:
    """What to add to a peer's bar label to get Arena's fill timestamp (see the module docstring)."""
    return BAR if fill == "close" else pd.Timedelta(0)


def _open_entry(result: BacktestResult) -> pd.Series | None:
    """The entry fill of the position still open at the end (Arena marks it and does not close it)."""
    fills = result.fills
    if len(fills) and fills["kind"].iloc[-1] == "entry":
        return fills.iloc[-1]
    return None


def _check_arena_sanity(result: BacktestResult) -> None:
    # Enough trades for the comparison to mean something, and only plain entries/exits (no stops, no caps).
    assert len(result.trades) > 100
    assert set(result.fills["kind"]) <= {"entry", "exit"}
    assert (result.fills["note"] == "").all(), "a fill-time risk cap changed a size: the peers would not do that"
    assert result.equity.index[0] == _btc().index[0] + BAR  # Arena's equity is indexed by bar close times


# ---------------------------------------------------------------------------------------------------------------------
# vectorbt
# ---------------------------------------------------------------------------------------------------------------------

VBT_CASES = [
    pytest.param("close", 0.0, False, id="close-long"),
    pytest.param("next_open", 0.0, False, id="next_open-long"),
    pytest.param("next_open", 5.0, False, id="next_open-long-slip5bps"),
    pytest.param("close", 5.0, True, id="close-long_short-slip5bps"),
    pytest.param("next_open", 0.0, True, id="next_open-long_short"),
]


@functools.cache
def _vbt(fill: str, slippage_bps: float, allow_short: bool) -> Any:
    vbt = pytest.importorskip("vectorbt")  # imported here: it costs ~5 s, the backtesting.py tests don't need it
    btc = _btc()
    target = _target(allow_short)
    # NaN compares False everywhere: Arena's "no opinion" is "no signal" for the peer.
    long_entry = target > 0
    flat = target == 0
    short_entry = target < 0
    if fill == "next_open":
        # Arena decides at bar i's close and fills at bar i+1's open: shift the signals one bar, execute at the open.
        long_entry, flat, short_entry = (np.concatenate([[False], s[:-1]]) for s in (long_entry, flat, short_entry))
        price = btc["open"]
    else:
        # Arena decides and fills at bar i's close: same-bar signals, execute at the close.
        price = btc["close"]
    costs = _config(fill, slippage_bps).costs
    common: dict[str, Any] = {
        "price": price,
        "fees": costs.fee_rate,  # Arena's own float: fee_bps * 1e-4
        "slippage": costs.slippage_bps * 1e-4,  # the same expression rules.slippage_fraction uses
        "size": np.inf,  # all cash: quantity = cash / (1 + fee) / fill price, Arena's fraction 1.0 at leverage 1
        "init_cash": CASH,
        "freq": "1h",
    }
    signals = {"entries": pd.Series(long_entry, index=btc.index)}
    if allow_short:
        # A target on the other side reverses the position in one go, as Arena does (close, then enter with the
        # equity left). vectorbt then sizes the short from the free cash after closing the long: the same equity.
        signals["short_entries"] = pd.Series(short_entry, index=btc.index)
        common["upon_opposite_entry"] = "reverse"
    else:
        signals["exits"] = pd.Series(flat, index=btc.index)
        common["direction"] = "longonly"
    return vbt.Portfolio.from_signals(btc["close"], **signals, **common)


# Marked `peers`: importing vectorbt (~5 s) and its first numba compile (8-25 s) make this group take over 20 s.
@pytest.mark.peers
@pytest.mark.parametrize("path", ["batch", "step"])
@pytest.mark.parametrize(("fill", "slippage_bps", "allow_short"), VBT_CASES)
def test_matches_vectorbt(path: str, fill: str, slippage_bps: float, allow_short: bool) -> None:
    arena = _arena(path, fill, slippage_bps, allow_short)
    _check_arena_sanity(arena)
    pf = _vbt(fill, slippage_bps, allow_short)
    peer = pf.trades.records_readable
    closed = peer[peer["Status"] == "Closed"].reset_index(drop=True)
    still_open = peer[peer["Status"] == "Open"]
    trades = arena.trades
    offset = _fill_offset(fill)

    # Same trades, at the same instants, in the same direction, at the same (slipped) prices and sizes.
    assert len(trades) == len(closed)
    assert list(trades["entry_time"]) == list(closed["Entry Timestamp"] + offset)
    assert list(trades["exit_time"]) == list(closed["Exit Timestamp"] + offset)
    assert list(trades["direction"]) == [1 if d == "Long" else -1 for d in closed["Direction"]]
    np.testing.assert_allclose(trades["entry_price"], closed["Avg Entry Price"], rtol=1e-15, atol=0)
    np.testing.assert_allclose(trades["exit_price"], closed["Avg Exit Price"], rtol=1e-15, atol=0)
    np.testing.assert_allclose(trades["quantity"], closed["Size"], rtol=REL, atol=0)
    np.testing.assert_allclose(trades["fees"], closed["Entry Fees"] + closed["Exit Fees"], rtol=REL, atol=0)
    np.testing.assert_allclose(trades["pnl"], closed["PnL"], rtol=1e-6, atol=1e-9 * CASH)

    # The position left open at the end: same entry, marked rather than closed by both.
    entry = _open_entry(arena)
    assert (entry is None) == still_open.empty
    if entry is not None:
        assert entry["timestamp"] == still_open["Entry Timestamp"].iloc[0] + offset
        assert math.isclose(entry["quantity"], still_open["Size"].iloc[0], rel_tol=REL)

    # Equity marked at every close, and the final equity.
    value = pf.value().to_numpy()
    np.testing.assert_allclose(arena.equity.to_numpy(), value, rtol=REL, atol=0)
    assert math.isclose(arena.final_equity, float(value[-1]), rel_tol=REL)


# ---------------------------------------------------------------------------------------------------------------------
# backtesting.py
# ---------------------------------------------------------------------------------------------------------------------


class FollowTarget(backtesting.Strategy):
    """Trades Arena's precomputed target series; in `next()` at bar i it reads target[i] only (no look-ahead)."""

    target: np.ndarray | None = None  # set through Backtest.run(target=...)

    def init(self) -> None:
        pass

    def next(self) -> None:
        assert self.target is not None
        i = len(self.data) - 1  # the bar that is closing now
        t = self.target[i]
        if np.isnan(t):
            return
        held = 0 if not self.position else (1 if self.position.is_long else -1)
        if t == 0.0:
            if held:
                self.position.close()
        elif t > 0 and held <= 0:
            self.buy()  # default size 1 - eps of equity; exclusive_orders closes a short first
        elif t < 0 and held >= 0:
            self.sell()


BT_CASES = [
    pytest.param("close", False, 1e-12, id="close-long"),
    pytest.param("next_open", False, 1e-12, id="next_open-long"),
    pytest.param("close", True, 1e-12, id="close-long_short"),
    pytest.param("next_open", True, 1e-12, id="next_open-long_short"),
    pytest.param("next_open", False, 1e-8, id="next_open-long-satoshi"),
]


@functools.cache
def _backtesting(fill: str, allow_short: bool, unit: float) -> pd.Series:
    data = _btc().rename(columns=str.capitalize)
    bt = FractionalBacktest(
        data,
        FollowTarget,
        cash=CASH,
        commission=_config(fill, 0.0).costs.fee_rate,
        trade_on_close=fill == "close",
        exclusive_orders=True,  # a reversal closes the open trade first, then sizes from the equity left
        finalize_trades=False,  # like Arena: open positions are marked at the end, not closed
        fractional_unit=unit,  # trades whole multiples of `unit` BTC
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open" (on purpose), tqdm
        return bt.run(target=_target(allow_short))


def _rounding_bound(trades: pd.DataFrame, equity: pd.Series, unit: float, fee_rate: float, last_close: float) -> float:
    """Relative final-equity difference that rounding each size down to a whole `unit` can cause.

    A trade sized up to one unit smaller changes the equity by at most ``unit * (|exit - entry| + fee * (entry +
    exit))``; relative to the equity at that time the difference then compounds like the equity itself, so the
    first-order bound is the sum of those relative contributions (plus the position still open at the end).
    """
    times = equity.index
    total = 0.0
    for _, t in trades.iterrows():
        k = min(int(times.searchsorted(t["exit_time"])), len(times) - 1)
        eq = min(float(equity.iloc[max(k - 1, 0)]), float(equity.iloc[k]))
        span = abs(t["exit_price"] - t["entry_price"]) + fee_rate * (t["entry_price"] + t["exit_price"])
        total += unit * span / eq
    return total + unit * (last_close * (1 + fee_rate)) / float(equity.iloc[-1])


@pytest.mark.parametrize("path", ["batch", "step"])
@pytest.mark.parametrize(("fill", "allow_short", "unit"), BT_CASES)
def test_matches_backtesting_py(path: str, fill: str, allow_short: bool, unit: float) -> None:
    arena = _arena(path, fill, 0.0, allow_short)
    _check_arena_sanity(arena)
    if fill == "close":
        # backtesting.py never processes an order placed at the last bar's close; Arena fills it at that close.
        last_close_time = arena.equity.index[-1]
        assert not (arena.fills["timestamp"] == last_close_time).any(), "pick a window with no signal on its last bar"
    stats = _backtesting(fill, allow_short, unit)
    peer = stats["_trades"]  # closed trades only; FractionalBacktest scales Size and prices back to BTC and USDT
    trades = arena.trades
    offset = _fill_offset(fill)
    fee_rate = _config(fill, 0.0).costs.fee_rate
    bound = _rounding_bound(trades, arena.equity, unit, fee_rate, float(_btc()["close"].iloc[-1])) + FP_SLACK
    assert bound < 1e-6  # the tolerance is derived, but it must stay tight to prove anything

    # Same trades at the same instants and prices; sizes differ only by the whole-unit rounding.
    assert len(trades) == len(peer)
    assert list(trades["entry_time"]) == list(peer["EntryTime"] + offset)
    assert list(trades["exit_time"]) == list(peer["ExitTime"] + offset)
    assert list(trades["direction"]) == list(np.sign(peer["Size"]).astype(int))
    np.testing.assert_allclose(trades["entry_price"], peer["EntryPrice"], rtol=1e-14, atol=0)
    np.testing.assert_allclose(trades["exit_price"], peer["ExitPrice"], rtol=1e-14, atol=0)
    size_gap = (trades["quantity"] - peer["Size"].abs()).abs()
    assert (size_gap <= unit * (1 + 1e-6) + bound * trades["quantity"]).all(), size_gap.max()

    # The position left open at the end (backtesting.py keeps it in the strategy's active trades, in units).
    entry = _open_entry(arena)
    active = stats["_strategy"].trades
    assert (entry is None) == (len(active) == 0)
    if entry is not None:
        (trade,) = active
        assert entry["timestamp"] == trade.entry_time + offset
        assert abs(entry["quantity"] - abs(trade.size) * unit) <= unit * (1 + 1e-6) + bound * entry["quantity"]

    # Equity at every close. With trade_on_close, backtesting.py logs a bar's equity before filling the orders placed
    # at that close, so on those bars it still includes the fees Arena has just paid (checked, not hidden).
    peer_equity = stats["_equity_curve"]["Equity"].to_numpy()
    expected = arena.equity.to_numpy().copy()
    if fill == "close":
        bars = arena.equity.index.searchsorted(arena.fills["timestamp"])
        np.add.at(expected, bars, arena.fills["fee"].to_numpy(dtype=float))
    np.testing.assert_allclose(peer_equity, expected, rtol=bound, atol=0)
    assert math.isclose(arena.final_equity, float(peer_equity[-1]), rel_tol=bound)
