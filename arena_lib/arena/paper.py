"""Paper trading: the same rounds on live candles from ccxt, with the simulator as the broker.

Only the feed and the clock differ from a replay (DESIGN.md, "the one loop"). Every `every` seconds the feed
downloads the latest *closed* bars of each symbol (the forming bar is dropped by `fetch_ohlcv`), checks them, and
the runner plays every bar that closed since the last committed one: bars the process missed are settled (fills,
stops, funding) without asking the agents, and the newest bar is a decision round. A stop request (SIGINT,
SIGTERM) is honoured between rounds, never in the middle of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import pandas as pd

from arena_lib.arena.rounds import ArenaRunner, RoundOutcome
from arena_lib.clock import Clock, WallClock
from arena_lib.data.ccxt_source import fetch_ohlcv
from arena_lib.data.market import MarketData
from arena_lib.data.quality import check_ohlcv
from arena_lib.data.resample import timeframe_to_ns

log = logging.getLogger(__name__)


class CcxtPaperFeed:
    """The latest `history_bars` closed bars of each symbol, fetched through ccxt on every call."""

    def __init__(
        self,
        exchange: object,
        symbols: Sequence[str],
        timeframe: str,
        history_bars: int = 300,
        clock: Clock | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.history_bars = history_bars
        self.clock = clock or WallClock()

    def market(self) -> MarketData:
        now_ns = self.clock.now_ns()
        since = pd.Timestamp(now_ns - self.history_bars * timeframe_to_ns(self.timeframe), tz="UTC")
        frames = {}
        for sym in self.symbols:
            frame = fetch_ohlcv(self.exchange, sym, self.timeframe, since, now_ms=now_ns // 1_000_000)
            if frame.empty:
                raise ValueError(f"{sym}: the exchange returned no closed {self.timeframe} bars since {since}")
            check_ohlcv(frame, self.timeframe).raise_if_failed(f"{sym} {self.timeframe} (live)")
            frames[sym] = frame
        return MarketData.from_frames(frames, self.timeframe, {})


def run_paper(
    runner: ArenaRunner,
    feed: Callable[[], MarketData],
    *,
    every_s: float,
    rounds: int | None = None,
    stop: threading.Event | None = None,
) -> list[RoundOutcome]:
    """Play decision rounds on live bars until `rounds` were played or a stop is requested."""
    stop = stop or runner.stop
    outcomes: list[RoundOutcome] = []
    last_ts = _last_committed_ts(runner)
    decided = 0
    while rounds is None or decided < rounds:
        if runner.check_halt():  # the kill switch, honoured between bars even mid-schedule
            break
        market = feed()
        runner.set_market(market)
        times = market.close_times_ns
        new_rows = [i for i in range(market.n_bars) if last_ts is None or times[i] > last_ts]
        if last_ts is None:
            new_rows = new_rows[-1:]  # a new run starts trading on the latest closed bar
        for i in new_rows:
            is_last = i == new_rows[-1]
            outcome = runner.play(i, round_no=runner.last_round + 1, decide=is_last)
            outcomes.append(outcome)
            last_ts = times[i]
            decided += int(is_last)
        if not new_rows:
            log.info("no new closed bar yet; next check in %.0fs", every_s)
        if (rounds is not None and decided >= rounds) or stop.wait(every_s):
            break
    return outcomes


def _last_committed_ts(runner: ArenaRunner) -> int | None:
    rounds = runner.store.rounds_frame(runner.run_id)
    return None if rounds.empty else int(rounds["ts"].iloc[-1])
