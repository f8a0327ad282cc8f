"""Research: MLflow experiments and runs with their metrics, registered models with their aliases, gate reports."""

from __future__ import annotations

import streamlit as st
from monitor_ui import components as ui
from monitor_ui import data

from arena_lib.monitor.research import TrackingUnavailableError, gate_checks, tracking_store
from arena_lib.workflow import tracking

st.title("Research")
uri = tracking.tracking_uri()
where = tracking_store(uri)
st.caption(f"MLflow store: `{where.uri}`")
if not where.exists:
    st.info(where.message, icon=":material/science:")
    st.stop()
try:
    with st.spinner("Opening the MLflow store..."):
        data.mlflow_client(uri)
    exps = data.experiments(uri)
    models = data.registered_models(uri)
    summary, reports = data.gate_reports(uri)
except TrackingUnavailableError as exc:
    st.error(f"**MLflow cannot be read.** {exc}", icon=":material/error:")
    st.stop()

on = {alias: int(models["aliases"].map(lambda a, al=alias: al in a).sum()) for alias in tracking.ALIASES}
cols = st.columns(4)
cols[0].metric("Experiments", len(exps), border=True)
cols[1].metric(
    "Registered models", models["model"].nunique(), f"{len(models)} versions", delta_color="off", border=True
)
cols[2].metric(
    "On paper / live", f"{on['paper']} / {on['live']}", help="Model versions holding the alias.", border=True
)
passed = int(summary["passed"].eq(True).sum()) if not summary.empty else 0
cols[3].metric("Gate reports", len(summary), f"{passed} passed", delta_color="off", border=True)

runs_tab, models_tab, gates_tab = st.tabs(["Experiments & runs", "Registered models", "Gate reports"])

with runs_tab:
    if exps.empty:
        st.info("No experiment yet: runs appear once a notebook or `arena` command logs one.", icon=":material/info:")
    else:
        names = {"All experiments": None, **{n: i for n, i in zip(exps["name"], exps["experiment_id"], strict=True)}}
        picked = st.selectbox("Experiment", list(names), key="mlflow_experiment")
        chosen = names.get(picked or "All experiments")
        runs = data.mlflow_runs(uri, None if chosen is None else (chosen,), 100)
        if runs.empty:
            st.info("This experiment has no runs.", icon=":material/info:")
        else:
            metric_cols = [c for c in runs.columns if c.startswith("metric.")]
            config: dict[str, object] = {
                "run_name": ui.text_col("Run"),
                "experiment": ui.text_col("Experiment"),
                "status": ui.text_col("Status"),
                "started": ui.time_col("Started"),
                "duration_s": ui.number_col("Duration (s)", None, "%.1f"),
            }
            config.update({c: ui.number_col(c.removeprefix("metric."), None, "%.4g") for c in metric_cols})
            config.update({"git_sha": ui.text_col("Commit"), "run_id": ui.text_col("Run id")})
            ui.table(runs, config, key="mlflow_runs")
            st.caption(
                f"Newest first, at most 100 runs; metrics are each run's latest value ({len(metric_cols)} shown)."
            )

with models_tab:
    if models.empty:
        st.info("No registered model yet: training notebooks register theirs as `candidate`.", icon=":material/info:")
    else:
        ui.table(
            models,
            {
                "model": ui.text_col("Model"),
                "version": ui.int_col("Version"),
                "aliases": st.column_config.ListColumn(
                    "Aliases", help="candidate → paper → live; flows load by alias."
                ),
                "status": ui.text_col("Status"),
                "created": ui.time_col("Registered"),
                "paper_since": ui.text_col("On paper since (UTC)"),
                "run_id": ui.text_col("Run id"),
                "description": ui.text_col("Description"),
            },
            key="mlflow_models",
        )
        st.caption("Newest versions first (at most 20 per model). Promotion moves an alias only behind passing gates.")

with gates_tab:
    if summary.empty:
        st.info("No gate report yet: `arena promote <run id> --alias candidate` writes one.", icon=":material/info:")
    else:
        shown = summary.assign(
            verdict=summary["passed"].map({True: "passed", False: "FAILED"}).fillna("unreadable"),
            failed_checks=summary["failed"].map(lambda f: ", ".join(f) if isinstance(f, list) and f else ""),
        )
        ui.table(
            shown,
            {
                "evaluated_at": ui.time_col("Evaluated"),
                "alias": ui.text_col("Target alias"),
                "verdict": ui.text_col("Verdict"),
                "failed_checks": ui.text_col("Failed checks"),
                "registered_model": ui.text_col("Model"),
                "version": ui.text_col("Version"),
                "run_name": ui.text_col("Run"),
                "run_id": ui.text_col("Run id"),
            },
            key="gate_summary",
        )
        keys = [(r, a) for r, a in zip(summary["run_id"], summary["artifact"], strict=True) if (r, a) in reports]
        if keys:
            labels = {
                k: f"{reports[k].get('alias', '')} · {reports[k].get('registered_model') or 'no model'} "
                f"v{reports[k].get('version') or '?'} · {ui.utc(reports[k].get('evaluated_at'))}"
                for k in keys
            }
            key = st.selectbox("Report", keys, format_func=lambda k: labels[k], key="gate_report")
            report = reports[key]
            st.markdown(f"**{'Passed' if report.get('passed') else 'Failed'}**: run `{key[0]}`, artifact `{key[1]}`")
            checks = gate_checks(report).assign(result=lambda f: f["passed"].map({True: "pass", False: "FAIL"}))
            ui.table(
                checks,
                {
                    "name": ui.text_col("Gate"),
                    "result": ui.text_col("Result"),
                    "value": ui.text_col("Measured"),
                    "threshold": ui.text_col("Threshold"),
                    "detail": ui.text_col("Detail", width="large"),
                },
                key="gate_checks",
            )
            disabled = report.get("disabled") or []
            if disabled:
                st.caption(f"Gates switched off in the gates file: {', '.join(disabled)}.")
