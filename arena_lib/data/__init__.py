"""Market data: the bundled real sample and the ingest cache that extends it (``load_bars``), file loaders,
quality checks, point-in-time resampling, ccxt.

This is the edge of the library that touches files and exchanges; everything above it (features, agents, the
engine) receives clean frames in one format: a tz-aware UTC ``DatetimeIndex`` named ``timestamp`` (bar open time)
and float64 columns ``open, high, low, close, volume``. Importing this package does not import ccxt.
"""

from arena_lib.data.ccxt_source import OhlcvCache, api_urls_for_host, fetch_ohlcv, make_exchange
from arena_lib.data.errors import DataError, DataNotFoundError, DataQualityError, DataSourceError
from arena_lib.data.history import latest_bar, load_bars, load_funding_history
from arena_lib.data.loader import load_checked, load_funding, load_ohlcv, parse_timestamps, timeframe_from_name
from arena_lib.data.quality import Gap, QualityIssue, QualityReport, check_ohlcv
from arena_lib.data.resample import (
    OHLCV_COLUMNS,
    infer_timeframe,
    resample_ohlcv,
    timeframe_to_ns,
    timeframe_to_timedelta,
    to_utc_timestamp,
)
from arena_lib.data.sample import (
    SAMPLE_DIR,
    available_symbols,
    available_timeframes,
    frame_hash,
    load_sample,
    load_sample_funding,
    normalize_symbol,
    sample_dir,
)

__all__ = [
    "OHLCV_COLUMNS",
    "SAMPLE_DIR",
    "DataError",
    "DataNotFoundError",
    "DataQualityError",
    "DataSourceError",
    "Gap",
    "OhlcvCache",
    "QualityIssue",
    "QualityReport",
    "api_urls_for_host",
    "available_symbols",
    "available_timeframes",
    "check_ohlcv",
    "fetch_ohlcv",
    "frame_hash",
    "infer_timeframe",
    "latest_bar",
    "load_bars",
    "load_checked",
    "load_funding",
    "load_funding_history",
    "load_ohlcv",
    "load_sample",
    "load_sample_funding",
    "make_exchange",
    "normalize_symbol",
    "parse_timestamps",
    "resample_ohlcv",
    "sample_dir",
    "timeframe_from_name",
    "timeframe_to_ns",
    "timeframe_to_timedelta",
    "to_utc_timestamp",
]
