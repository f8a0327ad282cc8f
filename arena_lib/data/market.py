"""`MarketData`: several symbols' bars aligned on one clock, the replay feed of the one loop.

Each symbol keeps its own bars (gaps stay gaps: no bar is invented). The aligned (bars x symbols) arrays, with NaN
where a symbol has no bar, serve the batch kernel; the per-symbol arrays and `position` map serve point-in-time
snapshots for the step loop. Funding events are mapped to the first bar of their symbol that opens at or after the
settlement time: that bar's open is the mark price, and the positions held coming into that bar pay or receive.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from arena_lib.data.resample import timeframe_to_ns

OHLCV = ("open", "high", "low", "close", "volume")


def ns_to_index(ns: np.ndarray, name: str | None = "timestamp") -> pd.DatetimeIndex:
    """Epoch-nanosecond integers to a UTC DatetimeIndex (a view: ~300x faster than `pd.to_datetime` on pandas 3)."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("datetime64[ns]"), name=name).tz_localize("UTC")


@dataclass(frozen=True)
class SymbolSeries:
    """One symbol's own bars as contiguous float arrays (views into these are what agents see)."""

    symbol: str
    frame: pd.DataFrame
    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class MarketData:
    """Bars of several symbols on one timeline; build it with `MarketData.from_frames`."""

    symbols: tuple[str, ...]
    timeframe: str
    bar_ns: int
    times: np.ndarray  # (n,) int64 bar open times, epoch ns UTC
    open: np.ndarray  # (n, m) float64, NaN where a symbol has no bar
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    has_bar: np.ndarray  # (n, m) bool
    position: np.ndarray  # (n, m) int64: index of the symbol's last bar at or before row n, -1 if none
    funding: np.ndarray  # (n, m) float64: funding rate settling at this bar's open (0 if none)
    series: Mapping[str, SymbolSeries]
    funding_series: Mapping[str, pd.Series] = field(default_factory=dict)

    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, pd.DataFrame],
        timeframe: str,
        funding: Mapping[str, pd.Series] | None = None,
    ) -> MarketData:
        """Align per-symbol OHLCV frames (UTC DatetimeIndex of bar open times) on the union of their times."""
        if not frames:
            raise ValueError("MarketData needs at least one symbol")
        bar_ns = timeframe_to_ns(timeframe)
        symbols = tuple(frames)
        series: dict[str, SymbolSeries] = {}
        for sym, df in frames.items():
            missing = [c for c in OHLCV if c not in df.columns]
            if missing:
                raise ValueError(f"{sym}: missing columns {missing}")
            if len(df) == 0:
                raise ValueError(f"{sym}: no bars in the selected window")
            idx = pd.DatetimeIndex(df.index)
            if idx.tz is None:
                raise ValueError(f"{sym}: index must be tz-aware UTC")
            if not idx.is_monotonic_increasing or idx.has_duplicates:
                raise ValueError(f"{sym}: index must be strictly increasing (run the quality checks first)")
            t = idx.as_unit("ns").asi8
            cols = {c: np.ascontiguousarray(df[c].to_numpy(dtype=np.float64)) for c in OHLCV}
            series[sym] = SymbolSeries(
                sym, df, t, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"]
            )
        times = np.unique(np.concatenate([s.times for s in series.values()]))
        n, m = len(times), len(symbols)
        arrays = {c: np.full((n, m), np.nan) for c in OHLCV}
        has_bar = np.zeros((n, m), dtype=bool)
        position = np.full((n, m), -1, dtype=np.int64)
        funding_arr = np.zeros((n, m))
        funding = dict(funding or {})
        for j, sym in enumerate(symbols):
            s = series[sym]
            rows = np.searchsorted(times, s.times)
            has_bar[rows, j] = True
            for c in OHLCV:
                arrays[c][rows, j] = getattr(s, c)
            position[:, j] = np.searchsorted(s.times, times, side="right") - 1
            rates = funding.get(sym)
            if rates is not None and len(rates):
                ft = pd.DatetimeIndex(rates.index).as_unit("ns").asi8
                first = np.searchsorted(s.times, ft, side="left")  # first own bar opening at/after settlement
                # events before the symbol's first bar settled outside this window: drop them
                ok = (first < len(s.times)) & (ft >= s.times[0])
                np.add.at(funding_arr[:, j], rows[first[ok]], rates.to_numpy(dtype=np.float64)[ok])
        return cls(
            symbols=symbols,
            timeframe=timeframe,
            bar_ns=bar_ns,
            times=times,
            open=arrays["open"],
            high=arrays["high"],
            low=arrays["low"],
            close=arrays["close"],
            volume=arrays["volume"],
            has_bar=has_bar,
            position=position,
            funding=funding_arr,
            series=series,
            funding_series=funding,
        )

    @property
    def n_bars(self) -> int:
        return len(self.times)

    def index(self) -> pd.DatetimeIndex:
        """Bar open times as a UTC DatetimeIndex."""
        return ns_to_index(self.times)

    def close_times(self) -> pd.DatetimeIndex:
        """Bar close times (when a decision on that bar is made) as a UTC DatetimeIndex."""
        return ns_to_index(self.times + self.bar_ns)

    @cached_property
    def close_times_ns(self) -> list[int]:
        """Bar close times as Python ints, for the step loop's clock."""
        out: list[int] = (self.times + self.bar_ns).tolist()
        return out

    @cached_property
    def funding_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per symbol: settlement times (epoch ns) and rates of its funding, as arrays for point-in-time lookups."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for sym, rates in self.funding_series.items():
            times = pd.DatetimeIndex(rates.index).as_unit("ns").asi8
            out[sym] = (times, rates.to_numpy(np.float64))
        return out

    def fingerprint(self) -> str:
        """A content hash of every bar and funding rate (computed once), logged with each run as its data hash."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(",".join(self.symbols).encode())
        h.update(self.timeframe.encode())
        for arr in (self.times, self.open, self.high, self.low, self.close, self.volume, self.funding):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]
