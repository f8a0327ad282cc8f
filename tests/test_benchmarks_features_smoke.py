"""Smoke test of `benchmarks/features.py` at tiny sizes: the code paths run and the JSON is complete.

No timing is asserted (the machine is shared); the benchmark itself reports PASS/FAIL against its targets.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

FEATURES_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "features.py"


def test_features_benchmark_quick_run_reports_every_ratio(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("arena_benchmarks_features", FEATURES_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "features.json"
    assert module.main(["--quick", "--bars", "1500", "--repeats", "1", "--output", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["n_registered_features"] >= 100
    indicators = payload["results"]["indicators"]
    assert indicators, "the shared indicators were compared"
    text = json.dumps(indicators)
    assert "pandas" in text
    assert payload["results"]["feature_set"]
    assert math.isfinite(payload["total_s"])
