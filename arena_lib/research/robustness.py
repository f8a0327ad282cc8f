"""Is a result robust, or does it live on a knife's edge?

Two questions every backtest should answer before it is promoted:

* **Parameter sensitivity** (:func:`parameter_sensitivity`): perturb each numeric parameter by up to ``+-rel``
  (20% by default), one at a time, and re-evaluate. A strategy whose metric collapses when a lookback moves from
  24 to 29 bars was fitted to noise (a "cliff"); a robust one sits on a plateau. This is the one-at-a-time
  (local) sensitivity analysis of Saltelli et al., *Global Sensitivity Analysis: The Primer* (2008), ch. 1, and
  the parameter-stability check of Pardo, *The Evaluation and Optimization of Trading Strategies* (2008), ch. 11.
* **Entry-delay robustness** (:func:`entry_delay_robustness`): act 0, 1, 2, 3 bars late. An edge that vanishes
  with one bar of delay depends on an execution no live job can get.

:func:`backtest_metric` evaluates an agent on Arena's own engine (the batch kernel, or the step loop for agents
without a batch path), so both analyses run on the same fills, fees and slippage as every other backtest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from arena_lib.agents.base import Agent, BatchAgent, BatchSignals
from arena_lib.core.config import BacktestConfig
from arena_lib.data.market import MarketData
from arena_lib.engine.backtest import backtest
from arena_lib.engine.results import BacktestResult

__all__ = [
    "SENSITIVITY_COLUMNS",
    "backtest_metric",
    "entry_delay_robustness",
    "parameter_sensitivity",
    "perturbed_values",
    "shift_signals",
]

SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "parameter",
    "base_value",
    "value",
    "rel_step",
    "metric",
    "change",
    "rel_change",
    "cliff",
    "error",
)
"""Columns of :func:`parameter_sensitivity`'s frame."""


# ------------------------------------------------------------------------------------------------ perturbations


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def perturbed_values(value: float, rel: float = 0.2, steps: int = 1) -> list[tuple[float, float]]:
    """``(relative step, perturbed value)`` pairs for one parameter: ``value * (1 + k * rel / steps)``.

    ``k`` runs over ``-steps..-1, 1..steps``. Integers are rounded (half to even) and kept >= 1; when rounding
    would give back the base value (e.g. 20% of 3), the step moves by one unit instead, so that an integer
    parameter really moves. Values that repeat (or equal the base) are dropped. A float of 0 has no relative
    neighbourhood: no steps.
    """
    if not rel > 0:
        raise ValueError(f"rel must be > 0, got {rel}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    is_int = isinstance(value, (int, np.integer))
    out: list[tuple[float, float]] = []
    seen: set[float] = {value}
    for k in [*range(-steps, 0), *range(1, steps + 1)]:
        step = k * rel / steps
        new: float = value * (1.0 + step)
        if is_int:
            base_int, rounded = int(value), round(new)
            if rounded == base_int:
                rounded = base_int + (1 if step > 0 else -1)
            new = max(1, rounded)
        if new in seen:
            continue
        seen.add(new)
        out.append((step, new))
    return out


def _is_cliff(base: float, metric: float, cliff: float) -> bool:
    """A drop of more than ``cliff * |base|`` below the base metric (or an undefined metric) is a cliff."""
    if math.isnan(metric):
        return True
    if math.isnan(base):
        return False
    return base - metric > cliff * abs(base)


def parameter_sensitivity(
    evaluate: Callable[[dict[str, Any]], float],
    params: Mapping[str, Any],
    rel: float = 0.2,
    steps: int = 1,
    cliff: float = 0.5,
    only: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One-at-a-time sensitivity of ``evaluate(params)`` to each numeric parameter (higher metric = better).

    Every numeric parameter (bools and strings are left alone) is perturbed to
    ``value * (1 + k * rel / steps)`` for ``k = +-1..+-steps`` (see :func:`perturbed_values`) while the others stay
    at their base values; each variant is evaluated once.

    Args:
        evaluate: ``params -> metric`` (e.g. a Sharpe ratio from :func:`backtest_metric`). A ``ValueError`` it
            raises (e.g. an agent rejecting ``fast >= slow``) is recorded in ``error`` with a NaN metric.
        params: the base parameters.
        rel: the largest relative perturbation (0.2 = +-20%).
        steps: perturbations per side (1: just +-rel; 2: +-rel/2 and +-rel; ...).
        cliff: flag a variant whose metric is more than ``cliff * |base metric|`` below the base (0.5: lost
            more than half), or is NaN.
        only: restrict to these parameter names.

    Returns:
        A frame with :data:`SENSITIVITY_COLUMNS`: the first row is the base (``parameter == "<base>"``), then
        one row per variant with ``change = metric - base`` and ``rel_change = change / |base|``.
    """
    base_params = dict(params)
    names = [k for k, v in base_params.items() if _is_number(v)] if only is None else list(only)
    for name in names:
        if name not in base_params:
            raise ValueError(f"unknown parameter {name!r}; known: {sorted(base_params)}")
        if not _is_number(base_params[name]):
            raise ValueError(f"parameter {name!r}={base_params[name]!r} is not numeric")
    base = float(evaluate(dict(base_params)))
    rows: list[dict[str, Any]] = [
        {"parameter": "<base>", "base_value": math.nan, "value": math.nan, "rel_step": 0.0, "metric": base, "error": ""}
    ]
    for name in names:
        for step, value in perturbed_values(base_params[name], rel, steps):
            variant = {**base_params, name: value}
            error = ""
            try:
                metric = float(evaluate(variant))
            except ValueError as exc:
                metric, error = math.nan, str(exc)
            rows.append(
                {
                    "parameter": name,
                    "base_value": base_params[name],
                    "value": value,
                    "rel_step": step,
                    "metric": metric,
                    "error": error,
                }
            )
    frame = pd.DataFrame(rows)
    frame["change"] = frame["metric"] - base
    frame["rel_change"] = frame["change"] / abs(base) if base != 0 and math.isfinite(base) else math.nan
    is_variant = frame["parameter"] != "<base>"
    frame["cliff"] = [bool(v and _is_cliff(base, m, cliff)) for v, m in zip(is_variant, frame["metric"], strict=True)]
    return frame[list(SENSITIVITY_COLUMNS)]


def entry_delay_robustness(
    evaluate_with_delay: Callable[[int], float], delays: Sequence[int] = (0, 1, 2, 3)
) -> pd.DataFrame:
    """The metric when every signal is acted on ``delay`` bars late, for each delay.

    Returns a frame indexed by ``delay`` with ``metric``, ``change`` (vs the first delay, normally 0) and
    ``rel_change`` (``change / |first metric|``). A robust edge decays gracefully; one that flips sign at a delay
    of one bar was trading on the bar it was computed from.
    """
    if not delays:
        raise ValueError("delays is empty")
    for d in delays:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"delays must be integers >= 0, got {d!r}")
    metrics = [float(evaluate_with_delay(int(d))) for d in delays]
    frame = pd.DataFrame({"delay": [int(d) for d in delays], "metric": metrics}).set_index("delay")
    first = metrics[0]
    frame["change"] = frame["metric"] - first
    frame["rel_change"] = frame["change"] / abs(first) if first != 0 and math.isfinite(first) else math.nan
    return frame


# ------------------------------------------------------------------------------------------------ engine adapter


def _check_delay(delay: Any) -> int:
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
        raise ValueError(f"delay must be an integer >= 0 bars, got {delay!r}")
    return int(delay)


def _shift_rows(values: np.ndarray | None, k: int) -> np.ndarray | None:
    if values is None or k == 0:
        return values
    out = np.full(values.shape, np.nan)
    if k < len(values):
        out[k:] = values[: len(values) - k]
    return out


def shift_signals(signals: BatchSignals, delay: int) -> BatchSignals:
    """Signals acted on `delay` bars late: every array moves down `delay` rows; the first rows hold NaN (no opinion).

    Stop-loss and take-profit prices move with their signal (they were set from the signal bar's close); an entry
    whose stale stop is already on the wrong side of the new decision bar's close is skipped by the engine, as it
    would be live.
    """
    delay = _check_delay(delay)
    if delay == 0:
        return signals
    target = _shift_rows(signals.target, delay)
    assert target is not None
    return BatchSignals(
        target=target,
        stop_loss=_shift_rows(signals.stop_loss, delay),
        take_profit=_shift_rows(signals.take_profit, delay),
        leverage=signals.leverage,
    )


class _DelayedBatchAgent:
    """A batch agent whose targets arrive `delay` bars late (see :func:`shift_signals`), for the batch path only."""

    def __init__(self, agent: BatchAgent, delay: int) -> None:
        self.agent = agent
        self.delay = _check_delay(delay)
        self.name = agent.name

    def decide(self, snapshot: Any, account: Any) -> Sequence[Any]:
        raise NotImplementedError("the delayed agent exists for the batch kernel, not the step loop")

    def decide_batch(self, market: MarketData) -> BatchSignals:
        return shift_signals(self.agent.decide_batch(market), self.delay)


def _build_agent(agent_factory: str | Callable[..., Agent], params: Mapping[str, Any]) -> Agent:
    if isinstance(agent_factory, str):
        from arena_lib.agents.registry import make_agent

        return make_agent(agent_factory, params)
    return agent_factory(**dict(params))


def _metric_value(result: BacktestResult, metric: str | Callable[[BacktestResult], float]) -> float:
    if callable(metric):
        return float(metric(result))
    metrics = result.metrics
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; available: {', '.join(metrics)}")
    return float(metrics[metric])


def backtest_metric(
    agent_factory: str | Callable[..., Agent],
    params: Mapping[str, Any],
    market: MarketData,
    config: BacktestConfig,
    metric: str | Callable[[BacktestResult], float] = "sharpe",
    delay: int = 0,
) -> float:
    """Backtest one agent variant on Arena's engine and return one metric.

    Args:
        agent_factory: a registry name (``"sma_cross"``, built with
            :func:`arena_lib.agents.registry.make_agent`) or a callable ``**params -> Agent``.
        params: the agent's parameters.
        market, config: the data and the backtest spec (costs, fills, risk limits).
        metric: a key of ``BacktestResult.metrics`` (``"sharpe"``, ``"total_return"``, ``"max_drawdown"``, ...;
            see :data:`arena_lib.analytics.metrics.SUMMARY_KEYS`) or ``f(result) -> float``.
        delay: act on every signal this many bars late. The backtest runs through
            :func:`arena_lib.engine.backtest.backtest` (the batch kernel for agents with ``decide_batch``, the step
            loop otherwise); a delay shifts a batch agent's targets down `delay` rows, and agents without
            ``decide_batch`` support only ``delay=0``.

    Use with :func:`parameter_sensitivity` as
    ``parameter_sensitivity(lambda p: backtest_metric("sma_cross", p, market, config), {"fast": 24, "slow": 96})``
    and with :func:`entry_delay_robustness` as
    ``entry_delay_robustness(lambda d: backtest_metric("sma_cross", params, market, config, delay=d))``.
    """
    delay = _check_delay(delay)
    agent = _build_agent(agent_factory, params)
    if delay:
        if not isinstance(agent, BatchAgent):
            raise ValueError(
                f"{agent.name} has no decide_batch: an entry delay needs the batch path; the step loop supports delay=0"
            )
        return _metric_value(backtest(_DelayedBatchAgent(agent, delay), market, config, "batch"), metric)
    return _metric_value(backtest(agent, market, config), metric)
