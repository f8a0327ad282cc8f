"""Smoke test of `benchmarks/arena.py`: the arena benchmarks run end to end at `--quick` sizes and report in full.

No timing is asserted (timings depend on the machine and its load; the script prints PASS/FAIL against its
targets). What is asserted: the command works as documented, the JSON holds every ratio and rate as a finite
number, both sides of each comparison did the work they claim (every request reached the server, the cached replay
answered every turn from the cache and ended with the warm-up run's fills and equity), and the profile is there.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "arena.py"


def _finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_arena_benchmark_writes_finite_ratios(tmp_path: Path) -> None:
    out = tmp_path / "arena_results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "round / slowest agent" in proc.stdout
    assert "decisions/s" in proc.stdout

    payload = json.loads(out.read_text())
    assert payload["mode"] == "quick"
    assert isinstance(payload["all_passed"], bool)
    rounds = payload["results"]["round_overhead"]
    replay = payload["results"]["cached_replay"]

    for key in ("ratio", "round_wall_median_s", "sequential_s", "sequential_ratio", "speedup_vs_sequential"):
        assert _finite_positive(rounds[key]), (key, rounds[key])
    assert math.isfinite(rounds["overhead_ms"])
    assert len(rounds["round_wall_s"]) == rounds["rounds"]
    assert isinstance(rounds["pass"], bool)
    # Every agent was asked once per round (the warm-up included) and once more in the sequential contrast.
    assert rounds["server_requests"] == rounds["agents"] * (rounds["rounds"] + 2)
    assert len(rounds["sequential_per_agent_s"]) == rounds["agents"]

    for key in ("decisions_per_s", "turns_per_s", "decisions_per_s_without_commit", "replay_s"):
        assert _finite_positive(replay[key]), (key, replay[key])
    assert replay["decisions"] == 3 * replay["turns"] > 0
    assert isinstance(replay["pass"], bool)
    assert set(replay["split_s"]) == {
        "prompt_build_s",
        "cache_get_s",
        "parse_s",
        "turn_other_s",
        "engine_s",
        "ledger_commit_s",
    }
    assert all(math.isfinite(v) for v in replay["split_s"].values())
    # The replay did the warm-up run's work: every turn answered from the cache, the same fills and final equity.
    assert replay["same_work"] is True
    assert replay["replay_run"]["cache_hits"] == replay["turns"]
    assert replay["warm_server_calls"] == replay["turns"]
    assert replay["replay_run"]["fills"] > 0
    assert replay["profile"]["top_own_time"], "the cProfile section is empty"
