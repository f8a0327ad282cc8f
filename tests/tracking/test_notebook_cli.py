"""`arena notebook run|params` and `arena mlflow uri`, on a fresh Typer app with the research commands registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from arena_lib.cli.research import parse_parameter_args, parse_value, register
from arena_lib.workflow import tracking

FIXTURES = Path(__file__).parent / "fixtures"
SUM = FIXTURES / "sum_of_squares.ipynb"
runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    fresh = typer.Typer(no_args_is_help=True)
    register(fresh)
    return fresh


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("0.5", 0.5),
        ("-0.5", -0.5),
        ("true", True),
        ("null", None),
        ("abc", "abc"),
        ("yes", "yes"),
        ("2024-01-01", "2024-01-01"),
        ("[BTC/USDT, ETH/USDT]", ["BTC/USDT", "ETH/USDT"]),
        ("{fast: 3}", {"fast": 3}),
        ("", ""),
        ("[unclosed", "[unclosed"),
    ],
)
def test_parameter_values_are_yaml_without_surprises(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_parameter_args_come_in_key_value_pairs() -> None:
    assert parse_parameter_args(["-p", "n", "3", "--parameter", "name", "abc"]) == {"n": 3, "name": "abc"}
    with pytest.raises(ValueError, match="needs two values"):
        parse_parameter_args(["-p", "n"])
    with pytest.raises(ValueError, match="unexpected argument '--exp'"):
        parse_parameter_args(["--exp", "x"])
    with pytest.raises(ValueError, match="'n' given twice"):
        parse_parameter_args(["-p", "n", "1", "-p", "n", "2"])


def test_notebook_run_prints_the_run_id(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "executed.ipynb"
    argv = ["notebook", "run", str(SUM), "-p", "label", "cli", "-p", "n", "2", "-p", "symbols", "[BTC/USDT, ETH/USDT]"]
    result = runner.invoke(app, [*argv, "--experiment", "notebook-cli", "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == f"output: {out}"
    assert lines[-1].startswith("run_id: ")
    run_id = lines[-1].removeprefix("run_id: ")
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"label": "cli", "n": "2", "symbols": '["BTC/USDT", "ETH/USDT"]'}
    assert run.data.metrics == {"total": 5.0, "n_symbols": 2.0}
    assert tracking.client().get_experiment(run.info.experiment_id).name == "notebook-cli"
    assert out.is_file()


def test_a_bad_parameter_exits_2_with_the_message(app: typer.Typer) -> None:
    result = runner.invoke(app, ["notebook", "run", str(SUM), "-p", "lable", "x"])
    assert result.exit_code == 2
    assert "unknown parameter 'lable' (did you mean 'label'?)" in result.stderr
    assert "missing required parameter 'label'" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["notebook", "run", str(SUM), "-p", "label"])
    assert result.exit_code == 2
    assert "-p needs two values" in result.stderr
    result = runner.invoke(app, ["notebook", "run", str(FIXTURES / "nope.ipynb")])
    assert result.exit_code == 2
    assert "notebook not found" in result.stderr


def test_notebook_params_lists_types_defaults_and_help(app: typer.Typer) -> None:
    result = runner.invoke(app, ["notebook", "params", str(SUM), "--json"])
    assert result.exit_code == 0, result.output
    declared = json.loads(result.stdout)
    assert declared["label"] == {
        "name": "label",
        "type": "None",
        "default": "None",
        "help": "required: a name for this run",
        "required": True,
    }
    assert declared["symbols"]["default"] == '["BTC/USDT"]'
    table = runner.invoke(app, ["notebook", "params", str(SUM)])
    assert table.exit_code == 0
    assert '["BTC/USDT"]' in table.stdout  # markup-like text is printed, not swallowed
    assert "number of terms" in table.stdout


def test_mlflow_uri_prints_the_tracking_uri(app: typer.Typer) -> None:
    result = runner.invoke(app, ["mlflow", "uri"])
    assert result.exit_code == 0
    assert result.stdout.strip() == tracking.tracking_uri()
