"""Promotion commands: `arena promote`, `arena rollback` and `arena gates show`.

Registered on the main `arena` app by `arena_lib.cli.main` through `register(app)`. Exit codes are the contract that
flows and CI scripts rely on: 0 promoted (or rolled back), 1 a gate failed (the failing checks are named), 2 bad
input (no such run, no model, a bad gates file, nothing to roll back to). mlflow and pandas are imported inside
the commands so that `arena --help` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from arena_lib.workflow.promotion import GateReport

gates_app = typer.Typer(no_args_is_help=True, help="Promotion gates: what a run must clear to get an alias.")

_ALIASES = ("candidate", "paper", "live")  # tracking.ALIASES, spelled out so the CLI does not import mlflow helpers

AliasOption = Annotated[str, typer.Option("--alias", help=f"registry alias: {' | '.join(_ALIASES)}")]
# What the gates that read no run metric look at (the metric ones are listed in promotion.METRIC_NAMES).
_READS = {
    "lookahead": "the model's features (MLflow model metadata arena_features) on the bundled sample",
    "llm_cutoff": "run tag/param llm.training_cutoff vs llm.window_start / window_start / start",
    "min_paper_days": "days of paper bars the version traded (arena ledger; the paper alias's promotion history)",
}
_LIVE_NOTE = (
    "@live is judged on the version's paper record in the arena ledger (paper_trades, paper_sharpe - "
    "paper_best_baseline_sharpe, paper_probabilistic_sharpe, paper_max_drawdown), not on the run's metrics"
)
GatesOption = Annotated[
    Path | None, typer.Option("--gates", help="gates file (default: configs/gates.yaml of the project)")
]


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    from arena_lib.cli.common import fail

    fail(escape(message), code)


def _check_alias(alias: str) -> None:
    if alias not in _ALIASES:
        _fail(f"unknown alias {alias!r}: use one of {', '.join(_ALIASES)}")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def gate_table(report: GateReport) -> Table:
    """The gate report as a rich table: gate, value, threshold, PASS/FAIL, detail."""
    from rich.markup import escape
    from rich.table import Table

    where = f"{report.registered_model} v{report.version}" if report.version else "no model version"
    table = Table(title=f"gates for @{report.alias}: run {report.run_id} ({where})", header_style="bold")
    for column in ("gate", "value", "threshold", "result", "detail"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        result = "[green]PASS[/]" if c.passed else "[bold red]FAIL[/]"
        table.add_row(escape(c.name), escape(_text(c.value)), escape(_text(c.threshold)), result, escape(c.detail))
    return table


def promote_command(
    run_id: Annotated[str, typer.Argument(help="the MLflow run that registered the model version")],
    alias: AliasOption,
    model: Annotated[
        str | None, typer.Option("--model", help="registered model name (when the run registered several)")
    ] = None,
    gates: GatesOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="evaluate and print; write nothing, move nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    paper_db: Annotated[
        str | None,
        typer.Option(
            "--paper-db",
            help="arena ledger URL holding the paper record (@live only; default: the gates file's "
            "paper_ledger.db_url, else ARENA_DB_URL, else .arena/arena.db)",
        ),
    ] = None,
) -> None:
    """Give a run's model version an alias if it clears every gate; the gate report is written to the run.

    @live is judged on the version's paper record in the arena ledger, after min_paper_days of it.
    Exit 0: promoted (or already held); 1: a gate failed; 2: bad input.
    """
    from rich.markup import escape

    from arena_lib.cli.common import console
    from arena_lib.workflow.promotion import GatesConfigError, PromotionError, promote

    _check_alias(alias)
    try:
        result = promote(run_id, alias, gates=gates, registered_model=model, dry_run=dry_run, paper_db_url=paper_db)
    except (PromotionError, GatesConfigError) as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        console.print(gate_table(result.report))
        if result.report.disabled:
            console.print(f"disabled gates: {', '.join(result.report.disabled)}", markup=False)
        if result.report_artifact:
            console.print(f"gate report: runs:/{run_id}/{result.report_artifact}", markup=False)
        style = "green" if result.report.passed else "bold red"
        console.print(f"[{style}]{escape(result.message)}[/]")
    if not result.report.passed:
        raise typer.Exit(1)


def rollback_command(
    alias: AliasOption,
    model: Annotated[str, typer.Option("--model", help="registered model name")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Move an alias back to the version that held it before the current one (exit 2 when there is none)."""
    from arena_lib.cli.common import console
    from arena_lib.workflow.promotion import PromotionError, rollback

    _check_alias(alias)
    try:
        result = rollback(model, alias)
    except PromotionError as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        console.print(result.message, markup=False)


@gates_app.command("show")
def gates_show(
    gates: GatesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Print the gates a promotion is judged by, with what each one means."""
    from rich.markup import escape
    from rich.table import Table

    from arena_lib.cli.common import console
    from arena_lib.workflow.promotion import GATE_NAMES, METRIC_NAMES, Gates, GatesConfigError, load_gates
    from arena_lib.workflow.promotion.config import default_gates_path

    path = gates or default_gates_path()
    try:
        loaded = load_gates(path)
    except GatesConfigError as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps({"source": str(path), **loaded.model_dump(mode="json")}, indent=2))
        return
    table = Table(title=f"{path} (version {loaded.version}, digest {loaded.digest()})", header_style="bold")
    for column in ("gate", "setting", "meaning", "reads"):
        table.add_column(column, overflow="fold")
    for name in GATE_NAMES:
        value = getattr(loaded, name)
        setting = "disabled" if value is None or value is False else str(value)
        if hasattr(value, "model_dump"):
            setting = ", ".join(f"{k}={v}" for k, v in value.model_dump().items())
        reads = " or ".join(" + ".join(keys) for keys in METRIC_NAMES.get(name, ())) or _READS.get(name, "-")
        meaning = Gates.model_fields[name].description or ""
        table.add_row(*(escape(v) for v in (name, setting, meaning, reads)))
    ledger = loaded.paper_ledger
    from arena_lib.workflow.tracking import redact_text

    where = ", ".join(f"{k}={v}" for k, v in ledger.model_dump().items() if v is not None) or "defaults"
    where = redact_text(where)
    reads = "db_url (null: ARENA_DB_URL, else .arena/arena.db), job"
    table.add_row("paper_ledger", escape(where), escape(_LIVE_NOTE), reads)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `promote`, `rollback` and the `gates` group to the `arena` app."""
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.add_typer(gates_app, name="gates")
