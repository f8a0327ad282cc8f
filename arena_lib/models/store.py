"""Persist the research models in MLflow and load them back as the same ``Model`` classes.

Why: promotion is an alias on a registered MLflow model (``models:/name@paper``), and the job that serves it
must rebuild exactly what was validated: the same feature list in the same order, the same task, the LSTM's
window and bar size, and the scaler (inside the Keras network). All of that travels in the MLflow model's
``metadata`` (``arena_*`` keys), so ``model_features(uri)`` can tell a caller which features to compute without
downloading any weights, and ``load_model(uri).predict(panel)`` works exactly as before logging.

Flavours: XGBoost models are logged with ``mlflow.xgboost`` and Keras ones with ``mlflow.tensorflow``, each with
a signature and an input example, and with pinned pip requirements (which also spares MLflow a few seconds of
inferring them in a subprocess). MLflow and TensorFlow are imported on first use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from arena_lib.models.estimators import (
    LSTMModel,
    MLPModel,
    Model,
    ModelSpec,
    XGBoostModel,
    check_columns,
    import_keras,
    symbol_windows,
)

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

RESERVED_KEYS: tuple[str, ...] = ("arena_features", "arena_task", "arena_kind", "arena_window", "arena_spec")
EXAMPLE_ROWS = 5


def _requirements(kind: str) -> list[str]:
    from importlib.metadata import version

    packages = ["xgboost"] if kind == "xgboost" else ["tensorflow", "keras"]
    return [f"{p}=={version(p)}" for p in ["numpy", "pandas", *packages]]


def _metadata(model: Model, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = model.spec
    meta: dict[str, Any] = {
        "arena_features": list(model.features),
        "arena_task": spec.task,
        "arena_kind": spec.kind,
        "arena_window": spec.window,
        "arena_spec": spec.model_dump_json(),
    }
    if isinstance(model, LSTMModel):
        meta["arena_bar_ns"] = model.bar_ns
    clash = sorted(set(extra or {}) & set(meta))
    if clash:
        raise ValueError(f"extra_metadata may not override {clash}: they describe the model itself")
    extra_clean = json.loads(json.dumps(dict(extra or {}), default=str))  # what the MLmodel YAML can hold
    return {**meta, **extra_clean}


def log_model(
    model: Model,
    X_example: pd.DataFrame,
    *,
    name: str = "model",
    extra_metadata: Mapping[str, Any] | None = None,
) -> ModelInfo:
    """Log a fitted ``model`` to the active MLflow run, with a signature and an input example from ``X_example``.

    ``X_example`` is a feature panel with the model's columns (a few rows are used; the LSTM needs ``window``
    consecutive bars of one symbol). ``extra_metadata`` is added to the model's metadata: pass
    ``{"arena_horizon": dataset.horizon, "arena_data_hash": dataset.data_hash}`` so a serving job knows them.

    Raises:
        RuntimeError: no MLflow run is active, or the model is not fitted.
        ValueError: ``X_example``'s columns differ from the model's features, or it is too short for a window.
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import Schema, TensorSpec

    if mlflow.active_run() is None:
        raise RuntimeError("log_model needs an active MLflow run: call it inside `with mlflow.start_run():`")
    check_columns(X_example, model.features)
    metadata = _metadata(model, extra_metadata)
    if isinstance(model, XGBoostModel):
        if model.estimator is None:
            raise RuntimeError("the XGBoost model is not fitted")
        example = X_example.iloc[:EXAMPLE_ROWS].reset_index(drop=True)
        signature = infer_signature(example, model.predict(example))
        return mlflow.xgboost.log_model(
            model.estimator,
            name=name,
            signature=signature,
            input_example=example,
            metadata=metadata,
            pip_requirements=_requirements("xgboost"),
        )
    if not isinstance(model, (MLPModel, LSTMModel)):
        raise TypeError(f"log_model knows XGBoostModel, MLPModel and LSTMModel, got {type(model).__name__}")
    if model.network is None:
        raise RuntimeError(f"the {model.spec.kind} model is not fitted")
    import_keras()
    import mlflow.tensorflow

    # MLflow's TensorFlow flavour takes tensor signatures only; the column names are in the metadata.
    if isinstance(model, LSTMModel):
        assert model.bar_ns is not None  # set by fit, with the network
        input_example, _ = symbol_windows(X_example, model.spec.window, model.bar_ns)
        if len(input_example) == 0:
            raise ValueError(f"X_example holds no {model.spec.window} consecutive bars of one symbol")
        input_example = input_example[:2]
    else:
        input_example = X_example.iloc[:EXAMPLE_ROWS].to_numpy(dtype=np.float32)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *input_example.shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1))]),
    )
    return mlflow.tensorflow.log_model(
        model.network,
        name=name,
        signature=signature,
        input_example=input_example,
        metadata=metadata,
        pip_requirements=_requirements(model.spec.kind),
    )


def _arena_metadata(model_uri: str) -> dict[str, Any]:
    from mlflow.models import get_model_info

    metadata = get_model_info(model_uri).metadata or {}
    missing = [k for k in RESERVED_KEYS if k not in metadata]
    if missing:
        raise ValueError(f"{model_uri} was not logged by arena_lib.models.store (no {missing} metadata)")
    return dict(metadata)


def model_metadata(model_uri: str) -> dict[str, Any]:
    """Everything the model was logged with under `arena_*` keys (features, task, kind, trading rule, horizon...)."""
    return _arena_metadata(model_uri)


def model_features(model_uri: str) -> tuple[str, ...]:
    """The model's feature list, in order, read from its metadata (no weights are downloaded)."""
    return tuple(_arena_metadata(model_uri)["arena_features"])


def load_model(model_uri: str) -> Model:
    """The model at ``model_uri`` (``runs:/<id>/model``, ``models:/name@alias``, ...) as the class it was logged
    from, with its spec and features restored, so ``predict`` on a panel gives what it gave before logging."""
    metadata = _arena_metadata(model_uri)
    spec = ModelSpec.model_validate_json(metadata["arena_spec"])
    features = tuple(metadata["arena_features"])
    if spec.kind == "xgboost":
        import mlflow.xgboost

        return XGBoostModel(spec, features, estimator=mlflow.xgboost.load_model(model_uri))
    import_keras()  # TF's settings (log level, determinism) before MLflow imports TensorFlow
    import mlflow.tensorflow

    network = mlflow.tensorflow.load_model(model_uri)
    if spec.kind == "mlp":
        return MLPModel(spec, features, network=network)
    return LSTMModel(spec, features, network=network, bar_ns=int(metadata["arena_bar_ns"]))


__all__ = ["RESERVED_KEYS", "load_model", "log_model", "model_features"]
