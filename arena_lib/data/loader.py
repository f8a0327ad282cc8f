"""Read OHLCV and funding files (CSV, gzip CSV, parquet) into the project's frame format.

Why one loader: every entry point (the bundled sample, a user's own download, the ccxt cache) should produce the
same shape, so features and the engine are written once against it: a tz-aware UTC ``DatetimeIndex`` named
``timestamp`` (bar open time, nanosecond unit) and float64 columns ``open, high, low, close, volume``.

The loader converts formats but does not judge: it never sorts, deduplicates or fills, so that the quality checks
see the file exactly as it is. ``load_checked`` is the one-call "load and refuse bad data" path.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from arena_lib.data.errors import DataError, DataNotFoundError, DataQualityError
from arena_lib.data.quality import check_ohlcv
from arena_lib.data.resample import OHLCV_COLUMNS

FUNDING_COLUMNS: tuple[str, ...] = ("funding_rate",)
_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
_TIMEFRAME_IN_NAME = re.compile(r"_(\d+[smhdw])(?:\.|$)")
# Epoch milliseconds below this (1973-03-03) are far more likely epoch *seconds*: refuse to guess.
_MIN_EPOCH_MS = 100_000_000_000


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        folder = path.parent
        near = sorted(p.name for p in folder.iterdir() if p.name.endswith(_SUFFIXES)) if folder.is_dir() else []
        listing = f"; files there: {', '.join(near)}" if near else f"; no data files in {folder}"
        raise DataNotFoundError(f"no such data file: {path}{listing}")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            if "timestamp" not in frame.columns and frame.index.name == "timestamp":
                frame = frame.reset_index()
            return frame
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    raise DataError(f"unsupported file type {path.name!r}; expected one of {', '.join(_SUFFIXES)}")


def parse_timestamps(values: pd.Series, source: str = "data") -> pd.DatetimeIndex:
    """Parse ISO-8601 strings or epoch-millisecond integers into a UTC ``DatetimeIndex`` (unit ns).

    Naive ISO strings are read as UTC. Raises ``DataError`` naming the first unparseable values and their rows.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.to_datetime(values, utc=True)
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        is_integer_like = numeric.notna().all() and bool((numeric == np.floor(numeric)).all())
        if len(values) and is_integer_like:
            ints = numeric.astype("int64")
            if int(ints.abs().max()) < _MIN_EPOCH_MS:
                raise DataError(
                    f"{source}: integer timestamps look like epoch seconds (max {int(ints.max())}); "
                    "expected epoch milliseconds"
                )
            parsed = pd.to_datetime(ints, unit="ms", utc=True)
        else:
            parsed = pd.to_datetime(values.astype("string"), utc=True, format="ISO8601", errors="coerce")
            bad = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
            if len(bad):
                examples = ", ".join(f"row {i}: {values.iloc[i]!r}" for i in bad[:5])
                raise DataError(
                    f"{source}: {len(bad)} unparseable timestamps ({examples}); expected ISO-8601 like "
                    "'2024-01-01T00:00:00Z' or epoch milliseconds"
                )
    return pd.DatetimeIndex(parsed).as_unit("ns").rename("timestamp")


def _to_frame(raw: pd.DataFrame, columns: tuple[str, ...], source: str) -> pd.DataFrame:
    required = ("timestamp", *columns)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise DataError(
            f"{source}: missing columns {missing}; expected {list(required)}, found {list(map(str, raw.columns))}"
        )
    index = parse_timestamps(raw["timestamp"], source)
    out: dict[str, np.ndarray] = {}
    for name in columns:
        try:
            out[name] = pd.to_numeric(raw[name]).to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: column {name!r} is not numeric ({exc})") from exc
    return pd.DataFrame(out, index=index)


def load_ohlcv(path: str | Path) -> pd.DataFrame:
    """Load ``timestamp,open,high,low,close,volume`` from CSV, CSV.gz or parquet, in file order.

    Extra columns are dropped. Nothing is sorted, deduplicated or filled; use ``load_checked`` or
    ``check_ohlcv`` to validate.
    """
    path = Path(path)
    return _to_frame(_read_table(path), OHLCV_COLUMNS, str(path))


def load_funding(path: str | Path) -> pd.DataFrame:
    """Load ``timestamp,funding_rate`` (rate per funding event, as a fraction) in file order."""
    path = Path(path)
    return _to_frame(_read_table(path), FUNDING_COLUMNS, str(path))


def timeframe_from_name(path: str | Path) -> str | None:
    """The timeframe encoded in a file name like ``binance_BTC-USDT_1h.parquet``, or ``None``."""
    match = _TIMEFRAME_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def load_checked(path: str | Path, timeframe: str | None = None) -> pd.DataFrame:
    """Load an OHLCV file and refuse it when the quality checks find errors (gaps alone are fine).

    The timeframe comes from the argument, else from the file name (``_1h.``), else from the median spacing.
    Raises ``DataQualityError`` carrying the full report.
    """
    frame = load_ohlcv(path)
    report = check_ohlcv(frame, timeframe or timeframe_from_name(path))
    if not report.ok:
        raise DataQualityError(report, context=str(path))
    return frame
