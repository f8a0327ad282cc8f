"""`research`: run a parameterized notebook with papermill inside one MLflow run (`arena_lib.workflow.notebooks`)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from arena_lib.workflow.notebooks import run_notebook
from flows.settings import project_path


@flow(name="research")
def research(
    notebook: str = "notebooks/20_train_xgboost.ipynb",
    parameters: dict[str, Any] | None = None,
    experiment: str | None = None,
) -> dict[str, str]:
    """Execute `notebook` with `parameters`; returns the MLflow run id and where the executed copy landed.

    Misspelled or missing parameters are refused before any run is created; a failing cell fails the flow with
    the cell's error and leaves the MLflow run FAILED (no retries: a notebook is computation, not I/O).
    """
    result = run_notebook(project_path(notebook), parameters, experiment=experiment)
    get_run_logger().info("notebook %s: MLflow run %s (%s)", notebook, result.run_id, result.status)
    return {
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "output_path": str(result.output_path),
        "status": result.status,
    }
