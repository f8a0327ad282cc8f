"""Leaderboard: the equity race and headline numbers first, then every agent's metric and reliability columns."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from monitor_ui import charts, data
from monitor_ui import components as ui
from monitor_ui.context import require_run
from monitor_ui.theme import CHART_CONFIG, agent_colors

from arena_lib.monitor.queries import NOT_COMPUTED_IN_SQL

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

PERFORMANCE = {
    "rank": ui.int_col("#"),
    "agent": ui.text_col("Agent"),
    "kind_label": ui.text_col("Kind"),
    "model": ui.text_col("Model"),
    "account_value": ui.money_col("Account value"),
    "return_pct": ui.pct_points_col("Return", "PnL over the capital at the start of the period."),
    "pnl": ui.money_col("PnL"),
    "fees": ui.money_col("Fees"),
    "sharpe": ui.number_col("Sharpe", "Annualised from per-bar returns."),
    "max_drawdown": ui.fraction_col("Max drawdown", "Deepest fall below the running peak of the account value."),
    "win_rate": ui.fraction_col("Win rate", "Share of closed round trips with a positive PnL."),
    "trades": ui.int_col("Trades", "Closed round trips."),
    "biggest_win": ui.money_col("Biggest win"),
    "biggest_loss": ui.money_col("Biggest loss"),
}
BEHAVIOUR = {
    "rank": ui.int_col("#"),
    "agent": ui.text_col("Agent"),
    "kind_label": ui.text_col("Kind"),
    "hold_pct": ui.pct_points_col("Hold", "Share of per-coin decisions that held.", 1),
    "long_pct": ui.pct_points_col("Long entries", "Share of per-coin decisions that entered long.", 1),
    "short_pct": ui.pct_points_col("Short entries", "Share of per-coin decisions that entered short.", 1),
    "avg_leverage": ui.number_col("Avg leverage", "Mean leverage of entry fills.", "%.2fx"),
    "avg_confidence": ui.number_col("Avg confidence", "Mean confidence the agent stated (LLM agents).", "%.2f"),
    "avg_hold_hours": ui.number_col("Avg holding time (h)", None, "%.1f"),
    "flip_flops": ui.int_col("Flip-flops", "Entries opposite to the previous trade, made soon after its exit."),
}
RELIABILITY = {
    "rank": ui.int_col("#"),
    "agent": ui.text_col("Agent"),
    "kind_label": ui.text_col("Kind"),
    "invalid_output_rate": ui.fraction_col(
        "Invalid outputs", "Share of model calls whose answer failed (error, deadline, or no valid decision)."
    ),
    "risk_clamps": ui.int_col("Risk clamps", "Decisions the RiskEngine reduced."),
    "risk_rejections": ui.int_col("Risk rejections", "Decisions the RiskEngine refused."),
    "llm_cost_usd": st.column_config.NumberColumn("LLM cost (USD)", format="$%,.4f"),
    "net_return_pct": ui.pct_points_col("Net return", "Return after subtracting the LLM bill."),
    "latency_p50": ui.number_col("Latency p50 (s)", "Seconds per turn.", "%.3f"),
    "latency_p95": ui.number_col("Latency p95 (s)", None, "%.3f"),
    "latency_p99": ui.number_col("Latency p99 (s)", None, "%.3f"),
    "cutoff_overlap": st.column_config.CheckboxColumn(
        "Cutoff overlap", help="The model's training cutoff falls after the window start: it may know these prices."
    ),
}


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
