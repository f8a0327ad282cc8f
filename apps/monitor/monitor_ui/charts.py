"""The monitor's plotly figures, built from the query frames: equity race, agent equity and drawdown, risk charts.

Each function takes the frame a query returned and the agents' colours (`theme.agent_colors`), and returns a
styled figure; the pages only place them. Units are on every axis and in every hover: returns in %, money in the
quote currency, times in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitor_ui import theme
from monitor_ui.components import QUOTE


def equity_race(
    curves: pd.DataFrame, colors: Mapping[str, str], kinds: Mapping[str, str], *, measure: str = "return_pct"
) -> go.Figure:
    """Every agent's return (or account value) over time on one chart; LLM agents solid, quant agents dashed."""
    fig = go.Figure()
    as_pct = measure == "return_pct"
    last = curves.sort_values("ts").groupby("agent").tail(1).set_index("agent")[measure]
    for agent in last.sort_values(ascending=False).index:  # legend in finishing order
        sel = curves[curves["agent"] == agent]
        kind = kinds.get(agent, "")
        fig.add_trace(
            go.Scatter(
                x=sel["ts"],
                y=sel[measure],
                name=f"{agent} ({'LLM' if kind == 'llm' else kind or 'agent'})",
                mode="lines",
                line={"color": colors.get(agent, theme.NEUTRAL), "dash": theme.dash_for(kind), "width": 2.2},
                hovertemplate=(
                    f"%{{y:+.2f}}%<extra>{agent}</extra>" if as_pct else f"%{{y:,.2f}} {QUOTE}<extra>{agent}</extra>"
                ),
            )
        )
    if as_pct:
        fig.add_hline(y=0.0, line={"color": theme.NEUTRAL, "width": 1, "dash": "dot"})
    theme.style(fig, height=440)
    theme.time_axis(fig)
    fig.update_yaxes(
        title_text="return since period start (%)" if as_pct else f"account value ({QUOTE})",
        ticksuffix="%" if as_pct else "",
        tickformat=".2f" if as_pct else ",.0f",
        zeroline=False,
    )
    return fig


def agent_equity(curve: pd.DataFrame, color: str, agent: str, trades: pd.DataFrame | None = None) -> go.Figure:
    """One agent's account value (top) and drawdown below its running peak (bottom), on one UTC time axis."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    fig.add_trace(
        go.Scatter(
            x=curve["ts"],
            y=curve["equity"],
            name="account value",
            mode="lines",
            line={"color": color, "width": 2.2},
            hovertemplate=f"%{{y:,.2f}} {QUOTE}<extra>account value</extra>",
        ),
        row=1,
        col=1,
    )
    if trades is not None and not trades.empty and not curve.empty:
        marks = _trade_marks(curve, trades)
        for label, symbol, mark_color, sel in marks:
            fig.add_trace(
                go.Scatter(
                    x=sel["ts"],
                    y=sel["equity"],
                    name=label,
                    mode="markers",
                    marker={"symbol": symbol, "size": 9, "color": mark_color, "line": {"width": 1, "color": "white"}},
                    text=sel["text"],
                    hovertemplate="%{text}<extra>" + label + "</extra>",
                ),
                row=1,
                col=1,
            )
    fig.add_trace(
        go.Scatter(
            x=curve["ts"],
            y=curve["drawdown"] * 100.0,
            name="drawdown",
            mode="lines",
            fill="tozeroy",
            line={"color": theme.LOSS, "width": 1.2},
            hovertemplate="%{y:.2f}%<extra>drawdown</extra>",
        ),
        row=2,
        col=1,
    )
    theme.style(fig, height=520)
    theme.time_axis(fig, row=2, col=1)
    fig.update_yaxes(title_text=f"account value ({QUOTE})", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown (%)", ticksuffix="%", tickformat=".1f", row=2, col=1)
    return fig


def _trade_marks(curve: pd.DataFrame, trades: pd.DataFrame) -> list[tuple[str, str, str, pd.DataFrame]]:
    """Fills placed on the equity line at their bar (the curve's value at or before the fill's time)."""
    line = curve[["ts", "equity"]].sort_values("ts")
    fills = trades.sort_values("ts")
    placed = pd.merge_asof(fills, line, on="ts", direction="backward").dropna(subset=["equity"])
    placed["text"] = [
        f"{symbol} {side} {qty:.6g} @ {price:,.2f} ({kind})" + (f", realized {pnl:+,.2f} {QUOTE}" if pnl else "")
        for symbol, side, qty, price, kind, pnl in zip(
            placed["symbol"].astype(str),
            placed["side"].astype(str),
            placed["quantity"].astype(float),
            placed["price"].astype(float),
            placed["kind"].astype(str),
            placed["realized_pnl"].astype(float),
            strict=True,
        )
    ]
    entries = placed[placed["kind"] == "entry"]
    exits = placed[placed["kind"] != "entry"]
    out = []
    if not entries.empty:
        out.append(("entries", "triangle-up", theme.GAIN, entries))
    if not exits.empty:
        out.append(("exits", "x", theme.LOSS, exits))
    return out


def exposure_bars(frame: pd.DataFrame, symbols_colors: Mapping[str, str]) -> go.Figure:
    """Signed notional per agent, stacked by symbol: longs above zero, shorts below."""
    fig = go.Figure()
    for symbol in sorted(frame["symbol"].unique()):
        sel = frame[frame["symbol"] == symbol]
        fig.add_trace(
            go.Bar(
                x=sel["agent"],
                y=sel["signed_notional"],
                name=symbol,
                marker_color=symbols_colors.get(symbol, theme.NEUTRAL),
                customdata=np.column_stack([sel["side"], sel["share_of_equity"] * 100.0]),
                hovertemplate=(
                    f"{symbol} %{{customdata[0]}}: %{{y:,.2f}} {QUOTE}"
                    "<br>%{customdata[1]:.1f}% of equity<extra></extra>"
                ),
            )
        )
    fig.add_hline(y=0.0, line={"color": theme.NEUTRAL, "width": 1})
    theme.style(fig, height=360)
    fig.update_layout(barmode="relative", hovermode="closest")
    fig.update_xaxes(title_text="agent")
    fig.update_yaxes(title_text=f"notional ({QUOTE}); short below 0", tickformat=",.0f")
    return fig


def var_bars(table: pd.DataFrame, level: float) -> go.Figure:
    """VaR and CVaR at one confidence level, historical and parametric side by side, per agent, in % per bar."""
    sel = table[np.isclose(table["level"], level)]
    fig = go.Figure()
    shades = {
        ("historical", "var"): "#1f77b4",
        ("historical", "cvar"): "#aec7e8",
        ("parametric", "var"): "#ff7f0e",
        ("parametric", "cvar"): "#ffbb78",
    }
    for method in ("historical", "parametric"):
        part = sel[sel["method"] == method]
        for measure, label in (("var", "VaR"), ("cvar", "CVaR")):
            fig.add_trace(
                go.Bar(
                    x=part["agent"],
                    y=part[measure] * 100.0,
                    name=f"{label} ({method})",
                    marker_color=shades[(method, measure)],
                    hovertemplate=f"{label} {method}: %{{y:.3f}}% of equity<extra>%{{x}}</extra>",
                )
            )
    theme.style(fig, height=360)
    fig.update_layout(barmode="group", hovermode="closest")
    fig.update_xaxes(title_text="agent")
    fig.update_yaxes(title_text=f"loss in one bar at {level:.0%} (% of equity)", ticksuffix="%", tickformat=".2f")
    return fig


def correlation_heatmap(corr: pd.DataFrame) -> go.Figure:
    """The agents' return correlations, -1 (red) to +1 (blue); blank where a correlation is undefined."""
    names = list(corr.columns)
    z = corr.to_numpy(dtype=float)
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            zmin=-1.0,
            zmax=1.0,
            colorscale="RdBu",
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
            colorbar={"title": {"text": "correlation"}},
        )
    )
    theme.style(fig, height=max(320, 60 * len(names) + 120), legend=False)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig
