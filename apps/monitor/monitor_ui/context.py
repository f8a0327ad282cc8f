"""The sidebar's shared selection: which store, which run, which period; every page reads the same one.

Why in the entry script's sidebar: `app.py` runs on every rerun before the page, so widgets drawn here keep their
values across page switches (their keys live in `st.session_state`), and each page gets one `Selection` instead
of re-deriving run and period. A period is relative to the run's own last bar ("the last 24 hours of the run"),
because a replay's bars are years old and a wall-clock window would be empty.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from arena_lib.arena.store import default_db_url, redact_url
from arena_lib.monitor.store import StoreUnavailableError
from monitor_ui import data

SELECTION_KEY = "monitor.selection"
RUN_KEY = "run_id"
PERIOD_KEY = "period"
REFRESH_KEY = "live_refresh"
REFRESH_EVERY_S = 10
PERIODS = ("Whole run", "Last 24 h", "Last 7 days", "Custom")
LOOKBACK = {"Last 24 h": pd.Timedelta(hours=24), "Last 7 days": pd.Timedelta(days=7)}


@dataclass(frozen=True)
class Selection:
    """What the sidebar selected, and what the pages need to know about the store and the run."""

    url: str
    store_error: str | None
    runs: pd.DataFrame
    run_id: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    period: str
    refresh_s: int | None

    @property
    def run(self) -> dict[str, Any]:
        """The selected run's row of `queries.list_runs` (empty when none is selected)."""
        if self.run_id is None or self.runs.empty:
            return {}
        match = self.runs[self.runs["run_id"] == self.run_id]
        return {} if match.empty else dict(match.iloc[0])

    def period_text(self) -> str:
        """The period in words, for captions: "whole run" or "2025-03-01 00:00 UTC to 2025-03-02 01:00 UTC"."""
        if self.start is None and self.end is None:
            return "whole run"
        lo = "run start" if self.start is None else self.start.strftime("%Y-%m-%d %H:%M UTC")
        hi = "last bar" if self.end is None else self.end.strftime("%Y-%m-%d %H:%M UTC")
        return f"{lo} to {hi}"


def _run_label(runs: pd.DataFrame, run_id: str) -> str:
    row = runs[runs["run_id"] == run_id].iloc[0]
    return f"{run_id} · {row['mode']} · {row['status']}"


def _period(run: dict[str, Any]) -> tuple[pd.Timestamp | None, pd.Timestamp | None, str]:
    """The period widgets (under the run selector) and the [start, end] they select (UTC, inclusive)."""
    choice = st.segmented_control(
        "Period (UTC)",
        list(PERIODS),
        default="Whole run",
        key=PERIOD_KEY,
        required=True,
        help="Measured back from the run's last bar, so a replay of past data has periods too.",
    )
    choice = choice or "Whole run"
    last_bar = run.get("last_bar")
    if choice in LOOKBACK:
        if last_bar is None or pd.isna(last_bar):
            return None, None, choice
        return pd.Timestamp(last_bar) - LOOKBACK[choice], None, choice
    if choice == "Custom":
        first = run.get("start")
        lo = (
            pd.Timestamp(first) if first is not None and not pd.isna(first) else pd.Timestamp(run["created_at"])
        ).date()
        hi = pd.Timestamp(last_bar).date() if last_bar is not None and not pd.isna(last_bar) else lo
        picked = st.date_input(
            "Days (UTC, inclusive)",
            value=(lo, hi),
            min_value=lo,
            max_value=max(lo, hi),
            key=f"period_days_{run['run_id']}",
        )
        days = list(picked) if isinstance(picked, tuple | list) else [picked]
        if len(days) == 2 and all(isinstance(d, dt.date) for d in days):
            start = pd.Timestamp(days[0], tz="UTC")
            end = pd.Timestamp(days[1], tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
            return start, end, choice
        st.caption("Pick a first and a last day.")
    return None, None, "Whole run" if choice != "Custom" else choice


def sidebar() -> Selection:
    """Draw the shared sidebar and remember the selection for the pages (`current()`)."""
    url = default_db_url()
    with st.sidebar:
        st.caption(f"Arena store: `{redact_url(url)}`")
        try:
            runs = data.runs(url)
            error = None
        except StoreUnavailableError as exc:
            runs, error = pd.DataFrame(), str(exc)
        run_id: str | None = None
        start = end = None
        period = "Whole run"
        if error is not None:
            st.error("The arena store cannot be read (details on each page).", icon=":material/error:")
        elif runs.empty:
            st.info("No runs in this store yet.", icon=":material/info:")
        else:
            ids = list(runs["run_id"])
            if st.session_state.get(RUN_KEY) not in ids:
                st.session_state.pop(RUN_KEY, None)  # a run that vanished (another store, a cleanup): newest
            run_id = st.selectbox(
                "Run",
                ids,
                index=0,
                key=RUN_KEY,
                format_func=lambda r: _run_label(runs, r),
                help="Newest first. Every page shows this run.",
            )
            run = dict(runs[runs["run_id"] == run_id].iloc[0])
            start, end, period = _period(run)
        live = st.toggle(
            f"Live refresh (every {REFRESH_EVERY_S} s)",
            value=True,
            key=REFRESH_KEY,
            help="The leaderboard and the equity charts re-read the store without reloading the page.",
        )
        if st.button("Reload data now", icon=":material/refresh:", width="stretch"):
            st.cache_data.clear()
        st.caption("All times are UTC.")
    selection = Selection(
        url=url,
        store_error=error,
        runs=runs,
        run_id=run_id,
        start=start,
        end=end,
        period=period,
        refresh_s=REFRESH_EVERY_S if live else None,
    )
    st.session_state[SELECTION_KEY] = selection
    return selection


def current() -> Selection:
    """The selection the sidebar made in this rerun."""
    selection = st.session_state.get(SELECTION_KEY)
    if not isinstance(selection, Selection):  # a page run on its own (never through app.py)
        selection = sidebar()
    return selection


def require_run() -> Selection:
    """The selection, after stopping the page with a clear message when the store is unreadable or empty."""
    from monitor_ui.components import no_runs, store_error

    sel = current()
    if sel.store_error is not None:
        store_error(sel.store_error)
    if sel.run_id is None:
        no_runs()
    return sel
