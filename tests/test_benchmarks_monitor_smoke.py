"""Smoke test of `benchmarks/monitor.py`: every monitor page is timed at `--quick` sizes and reported in full.

No timing is asserted (timings depend on the machine and its load; the script prints PASS/FAIL against the 2 s
budget). What is asserted: the command works as documented, every page has finite cold and warm times, a ratio to
the budget and a verdict, and each timed page actually drew its content (metrics, tables, charts, no error) on a
store that really holds a run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "monitor.py"
PAGES = ("leaderboard", "agent", "risk", "research", "operations")


def _finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_monitor_benchmark_times_every_page(tmp_path: Path) -> None:
    out = tmp_path / "monitor_results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ratio to 2 s" in proc.stdout
    for name in PAGES:
        assert name in proc.stdout

    payload = json.loads(out.read_text())
    assert payload["mode"] == "quick"
    assert payload["targets"] == {"page_render_s": 2.0}
    assert isinstance(payload["all_passed"], bool)
    results = payload["results"]
    store = results["store"]
    assert store["run_id"]
    assert store["rounds"] == 25
    assert store["agents"] == 6
    assert store["fills"] > 0

    pages = results["pages"]
    assert _finite_positive(pages["first_render_in_process_s"])
    repeats = payload["sizes"]["repeats"]
    for name in PAGES:
        r = pages[name]
        assert len(r["cold_s"]) == len(r["warm_s"]) == repeats
        for key in ("cold_best_s", "cold_median_s", "warm_best_s", "ratio", "first_s"):
            assert _finite_positive(r[key]), (name, key, r[key])
        assert r["ratio"] == r["cold_best_s"] / 2.0
        assert r["pass"] == (r["cold_best_s"] <= 2.0)
        assert r["elements"]["errors"] == 0, name
    # Each page rendered its content, not an empty state.
    assert pages["leaderboard"]["elements"]["charts"] == 1
    assert pages["leaderboard"]["elements"]["dataframes"] == 3
    assert pages["agent"]["elements"]["charts"] == 1
    assert pages["agent"]["elements"]["metrics"] >= 6
    assert pages["risk"]["elements"]["charts"] == 3
    assert pages["research"]["elements"]["dataframes"] >= 3  # runs, models, gate reports
    assert pages["operations"]["elements"]["dataframes"] >= 1  # data freshness
