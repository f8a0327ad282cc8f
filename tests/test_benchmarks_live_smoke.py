"""Smoke test of `benchmarks/live.py`: both live benchmarks run at `--quick` sizes and report every figure.

No timing is asserted (timings depend on the machine and its load; the script prints PASS/FAIL against its
targets). What is asserted: the command works as documented, every figure is present and finite, each verdict is
the one its figure and target give, and the measured work is the work described: entries that reached the
loopback exchange after the documented number of requests, an account with 10 positions and 20 resting orders
whose fills were all imported without a reconciliation fault.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "live.py"
RECONCILES = ("cold_orders_known", "cold_orders_unknown", "warm")


def _finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_quick_live_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "live_results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for label in ("decision to wire", "reconcile cold, orders known", "reconcile cold, orders looked up", "warm"):
        assert label in proc.stdout
    assert "FIXTURE" in proc.stdout

    payload = json.loads(out.read_text())
    assert payload["mode"] == "quick"
    assert payload["targets"] == {"decision_to_wire_p95_ms": 50.0, "reconcile_ms": 250.0}
    assert isinstance(payload["all_passed"], bool)
    sizes, results = payload["sizes"], payload["results"]

    lat = results["decision_to_wire"]
    assert lat["entries"] == sizes["entries"]
    assert lat["fault"] is None
    assert lat["rejections"] == []
    assert len(lat["wire_ms"]) == sizes["entries"]
    assert all(_finite_positive(x) for x in lat["wire_ms"])
    for block in ("steady", "steady_act_total", "close"):
        for key in ("p50_ms", "p95_ms", "max_ms", "mean_ms"):
            assert _finite_positive(lat[block][key]), (block, key)
    assert lat["steady"]["n"] == sizes["entries"] - 2
    assert lat["close"]["n"] == sizes["entries"]
    assert lat["steady_requests_before_order"] == [0]  # nothing but the order itself once a symbol is set up
    assert [(e["symbol"], e["first_in_process"], e["requests_before"]) for e in lat["setup"]] == [
        ("BTC/USDT", True, 2),  # margin mode and leverage
        ("ETH/USDT", False, 2),
    ]
    assert all(_finite_positive(e["wire_ms"]) for e in lat["setup"])
    assert lat["pass"] == (lat["steady"]["p95_ms"] <= 50.0)

    rec = results["reconcile"]
    assert rec["positions"] == 10
    assert rec["open_orders"] == 20
    assert rec["fills"] == sizes["fills"]
    assert len(rec["symbols"]) == 10
    assert len(rec["synthetic_perps"]) == 8
    assert abs(rec["ledger_wallet"] - rec["exchange_wallet"]) < 0.01
    for name in RECONCILES:
        r = rec[name]
        repeats = sizes["warm_repeats"] if name == "warm" else sizes["cold_repeats"]
        assert len(r["all_ms"]) == repeats
        for key in ("best_ms", "median_ms", "max_ms"):
            assert _finite_positive(r[key]), (name, key)
        assert r["pass"] == (r["median_ms"] <= 250.0)
    # unknown orders are learned with one fetchOrders per symbol (10 symbols), not one look-up per fill
    assert rec["requests"]["cold_orders_unknown"] == rec["requests"]["cold_orders_known"] + len(rec["symbols"])
    for key in ("first_settle_in_process_ms", "first_bar_after_restart_ms", "fresh_client_connect_ms"):
        assert _finite_positive(rec[key]), key
    assert payload["all_passed"] == (lat["pass"] and all(rec[name]["pass"] for name in RECONCILES))
