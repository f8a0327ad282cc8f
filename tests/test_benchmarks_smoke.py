"""Smoke test of `benchmarks/run.py`: every benchmark runs end to end at tiny sizes and reports what it should.

No timing is asserted here (timings depend on the machine and its load); `benchmarks/run.py` itself prints PASS/FAIL
against its targets. What is asserted: the code paths work, the JSON is complete, and each peer comparison did the
same work as Arena (same final equity, same number of fills), which is what makes its ratio meaningful.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arena_benchmarks_run", RUN_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def test_synthetic_bars_tile_the_real_sample(bench: ModuleType) -> None:
    frame, label = bench.synthetic_bars(1_000)
    assert len(frame) == 1_000
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.is_monotonic_increasing
    assert str(frame.index.tz) == "UTC"
    assert "synthetic" in label
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()


def test_batch_benchmark_runs_and_compares_like_with_like(bench: ModuleType) -> None:
    out = bench.bench_batch(n_bars=3_000, repeats=1)
    assert out["n_bars"] == 3_000
    for part in ("kernel", "end_to_end"):
        assert _positive(out[part]["arena_s"])
        assert _positive(out[part]["vectorbt_s"])
        assert _positive(out[part]["ratio"])
        assert isinstance(out[part]["pass"], bool)
    agreement = out["agreement"]
    assert agreement["arena_fills"] > 0
    assert agreement["arena_fills"] == agreement["vectorbt_orders"]
    assert agreement["rel_diff"] < 1e-9
    assert agreement["same_work"] is True


def test_step_benchmark_runs(bench: ModuleType) -> None:
    out = bench.bench_step(n_bars=2_000, repeats=1)
    assert _positive(out["arena_s"])
    assert _positive(out["backtesting_s"])
    assert _positive(out["ratio"])
    # A no-op agent never trades in either engine: both end with the initial cash.
    assert out["agreement"]["arena_final_equity"] == bench.CASH
    assert out["agreement"]["backtesting_final_equity"] == pytest.approx(bench.CASH)


def test_import_benchmark_runs_in_a_fresh_interpreter(bench: ModuleType) -> None:
    out = bench.bench_import(repeats=1)
    assert _positive(out["import_s"])
    assert out["forbidden_checked"] == ["tensorflow", "mlflow", "prefect", "streamlit"]
    # DESIGN.md: the library never imports Prefect or Streamlit (nor TensorFlow or MLflow at import time).
    assert out["forbidden_imported"] == []


def test_main_writes_results_and_prints_the_table(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results.json"
    argv = ["--quick", "--batch-bars", "2000", "--step-bars", "1000", "--repeats", "1", "--output", str(output)]
    assert bench.main(argv) == 0  # without --strict a missed target is reported, not an error
    payload = json.loads(output.read_text())
    assert payload["mode"] == "quick"
    assert set(payload["results"]) == {"batch", "step", "import"}
    assert payload["sizes"]["batch_bars"] == 2000
    assert isinstance(payload["all_passed"], bool)
    table = capsys.readouterr().out
    for needle in ("batch kernel", "run_batch end to end", "step loop", "from arena_lib import backtest"):
        assert needle in table
    assert "PASS" in table or "FAIL" in table
