"""Agent detail: one agent's equity and drawdown, its positions with their exit plans, its trades, its decision log.

The decision log answers "why did it do that?" for any round: the prompt the agent saw, its raw answer exactly as
received, the decisions parsed from it, the RiskEngine's verdict on each, and the agent's stated reasoning. Model
text is shown as plain text (never rendered as markdown): it is untrusted input.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st
from monitor_ui import charts, data
from monitor_ui import components as ui
from monitor_ui.context import require_run
from monitor_ui.theme import CHART_CONFIG, NEUTRAL, agent_colors

from arena_lib.monitor.queries import RoundDetail

st.title("Agent detail")
sel = require_run()
assert sel.run_id is not None
roster = data.agents(sel.url, sel.run_id)
if roster.empty:
    st.info("This run has no agents.", icon=":material/info:")
    st.stop()

version = data.run_version(sel.url, sel.run_id)
board = data.leaderboard(sel.url, sel.run_id, sel.start, sel.end, version)
names = list(board["agent"]) if not board.empty else sorted(roster["agent"])
if st.session_state.get("agent") not in names:
    st.session_state.pop("agent", None)
agent = st.selectbox(
    "Agent",
    names,
    key="agent",
    format_func=lambda a: f"#{names.index(a) + 1}  {a}",
    help="In leaderboard order for the selected period.",
)
info = dict(roster[roster["agent"] == agent].iloc[0])
is_llm = info.get("kind") == "llm"
identity = [
    "LLM agent" if is_llm else f"{info.get('kind')} agent",
    f"{info.get('provider')}/{info.get('model')}" if info.get("provider") else str(info.get("model") or ""),
]
if info.get("prompt_version"):
    identity.append(f"prompt {info['prompt_version']}")
if info.get("training_cutoff"):
    identity.append(f"training cutoff {info['training_cutoff']}")
identity.append(f"initial cash {ui.money(info.get('initial_cash'))}")
st.caption(" · ".join(x for x in identity if x) + f" · period: {sel.period_text()}")
if info.get("cutoff_overlap"):
    st.warning(
        "This model's training cutoff falls after the start of the test window: it may have seen these prices. "
        "Treat its results with suspicion.",
        icon=":material/warning:",
    )
color = agent_colors(roster["agent"]).get(agent, NEUTRAL)


@st.fragment(run_every=sel.refresh_s)
def overview() -> None:
    """Headline numbers and the equity/drawdown chart, refreshed in place."""
    assert sel.run_id is not None
    now_version = data.run_version(sel.url, sel.run_id)  # re-read on every refresh
    fresh = data.leaderboard(sel.url, sel.run_id, sel.start, sel.end, now_version)
    row = fresh[fresh["agent"] == agent]
    if not row.empty:
        r = row.iloc[0]
        cols = st.columns(6)
        cols[0].metric(
            f"Account value ({ui.QUOTE})", f"{r['account_value']:,.2f}", ui.pct(r["return_pct"]), border=True
        )
        cols[1].metric(f"PnL ({ui.QUOTE})", f"{r['pnl']:+,.2f}", help="After fees, over the period.", border=True)
        cols[2].metric("Max drawdown", ui.pct(r["max_drawdown"] * 100.0, signed=False), border=True)
        cols[3].metric("Sharpe", "n/a" if pd.isna(r["sharpe"]) else f"{r['sharpe']:.2f}", border=True)
        win = None if pd.isna(r["win_rate"]) else f"{r['win_rate']:.0%} won"
        cols[4].metric("Trades", f"{int(r['trades'])}", win, delta_color="off", delta_arrow="off", border=True)
        if is_llm:
            cols[5].metric(
                "LLM cost", f"${r['llm_cost_usd']:,.4f}", help="The model bill over the period.", border=True
            )
        else:
            cols[5].metric("Rank", f"#{int(r['rank'])} of {len(fresh)}", border=True)
    curves = data.equity(sel.url, sel.run_id, sel.start, sel.end, now_version)
    curve = curves[curves["agent"] == agent]
    if curve.empty:
        st.info("No round was committed in this period yet.", icon=":material/hourglass_empty:")
        return
    fills = data.trades(sel.url, sel.run_id, now_version, agent)
    st.plotly_chart(charts.agent_equity(curve, color, agent, fills), theme=None, config=CHART_CONFIG, key="agent_eq")


overview()

positions_tab, trades_tab, log_tab = st.tabs(["Positions & exit plans", "Trades", "Decision log"])

with positions_tab:
    pos = data.positions(sel.url, sel.run_id, version, agent)
    if pos.empty:
        st.info(f"{agent} holds no open position after its last committed round.", icon=":material/info:")
    else:
        ui.table(
            pos,
            {
                "symbol": ui.text_col("Symbol"),
                "side": ui.text_col("Side"),
                "quantity": ui.number_col("Quantity", None, "%.6g"),
                "entry_price": ui.price_col("Entry"),
                "mark": ui.price_col("Mark", "The close of the last committed round's snapshot."),
                "notional": ui.money_col("Notional"),
                "unrealized_pnl": ui.money_col("Unrealized PnL"),
                "leverage": ui.number_col("Leverage", None, "%.1fx"),
                "margin": ui.money_col("Margin"),
                "take_profit": ui.price_col("Take profit", "Exit plan: the profit target."),
                "stop_loss": ui.price_col("Stop loss", "Exit plan: the stop."),
                "invalidation": ui.text_col("Invalidation", "Exit plan: the condition that closes the position."),
                "liquidation_price": ui.price_col("Liquidation"),
                "opened_at": ui.time_col("Opened"),
            },
            key="agent_positions",
        )
        st.caption("Exit plans as the agent set them; None: the agent set no target, stop or condition.")

with trades_tab:
    fills = data.trades(sel.url, sel.run_id, version, agent, 500)
    if fills.empty:
        st.info(f"{agent} has no fills in this run.", icon=":material/info:")
    else:
        ui.table(
            fills,
            {
                "ts": ui.time_col("Time"),
                "symbol": ui.text_col("Symbol"),
                "side": ui.text_col("Side"),
                "kind": ui.text_col("Kind", "entry, exit, stop_loss, take_profit, liquidation, ..."),
                "quantity": ui.number_col("Quantity", None, "%.6g"),
                "price": ui.price_col("Price"),
                "fee": ui.money_col("Fee"),
                "realized_pnl": ui.money_col("Realized PnL"),
                "leverage": ui.number_col("Leverage", None, "%.1fx"),
                "reference_price": ui.price_col("Reference"),
                "slippage_bps": ui.number_col(
                    "Slippage bps", "Fill price vs the order's reference (the decision bar's close); + adverse", "%.1f"
                ),
                "note": ui.text_col("Note"),
            },
            key="agent_trades",
        )
        st.caption(f"Newest first; the newest {len(fills)} fills of this agent are shown (at most 500).")
    if sel.run.get("mode") in ("paper", "live"):
        gap = data.twin_gap(sel.url, sel.run_id, version)
        mine = gap[gap["agent"] == agent]
        if not mine.empty:
            st.markdown("**Gap to the simulated twin** (the same decisions replayed through the simulator)")
            ui.table(
                mine.drop(columns=["agent"]),
                {
                    "real_equity": ui.money_col("Real equity"),
                    "twin_equity": ui.money_col("Twin equity"),
                    "gap": ui.money_col("Gap"),
                    "fees": ui.money_col("Fees"),
                    "slippage": ui.money_col("Slippage"),
                    "funding": ui.money_col("Funding"),
                    "latency": ui.money_col("Latency"),
                    "one_sided": ui.money_col("One-sided fills"),
                    "residual": ui.money_col("Residual"),
                    "one_sided_fills": ui.number_col("One-sided #", None, "%d"),
                    "source": ui.text_col("Decisions"),
                },
                key="agent_twin",
            )
            st.caption("gap = real - twin = fees + slippage + funding + latency + one-sided fills + residual")


def _review(row: pd.Series) -> str:
    if pd.isna(row["approved"]):
        return "nothing to review (hold)"
    if not bool(row["approved"]):
        return "rejected"
    return "approved, clamped" if bool(row["clamped"]) else "approved"


def _show_round(detail: RoundDetail) -> None:
    """One round in full: outcome numbers, parsed decisions with verdicts, reasoning, prompt and raw answer."""
    cols = st.columns(4)
    if detail.parse_ok is None:
        cols[0].metric("Output", "rule-based", help="Not a language model: no prompt, no raw answer.", border=True)
    else:
        cols[0].metric("Output", "parsed" if detail.parse_ok else "invalid", border=True)
    cols[1].metric("Latency", f"{detail.latency_s:.3f} s", border=True)
    cols[2].metric("Cost", f"${detail.cost_usd:,.4f}", border=True)
    cols[3].metric(
        "Bar close (UTC)",
        "n/a" if pd.isna(detail.ts) else f"{detail.ts:%b %d %H:%M}",
        help=f"The decision was made on the bar that closed at {ui.utc(detail.ts)}.",
        border=True,
    )
    if detail.error:
        st.error(f"Model call failed: {detail.error}", icon=":material/error:")
    for problem in detail.problems:
        st.warning(problem, icon=":material/report:")

    decisions = detail.decisions.copy()
    st.markdown("**Parsed decisions and risk verdicts**")
    if decisions.empty:
        st.caption("No decision was recorded in this round.")
    else:
        decisions["review"] = decisions.apply(_review, axis=1)
        ui.table(
            decisions,
            {
                "symbol": ui.text_col("Symbol"),
                "action": ui.text_col("Action"),
                "source": ui.text_col("Source", "agent, fallback (unusable answer), invalidation (exit plan fired)"),
                "size": ui.number_col("Size", None, "%.6g"),
                "size_unit": ui.text_col("Unit"),
                "leverage": ui.number_col("Leverage", None, "%.1fx"),
                "take_profit": ui.price_col("Take profit"),
                "stop_loss": ui.price_col("Stop loss"),
                "invalidation": ui.text_col("Invalidation"),
                "confidence": ui.number_col("Confidence", None, "%.2f"),
                "review": ui.text_col("Risk review"),
                "verdict": ui.text_col("Verdict", "The RiskEngine's reason when it clamped or rejected."),
            },
            key="round_decisions",
        )
        st.markdown("**Reasoning**")
        for row in decisions.itertuples():
            st.markdown(f"`{row.symbol}` · **{row.action}**")
            st.text(str(row.reason) if row.reason else "(no reasoning given)")

    if detail.parse_ok is None:
        return
    with st.expander(f"Prompt (version {detail.prompt_version or 'unknown'})", expanded=False):
        st.caption("System prompt")
        st.code(detail.system_prompt or "(none recorded)", language=None, wrap_lines=True, height=240)
        st.caption("User prompt")
        st.code(detail.user_prompt or "(none recorded)", language=None, wrap_lines=True, height=420)
    with st.expander("Raw response, exactly as received", expanded=True):
        raw = detail.raw_response
        try:
            json.loads(raw)
            language = "json"
        except (TypeError, ValueError):
            language = None
        st.code(raw or "(empty response)", language=language, wrap_lines=True, height=320)


with log_tab:
    rounds = data.decision_rounds(sel.url, sel.run_id, agent, version, 500)
    if rounds.empty:
        st.info(f"{agent} has not decided in this run yet.", icon=":material/info:")
    else:
        ui.table(
            rounds,
            {
                "round_no": ui.int_col("Round"),
                "ts": ui.time_col("Bar close"),
                "actions": ui.text_col("Decisions", width="large"),
                "rejected": ui.int_col("Rejected", "Decisions the RiskEngine refused."),
                "clamped": ui.int_col("Clamped", "Decisions the RiskEngine reduced."),
                "parse_ok": st.column_config.CheckboxColumn("Parsed", help="Blank for agents that are not LLMs."),
            },
            height=260,
            key="decision_rounds",
        )
        labels = {
            int(no): f"Round {int(no)} · {ui.utc(ts)} · {actions}"
            for no, ts, actions in zip(rounds["round_no"], rounds["ts"], rounds["actions"], strict=True)
        }
        picked = st.selectbox(
            "Inspect round",
            list(labels),
            key=f"round_{agent}",
            format_func=lambda r: labels[r],
            help="Newest first. Shows the prompt, the raw answer, the parsed decisions and the risk verdicts.",
        )
        detail = data.round_detail(sel.url, sel.run_id, agent, int(picked))
        if detail is None:
            st.info("Nothing was recorded for this agent in that round.", icon=":material/info:")
        else:
            _show_round(detail)
