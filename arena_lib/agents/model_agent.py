"""The ML agent: a trained model trades from its predictions, on the same loop and leaderboard as every agent.

A model (XGBoost, Keras MLP or LSTM, see `arena_lib.models.estimators`) predicts, for every symbol and bar, the
probability that the next period's return is positive (classification) or that return itself (regression). The
agent turns a prediction into a target position with `targets_from_predictions`, the one mapping shared with the
research backtests, so a model trades in the arena exactly as it was validated.

Where the model comes from: `load_model_agent` loads it from the MLflow registry by alias (`models:/name@paper`),
never by path, so promoting or rolling back a model is moving an alias. A model whose feature list differs from
what the agent is told to feed it is refused with the difference named, before any bar is traded.

Point in time: the step path (`decide`) computes features on the snapshot's history alone (every closed bar up to
now, from the same first bar the feed started with) and predicts the current bar; it never sees a later row. The
batch path (`decide_batch`) computes them once on the whole history. Both give the same value at every bar
because every registered feature passes the look-ahead test (values recomputed on histories cut at many points
are identical), so the two paths trade identically; `tests/agents/test_model_agent.py` holds them to it.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from arena_lib.agents.base import AccountView, BatchSignals, decision_from_target, exit_levels
from arena_lib.core.types import Decision
from arena_lib.models.estimators import feature_difference

if TYPE_CHECKING:
    from arena_lib.data.market import MarketData
    from arena_lib.data.snapshot import MarketSnapshot

TASKS: tuple[str, ...] = ("classification", "regression")


class FeatureMismatchError(ValueError):
    """A model was trained on other features than the ones the agent would feed it."""


class Predictor(Protocol):
    """What the agent needs from a trained model: its feature list, its task, and predictions on a panel."""

    @property
    def features(self) -> tuple[str, ...]: ...

    @property
    def task(self) -> str: ...

    def predict(self, X: pd.DataFrame) -> np.ndarray: ...


def check_features(model_features: Sequence[str], agent_features: Sequence[str], model_name: str = "model") -> None:
    """Refuse a model whose features are not exactly the agent's input, in the same order, naming the difference."""
    diff = feature_difference(model_features, agent_features)
    if diff:
        raise FeatureMismatchError(
            f"{model_name}: the agent's input is not the feature list the model was trained on: {diff}"
        )


def check_panel_index(index: pd.Index, what: str) -> None:
    """A (bar open time, symbol) MultiIndex with tz-aware UTC times, or a ValueError naming `what`."""
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError(f"{what} must be indexed by a (timestamp, symbol) MultiIndex")
    times = index.get_level_values(0)
    if not isinstance(times, pd.DatetimeIndex) or times.tz is None:
        raise ValueError(f"{what}'s first index level must be tz-aware (UTC) bar open times")


def targets_from_predictions(
    prediction: pd.Series,
    task: str,
    *,
    threshold: float = 0.0,
    fraction: float = 1.0,
    allow_short: bool = True,
) -> pd.Series:
    """Target positions (signed fraction of equity) from predictions: THE mapping from a model to a position.

    Classification: long `fraction` when p > 0.5 + threshold, short when p < 0.5 - threshold (flat instead
    when `allow_short` is False), else flat (0.0). Regression: the same on the predicted return against
    +/- threshold. A NaN prediction gives a NaN target: no opinion, the engine keeps what is held. The research
    backtests (`arena_lib.research.evaluation`) use this same function, so a model trades as it was validated.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
    if task == "classification" and threshold >= 0.5:
        raise ValueError(f"a classification threshold must be below 0.5 (p is in [0, 1]), got {threshold}")
    if not (0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1] of equity (leverage is a config limit), got {fraction}")
    values = prediction.to_numpy(dtype=np.float64)
    score = values - 0.5 if task == "classification" else values
    target = np.where(score > threshold, fraction, 0.0)
    if allow_short:
        target = np.where(score < -threshold, -fraction, target)
    target = np.where(np.isnan(values), np.nan, target)
    return pd.Series(target, index=prediction.index, name="target")


def target_matrix(targets: pd.Series, market: MarketData) -> np.ndarray:
    """`targets` indexed by (bar open time, symbol) laid out on `market`'s rows x symbols (NaN where none)."""
    index = targets.index
    check_panel_index(index, "targets")
    times_level = pd.DatetimeIndex(index.get_level_values(0))
    n, m = market.close.shape
    matrix = np.full((n, m), np.nan)
    symbols = pd.Index(index.get_level_values(1))
    if len(symbols) and not set(symbols) & set(market.symbols):
        raise ValueError(f"no prediction for any market symbol {list(market.symbols)}; got {sorted(set(symbols))}")
    times = times_level.tz_convert("UTC").as_unit("ns").asi8
    rows = np.searchsorted(market.times, times)
    inside = rows < n
    inside[inside] = market.times[rows[inside]] == times[inside]
    cols = pd.Index(market.symbols).get_indexer(symbols)
    ok = inside & (cols >= 0)
    matrix[rows[ok], cols[ok]] = targets.to_numpy(dtype=np.float64)[ok]
    return matrix


def panel_frames(market: MarketData) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """Each symbol's own bars and funding, as `compute_panel` takes them."""
    frames = {s: market.series[s].frame for s in market.symbols}
    return frames, dict(market.funding_series)


class ModelAgent:
    """Trades a trained model's predictions; see the module docstring for the point-in-time argument."""

    kind = "model"

    def __init__(
        self,
        model: Predictor,
        *,
        name: str = "model",
        features: Sequence[str] | None = None,
        threshold: float = 0.0,
        fraction: float = 0.25,
        leverage: float = 1.0,
        allow_short: bool = True,
        stop_loss_pct: float = 0.0,
        take_profit_pct: float = 0.0,
        model_uri: str = "",
    ) -> None:
        check_features(model.features, model.features if features is None else features, name)
        # validate the mapping's settings now, not on the first bar
        targets_from_predictions(pd.Series([], dtype=float), model.task, threshold=threshold, fraction=fraction)
        self.model = model
        self.name = name
        self.threshold = float(threshold)
        self.fraction = float(fraction)
        self.leverage = float(leverage)
        self.allow_short = bool(allow_short)
        self.stop_loss_pct = float(stop_loss_pct)
        self.take_profit_pct = float(take_profit_pct)
        self.model_uri = model_uri
        self._cached: tuple[weakref.ref[MarketData], np.ndarray] | None = None

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.model.features)

    def predictions(self, market: MarketData) -> pd.Series:
        """The model's prediction for every (bar open time, symbol) of `market`, NaN where it has no opinion.

        No opinion during each symbol's warm-up (its first `max_lookback(features)` bars, which training drops too,
        since EMA-type values still depend on where the history starts) and on rows with a missing feature: XGBoost
        would happily predict from NaNs, from inputs unlike anything it was trained on.
        """
        return self._predict(*panel_frames(market))

    def _predict(self, frames: dict[str, pd.DataFrame], funding: dict[str, pd.Series]) -> pd.Series:
        from arena_lib.features.pipeline import compute_panel, max_lookback

        panel = compute_panel(frames, self.features, funding or None)[list(self.features)]  # the model's order
        values = np.asarray(self.model.predict(panel), dtype=np.float64)
        warm = panel.groupby(level=1, sort=False).cumcount().to_numpy() >= max_lookback(self.features)
        complete = np.isfinite(panel.to_numpy(dtype=np.float64)).all(axis=1)
        values[~(warm & complete)] = np.nan
        return pd.Series(values, index=panel.index, name="prediction")

    def _target_matrix(self, market: MarketData) -> np.ndarray:
        """Targets on `market`'s rows x symbols, computed once per market object."""
        if self._cached is not None and self._cached[0]() is market:
            return self._cached[1]
        targets = targets_from_predictions(
            self.predictions(market),
            self.model.task,
            threshold=self.threshold,
            fraction=self.fraction,
            allow_short=self.allow_short,
        )
        matrix = target_matrix(targets, market)
        matrix[~market.has_bar] = np.nan  # no bar now: no decision, as in the step loop
        self._cached = (weakref.ref(market), matrix)
        return matrix

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        now = [s for s in snapshot.symbols if snapshot.has_bar(s)]
        if not now:
            return []
        visible = [s for s in snapshot.symbols if snapshot.bar_count(s) > 0]
        frames = {s: snapshot.ohlcv(s) for s in visible}
        funding = {s: snapshot.funding_history(s) for s in visible}
        predictions = self._predict(frames, funding)
        targets = targets_from_predictions(
            predictions,
            self.model.task,
            threshold=self.threshold,
            fraction=self.fraction,
            allow_short=self.allow_short,
        )
        bar_open = pd.Timestamp(snapshot.timestamp_ns - snapshot.bar_ns, tz="UTC")
        out: list[Decision] = []
        for sym in now:
            target = float(targets.get((bar_open, sym), math.nan))
            if math.isnan(target):
                continue
            direction = 0 if target == 0 else (1 if target > 0 else -1)
            stop, take = exit_levels(snapshot.close(sym), direction, self.stop_loss_pct, self.take_profit_pct)
            d = decision_from_target(sym, target, account.direction(sym), self.leverage, stop, take, self.name)
            if d is not None:
                out.append(d)
        return out

    def decide_batch(self, market: MarketData) -> BatchSignals:
        target = self._target_matrix(market)
        direction = np.sign(np.nan_to_num(target))
        stop, take = exit_levels(market.close, direction, self.stop_loss_pct, self.take_profit_pct)
        return BatchSignals(target=target.copy(), stop_loss=stop, take_profit=take, leverage=self.leverage)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "model": self.model_uri, "features": list(self.features), "task": self.model.task}


class ModelNotFoundError(LookupError):
    """The registry has no model at that name and alias (or URI): nothing to trade with yet."""


def load_model_agent(
    model: str,
    alias: str = "paper",
    features: Sequence[str] | None = None,
    threshold: float | None = None,
    fraction: float | None = None,
    leverage: float = 1.0,
    allow_short: bool | None = None,
    stop_loss_pct: float = 0.0,
    take_profit_pct: float = 0.0,
) -> ModelAgent:
    """A `ModelAgent` for registered model `model` at registry `alias` (or a full `models:/` / `runs:/` URI).

    This is the entry the agent registry exposes as `model`, so a competition or arena config names an ML agent as
    `{agent: model, params: {model: btc_xgb, alias: paper}}`. `features`, when given, is the input the operator
    expects; a model trained on anything else is refused. `threshold`, `fraction` and `allow_short` default to
    the trading rule the model was validated with (stored with it by `register_trained_model`).
    """
    from arena_lib.models import registry
    from arena_lib.models import store as model_store  # MLflow: this agent's only I/O, behind these two modules

    uri = model if ":/" in model else registry.model_uri(model, alias)
    registry.configure()
    try:
        loaded = model_store.load_model(uri)
        meta = model_store.model_metadata(uri)
    except Exception as exc:  # MLflow raises its own exception types for a missing model, alias or run
        raise ModelNotFoundError(
            f"cannot load model {uri!r} from the MLflow registry at {registry.tracking_uri()}: {exc}. "
            "Train and register one with notebooks/20_train_xgboost.ipynb or notebooks/21_train_keras.ipynb."
        ) from exc
    name = model.rsplit("/", 1)[-1] if ":/" in model else f"{model}@{alias}"
    return ModelAgent(
        loaded,
        name=name,
        features=features,
        threshold=float(meta.get("arena_threshold", 0.0) if threshold is None else threshold),
        fraction=float(meta.get("arena_fraction", 0.25) if fraction is None else fraction),
        leverage=leverage,
        allow_short=bool(meta.get("arena_allow_short", True) if allow_short is None else allow_short),
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        model_uri=uri,
    )
