"""Compute registered features for one symbol or a panel of symbols, with the input checks that make that safe.

Why a pipeline: features share intermediates (log returns, ATR, the 4h bars), so they are computed together on
one ``FeatureInput`` whose cache each intermediate fills once. The pipeline also owns the checks a caller would
otherwise forget: a sorted UTC index, the OHLCV columns, and the context (BTC bars, funding) that some features
need, with errors that say which features need what.

Usage::

    from arena_lib.data.sample import load_sample, load_sample_funding
    from arena_lib.features.pipeline import compute_features

    eth = load_sample("ETH/USDT", "1h", "2024-01-01", "2024-12-31")
    btc = load_sample("BTC/USDT", "1h", "2024-01-01", "2024-12-31")
    X = compute_features(eth, btc=btc, funding=load_sample_funding("ETH/USDT"))

Row ``t`` of the result uses bars at or before ``t`` only (it is what is known at that bar's close); the first
rows are NaN until each feature's ``lookback`` is covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from arena_lib.data.resample import OHLCV_COLUMNS, infer_timeframe, timeframe_to_ns
from arena_lib.features.registry import FEATURES, FeatureInput, FeatureSpec, resolve

BTC_SYMBOL = "BTC/USDT"
_CONTEXT_HINT = {
    "btc": "the BTC bars: pass btc=<BTC/USDT OHLCV frame> (compute_panel takes them from frames['BTC/USDT'])",
    "funding": "the funding series: pass funding=arena_lib.data.sample.load_sample_funding(symbol)",
}


def _check_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """The frame with a UTC index, or a ``ValueError`` saying what is wrong with it."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame of OHLCV bars, got {type(frame).__name__}")
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; expected {list(OHLCV_COLUMNS)}")
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise ValueError(f"{what} must have a tz-aware (UTC) DatetimeIndex of bar open times")
    if not (frame.index.is_monotonic_increasing and frame.index.is_unique):
        raise ValueError(f"{what}'s timestamps must be sorted and unique (run arena_lib.data.quality checks first)")
    if str(frame.index.tz) != "UTC":
        frame = frame.set_axis(frame.index.tz_convert("UTC"))
    return frame


def _input_timeframe(frame: pd.DataFrame, timeframe: str | None) -> str:
    if timeframe is not None:
        timeframe_to_ns(timeframe)  # validates
        return timeframe
    return infer_timeframe(pd.DatetimeIndex(frame.index)) or "1h"


def _buildable(spec: FeatureSpec, timeframe: str) -> bool:
    """Whether ``spec``'s timeframe is the input's or a whole multiple of it."""
    if spec.timeframe == "1h":  # native features run on whatever bars they are given
        return True
    return timeframe_to_ns(spec.timeframe) % timeframe_to_ns(timeframe) == 0


def select(
    names: Iterable[str] | None, *, has_btc: bool, has_funding: bool, timeframe: str = "1h"
) -> list[FeatureSpec]:
    """Specs to compute. Explicit names must all be computable (else ``ValueError`` naming the missing context);
    ``None`` means every registered feature that the given context and input timeframe allow."""
    available = {"btc": has_btc, "funding": has_funding}
    if names is None:
        return [s for s in resolve(None) if all(available[c] for c in s.needs) and _buildable(s, timeframe)]
    specs = resolve(names)
    for context, present in available.items():
        lacking = [s.name for s in specs if context in s.needs and not present]
        if lacking:
            raise ValueError(f"features {lacking} need {_CONTEXT_HINT[context]}")
    unbuildable = [s.name for s in specs if not _buildable(s, timeframe)]
    if unbuildable:
        raise ValueError(f"features {unbuildable} cannot be built from {timeframe} bars (not a whole multiple)")
    return specs


def compute_features(
    frame: pd.DataFrame,
    names: Iterable[str] | None = None,
    *,
    btc: pd.DataFrame | None = None,
    funding: pd.Series | None = None,
    timeframe: str | None = None,
) -> pd.DataFrame:
    """Features of one symbol's bars: one float64 column per name, in registry order, on ``frame``'s index.

    ``names=None`` computes every feature that the given context allows (cross-asset ones only with ``btc``,
    funding ones only with ``funding``); explicitly named features raise ``ValueError`` when their context is
    missing and ``KeyError`` (with close matches) when unknown. ``timeframe`` is the bars' timeframe, inferred from
    the index's median spacing when omitted; pass it for short or gappy histories (a live window of a few bars),
    so that nothing depends on that guess.
    """
    frame = _check_frame(frame, "frame")
    tf = _input_timeframe(frame, timeframe)
    if btc is not None:
        btc = _check_frame(btc, "btc")
    if funding is not None and not isinstance(funding, pd.Series):
        raise TypeError(f"funding must be a pandas Series of rates indexed by settlement time, got {type(funding)}")
    specs = select(names, has_btc=btc is not None, has_funding=funding is not None, timeframe=tf)
    columns = [s.name for s in specs]
    if len(frame) == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns}, index=frame.index)
    inp = FeatureInput(frame, btc=btc, funding=funding, timeframe=tf)
    values: dict[str, np.ndarray] = {}
    for spec in specs:
        out = np.asarray(spec.func(inp), dtype=np.float64)
        if out.shape != (len(frame),):
            raise RuntimeError(f"feature {spec.name!r} returned shape {out.shape}, expected ({len(frame)},)")
        values[spec.name] = out
    return pd.DataFrame(values, index=frame.index, columns=columns)


def compute_panel(
    frames: Mapping[str, pd.DataFrame],
    names: Iterable[str] | None = None,
    funding: Mapping[str, pd.Series] | None = None,
    *,
    btc: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features of several symbols stacked on a ``(timestamp, symbol)`` MultiIndex, sorted by time then symbol.

    ``btc`` defaults to ``frames['BTC/USDT']`` when present. The feature set is decided once for the whole panel,
    so every symbol gets the same columns: with ``funding`` given, a symbol missing from it gets NaN funding
    features (as ``load_sample_funding`` returns an empty series for a symbol without funding).
    """
    if not frames:
        raise ValueError("compute_panel needs at least one symbol's frame")
    if btc is None:
        btc = frames.get(BTC_SYMBOL)
    names_list: Sequence[str] | None = None if names is None else list(names)
    first = _check_frame(next(iter(frames.values())), "frames")
    specs = select(
        names_list, has_btc=btc is not None, has_funding=funding is not None, timeframe=_input_timeframe(first, None)
    )
    chosen = [s.name for s in specs]
    empty_funding = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=np.float64)
    parts = []
    for symbol, frame in frames.items():
        rates = None if funding is None else funding.get(symbol, empty_funding)
        part = compute_features(_check_frame(frame, f"frames[{symbol!r}]"), chosen, btc=btc, funding=rates)
        part.index = pd.MultiIndex.from_arrays(
            [part.index, pd.Index([symbol] * len(part), dtype=object)], names=["timestamp", "symbol"]
        )
        parts.append(part)
    return pd.concat(parts).sort_index(level=["timestamp", "symbol"])


def max_lookback(names: Iterable[str] | None = None) -> int:
    """The longest declared lookback (input bars) among ``names`` (all features when None)."""
    specs = resolve(names)
    return max((s.lookback for s in specs), default=0)


__all__ = ["FEATURES", "compute_features", "compute_panel", "max_lookback", "select"]
