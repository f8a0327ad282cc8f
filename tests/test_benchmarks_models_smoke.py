"""Smoke test of `benchmarks/models.py` at tiny sizes: the code paths run and the JSON is complete.

No timing is asserted (the machine is shared); the benchmark reports what a training costs, without a target.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

MODELS_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "models.py"


def test_models_benchmark_quick_run_reports_every_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    spec = importlib.util.spec_from_file_location("arena_benchmarks_models", MODELS_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "models.json"
    assert module.main(["--quick", "--bars", "800", "--output", str(out)]) == 0
    payload = json.loads(out.read_text())
    results = payload["results"]
    assert results["dataset"]["rows"] > 0
    xgb = results["xgboost"]
    assert xgb["device"] in ("cpu", "cuda")
    assert xgb["params"]["n_estimators"] == 20
    for size in ("large", "small"):
        assert xgb[size]["rows"] > 0
        assert xgb[size]["fit_s"] > 0
    assert xgb["large"]["rows"] > xgb["small"]["rows"]
    assert results["mlp"]["fit_1_epoch_s"] > 0
    assert results["mlp"]["rows"] == results["dataset"]["rows"]
    assert "xgboost" in payload["environment"]
    assert math.isfinite(payload["total_s"])
