"""Timeframe arithmetic and point-in-time resampling of OHLCV bars to higher timeframes.

Why this module exists: a snapshot at time t may only hold what was known at t. A 4h or daily bar is known only
once its last hour has *closed*, so multi-timeframe features must be built from closed source bars, and a bucket
that is still forming must never appear. ``resample_ohlcv`` enforces that with an explicit ``as_of`` cut-off.

Buckets are aligned to the UTC epoch (00:00, 04:00, ... for 4h; midnight for 1d), the way Binance and most
exchanges align their candles; weekly buckets open on Monday 00:00 UTC, as Binance's ``1w`` candles do. A bucket is
labelled with its open time, like every bar in this project.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd

from arena_lib.data.errors import DataError

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

_TIMEFRAME_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_NS = {
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
    "d": 86_400 * 1_000_000_000,
    "w": 7 * 86_400 * 1_000_000_000,
}
# 1970-01-01 was a Thursday; weekly candles open on Monday, 1970-01-05.
_WEEK_ORIGIN_NS = 4 * 86_400 * 1_000_000_000

TimeLike = pd.Timestamp | datetime | str | int | np.integer


def timeframe_to_ns(timeframe: str) -> int:
    """Duration of one bar in nanoseconds; raises ``ValueError`` for a timeframe without a fixed length."""
    match = _TIMEFRAME_RE.match(timeframe)
    if match is None or int(match.group(1)) <= 0:
        hint = " (months have no fixed length; use 1d bars)" if timeframe.endswith("M") else ""
        raise ValueError(
            f"unsupported timeframe {timeframe!r}{hint}; expected a positive count and one of s, m, h, d, w "
            "like '1m', '15m', '1h', '4h', '1d', '1w'"
        )
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """Duration of one bar as a ``pd.Timedelta`` (``'1h'`` -> 1 hour), e.g. to turn a bar open time into its close."""
    return pd.Timedelta(timeframe_to_ns(timeframe), unit="ns")


def timeframe_origin_ns(timeframe: str) -> int:
    """Epoch offset (ns) that bar boundaries of this timeframe are aligned to: 0, or Monday for weekly bars."""
    return _WEEK_ORIGIN_NS if timeframe.endswith("w") else 0


def ns_to_timeframe(step_ns: int) -> str:
    """The canonical timeframe string for a bar spacing in nanoseconds (3_600e9 -> ``'1h'``, 7 days -> ``'1w'``)."""
    if step_ns <= 0:
        raise ValueError(f"bar spacing must be positive, got {step_ns} ns")
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_NS[unit]
        if step_ns % size == 0 and (unit != "w" or step_ns == size):
            return f"{step_ns // size}{unit}"
    raise ValueError(f"bar spacing of {step_ns} ns is not a whole number of seconds")


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """Guess the timeframe from the median positive spacing of the index; ``None`` when it cannot be told.

    The median is robust to the occasional gap or duplicate, which is exactly when a guess is needed.
    """
    if len(index) < 2:
        return None
    diffs = np.diff(index.as_unit("ns").asi8)
    positive = diffs[diffs > 0]
    if positive.size == 0:
        return None
    step = int(np.median(positive))
    try:
        return ns_to_timeframe(step)
    except ValueError:
        return None


def to_utc_timestamp(value: TimeLike, name: str = "time") -> pd.Timestamp:
    """Turn a user-supplied time into a tz-aware UTC ``Timestamp``; naive times are read as UTC.

    Integers are epoch milliseconds (the exchange convention).
    """
    try:
        ts = pd.Timestamp(int(value), unit="ms") if isinstance(value, (int, np.integer)) else pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={value!r} is not a valid timestamp") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name}={value!r} is not a valid timestamp")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def resample_ohlcv(
    df: pd.DataFrame,
    target_tf: str,
    as_of: TimeLike | None = None,
    source_tf: str | None = None,
) -> pd.DataFrame:
    """Build ``target_tf`` bars from *closed* ``source_tf`` bars, as known at ``as_of``.

    A bucket is emitted only when its close time (open + target duration) is at or before ``as_of``; with
    ``as_of=None`` the cut-off is the close time of the last source bar. Buckets that lost some source bars to a
    data gap are still emitted from the bars that exist (gaps are never filled), and a bucket with no source bar
    never appears. Aggregation: open=first, high=max, low=min, close=last, volume=sum.

    ``source_tf`` is inferred from the median bar spacing when not given. The input must be sorted with unique
    timestamps (run the quality checks first); it is not re-sorted silently.
    """
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"cannot resample: missing columns {missing}; expected {list(OHLCV_COLUMNS)}")
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
        raise DataError("cannot resample: the index must be a tz-aware UTC DatetimeIndex of bar open times")
    index = df.index.tz_convert("UTC").as_unit("ns")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise DataError("cannot resample: timestamps must be sorted and unique (see check_ohlcv)")

    target_ns = timeframe_to_ns(target_tf)
    if source_tf is None:
        source_tf = infer_timeframe(index)
        if source_tf is None:
            raise DataError("cannot infer the source timeframe from fewer than two bars; pass source_tf")
    source_ns = timeframe_to_ns(source_tf)
    if target_ns < source_ns or target_ns % source_ns != 0:
        raise ValueError(f"cannot resample {source_tf} bars to {target_tf}: target must be a whole multiple")

    if as_of is None:
        cutoff_ns = int(index.asi8[-1]) + source_ns if len(index) else 0
    else:
        cutoff_ns = int(to_utc_timestamp(as_of, "as_of").as_unit("ns").value)

    stamps = index.asi8
    # Only source bars closed by the cut-off are known; later bars are invisible to this call.
    known = stamps + source_ns <= cutoff_ns
    stamps = stamps[known]
    origin = timeframe_origin_ns(target_tf)
    keys = (stamps - origin) // target_ns
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], dtype=np.int64)
    bucket_open = keys[starts] * target_ns + origin
    closed = bucket_open + target_ns <= cutoff_ns
    ends = np.r_[starts[1:], len(keys)]

    values = {c: df[c].to_numpy(dtype=np.float64)[known] for c in OHLCV_COLUMNS}
    out: dict[str, np.ndarray] = {}
    if len(starts):
        out["open"] = values["open"][starts]
        out["high"] = np.maximum.reduceat(values["high"], starts)
        out["low"] = np.minimum.reduceat(values["low"], starts)
        out["close"] = values["close"][ends - 1]
        out["volume"] = np.add.reduceat(values["volume"], starts)
    else:
        out = {c: np.array([], dtype=np.float64) for c in OHLCV_COLUMNS}
    result_index = pd.DatetimeIndex(bucket_open[closed].astype("datetime64[ns]"), name="timestamp").tz_localize("UTC")
    return pd.DataFrame({c: out[c][closed] for c in OHLCV_COLUMNS}, index=result_index)
