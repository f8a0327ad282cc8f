"""Paper trading: the same driver on live candles from ccxt, with the simulator as the broker.

Only the feed and the clock differ from a replay (DESIGN.md, "the one loop"). `CcxtPaperFeed` is a `Feed`: it
fetches the latest *closed* bars of each symbol (the forming bar is dropped by `fetch_ohlcv`), checks them, and
appends the rows that closed since the tape's last one, one row per `advance`. Bars the process missed are
settled (fills, stops, funding) without asking the agents; the newest bar is a decision round. A stop request
(SIGINT, SIGTERM) is honoured between rounds, never in the middle of one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import pandas as pd

from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.rounds import ArenaRunner, RoundOutcome
from arena_lib.core.clock import Clock, WallClock
from arena_lib.core.types import Bar
from arena_lib.data.ccxt_source import fetch_ohlcv
from arena_lib.data.market import MarketData
from arena_lib.data.quality import check_ohlcv
from arena_lib.data.resample import timeframe_to_ns
from arena_lib.data.tape import BarRow, MarketTape

log = logging.getLogger(__name__)


class CcxtPaperFeed:
    """Closed bars of the config's symbols from a ccxt exchange: a `Feed` for continuous paper runs.

    `market()` fetches the latest `history_bars` closed bars as a `MarketData` (a scheduled job replays the new
    ones of it); `warm_up`, `poll` and `advance` serve a long-running process: `poll` asks the exchange for the
    bars that closed since the newest known one, and `advance` appends them one row at a time.
    """

    def __init__(
        self,
        exchange: object,
        symbols: tuple[str, ...] | list[str],
        timeframe: str,
        history_bars: int = 300,
        clock: Clock | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.history_bars = history_bars
        self.clock = clock or WallClock()
        self._queue: deque[BarRow] = deque()

    def market(self) -> MarketData:
        """The latest `history_bars` closed bars of every symbol, quality-checked."""
        return MarketData.from_frames(self._frames(), self.timeframe, {})

    def _frames(self) -> dict[str, pd.DataFrame]:
        now_ns = self.clock.now_ns()
        since = pd.Timestamp(now_ns - self.history_bars * timeframe_to_ns(self.timeframe), tz="UTC")
        frames = {}
        for sym in self.symbols:
            frame = fetch_ohlcv(self.exchange, sym, self.timeframe, since, now_ms=now_ns // 1_000_000)
            if frame.empty:
                raise ValueError(f"{sym}: the exchange returned no closed {self.timeframe} bars since {since}")
            check_ohlcv(frame, self.timeframe).raise_if_failed(f"{sym} {self.timeframe} (live)")
            frames[sym] = frame
        return frames

    # -- the Feed protocol ----------------------------------------------------------------------------------------
    def warm_up(self, tape: MarketTape, after_ns: int | None = None) -> None:
        """History: the rows that closed by `after_ns` (a resumed run's last bar), or all fetched rows but the
        newest (a new run starts on the latest closed bar). The rest wait for `advance`."""
        rows = self._new_rows(tape)
        cut = len(rows) - 1 if after_ns is None else sum(r.time_ns + tape.bar_ns <= after_ns for r in rows)
        for row in rows[:cut]:
            tape.append(row)
        self._queue.extend(rows[cut:])

    def poll(self, tape: MarketTape) -> int:
        """Fetch the bars that closed since the newest known row; returns how many new rows wait."""
        known = self._queue[-1].time_ns if self._queue else (tape.time_ns if tape.n_rows else None)
        fresh = [r for r in self._new_rows(tape) if known is None or r.time_ns > known]
        self._queue.extend(fresh)
        return len(fresh)

    def advance(self, tape: MarketTape) -> int:
        if not self._queue:
            return 0
        tape.append(self._queue.popleft())
        return 1

    @property
    def caught_up(self) -> bool:
        """True when the row appended last is the newest one known (a decision round)."""
        return not self._queue

    @property
    def exhausted(self) -> bool:
        return False

    def _new_rows(self, tape: MarketTape) -> list[BarRow]:
        """Every fetched closed row after the tape's newest one, oldest first (a symbol without a bar: None)."""
        last = tape.time_ns if tape.n_rows else None
        by_symbol: list[dict[int, Bar]] = []
        for frame in self._frames().values():
            times = pd.DatetimeIndex(frame.index).as_unit("ns").asi8.tolist()
            values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
            by_symbol.append({t: Bar(t, *v) for t, v in zip(times, values, strict=True)})
        times = sorted({t for bars in by_symbol for t in bars if last is None or t > last})
        return [BarRow(t, [bars.get(t) for bars in by_symbol]) for t in times]


def paper_feed(config: ArenaConfig, exchange_url: str | None = None) -> CcxtPaperFeed:
    """The config's live candle feed: its exchange's spot markets only (`ingest.make_candle_exchange`)."""
    from arena_lib.data.ingest import make_candle_exchange

    exchange = make_candle_exchange(config.rounds.exchange, exchange_url)
    return CcxtPaperFeed(exchange, config.market.symbols, config.market.timeframe, config.rounds.history_bars)


def run_paper(
    runner: ArenaRunner,
    feed: CcxtPaperFeed,
    *,
    every_s: float,
    rounds: int | None = None,
    stop: threading.Event | None = None,
) -> list[RoundOutcome]:
    """Play decision rounds on live bars until `rounds` were played or a stop is requested."""
    stop = stop or runner.stop
    outcomes: list[RoundOutcome] = []
    decided = 0
    while rounds is None or decided < rounds:
        if runner.check_halt():  # the kill switch, honoured between bars even mid-schedule
            break
        runner.warm_up()
        feed.poll(runner.tape)
        played = runner.play_new(lambda: feed.caught_up)
        outcomes.extend(played)
        decided += sum(o.decided for o in played)
        if runner.halted is not None:
            break
        if not played:
            log.info("no new closed bar yet; next check in %.0fs", every_s)
        if rounds is not None and decided >= rounds:
            break
        runner.pause()
        if stop.wait(every_s):
            break
    return outcomes
