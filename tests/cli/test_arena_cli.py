"""The arena commands end to end: `arena run`, `runs`, `leaderboard`, `decisions`, `cache`, and graceful stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from arena_lib.arena.store import ArenaStore
from arena_lib.cli.main import app

runner = CliRunner()


def _config(tmp_path: Path, end: str = "2025-01-04") -> Path:
    cfg = {
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "timeframe": "1h",
        "start": "2025-01-01",
        "end": end,
        "arena": {"bars_per_round": 2},
        "agents": [
            {"agent": "noop", "label": "cash"},
            {"agent": "sma_cross", "params": {"fast": 3, "slow": 8, "fraction": 0.3, "allow_short": True}},
            {
                "llm": {
                    "name": "gpt-test",
                    "provider": "openai",
                    "model": "gpt-test",
                    "api_key_env": "ARENA_TEST_NO_KEY",
                }
            },
        ],
    }
    path = tmp_path / "arena.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _db(tmp_path: Path) -> list[str]:
    return ["--db", f"sqlite:///{tmp_path}/arena.db", "--cache-db", f"sqlite:///{tmp_path}/cache.db"]


def test_run_json_then_leaderboard_and_decisions(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "--config", str(_config(tmp_path)), "--mode", "replay", "--json", *_db(tmp_path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    run_id = out["run_id"]
    assert out["status"] == "completed"
    assert out["rounds"] == 3 * 24 + 1  # hourly bars from 2025-01-01 00:00 to 2025-01-04 00:00, both included
    # The LLM without a key is listed as not configured, naming the variable; the rest of the arena played.
    assert "ARENA_TEST_NO_KEY" in out["not_configured"]["gpt-test"]

    board = runner.invoke(app, ["leaderboard", "--run", run_id, "--json", "--db", f"sqlite:///{tmp_path}/arena.db"])
    rows = json.loads(board.stdout)
    assert sorted(r["agent"] for r in rows) == ["cash", "sma_cross"]
    assert {"account_value", "return_pct", "sharpe", "flip_flops", "latency_p95", "cutoff_overlap"} <= set(rows[0])

    out_dir = tmp_path / "board"
    res = runner.invoke(app, ["leaderboard", "--db", f"sqlite:///{tmp_path}/arena.db", "--out", str(out_dir)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out_dir.iterdir()} >= {"leaderboard.csv", "leaderboard.json", "report.html"}

    dec = runner.invoke(
        app, ["decisions", "--run", run_id, "--agent", "sma_cross", "--json", "--db", f"sqlite:///{tmp_path}/arena.db"]
    )
    assert dec.exit_code == 0, dec.output
    records = [json.loads(line) for line in dec.stdout.strip().splitlines()]
    assert records, "sma_cross traded at least once"
    assert {"raw", "action", "leverage", "approved", "verdict", "reason"} <= set(records[0])
    assert {r["agent"] for r in records} == {"sma_cross"}


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    res = runner.invoke(app, ["run", "--config", str(cfg), "--mode", "live", *_db(tmp_path)])
    assert res.exit_code == 2
    assert "replay or paper" in res.output
    res = runner.invoke(app, ["run", "--config", str(tmp_path / "missing.yaml"), *_db(tmp_path)])
    assert res.exit_code == 2
    assert "not found" in res.output
    res = runner.invoke(app, ["leaderboard", "--run", "nope", "--db", f"sqlite:///{tmp_path}/arena.db"])
    assert res.exit_code == 2
    assert "no run 'nope'" in res.output
    res = runner.invoke(
        app, ["cache", "import", str(tmp_path / "none.jsonl"), "--cache-db", f"sqlite:///{tmp_path}/c.db"]
    )
    assert res.exit_code == 2


def test_sigterm_stops_after_the_current_round_and_resume_finishes(tmp_path: Path) -> None:
    cfg = _config(tmp_path, end="2025-02-15")  # long enough that the signal lands mid-run
    db = f"sqlite:///{tmp_path}/arena.db"
    cmd = [
        sys.executable,
        "-m",
        "arena_lib.cli.main",
        "run",
        "--config",
        str(cfg),
        "--json",
        "--run-id",
        "sig",
        *_db(tmp_path),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    store = ArenaStore(db)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if store.get_run("sig").last_round >= 5:
                break
        except KeyError:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["status"] == "stopped"
    run = store.get_run("sig")
    assert run.status == "stopped"
    total = 45 * 24 + 1
    assert 5 <= run.last_round < total - 1
    stopped_at = run.last_round

    res = runner.invoke(app, ["run", "--config", str(cfg), "--resume", "sig", "--json", *_db(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["status"] == "completed"
    rounds = store.rounds_frame("sig")["round_no"].tolist()
    assert rounds == list(range(total)), f"resumed after round {stopped_at} without a gap or a repeat"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_cache_export_import_round_trip(tmp_path: Path, suffix: str) -> None:
    from arena_lib.agents.llm.cache import ResponseCache, cache_key

    src = ResponseCache(f"sqlite:///{tmp_path}/a.db")
    key = cache_key("openai", "m", "sys", "user", {"temperature": 0})
    src.put(key, "openai", "m", {"text": '{"decisions": []}', "input_tokens": 3})
    path = tmp_path / f"cache{suffix}"
    res = runner.invoke(app, ["cache", "export", str(path), "--cache-db", f"sqlite:///{tmp_path}/a.db"])
    assert res.exit_code == 0
    assert "exported 1" in res.output
    res = runner.invoke(app, ["cache", "import", str(path), "--cache-db", f"sqlite:///{tmp_path}/b.db"])
    assert res.exit_code == 0
    assert "imported 1" in res.output
    assert ResponseCache(f"sqlite:///{tmp_path}/b.db").get(key) == src.get(key)
