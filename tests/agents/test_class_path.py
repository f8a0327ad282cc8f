"""Agents named by class path (`module:Class`) work wherever a registry name does: configs, parameters, a run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arena_lib.agents.registry import agent_parameters, build_agent, make_agent
from arena_lib.arena.config import load_arena_config
from arena_lib.core.spec import load_competition
from arena_lib.core.types import Decision

PATH = f"{__name__}:PatientAgent"
MARKET = 'symbols: [BTC/USDT]\ntimeframe: 1h\nstart: "2025-01-01"\nend: "2025-01-02"\n'


class PatientAgent:
    """Never trades; remembers how it was built and how often it was asked."""

    name = "patient"

    def __init__(self, patience: int = 3, threshold: float = 0.5, verbose: bool = False) -> None:
        self.patience, self.threshold, self.verbose = patience, threshold, verbose
        self.calls = 0

    def decide(self, snapshot: Any, account: Any) -> Sequence[Decision]:
        self.calls += 1
        return []


def test_agent_parameters_and_coercion_work_for_a_class_path() -> None:
    assert agent_parameters(PATH) == {"patience": "int", "threshold": "float", "verbose": "bool"}
    agent: Any = make_agent(PATH, {"patience": "7", "threshold": "0.25", "verbose": "yes"})
    assert type(agent).__name__ == "PatientAgent"
    assert (agent.patience, agent.threshold, agent.verbose) == (7, 0.25, True)
    with pytest.raises(ValueError, match="unknown parameter"):
        make_agent(PATH, {"speed": 1})
    with pytest.raises(KeyError, match="cannot import module"):
        make_agent("tests.agents.no_such_module:Agent")
    with pytest.raises(KeyError, match="has no callable 'Nope'"):
        make_agent(f"{__name__}:Nope")
    with pytest.raises(ValueError, match="PurePosixPath, which is not an Agent"):
        make_agent("pathlib:PurePath")
    with pytest.raises(ValueError, match="cannot read its constructor's parameters"):
        make_agent("collections:OrderedDict")


def test_a_competition_names_an_agent_by_class_path(tmp_path: Path) -> None:
    path = tmp_path / "competition.yaml"
    path.write_text(
        MARKET + f"agents:\n  - agent: {PATH}\n    params: {{patience: 9}}\n"
        f"  - agent: {PATH}\n    label: calm\n  - agent: noop\n"
    )
    _, specs = load_competition(path)
    built: list[Any] = [build_agent(s) for s in specs]
    assert [a.name for a in built] == [PATH, "calm", "noop"]  # unlabelled: named by its path, as the config is
    assert [s.name for s in specs] == [a.name for a in built]
    assert (built[0].patience, built[1].patience) == (9, 3)


def test_an_arena_runs_a_class_path_agent_end_to_end(tmp_path: Path) -> None:
    from arena_lib.cli.main import app

    path = tmp_path / "arena.yaml"
    path.write_text(MARKET + f"agents:\n  - agent: {PATH}\n    params: {{patience: 4}}\n  - agent: noop\n")
    config = load_arena_config(path)
    assert [(q.agent, dict(q.params)) for q in config.quant] == [(PATH, {"patience": 4}), ("noop", {})]
    db = ["--db", f"sqlite:///{tmp_path}/arena.db", "--cache-db", f"sqlite:///{tmp_path}/cache.db"]
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--config", str(path), "--mode", "replay", "--json", *db])
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout.strip().splitlines()[-1])["run_id"]
    board = runner.invoke(app, ["leaderboard", "--run", run_id, "--json", db[0], db[1]])
    assert board.exit_code == 0, board.output
    assert sorted(r["agent"] for r in json.loads(board.stdout)) == sorted([PATH, "noop"])
