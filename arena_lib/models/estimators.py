"""Trainable models behind one small interface: XGBoost, a Keras MLP and a Keras LSTM.

Why one interface: cross-validation, the backtest of predictions, MLflow persistence and the ML agent all call
``fit(X, y)`` and ``predict(X)`` on a ``(timestamp, symbol)`` feature panel, whatever the model is. A
``ModelSpec`` (frozen, validated) is what a run logs and what promotion ships; ``build_model(spec, features)``
turns it into an unfitted model.

Design points:

- **Scaling belongs to the model and is fitted on the training fold only.** The Keras models start with a
  ``keras.layers.Normalization`` layer that ``fit`` adapts on the training rows, so no test-fold statistic leaks
  into training and the saved network carries its own scaler. Tree models need no scaling.
- **Reproducible.** XGBoost gets ``random_state=seed``; Keras fits call ``keras.utils.set_random_seed(seed)``
  with TensorFlow's op determinism on, so two fits of one spec on one dataset predict identically.
- **Columns are a contract.** ``predict`` refuses a panel whose columns are not exactly the model's features,
  in order, and names what is missing, extra or reordered.
- **Lazy heavy imports.** Importing this module imports neither TensorFlow (about 3 s) nor XGBoost; they load on
  the first model that needs them.

The LSTM reads, for each row, the ``window`` rows of the same symbol ending at it; a row whose previous bars are
not all present (the start of a symbol's history, or a gap in time) gets a NaN prediction.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["xgboost", "mlp", "lstm"]
KINDS: tuple[str, ...] = ("xgboost", "mlp", "lstm")

XGBOOST_DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "max_depth": 4,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5.0,
}
"""Shallow, slow-learning trees: financial labels are noisy, and deep trees memorise the noise."""

KERAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_units": [64, 32], "dropout": 0.1, "learning_rate": 1e-3},
    "lstm": {"lstm_units": 32, "hidden_units": [], "dropout": 0.1, "learning_rate": 1e-3},
}
_PREDICT_CHUNK = 8192
_RESERVED_XGB = {"random_state": "ModelSpec.seed", "seed": "ModelSpec.seed", "objective": "ModelSpec.task"}


def feature_difference(expected: Sequence[str], given: Sequence[str]) -> str:
    """'' when `given` is exactly `expected`; else what it is missing, what it has extra, or that the order differs."""
    want, got = [str(f) for f in expected], [str(f) for f in given]
    if want == got:
        return ""
    missing = [f for f in want if f not in got]
    extra = [f for f in got if f not in want]
    parts = [f"missing {missing}"] if missing else []
    parts += [f"extra {extra}"] if extra else []
    return "; ".join(parts) or f"reordered or duplicated: expected {want}, got {got}"


class ModelSpec(BaseModel):
    """What to train: the model kind, the task, its hyper-parameters and the seed. Frozen, so it can be logged.

    ``params`` are XGBoost's own (``n_estimators``, ``max_depth``, ``learning_rate`` ...; ``device`` overrides
    ``xgboost_device()``) or, for Keras, ``hidden_units`` (dense layer sizes), ``lstm_units`` (LSTM only),
    ``dropout`` and ``learning_rate``. Unknown names are refused here, not ignored at fit time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    task: Literal["classification", "regression"] = "classification"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    window: int = Field(24, ge=1, le=10_000, description="lstm only: bars per input window")
    epochs: int = Field(20, ge=1, description="keras only")
    batch_size: int = Field(256, ge=1, description="keras only")

    @model_validator(mode="after")
    def _check_params(self) -> ModelSpec:
        if self.kind == "xgboost":
            for name, use in _RESERVED_XGB.items():
                if name in self.params:
                    raise ValueError(f"params[{name!r}] is set by {use}; remove it from params")
            allowed = _xgboost_param_names()
        else:
            allowed = frozenset(KERAS_DEFAULTS[self.kind])
        unknown = sorted(set(self.params) - allowed)
        if unknown:
            raise ValueError(f"unknown {self.kind} params {unknown}; allowed: {sorted(allowed)}")
        return self

    def resolved_params(self) -> dict[str, Any]:
        """The defaults of this kind updated with ``params``."""
        base = XGBOOST_DEFAULTS if self.kind == "xgboost" else KERAS_DEFAULTS[self.kind]
        return {**json.loads(json.dumps(base)), **self.params}


@functools.cache
def _xgboost_param_names() -> frozenset[str]:
    import xgboost

    return frozenset(xgboost.XGBClassifier().get_params())


@runtime_checkable
class Model(Protocol):
    """A trainable model on a ``(timestamp, symbol)`` feature panel whose columns are exactly ``features``."""

    spec: ModelSpec
    features: tuple[str, ...]

    @property
    def task(self) -> str: ...

    def fit(self, X: pd.DataFrame, y: pd.Series) -> Model: ...

    def predict(self, X: pd.DataFrame) -> np.ndarray: ...


def context_bars(spec: ModelSpec) -> int:
    """Rows of history before a row that the model reads to predict it (``window - 1`` for the LSTM, else 0).

    Cross-validation hands that many earlier bars' features to ``predict`` along with a test fold, so the first
    test rows get a prediction too (features are point-in-time: no label is read).
    """
    return spec.window - 1 if spec.kind == "lstm" else 0


def check_columns(X: pd.DataFrame, features: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the missing, extra or reordered columns when ``X.columns != features``."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame of features, got {type(X).__name__}")
    diff = feature_difference(features, [str(c) for c in X.columns])
    if not diff:
        return
    raise ValueError(f"X's columns do not match the model's features: {diff} (use X[list(features)])")


def _check_xy(X: pd.DataFrame, y: pd.Series, features: Sequence[str], task: str) -> np.ndarray:
    """``y`` as float64 after checking it against ``X`` and the task."""
    check_columns(X, features)
    if len(X) == 0:
        raise ValueError("cannot fit on an empty X")
    if len(y) != len(X):
        raise ValueError(f"y has {len(y)} rows, X has {len(X)}")
    if isinstance(y, pd.Series) and not y.index.equals(X.index):
        raise ValueError("y's index differs from X's: pass labels aligned with the feature rows")
    target = np.asarray(y, dtype=np.float64)
    if not np.isfinite(target).all():
        raise ValueError("y has NaN or infinite labels; drop those rows first (make_dataset does)")
    if task == "classification" and not np.isin(target, (0.0, 1.0)).all():
        raise ValueError("classification labels must be 0.0 or 1.0")
    return target


@functools.cache
def xgboost_device() -> str:
    """``"cuda"`` when XGBoost is built with CUDA and a GPU is visible, else ``"cpu"`` (probed once, by a one-tree
    fit whose resolved device XGBoost reports; it falls back to CPU itself when no GPU is found)."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA", False):
        return "cpu"
    probe = xgboost.DMatrix(np.arange(8, dtype=np.float32).reshape(4, 2), label=np.array([0.0, 1.0, 0.0, 1.0]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No visible GPU is found, setting device to CPU"
            booster = xgboost.train({"device": "cuda", "tree_method": "hist"}, probe, num_boost_round=1)
    except xgboost.core.XGBoostError:
        return "cpu"
    device = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    return "cuda" if str(device).startswith("cuda") else "cpu"


class _Base:
    """What every model shares: its spec, its feature list and the column and fitted checks."""

    def __init__(self, spec: ModelSpec, features: Sequence[str]) -> None:
        names = tuple(str(f) for f in features)
        if not names:
            raise ValueError("a model needs at least one feature")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in {list(names)}")
        self.spec = spec
        self.features = names

    @property
    def task(self) -> str:
        """``"classification"`` (predicts P(up)) or ``"regression"`` (predicts the forward log return)."""
        return self.spec.task

    @property
    def kind(self) -> str:
        return self.spec.kind

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.spec.kind!r}, task={self.spec.task!r}, features={len(self.features)})"

    def _not_fitted(self) -> RuntimeError:
        return RuntimeError(f"{type(self).__name__} is not fitted: call fit(X, y) or load it from MLflow first")


class XGBoostModel(_Base):
    """Gradient-boosted trees (``hist``), on the GPU when ``xgboost_device()`` finds one; predicts on the CPU."""

    def __init__(self, spec: ModelSpec, features: Sequence[str], estimator: Any = None) -> None:
        super().__init__(spec, features)
        self.estimator = estimator

    def _make_estimator(self) -> Any:
        import xgboost

        params = self.spec.resolved_params()
        params.setdefault("device", xgboost_device())
        params.setdefault("n_jobs", min(4, os.cpu_count() or 1))
        cls = xgboost.XGBClassifier if self.spec.task == "classification" else xgboost.XGBRegressor
        return cls(tree_method="hist", random_state=self.spec.seed, **params)

    def fit(self, X: pd.DataFrame, y: pd.Series) -> XGBoostModel:
        target = _check_xy(X, y, self.features, self.spec.task)
        if self.spec.task == "classification" and len(np.unique(target)) < 2:
            raise ValueError("the training labels hold a single class; a classifier needs both")
        estimator = self._make_estimator()
        estimator.fit(X.astype(np.float32), target)  # a frame: the booster keeps the feature names
        estimator.set_params(device="cpu")  # predict where the panel lives; a GPU model would copy it each call
        self.estimator = estimator
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.estimator is None:
            raise self._not_fitted()
        check_columns(X, self.features)
        if len(X) == 0:
            return np.empty(0)
        values = X.astype(np.float32)
        if self.spec.task == "classification":
            return np.asarray(self.estimator.predict_proba(values)[:, 1], dtype=np.float64)
        return np.asarray(self.estimator.predict(values), dtype=np.float64)


# ------------------------------------------------------------------------------------------------ keras


def import_keras() -> Any:
    """Keras 3 on TensorFlow with deterministic ops, imported on first use."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return keras


class _KerasModel(_Base):
    """A Keras network whose first layer (after the input) is a ``Normalization`` adapted on the training rows."""

    SCALER = "scaler"

    def __init__(self, spec: ModelSpec, features: Sequence[str], network: Any = None) -> None:
        super().__init__(spec, features)
        self.network = network

    @property
    def scaler(self) -> Any:
        """The fitted ``keras.layers.Normalization`` (its ``mean``/``variance`` are the training rows')."""
        if self.network is None:
            raise self._not_fitted()
        return self.network.get_layer(self.SCALER)

    # -- what a subclass defines ----------------------------------------------------------------------------------
    def _inputs(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Network inputs for ``X`` and the row positions they belong to."""
        raise NotImplementedError

    def _body(self, keras: Any, inputs: Any, scaled: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------------------
    def _prepare_fit(self, X: pd.DataFrame) -> None:
        """Hook for state learned from the training panel before its inputs are built (the LSTM's bar size)."""

    def fit(self, X: pd.DataFrame, y: pd.Series) -> _KerasModel:
        target = _check_xy(X, y, self.features, self.spec.task)
        keras = import_keras()
        self._prepare_fit(X)
        inputs_arr, rows = self._inputs(X)
        if len(rows) == 0:
            raise ValueError(f"no training samples: the lstm needs {self.spec.window} consecutive bars per symbol")
        labels = target[rows].astype(np.float32)
        params = self.spec.resolved_params()
        keras.utils.set_random_seed(self.spec.seed)
        scaler = keras.layers.Normalization(axis=-1, name=self.SCALER)
        # Adapted on the training rows only (never on test rows), shaped so it broadcasts over the input's rank.
        rows_2d = X.to_numpy(dtype=np.float32)
        scaler.adapt(rows_2d.reshape((len(rows_2d),) + (1,) * (len(self._input_shape()) - 1) + (-1,)))
        inputs = keras.Input(shape=self._input_shape(), name="features")
        hidden = self._body(keras, inputs, scaler(inputs), params)
        for units in params["hidden_units"]:
            hidden = keras.layers.Dense(int(units), activation="relu")(hidden)
            if params["dropout"] > 0:
                hidden = keras.layers.Dropout(float(params["dropout"]))(hidden)
        if self.spec.task == "classification":
            output = keras.layers.Dense(1, activation="sigmoid", name="p_up")(hidden)
            loss = "binary_crossentropy"
        else:
            # Returns are ~1e-2. A fixed last layer scales by the training labels' std and mean, so the dense layer
            # below it works in standardized units (where its initialisation is sensible) and the saved network
            # still predicts log returns, with no side information to carry.
            mean, std = float(labels.mean()), float(labels.std()) or 1.0
            raw = keras.layers.Dense(1, name="standardized")(hidden)
            output = keras.layers.Rescaling(scale=std, offset=mean, name="log_return")(raw)
            loss = "mse"
        network = keras.Model(inputs, output, name=f"arena_{self.spec.kind}")
        network.compile(optimizer=keras.optimizers.Adam(float(params["learning_rate"])), loss=loss)
        network.fit(
            inputs_arr,
            labels,
            epochs=self.spec.epochs,
            batch_size=self.spec.batch_size,
            shuffle=True,
            verbose=0,
        )
        self.network = network
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.network is None:
            raise self._not_fitted()
        check_columns(X, self.features)
        out = np.full(len(X), np.nan)
        if len(X) == 0:
            return out
        inputs_arr, rows = self._inputs(X)
        if len(rows):
            # Direct calls in chunks: `network.predict` retraces a tf.function for every new network (one per
            # fold) and warns about it; eager calls cost nothing to set up.
            step = _PREDICT_CHUNK
            parts = [
                np.asarray(self.network(inputs_arr[i : i + step], training=False)) for i in range(0, len(rows), step)
            ]
            out[rows] = np.concatenate(parts).astype(np.float64).reshape(-1)
        return out


class MLPModel(_KerasModel):
    """Dense layers on one row's features."""

    def _input_shape(self) -> tuple[int, ...]:
        return (len(self.features),)

    def _inputs(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return X.to_numpy(dtype=np.float32), np.arange(len(X))

    def _body(self, keras: Any, inputs: Any, scaled: Any, params: dict[str, Any]) -> Any:
        return scaled


class LSTMModel(_KerasModel):
    """An LSTM over the last ``window`` bars of each symbol's features, then optional dense layers.

    ``bar_ns`` is the bar spacing learned at fit time (the most common step between a symbol's consecutive
    rows): a window is complete only when its ``window`` rows are that far apart, so gaps are never bridged.
    """

    def __init__(
        self, spec: ModelSpec, features: Sequence[str], network: Any = None, bar_ns: int | None = None
    ) -> None:
        super().__init__(spec, features, network)
        self.bar_ns = bar_ns

    def _input_shape(self) -> tuple[int, ...]:
        return (self.spec.window, len(self.features))

    def _body(self, keras: Any, inputs: Any, scaled: Any, params: dict[str, Any]) -> Any:
        hidden = keras.layers.LSTM(int(params["lstm_units"]))(scaled)
        if params["dropout"] > 0:
            hidden = keras.layers.Dropout(float(params["dropout"]))(hidden)
        return hidden

    def _prepare_fit(self, X: pd.DataFrame) -> None:
        self.bar_ns = infer_bar_ns(X)

    def _inputs(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if self.bar_ns is None:
            raise self._not_fitted()
        return symbol_windows(X, self.spec.window, self.bar_ns)


def _panel_keys(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Epoch-ns times and integer symbol codes of a ``(timestamp, symbol)`` panel."""
    index = X.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError("the lstm needs X indexed by a (timestamp, symbol) MultiIndex, as make_dataset builds it")
    times = index.get_level_values(0)
    if not isinstance(times, pd.DatetimeIndex):
        raise ValueError("the first index level of X must be the bar timestamps (a DatetimeIndex)")
    codes, _ = pd.factorize(index.get_level_values(1))
    return times.as_unit("ns").asi8, codes


def infer_bar_ns(X: pd.DataFrame) -> int:
    """The most common positive step (ns) between consecutive rows of one symbol in a panel."""
    times, codes = _panel_keys(X)
    order = np.lexsort((times, codes))
    t, c = times[order], codes[order]
    steps = np.diff(t)[np.diff(c) == 0]
    steps = steps[steps > 0]
    if len(steps) == 0:
        raise ValueError("cannot infer the bar size: X has no symbol with two or more rows")
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])


def symbol_windows(X: pd.DataFrame, window: int, bar_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """``(k, window, n_features)`` float32 windows of each symbol's consecutive bars, and the row of each window's
    last bar. A row gets a window only when the ``window - 1`` bars before it are all in ``X`` (no gap)."""
    times, codes = _panel_keys(X)
    values = X.to_numpy(dtype=np.float32)
    order = np.lexsort((times, codes))  # by symbol, then time
    t, c, v = times[order], codes[order], values[order]
    starts = np.flatnonzero(np.r_[True, np.diff(c) != 0])
    ends = np.r_[starts[1:], len(c)]
    chunks, rows = [], []
    span = (window - 1) * bar_ns
    for a, b in zip(starts, ends, strict=True):
        if b - a < window:
            continue
        tt = t[a:b]
        full = tt[window - 1 :] - tt[: len(tt) - window + 1] == span
        if not full.any():
            continue
        wins = np.lib.stride_tricks.sliding_window_view(v[a:b], window, axis=0)  # (n - w + 1, f, w)
        chunks.append(np.ascontiguousarray(wins[full].transpose(0, 2, 1)))
        rows.append(order[a + window - 1 : b][full])
    if not chunks:
        return np.empty((0, window, values.shape[1]), dtype=np.float32), np.empty(0, dtype=np.int64)
    return np.concatenate(chunks), np.concatenate(rows).astype(np.int64)


def build_model(spec: ModelSpec, features: Sequence[str]) -> XGBoostModel | MLPModel | LSTMModel:
    """An unfitted model of ``spec.kind`` on ``features`` (the columns its ``fit``/``predict`` will demand)."""
    if spec.kind == "xgboost":
        return XGBoostModel(spec, features)
    if spec.kind == "mlp":
        return MLPModel(spec, features)
    return LSTMModel(spec, features)


__all__ = [
    "KINDS",
    "LSTMModel",
    "MLPModel",
    "Model",
    "ModelSpec",
    "XGBoostModel",
    "build_model",
    "check_columns",
    "context_bars",
    "import_keras",
    "infer_bar_ns",
    "symbol_windows",
    "xgboost_device",
]
