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

from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.rounds import ArenaRunner, RoundOutcome
from arena_lib.core.clock import Clock, WallClock
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


def paper_feed(config: ArenaConfig, exchange_url: str | None = None) -> CcxtPaperFeed:
    """The config's live candle feed: its exchange's spot markets only (`ingest.make_candle_exchange`)."""
    from arena_lib.data.ingest import make_candle_exchange

    exchange = make_candle_exchange(config.rounds.exchange, exchange_url)
    return CcxtPaperFeed(exchange, config.market.symbols, config.market.timeframe, config.rounds.history_bars)


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
    decided = 0
    while rounds is None or decided < rounds:
        if runner.check_halt():  # the kill switch, honoured between bars even mid-schedule
            break
        played = play_new_bars(runner, feed())
        outcomes.extend(played)
        decided += sum(o.decided for o in played)
        if not played:
            log.info("no new closed bar yet; next check in %.0fs", every_s)
        if (rounds is not None and decided >= rounds) or stop.wait(every_s):
            break
    return outcomes


def play_new_bars(runner: ArenaRunner, market: MarketData) -> list[RoundOutcome]:
    """Play every bar of `market` that closed after the run's last committed bar; the newest one is a decision round.

    Bars the job missed (a scheduler that skipped a slot, a restart) are settled without asking the agents, so
    stops, targets and funding are never skipped. A new run starts on the latest closed bar. Nothing new: nothing
    is played, which is what makes a scheduled `trade` idempotent.
    """
    runner.set_market(market)
    last_ts = _last_committed_ts(runner)
    times = market.close_times_ns
    new_rows = [i for i in range(market.n_bars) if last_ts is None or times[i] > last_ts]
    if last_ts is None:
        new_rows = new_rows[-1:]
    outcomes = []
    for i in new_rows:
        if runner.check_halt():
            break
        outcomes.append(runner.play(i, round_no=runner.last_round + 1, decide=i == new_rows[-1]))
    return outcomes


def _last_committed_ts(runner: ArenaRunner) -> int | None:
    """The bar close of the run's last committed round (one indexed aggregate, however long the run)."""
    from sqlalchemy import func, select

    from arena_lib.arena import schema as t

    with runner.store.engine.connect() as conn:
        ts = conn.execute(select(func.max(t.RoundRow.ts)).where(t.RoundRow.run_id == runner.run_id)).scalar()
    return None if ts is None else int(ts)
