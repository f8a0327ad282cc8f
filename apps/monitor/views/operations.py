"""Operations: is anything running? The last committed round, Prefect's flow runs and schedules, data freshness."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from monitor_ui import components as ui
from monitor_ui import data
from monitor_ui.context import current

from arena_lib.data.ingest import default_cache_root
from arena_lib.monitor.operations import prefect_api_url
from arena_lib.monitor.store import StoreUnavailableError

sel = current()
now = pd.Timestamp.now(tz="UTC")
st.title("Operations")
st.caption(f"Checked at {ui.utc(now, seconds=True)}")

# -- the arena's heartbeat --------------------------------------------------------------------------------------
st.subheader("Last round")
if sel.store_error is not None:
    st.error(f"**The arena store cannot be read.** {sel.store_error}", icon=":material/error:")
else:
    try:
        newest = data.last_round(sel.url, None)
        chosen = data.last_round(sel.url, sel.run_id) if sel.run_id else None
    except StoreUnavailableError as exc:
        st.error(f"**The arena store cannot be read.** {exc}", icon=":material/error:")
        newest = chosen = None
    if newest is None and sel.store_error is None:
        st.info(ui.EMPTY_STORE_HINT, icon=":material/rocket_launch:")
    elif newest is not None:
        beat = st.columns(3)
        beat[0].metric(
            "Last round committed",
            ui.duration(now - newest.committed_at) + " ago",
            ui.utc(newest.committed_at, seconds=True),
            delta_color="off",
            delta_arrow="off",
            help="Wall-clock time at which the newest round in this store was committed.",
            border=True,
        )
        beat[1].metric("Round", f"{newest.round_no}", newest.run_id, delta_color="off", delta_arrow="off", border=True)
        beat[2].metric(
            "Bar decided on",
            f"{newest.bar_close:%b %d %H:%M}",
            f"{newest.bar_close:%Y} UTC · round took {newest.wall_s:.2f} s",
            delta_color="off",
            delta_arrow="off",
            help="The bar close that round decided on, and the round's wall time.",
            border=True,
        )
        if chosen is not None and chosen.run_id != newest.run_id:
            st.caption(
                f"Selected run `{chosen.run_id}`: last round {chosen.round_no} committed "
                f"{ui.utc(chosen.committed_at)} on the bar of {ui.utc(chosen.bar_close)}."
            )

# -- Prefect ----------------------------------------------------------------------------------------------------
st.subheader("Orchestration (Prefect)")
status = data.prefect(prefect_api_url())
if not status.connected:
    st.info(status.message, icon=":material/link_off:")
else:
    st.success(status.message, icon=":material/link:")
    runs = status.flow_runs
    failed = int(runs["state"].isin(["Failed", "Crashed", "TimedOut"]).sum()) if not runs.empty else 0
    orch = st.columns(4)
    orch[0].metric("Deployments", len(status.deployments), border=True)
    orch[1].metric("Active schedules", int(status.deployments["active_schedules"].sum()), border=True)
    orch[2].metric(
        "Recent runs", len(runs), f"{failed} failed", delta_color="inverse" if failed else "off", border=True
    )
    upcoming = status.upcoming
    nxt = pd.Timestamp(upcoming["expected_start"].min()) if not upcoming.empty else None
    orch[3].metric(
        "Next scheduled run (UTC)",
        f"{nxt:%b %d %H:%M}" if nxt is not None else "none",
        help=f"{ui.utc(nxt)}" if nxt is not None else "No flow run is scheduled.",
        border=True,
    )
    run_config = {
        "name": ui.text_col("Flow run"),
        "flow": ui.text_col("Flow"),
        "deployment": ui.text_col("Deployment"),
        "state": ui.text_col("State"),
        "expected_start": ui.time_col("Scheduled"),
        "started": ui.time_col("Started"),
        "ended": ui.time_col("Ended"),
        "duration_s": ui.number_col("Run time (s)", None, "%.1f"),
        "message": ui.text_col("Message", width="large"),
    }
    runs_tab, schedules_tab, upcoming_tab = st.tabs(["Recent flow runs", "Deployments & schedules", "Upcoming"])
    with runs_tab:
        if runs.empty:
            st.info("No flow run yet.", icon=":material/info:")
        else:
            ui.table(runs, run_config, key="prefect_runs")
    with schedules_tab:
        if status.deployments.empty:
            st.info("No deployment: flows run only when started by hand.", icon=":material/info:")
        else:
            ui.table(
                status.deployments,
                {
                    "deployment": ui.text_col("Deployment"),
                    "flow": ui.text_col("Flow"),
                    "schedules": ui.text_col("Schedules", width="large"),
                    "next_run": ui.time_col("Next run"),
                    "paused": st.column_config.CheckboxColumn("Paused"),
                    "status": ui.text_col("Status"),
                    "work_pool": ui.text_col("Work pool"),
                },
                key="prefect_deployments",
            )
    with upcoming_tab:
        if upcoming.empty:
            st.info("Nothing is scheduled.", icon=":material/info:")
        else:
            ui.table(upcoming, run_config, key="prefect_upcoming")

# -- data freshness ---------------------------------------------------------------------------------------------
st.subheader("Market data freshness")
cache_root = default_cache_root()
fresh = data.freshness(str(cache_root))
if fresh.empty:
    st.info("No market data found: neither the bundled sample nor a cache.", icon=":material/info:")
else:
    shown = fresh.assign(age_text=fresh["age"].map(ui.duration))
    newest_close = fresh["last_close"].max()
    in_cache = int((fresh["source"] == "cache").sum())
    fresh_cols = st.columns(2)
    fresh_cols[0].metric(
        "Newest candle",
        ui.duration(now - newest_close) + " old",
        f"closed {ui.utc(newest_close)}",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
    fresh_cols[1].metric(
        "Series", len(fresh), f"{in_cache} in the cache", delta_color="off", delta_arrow="off", border=True
    )
    ui.table(
        shown,
        {
            "source": ui.text_col("Source", "sample: bundled with the code; cache: refreshed by the ingest flow"),
            "exchange": ui.text_col("Exchange"),
            "symbol": ui.text_col("Symbol"),
            "timeframe": ui.text_col("Timeframe"),
            "last_close": ui.time_col("Newest candle closed"),
            "age_text": ui.text_col("Age"),
            "bars": ui.int_col("Bars"),
            "first_bar": ui.time_col("First bar"),
        },
        key="freshness",
    )
    if in_cache == 0:
        st.caption(
            f"No candle cache at `{cache_root}`: the bundled sample is a fixed historical extract, so its age only "
            "grows. The Prefect `ingest` flow (`flows/ingest.py`) fills the cache."
        )
    else:
        st.caption(f"Stalest first. Cache: `{cache_root}`.")
