"""One call that validates a strategy honestly: walk-forward selection, PBO, deflated Sharpe, robustness, Monte Carlo.

Why one call: each statistic alone is easy to game. A grid search reports its best variant's in-sample Sharpe;
`validate_strategy` instead reports what choosing the best variant *on past data only* earned on the data that
followed (walk-forward), how often such a choice is worse than the median out of sample (PBO by CSCV), whether
the selected Sharpe survives the number of variants tried (deflated Sharpe), how wide its uncertainty is
(bootstrap interval), whether it sits on a plateau or a cliff (+-20% parameters, late entries), and what drawdowns
its returns imply (Monte Carlo). The result's `summary()` is the flat record that the promotion gates read.

Every variant runs on Arena's own engine (batch kernel, with the config's fees and slippage) over the whole
market once; folds are then windows of those per-bar returns. A fold's out-of-sample returns thus include a
position opened late in its training window, which is what a live job that switched variants at the fold
boundary would also hold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from arena_lib.agents.registry import make_agent
from arena_lib.analytics.metrics import max_drawdown
from arena_lib.core.config import BacktestConfig
from arena_lib.data.market import MarketData
from arena_lib.engine.backtest import backtest
from arena_lib.engine.results import BacktestResult
from arena_lib.research.bootstrap import (
    SharpeInterval,
    equity_from_returns,
    sharpe_confidence_interval,
    sharpe_ratio,
)
from arena_lib.research.montecarlo import MonteCarloResult, SimMethod, drawdown_distribution
from arena_lib.research.overfitting import (
    PBOResult,
    WalkForwardSummary,
    deflated_sharpe_ratio,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    trial_sharpe_variance,
    walk_forward_oos,
)
from arena_lib.research.robustness import backtest_metric, entry_delay_robustness, parameter_sensitivity
from arena_lib.research.splits import walk_forward_splits

__all__ = ["DEFAULT_BASELINES", "StrategyValidation", "expand_grid", "run_variants", "validate_strategy"]

DEFAULT_BASELINES: tuple[str, ...] = ("buy_and_hold", "noop")


def expand_grid(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of `grid`'s values on top of `base` (grid keys override base keys)."""
    if not grid:
        return [dict(base)]
    empty = [k for k, v in grid.items() if len(v) == 0]
    if empty:
        raise ValueError(f"grid parameters {empty} have no values")
    keys = list(grid)
    return [{**base, **dict(zip(keys, values, strict=True))} for values in itertools.product(*grid.values())]


def _label(params: Mapping[str, Any], grid_keys: Sequence[str]) -> str:
    return ",".join(f"{k}={params[k]}" for k in grid_keys) or "base"


def _bar_returns(result: BacktestResult) -> pd.Series:
    return result.equity.pct_change().fillna(0.0)


def run_variants(
    agent: str, variants: Sequence[Mapping[str, Any]], market: MarketData, config: BacktestConfig, labels: Sequence[str]
) -> dict[str, BacktestResult]:
    """Backtest each parameter variant of registry agent `agent` on the engine (batch kernel when it has one)."""
    results: dict[str, BacktestResult] = {}
    for label, params in zip(labels, variants, strict=True):
        results[label] = backtest(make_agent(agent, params, label=label), market, config)
    return results


def _entries_between(result: BacktestResult, start: pd.Timestamp, end: pd.Timestamp) -> int:
    fills = result.fills
    if fills.empty:
        return 0
    times = pd.DatetimeIndex(fills["timestamp"])
    entries = fills["kind"].astype(str) == "entry"
    return int((entries & (times >= start) & (times <= end)).sum())


@dataclass(frozen=True)
class StrategyValidation:
    """Everything `validate_strategy` measured; `summary()` flattens it for MLflow and the promotion gates."""

    agent: str
    selected: str
    selected_params: dict[str, Any]
    variants: pd.DataFrame
    returns: pd.DataFrame
    walk_forward: WalkForwardSummary
    fold_choices: pd.DataFrame
    oos_returns: pd.Series
    oos_trades: int
    baselines: dict[str, float]
    pbo: PBOResult
    deflated_sharpe: float
    probabilistic_sharpe: float
    sharpe_ci: SharpeInterval
    sensitivity: pd.DataFrame
    entry_delay: pd.DataFrame
    monte_carlo: dict[str, MonteCarloResult] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Flat scalars: walk-forward, baselines (`baseline_<name>_oos_sharpe`), PBO, DSR, CI, robustness, MC."""
        out: dict[str, float] = {f"wf_{k}": float(v) for k, v in self.walk_forward.summary().items()}
        out["wf_oos_max_drawdown"] = max_drawdown(equity_from_returns(self.oos_returns.to_numpy()))
        out["oos_trades"] = float(self.oos_trades)
        out.update({f"baseline_{k}_oos_sharpe": v for k, v in self.baselines.items()})
        finite = [v for v in self.baselines.values() if math.isfinite(v)]
        out["best_baseline_oos_sharpe"] = max(finite) if finite else math.nan
        out.update({f"pbo_{k}" if k != "pbo" else k: float(v) for k, v in self.pbo.summary().items()})
        out["deflated_sharpe"] = self.deflated_sharpe
        out["probabilistic_sharpe"] = self.probabilistic_sharpe
        out["sharpe_ci_low"], out["sharpe"], out["sharpe_ci_high"] = self.sharpe_ci
        base = float(self.sensitivity["metric"].iloc[0])
        others = self.sensitivity["metric"].iloc[1:]
        out["sensitivity_worst_metric"] = float(others.min()) if len(others) else base
        out["sensitivity_cliffs"] = float(self.sensitivity["cliff"].sum()) if "cliff" in self.sensitivity else 0.0
        out["entry_delay_1_metric"] = float(self.entry_delay["metric"].get(1, math.nan))
        for method, mc in self.monte_carlo.items():
            out[f"mc_{method}_max_drawdown_q0.05"] = mc.quantiles["max_drawdown"].get(0.05, math.nan)
            out[f"mc_{method}_risk_of_ruin_50"] = mc.risk_of_ruin(0.5)
        return out


def _best_sharpe(columns: pd.Index, values: np.ndarray) -> str:
    """The column (variant) with the highest Sharpe over `values`' rows; an undefined Sharpe ranks last."""
    sharpes = [sharpe_ratio(values[:, j]) for j in range(len(columns))]
    return str(columns[max(range(len(columns)), key=lambda j: -math.inf if math.isnan(sharpes[j]) else sharpes[j])])


def _fold_sizes(n_bars: int, n_folds: int) -> tuple[int, int]:
    """Expanding walk-forward: the first training window and each test window get n / (n_folds + 1) bars."""
    size = n_bars // (n_folds + 1)
    if size < 2:
        raise ValueError(
            f"walk-forward with {n_folds} folds needs at least {2 * (n_folds + 1)} bars, the market has {n_bars}"
        )
    return size, size


def validate_strategy(
    agent: str,
    grid: Mapping[str, Sequence[Any]],
    market: MarketData,
    config: BacktestConfig,
    *,
    base_params: Mapping[str, Any] | None = None,
    n_folds: int = 4,
    pbo_splits: int = 8,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    mc_methods: Sequence[SimMethod] = ("block_bootstrap", "gbm", "garch"),
    mc_paths: int = 500,
    seed: int = 0,
) -> StrategyValidation:
    """Validate registry agent `agent` over the parameter `grid` on `market` (see the module docstring).

    Walk-forward: expanding training windows; in each fold the variant with the best in-sample Sharpe is chosen
    and its returns over the next test window are kept. The variant chosen on the whole history is then tested
    for selection bias (PBO over all variants, DSR with the number of variants as trials), for its uncertainty
    (bootstrap CI, block = one day of bars) and for robustness (+-20% on each numeric parameter, entries 0-3
    bars late). `baselines` (registry agents with default parameters) are scored on the same test windows.
    """
    variants = expand_grid(base_params or {}, grid)
    if len(variants) < 2:
        raise ValueError("validation needs at least 2 variants (a grid) to measure selection bias")
    labels = [_label(v, list(grid)) for v in variants]
    results = run_variants(agent, variants, market, config, labels)
    returns = pd.DataFrame({label: _bar_returns(r) for label, r in results.items()})
    values = returns.to_numpy()

    train, test = _fold_sizes(len(returns), n_folds)
    oos_parts, is_parts, choices = [], [], []
    oos_trades = 0
    splits = list(walk_forward_splits(len(returns), train=train, test=test, expanding=True))
    for k, (train_idx, test_idx) in enumerate(splits):
        best = _best_sharpe(returns.columns, values[train_idx])
        oos = returns[best].iloc[test_idx]
        oos_parts.append(oos)
        is_parts.append(returns[best].iloc[train_idx])
        oos_trades += _entries_between(results[best], oos.index[0], oos.index[-1])
        choices.append({"fold": k, "chosen": best, "test_start": oos.index[0], "test_end": oos.index[-1]})
    wf = walk_forward_oos(oos_parts, is_parts)
    oos_returns = pd.concat(oos_parts)

    baseline_sharpes: dict[str, float] = {}
    for name in baselines:
        r = _bar_returns(run_variants(name, [{}], market, config, [name])[name])
        baseline_sharpes[name] = walk_forward_oos([r.iloc[t] for _, t in splits]).oos_sharpe

    selected = _best_sharpe(returns.columns, values)
    selected_params = variants[labels.index(selected)]
    sel = returns[selected].to_numpy()
    sr = sharpe_ratio(sel)
    from scipy import stats

    skew, kurt = float(stats.skew(sel)), float(stats.kurtosis(sel, fisher=False))
    variants_frame = pd.DataFrame(
        [{"variant": c, **variants[i], **_metrics(results[c])} for i, c in enumerate(labels)]
    ).set_index("variant")
    return StrategyValidation(
        agent=agent,
        selected=selected,
        selected_params=selected_params,
        variants=variants_frame,
        returns=returns,
        walk_forward=wf,
        fold_choices=pd.DataFrame(choices),
        oos_returns=oos_returns,
        oos_trades=oos_trades,
        baselines=baseline_sharpes,
        pbo=pbo_cscv(returns, n_splits=pbo_splits),
        deflated_sharpe=deflated_sharpe_ratio(sel, len(variants), trial_sharpe_variance(returns)),
        probabilistic_sharpe=probabilistic_sharpe_ratio(sr, 0.0, len(sel), skew, kurt),
        sharpe_ci=sharpe_confidence_interval(returns[selected], block=24, seed=seed),
        sensitivity=parameter_sensitivity(lambda p: backtest_metric(agent, p, market, config), selected_params),
        entry_delay=entry_delay_robustness(lambda d: backtest_metric(agent, selected_params, market, config, delay=d)),
        monte_carlo={
            m: drawdown_distribution(oos_returns.to_numpy(), n_paths=mc_paths, method=m, seed=seed) for m in mc_methods
        },
    )


def _metrics(result: BacktestResult) -> dict[str, float]:
    m = result.metrics
    return {k: float(m.get(k, math.nan)) for k in ("sharpe", "total_return", "max_drawdown", "trades")}
