"""Leaderboard: the equity race and headline numbers first, then every agent's metric and reliability columns."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from monitor_ui import charts, data
from monitor_ui import components as ui
from monitor_ui.context import require_run
from monitor_ui.theme import CHART_CONFIG, agent_colors

from arena_lib.analytics.columns import ARENA_BOARD
from arena_lib.monitor.leaderboard_sql import NOT_COMPUTED_IN_SQL

KIND_LABELS = {"llm": "LLM", "quant": "quant", "ml": "ML"}

st.title("Leaderboard")
sel = require_run()
run = sel.run
st.caption(
    f"Run `{sel.run_id}` · {run.get('mode', '')} · {run.get('status', '')} · {run.get('symbols', '')} "
    f"{run.get('timeframe', '')} · period: {sel.period_text()} · data through {ui.utc(run.get('last_bar'))}"
)
if run.get("status") == "failed" and run.get("message"):
    st.error(f"This run failed: {run['message']}", icon=":material/error:")
elif run.get("message"):
    st.info(str(run["message"]), icon=":material/info:")


def _tab(group: str) -> dict[str, Any]:
    """The identity columns, then one group's columns of the arena board, with the spec's headers and formats.

    `kind` is shown through `kind_label` (LLM, quant, ML); columns the SQL board leaves out are not shown.
    """
    columns = [*ARENA_BOARD.group("identity"), *ARENA_BOARD.group(group)]
    return {
        ("kind_label" if c.name == "kind" else c.name): ui.spec_col(c)
        for c in columns
        if c.name not in NOT_COMPUTED_IN_SQL
    }


PERFORMANCE, BEHAVIOUR, RELIABILITY = (_tab(group) for group in ("performance", "behaviour", "reliability"))


def _leader_metric(label: str, board: pd.DataFrame, help: str) -> None:
    """The best agent of `board`: its return as the value, its name under it."""
    if board.empty:
        st.metric(
            label, "none", "no such agent in this run", delta_color="off", delta_arrow="off", help=help, border=True
        )
        return
    top = board.iloc[0]
    st.metric(
        label,
        ui.pct(top["return_pct"]),
        str(top["agent"]),
        delta_color="off",
        delta_arrow="off",
        help=help,
        border=True,
    )


@st.fragment(run_every=sel.refresh_s)
def live_board() -> None:
    """Headline numbers, the equity race and the tables; re-read every few seconds without a page reload."""
    assert sel.run_id is not None
    version = data.run_version(sel.url, sel.run_id)  # re-read on every refresh: a new round is a new cache key
    board = data.leaderboard(sel.url, sel.run_id, sel.start, sel.end, version)
    if board.empty:
        st.info("This run has no agents.", icon=":material/info:")
        return
    board = board.assign(kind_label=board["kind"].map(lambda k: KIND_LABELS.get(k, k)))
    colors = agent_colors(board["agent"])
    kinds = dict(zip(board["agent"], board["kind"], strict=True))

    cols = st.columns(5)
    with cols[0]:
        _leader_metric("Leader", board, "Highest account value; its return over the period.")
    with cols[1]:
        _leader_metric("Best LLM agent", board[board["kind"] == "llm"], "The LLM agent with the highest account value.")
    with cols[2]:
        _leader_metric("Best quant agent", board[board["kind"] != "llm"], "The rule/ML agent with the highest value.")
    with cols[3]:
        n_llm = int((board["kind"] == "llm").sum())
        mix = f"{n_llm} LLM · {len(board) - n_llm} quant/ML"
        st.metric("Agents", f"{len(board)}", mix, delta_color="off", delta_arrow="off", border=True)
    with cols[4]:
        fills = data.fill_count(sel.url, sel.run_id, version)
        rounds = version + 1
        st.metric(
            "Fills",
            f"{fills:,}",
            f"in {rounds:,} rounds",
            delta_color="off",
            delta_arrow="off",
            help="Every fill of the run (entries, exits, stops, take-profits, liquidations).",
            border=True,
        )

    left, right = st.columns([3, 2])
    with left:
        family = st.segmented_control("Agents", ["All", "LLM", "Quant/ML"], default="All", key="board_family")
    with right:
        measure = st.segmented_control(
            "Chart", ["Return %", "Account value"], default="Return %", key="race_measure", required=True
        )
    shown = board
    if family == "LLM":
        shown = board[board["kind"] == "llm"]
    elif family == "Quant/ML":
        shown = board[board["kind"] != "llm"]

    curves = data.equity(sel.url, sel.run_id, sel.start, sel.end, version)
    curves = curves[curves["agent"].isin(shown["agent"])]
    st.subheader("Equity race")
    if curves.empty:
        st.info("No round was committed in this period yet.", icon=":material/hourglass_empty:")
    else:
        fig = charts.equity_race(
            curves, colors, kinds, measure="return_pct" if measure != "Account value" else "equity"
        )
        st.plotly_chart(fig, theme=None, config=CHART_CONFIG, key="equity_race")
        st.caption("Solid lines: LLM agents. Dashed: quant/ML agents. Drag to zoom, double-click to reset.")

    st.subheader("Standings")
    perf, behaviour, reliability = st.tabs(["Performance", "Trading behaviour", "Reliability & cost"])
    with perf:
        ui.table(shown, PERFORMANCE, key="board_performance")
    with behaviour:
        ui.table(shown, BEHAVIOUR, key="board_behaviour")
    with reliability:
        ui.table(shown, RELIABILITY, key="board_reliability")
    missing = ", ".join(c.replace("_", " ") for c in NOT_COMPUTED_IN_SQL)
    st.caption(
        f"Ranked by account value. None: not applicable (no closed trade, no model call). Not shown: {missing} "
        "(needs every trade's duration in memory; the run's report has it)."
    )


live_board()
