"""`MarketSnapshot`: what every agent sees at one instant, and nothing from later.

A snapshot at bar row `i` is taken at that bar's close. It exposes only bars that closed at or before that time,
funding that has settled by then, and higher timeframes resampled from closed bars. Every agent in a round gets
the same snapshot object; its `content_hash` goes into the decision log.

Access is by views into the feed's arrays, so building a snapshot costs almost nothing and agents that need only a
window of closes never touch pandas.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from arena_lib.core.types import Bar
from arena_lib.data.market import MarketData


class MarketSnapshot:
    """Point-in-time view of a `MarketData` at the close of bar row `index`."""

    __slots__ = ("_hash", "index", "market")

    HASH_WINDOW = 256  # bars per symbol that enter the content hash

    def __init__(self, market: MarketData, index: int) -> None:
        self.market = market
        self.index = index
        self._hash: str | None = None

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.market.symbols

    @property
    def timestamp_ns(self) -> int:
        """Decision time: the close of the current bar, epoch ns UTC."""
        return int(self.market.times[self.index]) + self.market.bar_ns

    @property
    def timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(self.timestamp_ns, tz="UTC")

    def _pos(self, symbol: str) -> int:
        try:
            j = self.market.symbols.index(symbol)
        except ValueError:
            raise KeyError(f"unknown symbol {symbol!r}; this snapshot has {list(self.market.symbols)}") from None
        return int(self.market.position[self.index, j])

    def has_bar(self, symbol: str) -> bool:
        """True when `symbol` has a bar that closed exactly now (False during its data gaps)."""
        return bool(self.market.has_bar[self.index, self.market.symbols.index(symbol)])

    def bar_count(self, symbol: str) -> int:
        """How many closed bars of `symbol` are visible."""
        return self._pos(symbol) + 1

    def close(self, symbol: str) -> float:
        """Latest closed price of `symbol` (NaN before its first bar)."""
        p = self._pos(symbol)
        return float(self.market.series[symbol].close[p]) if p >= 0 else float("nan")

    def closes(self, symbol: str, n: int | None = None) -> np.ndarray:
        """The last `n` closes (all when None), oldest first, as a read-only view."""
        return self._window(symbol, "close", n)

    def _window(self, symbol: str, column: str, n: int | None) -> np.ndarray:
        p = self._pos(symbol) + 1
        arr: np.ndarray = getattr(self.market.series[symbol], column)
        start = 0 if n is None else max(0, p - n)
        view = arr[start:p]
        view.flags.writeable = False
        return view

    def window(self, symbol: str, n: int | None = None) -> dict[str, np.ndarray]:
        """The last `n` bars of every OHLCV column as read-only array views, oldest first."""
        return {c: self._window(symbol, c, n) for c in ("open", "high", "low", "close", "volume")}

    def bar(self, symbol: str) -> Bar:
        """The latest closed bar of `symbol`."""
        p = self._pos(symbol)
        if p < 0:
            raise LookupError(f"{symbol} has no bar at or before {self.timestamp}")
        s = self.market.series[symbol]
        return Bar(
            int(s.times[p]), float(s.open[p]), float(s.high[p]), float(s.low[p]), float(s.close[p]), float(s.volume[p])
        )

    def ohlcv(self, symbol: str, n: int | None = None) -> pd.DataFrame:
        """Closed bars of `symbol` as a DataFrame (UTC index of open times), the last `n` or all."""
        p = self._pos(symbol) + 1
        start = 0 if n is None else max(0, p - n)
        return self.market.series[symbol].frame.iloc[start:p]

    def resampled(self, symbol: str, timeframe: str, n: int | None = None) -> pd.DataFrame:
        """Higher-timeframe bars built from closed bars only: a 4h bar appears once all of its hours closed."""
        from arena_lib.data.resample import resample_ohlcv

        frame = resample_ohlcv(self.ohlcv(symbol), timeframe, as_of=self.timestamp)
        return frame if n is None else frame.iloc[-n:]

    def funding_rate(self, symbol: str) -> float:
        """The latest funding rate settled at or before now (NaN when the symbol has no funding data)."""
        arrays = self.market.funding_arrays.get(symbol)
        if arrays is None:
            return float("nan")
        times, rates = arrays
        k = int(np.searchsorted(times, self.timestamp_ns, side="right"))
        return float(rates[k - 1]) if k > 0 else float("nan")

    def content_hash(self) -> str:
        """Hash of what this snapshot shows: its time and each symbol's last `HASH_WINDOW` closed bars."""
        if self._hash is None:
            h = hashlib.sha256(str(self.timestamp_ns).encode())
            for sym in self.market.symbols:
                h.update(sym.encode())
                for col in ("open", "high", "low", "close", "volume"):
                    h.update(np.ascontiguousarray(self._window(sym, col, self.HASH_WINDOW)).tobytes())
            self._hash = h.hexdigest()[:16]
        return self._hash
