"""Smoke test of `benchmarks/monitor_store.py`: the monitor query benchmark runs end to end at `--quick` size.

No timing is asserted (timings depend on the machine and its load; the script prints PASS/FAIL against the 2 s
page budget). What is asserted: the command works as documented, it labels its data as synthetic, it built the
store it claims (every table in proportion), every query it times returned what a page needs, each timing is a
finite positive number, and the index comparison ran.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "monitor_store.py"


def _finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_monitor_store_benchmark_reports_every_query(tmp_path: Path) -> None:
    out = tmp_path / "monitor_store_results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "x the 2 s page budget" in proc.stdout
    assert "SYNTHETIC" in proc.stdout

    payload = json.loads(out.read_text())
    assert payload["mode"] == "quick"
    assert payload["data"].startswith("SYNTHETIC")
    assert isinstance(payload["all_passed"], bool)
    store = payload["store"]
    agents, rounds = len(store["agents"]), store["rounds"]
    rows = store["rows"]
    assert rows["fills"] >= payload["sizes"]["fills"] == 20_000
    assert rows["equity"] == agents * rounds  # one equity row per agent per round
    assert rows["rounds"] == rows["snapshots"] == rounds
    assert rows["llm_calls"] == len(store["llm_agents"]) * rounds
    assert rows["decisions"] > rows["fills"]

    results = payload["results"]
    for name, r in results.items():
        assert _finite_positive(r["best_s"]), name
        assert len(r["all_s"]) == len(r["cpu_s"]) == payload["sizes"]["repeats"]
        assert all(math.isfinite(c) and c >= 0 for c in r["cpu_s"]), name
    for board in ("leaderboard", "leaderboard (last day)", "leaderboard (flip_flops=False)"):
        assert results[board]["rows"] == agents
    assert results["trades (all agents)"]["rows"] == 500
    assert results["equity_curves"]["rows"] <= agents * 1500
    assert results["fill_count"]["rows"] == 1

    indexed = payload["with_indexes"]
    assert set(indexed["indexes"]) == {"ix_fills_run_agent_symbol_seq", "ix_fills_run_ts"}
    assert indexed["results"]
    assert all(_finite_positive(r["best_s"]) for r in indexed["results"].values())
    slowest = payload["slowest"]
    assert slowest["query"] in results
    assert _finite_positive(slowest["ratio_to_budget"])
