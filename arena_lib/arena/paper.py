"""Paper trading: the same driver on live candles from ccxt, with the simulator as the broker.

Only the feed and the clock differ from a replay (DESIGN.md, "the one loop"). `CcxtPaperFeed` is a `Feed`: it
fetches the latest *closed* bars of each symbol (the forming bar is dropped by `fetch_ohlcv`), checks them, and
appends the rows that closed since the tape's last one, one row per `advance`. Bars the process missed are
settled (fills, stops, funding) without asking the agents; the newest bar is a decision round. A stop request
(SIGINT, SIGTERM) is honoured between rounds, never in the middle of one.

Perpetual fidelity: the feed also reads each symbol's linear perpetual through the exchange's USDⓈ-M ccxt client
(``binanceusdm`` for ``binance``, ``funding_source.make_perp_exchange``): its settled funding history
(``fetchFundingRateHistory``) and its mark price (``fetchFundingRate``, Binance ``/fapi/v1/premiumIndex``). Both
ride on bar rows under the point-in-time rules replays follow:

- a funding event goes with the first row whose close is at or after its settlement (as ``ReplayFeed`` attaches
  them), never earlier; the tape charges it at the open of the symbol's first bar at or after settlement, with the
  simulator's existing rule (quantity x that bar's open x rate). An event that settled after the newest closed
  row waits for the row that contains it;
- a mark-price reading counts as taken at the later of the exchange's timestamp and the feed's clock when it
  arrived, and goes with the first row whose close is at or after that time: never with a row that closed before
  it was read (the tape refuses such a reading). A reading taken while a bar forms is shown from that bar's close.

Where ccxt has no linear-swap client for the exchange, or the exchange lists no perpetual for a symbol, the feed
says so in ``funding_note`` (the run records it in its message): those positions are not charged funding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import pandas as pd

from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.rounds import ArenaRunner, RoundOutcome
from arena_lib.core.clock import Clock, WallClock
from arena_lib.core.types import Bar
from arena_lib.data.ccxt_source import fetch_ohlcv, with_retries
from arena_lib.data.errors import DataSourceError
from arena_lib.data.funding_source import (
    FundingUnavailableError,
    check_funding,
    fetch_funding_history,
    fetch_mark_reading,
    perp_symbol,
)
from arena_lib.data.market import MarketData
from arena_lib.data.quality import check_ohlcv
from arena_lib.data.resample import timeframe_to_ns
from arena_lib.data.tape import BarRow, FundingEvent, MarketTape, MarkPrice

log = logging.getLogger(__name__)
FUNDING_LOOKBACK_NS = 24 * 3600 * 10**9
"""Funding is fetched from this long before the first fetched bar, so the first snapshot already shows the rate
that settled last (Binance settles every 8h, some symbols every 4h)."""


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
        perp_exchange: object | None = None,
        funding_note: str = "",
    ) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.history_bars = history_bars
        self.clock = clock or WallClock()
        self.perp_exchange = perp_exchange  # the linear-swap client; None: funding unavailable (`funding_note`)
        self._notes: list[str] = [funding_note] if funding_note else []
        if perp_exchange is None and not funding_note:
            self._notes.append("funding unavailable: the paper feed has no perpetual client; positions pay no funding")
        self._perps: dict[str, str] | None = None  # symbol -> its perpetual, once the swap markets are loaded
        self._queue: deque[BarRow] = deque()
        self._bar_ns = timeframe_to_ns(timeframe)
        self._reach_ns: int | None = None  # the oldest bar open to fetch (a resumed run's missed bars)
        self._funding_after: dict[str, int] = {}  # per symbol: settlement (ns) of the last event handed to a row
        self._marks: dict[str, list[tuple[int, float]]] = {s: [] for s in self.symbols}  # readings not yet on a row
        self._mark_after: dict[str, int] = {}  # per symbol: time of the last reading handed to a row

    @property
    def funding_note(self) -> str:
        """Why some or all positions pay no funding in this feed ('' when every symbol's perpetual is read)."""
        return "; ".join(self._notes)

    def market(self) -> MarketData:
        """The latest `history_bars` closed bars of every symbol, quality-checked, with the funding that settled by
        the newest bar's close (a `ReplayFeed` attaches each event to the row whose close follows it)."""
        now_ns = self.clock.now_ns()
        frames = self._frames(now_ns)
        last_close = max(int(pd.DatetimeIndex(f.index).as_unit("ns").asi8[-1]) for f in frames.values()) + self._bar_ns
        first_open = min(int(pd.DatetimeIndex(f.index).as_unit("ns").asi8[0]) for f in frames.values())
        funding = {}
        for sym, events in self._fetch_funding(first_open - FUNDING_LOOKBACK_NS, now_ns).items():
            kept = [(t, r) for t, r in events if t <= last_close]  # settled by the newest close: nothing later
            if kept:
                index = pd.DatetimeIndex(pd.to_datetime([t for t, _ in kept], unit="ns", utc=True)).as_unit("ns")
                funding[sym] = pd.Series([r for _, r in kept], index=index.rename("timestamp"), name="funding_rate")
        return MarketData.from_frames(frames, self.timeframe, funding)

    def _frames(self, now_ns: int | None = None, after_ns: int | None = None) -> dict[str, pd.DataFrame]:
        """Closed bars since `history_bars` ago (or since `after_ns`'s bar or the resume reach, when older)."""
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        start = now_ns - self.history_bars * self._bar_ns
        if after_ns is not None:
            start = min(start, after_ns + self._bar_ns)
        if self._reach_ns is not None:
            start = min(start, self._reach_ns)
        since = pd.Timestamp(start, tz="UTC")
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
        newest (a new run starts on the latest closed bar). The rest wait for `advance`.

        A resumed run fetches from `history_bars` before its last bar, so every bar it missed is settled."""
        if after_ns is not None:
            self._reach_ns = after_ns - (self.history_bars + 1) * self._bar_ns
        rows = self._new_rows(tape)
        self._reach_ns = None
        cut = len(rows) - 1 if after_ns is None else sum(r.time_ns + tape.bar_ns <= after_ns for r in rows)
        for row in rows[:cut]:
            tape.append(row)
        self._queue.extend(rows[cut:])

    def poll(self, tape: MarketTape) -> int:
        """Fetch the bars that closed since the newest known row; returns how many new rows wait."""
        known = self._queue[-1].time_ns if self._queue else (tape.time_ns if tape.n_rows else None)
        fresh = self._rows_after(known)
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
        return self._rows_after(tape.time_ns if tape.n_rows else None)

    def _rows_after(self, last: int | None) -> list[BarRow]:
        """Fetched closed rows opening after `last`, with the funding and mark readings each may carry."""
        now_ns = self.clock.now_ns()
        by_symbol: list[dict[int, Bar]] = []
        for frame in self._frames(now_ns, last).values():
            times = pd.DatetimeIndex(frame.index).as_unit("ns").asi8.tolist()
            values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
            by_symbol.append({t: Bar(t, *v) for t, v in zip(times, values, strict=True)})
        times = sorted({t for bars in by_symbol for t in bars if last is None or t > last})
        if not times:
            self._read_marks(now_ns)
            return []
        funding = self._fetch_funding(self._funding_since(times[0]), now_ns)
        rows = []
        for t in times:
            close = t + self._bar_ns
            events = self._take_funding(funding, close)
            marks = self._take_marks(close)
            rows.append(BarRow(t, [bars.get(t) for bars in by_symbol], events, marks))
        self._read_marks(now_ns)  # taken now: after every row above closed, so it goes with a later row
        return rows

    # -- funding and mark prices ----------------------------------------------------------------------------------
    def _funding_since(self, first_open: int) -> int:
        """Fetch from just after the last event handed out, or a lookback before the first row for a new feed."""
        handed = [self._funding_after[s] for s in self.symbols if s in self._funding_after]
        if len(handed) == len(self.symbols):
            return min(handed) + 1
        return first_open - FUNDING_LOOKBACK_NS

    def _perp_map(self) -> dict[str, str]:
        """Each symbol's perpetual on the swap exchange; symbols without one are noted and left out."""
        if self._perps is not None:
            return self._perps
        ex: Any = self.perp_exchange
        self._perps = {}
        if ex is None:
            return self._perps
        with_retries(ex.load_markets, f"{ex.id} swap markets", 5, 1.0, time.sleep)
        missing = []
        for sym in self.symbols:
            perp = perp_symbol(sym)
            market = ex.markets.get(perp) if ex.markets else None
            if market is not None and market.get("swap"):
                self._perps[sym] = perp
            else:
                missing.append(sym)
        if missing:
            self._notes.append(
                f"funding unavailable for {', '.join(missing)}: {ex.id} lists no linear perpetual; those positions "
                "pay no funding"
            )
            log.warning("paper feed: %s", self._notes[-1])
        return self._perps

    def _fetch_funding(self, since_ns: int, now_ns: int) -> dict[str, list[tuple[int, float]]]:
        """Each symbol's funding events settled in [since_ns, now_ns] (ns, ascending), checked like a cache."""
        out: dict[str, list[tuple[int, float]]] = {}
        ex: Any = self.perp_exchange
        for sym, perp in self._perp_map().items():
            series = fetch_funding_history(ex, perp, since_ns // 1_000_000, now_ms=now_ns // 1_000_000)
            check_funding(series).raise_if_failed(f"{ex.id} {perp} funding (live)")
            stamps = pd.DatetimeIndex(series.index).as_unit("ns").asi8.tolist()
            out[sym] = [(int(t), float(r)) for t, r in zip(stamps, series.tolist(), strict=True) if t <= now_ns]
        return out

    def _take_funding(self, funding: dict[str, list[tuple[int, float]]], close_ns: int) -> tuple[FundingEvent, ...]:
        """The events settled by `close_ns` and not handed out yet, in symbol order (then time)."""
        batch: list[FundingEvent] = []
        for sym in self.symbols:
            after = self._funding_after.get(sym)
            for t, rate in funding.get(sym, ()):
                if t > close_ns:
                    break
                if after is None or t > after:
                    batch.append(FundingEvent(sym, t, rate))
                    self._funding_after[sym] = after = t
        return tuple(batch)

    def _read_marks(self, now_ns: int) -> None:
        """Read each perpetual's mark price now; it waits for the first row that closes at or after its time."""
        ex: Any = self.perp_exchange
        for sym, perp in self._perp_map().items():
            try:
                reading = fetch_mark_reading(ex, perp)
            except DataSourceError as exc:  # a missing reading only leaves the last one shown; funding is separate
                log.warning("paper feed: no mark price for %s now (%s)", sym, exc)
                continue
            price = reading.get("markPrice")
            if price is None or not float(price) > 0:
                continue
            taken = max(int(reading.get("timestamp") or 0) * 1_000_000, now_ns)  # never earlier than we had it
            pending = self._marks[sym]
            if taken > self._mark_after.get(sym, -1) and (not pending or taken > pending[-1][0]):
                pending.append((taken, float(price)))

    def _take_marks(self, close_ns: int) -> tuple[MarkPrice, ...]:
        """Per symbol, the newest pending reading taken by `close_ns` (older ones are superseded)."""
        out: list[MarkPrice] = []
        for sym in self.symbols:
            pending = self._marks[sym]
            ready = [m for m in pending if m[0] <= close_ns]
            if ready:
                t, price = ready[-1]
                out.append(MarkPrice(sym, t, price))
                self._mark_after[sym] = t
                self._marks[sym] = [m for m in pending if m[0] > close_ns]
        return tuple(out)


def paper_feed(config: ArenaConfig, exchange_url: str | None = None, clock: Clock | None = None) -> CcxtPaperFeed:
    """The config's live feed: candles from its exchange's spot markets (`ingest.make_candle_exchange`), funding
    and mark prices from the exchange's linear-swap client (`funding_source.make_perp_exchange`); where ccxt has
    none, the feed's `funding_note` says funding is unavailable."""
    from arena_lib.data.funding_source import make_perp_exchange
    from arena_lib.data.ingest import make_candle_exchange

    exchange_id = config.rounds.exchange
    exchange = make_candle_exchange(exchange_id, exchange_url)
    perp: object | None
    try:
        perp, note = make_perp_exchange(exchange_id, exchange_url), ""
    except FundingUnavailableError as exc:
        perp, note = None, f"funding unavailable: {exc}; paper positions pay no funding"
        log.warning("paper feed: %s", note)
    sy, tf, bars = config.market.symbols, config.market.timeframe, config.rounds.history_bars
    return CcxtPaperFeed(exchange, sy, tf, bars, clock=clock, perp_exchange=perp, funding_note=note)


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
