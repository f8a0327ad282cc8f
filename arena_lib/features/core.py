"""Core indicator primitives: float64 arrays in, arrays of the same length out, NaN during warm-up.

Why this module exists: an "EMA 20" or "RSI 14" must be the same number in an LLM prompt, in a rule agent and in
the feature registry, or comparisons between agents are meaningless. These few functions fix one convention each
and everything else builds on them.

Conventions (the classic ones, which TA-Lib implements and most charting tools show):

* ``sma(x, n)``: the plain mean of the last ``n`` values. The first ``n - 1`` outputs are NaN.
* ``ema(x, span)``: ``alpha = 2 / (span + 1)``, **seeded with the SMA of the first ``span`` values** (at index
  ``span - 1``), then ``e[t] = alpha * x[t] + (1 - alpha) * e[t - 1]``. The first ``span - 1`` outputs are NaN. This
  differs from pandas' ``ewm(adjust=False)``, which seeds with ``x[0]``.
* ``rsi(close, n)``: Wilder's RSI. Gains and losses of the ``n`` first changes are averaged (simple mean), then
  smoothed with Wilder's recursion ``a[t] = (a[t - 1] * (n - 1) + g[t]) / n`` (an EMA with ``alpha = 1 / n``).
  The first ``n`` outputs are NaN (``n`` changes need ``n + 1`` closes). A window with no losses reads 100, one
  with no gains 0 (and a flat one 0, as TA-Lib).
* ``macd(close, fast, slow, signal)``: ``ema(close, fast) - ema(close, slow)`` with the EMA above; the signal line
  is the same EMA of the MACD line, seeded with the SMA of its first ``signal`` values. The MACD line is NaN for
  the first ``slow - 1`` bars, the signal and histogram for the first ``slow + signal - 2``. (TA-Lib's own
  ``MACD`` seeds the fast EMA later, at the slow EMA's first bar, so its MACD line is not ``ema(12) - ema(26)``;
  that is why it is composed from ``EMA`` here.)
* ``true_range(high, low, close)``: ``max(high - low, |high - prev_close|, |low - prev_close|)``; the first bar has
  no previous close, so it is NaN (as TA-Lib's ``TRANGE``).
* ``atr(high, low, close, n)``: Wilder's ATR: the first value (index ``n``) is the mean of the true ranges of bars
  ``1..n``, then ``(atr[t - 1] * (n - 1) + tr[t]) / n``. The first ``n`` outputs are NaN.

Every output at ``t`` depends only on inputs at or before ``t`` (no look-ahead), so computing on ``x[: t + 1]``
gives the same value at ``t`` as computing on the whole array. The recursive ones (EMA, RSI, ATR) still depend on
where the input *starts*: feed the same window to get the same number.

Leading NaNs are skipped, as TA-Lib does (the indicator starts at the first valid value); a NaN inside the data
propagates through every later value of a recursive indicator, so clean the data first (see ``arena_lib.data``).
"""

from __future__ import annotations

import operator

import numpy as np
import numpy.typing as npt
import talib

FloatArray = npt.NDArray[np.float64]

# `talib.EMA` and friends are wrapped (functools.wraps) to accept pandas and polars Series; these functions always
# pass contiguous float64 arrays, so they call the compiled functions directly and skip ~3 us of dispatch per call,
# which matters when a prompt needs a dozen indicators per coin per round.
_SMA = getattr(talib.SMA, "__wrapped__", talib.SMA)
_EMA = getattr(talib.EMA, "__wrapped__", talib.EMA)
_RSI = getattr(talib.RSI, "__wrapped__", talib.RSI)
_TRANGE = getattr(talib.TRANGE, "__wrapped__", talib.TRANGE)
_ATR = getattr(talib.ATR, "__wrapped__", talib.ATR)

__all__ = ["FloatArray", "atr", "ema", "macd", "rsi", "sma", "true_range"]


def _series(x: npt.ArrayLike, name: str) -> FloatArray:
    """A contiguous 1-D float64 array (TA-Lib's C code needs exactly that), or a clear error."""
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _period(n: int, name: str, minimum: int = 1) -> int:
    """A validated integer window length."""
    try:
        value = operator.index(n)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {n!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _hlc(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> tuple[FloatArray, ...]:
    h, lo, c = _series(high, "high"), _series(low, "low"), _series(close, "close")
    if not len(h) == len(lo) == len(c):
        raise ValueError(f"high, low and close must have the same length, got {len(h)}, {len(lo)}, {len(c)}")
    return h, lo, c


def _identity(x: FloatArray) -> FloatArray:
    """A one-bar SMA or EMA is the series itself (TA-Lib rejects period 1, so answer it here)."""
    return x.copy()


def sma(x: npt.ArrayLike, n: int) -> FloatArray:
    """Simple moving average over ``n`` values; the first ``n - 1`` outputs are NaN."""
    arr, n = _series(x, "x"), _period(n, "n")
    if n == 1:
        return _identity(arr)
    out: FloatArray = _SMA(arr, timeperiod=n)
    return out


def ema(x: npt.ArrayLike, span: int) -> FloatArray:
    """Exponential moving average, ``alpha = 2 / (span + 1)``, seeded with the SMA of the first ``span`` values."""
    arr, span = _series(x, "x"), _period(span, "span")
    if span == 1:
        return _identity(arr)
    out: FloatArray = _EMA(arr, timeperiod=span)
    return out


def rsi(close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's relative strength index (0-100); the first ``n`` outputs are NaN."""
    arr, n = _series(close, "close"), _period(n, "n", minimum=2)
    out: FloatArray = _RSI(arr, timeperiod=n)
    return out


def macd(
    close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(macd, signal, hist)``: ``ema(fast) - ema(slow)``, its ``signal``-EMA, and their difference.

    The MACD line is NaN for the first ``slow - 1`` bars; signal and histogram for the first ``slow + signal - 2``.
    """
    arr = _series(close, "close")
    fast, slow, signal = _period(fast, "fast"), _period(slow, "slow"), _period(signal, "signal")
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
    line = ema(arr, fast) - ema(arr, slow)
    sig = ema(line, signal)  # leading NaNs are skipped: seeded with the SMA of the first `signal` MACD values
    return line, sig, line - sig


def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """``max(high - low, |high - prev_close|, |low - prev_close|)``; NaN on the first bar (no previous close)."""
    h, lo, c = _hlc(high, low, close)
    out: FloatArray = _TRANGE(h, lo, c)
    return out


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's average true range; the first ``n`` outputs are NaN (bar 0 has no true range)."""
    h, lo, c = _hlc(high, low, close)
    n = _period(n, "n")
    out: FloatArray = _ATR(h, lo, c, timeperiod=n)
    return out
