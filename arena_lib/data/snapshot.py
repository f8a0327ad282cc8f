"""`MarketSnapshot`: what every agent sees at one instant, and nothing from later.

A snapshot is taken at the close of the newest bar row of a `MarketTape`, the market as the loop has received it
so far. It exposes only bars that closed at or before that time, funding that has settled by then, and higher
timeframes resampled from closed bars. Point in time holds by construction, not by discipline: the tape holds no
later bar when the snapshot is taken, every array a snapshot returns is a fresh copy (its `.base` reaches nothing),
and a snapshot keeps its own row count, so a tape that grows later does not change what it shows.

Every agent in a round gets the same snapshot object; its `content_hash` goes into the decision log.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from arena_lib.core.types import Bar
from arena_lib.data.market import OHLCV, MarketData
from arena_lib.data.tape import CLOSE, MarketTape, tape_upto


class MarketSnapshot:
    """Point-in-time view of a market at the close of one bar row.

    Build it from the loop's `MarketTape` (its newest row), or from a whole `MarketData` and a row index: the
    latter copies rows up to `index` into a tape of its own first (for research tools and tests).
    """

    __slots__ = ("_hash", "_n", "_tape")

    HASH_WINDOW = 256  # bars per symbol that enter the content hash

    def __init__(self, source: MarketTape | MarketData, index: int | None = None) -> None:
        if isinstance(source, MarketData):
            if index is None:
                raise TypeError("a snapshot of a MarketData needs the row index")
            source = tape_upto(source, index)
        elif index is not None and index != source.n_rows - 1:
            raise ValueError(f"a snapshot of a tape is taken at its newest row ({source.n_rows - 1}), not {index}")
        if source.n_rows == 0:
            raise ValueError("a snapshot needs at least one closed bar row")
        self._tape = source
        self._n = source.n_rows
        self._hash: str | None = None

    @classmethod
    def of(cls, tape: MarketTape) -> MarketSnapshot:
        """The snapshot at `tape`'s newest row (the loop's path: no checks, nothing copied)."""
        snap = cls.__new__(cls)
        snap._tape = tape
        snap._n = tape.n_rows
        snap._hash = None
        return snap

    @property
    def index(self) -> int:
        """The row this snapshot was taken at: its position on the feed's timeline (0 is the first bar row)."""
        return self._n - 1

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._tape.symbols

    @property
    def timeframe(self) -> str:
        return self._tape.timeframe

    @property
    def bar_ns(self) -> int:
        return self._tape.bar_ns

    @property
    def timestamp_ns(self) -> int:
        """Decision time: the close of the current bar, epoch ns UTC."""
        return int(self._tape._times[self._n - 1]) + self._tape.bar_ns

    @property
    def timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(self.timestamp_ns, tz="UTC")

    def _j(self, symbol: str) -> int:
        try:
            return self._tape._index[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}; this snapshot has {list(self.symbols)}") from None

    def has_bar(self, symbol: str) -> bool:
        """True when `symbol` has a bar that closed exactly now (False during its data gaps)."""
        return self._tape.has_bar(self._j(symbol), self._n - 1)

    def bar_count(self, symbol: str) -> int:
        """How many closed bars of `symbol` are visible."""
        return self._tape.bar_count(self._j(symbol), self._n)

    def close(self, symbol: str) -> float:
        """Latest closed price of `symbol` (NaN before its first bar)."""
        return self._tape.last_value(self._j(symbol), CLOSE, self._n)

    def closes(self, symbol: str, n: int | None = None) -> np.ndarray:
        """The last `n` closes (all when None), oldest first, as a read-only copy."""
        return self._column(symbol, CLOSE, n)

    def _column(self, symbol: str, field: int, n: int | None) -> np.ndarray:
        arr = self._tape.column(self._j(symbol), field, self._n, n)
        arr.flags.writeable = False
        return arr

    def times(self, symbol: str, n: int | None = None) -> np.ndarray:
        """Open times (epoch ns) of the last `n` closed bars of `symbol`, oldest first."""
        arr = self._tape.own_times(self._j(symbol), self._n, n)
        arr.flags.writeable = False
        return arr

    def window(self, symbol: str, n: int | None = None) -> dict[str, np.ndarray]:
        """The last `n` bars of every OHLCV column as read-only arrays, oldest first."""
        return {c: self._column(symbol, k, n) for k, c in enumerate(OHLCV)}

    def bar(self, symbol: str) -> Bar:
        """The latest closed bar of `symbol`."""
        j = self._j(symbol)
        if self._tape.bar_count(j, self._n) <= 0:
            raise LookupError(f"{symbol} has no bar at or before {self.timestamp}")
        w = self.window(symbol, 1)
        t = self._tape.own_times(j, self._n, 1)
        return Bar(
            int(t[0]),
            float(w["open"][0]),
            float(w["high"][0]),
            float(w["low"][0]),
            float(w["close"][0]),
            float(w["volume"][0]),
        )

    def ohlcv(self, symbol: str, n: int | None = None) -> pd.DataFrame:
        """Closed bars of `symbol` as a DataFrame (UTC index of open times), the last `n` or all."""
        return self._tape.frame(self._j(symbol), self._n, n)

    def resampled(self, symbol: str, timeframe: str, n: int | None = None) -> pd.DataFrame:
        """Higher-timeframe bars built from closed bars only: a 4h bar appears once all of its hours closed."""
        from arena_lib.data.resample import resample_ohlcv

        frame = resample_ohlcv(self.ohlcv(symbol), timeframe, as_of=self.timestamp, source_tf=self.timeframe)
        return frame if n is None else frame.iloc[-n:]

    def funding_rate(self, symbol: str) -> float:
        """The latest funding rate settled at or before now (NaN when none has been observed)."""
        _, rates = self._tape.funding_history(self._j(symbol), self.timestamp_ns)
        return float(rates[-1]) if len(rates) else float("nan")

    def mark_price(self, symbol: str) -> float:
        """The perpetual's latest mark price read at or before now (NaN when the feed provides none, e.g. replays)."""
        reading = self._tape.mark_price(self._j(symbol), self.timestamp_ns)
        return float("nan") if reading is None else reading[1]

    def funding_history(self, symbol: str) -> pd.Series:
        """Every funding rate of `symbol` settled at or before now, indexed by settlement time (UTC)."""
        times, rates = self._tape.funding_history(self._j(symbol), self.timestamp_ns)
        from arena_lib.data.market import ns_to_index

        return pd.Series(rates, index=ns_to_index(times), name="funding_rate")

    def content_hash(self) -> str:
        """Hash of what this snapshot shows: its time and each symbol's last `HASH_WINDOW` closed bars."""
        if self._hash is None:
            h = hashlib.sha256(str(self.timestamp_ns).encode())
            for j, sym in enumerate(self.symbols):
                h.update(sym.encode())
                for k in range(5):
                    h.update(self._tape.column(j, k, self._n, self.HASH_WINDOW).tobytes())
            self._hash = h.hexdigest()[:16]
        return self._hash
