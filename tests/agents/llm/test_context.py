"""The per-coin context a prompt shows: point in time, the indicator values, the condition vocabulary, and speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.llm.context import CONDITION_FIELDS, CoinContext, coin_context, min_history
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.features import core
from tests.agents.llm.conftest import SYMBOLS

FIELD_NAMES = [
    "price", "ema20", "ema50", "macd", "macd_signal", "rsi7", "rsi14", "atr14", "volume",
    "close_4h", "ema20_4h", "ema50_4h", "atr3_4h", "atr14_4h", "rsi14_4h", "macd_4h", "funding_rate",
]  # fmt: skip


def test_series_are_oldest_to_newest(market: MarketData) -> None:
    snap = MarketSnapshot(market, 150)
    ctx = coin_context(snap, "BTC/USDT")
    assert ctx is not None
    assert ctx.closes == tuple(snap.closes("BTC/USDT", 10).tolist())
    assert ctx.closes[-1] == ctx.price == snap.close("BTC/USDT")
    assert ctx.coin == "BTC"
    assert ctx.volume == snap.bar("BTC/USDT").volume


@pytest.mark.parametrize("i", [60, 150, 216])
def test_intraday_values_are_core_indicators_on_the_window(market: MarketData, i: int) -> None:
    snap = MarketSnapshot(market, i)
    ctx = coin_context(snap, "ETH/USDT", series_len=10, lookback=120)
    assert ctx is not None
    w = snap.window("ETH/USDT", 120)
    c = w["close"]
    line, signal, _ = core.macd(c)
    assert ctx.ema20 == core.ema(c, 20)[-1]
    assert ctx.ema50 == core.ema(c, 50)[-1]
    assert ctx.macd == line[-1]
    assert ctx.macd_signal == signal[-1]
    assert ctx.rsi7 == core.rsi(c, 7)[-1]
    assert ctx.rsi14 == core.rsi(c, 14)[-1]
    assert ctx.atr14 == core.atr(w["high"], w["low"], c, 14)[-1]
    assert ctx.ema20_series == tuple(core.ema(c, 20)[-10:].tolist())
    assert ctx.macd_series == tuple(line[-10:].tolist())
    assert ctx.rsi7_series == tuple(core.rsi(c, 7)[-10:].tolist())
    assert ctx.rsi14_series == tuple(core.rsi(c, 14)[-10:].tolist())
    assert ctx.funding_rate == snap.funding_rate("ETH/USDT")


@pytest.mark.parametrize(("i", "lookback"), [(57, 200), (150, 60), (201, 50), (214, 50), (216, 200)])
def test_4h_values_come_from_closed_4h_bars(market: MarketData, i: int, lookback: int) -> None:
    """Equal to the core indicators on `MarketSnapshot.resampled` (closed buckets only), whatever the window cut."""
    snap = MarketSnapshot(market, i)
    ctx = coin_context(snap, "BTC/USDT", lookback=lookback)
    assert ctx is not None
    four = snap.resampled("BTC/USDT", "4h")
    assert (four.index + pd.Timedelta("4h") <= snap.timestamp).all()
    four = four.iloc[-ctx.bars_4h :]
    assert min(len(snap.resampled("BTC/USDT", "4h")), lookback - 1) <= ctx.bars_4h <= lookback
    h, lo, c, v = (four[k].to_numpy() for k in ("high", "low", "close", "volume"))
    np.testing.assert_array_equal([ctx.close_4h, ctx.volume_4h, ctx.volume_avg_4h], [c[-1], v[-1], core.sma(v, 20)[-1]])
    np.testing.assert_array_equal(
        [ctx.ema20_4h, ctx.ema50_4h, ctx.rsi14_4h, ctx.macd_4h],
        [core.ema(c, 20)[-1], core.ema(c, 50)[-1], core.rsi(c, 14)[-1], core.macd(c)[0][-1]],
    )
    np.testing.assert_array_equal([ctx.atr3_4h, ctx.atr14_4h], [core.atr(h, lo, c, 3)[-1], core.atr(h, lo, c, 14)[-1]])
    rsi = core.rsi(c, 14)[-10:]
    assert ctx.rsi14_4h_series == tuple(rsi[~np.isnan(rsi)].tolist())


def test_forming_4h_bucket_is_invisible(market: MarketData) -> None:
    # Bar row 57 closes at 10:00 on 2024-03-03: the 08:00-12:00 bucket is still forming.
    snap = MarketSnapshot(market, 57)
    assert snap.timestamp.hour % 4 != 0
    ctx = coin_context(snap, "BTC/USDT")
    assert ctx is not None
    bucket_close = snap.ohlcv("BTC/USDT").loc[: snap.timestamp.floor("4h") - pd.Timedelta("1h"), "close"].iloc[-1]
    assert ctx.close_4h == bucket_close
    assert ctx.close_4h != ctx.price
    assert not ctx.complete_4h  # 14 closed 4h bars: no EMA50 yet
    assert math.isnan(ctx.ema50_4h)
    assert math.isfinite(ctx.atr3_4h)


def test_fields_are_the_condition_vocabulary(market: MarketData) -> None:
    ctx = coin_context(MarketSnapshot(market, 216), "BTC/USDT")
    assert ctx is not None
    values = ctx.fields()
    assert list(values) == FIELD_NAMES == list(CONDITION_FIELDS)
    assert all(math.isfinite(v) for v in values.values())
    assert values["close_4h"] == ctx.close_4h
    assert values["funding_rate"] == ctx.funding_rate


def test_no_funding_data_reads_none_and_nan() -> None:
    sol = load_market(["SOL/USDT"], "1h", "2024-03-01", "2024-03-05")
    ctx = coin_context(MarketSnapshot(sol, sol.n_bars - 1), "SOL/USDT")
    assert ctx is not None
    assert ctx.funding_rate is None
    assert ctx.open_interest is None
    assert math.isnan(ctx.fields()["funding_rate"])


def test_too_little_history_gives_none(market: MarketData) -> None:
    need = min_history(10)
    assert coin_context(MarketSnapshot(market, need - 2), "BTC/USDT") is None
    assert coin_context(MarketSnapshot(market, need - 1), "BTC/USDT") is not None
    with pytest.raises(KeyError, match="unknown symbol"):
        coin_context(MarketSnapshot(market, 100), "DOGE/USDT")
    with pytest.raises(ValueError, match="lookback"):
        coin_context(MarketSnapshot(market, 100), "BTC/USDT", lookback=20)


def test_base_timeframe_must_divide_4h() -> None:
    daily = load_market(["BTC/USDT"], "1d", "2023-01-01", "2023-12-31")
    with pytest.raises(ValueError, match="needs a base timeframe that divides it; got 1d"):
        coin_context(MarketSnapshot(daily, daily.n_bars - 1), "BTC/USDT")


def test_coin_context_is_fast(market: MarketData) -> None:
    """The arena replays cached rounds at hundreds per second: a coin's context must cost well under 1 ms."""
    snaps = [MarketSnapshot(market, i) for i in range(150, 216)]
    coin_context(snaps[0], "BTC/USDT")
    runs = []
    for _ in range(5):  # best of five: the test machine is shared, and one busy moment is not the code's cost
        t0 = time.perf_counter()
        for snap in snaps:
            for sym in SYMBOLS:
                coin_context(snap, sym)
        runs.append((time.perf_counter() - t0) / (len(snaps) * len(SYMBOLS)))
    assert min(runs) < 1e-3, f"{min(runs) * 1e6:.0f} us per coin"  # ~0.2 ms measured here


def test_coin_context_is_frozen(market: MarketData) -> None:
    ctx = coin_context(MarketSnapshot(market, 100), "BTC/USDT")
    assert isinstance(ctx, CoinContext)
    with pytest.raises(AttributeError):
        ctx.price = 1.0  # type: ignore[misc]
