"""Multi-timeframe features: native features computed on 4h and daily bars, aligned back to the input bars.

Why this needs care: a 4h bar is known only once its last hour has closed. Resampling with a plain
``DataFrame.resample`` would hand the 01:00 row a 4h bar that still contains 02:00 and 03:00, which is look-ahead.
Here the higher-timeframe bars come from ``arena_lib.data.resample.resample_ohlcv``, which emits a bucket only
once it has closed, and each input row sees the latest higher-timeframe bar whose *close time* is at or before
the row's own close time. With hourly input, the 4h bar opening at 00:00 becomes visible on the 03:00 row (which
closes at 04:00) and stays until the next one closes: a forward fill that only ever reaches back in time.

Each feature here is a registered native feature (``rsi_14``, ``ret_1``, ...) evaluated on the higher timeframe,
named ``<native>_<timeframe>``; its window counts higher-timeframe bars. Buckets that lost hours to a data gap
are built from the hours that exist (never filled), as ``resample_ohlcv`` documents.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from arena_lib.data.resample import resample_ohlcv, timeframe_to_ns

# The native features must be registered before their higher-timeframe versions are built from them.
from arena_lib.features import returns as _returns  # noqa: F401
from arena_lib.features import technical as _technical  # noqa: F401
from arena_lib.features import volatility as _volatility  # noqa: F401
from arena_lib.features.registry import FeatureInput, FloatArray, register, registered

HIGHER_TIMEFRAMES: tuple[str, ...] = ("4h", "1d")
MTF_BASES: tuple[str, ...] = (
    "ret_1",
    "ret_4",
    "vol_cc_24",
    "natr_14",
    "rsi_14",
    "stoch_k_14",
    "ema_dist_26",
    "sma_dist_20",
    "macd_hist",
    "adx_14",
    "bb_pctb_20",
    "zscore_close_24",
)


def higher_timeframe(inp: FeatureInput, timeframe: str) -> FeatureInput:
    """The input's closed ``timeframe`` bars as a ``FeatureInput`` of their own (cached on the input)."""

    def build() -> FeatureInput:
        bars = resample_ohlcv(inp.frame, timeframe, source_tf=inp.timeframe)
        return FeatureInput(bars, timeframe=timeframe)

    result: FeatureInput = inp.cached(f"tf:{timeframe}", build)
    return result


def align_to_input(inp: FeatureInput, higher: FeatureInput, values: FloatArray) -> FloatArray:
    """Higher-timeframe values on the input rows: each row gets the last higher bar closed by the row's close."""
    if len(higher) == 0:
        return np.full(len(inp), np.nan)
    higher_close = higher.index.as_unit("ns").asi8 + timeframe_to_ns(higher.timeframe)
    row_close = inp.index.as_unit("ns").asi8 + timeframe_to_ns(inp.timeframe)
    position = np.searchsorted(higher_close, row_close, side="right") - 1
    out = np.full(len(inp), np.nan)
    seen = position >= 0
    out[seen] = np.asarray(values, dtype=np.float64)[position[seen]]
    return out


def _on_higher_timeframe(inp: FeatureInput, base: str, timeframe: str) -> FloatArray:
    if timeframe_to_ns(timeframe) % timeframe_to_ns(inp.timeframe) != 0:
        raise ValueError(f"cannot build {base}_{timeframe} from {inp.timeframe} bars: not a whole multiple")
    higher = higher_timeframe(inp, timeframe)
    values = registered(base).func(higher) if len(higher) else np.array([], dtype=np.float64)
    return align_to_input(inp, higher, values)


def mtf_lookback(base_lookback: int, timeframe: str, source: str = "1h") -> int:
    """Input bars needed for a higher-timeframe value: the base's bars plus the current one, plus a bucket's slack.

    A row sees the bucket closed at or up to ``m - 1`` rows before it (``m`` input bars per bucket), and that bucket
    needs ``base_lookback`` earlier complete buckets: ``(base_lookback + 2) * m`` input bars cover both.
    """
    m = timeframe_to_ns(timeframe) // timeframe_to_ns(source)
    return int((base_lookback + 2) * m)


def _describe(base: str, timeframe: str) -> str:
    native = registered(base).description
    return f"{native} [on closed {timeframe} bars]"


for _tf in HIGHER_TIMEFRAMES:
    for _base in MTF_BASES:
        _spec = registered(_base)
        register(
            f"{_base}_{_tf}",
            lookback=mtf_lookback(_spec.lookback, _tf),
            group="multitimeframe",
            timeframe=_tf,
            recursive=_spec.recursive,
            description=_describe(_base, _tf),
        )(partial(_on_higher_timeframe, base=_base, timeframe=_tf))
