"""`report`: run the `50_arena_report` notebook for a period of a trading job's run (daily by default)."""

from __future__ import annotations

import pandas as pd
from prefect import flow

from arena_lib.core.clock import WallClock
from arena_lib.data.resample import to_utc_timestamp
from flows.research import research

REPORT_NOTEBOOK = "notebooks/50_arena_report.ipynb"


def report_window(days: float, end: str | None = None) -> tuple[str, str]:
    """(start, end) ISO times of the `days` before `end` (default: now, UTC)."""
    if days <= 0:
        raise ValueError(f"a report covers a positive number of days, got {days}")
    stop = to_utc_timestamp(end, "end") if end else pd.Timestamp(WallClock().now_ns(), tz="UTC")
    return (stop - pd.Timedelta(days=days)).isoformat(), stop.isoformat()


@flow(name="report")
def report(run_id: str = "", days: float = 1.0, end: str | None = None) -> dict[str, str]:
    """Leaderboard, equity race and decision statistics of `run_id` (empty: the latest run) over the last `days`.

    The notebook logs its figures and tables to MLflow (experiment `arena_report`) and writes the HTML report
    under `runs/reports/`.
    """
    start, stop = report_window(days, end)
    params = {"run_id": run_id, "period_start": start, "period_end": stop}
    return research(REPORT_NOTEBOOK, params)
