"""Smoke test of `benchmarks/sweep.py`: the sweep scale-out benchmark runs end to end at `--quick` sizes.

It runs the two local-cluster configurations of worker *processes* (kept between `run_sweep` calls, and started by
each flow run), 1 worker then 2, so this is also the test that the process path works: workers report to the
flow's Prefect API (here the script's own temporary server in a throwaway PREFECT_HOME) and return the same cells
as an in-process loop.
No timing is asserted (the machine is shared); the script prints PASS/FAIL against its target.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from flows.sweep import TASKS_PER_SLOT

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "sweep.py"


def test_quick_sweep_benchmark_runs_both_worker_counts_on_the_same_work(tmp_path: Path) -> None:
    out = tmp_path / "sweep_results.json"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in ("PREFECT_API_URL", "ARENA_DASK_ADDRESS", "ARENA_DASK_WORKERS"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "local", "--only", "cold", "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "local cluster, kept (run_sweep default)" in proc.stdout
    assert "every run's cells equal the in-process loop's: OK" in proc.stdout
    assert "fixed cost of one sweep on the kept cluster" in proc.stdout

    payload = json.loads(out.read_text())
    assert payload["mode"] == "quick"
    assert payload["sizes"]["configurations"] == ["local", "cold"]
    r = payload["results"]
    assert r["same_results"] is True
    assert r["cells"] == 4 * 2  # 2 x 2 grid, 2 windows
    assert set(r["configurations"]) == {"local", "cold"}
    for kind, config in r["configurations"].items():
        for n in (1, 2):
            runs = config[f"{n}_workers"]
            assert runs["best_s"] > 0
            assert len(runs["all_s"]) == payload["sizes"]["repeats"]
            assert all(run["tasks"] == n * TASKS_PER_SLOT for run in runs["runs"])  # the flow's split for n workers
        assert math.isfinite(config["speedup"])
        assert config["speedup"] > 0
        assert r["speedup_2_workers"][kind] == config["speedup"]
    assert set(r["local_cluster_first_run_s"]) == {"1", "2"}  # the kept clusters' start, timed apart
    assert all(t > 0 for t in r["local_cluster_first_run_s"].values())
    assert r["flow_overhead_s"] > 0
    assert r["in_process_serial"]["best_s"] > 0
    assert isinstance(payload["all_passed"], bool)
    assert payload["environment"]["prefect_dask"]
