"""`MarketTape`: the market as known so far, grown one closed bar row at a time. Snapshots read nothing else.

Why a tape: a snapshot at time t must not reach a bar after t through any reference (an attribute, an array's
`.base`, a market object). So the loop never hands agents the whole history. A feed appends each closed bar row
to the tape, which copies it into buffers of its own, and a snapshot is the tape as it stood at that instant: at
decision time no bar after t is in any buffer the snapshot can reach.

Storage is one row-major buffer of aligned rows (bars x symbols x OHLCV, NaN where a symbol has no bar), so
appending a row is one copy. A symbol's own bars (gaps skipped) are read from it as contiguous copies.

Funding events are observations too: an event becomes visible once the feed appends it (at or before the close of
the row it comes with). It is charged at the open of the symbol's first bar that opens at or after its settlement,
to the positions held coming into that bar; events that settle before a symbol's first bar are dropped (they
settled outside the window). This is the rule `MarketData` applies to a whole history at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arena_lib.core.types import Bar
from arena_lib.data.market import OHLCV, MarketData, ns_to_index
from arena_lib.data.resample import timeframe_to_ns

OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)


class FeedError(ValueError):
    """A feed offered a row the tape cannot take (out of order, duplicate, wrong shape): the row is named."""


@dataclass(frozen=True, slots=True)
class FundingEvent:
    """A funding rate that settled for `symbol` at `time_ns` (epoch ns UTC)."""

    symbol: str
    time_ns: int
    rate: float


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """A perpetual's mark price for `symbol`, as the exchange reported it at `time_ns` (epoch ns UTC)."""

    symbol: str
    time_ns: int
    price: float


@dataclass(frozen=True, slots=True)
class BarRow:
    """The bars that closed together: their open time and, per symbol in the tape's order, OHLCV or None.

    `funding` holds the funding events that settled by this row's close and were not in an earlier row; `marks`
    the mark-price readings taken by this row's close (a live feed's; the tape refuses one taken after it).
    """

    time_ns: int
    bars: Sequence[Bar | None]
    funding: Sequence[FundingEvent] = field(default_factory=tuple)
    marks: Sequence[MarkPrice] = field(default_factory=tuple)


class MarketTape:
    """Closed bar rows of several symbols on one timeline, appended in time order and never rewritten."""

    __slots__ = (
        "_buf",
        "_cap",
        "_due",
        "_first",
        "_fund_rates",
        "_fund_times",
        "_gaps",
        "_has",
        "_index",
        "_last_t",
        "_mark_prices",
        "_mark_times",
        "_n_pending",
        "_pending",
        "_times",
        "_unseen",
        "bar_ns",
        "last_close_ns",
        "n_rows",
        "symbols",
        "timeframe",
    )

    def __init__(self, symbols: Sequence[str], timeframe: str, capacity: int = 1024) -> None:
        if not symbols:
            raise ValueError("a market tape needs at least one symbol")
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.bar_ns = timeframe_to_ns(timeframe)
        m = len(self.symbols)
        self._index = {s: j for j, s in enumerate(self.symbols)}
        self._cap = max(16, int(capacity))
        self._buf = np.full((self._cap, m, 5), np.nan)
        self._has = np.ones((self._cap, m), dtype=bool)  # written only for rows where some symbol has no bar
        self._times = np.zeros(self._cap, dtype=np.int64)
        self.n_rows = 0
        self._first = [-1] * m  # row of each symbol's first bar
        self._gaps = [0] * m  # rows after a symbol's first bar in which it had no bar
        self._fund_times: list[list[int]] = [[] for _ in range(m)]
        self._fund_rates: list[list[float]] = [[] for _ in range(m)]
        self._pending: list[list[tuple[int, float]]] = [[] for _ in range(m)]
        self._due: list[tuple[int, float]] | None = None
        self._mark_times: list[list[int]] = [[] for _ in range(m)]
        self._mark_prices: list[list[float]] = [[] for _ in range(m)]
        self._n_pending = 0  # funding events observed and not yet charged
        self._unseen = m  # symbols that have had no bar yet
        self.last_close_ns = 0  # close of the newest row (epoch ns): when a decision on it is made
        self._last_t = 0

    # -- appending ------------------------------------------------------------------------------------------------
    def append(self, row: BarRow) -> int:
        """Append a row of closed bars (the general path, for live feeds); returns its row index."""
        m = len(self.symbols)
        if len(row.bars) != m:
            raise FeedError(f"bar row at {_ts(row.time_ns)} has {len(row.bars)} bars; the tape has {m} symbols")
        values = np.full((m, 5), np.nan)
        present = np.zeros(m, dtype=bool)
        for j, bar in enumerate(row.bars):
            if bar is None:
                continue
            if bar.timestamp != row.time_ns:
                raise FeedError(
                    f"{self.symbols[j]} bar at {_ts(bar.timestamp)} does not belong to the row at {_ts(row.time_ns)}"
                )
            values[j] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
            present[j] = True
        n = self.append_aligned(row.time_ns, values, present, row.funding)
        if row.marks:
            self._observe_marks(row.marks)
        return n

    def append_aligned(
        self,
        time_ns: int,
        values: np.ndarray,
        present: np.ndarray | None = None,
        funding: Sequence[FundingEvent] = (),
    ) -> int:
        """Append one row given as arrays: `values` (symbols x OHLCV, copied), `present` (symbols,) bool, None
        when every symbol has a bar. Refuses a row that is not after the last one (duplicate or out of order).
        """
        n = self.n_rows
        t = int(time_ns)
        if n and t <= self._last_t:
            why = "duplicates" if t == self._last_t else "is before"
            raise FeedError(
                f"bar row at {_ts(t)} {why} the last row at {_ts(self._last_t)}: rows must arrive in time order"
            )
        if n == self._cap:
            self._grow()
        self._buf[n] = values
        self._times[n] = t
        self.n_rows = n + 1
        self._last_t = t
        self.last_close_ns = t + self.bar_ns
        if present is not None and not present.all():
            self._has[n] = present
            self._track_gaps(n, present)
        elif self._unseen:
            self._track_gaps(n, None)
        if funding:
            self._observe_funding(funding)
        self._due = self._settle_due(t, present) if self._n_pending else None
        return n

    def _grow(self) -> None:
        cap = self._cap * 2
        buf = np.full((cap, len(self.symbols), 5), np.nan)
        buf[: self._cap] = self._buf
        has = np.ones((cap, len(self.symbols)), dtype=bool)
        has[: self._cap] = self._has
        times = np.zeros(cap, dtype=np.int64)
        times[: self._cap] = self._times
        self._buf, self._has, self._times, self._cap = buf, has, times, cap

    def _track_gaps(self, n: int, present: np.ndarray | None) -> None:
        for j in range(len(self.symbols)):
            if present is None or present[j]:
                if self._first[j] < 0:
                    self._first[j] = n
                    self._unseen -= 1
            elif self._first[j] >= 0:
                self._gaps[j] += 1

    def _observe_funding(self, events: Sequence[FundingEvent]) -> None:
        for e in events:
            j = self._index.get(e.symbol)
            if j is None:
                raise FeedError(f"funding event for unknown symbol {e.symbol!r} at {_ts(e.time_ns)}")
            times = self._fund_times[j]
            if times and e.time_ns <= times[-1]:
                raise FeedError(f"{e.symbol} funding at {_ts(e.time_ns)} is not after the last one at {_ts(times[-1])}")
            times.append(int(e.time_ns))
            self._fund_rates[j].append(float(e.rate))
            self._pending[j].append((int(e.time_ns), float(e.rate)))
            self._n_pending += 1

    def _observe_marks(self, marks: Sequence[MarkPrice]) -> None:
        """Mark-price readings of the newest row: each taken by its close (point in time), after the symbol's last."""
        for mk in marks:
            j = self._index.get(mk.symbol)
            if j is None:
                raise FeedError(f"mark price for unknown symbol {mk.symbol!r} at {_ts(mk.time_ns)}")
            if mk.time_ns > self.last_close_ns:
                raise FeedError(
                    f"{mk.symbol} mark price taken at {_ts(mk.time_ns)} is after the close of the row it comes with "
                    f"({_ts(self.last_close_ns)}): it would leak"
                )
            times = self._mark_times[j]
            if times and mk.time_ns <= times[-1]:
                raise FeedError(
                    f"{mk.symbol} mark price at {_ts(mk.time_ns)} is not after the last at {_ts(times[-1])}"
                )
            times.append(int(mk.time_ns))
            self._mark_prices[j].append(float(mk.price))

    def mark_price(self, j: int, until_ns: int) -> tuple[int, float] | None:
        """Symbol `j`'s latest mark-price reading taken at or before `until_ns`: (time, price), or None."""
        times = self._mark_times[j]
        k = int(np.searchsorted(np.asarray(times, dtype=np.int64), until_ns, side="right")) if times else 0
        return (times[k - 1], self._mark_prices[j][k - 1]) if k else None

    def _settle_due(self, t: int, present: np.ndarray | None) -> list[tuple[int, float]] | None:
        """Funding charged at this row's open: per symbol with a bar now, the pending events settled by its open."""
        due: list[tuple[int, float]] = []
        first_bar_now = self.n_rows - 1
        for j, pending in enumerate(self._pending):
            if not pending or (present is not None and not present[j]):
                continue
            is_first = self._first[j] == first_bar_now
            rate, kept, charged = 0.0, [], False
            for s, r in pending:
                if s > t:
                    kept.append((s, r))
                elif not is_first or s >= t:
                    rate += r
                    charged = True
            self._n_pending -= len(pending) - len(kept)
            self._pending[j] = kept
            if charged:
                due.append((j, rate))
        return due or None

    # -- the current row (what the loop and the brokers read) -----------------------------------------------------
    @property
    def time_ns(self) -> int:
        """Open time of the newest row (epoch ns)."""
        return int(self._times[self.n_rows - 1])

    @property
    def funding_due(self) -> list[tuple[int, float]] | None:
        """(symbol index, rate) settling at the newest row's open, or None."""
        return self._due

    def has_bar(self, j: int, row: int | None = None) -> bool:
        return bool(self._has[self.n_rows - 1 if row is None else row, j])

    def value(self, j: int, field: int, row: int | None = None) -> float:
        """One OHLCV value (`OPEN`..`VOLUME`) of symbol index `j` in the newest row (NaN where it has no bar)."""
        return float(self._buf[self.n_rows - 1 if row is None else row, j, field])

    def close_marks(self) -> list[float]:
        """Each symbol's latest close at the newest row's close (NaN before its first bar)."""
        n = self.n_rows
        return [self.last_value(j, CLOSE, n) for j in range(len(self.symbols))]

    def open_marks(self) -> list[float]:
        """The newest row's open where a symbol has a bar now, else its last close before this row."""
        n = self.n_rows
        return [
            float(self._buf[n - 1, j, OPEN]) if self._has[n - 1, j] else self.last_value(j, CLOSE, n - 1)
            for j in range(len(self.symbols))
        ]

    def volumes(self) -> list[float]:
        out: list[float] = self._buf[self.n_rows - 1, :, VOLUME].tolist()
        return out

    def last_value(self, j: int, field: int, n: int) -> float:
        """Symbol `j`'s `field` at its last bar within the first `n` rows (NaN if none)."""
        if n <= 0 or self._first[j] < 0 or self._first[j] >= n:
            return math.nan
        if self._has[n - 1, j]:
            return float(self._buf[n - 1, j, field])
        rows = np.flatnonzero(self._has[:n, j])
        return float(self._buf[rows[-1], j, field]) if len(rows) else math.nan

    # -- a symbol's own bars, as of the first `n` rows (what snapshots read) -------------------------------------
    def own_rows(self, j: int, n: int) -> np.ndarray | slice:
        """Rows (among the first `n`) in which symbol `j` has a bar: a slice when it has had no gap."""
        first = self._first[j]
        if first < 0 or first >= n:
            return slice(0, 0)
        if self._gaps[j] == 0 or bool(self._has[first:n, j].all()):
            return slice(first, n)
        return first + np.flatnonzero(self._has[first:n, j])

    def bar_count(self, j: int, n: int) -> int:
        rows = self.own_rows(j, n)
        return rows.stop - rows.start if isinstance(rows, slice) else len(rows)

    def column(self, j: int, field: int, n: int, last: int | None = None) -> np.ndarray:
        """The last `last` values (all when None) of symbol `j`'s `field` in the first `n` rows: a contiguous copy."""
        rows = self.own_rows(j, n)
        if isinstance(rows, slice):
            start = rows.start if last is None else max(rows.start, rows.stop - last)
            return np.ascontiguousarray(self._buf[start : rows.stop, j, field])
        picked = rows if last is None else rows[-last:] if last > 0 else rows[:0]
        return np.ascontiguousarray(self._buf[picked, j, field])

    def own_times(self, j: int, n: int, last: int | None = None) -> np.ndarray:
        rows = self.own_rows(j, n)
        if isinstance(rows, slice):
            start = rows.start if last is None else max(rows.start, rows.stop - last)
            return self._times[start : rows.stop].copy()
        picked = rows if last is None else rows[-last:] if last > 0 else rows[:0]
        return self._times[picked].copy()

    def frame(self, j: int, n: int, last: int | None = None) -> pd.DataFrame:
        """Symbol `j`'s own bars in the first `n` rows as an OHLCV frame (UTC index of bar open times)."""
        data = {c: self.column(j, k, n, last) for k, c in enumerate(OHLCV)}
        return pd.DataFrame(data, index=ns_to_index(self.own_times(j, n, last)))

    def funding_history(self, j: int, until_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Settlement times and rates of symbol `j`'s funding observed so far, up to `until_ns`."""
        times = np.asarray(self._fund_times[j], dtype=np.int64)
        k = int(np.searchsorted(times, until_ns, side="right"))
        return times[:k].copy(), np.asarray(self._fund_rates[j][:k], dtype=np.float64)


def _ts(t_ns: int) -> str:
    return pd.Timestamp(int(t_ns), tz="UTC").isoformat()


def tape_upto(market: MarketData, row: int) -> MarketTape:
    """A tape holding `market`'s rows 0..`row` (a copy), with the funding observed by that row's close.

    For research tools and tests that ask for a snapshot of a whole history at one row; the loop builds its tape
    bar by bar instead (`engine.feeds.ReplayFeed`).
    """
    if not 0 <= row < market.n_bars:
        raise IndexError(f"row {row} is outside the market's {market.n_bars} bars")
    tape = MarketTape(market.symbols, market.timeframe, capacity=row + 1)
    block = np.stack([market.open, market.high, market.low, market.close, market.volume], axis=2)
    events = replay_funding_events(market)
    close_ns = market.times + market.bar_ns
    k = 0
    for i in range(row + 1):
        batch: list[FundingEvent] = []
        while k < len(events) and events[k][0] <= close_ns[i]:
            batch.extend(events[k][1])
            k += 1
        tape.append_aligned(int(market.times[i]), block[i], market.has_bar[i], batch)
    return tape


def replay_funding_events(market: MarketData) -> list[tuple[int, list[FundingEvent]]]:
    """Every funding event of `market`, grouped by settlement time (ascending), symbols in market order."""
    by_time: dict[int, list[FundingEvent]] = {}
    for sym in market.symbols:
        arrays = market.funding_arrays.get(sym)
        if arrays is None:
            continue
        times, rates = arrays
        for t, r in zip(times.tolist(), rates.tolist(), strict=True):
            by_time.setdefault(int(t), []).append(FundingEvent(sym, int(t), float(r)))
    order = {s: j for j, s in enumerate(market.symbols)}
    return [(t, sorted(by_time[t], key=lambda e: order[e.symbol])) for t in sorted(by_time)]
