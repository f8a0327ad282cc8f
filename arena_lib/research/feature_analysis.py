"""Which features carry information about the next period, and how steadily? Information coefficients by period.

The information coefficient (IC) of a feature is the Spearman rank correlation between its value at a bar and the
forward return from that bar (Grinold and Kahn, *Active Portfolio Management*, 2000). One IC over the whole sample
hides regimes, so the IC is also computed per calendar period (a month by default); the mean of those over their
standard deviation is the IC information ratio, and the share of periods with the overall sign says whether the
relation is stable or an accident of one stretch of data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["feature_ic_table", "redundant_pairs"]


def _rank_ic(feature: pd.Series, forward: pd.Series) -> float:
    ok = feature.notna() & forward.notna()
    if ok.sum() < 3 or feature[ok].nunique() < 2 or forward[ok].nunique() < 2:
        return float("nan")
    return float(feature[ok].rank().corr(forward[ok].rank()))


def feature_ic_table(X: pd.DataFrame, forward_return: pd.Series, period: str = "MS") -> pd.DataFrame:
    """Per feature: overall IC, mean and std of per-period ICs, IC IR, share of periods with the overall sign.

    `X` and `forward_return` share an index whose first level (or the index itself) is the bar's UTC timestamp,
    e.g. a `Dataset`'s `X` and `forward_return`. Rows are sorted by |IC| descending.
    """
    if not X.index.equals(forward_return.index):
        raise ValueError("X and forward_return must share one index (take both from the same Dataset)")
    times = X.index.get_level_values(0) if isinstance(X.index, pd.MultiIndex) else X.index
    buckets = pd.DatetimeIndex(times).tz_convert("UTC").tz_localize(None).to_period(period[0])
    rows = []
    for name in X.columns:
        overall = _rank_ic(X[name], forward_return)
        per_period = pd.Series(
            {p: _rank_ic(X[name][buckets == p], forward_return[buckets == p]) for p in buckets.unique()}
        ).dropna()
        std = float(per_period.std(ddof=1)) if len(per_period) > 1 else float("nan")
        rows.append(
            {
                "feature": name,
                "ic": overall,
                "mean_period_ic": float(per_period.mean()) if len(per_period) else float("nan"),
                "std_period_ic": std,
                "ic_ir": float(per_period.mean() / std) if std and np.isfinite(std) and std > 0 else float("nan"),
                "same_sign_share": float((np.sign(per_period) == np.sign(overall)).mean())
                if len(per_period) and np.isfinite(overall)
                else float("nan"),
                "periods": len(per_period),
            }
        )
    table = pd.DataFrame(rows).set_index("feature")
    return table.reindex(table["ic"].abs().sort_values(ascending=False).index)


def redundant_pairs(X: pd.DataFrame, threshold: float = 0.9) -> pd.DataFrame:
    """Feature pairs whose absolute Spearman correlation is at least `threshold` (candidates to drop one of)."""
    corr = X.rank().corr()
    upper = corr.where(np.triu(np.ones(corr.shape, dtype=bool), k=1))
    stacked = upper.stack()
    pairs = pd.DataFrame(
        {
            "feature_a": stacked.index.get_level_values(0),
            "feature_b": stacked.index.get_level_values(1),
            "spearman": stacked.to_numpy(),
        }
    )
    return pairs[pairs["spearman"].abs() >= threshold].sort_values("spearman", key=np.abs, ascending=False)
