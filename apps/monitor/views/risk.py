"""Risk: the kill switch and circuit breakers, exposure by agent and symbol, VaR/CVaR, and return correlations.

The kill switch is shown to everyone; it can be operated here only when `ARENA_MONITOR_TOKEN` is set where the
monitor runs and the operator types that token (see `arena_lib.monitor.controls`). Otherwise this page has no
control at all: the app stays strictly read-only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from monitor_ui import charts, data
from monitor_ui import components as ui
from monitor_ui.context import current
from monitor_ui.theme import CHART_CONFIG, symbol_colors

from arena_lib.monitor import controls

STATE_LABELS = {"active": "active", "reducing": "REDUCING (closes only)", "halted": "HALTED (no new orders)"}


def _operate(action: str) -> None:
    """The form's callback: run the token-checked control, then forget the token (it never outlives the click)."""
    token = str(st.session_state.get("ks_token", ""))
    reason = str(st.session_state.get("ks_reason", ""))
    st.session_state["ks_token"] = ""
    try:
        url = current().url
        done = data.halt(url, token, reason) if action == "halt" else data.resume(url, token)
    except (controls.ControlsDisabledError, controls.InvalidTokenError, ValueError) as exc:
        st.session_state["ks_result"] = ("error", str(exc))
    else:
        st.session_state["ks_reason"] = ""
        st.session_state["ks_result"] = ("success", done.describe())


sel = current()
st.title("Risk")
if sel.store_error is not None:
    ui.store_error(sel.store_error)

# -- kill switch ------------------------------------------------------------------------------------------------
st.subheader("Kill switch")
switch = data.halt_state(sel.url)
if switch is not None and switch.halted:
    st.error(f"**Trading is halted.** {switch.describe()}", icon=":material/block:")
elif switch is not None:
    st.success(f"**Trading is enabled.** {switch.describe()}", icon=":material/check_circle:")
else:
    st.success(
        "**Trading is enabled.** The kill switch has never been used on this store.", icon=":material/check_circle:"
    )


if controls.controls_enabled():
    outcome = st.session_state.pop("ks_result", None)
    if outcome is not None:
        kind, message = outcome
        (st.error if kind == "error" else st.success)(message, icon=":material/error:" if kind == "error" else None)
    expander = st.expander("Operate the kill switch", icon=":material/emergency_home:", expanded=outcome is not None)
    with expander, st.form("kill_switch"):
        st.text_input("Operator token", type="password", key="ks_token", help="The value of ARENA_MONITOR_TOKEN.")
        st.text_input("Reason", key="ks_reason", help="Required to halt; shown to every job and on this page.")
        left, right = st.columns(2)
        left.form_submit_button(
            "Halt all trading", type="primary", icon=":material/block:", on_click=_operate, args=("halt",)
        )
        right.form_submit_button("Resume trading", icon=":material/play_arrow:", on_click=_operate, args=("resume",))
else:
    st.caption(
        "This monitor is read-only. Operators use `arena halt --reason ...` and `arena resume`, or set "
        f"`{controls.TOKEN_ENV}` where the monitor runs to operate the switch here."
    )

if sel.run_id is None:
    ui.no_runs()
run_id = sel.run_id
assert run_id is not None
version = data.run_version(sel.url, run_id)
st.caption(f"Run `{run_id}` · figures at its last committed round ({ui.utc(sel.run.get('last_bar'))})")

# -- circuit breakers -------------------------------------------------------------------------------------------
st.subheader("Circuit breakers")
frame = data.breakers(sel.url, run_id)
if frame is None:
    st.info("Circuit breakers are not part of this installation; only the kill switch applies.", icon=":material/info:")
else:
    shown = frame.assign(
        scope=frame["agent"].replace({"*": "portfolio (all agents)"}),
        state_label=frame["state"].map(lambda s: STATE_LABELS.get(s, s)),
    )
    tripped = shown[shown["state"] != "active"]
    cols = st.columns(3)
    cols[0].metric("Accounts halted", int((frame["state"] == "halted").sum()), border=True)
    cols[1].metric("Accounts reducing", int((frame["state"] == "reducing").sum()), border=True)
    cols[2].metric("Breakers tripped", len(tripped), border=True)
    ui.table(
        shown,
        {
            "scope": ui.text_col("Account"),
            "state_label": ui.text_col("State"),
            "breaker": ui.text_col("Breaker", "agent_drawdown, portfolio_drawdown or daily_loss"),
            "reason": ui.text_col("Reason", width="large"),
            "since": ui.time_col("Since"),
            "round_no": ui.int_col("Round"),
        },
        key="breakers",
    )

# -- exposure ---------------------------------------------------------------------------------------------------
st.subheader("Exposure")
expo = data.exposure(sel.url, run_id, version)
if expo.empty:
    st.info("No open positions after the last committed round: no exposure.", icon=":material/info:")
else:
    per_agent = expo.groupby("agent").agg(
        gross=("notional", "sum"), net=("signed_notional", "sum"), share=("share_of_equity", "sum")
    )
    cols = st.columns(3)
    cols[0].metric(f"Gross exposure, all agents ({ui.QUOTE})", f"{per_agent['gross'].sum():,.2f}", border=True)
    top = expo.iloc[int(expo["notional"].to_numpy().argmax())]
    cols[1].metric(
        f"Largest position ({ui.QUOTE})",
        f"{top['notional']:,.2f}",
        f"{top['agent']} {top['symbol']}",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
    shares = per_agent["share"]
    cols[2].metric(
        "Most leveraged book",
        f"{float(shares.max()):.2f}x equity",
        str(shares.idxmax()),
        delta_color="off",
        delta_arrow="off",
        help="Gross notional over the agent's equity.",
        border=True,
    )
    left, right = st.columns([3, 2])
    with left:
        fig = charts.exposure_bars(expo, symbol_colors(expo["symbol"]))
        st.plotly_chart(fig, theme=None, config=CHART_CONFIG, key="exposure_chart")
    with right:
        ui.table(
            expo,
            {
                "agent": ui.text_col("Agent"),
                "symbol": ui.text_col("Symbol"),
                "side": ui.text_col("Side"),
                "notional": ui.money_col("Notional"),
                "share_of_equity": ui.fraction_col("Share of equity"),
            },
            key="exposure_table",
        )

# -- VaR / CVaR -------------------------------------------------------------------------------------------------
st.subheader("Value at risk")
timeframe = sel.run.get("timeframe") or "bar"
table = data.var_table(sel.url, run_id, version)
table = table.assign(agent=table["agent"].replace({"portfolio": "portfolio (all agents)"}))
if table.empty or table["var"].isna().all():
    n = int(table["observations"].max()) if not table.empty else 0
    st.info(
        f"Not enough history for VaR yet: {n} bar returns, at least 20 are needed.", icon=":material/hourglass_empty:"
    )
else:
    level = st.segmented_control("Confidence", ["95%", "99%"], default="95%", key="var_level", required=True)
    chosen = 0.99 if level == "99%" else 0.95
    st.plotly_chart(charts.var_bars(table, chosen), theme=None, config=CHART_CONFIG, key="var_chart")
    wide = table.pivot_table(index="agent", columns=["level", "method"], values=["var", "cvar"], sort=False)
    flat = pd.DataFrame(index=wide.index)
    config: dict[str, object] = {"agent": ui.text_col("Agent")}
    for lvl in (0.95, 0.99):
        for method in ("historical", "parametric"):
            for measure, name in (("var", "VaR"), ("cvar", "CVaR")):
                key = f"{measure}_{int(lvl * 100)}_{method}"
                flat[key] = wide[(measure, lvl, method)] if (measure, lvl, method) in wide.columns else np.nan
                config[key] = ui.fraction_col(f"{name} {lvl:.0%} {method[:4]}.")
    flat["observations"] = table.groupby("agent")["observations"].max()
    config["observations"] = ui.int_col("Returns used")
    ui.table(flat.reset_index(), config, key="var_table")
    n = int(table["observations"].max())
    st.caption(
        f"Loss over one {timeframe} bar as a share of equity (positive = loss), from the last {n} bar returns. "
        "Historical: empirical quantile and tail mean. Parametric: normal fit. "
        + ("With fewer than 100 returns, the 99% historical figure rests on one or two bars." if n < 100 else "")
    )

# -- correlation ------------------------------------------------------------------------------------------------
st.subheader("Correlation of agent returns")
corr = data.correlations(sel.url, run_id, version)
if corr.shape[0] < 2 or corr.isna().all().all():
    st.info("Correlations need at least two agents with 20 or more bar returns.", icon=":material/hourglass_empty:")
else:
    st.plotly_chart(charts.correlation_heatmap(corr), theme=None, config=CHART_CONFIG, key="corr_chart")
    flat_agents = [c for c in corr.columns if corr[c].isna().all()]
    note = f" Blank: {', '.join(flat_agents)} never moved (no correlation is defined)." if flat_agents else ""
    st.caption(f"Pearson correlation of per-bar returns over the same bars.{note}")
