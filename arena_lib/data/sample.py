"""The bundled offline sample of real Binance data (``data/sample/``), and a stable hash of any frame.

Why: notebooks, tests and demos must run with no network and no keys, on real market data rather than random
walks. The sample holds 1h bars of six majors from 2022 on, their full daily bars, and BTC/ETH perpetual funding
(see ``data/README.md`` for provenance and gaps). Every load runs the quality checks, so a corrupted or
hand-edited sample fails loudly instead of skewing results.

``frame_hash`` gives the content hash that runs log next to their results, so a number can be traced to the exact
bars that produced it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from arena_lib.core.settings import BUNDLED_SAMPLE_DIR, settings
from arena_lib.data.errors import DataNotFoundError
from arena_lib.data.loader import load_checked, load_funding
from arena_lib.data.resample import TimeLike, timeframe_to_ns, to_utc_timestamp

ENV_VAR = "ARENA_DATA_DIR"
"""The variable that points the library at another copy of the sample (`Settings.data_dir`)."""
DEFAULT_SAMPLE_DIR = BUNDLED_SAMPLE_DIR
EXCHANGE = "binance"
FUNDING_EXCHANGE = "binance-usdm"
DEFAULT_QUOTE = "USDT"
_OHLCV_FILE = re.compile(
    r"^(?P<exchange>[a-z0-9-]+)_(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)_(?P<tf>\d+[smhdw])\.parquet$"
)


def sample_dir() -> Path:
    """Folder holding the sample files: ``$ARENA_DATA_DIR`` when set, else the repository's ``data/sample``.

    Read at call time, so a test or a deployment can point the library at another copy without reimporting.
    """
    return settings().sample_dir


def __getattr__(name: str) -> Path:
    """``SAMPLE_DIR``: the sample folder, resolved each time it is read (importing this module reads no environment)."""
    if name == "SAMPLE_DIR":
        return sample_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def normalize_symbol(symbol: str, quote: str = DEFAULT_QUOTE) -> str:
    """``'BTC/USDT'``, ``'BTC-USDT'``, ``'btc'`` -> ``'BTC/USDT'`` (a bare base gets the default quote)."""
    text = symbol.strip().upper()
    if not text:
        raise ValueError("symbol must not be empty")
    text = text.split(":")[0]  # 'BTC/USDT:USDT' (a ccxt swap symbol) -> its spot pair
    for sep in ("/", "-", "_"):
        if sep in text:
            base, _, q = text.partition(sep)
            return f"{base}/{q}"
    return f"{text}/{quote}"


def _file_symbol(symbol: str) -> str:
    return normalize_symbol(symbol).replace("/", "-")


def _ohlcv_files(folder: Path) -> dict[tuple[str, str], Path]:
    """(symbol, timeframe) -> path for every sample OHLCV file of the sample exchange."""
    found: dict[tuple[str, str], Path] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _OHLCV_FILE.match(path.name)
            if match and match["exchange"] == EXCHANGE:
                found[(f"{match['base']}/{match['quote']}", match["tf"])] = path
    return found


def available_timeframes() -> list[str]:
    """Timeframes with at least one sample file, shortest first."""
    return sorted({tf for _, tf in _ohlcv_files(sample_dir())}, key=timeframe_to_ns)


def available_symbols(timeframe: str = "1h") -> list[str]:
    """ccxt symbols (``'BTC/USDT'``) that the sample holds for ``timeframe``; empty when none."""
    return sorted(sym for sym, tf in _ohlcv_files(sample_dir()) if tf == timeframe)


_CACHE: dict[tuple[str, int, int], pd.DataFrame] = {}


def load_checked_file(path: Path, timeframe: str) -> pd.DataFrame:
    """An OHLCV file's quality-checked frame, kept per file version (path, mtime, size) so reloads cost nothing.

    For the sample's files and the ingest cache's (`arena_lib.data.history`); a rewritten file is read again.
    """
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE[key] = load_checked(path, timeframe)
    return _CACHE[key]


def select_window(frame: pd.DataFrame, start: TimeLike | None, end: TimeLike | None) -> pd.DataFrame:
    """Bars with open times in ``[start, end]`` (inclusive; naive times read as UTC); start after end raises."""
    lo = to_utc_timestamp(start, "start") if start is not None else None
    hi = to_utc_timestamp(end, "end") if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {lo.isoformat()} is after end {hi.isoformat()}; expected start <= end")
    mask = np.ones(len(frame), dtype=bool)
    if lo is not None:
        mask &= frame.index >= lo
    if hi is not None:
        mask &= frame.index <= hi
    return frame.loc[mask].copy()


def load_sample(
    symbol: str,
    timeframe: str = "1h",
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> pd.DataFrame:
    """OHLCV bars of the bundled sample, quality-checked, with bar open times in ``[start, end]`` (inclusive).

    ``symbol`` may be ``'BTC/USDT'``, ``'BTC-USDT'`` or ``'BTC'``. Naive ``start``/``end`` are read as UTC.
    Gaps are kept as they are (the quality report lists them). Raises ``DataNotFoundError`` listing what is
    available for an unknown symbol or timeframe, and ``ValueError`` when ``start`` is after ``end``.
    """
    files = _ohlcv_files(sample_dir())
    timeframes = sorted({tf for _, tf in files})
    if timeframe not in timeframes:
        raise DataNotFoundError(
            f"no sample data for timeframe {timeframe!r}; available timeframes: {', '.join(timeframes) or 'none'} "
            f"(in {sample_dir()}). Build higher timeframes with resample_ohlcv()."
        )
    norm = normalize_symbol(symbol)
    path = files.get((norm, timeframe))
    if path is None:
        symbols = sorted(sym for sym, tf in files if tf == timeframe)
        raise DataNotFoundError(
            f"no sample data for symbol {symbol!r} ({norm}) at {timeframe}; available symbols: {', '.join(symbols)}"
        )
    return select_window(load_checked_file(path, timeframe), start, end)


def load_sample_funding(
    symbol: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> pd.Series:
    """Perpetual funding rates (fraction per 8h event) for a sample symbol, indexed by settlement time (UTC).

    Symbols that are in the sample but have no funding file get an empty series, so callers can treat "no
    funding" uniformly; a symbol that is not in the sample at all raises ``DataNotFoundError``.
    """
    norm = normalize_symbol(symbol)
    folder = sample_dir()
    path = folder / f"{FUNDING_EXCHANGE}_{_file_symbol(norm)}-PERP_funding_8h.parquet"
    if not path.is_file():
        known = sorted({sym for sym, _ in _ohlcv_files(folder)})
        if norm not in known:
            raise DataNotFoundError(f"symbol {symbol!r} ({norm}) is not in the sample; available: {', '.join(known)}")
        empty_index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="timestamp")
        return pd.Series([], index=empty_index, dtype="float64", name="funding_rate")
    frame = select_window(load_funding(path), start, end)
    return frame["funding_rate"]


def frame_hash(df: pd.DataFrame | pd.Series) -> str:
    """SHA-256 of a frame's index, column names and values: stable across runs, processes and machines.

    Runs log it as the data hash, so a result can be traced to the exact bars behind it. Timestamps are hashed as
    UTC epoch nanoseconds (independent of the index unit); numeric columns as little-endian float64.
    """
    frame = df.to_frame() if isinstance(df, pd.Series) else df
    digest = hashlib.sha256()
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        utc = index.tz_convert("UTC") if index.tz is not None else index
        digest.update(b"index:datetime-ns-utc\0")
        digest.update(np.ascontiguousarray(utc.as_unit("ns").asi8, dtype="<i8").tobytes())
    else:
        digest.update(b"index:str\0")
        digest.update("\0".join(map(str, index)).encode())
    for name in frame.columns:
        digest.update(f"\0column:{name}\0".encode())
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
            digest.update(np.ascontiguousarray(column.to_numpy(dtype=np.float64), dtype="<f8").tobytes())
        else:
            digest.update("\0".join(map(str, column)).encode())
    return digest.hexdigest()
