"""`validate_and_promote`: re-evaluate the promotion gates on a run and move the registry alias if all pass."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from arena_lib.core.settings import settings
from arena_lib.workflow.promotion import PromotionResult, promote


class GateFailedError(RuntimeError):
    """A gate refused the promotion: the aliases did not move, and the gate report in MLflow says why."""


def describe_failure(result: PromotionResult) -> str:
    """One line per failed check, with its measured value and threshold, for the flow run's state message."""
    frame = result.report.to_frame()
    lines = [f"{name}: {frame.at[name, 'detail']!s}" for name in result.report.failed()]
    where = f"{result.registered_model} version {result.version}"
    return f"{where} not promoted to @{result.alias}; failed " + "; ".join(lines)


@flow(name="validate_and_promote")
def validate_and_promote(
    run_id: str,
    alias: str = "paper",
    registered_model: str | None = None,
    gates: str | None = None,
    must_beat: str | None = None,
) -> dict[str, Any]:
    """Judge MLflow run `run_id` against the gates file (default `configs/gates.yaml`) and promote its model.

    The gate report is written to the run either way. A failed gate fails this flow with `GateFailedError` naming
    each failed check, so an operator sees it in Prefect and a chained flow stops; the aliases stay where they were.
    """
    gates_file = gates or str(settings().gates_path)
    result = promote(run_id, alias, gates=gates_file, registered_model=registered_model, must_beat=must_beat)
    log = get_run_logger()
    if not result.promoted:
        raise GateFailedError(describe_failure(result))
    log.info("%s version %s now holds @%s (was %s)", result.registered_model, result.version, alias, result.previous)
    return {
        "run_id": run_id,
        "registered_model": result.registered_model,
        "version": result.version,
        "alias": alias,
        "previous": result.previous,
        "report": result.report_artifact,
    }
