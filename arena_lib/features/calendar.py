"""Calendar features: time of day, day of week, month, trading sessions and the funding clock.

Why: crypto trades around the clock but not uniformly. Volume and volatility follow the Asian, European and US
sessions, weekends are thinner, and perpetual funding settles at 00:00, 08:00 and 16:00 UTC. These are known in
advance, so they can never leak the future; they use no bars before the current one (lookback 0).

Cyclical quantities enter as sine/cosine pairs so that 23:00 sits next to 00:00 and Sunday next to Monday.
Everything refers to the bar's **open time** in UTC (the index), except ``hours_to_funding``, which counts from
the bar's close (the moment a decision is taken). Session flags are fixed UTC hours (no daylight-saving shift).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from arena_lib.data.resample import timeframe_to_ns
from arena_lib.features.registry import FeatureInput, FloatArray, register

SESSIONS: dict[str, tuple[int, int]] = {"asia": (0, 8), "europe": (7, 16), "us": (13, 21)}
"""UTC hours [start, end) of each session: Tokyo/Hong Kong/Singapore, London/Frankfurt, New York (approximate)."""
FUNDING_EVERY_H = 8


def _utc(inp: FeatureInput) -> pd.DatetimeIndex:
    result: pd.DatetimeIndex = inp.cached("utc_index", lambda: inp.index.tz_convert("UTC"))
    return result


def _cyclical(inp: FeatureInput, unit: str, fn: str) -> FloatArray:
    idx = _utc(inp)
    if unit == "hour":
        phase = (idx.hour.to_numpy() + idx.minute.to_numpy() / 60.0) / 24.0
    elif unit == "dow":
        phase = (idx.day_of_week.to_numpy() + idx.hour.to_numpy() / 24.0) / 7.0
    else:  # month: position in the year by day
        phase = (idx.day_of_year.to_numpy() - 1) / 365.25
    angle = 2.0 * np.pi * phase
    return np.sin(angle) if fn == "sin" else np.cos(angle)


def _is_weekend(inp: FeatureInput) -> FloatArray:
    return (_utc(inp).day_of_week.to_numpy() >= 5).astype(np.float64)


def _is_month_end(inp: FeatureInput) -> FloatArray:
    """1 on the last calendar day of the month (UTC), when monthly options and rebalancing cluster."""
    return np.asarray(_utc(inp).is_month_end, dtype=np.float64)


def _session(inp: FeatureInput, name: str) -> FloatArray:
    start, end = SESSIONS[name]
    hour = _utc(inp).hour.to_numpy()
    return ((hour >= start) & (hour < end)).astype(np.float64)


def _hours_to_funding(inp: FeatureInput) -> FloatArray:
    """Hours from the bar's close to the next funding settlement (0 when it settles at that close)."""
    period = FUNDING_EVERY_H * 3_600_000_000_000
    close = inp.index.as_unit("ns").asi8 + timeframe_to_ns(inp.timeframe)
    return ((-close) % period) / 3.6e12


for _unit, _label in (("hour", "hour of day"), ("dow", "day of week"), ("month", "time of year")):
    for _fn in ("sin", "cos"):
        register(
            f"{_unit}_{_fn}",
            lookback=0,
            group="calendar",
            description=f"{_fn} of the {_label} (UTC bar open time) on the unit circle",
        )(partial(_cyclical, unit=_unit, fn=_fn))
register("is_weekend", lookback=0, group="calendar", description="1 on Saturday and Sunday (UTC)")(_is_weekend)
register("is_month_end", lookback=0, group="calendar", description="1 on the last day of the month (UTC)")(
    _is_month_end
)
for _name, (_start, _end) in SESSIONS.items():
    register(
        f"session_{_name}",
        lookback=0,
        group="calendar",
        description=f"1 during the {_name} session ({_start:02d}:00-{_end:02d}:00 UTC)",
    )(partial(_session, name=_name))
register(
    "hours_to_funding",
    lookback=0,
    group="calendar",
    description="hours from the bar's close to the next 8-hourly funding settlement (00/08/16 UTC)",
)(_hours_to_funding)
