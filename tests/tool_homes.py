"""Test isolation: tool homes (Jupyter, IPython, matplotlib, Keras) in a temporary folder, and MLflow reset."""

from __future__ import annotations

from pathlib import Path

import pytest

TOOL_HOMES = (
    "IPYTHONDIR",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "MPLCONFIGDIR",
    "KERAS_HOME",
)


def redirect_tool_homes(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Set every variable of `TOOL_HOMES` to its own new folder under `root`."""
    for name in TOOL_HOMES:
        folder = root / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        mp.setenv(name, str(folder))


MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
)
"""MLflow's environment variables: a test store starts from none of the developer's."""


def reset_mlflow() -> None:
    """End any active run and point MLflow back at its defaults, so no global store names a deleted folder."""
    import sys

    if "mlflow" not in sys.modules:
        return
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
