"""`arena promote`, `arena rollback` and `arena gates show` as a user runs them: output and exit codes 0/1/2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from arena_lib.cli.promotion import register
from arena_lib.workflow import tracking
from tests.promotion.conftest import PASSING_VALIDATION, RunFactory, unique_name, write_gates

runner = CliRunner()
REPO_GATES = Path(__file__).resolve().parents[2] / "configs" / "gates.yaml"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    return cli


@pytest.fixture
def gates_path(tmp_path: Path) -> Path:
    return write_gates(tmp_path / "gates.yaml")


def _invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_promote_prints_the_gate_table_and_exits_0(app: typer.Typer, make_run: RunFactory, gates_path: Path) -> None:
    name = unique_name("cli_ok")
    run_id = make_run(PASSING_VALIDATION, model=name)
    code, out = _invoke(app, "promote", run_id, "--alias", "paper", "--model", name, "--gates", str(gates_path))
    assert code == 0, out
    assert "min_sharpe_margin" in out
    assert "PASS" in out
    assert "FAIL" not in out
    assert f"promoted {name} version 1 to @paper (previous holder: none)" in out
    assert f"gate report: runs:/{run_id}/gate_reports/paper-" in out
    assert tracking.alias_version(name, "paper") == "1"


def test_a_failed_gate_exits_1_naming_it(app: typer.Typer, make_run: RunFactory, gates_path: Path) -> None:
    name = unique_name("cli_fail")
    run_id = make_run({**PASSING_VALIDATION, "oos_trades": 4}, model=name)
    code, out = _invoke(app, "promote", run_id, "--alias", "paper", "--gates", str(gates_path))
    assert code == 1, out
    assert "FAIL" in out
    assert "not promoted" in out
    assert "failed min_oos_trades" in out
    assert tracking.alias_version(name, "paper") is None


def test_json_output_and_dry_run(app: typer.Typer, make_run: RunFactory, gates_path: Path, tmp_path: Path) -> None:
    name = unique_name("cli_json")
    run_id = make_run(PASSING_VALIDATION, model=name)
    code, out = _invoke(app, "promote", run_id, "--alias", "paper", "--gates", str(gates_path), "--dry-run", "--json")
    assert code == 0, out
    payload = json.loads(out)
    assert payload["dry_run"] is True
    assert payload["report_artifact"] is None
    assert payload["report"]["passed"] is True
    assert {c["name"] for c in payload["report"]["checks"]} >= {"min_oos_trades", "max_pbo"}
    assert tracking.alias_version(name, "paper") is None  # a dry run moves nothing

    missing = tmp_path / "no-ledger.db"
    code, out = _invoke(
        app,
        "promote",
        run_id,
        "--alias",
        "live",
        "--gates",
        str(gates_path),
        "--json",
        "--paper-db",
        f"sqlite:///{missing}",
    )
    assert code == 1
    report = json.loads(out)["report"]
    assert report["failed"][:2] == ["holds_paper", "paper_record"]  # live reads the paper record, here absent
    assert "min_paper_days" in report["failed"]
    assert f"no arena ledger at {missing}" in report["paper_record"]["reason"]


def test_bad_input_exits_2_with_a_message(
    app: typer.Typer, make_run: RunFactory, gates_path: Path, tmp_path: Path
) -> None:
    code, out = _invoke(app, "promote", "0" * 32, "--alias", "paper", "--gates", str(gates_path))
    assert code == 2
    assert "no MLflow run" in out
    code, out = _invoke(app, "promote", "0" * 32, "--alias", "prod", "--gates", str(gates_path))
    assert code == 2
    assert "unknown alias 'prod'" in out
    run_id = make_run(PASSING_VALIDATION)
    code, out = _invoke(app, "promote", run_id, "--alias", "paper", "--gates", str(gates_path))
    assert code == 2
    assert "registered no model version" in out
    bad = tmp_path / "typo.yaml"
    bad.write_text(gates_path.read_text().replace("min_paper_days:", "min_papr_days:"))
    code, out = _invoke(app, "promote", run_id, "--alias", "paper", "--gates", str(bad))
    assert code == 2
    assert "unknown key 'min_papr_days'" in out


def test_rollback_exits_0_then_2_when_nothing_is_left(app: typer.Typer, make_run: RunFactory, gates_path: Path) -> None:
    name = unique_name("cli_roll")
    runs = [make_run(PASSING_VALIDATION, model=name) for _ in range(2)]
    for run_id in runs:
        code, out = _invoke(app, "promote", run_id, "--alias", "paper", "--gates", str(gates_path))
        assert code == 0, out
    code, out = _invoke(app, "rollback", "--alias", "paper", "--model", name)
    assert code == 0, out
    assert f"rolled back {name}@paper: version 2 -> 1" in out
    assert tracking.alias_version(name, "paper") == "1"
    code, out = _invoke(app, "rollback", "--alias", "paper", "--model", name)
    assert code == 2
    assert "nothing to roll back to" in out


def test_gates_show(app: typer.Typer, tmp_path: Path, store: Path) -> None:
    (store / "configs").mkdir(exist_ok=True)
    shutil.copy(REPO_GATES, store / "configs" / "gates.yaml")  # ARENA_HOME is the store folder
    code, out = _invoke(app, "gates", "show")
    assert code == 0, out
    for name in ("min_oos_trades", "max_pbo", "lookahead", "min_paper_days", "wf_oos_sharpe"):
        assert name in out
    off = write_gates(tmp_path / "off.yaml", max_pbo=None)
    code, out = _invoke(app, "gates", "show", "--gates", str(off), "--json")
    assert code == 0
    assert json.loads(out)["max_pbo"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(off.read_text().replace("version: 1", "version: 2"))
    code, out = _invoke(app, "gates", "show", "--gates", str(bad))
    assert code == 2
    assert "'version'" in out
