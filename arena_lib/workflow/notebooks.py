"""Run parameterized notebooks under papermill, each inside one MLflow run.

A notebook holds narrative and a literals-only `parameters` cell (design rule 2). `run_notebook` checks the
parameters against that cell before anything starts, opens an MLflow run, executes the notebook on a fresh kernel with
`MLFLOW_RUN_ID` in its environment (so `tracking.start_run` inside the notebook logs into the same run), and logs the
executed notebook as an artifact of that run, also when a cell fails.

papermill changes the process's cwd and we change its environment while a notebook runs: run one notebook at a time
per process (parallel sweeps use processes, not threads).
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arena_lib.core import paths
from arena_lib.core.settings import settings
from arena_lib.workflow import tracking

KERNEL_NAME = "arena"
_REQUIRED = re.compile(r"\brequired\b", re.IGNORECASE)


class NotebookParameterError(ValueError):
    """The parameters given to a notebook do not fit its `parameters` cell."""


class NotebookExecutionError(RuntimeError):
    """A notebook cell raised; the run is FAILED and the executed notebook (with the traceback) is logged."""

    def __init__(self, message: str, *, run_id: str, output_path: Path, ename: str = "", evalue: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id
        self.output_path = output_path
        self.ename = ename
        self.evalue = evalue


@dataclass(frozen=True)
class NotebookParameter:
    """One name in a notebook's `parameters` cell, as papermill infers it."""

    name: str
    type: str  # papermill's inferred type name ("None" when the cell gives no hint)
    default: str  # the default as written in the cell (source text)
    help: str  # the trailing comment

    @property
    def required(self) -> bool:
        """A `None` default with "required" in its comment: the caller must supply it."""
        return self.default.strip() == "None" and bool(_REQUIRED.search(self.help))

    def value(self) -> Any:
        """The default as a Python value (the cell holds literals only), or its source text if it is not one."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {**asdict(self), "required": self.required}


@dataclass(frozen=True)
class NotebookRun:
    """An executed notebook: its MLflow run, its experiment and the executed copy on disk."""

    run_id: str
    output_path: Path
    experiment_id: str
    status: str


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Make sure a Jupyter kernel called `name` exists; if not, install this interpreter's into `sys.prefix`.

    Installing into the environment (not `~`) keeps the kernel tied to the interpreter that has `arena_lib`.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    if name not in KernelSpecManager().find_kernel_specs():
        from ipykernel.kernelspec import install

        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        install(kernel_name=name, display_name=f"Arena (Python {version})", prefix=sys.prefix)
    return name


def _display(path: Path) -> str:
    try:
        return path.relative_to(paths.project_root()).as_posix()
    except ValueError:
        return str(path)


def _notebook_path(path: str | Path) -> Path:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    if resolved.suffix != ".ipynb":
        raise ValueError(f"not a notebook (.ipynb): {path}")
    return resolved


def notebook_parameters(path: str | Path) -> dict[str, NotebookParameter]:
    """The names in the notebook's `parameters` cell with their types, defaults and help comments.

    A notebook without a cell tagged `parameters` is a NotebookParameterError: papermill would silently inject the
    values at the top instead, where nothing documents or checks them.
    """
    import nbformat
    import papermill

    nb_path = _notebook_path(path)
    notebook = nbformat.read(nb_path, as_version=4)
    if not any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in notebook.cells):
        raise NotebookParameterError(
            f"{_display(nb_path)} has no cell tagged 'parameters': tag the cell that holds its literal parameters"
        )
    inferred = papermill.inspect_notebook(str(nb_path))
    declared: dict[str, NotebookParameter] = {}
    for name, info in inferred.items():
        default = str(info.get("default") or "None")
        declared[name] = NotebookParameter(
            name=name,
            type=_type_name(str(info.get("inferred_type_name") or "None"), default),
            default=default,
            help=str(info.get("help") or ""),
        )
    return declared


def _type_name(annotated: str, default: str) -> str:
    """papermill reads types from annotations only; an unannotated literal default tells us the type as well."""
    if annotated != "None":
        return annotated
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "None"
    return "None" if value is None else type(value).__name__


def check_parameters(path: str | Path, params: Mapping[str, Any] | None) -> dict[str, NotebookParameter]:
    """Refuse parameters the notebook does not declare, missing required ones, and anything that looks secret.

    Secrets are refused because papermill writes parameters into the executed notebook, which is logged to MLflow;
    pass them through the environment instead. Returns the notebook's declared parameters.
    """
    declared = notebook_parameters(path)
    names = sorted(declared)
    given = dict(params or {})
    problems: list[str] = []
    for key, value in given.items():
        if tracking.is_secret_key(key) or (isinstance(value, str) and tracking.looks_secret(value)):
            problems.append(
                f"parameter {key!r} looks like a secret: papermill writes parameters into the executed notebook, "
                "so pass secrets through the environment (.env) instead"
            )
        elif key not in declared:
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.7)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            problems.append(f"unknown parameter {key!r}{hint}")
    for name in names:
        if declared[name].required and name not in given:
            problems.append(f"missing required parameter {name!r} ({declared[name].help.strip()})")
    if problems:
        accepted = ", ".join(names) or "(none)"
        raise NotebookParameterError(
            f"{_display(_notebook_path(path))}: " + "; ".join(problems) + f". Accepted parameters: {accepted}"
        )
    return declared


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts, and put the old values back afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _output_path(nb_path: Path, output_dir: str | Path | None, output_path: str | Path | None) -> Path:
    """`output_path` as given, else `<output_dir or <project>/runs/notebooks>/<stem>-<UTC time>.ipynb`."""
    from arena_lib.core.clock import WallClock

    if output_path is not None:
        out = Path(output_path).expanduser().resolve()
        if out.suffix != ".ipynb":
            raise ValueError(f"output notebook must end in .ipynb, got {output_path}")
    else:
        stamp = datetime.fromtimestamp(WallClock().now_ns() / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%S%fZ")
        folder = settings().runs_dir / "notebooks" if output_dir is None else Path(output_dir)
        out = folder.expanduser().resolve() / f"{nb_path.stem}-{stamp}.ipynb"
    if out == nb_path:
        raise ValueError(f"output would overwrite the source notebook {nb_path}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _failure_message(nb_path: Path, exc: BaseException, run_id: str) -> tuple[str, str, str]:
    ename = str(getattr(exc, "ename", "") or type(exc).__name__)
    evalue = str(getattr(exc, "evalue", "") or exc).strip()
    cell = getattr(exc, "exec_count", None)
    where = f" in cell [{cell}]" if cell is not None else ""
    return f"notebook {_display(nb_path)} failed{where}: {ename}: {evalue} (MLflow run {run_id})", ename, evalue


def run_notebook(
    path: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    output_dir: str | Path | None = None,
    output_path: str | Path | None = None,
    kernel_name: str | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
) -> NotebookRun:
    """Execute a notebook with `params` under papermill inside one MLflow run, and log the executed copy.

    Parameters are checked first (NotebookParameterError, and no run is created). The run goes to `experiment`
    (default: the notebook's `experiment` parameter, else its stem), logs `params` and tags `arena.notebook`; the
    kernel runs in the notebook's folder (or `cwd`) with `MLFLOW_RUN_ID` set, so the notebook's own
    `tracking.start_run` logs into this run. The executed notebook lands at `output_path`, or in `output_dir`
    (default `<project>/runs/notebooks/`), and under `notebook/` in the run. A failing cell raises
    NotebookExecutionError naming the cell's error and the run id; the run is then FAILED. `timeout` limits each
    cell, in seconds.
    """
    import mlflow
    import papermill

    nb_path = _notebook_path(path)
    given = dict(params or {})
    declared = check_parameters(nb_path, given)
    if experiment is None:  # the notebook's own `experiment` parameter, so CLI and JupyterLab runs land together
        default = declared["experiment"].value() if "experiment" in declared else None
        experiment = str(given.get("experiment") or default or nb_path.stem)
    uri = tracking.configure()
    kernel = kernel_name or ensure_kernel()
    output = _output_path(nb_path, output_dir, output_path)
    workdir = Path(cwd).resolve() if cwd is not None else nb_path.parent
    tags = {"arena.notebook": _display(nb_path), "arena.kernel": kernel}
    nested = mlflow.active_run() is not None
    with tracking.start_run(
        experiment,
        run_name=run_name or nb_path.stem,
        params=given,
        tags=tags,
        nested=nested,
        resume=False,
    ) as run:
        run_id = run.info.run_id
        kernel_env = {
            tracking.RUN_ID_ENV: run_id,
            tracking.TRACKING_URI_ENV: uri,
            paths.HOME_ENV: str(paths.project_root()),
        }
        failure: BaseException | None = None
        with _environ(kernel_env):
            try:
                papermill.execute_notebook(
                    str(nb_path),
                    str(output),
                    parameters=given,
                    kernel_name=kernel,
                    cwd=str(workdir),
                    progress_bar=False,
                    log_output=False,
                    execution_timeout=timeout,
                )
            except Exception as exc:  # every failure still logs the notebook, then re-raises below
                failure = exc
        if output.is_file():
            tracking.client().log_artifact(run_id, str(output), artifact_path="notebook")
        if failure is not None:
            message, ename, evalue = _failure_message(nb_path, failure, run_id)
            raise NotebookExecutionError(
                message, run_id=run_id, output_path=output, ename=ename, evalue=evalue
            ) from failure
        experiment_id = run.info.experiment_id
    status = tracking.client().get_run(run_id).info.status
    return NotebookRun(run_id=run_id, output_path=output, experiment_id=experiment_id, status=status)
