"""Interactive plotly reports of a replay: price with trades, equity and drawdown, and the equity race.

Figures are written as standalone HTML with plotly.js saved once beside them (`include_plotlyjs="directory"`), so
they open offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arena_lib.data.market import MarketData
from arena_lib.engine.results import BacktestResult

TEMPLATE = "plotly_white"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown from the running peak, as a (negative) fraction."""
    return equity / equity.cummax() - 1.0


def backtest_figure(result: BacktestResult, market: MarketData, symbol: str | None = None) -> go.Figure:
    """Price with entries and exits, the equity curve and the drawdown of one agent, on a shared time axis."""
    symbol = symbol or market.symbols[0]
    frame = market.series[symbol].frame
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.5, 0.3, 0.2],
        subplot_titles=(f"{symbol} close and trades", "Equity", "Drawdown"),
    )
    fig.add_trace(
        go.Scattergl(x=frame.index, y=frame["close"], name=f"{symbol} close", line={"color": "#555"}), row=1, col=1
    )
    fills = result.fills[result.fills["symbol"] == symbol] if len(result.fills) else result.fills
    if len(fills):
        for kind, marker, color in (
            ("entry", "triangle-up", "#2ca02c"),
            ("exit", "x", "#d62728"),
            ("stop_loss", "x", "#ff7f0e"),
            ("take_profit", "star", "#1f77b4"),
            ("liquidation", "octagon", "#000"),
        ):
            sel = fills[fills["kind"] == kind]
            if len(sel):
                symbols = [marker if kind != "entry" or s == "buy" else "triangle-down" for s in sel["side"]]
                fig.add_trace(
                    go.Scattergl(
                        x=sel["timestamp"],
                        y=sel["price"],
                        mode="markers",
                        name=kind,
                        marker={"symbol": symbols, "size": 8, "color": color},
                        text=[
                            f"{s} {q:.6g} @ {p:.6g}"
                            for s, q, p in zip(sel["side"], sel["quantity"], sel["price"], strict=True)
                        ],
                    ),
                    row=1,
                    col=1,
                )
    fig.add_trace(
        go.Scattergl(x=result.equity.index, y=result.equity, name="equity", line={"color": PALETTE[0]}), row=2, col=1
    )
    dd = drawdown(result.equity)
    fig.add_trace(
        go.Scatter(x=dd.index, y=dd, name="drawdown", fill="tozeroy", line={"color": PALETTE[1]}), row=3, col=1
    )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="equity", row=2, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=3, col=1)
    fig.update_layout(template=TEMPLATE, height=850, title=f"{result.agent}: backtest", hovermode="x unified")
    return fig


def equity_race_figure(results: Mapping[str, BacktestResult], with_drawdown: bool = False) -> go.Figure:
    """Every agent's equity on one chart (the race a stakeholder wants to see first), optionally with drawdowns."""
    fig = make_subplots(
        rows=2 if with_drawdown else 1,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3] if with_drawdown else [1.0],
        vertical_spacing=0.04,
    )
    for k, (name, res) in enumerate(results.items()):
        color = PALETTE[k % len(PALETTE)]
        fig.add_trace(
            go.Scattergl(x=res.equity.index, y=res.equity, name=name, legendgroup=name, line={"color": color}),
            row=1,
            col=1,
        )
        if with_drawdown:
            dd = drawdown(res.equity) * 100.0
            fig.add_trace(
                go.Scattergl(x=dd.index, y=dd, name=name, legendgroup=name, showlegend=False, line={"color": color}),
                row=2,
                col=1,
            )
    fig.update_layout(
        template=TEMPLATE,
        height=700 if with_drawdown else 550,
        title="Equity race",
        hovermode="x unified",
        legend_title="agent",
    )
    fig.update_yaxes(title_text="equity (quote currency)", row=1, col=1)
    if with_drawdown:
        fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    return fig


def write_html(fig: go.Figure, path: Path) -> Path:
    """Write an offline-viewable HTML file; plotly.min.js is written once into the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="directory", full_html=True)
    return path
