"""What the monitor's Operations page reads: Prefect's flow runs and schedules, data freshness, the last round.

Prefect is contacted only when `PREFECT_API_URL` is set in the environment. Anything else would be wrong for a
monitor: Prefect's client, with no API configured, starts a temporary server inside the calling process (10-20 s,
a database of its own), and the page would then report an empty orchestrator that is not the one running the
flows. So with no URL the status says "not connected" and how to connect; with a URL, `<api>/health` is probed
with a short timeout before anything else, and the REST API is read directly over httpx (no Prefect import, no
event loop, bounded answers).

Data freshness reads only parquet metadata (the min/max statistics of the `timestamp` column), so listing every
file of the bundled sample and of the candle cache (`Settings.data_cache_dir`: `data/cache/`
unless `ARENA_DATA_CACHE` says otherwise; `<root>/<exchange>/BTC-USDT_1h.parquet`) costs milliseconds, not a
full load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from arena_lib.core.settings import settings
from arena_lib.data.resample import timeframe_to_ns
from arena_lib.data.sample import normalize_symbol, sample_dir
from arena_lib.workflow.tracking import redact_text

API_URL_ENV = "PREFECT_API_URL"
API_KEY_ENV = "PREFECT_API_KEY"
MAX_LIMIT = 200
"""Prefect's API refuses a larger page (HTTP 422)."""
FLOW_RUN_COLUMNS = [
    "name",
    "flow",
    "deployment",
    "state",
    "expected_start",
    "started",
    "ended",
    "duration_s",
    "message",
]
DEPLOYMENT_COLUMNS = [
    "deployment",
    "flow",
    "status",
    "paused",
    "schedules",
    "active_schedules",
    "next_run",
    "work_pool",
]
FRESHNESS_COLUMNS = ["source", "exchange", "symbol", "timeframe", "first_bar", "last_bar", "last_close", "bars", "age"]

_SAMPLE_FILE = re.compile(r"^(?P<exchange>[a-z0-9-]+)_(?P<symbol>[A-Z0-9]+-[A-Z0-9]+)_(?P<tf>\d+[smhdw])\.parquet$")
_CACHE_FILE = re.compile(r"^(?P<symbol>[A-Za-z0-9-]+)_(?P<tf>\d+[smhdw])\.parquet$")


@dataclass(frozen=True)
class PrefectStatus:
    """The orchestrator as the monitor sees it: connected or not (and why), recent and upcoming runs, deployments."""

    connected: bool
    api_url: str | None
    """The API URL with credentials masked; None when `PREFECT_API_URL` is unset."""
    message: str
    server_version: str = ""
    flow_runs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FLOW_RUN_COLUMNS))
    upcoming: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FLOW_RUN_COLUMNS))
    deployments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DEPLOYMENT_COLUMNS))


def prefect_api_url(env: Mapping[str, str] | None = None) -> str | None:
    """`PREFECT_API_URL` from the environment (trailing slash removed), or None. Prefect's profiles are not read."""
    value = (os.environ if env is None else env).get(API_URL_ENV, "").strip().rstrip("/")
    return value or None


def _headers(env: Mapping[str, str] | None) -> dict[str, str]:
    key = (os.environ if env is None else env).get(API_KEY_ENV, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def prefect_status(
    api_url: str | None = None,
    *,
    now: pd.Timestamp,
    limit: int = 50,
    timeout_s: float = 1.5,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> PrefectStatus:
    """Probe the Prefect API and read its last `limit` flow runs, the next scheduled ones, and its deployments.

    `api_url` None: `PREFECT_API_URL` (None there too: not connected, nothing contacted). `now` splits past runs
    from upcoming ones. Never raises for an unreachable or failing API: the status says what went wrong.
    """
    url = (api_url or "").strip().rstrip("/") or prefect_api_url(env)
    if url is None:
        return PrefectStatus(
            connected=False,
            api_url=None,
            message=(
                f"Not connected: {API_URL_ENV} is not set, so the monitor contacts no Prefect server. Start one with "
                "`prefect server start --host 127.0.0.1` and set "
                f"`{API_URL_ENV}=http://127.0.0.1:4200/api` where the monitor runs."
            ),
        )
    shown = redact_text(url)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    timeout = httpx.Timeout(timeout_s, connect=timeout_s)
    try:
        with httpx.Client(base_url=url + "/", headers=_headers(env), timeout=timeout, transport=transport) as http:
            health = http.get("health")
            if health.status_code != 200:
                return PrefectStatus(False, shown, f"Not connected: {shown}/health answered HTTP {health.status_code}.")
            version = _version(http)
            past = _post(http, "flow_runs/filter", _runs_query(limit, now, upcoming=False))
            future = _post(http, "flow_runs/filter", _runs_query(min(limit, 20), now, upcoming=True))
            deployments = _post(http, "deployments/filter", {"limit": MAX_LIMIT, "sort": "NAME_ASC"})
            flow_ids = {str(r.get("flow_id")) for r in [*past, *future, *deployments] if r.get("flow_id")}
            flows = (
                _post(http, "flows/filter", {"limit": MAX_LIMIT, "flows": {"id": {"any_": sorted(flow_ids)}}})
                if flow_ids
                else []
            )
    except httpx.TimeoutException:
        return PrefectStatus(
            False, shown, f"Not connected: the Prefect API at {shown} did not answer in {timeout_s:g} s."
        )
    except httpx.HTTPError as exc:
        return PrefectStatus(False, shown, f"Not connected: cannot reach the Prefect API at {shown} ({_reason(exc)}).")
    except _ApiError as exc:
        return PrefectStatus(False, shown, f"The Prefect API at {shown} answered, but {exc}.")
    flow_names = {str(f.get("id")): str(f.get("name", "")) for f in flows}
    dep_names = {str(d.get("id")): str(d.get("name", "")) for d in deployments}
    upcoming = _runs_frame(future, flow_names, dep_names)
    return PrefectStatus(
        connected=True,
        api_url=shown,
        message=f"Connected to Prefect {version or '(version unknown)'} at {shown}.",
        server_version=version,
        flow_runs=_runs_frame(past, flow_names, dep_names),
        upcoming=upcoming,
        deployments=_deployments_frame(deployments, flow_names, upcoming),
    )


class _ApiError(Exception):
    """The API answered something other than the JSON list we asked for."""


def _reason(exc: Exception) -> str:
    text = redact_text(str(exc).splitlines()[0]) if str(exc) else ""
    return text or type(exc).__name__


def _version(http: httpx.Client) -> str:
    try:
        answer = http.get("admin/version")
        return str(answer.json()) if answer.status_code == 200 else ""
    except (httpx.HTTPError, ValueError):
        return ""


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = http.post(path, json=body)
    if answer.status_code != 200:
        raise _ApiError(f"POST {path} failed with HTTP {answer.status_code}")
    try:
        data = answer.json()
    except ValueError:
        raise _ApiError(f"POST {path} returned no JSON") from None
    if not isinstance(data, list):
        raise _ApiError(f"POST {path} returned {type(data).__name__}, not a list")
    return [d for d in data if isinstance(d, dict)]


def _runs_query(limit: int, now: pd.Timestamp, *, upcoming: bool) -> dict[str, Any]:
    stamp = pd.Timestamp(now).tz_convert("UTC").isoformat()
    if upcoming:  # the next scheduled runs, soonest first
        return {
            "limit": limit,
            "sort": "EXPECTED_START_TIME_ASC",
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}, "expected_start_time": {"after_": stamp}},
        }
    return {
        "limit": limit,
        "sort": "EXPECTED_START_TIME_DESC",
        "flow_runs": {"expected_start_time": {"before_": stamp}},
    }


def _utc(value: Any) -> pd.Timestamp | None:
    if not value:
        return None
    try:
        return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")
    except (TypeError, ValueError):
        return None


def _runs_frame(runs: Sequence[Mapping[str, Any]], flows: Mapping[str, str], deps: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    for r in runs:
        state = r.get("state") or {}
        started, ended = _utc(r.get("start_time")), _utc(r.get("end_time"))
        rows.append(
            {
                "name": str(r.get("name", "")),
                "flow": flows.get(str(r.get("flow_id")), ""),
                "deployment": deps.get(str(r.get("deployment_id")), "") if r.get("deployment_id") else "",
                "state": str(r.get("state_name") or state.get("name") or r.get("state_type") or ""),
                "expected_start": _utc(r.get("expected_start_time")),
                "started": started,
                "ended": ended,
                "duration_s": float(r["total_run_time"]) if ended is not None and r.get("total_run_time") else None,
                "message": str(state.get("message") or ""),
            }
        )
    frame = pd.DataFrame(rows, columns=FLOW_RUN_COLUMNS)
    for col in ("expected_start", "started", "ended"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def describe_schedule(schedule: Mapping[str, Any]) -> str:
    """One schedule of a deployment in words: "cron 5 * * * * (UTC)", "every 3600 s", "rrule ..."."""
    tz = f" ({schedule['timezone']})" if schedule.get("timezone") else ""
    if "cron" in schedule:
        return f"cron {schedule['cron']}{tz}"
    if "interval" in schedule:
        return f"every {float(schedule['interval']):g} s{tz}"
    if "rrule" in schedule:
        return f"rrule {schedule['rrule']}{tz}"
    return "unknown schedule"


def _deployments_frame(
    deployments: Sequence[Mapping[str, Any]], flows: Mapping[str, str], upcoming: pd.DataFrame
) -> pd.DataFrame:
    next_by_dep = (
        upcoming[upcoming["deployment"] != ""].groupby("deployment")["expected_start"].min()
        if len(upcoming)
        else pd.Series(dtype="datetime64[ns, UTC]")
    )
    rows = []
    for d in deployments:
        schedules = [s for s in d.get("schedules") or [] if isinstance(s, dict)]
        name = str(d.get("name", ""))
        rows.append(
            {
                "deployment": name,
                "flow": flows.get(str(d.get("flow_id")), ""),
                "status": str(d.get("status") or ""),
                "paused": bool(d.get("paused")),
                "schedules": "; ".join(
                    describe_schedule(s.get("schedule") or {}) + ("" if s.get("active", True) else " (inactive)")
                    for s in schedules
                )
                or "no schedule",
                "active_schedules": sum(1 for s in schedules if s.get("active", True)),
                "next_run": next_by_dep.get(name),
                "work_pool": str(d.get("work_pool_name") or ""),
            }
        )
    frame = pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS)
    frame["next_run"] = pd.to_datetime(frame["next_run"], utc=True)
    return frame


# ---------------------------------------------------------------------------------------------------- data freshness
def _timestamp_range(path: Path) -> tuple[pd.Timestamp, pd.Timestamp, int] | None:
    """(first, last, rows) of a parquet file's `timestamp` column from its statistics, reading data only if needed."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, ValueError):
        return None
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            col = group.column(c)
            if col.path_in_schema == "timestamp" and col.statistics is not None and col.statistics.has_min_max:
                lows.append(pd.Timestamp(col.statistics.min))
                highs.append(pd.Timestamp(col.statistics.max))
    if meta.num_rows == 0:
        return None
    if len(lows) != meta.num_row_groups:  # no statistics: read the one column
        try:
            stamps = pd.to_datetime(pd.read_parquet(path, columns=["timestamp"])["timestamp"], utc=True)
        except (OSError, ValueError, KeyError):
            return None
        return stamps.min(), stamps.max(), int(meta.num_rows)
    first, last = min(lows), max(highs)
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
    return first, last, int(meta.num_rows)


def _row(source: str, exchange: str, symbol: str, tf: str, path: Path, now: pd.Timestamp) -> dict[str, Any] | None:
    found = _timestamp_range(path)
    if found is None:
        return None
    first, last, bars = found
    try:
        close = last + pd.Timedelta(timeframe_to_ns(tf), unit="ns")
    except ValueError:
        return None
    return {
        "source": source,
        "exchange": exchange,
        "symbol": normalize_symbol(symbol),
        "timeframe": tf,
        "first_bar": first,
        "last_bar": last,
        "last_close": close,
        "bars": bars,
        "age": now - close,
    }


def data_freshness(now: pd.Timestamp, *, sample: Path | None = None, cache_root: Path | None = None) -> pd.DataFrame:
    """The newest candle of every series in the bundled sample and the candle cache, and its age at `now`.

    Columns `FRESHNESS_COLUMNS`: `last_bar` is the newest bar's open time, `last_close` its close, `age` the
    Timedelta from that close to `now`. Stalest first. Missing folders contribute no rows.
    """
    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    rows: list[dict[str, Any]] = []
    folder = sample or sample_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.parquet")):
            m = _SAMPLE_FILE.match(path.name)
            if m is not None:
                rows.append(_row("sample", m["exchange"], m["symbol"], m["tf"], path, now) or {})
    root = settings().data_cache_dir if cache_root is None else cache_root
    if root.is_dir():
        for path in sorted(root.glob("*/*.parquet")):
            m = _CACHE_FILE.match(path.name)
            if m is not None:
                rows.append(_row("cache", path.parent.name, m["symbol"], m["tf"], path, now) or {})
    frame = pd.DataFrame([r for r in rows if r], columns=FRESHNESS_COLUMNS)
    for col in ("first_bar", "last_bar", "last_close"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["age"] = pd.to_timedelta(frame["age"])
    return frame.sort_values("age", ascending=False, kind="stable").reset_index(drop=True)
