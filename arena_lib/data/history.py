"""Market history for research: the bundled sample, extended by the bars and funding that `ingest` has cached.

Why: the scheduled `ingest` flow keeps `data/cache/` (or `$ARENA_DATA_CACHE`) current through ccxt, and the
research that runs on a schedule (`retrain`'s walk-forward window, sweeps, the notebooks through
`load_market`) must see those bars, not only the frozen sample; offline, with no cache, the
sample alone is read and nothing changes. Where both hold a bar (or a funding event), the cache's wins: it is the
same exchange's record, fetched later. A symbol that only the cache holds is read from the cache.

Both parts pass their quality checks as they are read (a bad cached candle raises `DataQualityError` naming the
file); a gap between the sample's end and the cache's start is kept as a gap, as the quality report lists it.
Results stay traceable: `MarketData.fingerprint()` and `frame_hash` cover whatever bars were read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import pandas as pd

from arena_lib.data import sample
from arena_lib.data.ccxt_source import OhlcvCache
from arena_lib.data.errors import DataNotFoundError
from arena_lib.data.funding_source import FUNDING_COLUMN, FundingCache, empty_funding
from arena_lib.data.ingest import default_cache_root
from arena_lib.data.loader import load_checked, load_funding
from arena_lib.data.market import MarketData
from arena_lib.data.resample import TimeLike, to_utc_timestamp

Frame = TypeVar("Frame", pd.DataFrame, pd.Series)


def _cache_root(cache_root: Path | str | None) -> Path:
    return Path(cache_root) if cache_root is not None else default_cache_root()


def _newest_wins(older: Frame, newer: Frame) -> Frame:
    """`older` and `newer` as one time-sorted frame; where both have a timestamp, `newer`'s row is kept."""
    if older.empty:
        return newer
    if newer.empty:
        return older
    merged = pd.concat([older, newer])
    return merged[~merged.index.duplicated(keep="last")].sort_index()


def load_bars(
    symbol: str,
    timeframe: str = "1h",
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    cache_root: Path | str | None = None,
) -> pd.DataFrame:
    """OHLCV bars with open times in `[start, end]`: the sample's, extended by the ingest cache's (see the module).

    Raises `DataNotFoundError` when neither holds the symbol at `timeframe` (naming what the sample has).
    """
    pair = sample.normalize_symbol(symbol)
    path = OhlcvCache(_cache_root(cache_root)).path(sample.EXCHANGE, pair, timeframe)
    if not path.is_file():
        return sample.load_sample(pair, timeframe, start, end)
    cached = sample.load_checked_file(path, timeframe)
    try:
        bars = _newest_wins(sample.load_sample(pair, timeframe), cached)
    except DataNotFoundError:  # a symbol only the cache holds
        bars = cached
    return sample.select_window(bars, start, end)


def load_funding_history(
    symbol: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    cache_root: Path | str | None = None,
) -> pd.Series:
    """Funding rates (fraction per event) in `[start, end]`: the sample's, extended by the ingest cache's.

    Funding is optional: a symbol with none in either place reads as an empty series, never an error (an
    unknown symbol is refused by `load_bars`, which callers read first).
    """
    pair = sample.normalize_symbol(symbol)
    path = FundingCache(_cache_root(cache_root)).path(sample.EXCHANGE, pair)
    if not path.is_file():
        return _sample_funding(pair, start, end)
    series = _newest_wins(_sample_funding(pair), load_funding(path)[FUNDING_COLUMN])
    return sample.select_window(series.to_frame(FUNDING_COLUMN), start, end)[FUNDING_COLUMN]


def _sample_funding(pair: str, start: TimeLike | None = None, end: TimeLike | None = None) -> pd.Series:
    """The sample's funding for `pair`, empty where the sample does not know the symbol at all."""
    try:
        return sample.load_sample_funding(pair, start, end)
    except DataNotFoundError:
        return empty_funding()


def latest_bar(symbols: Sequence[str], timeframe: str = "1h", cache_root: Path | str | None = None) -> pd.Timestamp:
    """The newest bar open time that every one of `symbols` has (sample or cache): where a walk-forward ends."""
    return min(load_bars(symbol, timeframe, cache_root=cache_root).index.max() for symbol in symbols)


def load_market(
    symbols: Sequence[str],
    timeframe: str,
    start: str | None = None,
    end: str | None = None,
    data_paths: Sequence[str | Path] | None = None,
) -> MarketData:
    """Bars for `symbols` with funding: the bundled sample extended by what `ingest` cached
    (`arena_lib.data.history`), or user files in the standard format.

    Every frame passes the quality checks first (gaps are allowed and reported; bad candles raise). With
    `data_paths`, each file is one symbol named after its file stem.
    """
    if start is not None and end is not None and to_utc_timestamp(start, "start") >= to_utc_timestamp(end, "end"):
        raise ValueError(f"start {start} must be before end {end}")
    frames: dict[str, pd.DataFrame] = {}
    funding: dict[str, pd.Series] = {}
    if data_paths:
        for path in data_paths:
            frame = load_checked(path, timeframe)
            frames[Path(path).name.split(".")[0]] = sample.select_window(frame, start, end)
    else:
        for sym in symbols:
            norm = sample.normalize_symbol(sym)
            frames[norm] = load_bars(norm, timeframe, start, end)  # quality-checked on load
            funding[norm] = load_funding_history(norm, start, end)
    empty = [s for s, f in frames.items() if f.empty]
    if empty:
        raise ValueError(f"no bars for {empty} between {start} and {end}")
    return MarketData.from_frames(frames, timeframe, funding)
