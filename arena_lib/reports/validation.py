"""The validation report of `validate_strategy`: figures, a JSON summary and one HTML page that opens offline.

Kept apart from `arena_lib.research.validation` so that the statistics stay pure and this module owns the files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from arena_lib.reports.figures import PALETTE, TEMPLATE
from arena_lib.research.validation import StrategyValidation

__all__ = ["validation_figures", "write_validation_report"]


def _equity(returns: pd.Series) -> pd.Series:
    return (1.0 + returns).cumprod()


def validation_figures(v: StrategyValidation) -> dict[str, go.Figure]:
    """The report's figures by file stem: out-of-sample equity, variants, PBO logits, robustness, Monte Carlo."""
    figures: dict[str, go.Figure] = {}

    oos = go.Figure()
    oos.add_scatter(x=v.oos_returns.index, y=_equity(v.oos_returns), name="walk-forward choice", line_color=PALETTE[0])
    for k, boundary in enumerate(v.fold_choices["test_start"]):
        oos.add_vline(x=boundary, line_dash="dot", line_color="#999")
        oos.add_annotation(x=boundary, y=1, yref="paper", text=str(v.fold_choices["chosen"].iloc[k]), showarrow=False)
    oos.update_layout(template=TEMPLATE, title="Out-of-sample equity of the walk-forward choice (growth of 1)")
    oos.update_yaxes(title_text="growth of 1")
    figures["oos_equity"] = oos

    variants = go.Figure(go.Bar(x=v.variants.index, y=v.variants["sharpe"], marker_color=PALETTE[0]))
    variants.update_layout(template=TEMPLATE, title="Full-period Sharpe of every variant (what a grid search shows)")
    variants.update_yaxes(title_text="Sharpe (annualised)")
    figures["variants"] = variants

    pbo = go.Figure(go.Histogram(x=v.pbo.logits, nbinsx=30, marker_color=PALETTE[1]))
    pbo.add_vline(x=0, line_dash="dash")
    pbo.update_layout(
        template=TEMPLATE,
        title=f"CSCV logits of the in-sample winner's out-of-sample rank (PBO = {v.pbo.pbo:.2f}, share at or below 0)",
    )
    figures["pbo_logits"] = pbo

    sens = v.sensitivity.iloc[1:]
    labels = [f"{p} {s:+.0%}" for p, s in zip(sens["parameter"], sens["rel_step"], strict=True)]
    robust = go.Figure(go.Bar(x=labels, y=sens["metric"], marker_color=PALETTE[2], name="+-20% parameters"))
    robust.add_hline(y=float(v.sensitivity["metric"].iloc[0]), line_dash="dash", annotation_text="selected")
    robust.update_layout(template=TEMPLATE, title="Sharpe with each parameter moved by +-20%")
    figures["sensitivity"] = robust

    delay = go.Figure(go.Scatter(x=v.entry_delay.index, y=v.entry_delay["metric"], mode="lines+markers"))
    delay.update_layout(template=TEMPLATE, title="Sharpe when every signal is acted on late")
    delay.update_xaxes(title_text="entry delay (bars)")
    figures["entry_delay"] = delay

    mc = go.Figure()
    for k, (method, result) in enumerate(v.monte_carlo.items()):
        mc.add_histogram(x=result.max_drawdowns * 100, name=method, opacity=0.6, marker_color=PALETTE[k % 8])
    mc.update_layout(template=TEMPLATE, barmode="overlay", title="Monte Carlo distribution of the maximum drawdown")
    mc.update_xaxes(title_text="max drawdown %")
    figures["monte_carlo"] = mc
    return figures


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def write_validation_report(v: StrategyValidation, out_dir: str | Path) -> dict[str, Path]:
    """Write `summary.json`, `variants.csv`, `sensitivity.csv` and an offline `report.html` to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {k: _jsonable(x) for k, x in v.summary().items()}
    summary = {
        "agent": v.agent,
        "selected": v.selected,
        "selected_params": v.selected_params,
        "metrics": metrics,
        "fold_choices": v.fold_choices.astype(str).to_dict(orient="records"),
    }
    paths = {
        "summary": out / "summary.json",
        "variants": out / "variants.csv",
        "sensitivity": out / "sensitivity.csv",
        "report": out / "report.html",
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str))
    v.variants.to_csv(paths["variants"])
    v.sensitivity.to_csv(paths["sensitivity"], index=False)
    rows = "".join(
        f"<tr><td>{k}</td><td>{'' if x is None else (f'{x:.4g}' if isinstance(x, float) else x)}</td></tr>"
        for k, x in metrics.items()
    )
    parts = [
        f"<h1>Validation of {v.agent}</h1><p>Selected variant: <b>{v.selected}</b></p>",
        f"<table border='1' cellpadding='4' style='border-collapse:collapse'>{rows}</table>",
    ]
    for k, fig in enumerate(validation_figures(v).values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=k == 0))
    paths["report"].write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Validation report</title></head><body>"
        + "".join(parts)
        + "</body></html>"
    )
    return paths
