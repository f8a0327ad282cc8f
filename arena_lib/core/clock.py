"""Injected clocks. Library code asks a `Clock` for the time and never reads the wall clock itself.

Backtests drive a `SimulatedClock` bar by bar, so a decision can only ever see the time the replay says it is;
paper and live jobs use `WallClock`. Swapping the clock is one of the three things (with the feed and the broker)
that differ between research and trading.
"""

from __future__ import annotations

import time
from typing import Protocol

import pandas as pd


class Clock(Protocol):
    """Source of the current time, in epoch nanoseconds UTC."""

    def now_ns(self) -> int: ...


class SimulatedClock:
    """A clock the replay advances explicitly; it refuses to go backwards."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, t_ns: int) -> None:
        if t_ns < self._now:
            raise ValueError(
                f"SimulatedClock cannot move backwards: {pd.Timestamp(t_ns, tz='UTC')} < "
                f"{pd.Timestamp(self._now, tz='UTC')}"
            )
        self._now = int(t_ns)


class WallClock:
    """The real UTC time, for paper and live trading."""

    def now_ns(self) -> int:
        return time.time_ns()


def to_timestamp(t_ns: int) -> pd.Timestamp:
    """Epoch nanoseconds to a tz-aware UTC pandas Timestamp."""
    return pd.Timestamp(t_ns, tz="UTC")
