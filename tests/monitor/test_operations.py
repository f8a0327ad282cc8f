"""Operations reader: Prefect only when `PREFECT_API_URL` says where, bounded by a timeout; data freshness.

The Prefect side runs against a loopback server that speaks the REST endpoints the reader uses. Its answers are
TEST FIXTURES, shaped like the JSON a real Prefect 3.8 server returned for a flow run and a cron deployment
(captured from `prefect server start` on this machine, trimmed to the fields the reader and Prefect's own UI
read). Starting a real server takes 10-40 s here, too slow for a unit test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample
from arena_lib.monitor.operations import (
    API_KEY_ENV,
    API_URL_ENV,
    DEPLOYMENT_COLUMNS,
    FLOW_RUN_COLUMNS,
    FRESHNESS_COLUMNS,
    data_freshness,
    describe_schedule,
    prefect_api_url,
    prefect_status,
)

NOW = pd.Timestamp("2026-11-22 04:30", tz="UTC")
FLOW_ID = "f6803edb-0179-49a7-b696-89bf06b6097c"
DEPLOYMENT_ID = "967a1fc9-c336-4763-b956-edb753d3c394"

PAST_RUN = {
    "id": "bd749def-3836-4797-a2c3-6c2cf918a83a",
    "name": "mutant-hummingbird",
    "flow_id": FLOW_ID,
    "deployment_id": DEPLOYMENT_ID,
    "state_type": "COMPLETED",
    "state_name": "Completed",
    "expected_start_time": "2026-11-22T04:05:00Z",
    "start_time": "2026-11-22T04:05:00.729954Z",
    "end_time": "2026-11-22T04:05:12.818529Z",
    "total_run_time": 12.088575,
    "state": {"type": "COMPLETED", "name": "Completed", "timestamp": "2026-11-22T04:05:12.818529Z", "message": None},
}
FAILED_RUN = {
    **PAST_RUN,
    "id": "0c1f0e2a-0000-4000-8000-000000000001",
    "name": "brave-otter",
    "deployment_id": None,
    "state_type": "FAILED",
    "state_name": "Failed",
    "expected_start_time": "2026-11-22T03:05:00Z",
    "start_time": "2026-11-22T03:05:01Z",
    "end_time": "2026-11-22T03:05:02Z",
    "total_run_time": 1.0,
    "state": {"type": "FAILED", "name": "Failed", "message": "Flow run encountered an exception: ValueError"},
}
SCHEDULED_RUN = {
    **PAST_RUN,
    "id": "5a5b0d7e-0000-4000-8000-000000000002",
    "name": "complex-weasel",
    "state_type": "SCHEDULED",
    "state_name": "Scheduled",
    "expected_start_time": "2026-11-22T05:05:00Z",
    "start_time": None,
    "end_time": None,
    "total_run_time": 0.0,
    "state": {"type": "SCHEDULED", "name": "Scheduled", "message": "Flow run scheduled"},
}
DEPLOYMENT = {
    "id": DEPLOYMENT_ID,
    "name": "hourly",
    "flow_id": FLOW_ID,
    "paused": False,
    "schedules": [
        {"schedule": {"cron": "5 * * * *", "timezone": "UTC", "day_or": True}, "active": True},
        {"schedule": {"interval": 86400.0, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}, "active": False},
    ],
    "work_pool_name": "arena-pool",
    "status": "READY",
}
FLOW = {"id": FLOW_ID, "name": "paper-round", "tags": [], "labels": {}}


@dataclass
class PrefectStub:
    """A loopback stand-in for Prefect's REST API; records every request."""

    health_delay_s: float = 0.0
    fail_path: str | None = None
    requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == self.fail_path:
            return 500, {"detail": "Internal Server Error"}
        if method == "GET" and path == "/api/health":
            time.sleep(self.health_delay_s)
            return 200, True
        if method == "GET" and path == "/api/admin/version":
            return 200, "3.8.8"
        if method == "POST" and path == "/api/flow_runs/filter":
            types = (((body.get("flow_runs") or {}).get("state") or {}).get("type") or {}).get("any_")
            return 200, [SCHEDULED_RUN] if types == ["SCHEDULED"] else [PAST_RUN, FAILED_RUN]
        if method == "POST" and path == "/api/deployments/filter":
            return 200, [DEPLOYMENT]
        if method == "POST" and path == "/api/flows/filter":
            wanted = ((body.get("flows") or {}).get("id") or {}).get("any_") or []
            return 200, [FLOW] if FLOW_ID in wanted else []
        return 404, {"detail": "Not Found"}


@pytest.fixture
def stub() -> Iterator[PrefectStub]:
    state = PrefectStub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length)) if length else {}
            state.requests.append((method, self.path, body, dict(self.headers)))
            status, payload = state.answer(method, self.path, body)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test): nothing to answer

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_without_the_variable_nothing_is_contacted() -> None:
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=True)

    status = prefect_status(now=NOW, env={}, transport=httpx.MockTransport(record))
    assert status.connected is False
    assert status.api_url is None
    assert "Not connected" in status.message
    assert API_URL_ENV in status.message
    assert calls == []
    assert list(status.flow_runs.columns) == FLOW_RUN_COLUMNS
    assert status.flow_runs.empty
    assert prefect_api_url({API_URL_ENV: " http://h:4200/api/ "}) == "http://h:4200/api"
    assert prefect_api_url({}) is None


def test_connected_reads_runs_schedules_and_flow_names(stub: PrefectStub) -> None:
    status = prefect_status(now=NOW, env={API_URL_ENV: stub.url, API_KEY_ENV: "pnu_test_key"})
    assert status.connected, status.message
    assert status.server_version == "3.8.8"
    assert "Connected to Prefect 3.8.8" in status.message

    runs = status.flow_runs
    assert list(runs.columns) == FLOW_RUN_COLUMNS
    assert list(runs["name"]) == ["mutant-hummingbird", "brave-otter"]
    first = runs.iloc[0]
    assert (first["flow"], first["deployment"], first["state"]) == ("paper-round", "hourly", "Completed")
    assert first["started"] == pd.Timestamp("2026-11-22T04:05:00.729954Z")
    assert first["duration_s"] == pytest.approx(12.088575)
    assert runs.iloc[1]["deployment"] == ""
    assert "ValueError" in runs.iloc[1]["message"]

    assert list(status.upcoming["name"]) == ["complex-weasel"]
    deps = status.deployments
    assert list(deps.columns) == DEPLOYMENT_COLUMNS
    dep = deps.iloc[0]
    assert dep["schedules"] == "cron 5 * * * * (UTC); every 86400 s (UTC) (inactive)"
    assert dep["active_schedules"] == 1
    assert dep["flow"] == "paper-round"
    assert dep["work_pool"] == "arena-pool"
    assert dep["next_run"] == pd.Timestamp("2026-11-22T05:05:00Z")

    # What the reader asked: health first, bounded pages, the split at `now`, the key as a bearer token.
    paths = [(m, p) for m, p, _, _ in stub.requests]
    assert paths[0] == ("GET", "/api/health")
    bodies = [b for m, p, b, _ in stub.requests if p == "/api/flow_runs/filter"]
    assert bodies[0]["flow_runs"]["expected_start_time"] == {"before_": NOW.isoformat()}
    assert bodies[1]["flow_runs"]["expected_start_time"] == {"after_": NOW.isoformat()}
    assert all(b["limit"] <= 200 for _, _, b, _ in stub.requests if b)
    assert all(h.get("Authorization") == "Bearer pnu_test_key" for _, _, _, h in stub.requests)


def test_an_explicit_url_wins_and_credentials_are_masked(stub: PrefectStub) -> None:
    with_user = stub.url.replace("http://", "http://ops:hunter2@")
    status = prefect_status(with_user, now=NOW, env={})
    assert status.connected
    assert status.api_url is not None
    assert "hunter2" not in status.api_url
    assert "hunter2" not in status.message


def test_unreachable_slow_and_failing_apis_say_so_quickly(stub: PrefectStub) -> None:
    with socket_closed_port() as port:
        t0 = time.perf_counter()
        down = prefect_status(f"http://127.0.0.1:{port}/api", now=NOW, env={})
    assert not down.connected
    assert "cannot reach" in down.message
    assert time.perf_counter() - t0 < 2.0

    stub.health_delay_s = 1.0
    t0 = time.perf_counter()
    slow = prefect_status(stub.url, now=NOW, env={}, timeout_s=0.2)
    assert not slow.connected
    assert "did not answer in 0.2 s" in slow.message
    assert time.perf_counter() - t0 < 1.0

    stub.health_delay_s = 0.0
    stub.fail_path = "/api/deployments/filter"
    broken = prefect_status(stub.url, now=NOW, env={})
    assert not broken.connected
    assert "deployments/filter failed with HTTP 500" in broken.message

    stub.fail_path = "/api/health"
    unhealthy = prefect_status(stub.url, now=NOW, env={})
    assert not unhealthy.connected
    assert "answered HTTP 500" in unhealthy.message

    with pytest.raises(ValueError, match="limit"):
        prefect_status(stub.url, now=NOW, env={}, limit=500)


class socket_closed_port:
    """A loopback port that nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def test_describe_schedule() -> None:
    assert describe_schedule({"cron": "0 * * * *", "timezone": "UTC"}) == "cron 0 * * * * (UTC)"
    assert describe_schedule({"interval": 3600.0}) == "every 3600 s"
    assert describe_schedule({"rrule": "FREQ=DAILY"}) == "rrule FREQ=DAILY"
    assert describe_schedule({}) == "unknown schedule"


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, engine="pyarrow", index=True)


def test_data_freshness_of_sample_and_cache(tmp_path: Path) -> None:
    btc = load_sample("BTC/USDT", "1h", "2025-03-01", "2025-03-02")  # last bar opens 2025-03-02 00:00
    sample = tmp_path / "sample"
    _write(btc, sample / "binance_BTC-USDT_1h.parquet")
    _write(btc.iloc[:10], sample / "binance_ETH-USDT_1h.parquet")
    (sample / "binance-usdm_BTC-USDT-PERP_funding_8h.parquet").write_bytes(b"not ohlcv")  # not a candle file
    (sample / "binance_XRP-USDT_1h.parquet").write_bytes(b"corrupt")  # unreadable: left out, no crash
    cache = tmp_path / "cache"
    _write(btc.iloc[:-2], cache / "bybit" / "BTC-USDT_1h.parquet")

    now = pd.Timestamp("2025-03-02 03:00", tz="UTC")
    fresh = data_freshness(now, sample=sample, cache_root=cache)
    assert list(fresh.columns) == FRESHNESS_COLUMNS
    assert len(fresh) == 3
    assert list(fresh["source"]) == ["sample", "cache", "sample"]  # stalest first
    btc_row = fresh[(fresh["source"] == "sample") & (fresh["symbol"] == "BTC/USDT")].iloc[0]
    assert btc_row["last_bar"] == pd.Timestamp("2025-03-02 00:00", tz="UTC")
    assert btc_row["last_close"] == pd.Timestamp("2025-03-02 01:00", tz="UTC")
    assert btc_row["age"] == pd.Timedelta(hours=2)
    assert btc_row["bars"] == len(btc)
    assert btc_row["first_bar"] == btc.index[0]
    cached = fresh[fresh["source"] == "cache"].iloc[0]
    assert (cached["exchange"], cached["symbol"], cached["age"]) == ("bybit", "BTC/USDT", pd.Timedelta(hours=4))


def test_data_freshness_with_no_data_is_empty_not_an_error(tmp_path: Path) -> None:
    fresh = data_freshness(NOW, sample=tmp_path / "none", cache_root=tmp_path / "none")
    assert fresh.empty
    assert list(fresh.columns) == FRESHNESS_COLUMNS


def test_the_bundled_sample_is_listed() -> None:
    fresh = data_freshness(NOW, cache_root=Path("/nonexistent"))
    assert {"BTC/USDT", "ETH/USDT"} <= set(fresh["symbol"])
    assert {"1h", "1d"} <= set(fresh["timeframe"])
    assert (fresh["age"] > pd.Timedelta(0)).all()
