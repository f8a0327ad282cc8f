"""The one place that decides how the monitor's charts look: template, palette, agent colours, axis formats.

Why here: every page draws agents, and an agent must keep its colour from the equity race to its own detail page
and the risk charts. The palette and template are the project's (`arena_lib.reports.figures`), so a chart in the
monitor and one in an HTML report of the same run read alike. Charts are rendered with `theme=None` so Streamlit
does not restyle them.
"""

from __future__ import annotations

from collections.abc import Iterable

import plotly.graph_objects as go

from arena_lib.reports.figures import PALETTE, TEMPLATE

SYMBOL_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d"]
"""Symbols get their own palette (Vega's), so a symbol's bar never looks like an agent's line."""
LOSS = "#d62728"
GAIN = "#2ca02c"
NEUTRAL = "#7f7f7f"
FONT = "Source Sans Pro, -apple-system, Segoe UI, Roboto, sans-serif"
UTC_AXIS = "time (UTC)"
CHART_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"], "responsive": True}
"""plotly's config for every chart: zoom, pan, hover and PNG export stay; the selection tools (unused) go."""


def agent_colors(agents: Iterable[str]) -> dict[str, str]:
    """A stable colour per agent: the sorted names take the palette in order, so a run's colours never shuffle."""
    return {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(sorted(set(agents)))}


def symbol_colors(symbols: Iterable[str]) -> dict[str, str]:
    """A stable colour per symbol, from `SYMBOL_PALETTE`."""
    return {name: SYMBOL_PALETTE[k % len(SYMBOL_PALETTE)] for k, name in enumerate(sorted(set(symbols)))}


def dash_for(kind: str) -> str:
    """LLM agents are drawn solid, quant/ML agents dashed, so the two families read apart at a glance."""
    return "solid" if kind == "llm" else "dash"


def style(fig: go.Figure, *, height: int = 420, title: str | None = None, legend: bool = True) -> go.Figure:
    """Apply the monitor's layout: project template, readable font, unified hover, legend above the plot, and a
    constant `uirevision`, so a refresh that redraws the figure keeps the viewer's zoom."""
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        title={"text": title, "x": 0.0, "xanchor": "left"} if title else None,
        font={"family": FONT, "size": 13},
        hovermode="x unified",
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0, "title": None},
        hoverlabel={"namelength": -1},
        uirevision="keep",  # a live refresh keeps the viewer's zoom and hidden legend entries
    )
    return fig


def time_axis(fig: go.Figure, **selector: int) -> None:
    """Label an x axis as UTC time with a compact date/hour tick format."""
    fig.update_xaxes(title_text=UTC_AXIS, tickformat="%b %d\n%H:%M", hoverformat="%Y-%m-%d %H:%M UTC", **selector)
