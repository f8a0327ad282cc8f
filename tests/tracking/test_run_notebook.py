"""`arena_lib.workflow.notebooks`: parameter checks, and real papermill executions that log into one MLflow run.

Each execution starts a kernel (2-4 s here), so the module runs the passing and the failing notebook once each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from arena_lib.workflow import notebooks, tracking

FIXTURES = Path(__file__).parent / "fixtures"
SUM = FIXTURES / "sum_of_squares.ipynb"
FAILS = FIXTURES / "fails.ipynb"


def _run_count() -> int:
    mlc = tracking.client()
    ids = [e.experiment_id for e in mlc.search_experiments()]
    return len(mlc.search_runs(ids, max_results=10_000)) if ids else 0


@pytest.fixture(scope="module")
def finished() -> notebooks.NotebookRun:
    return notebooks.run_notebook(
        SUM, {"label": "demo", "n": 3, "symbols": ["BTC/USDT", "ETH/USDT"]}, experiment="notebook-tests"
    )


def test_notebook_parameters_reads_the_tagged_cell() -> None:
    declared = notebooks.notebook_parameters(SUM)
    assert list(declared) == ["n", "scale", "symbols", "label"]
    assert (declared["n"].type, declared["n"].default, declared["n"].help) == ("int", "4", "number of terms")
    assert (declared["scale"].type, declared["symbols"].type, declared["label"].type) == ("float", "list", "None")
    assert declared["symbols"].default == '["BTC/USDT"]'
    assert declared["label"].required
    assert not declared["n"].required
    with pytest.raises(notebooks.NotebookParameterError, match=r"no_parameters\.ipynb has no cell tagged 'parameters'"):
        notebooks.notebook_parameters(FIXTURES / "no_parameters.ipynb")
    with pytest.raises(FileNotFoundError, match="notebook not found"):
        notebooks.notebook_parameters(FIXTURES / "missing.ipynb")


def test_a_misspelled_parameter_names_the_close_match_and_creates_no_run() -> None:
    before = _run_count()
    with pytest.raises(notebooks.NotebookParameterError) as info:
        notebooks.run_notebook(SUM, {"label": "x", "scael": 2.0})
    message = str(info.value)
    assert "sum_of_squares.ipynb" in message
    assert "unknown parameter 'scael' (did you mean 'scale'?)" in message
    assert "Accepted parameters: label, n, scale, symbols" in message
    assert _run_count() == before
    assert tracking.client().get_experiment_by_name("sum_of_squares") is None


def test_a_missing_required_parameter_is_named() -> None:
    with pytest.raises(
        notebooks.NotebookParameterError, match=r"missing required parameter 'label' \(required: a name"
    ):
        notebooks.check_parameters(SUM, {"n": 2})


def test_secrets_are_refused_as_parameters() -> None:
    with pytest.raises(notebooks.NotebookParameterError, match="'api_key' looks like a secret"):
        notebooks.check_parameters(SUM, {"label": "x", "api_key": "abc"})
    with pytest.raises(notebooks.NotebookParameterError, match="'label' looks like a secret"):
        notebooks.check_parameters(SUM, {"label": "postgresql://u:pw@host/db"})


def test_metric_and_executed_notebook_land_in_the_same_run(finished: notebooks.NotebookRun, arena_home: Path) -> None:
    mlc = tracking.client()
    run = mlc.get_run(finished.run_id)
    assert finished.status == run.info.status == "FINISHED"
    assert (
        run.info.experiment_id == finished.experiment_id == mlc.get_experiment_by_name("notebook-tests").experiment_id
    )
    assert run.data.metrics == {"total": 14.0, "n_symbols": 2.0}  # 1 + 4 + 9; the NaN was dropped
    assert run.data.params == {"label": "demo", "n": "3", "symbols": '["BTC/USDT", "ETH/USDT"]'}
    assert run.data.tags["arena.notebook"].endswith("tests/tracking/fixtures/sum_of_squares.ipynb")
    assert run.data.tags["arena.git_sha"] != "unknown"
    assert [a.path for a in mlc.list_artifacts(finished.run_id, "notebook")] == [
        f"notebook/{finished.output_path.name}"
    ]
    assert mlc.get_experiment_by_name("fixture-notebook") is None  # the kernel resumed; it opened no run of its own
    assert "MLFLOW_RUN_ID" not in os.environ
    assert finished.output_path.parent == arena_home / "runs" / "notebooks"


def test_executed_notebook_holds_the_injected_parameters(finished: notebooks.NotebookRun) -> None:
    executed = nbformat.read(finished.output_path, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert 'label = "demo"' in injected[0].source
    assert "n = 3" in injected[0].source
    assert 'symbols = ["BTC/USDT", "ETH/USDT"]' in injected[0].source
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert f"run {finished.run_id} in fixtures" in printed  # same run id inside the kernel; cwd = notebook folder


def test_a_failing_notebook_fails_its_run_and_is_still_logged(tmp_path: Path) -> None:
    with pytest.raises(notebooks.NotebookExecutionError) as info:
        notebooks.run_notebook(FAILS, {"threshold": 0.25}, experiment="notebook-tests", output_dir=tmp_path)
    error = info.value
    assert "fails.ipynb failed in cell" in str(error)
    assert "ValueError: threshold 0.25 is below 1" in str(error)
    assert error.run_id in str(error)
    assert (error.ename, error.evalue) == ("ValueError", "threshold 0.25 is below 1")
    mlc = tracking.client()
    run = mlc.get_run(error.run_id)
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"threshold": 0.25}  # logged by the notebook before the failing cell, same run
    assert [a.path for a in mlc.list_artifacts(error.run_id, "notebook")] == [f"notebook/{error.output_path.name}"]
    assert error.output_path.parent == tmp_path
    executed = json.loads(error.output_path.read_text())
    assert any(o.get("ename") == "ValueError" for c in executed["cells"] for o in c.get("outputs", []))


def test_ensure_kernel_registers_the_arena_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    assert notebooks.ensure_kernel() == notebooks.KERNEL_NAME
    assert notebooks.KERNEL_NAME in KernelSpecManager().find_kernel_specs()
