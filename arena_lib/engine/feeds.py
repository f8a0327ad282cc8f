"""The `Feed` seam: where closed bars come from. A replay of stored history, or an exchange polled for new bars.

A feed never hands the loop a whole market. It appends closed bar rows, with the funding events observed by their
close, to the loop's `MarketTape`, and the loop plays each new row. Backtest, paper and live differ in the feed
(with the broker and the clock), never in the agents or the risk code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from arena_lib.data.market import MarketData
from arena_lib.data.tape import FundingEvent, MarketTape, replay_funding_events


@runtime_checkable
class Feed(Protocol):
    """A source of closed bar rows for one set of symbols and one timeframe.

    `warm_up` appends the history the agents may read before the first played bar (not traded): the feed's own
    warm-up, or, for a resumed run, every row that closed by `after_ns` (its last committed bar). `advance`
    appends the next row that has closed and returns how many it appended (0 or 1; 0: nothing new yet). A finite
    feed (a replay) reports `exhausted` once it has nothing left.
    """

    symbols: tuple[str, ...]
    timeframe: str

    def warm_up(self, tape: MarketTape, after_ns: int | None = None) -> None: ...

    def advance(self, tape: MarketTape) -> int: ...

    @property
    def exhausted(self) -> bool: ...


class ReplayFeed:
    """Replays a stored `MarketData` one row per `advance`: rows `start` up to `stop`, with rows before `start`
    as warm-up history.

    The feed keeps the history; the tape receives a copy of each row only when it closes, so nothing a snapshot
    can reach holds a later bar.
    """

    def __init__(self, market: MarketData, start: int = 0, stop: int | None = None) -> None:
        stop = market.n_bars if stop is None else min(stop, market.n_bars)
        if not 0 <= start <= stop:
            raise ValueError(f"replay rows {start}..{stop} are outside the market's {market.n_bars} bars")
        self.market = market
        self.symbols = market.symbols
        self.timeframe = market.timeframe
        self.start, self.stop = start, stop
        self.next_row = 0
        self._warmed = False
        self._block = np.stack([market.open, market.high, market.low, market.close, market.volume], axis=2)
        every = np.all(np.asarray(market.has_bar, dtype=bool), axis=1, keepdims=False).tolist()
        self._all: list[bool] = [bool(x) for x in every]
        events = replay_funding_events(market)
        self._event_times = [t for t, _ in events]
        self._events = [e for _, e in events]
        self._k = 0
        self._close = (market.times + market.bar_ns).tolist()
        self._open = market.times.tolist()

    def new_tape(self) -> MarketTape:
        """An empty tape for this feed's symbols, sized for the whole replay."""
        return MarketTape(self.symbols, self.timeframe, capacity=self.stop)

    def warm_up(self, tape: MarketTape, after_ns: int | None = None) -> None:
        self._warmed = True
        if after_ns is None:
            while self.next_row < self.start:
                self._append(tape)
            return
        while self.next_row < self.stop and self._close[self.next_row] <= after_ns:
            self._append(tape)

    def advance(self, tape: MarketTape) -> int:
        if not self._warmed:
            self.warm_up(tape)
        if self.next_row >= self.stop:
            return 0
        self._append(tape)
        return 1

    @property
    def exhausted(self) -> bool:
        return self.next_row >= self.stop

    def _append(self, tape: MarketTape) -> None:
        i = self.next_row
        funding: list[FundingEvent] = []
        times = self._event_times
        if self._k < len(times) and times[self._k] <= self._close[i]:  # funding settled during this bar
            close = self._close[i]
            while self._k < len(times) and times[self._k] <= close:
                funding.extend(self._events[self._k])
                self._k += 1
        tape.append_aligned(self._open[i], self._block[i], None if self._all[i] else self.market.has_bar[i], funding)
        self.next_row = i + 1
