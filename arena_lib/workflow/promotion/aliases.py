"""Promotion and rollback: move a registry alias only behind passing gates, and keep the way back one command long.

Why it is built this way: flows load models by alias (`models:/name@paper`), so moving an alias *is* deploying.
`promote` therefore writes the gate report to the promoted run whether it passed or not (an audit trail of
refusals too), moves the alias only when every check passed, and records what it replaced in two places in
MLflow: the tag `arena.previous.<alias>` on the new version, and an append-only history on the registered model
(`arena.history.<alias>`, a JSON list of {action, version, previous, at, by_run}). `rollback` replays that history
as a stack of holders and moves the alias to the one below the current holder, so promote-promote-rollback-rollback
walks back in order. MLflow keeps no alias timestamps, so `promote` stamps `arena.paper_since` on a version when it
gets `paper` (informational). The history's times also tell which version an `@paper` model agent traded at each
bar of a paper job: `live` is judged on those bars (`promotion.paper`), after `min_paper_days` of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from arena_lib.core.clock import Clock, WallClock
from arena_lib.workflow import tracking
from arena_lib.workflow.promotion.checks import (
    HISTORY_TAG,
    PAPER_SINCE_TAG,
    GateReport,
    ModelRef,
    PromotionError,
    alias_history,
    check_alias,
    find_model_version,
    get_run,
    judge,
)
from arena_lib.workflow.promotion.config import Gates, load_gates

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "HISTORY_TAG",
    "PREVIOUS_TAG",
    "REPORT_DIR",
    "PromotionResult",
    "RollbackError",
    "RollbackResult",
    "alias_history",
    "promote",
    "rollback",
]

log = logging.getLogger(__name__)

PREVIOUS_TAG = "arena.previous.{alias}"
REPORT_DIR = "gate_reports"
MAX_HISTORY_CHARS = 5000
"""Registered-model tag values are VARCHAR(5000) in MLflow's SQL schema: the oldest history entries go first."""


class RollbackError(PromotionError):
    """There is nothing to roll back to, or the alias was moved outside `promote`/`rollback`."""


@dataclass(frozen=True)
class PromotionResult:
    """What `promote` did: the gate report, where it was written, and whether (and from what) the alias moved."""

    run_id: str
    alias: str
    registered_model: str
    version: str
    previous: str | None
    promoted: bool
    dry_run: bool
    report: GateReport
    report_artifact: str | None

    def failed(self) -> list[str]:
        """Names of the failed checks (empty when every gate passed)."""
        return self.report.failed()

    @property
    def message(self) -> str:
        """One line for people: promoted, unchanged, would promote, or refused with the failing checks."""
        target = f"{self.registered_model} version {self.version} to @{self.alias}"
        if not self.report.passed:
            return f"not promoted: {target} failed {', '.join(self.failed())}"
        if self.dry_run:
            return f"dry run: every gate passed; would promote {target} (now held by {self.previous or 'none'})"
        if self.previous == self.version:
            return f"{target}: it already holds the alias; nothing changed"
        return f"promoted {target} (previous holder: {self.previous or 'none'})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the result and its full gate report."""
        return {
            "run_id": self.run_id,
            "alias": self.alias,
            "registered_model": self.registered_model,
            "version": self.version,
            "previous": self.previous,
            "promoted": self.promoted,
            "dry_run": self.dry_run,
            "message": self.message,
            "report_artifact": self.report_artifact,
            "report": self.report.to_dict(),
        }


@dataclass(frozen=True)
class RollbackResult:
    """What `rollback` did: which version held the alias, and which holds it now."""

    registered_model: str
    alias: str
    from_version: str
    to_version: str
    at: str

    @property
    def message(self) -> str:
        return f"rolled back {self.registered_model}@{self.alias}: version {self.from_version} -> {self.to_version}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "message": self.message}


# --------------------------------------------------------------------------------------------------------- history
def _append_history(registered_model: str, alias: str, entry: dict[str, Any]) -> None:
    entries = [*alias_history(registered_model, alias), tracking.redact(entry)]
    text = json.dumps(entries, separators=(",", ":"))
    while len(text) > MAX_HISTORY_CHARS and len(entries) > 1:
        entries = entries[1:]
        text = json.dumps(entries, separators=(",", ":"))
    tracking.client().set_registered_model_tag(registered_model, HISTORY_TAG.format(alias=alias), text)


def _holders(history: list[dict[str, Any]]) -> list[str]:
    """The stack of alias holders that the history implies: promote pushes, rollback pops."""
    stack: list[str] = []
    for entry in history:
        if entry.get("action") == "promote":
            if not stack and entry.get("previous") is not None:
                stack.append(str(entry["previous"]))  # the holder before the first recorded promotion
            stack.append(str(entry["version"]))
        elif entry.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack:  # the history was trimmed: the target is all we know
                stack.append(str(entry["version"]))
    return stack


def _move(ref: ModelRef, alias: str, previous: str | None, now: pd.Timestamp) -> None:
    """Point `alias` at `ref` and keep `arena.paper_since` true to who holds paper."""
    mlc = tracking.client()
    tracking.set_alias(ref.name, alias, ref.version)
    if alias == "paper":
        mlc.set_model_version_tag(ref.name, ref.version, PAPER_SINCE_TAG, now.isoformat())
        if previous is not None and previous != ref.version:
            mlc.delete_model_version_tag(ref.name, previous, PAPER_SINCE_TAG)


# ------------------------------------------------------------------------------------------------------- promotion
def _write_report(report: GateReport, now: pd.Timestamp) -> str:
    """The report as `gate_reports/<alias>-<UTC stamp>.json` on the run, plus `gate.<alias>.*` metrics and tags."""
    from mlflow.entities import Metric, RunTag

    artifact = f"{REPORT_DIR}/{report.alias}-{now:%Y%m%dT%H%M%S%fZ}.json"
    mlc = tracking.client()
    text = json.dumps(tracking.redact(report.to_dict()), indent=2, default=str)
    mlc.log_text(report.run_id, text, artifact)
    ms = int(now.value // 1_000_000)
    prefix = f"gate.{report.alias}"
    metrics = [Metric(f"{prefix}.passed", float(report.passed), ms, 0)]
    metrics += [Metric(f"{prefix}.{c.name}.passed", float(c.passed), ms, 0) for c in report.checks]
    tags = [
        RunTag(f"{prefix}.passed", "true" if report.passed else "false"),
        RunTag(f"{prefix}.failed", ",".join(report.failed()) or "-"),
        RunTag(f"{prefix}.report", artifact),
    ]
    mlc.log_batch(report.run_id, metrics=metrics, tags=tags)
    return artifact


def promote(
    run_id: str,
    alias: str,
    *,
    gates: Gates | str | Path | None = None,
    registered_model: str | None = None,
    dry_run: bool = False,
    clock: Clock | None = None,
    must_beat: str | None = None,
    paper_db_url: str | None = None,
) -> PromotionResult:
    """Give the model version that run `run_id` registered the alias `alias`, if it clears every gate.

    `gates` is a `Gates`, a gates file, or None for the project's `configs/gates.yaml`. The gate report is written
    to the run (artifact `gate_reports/<alias>-<stamp>.json`, metrics and tags `gate.<alias>.*`) whether it passed
    or not; with `dry_run` nothing is written and no alias moves. A failed gate leaves every alias where it was
    and returns a result whose `failed()` names the checks. `live` needs the version to hold `paper` now, and is
    judged on its paper record in the arena ledger (`paper_db_url`, else the gates file's `paper_ledger.db_url`,
    else the arena store's default) after `min_paper_days` days of it, not on the run's backtest.
    `must_beat="paper"` (a retrained challenger) also requires beating, on the same out-of-sample Sharpe, the
    version holding that alias now.

    Raises:
        PromotionError: unknown alias, no such run, a run that registered no model (or several, without
            `registered_model`).
        GatesConfigError: a bad gates file.
    """
    check_alias(alias)
    resolved = gates if isinstance(gates, Gates) else load_gates(gates)
    get_run(run_id)
    ref = find_model_version(run_id, registered_model)
    if ref is None:
        raise PromotionError(
            f"run {run_id} registered no model version: promote the run that registered it "
            "(tracking.register_trained_model)"
        )
    now = pd.Timestamp((clock or WallClock()).now_ns(), tz="UTC")
    report = judge(run_id, alias, resolved, ref, now, must_beat, paper_db_url)
    previous = tracking.alias_version(ref.name, alias)
    artifact = None if dry_run else _write_report(report, now)
    moved = report.passed and not dry_run and previous != ref.version
    if moved:
        _move(ref, alias, previous, now)
        mlc = tracking.client()
        mlc.set_model_version_tag(ref.name, ref.version, PREVIOUS_TAG.format(alias=alias), previous or "none")
        mlc.set_tag(run_id, f"arena.promoted.{alias}", f"{ref.name}/{ref.version}")
        entry = {"action": "promote", "version": ref.version, "previous": previous, "at": now.isoformat()}
        _append_history(ref.name, alias, {**entry, "by_run": run_id})
        log.info("promoted %s version %s to @%s (was %s)", ref.name, ref.version, alias, previous)
    return PromotionResult(
        run_id=run_id,
        alias=alias,
        registered_model=ref.name,
        version=ref.version,
        previous=previous,
        promoted=report.passed and not dry_run,
        dry_run=dry_run,
        report=report,
        report_artifact=artifact,
    )


def rollback(registered_model: str, alias: str, *, clock: Clock | None = None) -> RollbackResult:
    """Move `registered_model@alias` back to the version that held it before the current one.

    Raises:
        RollbackError: no promotion history, the current holder is the first one recorded, or the alias was
            moved outside `promote`/`rollback` (the message says which version the history expected).
        PromotionError: unknown alias or model.
    """
    check_alias(alias)
    history = alias_history(registered_model, alias)
    current = tracking.alias_version(registered_model, alias)
    stack = _holders(history)
    where = f"{registered_model}@{alias}"
    if not stack:
        raise RollbackError(f"{where} has no promotion history: nothing to roll back to")
    if current != stack[-1]:
        raise RollbackError(
            f"{where} is held by version {current or 'none'}, but its promotion history ends at version {stack[-1]}:"
            " the alias was moved outside arena promote/rollback; set it by hand"
        )
    if len(stack) < 2:
        raise RollbackError(f"{where}: version {current} is the first recorded holder; nothing to roll back to")
    target = ModelRef(registered_model, stack[-2])
    now = pd.Timestamp((clock or WallClock()).now_ns(), tz="UTC")
    from mlflow.exceptions import MlflowException

    try:
        _move(target, alias, current, now)
    except MlflowException as exc:
        raise RollbackError(f"{where}: cannot move back to version {target.version}: {exc.message}") from None
    entry = {"action": "rollback", "version": target.version, "previous": current, "at": now.isoformat()}
    _append_history(registered_model, alias, {**entry, "by_run": None})
    log.info("rolled back %s from version %s to %s", where, current, target.version)
    return RollbackResult(registered_model, alias, str(current), target.version, now.isoformat())
