"""The sparse schedule of the expensive features: which bars evaluate them, and how values carry forward.

Why this module exists: the costly estimators (Higuchi FD, sample entropy, the Lyapunov exponent in
``features.complexity``; the HMM refits in ``features.regime``) cannot run on every bar, and skipping bars must not
make a value depend on where a history starts or leak a later evaluation into an earlier bar. Both modules use the
rule defined once here.

The rule: an estimator runs only on bars whose close time is a whole multiple of ``every`` bars since the epoch
(e.g. every 24h at 00:00 UTC), and the bars in between carry the **last past evaluation** forward (never a later
one), so a value may be up to ``every - 1`` bars stale. The schedule depends on timestamps, not on where a history
starts, so truncated and full histories evaluate on the same bars. Such a feature's declared lookback is
``window + every - 1`` (plus one for return-based inputs): ``sparse_lookback``.
"""

from __future__ import annotations

import numpy as np

from arena_lib.data.resample import timeframe_to_ns
from arena_lib.features.registry import FeatureInput, FloatArray


def evaluation_rows(inp: FeatureInput, every: int) -> np.ndarray:
    """Rows whose close time is a whole multiple of ``every`` bars since the epoch (all rows when ``every == 1``)."""
    bar = timeframe_to_ns(inp.timeframe)
    close_bars = (inp.index.as_unit("ns").asi8 + bar) // bar
    return np.flatnonzero(close_bars % every == 0)


def carry_forward(size: int, rows: np.ndarray, values: FloatArray) -> FloatArray:
    """Each row gets the value of the last evaluation row at or before it (NaN before the first)."""
    position = np.searchsorted(rows, np.arange(size), side="right") - 1
    out = np.full(size, np.nan)
    seen = position >= 0
    out[seen] = values[position[seen]]
    return out


def sparse_lookback(window: int, every: int, returns_based: bool) -> int:
    """Declared lookback of a ``window``-bar estimator evaluated every ``every`` bars (one more on returns)."""
    return window - 1 + every - 1 + int(returns_based)
