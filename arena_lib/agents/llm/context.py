"""The per-coin market context an LLM agent's prompt shows: nof1's indicator set on closed bars, point in time.

Why this module exists apart from the templates (`arena_lib.agents.llm.prompt`): the numbers a prompt shows are
also what an exit plan's invalidation condition is checked against (`CoinContext.fields`, `CONDITION_FIELDS`), so
they are computed once here and rendered there; a new template version never changes how a number is computed.

The layout follows nof1's Alpha Arena prompts: per coin the current price, EMA20, MACD, RSI7/RSI14, funding, the
intraday series (oldest to newest) and a 4-hour context.

Point in time: `coin_context` reads the snapshot's bars only up to its last closed bar (`bar_count`), and its
settled funding; the 4-hour bars are aggregated from closed base bars and a 4-hour bucket appears only once all of
its bars have closed, exactly as `MarketSnapshot.resampled` builds them. The indicators run on fixed-length windows
that end at the current bar, so a prompt never depends on data after it, nor on how far the loaded history extends.

Speed: cached LLM rounds replay at hundreds of decisions per second, and the cache key is the prompt itself, so a
coin's context is built from small numpy windows with TA-Lib, never through pandas: about 0.2 ms per coin measured
here, a third of it in `MarketSnapshot.funding_rate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from arena_lib.agents.llm.schema import coin_name
from arena_lib.data.resample import timeframe_origin_ns, timeframe_to_ns
from arena_lib.features import core

if TYPE_CHECKING:
    from arena_lib.data.snapshot import MarketSnapshot

__all__ = [
    "CONDITION_FIELDS",
    "HIGHER_TIMEFRAME",
    "CoinContext",
    "coin_context",
    "min_history",
]

HIGHER_TIMEFRAME = "4h"  # the "longer-term context" timeframe of the nof1 layout
_EMA_FAST, _EMA_SLOW = 20, 50
_RSI_FAST, _RSI_SLOW = 7, 14
_MACD = (12, 26, 9)
_ATR_FAST, _ATR_SLOW = 3, 14
_VOLUME_AVG = 20

# The values an invalidation condition may name; `CoinContext.fields()` returns exactly these keys.
CONDITION_FIELDS: Mapping[str, str] = {
    "price": "latest close (current price)",
    "ema20": "20-period EMA of the closes",
    "ema50": "50-period EMA of the closes",
    "macd": "MACD line (EMA12 - EMA26)",
    "macd_signal": "MACD signal line (9-period EMA of the MACD line)",
    "rsi7": "7-period RSI (Wilder)",
    "rsi14": "14-period RSI (Wilder)",
    "atr14": "14-period ATR (Wilder)",
    "volume": "volume of the latest bar",
    "close_4h": "close of the latest closed 4h bar",
    "ema20_4h": "20-period EMA of the 4h closes",
    "ema50_4h": "50-period EMA of the 4h closes",
    "atr3_4h": "3-period ATR of the 4h bars",
    "atr14_4h": "14-period ATR of the 4h bars",
    "rsi14_4h": "14-period RSI of the 4h closes",
    "macd_4h": "MACD line of the 4h closes",
    "funding_rate": "latest settled funding rate",
}


def min_history(series_len: int = 10) -> int:
    """Closed base bars a coin needs before every intraday value and series of its context is defined."""
    _, slow, signal = _MACD
    return max(
        _EMA_SLOW,  # ema50
        slow + signal - 1,  # macd signal
        slow - 1 + series_len,  # macd series
        _EMA_FAST - 1 + series_len,  # ema20 series
        _RSI_SLOW + series_len,  # rsi14 series
        _ATR_SLOW + 1,  # atr14
    )


@dataclass(frozen=True, slots=True)
class CoinContext:
    """What the prompt shows about one coin at one snapshot; every series is ordered oldest -> newest.

    Values that cannot be computed yet (a 4h indicator with too few closed 4h bars) are NaN; the prompt shows
    them as "n/a". `open_interest` is None because the bundled data has none: the prompt says so rather than
    inventing a number.
    """

    symbol: str
    coin: str
    timeframe: str
    price: float
    ema20: float
    ema50: float
    macd: float
    macd_signal: float
    rsi7: float
    rsi14: float
    atr14: float
    volume: float
    closes: tuple[float, ...]
    ema20_series: tuple[float, ...]
    macd_series: tuple[float, ...]
    rsi7_series: tuple[float, ...]
    rsi14_series: tuple[float, ...]
    close_4h: float
    ema20_4h: float
    ema50_4h: float
    atr3_4h: float
    atr14_4h: float
    rsi14_4h: float
    macd_4h: float
    volume_4h: float
    volume_avg_4h: float
    macd_4h_series: tuple[float, ...]
    rsi14_4h_series: tuple[float, ...]
    bars_4h: int  # closed 4h bars the 4h indicators were computed on
    funding_rate: float | None
    open_interest: float | None = None

    def fields(self) -> dict[str, float]:
        """The values an invalidation condition may use (keys = `CONDITION_FIELDS`), NaN where unavailable."""
        return {
            "price": self.price,
            "ema20": self.ema20,
            "ema50": self.ema50,
            "macd": self.macd,
            "macd_signal": self.macd_signal,
            "rsi7": self.rsi7,
            "rsi14": self.rsi14,
            "atr14": self.atr14,
            "volume": self.volume,
            "close_4h": self.close_4h,
            "ema20_4h": self.ema20_4h,
            "ema50_4h": self.ema50_4h,
            "atr3_4h": self.atr3_4h,
            "atr14_4h": self.atr14_4h,
            "rsi14_4h": self.rsi14_4h,
            "macd_4h": self.macd_4h,
            "funding_rate": math.nan if self.funding_rate is None else self.funding_rate,
        }

    @property
    def complete_4h(self) -> bool:
        """True when every 4h value is defined (False early in a history, when the prompt shows n/a)."""
        values = (self.close_4h, self.ema20_4h, self.ema50_4h, self.atr3_4h, self.atr14_4h, self.rsi14_4h)
        return all(math.isfinite(v) for v in (*values, self.macd_4h, self.volume_avg_4h))


def _last(arr: np.ndarray) -> float:
    return float(arr[-1]) if len(arr) else math.nan


def _tail(arr: np.ndarray, n: int) -> tuple[float, ...]:
    """The last `n` values, oldest first, without the warm-up NaNs (which only ever lead)."""
    tail = arr[-n:]
    return tuple(tail[~np.isnan(tail)].tolist())


def _closed_buckets(
    times: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    start: int,
    end: int,
    target_ns: int,
    origin_ns: int,
    cutoff_ns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """High, low, close and volume of the higher-timeframe buckets of bars ``start:end`` that closed by the cut-off.

    The same aggregation as `arena_lib.data.resample.resample_ohlcv` (epoch-aligned buckets, gaps never filled),
    on array windows. A first bucket cut by the window start is dropped, so every bucket is aggregated from all of
    its bars, as it would be from the full history.
    """
    keys = (times[start:end] - origin_ns) // target_ns
    skip = 0
    if start > 0 and len(keys) and (times[start - 1] - origin_ns) // target_ns == keys[0]:
        skip = int(np.searchsorted(keys, keys[0], side="right"))
    keys = keys[skip:]
    first = start + skip
    if len(keys) == 0:
        empty = np.empty(0)
        return empty, empty, empty, empty
    starts = np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))
    stop = len(keys)
    if (keys[-1] + 1) * target_ns + origin_ns > cutoff_ns:  # the newest bucket is still forming: not known yet
        stop, starts = int(starts[-1]), starts[:-1]
    if len(starts) == 0:
        empty = np.empty(0)
        return empty, empty, empty, empty
    known = slice(first, first + stop)
    h, lo, c, v = high[known], low[known], close[known], volume[known]
    ends = np.append(starts[1:], stop)
    return np.maximum.reduceat(h, starts), np.minimum.reduceat(lo, starts), c[ends - 1], np.add.reduceat(v, starts)


def coin_context(
    snapshot: MarketSnapshot, symbol: str, series_len: int = 10, lookback: int = 200
) -> CoinContext | None:
    """The prompt context of `symbol` at `snapshot`, or None when it has no bar now or too little history.

    `lookback` is the number of bars of each timeframe (base and 4h) the indicators run on; with TA-Lib's
    SMA-seeded EMA and Wilder smoothing, the values depend on that window, which always ends at the current bar.
    """
    if series_len < 1:
        raise ValueError(f"series_len must be >= 1, got {series_len}")
    need = min_history(series_len)
    if lookback < need:
        raise ValueError(f"lookback must be >= {need} bars for series_len={series_len}, got {lookback}")
    base_ns = snapshot.bar_ns
    target_ns = timeframe_to_ns(HIGHER_TIMEFRAME)
    if target_ns % base_ns:
        raise ValueError(
            f"the {HIGHER_TIMEFRAME} context needs a base timeframe that divides it; got {snapshot.timeframe}"
        )
    end = snapshot.bar_count(symbol)  # raises KeyError for an unknown symbol
    if end < need or not snapshot.has_bar(symbol):
        return None
    # One read of the bars both timeframes need, plus the bar before them (it tells a cut first 4h bucket).
    span4 = min(end, lookback * (target_ns // base_ns))
    take = min(end, max(span4, lookback) + 1)
    w = snapshot.window(symbol, take)
    times = snapshot.times(symbol, take)
    n = len(times)
    base = n - min(end, lookback)
    high, low, close = w["high"][base:], w["low"][base:], w["close"][base:]
    ema20, ema50 = core.ema(close, _EMA_FAST), core.ema(close, _EMA_SLOW)
    macd, macd_signal, _ = core.macd(close, *_MACD)
    rsi7, rsi14 = core.rsi(close, _RSI_FAST), core.rsi(close, _RSI_SLOW)
    atr14 = core.atr(high, low, close, _ATR_SLOW)

    h4, l4, c4, v4 = _closed_buckets(
        times, w["high"], w["low"], w["close"], w["volume"], n - span4, n, target_ns,
        timeframe_origin_ns(HIGHER_TIMEFRAME), snapshot.timestamp_ns,
    )  # fmt: skip
    if len(c4):
        ema20_4h, ema50_4h = core.ema(c4, _EMA_FAST), core.ema(c4, _EMA_SLOW)
        macd_4h = core.macd(c4, *_MACD)[0]
        rsi14_4h = core.rsi(c4, _RSI_SLOW)
        atr3_4h, atr14_4h = core.atr(h4, l4, c4, _ATR_FAST), core.atr(h4, l4, c4, _ATR_SLOW)
        volume_avg_4h = core.sma(v4, _VOLUME_AVG)
    else:
        ema20_4h = ema50_4h = macd_4h = rsi14_4h = atr3_4h = atr14_4h = volume_avg_4h = c4
    funding = snapshot.funding_rate(symbol)
    return CoinContext(
        symbol=symbol,
        coin=coin_name(symbol),
        timeframe=snapshot.timeframe,
        price=float(close[-1]),
        ema20=float(ema20[-1]),
        ema50=float(ema50[-1]),
        macd=float(macd[-1]),
        macd_signal=float(macd_signal[-1]),
        rsi7=float(rsi7[-1]),
        rsi14=float(rsi14[-1]),
        atr14=float(atr14[-1]),
        volume=float(w["volume"][-1]),
        closes=tuple(close[-series_len:].tolist()),
        ema20_series=_tail(ema20, series_len),
        macd_series=_tail(macd, series_len),
        rsi7_series=_tail(rsi7, series_len),
        rsi14_series=_tail(rsi14, series_len),
        close_4h=_last(c4),
        ema20_4h=_last(ema20_4h),
        ema50_4h=_last(ema50_4h),
        atr3_4h=_last(atr3_4h),
        atr14_4h=_last(atr14_4h),
        rsi14_4h=_last(rsi14_4h),
        macd_4h=_last(macd_4h),
        volume_4h=_last(v4),
        volume_avg_4h=_last(volume_avg_4h),
        macd_4h_series=_tail(macd_4h, series_len),
        rsi14_4h_series=_tail(rsi14_4h, series_len),
        bars_4h=len(c4),
        funding_rate=None if math.isnan(funding) else funding,
    )
