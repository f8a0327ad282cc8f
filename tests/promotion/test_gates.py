"""Promotion as a gated, reversible alias: the gates file, each gate's verdict, the report in MLflow, rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arena_lib.workflow import tracking
from arena_lib.workflow.promotion import (
    GATE_NAMES,
    HISTORY_TAG,
    PAPER_SINCE_TAG,
    PREVIOUS_TAG,
    GatesConfigError,
    PromotionError,
    RollbackError,
    alias_history,
    evaluate_gates,
    load_gates,
    promote,
    rollback,
)
from tests.promotion.conftest import FEATURES, PASSING_VALIDATION, RunFactory, gates, unique_name, write_gates

REPO_GATES = Path(__file__).resolve().parents[2] / "configs" / "gates.yaml"


def _report(run_id: str, artifact: str) -> dict[str, Any]:
    """The gate report that `promote` wrote to the run, read back from MLflow."""
    local = tracking.client().download_artifacts(run_id, artifact)
    return dict(json.loads(Path(local).read_text()))


def _check(checks: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(c for c in checks if c["name"] == name)


# ------------------------------------------------------------------------------------------------------ gates file
def test_the_projects_gates_file_names_every_gate() -> None:
    loaded = load_gates(REPO_GATES)
    assert loaded.version == 1
    assert set(loaded.enabled()) == set(GATE_NAMES)  # the shipped file switches every gate on
    assert loaded.max_drawdown is not None
    assert loaded.max_drawdown < 0
    text = REPO_GATES.read_text()
    for name in GATE_NAMES:  # each gate carries a comment right above it
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
        assert lines[at - 1].startswith("#"), name


def test_a_typo_in_the_gates_file_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = write_gates(tmp_path / "gates.yaml")
    path.write_text(path.read_text().replace("max_pbo:", "max_pbbo:"))
    with pytest.raises(GatesConfigError) as err:
        load_gates(path)
    message = str(err.value)
    assert str(path) in message
    assert "unknown key 'max_pbbo'" in message
    assert "did you mean 'max_pbo'" in message
    assert "missing key 'max_pbo'" in message  # and the real gate is not silently off


def test_bad_values_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    path = write_gates(tmp_path / "gates.yaml")
    path.write_text(path.read_text().replace("max_drawdown: -0.3", "max_drawdown: 0.3"))
    with pytest.raises(GatesConfigError, match=r"'max_drawdown': must be <= 0 \(got 0.3\)"):
        load_gates(path)
    with pytest.raises(GatesConfigError, match="gates file not found"):
        load_gates(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(GatesConfigError, match="must be a mapping"):
        load_gates(tmp_path / "list.yaml")


# ------------------------------------------------------------------------------------------------ promote: gates
def test_a_passing_run_gets_the_alias_and_its_report_is_in_mlflow(make_run: RunFactory) -> None:
    name = unique_name("pass")
    run_id = make_run(PASSING_VALIDATION, model=name)
    result = promote(run_id, "paper", gates=gates(), registered_model=name)

    assert result.report.passed, result.report.to_frame()
    assert result.promoted
    assert tracking.alias_version(name, "paper") == result.version == "1"
    assert tracking.alias_version(name, "candidate") == "1"  # other aliases untouched
    assert result.report_artifact is not None
    assert result.report_artifact.startswith("gate_reports/paper-")

    saved = _report(run_id, result.report_artifact)
    assert saved["passed"] is True
    assert saved["version"] == "1"
    assert saved["registered_model"] == name
    checks = saved["checks"]
    order = ["min_oos_trades", "min_sharpe_margin", "max_pbo", "min_deflated_sharpe", "max_drawdown", "llm_cutoff"]
    assert [c["name"] for c in checks] == [*order, "min_paper_days"]
    trades = _check(checks, "min_oos_trades")
    assert (trades["value"], trades["threshold"], trades["passed"]) == (60.0, 30, True)
    margin = _check(checks, "min_sharpe_margin")
    assert margin["value"] == pytest.approx(0.8)
    assert margin["threshold"] == 0.1
    assert margin["passed"] is True
    drawdown = _check(checks, "max_drawdown")
    assert (drawdown["value"], drawdown["threshold"], drawdown["passed"]) == (-0.12, -0.3, True)
    assert "n/a" in str(_check(checks, "llm_cutoff")["detail"])  # a trained model has no LLM cutoff
    assert saved["disabled"] == ["lookahead"]

    run = tracking.client().get_run(run_id)
    assert run.data.metrics["gate.paper.passed"] == 1.0
    assert run.data.tags["gate.paper.passed"] == "true"
    assert run.data.tags["arena.promoted.paper"] == f"{name}/1"
    version = tracking.client().get_model_version(name, "1")
    assert version.tags[PREVIOUS_TAG.format(alias="paper")] == "none"
    assert PAPER_SINCE_TAG in version.tags


def test_a_failing_gate_leaves_every_alias_and_names_the_check(make_run: RunFactory) -> None:
    name = unique_name("fail")
    run_id = make_run({**PASSING_VALIDATION, "pbo": 0.7}, model=name)
    result = promote(run_id, "paper", gates=gates(), registered_model=name)

    assert not result.promoted
    assert result.failed() == ["max_pbo"]
    assert "failed max_pbo" in result.message
    assert tracking.alias_version(name, "paper") is None
    assert tracking.alias_version(name, "candidate") == "1"
    run = tracking.client().get_run(run_id)
    assert run.data.tags["gate.paper.passed"] == "false"  # the refusal is on record too
    assert run.data.tags["gate.paper.failed"] == "max_pbo"
    assert run.data.metrics["gate.paper.max_pbo.passed"] == 0.0
    assert result.report_artifact is not None
    pbo = _check(_report(run_id, result.report_artifact)["checks"], "max_pbo")
    assert (pbo["value"], pbo["threshold"], pbo["passed"]) == (0.7, 0.5, False)


def test_a_metric_the_run_did_not_log_fails_its_gate_as_not_measured(make_run: RunFactory) -> None:
    # Strategy-validation metrics, minus the deflated Sharpe; validate_strategy logs no OOS drawdown either.
    logged = {k: v for k, v in PASSING_VALIDATION.items() if k not in ("deflated_sharpe", "wf_oos_max_drawdown")}
    run_id = make_run(logged, model=unique_name("unmeasured"))
    report = evaluate_gates(run_id, "paper", gates())
    assert report.failed() == ["min_deflated_sharpe", "max_drawdown"]
    checks = {c.name: c for c in report.checks}
    assert checks["min_deflated_sharpe"].value is None
    assert checks["min_deflated_sharpe"].detail == "not measured by this run (needs metric deflated_sharpe)"
    assert "needs metric wf_oos_max_drawdown or oof_bt_max_drawdown" in checks["max_drawdown"].detail


def test_the_training_notebooks_metric_names_are_read_too(make_run: RunFactory) -> None:
    oof = {"oof_bt_trades": 45, "oof_bt_sharpe": 0.9, "oof_buy_hold_sharpe": 1.1, "oof_bt_max_drawdown": -0.4}
    report = evaluate_gates(make_run(oof, model=unique_name("oof")), "candidate", gates())
    checks = {c.name: c for c in report.checks}
    assert checks["min_oos_trades"].passed
    assert checks["min_oos_trades"].value == 45
    assert not checks["min_sharpe_margin"].passed  # 0.9 - 1.1 = -0.2: worse than buying and holding
    assert checks["min_sharpe_margin"].value == pytest.approx(-0.2)
    assert "oof_bt_sharpe 0.900 - oof_buy_hold_sharpe 1.100" in checks["min_sharpe_margin"].detail
    assert not checks["max_drawdown"].passed
    assert "deeper than" in checks["max_drawdown"].detail
    assert "not measured" in checks["max_pbo"].detail  # the training notebook measures no PBO
    frame = report.to_frame()
    assert list(frame.columns) == ["value", "threshold", "passed", "detail"]
    assert set(frame.index[~frame["passed"]]) == set(report.failed())


def test_dry_run_writes_nothing_and_moves_nothing(make_run: RunFactory) -> None:
    name = unique_name("dry")
    run_id = make_run(PASSING_VALIDATION, model=name)
    result = promote(run_id, "paper", gates=gates(), dry_run=True)
    assert result.report.passed
    assert result.dry_run
    assert result.report_artifact is None
    assert "would promote" in result.message
    assert tracking.alias_version(name, "paper") is None
    assert not any(k.startswith("gate.") for k in tracking.client().get_run(run_id).data.tags)


def test_bad_input_is_a_promotion_error(make_run: RunFactory) -> None:
    with pytest.raises(PromotionError, match="unknown alias 'prod'"):
        promote("0" * 32, "prod", gates=gates())
    with pytest.raises(PromotionError, match="no MLflow run"):
        promote("0" * 32, "paper", gates=gates())
    with pytest.raises(PromotionError, match="registered no model version"):
        promote(make_run(PASSING_VALIDATION), "paper", gates=gates())
    both = make_run(PASSING_VALIDATION, model=(unique_name("a"), unique_name("b")))
    with pytest.raises(PromotionError, match="several models"):
        promote(both, "paper", gates=gates())
    with pytest.raises(PromotionError, match="registered no version of 'other'"):
        promote(both, "paper", gates=gates(), registered_model="other")


# ------------------------------------------------------------------------------------------------------- rollback
def test_rollback_walks_back_through_promotions_then_says_there_is_nothing_left(make_run: RunFactory) -> None:
    name = unique_name("roll")
    first = make_run(PASSING_VALIDATION, model=name)
    second = make_run(PASSING_VALIDATION, model=name)
    assert promote(first, "paper", gates=gates()).promoted
    result = promote(second, "paper", gates=gates())
    assert (result.version, result.previous) == ("2", "1")
    assert tracking.alias_version(name, "paper") == "2"
    mlc = tracking.client()
    assert mlc.get_model_version(name, "2").tags[PREVIOUS_TAG.format(alias="paper")] == "1"
    assert PAPER_SINCE_TAG not in mlc.get_model_version(name, "1").tags  # only the holder is "on paper"

    back = rollback(name, "paper")
    assert (back.from_version, back.to_version) == ("2", "1")
    assert tracking.alias_version(name, "paper") == "1"
    assert PAPER_SINCE_TAG in mlc.get_model_version(name, "1").tags
    with pytest.raises(RollbackError, match="first recorded holder; nothing to roll back to"):
        rollback(name, "paper")
    assert tracking.alias_version(name, "paper") == "1"

    history = alias_history(name, "paper")
    assert [(h["action"], h["version"], h["previous"]) for h in history] == [
        ("promote", "1", None),
        ("promote", "2", "1"),
        ("rollback", "1", "2"),
    ]
    assert history[0]["by_run"] == first
    assert HISTORY_TAG.format(alias="paper") in mlc.get_registered_model(name).tags


def test_rollback_without_history_or_after_a_manual_move_is_a_clear_error(make_run: RunFactory) -> None:
    name = unique_name("manual")
    make_run(PASSING_VALIDATION, model=name)
    with pytest.raises(RollbackError, match="no promotion history"):
        rollback(name, "paper")
    run_id = make_run(PASSING_VALIDATION, model=name)
    assert promote(run_id, "paper", gates=gates()).promoted
    tracking.set_alias(name, "paper", "1")  # moved by hand, behind promote's back
    with pytest.raises(RollbackError, match="moved outside arena promote"):
        rollback(name, "paper")
    with pytest.raises(PromotionError, match="no registered model 'missing'"):
        rollback("missing", "paper")


# ---------------------------------------------------------------------------------------------------- live, paper
def test_live_needs_paper_first_and_a_paper_record(make_run: RunFactory, tmp_path: Path) -> None:
    """`live` reads the arena ledger, not the run: no ledger, no record (tests/promotion/test_live_gate.py has more)."""
    name = unique_name("live")
    run_id = make_run(PASSING_VALIDATION, model=name)
    ledger = f"sqlite:///{tmp_path / 'arena.db'}"
    refused = promote(run_id, "live", gates=gates(), registered_model=name, paper_db_url=ledger)
    assert refused.failed()[:2] == ["holds_paper", "paper_record"]
    assert "min_paper_days" in refused.failed()
    assert "live needs the version to hold paper first" in refused.report.checks[0].detail
    assert tracking.alias_version(name, "live") is None

    assert promote(run_id, "paper", gates=gates()).promoted
    version = tracking.client().get_model_version(name, "1")
    assert PAPER_SINCE_TAG in version.tags  # still stamped (informational); the days are counted in the ledger
    too_soon = promote(run_id, "live", gates=gates(), paper_db_url=ledger)
    assert "holds_paper" not in too_soon.failed()
    assert too_soon.failed()[0] == "paper_record"
    assert "0 paper days" in too_soon.report.to_frame().loc["min_paper_days", "detail"]
    assert tracking.alias_version(name, "live") is None


# --------------------------------------------------------------------------------------------- look-ahead and LLMs
def test_the_lookahead_gate_passes_for_the_models_registered_features(make_run: RunFactory) -> None:
    run_id = make_run(PASSING_VALIDATION, model=unique_name("lookahead"))
    setting = {"symbol": "ETH/USDT", "bars": 400, "cuts": 3}
    report = evaluate_gates(run_id, "paper", gates(lookahead=setting))
    check = next(c for c in report.checks if c.name == "lookahead")
    assert check.passed, check.detail
    assert check.value == 0.0
    assert check.detail.startswith(f"all {len(FEATURES)} features identical on 3 cuts of the latest 400 ETH/USDT")


def test_the_lookahead_gate_cannot_pass_without_a_model(make_run: RunFactory) -> None:
    report = evaluate_gates(make_run(PASSING_VALIDATION), "paper", gates(lookahead={}))
    check = next(c for c in report.checks if c.name == "lookahead")
    assert not check.passed
    assert "no model version" in check.detail


@pytest.mark.parametrize(
    ("params", "passed", "detail"),
    [
        ({"llm.training_cutoff": "2024-06-01", "window_start": "2024-09-01"}, True, "after the training cutoff"),
        ({"llm.training_cutoff": "2024-06-01", "window_start": "2024-06-01"}, False, "on or before the training"),
        ({"training_cutoff": "2024-06-01"}, False, "not measured: no test-window start"),
        ({"provider": "openai", "start": "2024-09-01"}, False, "not measured: an LLM run without"),
        ({"start": "2024-09-01"}, True, "n/a: no LLM in this run"),
    ],
)
def test_the_llm_cutoff_gate(make_run: RunFactory, params: dict[str, str], passed: bool, detail: str) -> None:
    report = evaluate_gates(make_run({}, params=params), "paper", gates(lookahead={}))
    check = {c.name: c for c in report.checks}
    assert check["llm_cutoff"].passed is passed
    assert detail in check["llm_cutoff"].detail
    if "llm.training_cutoff" in params:
        assert check["lookahead"].passed
        assert "n/a" in check["lookahead"].detail
