"""Every command that loads a config prints one line for a bad one: the file, the line, the key, the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arena_lib.cli.main import app

runner = CliRunner()
MARKET = 'symbols: [BTC/USDT]\ntimeframe: 1h\nstart: "2025-01-01"\nend: "2025-01-02"\n'


def _one_line_error(args: list[str], *needles: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_arena_run_demo_and_llm_status_print_one_line(tmp_path: Path) -> None:
    arena = tmp_path / "arena.yaml"
    arena.write_text(MARKET + "costs: {fee_bps: -1}\nagents:\n  - agent: noop\n")
    db = ["--db", f"sqlite:///{tmp_path}/arena.db", "--cache-db", f"sqlite:///{tmp_path}/cache.db"]
    expected = f"{arena}: invalid arena config: line 5: 'costs.fee_bps': must be >= 0 (got -1)"
    _one_line_error(["run", "--config", str(arena), "--mode", "replay", *db], expected)
    _one_line_error(["llm", "status", "--config", str(arena)], expected)
    competition = tmp_path / "competition.yaml"
    competition.write_text(MARKET + "agents:\n  - agent: noop\n    lable: cash\n")
    _one_line_error(["demo", "--config", str(competition)], "unknown key 'agents[0].lable' (did you mean 'label'?)")


def test_gates_show_prints_one_line(tmp_path: Path) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text("version: 1\nmax_pbo: [0.5\n")
    _one_line_error(["gates", "show", "--gates", str(gates)], f"{gates}: invalid YAML in gates file at line 3")


@pytest.mark.parametrize("variable", ["ARENA_TRADE_MODE"])
def test_a_bad_setting_is_one_line_from_the_console_script(variable: str) -> None:
    env = {**os.environ, variable: "real"}
    code = "from arena_lib.cli.main import main; main()"
    res = subprocess.run([sys.executable, "-c", code, "demo"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (
        "error: environment: invalid settings: 'ARENA_TRADE_MODE': must be 'paper', 'replay' or 'live' (got 'real')"
    )
