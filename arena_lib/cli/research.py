"""Research commands: `arena notebook run|params` (papermill under MLflow) and `arena mlflow uri`.

Registered on the main `arena` app by `arena_lib.cli.main` through `register(app)`. Heavy imports (papermill, mlflow)
stay inside the commands so that `arena --help` stays instant.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

notebook_app = typer.Typer(no_args_is_help=True, help="Parameterized notebooks: run them under MLflow, list params.")
mlflow_app = typer.Typer(no_args_is_help=True, help="MLflow tracking: where runs are stored.")

_PARAM_FLAGS = ("-p", "--parameter")


class _ParamLoader(yaml.SafeLoader):
    """YAML scalars for `-p` values, minus YAML 1.1's surprises: `yes`/`no`/`on`/`off` and dates stay strings."""


_ParamLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ParamLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    from arena_lib.cli.common import fail

    fail(escape(message), code)


def parse_value(text: str) -> Any:
    """A `-p` value as YAML: `3` is an int, `0.5` a float, `true` a bool, `[BTC/USDT, ETH/USDT]` a list, `abc` text."""
    if text.strip() == "":
        return text
    try:
        return yaml.load(text, Loader=_ParamLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError:
        return text


def parse_parameter_args(args: list[str]) -> dict[str, Any]:
    """`-p KEY VALUE` pairs (papermill's syntax) from the tokens the command did not parse itself."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(args):
        flag = args[i]
        if flag not in _PARAM_FLAGS:
            raise ValueError(f"unexpected argument {flag!r}: give notebook parameters as -p KEY VALUE")
        if i + 2 >= len(args):
            raise ValueError(f"{flag} needs two values, KEY and VALUE (got {' '.join(args[i + 1 :]) or 'nothing'})")
        key, value = args[i + 1], args[i + 2]
        if key in params:
            raise ValueError(f"parameter {key!r} given twice")
        params[key] = parse_value(value)
        i += 3
    return params


@notebook_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    options_metavar="[-p KEY VALUE]... [OPTIONS]",
)
def notebook_run(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="the notebook (.ipynb) with a cell tagged `parameters`")],
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: the notebook's name)")] = None,
    run_name: Annotated[str | None, typer.Option(help="MLflow run name (default: the notebook's name)")] = None,
    output: Annotated[
        Path | None, typer.Option(help="executed notebook: a .ipynb file, or a folder (default runs/notebooks/)")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds allowed per cell (default: no limit)")] = None,
) -> None:
    """Run a notebook under papermill inside one MLflow run; `-p KEY VALUE` (repeatable) sets its parameters.

    Values are YAML: `-p n_folds 3` is an int, `-p symbols '[BTC/USDT, ETH/USDT]'` a list, `-p name abc` text.

    Prints the executed notebook's path, then `run_id: <id>` as the last line.
    """
    from arena_lib.workflow.notebooks import NotebookExecutionError, NotebookParameterError, run_notebook

    try:
        params = parse_parameter_args(list(ctx.args))
    except ValueError as exc:
        _fail(str(exc))
        return
    is_file = output is not None and output.suffix == ".ipynb"
    try:
        result = run_notebook(
            path,
            params,
            experiment=experiment,
            run_name=run_name,
            output_dir=None if is_file else output,
            output_path=output if is_file else None,
            timeout=timeout,
        )
    except (NotebookParameterError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    except NotebookExecutionError as exc:
        print(f"output: {exc.output_path}")
        print(f"run_id: {exc.run_id}")
        _fail(str(exc), 1)
        return
    print(f"output: {result.output_path}")
    print(f"run_id: {result.run_id}")


@notebook_app.command("params")
def notebook_params(
    path: Annotated[Path, typer.Argument(help="the notebook (.ipynb)")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """List a notebook's parameters: name, inferred type, default and help comment."""
    from rich.markup import escape
    from rich.table import Table

    from arena_lib.cli.common import console
    from arena_lib.workflow.notebooks import NotebookParameterError, notebook_parameters

    try:
        declared = notebook_parameters(path)
    except (NotebookParameterError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps({name: p.to_dict() for name, p in declared.items()}, indent=2))
        return
    table = Table(title=str(path), show_header=True, header_style="bold")
    for column in ("name", "type", "default", "required", "help"):
        table.add_column(column)
    for p in declared.values():
        table.add_row(*(escape(v) for v in (p.name, p.type, p.default, "yes" if p.required else "", p.help)))
    console.print(table)


@mlflow_app.command("uri")
def mlflow_uri() -> None:
    """Print the tracking URI, e.g. `mlflow ui --backend-store-uri "$(arena mlflow uri)"`."""
    from arena_lib.workflow.tracking import tracking_uri

    print(tracking_uri())


def register(app: typer.Typer) -> None:
    """Add the `notebook` and `mlflow` command groups to the `arena` app."""
    app.add_typer(notebook_app, name="notebook")
    app.add_typer(mlflow_app, name="mlflow")
