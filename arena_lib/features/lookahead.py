"""The look-ahead check, as a library function: recompute features on truncated histories, require identical values.

Why in the library and not only in the tests: the test suite proves every *registered* feature point-in-time, but a
researcher's feature list, a model's inputs or a new feature module deserve the same check at the moment they are
used, and the promotion gates record its outcome. The method is freqtrade's lookahead-analysis: compute once on the
full history, then on histories cut at several points (with the BTC context and the funding cut to what was known
at each cut) and compare every value at or before the cut. A causal computation gives *identical* values, so not
even rounding may differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from arena_lib.data.resample import infer_timeframe, timeframe_to_ns

__all__ = ["Compute", "default_cuts", "known_at", "lookahead_check", "truncation_mismatches"]

Compute = Callable[[pd.DataFrame, pd.DataFrame | None, pd.Series | None], pd.DataFrame]


def known_at(
    frame: pd.DataFrame, btc: pd.DataFrame | None, funding: pd.Series | None, cut: int
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.Series | None]:
    """What was known at the close of row `cut`: bars up to it, BTC bars up to it, funding settled by its close."""
    t = frame.index[cut]
    bar = pd.Timedelta(timeframe_to_ns(infer_timeframe(pd.DatetimeIndex(frame.index)) or "1h"), "ns")
    return (
        frame.iloc[: cut + 1],
        None if btc is None else btc.loc[:t],
        None if funding is None else funding.loc[: t + bar],
    )


def truncation_mismatches(
    compute: Compute,
    frame: pd.DataFrame,
    btc: pd.DataFrame | None,
    funding: pd.Series | None,
    cuts: Sequence[int],
) -> dict[str, int]:
    """Column -> the first cut at which a value at or before the cut differs from the full history's (empty: none)."""
    full = compute(frame, btc, funding)
    bad: dict[str, int] = {}
    for cut in cuts:
        if not 0 <= cut < len(frame):
            raise ValueError(f"cut {cut} is outside the history's {len(frame)} rows")
        part = compute(*known_at(frame, btc, funding, cut))
        for name in full.columns:
            expected = full[name].to_numpy()[: cut + 1]
            got = part[name].to_numpy()
            same = (got == expected) | (np.isnan(got) & np.isnan(expected))
            if name not in bad and not same.all():
                bad[name] = cut
    return bad


def default_cuts(n_rows: int, n_cuts: int = 5, seed: int = 0) -> list[int]:
    """`n_cuts` distinct rows spread over the second half of a history (so that warm-ups are done), reproducibly."""
    if n_rows < 2 * n_cuts + 2:
        raise ValueError(f"a look-ahead check with {n_cuts} cuts needs at least {2 * n_cuts + 2} rows, got {n_rows}")
    rng = np.random.default_rng(seed)
    return sorted(int(c) for c in rng.choice(np.arange(n_rows // 2, n_rows - 1), size=n_cuts, replace=False))


def lookahead_check(
    frame: pd.DataFrame,
    names: Sequence[str],
    *,
    btc: pd.DataFrame | None = None,
    funding: pd.Series | None = None,
    cuts: Sequence[int] | None = None,
    seed: int = 0,
) -> dict[str, pd.Timestamp]:
    """Features among `names` whose values change when the future is cut off, with the first bar that shows it.

    An empty result means the check passed. `cuts` default to five random rows of the history's second half.
    """
    from arena_lib.features.pipeline import compute_features

    def compute(f: pd.DataFrame, b: pd.DataFrame | None, r: pd.Series | None) -> pd.DataFrame:
        return compute_features(f, names, btc=b, funding=r)

    chosen = list(cuts) if cuts is not None else default_cuts(len(frame), seed=seed)
    bad = truncation_mismatches(compute, frame, btc, funding, chosen)
    return {name: frame.index[cut] for name, cut in bad.items()}
