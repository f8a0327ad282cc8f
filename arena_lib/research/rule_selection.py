"""Selection statistics for a trained model's trading rule: PBO and deflated Sharpe over the rule grid tried.

Why: a model's out-of-fold predictions still pass through a trading rule (how far from 0.5 a probability must be
before it trades). Choosing that threshold after looking at out-of-fold backtests is a selection like any grid
search, so the promotion gates ask the same two questions as of a strategy grid: how often does the best-looking
rule fall below the median out of sample (PBO by CSCV), and does the chosen rule's Sharpe survive the number of
rules tried (deflated Sharpe)? Every variant trades the same out-of-fold predictions through the engine with
costs; only the threshold differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from arena_lib.core.config import BacktestConfig
from arena_lib.data.market import MarketData
from arena_lib.research.evaluation import backtest_predictions
from arena_lib.research.overfitting import deflated_sharpe_ratio, pbo_cscv, trial_sharpe_variance

__all__ = ["DEFAULT_THRESHOLDS", "RuleSelection", "rule_selection"]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1)
"""Distances from P(up) = 0.5 (classification) or from 0 (regression) that the notebooks try by default."""


@dataclass(frozen=True)
class RuleSelection:
    """The rule grid's per-bar returns and the two selection statistics the promotion gates read."""

    returns: pd.DataFrame  # one column per threshold, per-bar returns of the out-of-fold backtest
    chosen: str
    pbo: float
    deflated_sharpe: float

    def summary(self) -> dict[str, float]:
        """`pbo`, `deflated_sharpe` and `rule_trials`: the metric names of `arena_lib.workflow.promotion.checks`."""
        return {"pbo": self.pbo, "deflated_sharpe": self.deflated_sharpe, "rule_trials": float(self.returns.shape[1])}


def _label(threshold: float) -> str:
    return f"threshold={threshold:g}"


def rule_selection(
    prediction: pd.Series,
    market: MarketData,
    config: BacktestConfig,
    task: str,
    *,
    threshold: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    fraction: float = 1.0,
    allow_short: bool = True,
    pbo_splits: int = 8,
) -> RuleSelection:
    """Backtest the predictions under every threshold of `thresholds` (plus the chosen `threshold`) and score it.

    Returns the grid's returns, the PBO over the grid, and the deflated Sharpe of the chosen threshold with the
    grid's size as the number of trials.

    Raises:
        ValueError: fewer than two distinct thresholds, a negative threshold, or too few bars for `pbo_splits`
            blocks (the message names the bar count).
    """
    grid = sorted({float(x) for x in (*thresholds, threshold)})
    if any(x < 0 or not math.isfinite(x) for x in grid):
        raise ValueError(f"thresholds must be finite and >= 0, got {grid}")
    if len(grid) < 2:
        raise ValueError(f"a rule selection needs at least two thresholds, got {grid}")
    columns = {}
    for x in grid:
        result = backtest_predictions(
            prediction, market, config, task, threshold=x, fraction=fraction, allow_short=allow_short, name=_label(x)
        )
        columns[_label(x)] = result.equity.pct_change().fillna(0.0)
    returns = pd.DataFrame(columns)
    if len(returns) < 2 * pbo_splits:
        raise ValueError(
            f"{len(returns)} out-of-fold bars are too few for {pbo_splits} CSCV blocks of 2 bars; "
            "use a longer window or fewer pbo_splits"
        )
    chosen = _label(float(threshold))
    selected = returns[chosen].to_numpy(np.float64)
    if np.std(selected) == 0.0:  # the chosen rule never traded: nothing to deflate, and it cannot pass
        dsr = 0.0
    else:
        try:
            variance = trial_sharpe_variance(returns)
        except ValueError:  # fewer than two rules ever traded: the selection cannot be judged, so it is not measured
            variance = math.nan
        dsr = deflated_sharpe_ratio(selected, len(grid), variance) if math.isfinite(variance) else math.nan
    pbo = pbo_cscv(returns, n_splits=pbo_splits).pbo
    return RuleSelection(returns=returns, chosen=chosen, pbo=pbo, deflated_sharpe=float(dsr))
