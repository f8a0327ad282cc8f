"""`paper -> live` is judged on the version's paper record in the arena ledger, after `min_paper_days` of it.

The paper ledgers here are FIXTURES: hand-made through the `ArenaStore` API (`create_run`, `commit_round`) in the
shape a scheduled paper job writes (run `paper-job-<job>`, a model agent whose `run_agents.model` is
`models:/<name>@paper`, a `buy_and_hold` baseline, one round per hourly bar with its wall-clock start), with
equity paths chosen to pass or fail the gates. The promotion times come from a simulated clock, so the alias's
promotion history and the rounds' wall-clock starts line up as they would on a real job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arena_lib.analytics.metrics import max_drawdown, sharpe
from arena_lib.arena import schema as t
from arena_lib.arena.store import AccountState, ArenaStore, RoundWrite
from arena_lib.core.clock import SimulatedClock
from arena_lib.workflow import tracking
from arena_lib.workflow.promotion import PromotionError, evaluate_gates, promote, rollback
from arena_lib.workflow.tracking import register_trained_model
from tests.promotion.conftest import EXPERIMENT, PASSING_VALIDATION, gates, unique_name

T0 = pd.Timestamp("2031-03-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
START = T0 + HOUR  # the fixtures' first bar close: an hour after the first paper promotion
CASH = 10_000.0
PPY = pd.Timedelta(days=365.25) / HOUR  # hourly bars
GOOD = (0.001, 0.004)  # per-bar mean and standard deviation of the model's returns on a good record
BAD = (-0.0012, 0.004)
BASELINE = (0.0001, 0.004)

GREAT_BACKTEST = {**PASSING_VALIDATION, "wf_oos_sharpe": 4.0, "deflated_sharpe": 0.999, "wf_oos_max_drawdown": -0.02}


def _returns(n: int, mean_sd: tuple[float, float], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean_sd[0], mean_sd[1], n)


def _curve(returns: np.ndarray) -> np.ndarray:
    return CASH * np.concatenate([[1.0], np.cumprod(1.0 + returns)])


@dataclass
class Stint:
    """`bars` hourly rounds whose model-agent returns are drawn from `mean_sd` (a FIXTURE's equity path)."""

    bars: int
    mean_sd: tuple[float, float]
    seed: int = 1


def paper_ledger(
    db: Path,
    name: str,
    stints: Sequence[Stint],
    *,
    start: pd.Timestamp = START,
    run_id: str = "paper-job-main",
    model_uri: str | None = None,
    entry_every: int = 8,
) -> dict[str, np.ndarray]:
    """FIXTURE: write a paper job's ledger through the store API; returns each agent's equity by round.

    Round k closes bar `start + k h` (default: an hour after `T0`, when the tests promote to paper) and starts
    playing one minute later (its wall clock). The model agent (`<name>@paper`, loading `model_uri`, default
    `models:/<name>@paper`) enters a position every `entry_every`
    rounds; `buy_and_hold` is the run's baseline agent.
    """
    model_returns = np.concatenate([_returns(s.bars, s.mean_sd, s.seed) for s in stints])
    n = len(model_returns)
    equity = {
        f"{name}@paper": _curve(model_returns),
        "buy_and_hold": _curve(_returns(n, BASELINE, 99)),
    }
    store = ArenaStore(f"sqlite:///{db}")
    try:
        run = t.RunRow(
            run_id=run_id,
            created_at=start.value,
            mode="paper",
            status="running",
            config={},
            spec_hash="fixture",
            data_hash="fixture",
            symbols=["ETH/USDT"],
            timeframe="1h",
            start=None,
            end=None,
            git_sha="",
            last_round=-1,
            message="",
        )
        agents = [
            t.RunAgentRow(
                run_id=run_id,
                agent=f"{name}@paper",
                kind="model",
                model=model_uri or f"models:/{name}@paper",
                initial_cash=CASH,
                params={"model": name, "alias": "paper"},
            ),
            t.RunAgentRow(run_id=run_id, agent="buy_and_hold", kind="quant", model="buy_and_hold", initial_cash=CASH),
        ]
        accounts = {a.agent: AccountState(a.agent, -1, CASH, 0.0, 0.0, 0.0, {}, [], {}) for a in agents}
        store.create_run(run, agents, list(accounts.values()))
        seq = 0
        for k in range(n + 1):
            ts = (start + k * HOUR).value
            fills = []
            if k % entry_every == 1:
                seq += 1
                agent = f"{name}@paper"
                fills.append(
                    t.FillRow(
                        fill_id=f"{run_id}/{agent}/{k}/f",
                        order_id=f"{run_id}/{agent}/{k}",
                        run_id=run_id,
                        agent=agent,
                        round_no=k,
                        seq=seq,
                        symbol="ETH/USDT",
                        ts=ts,
                        side="buy",
                        kind="entry",
                        quantity=0.1,
                        price=3000.0,
                        fee=0.15,
                        realized_pnl=0.0,
                        funding=0.0,
                        leverage=1.0,
                        margin=300.0,
                    )
                )
            for acc in accounts.values():
                acc.last_round = k
            store.commit_round(
                RoundWrite(
                    run_id=run_id,
                    round_no=k,
                    ts=ts,
                    snapshot_hash=f"{run_id}-{k}".encode().hex()[:64].ljust(64, "0"),
                    snapshot_content={},
                    wall_started=ts + pd.Timedelta(minutes=1).value,
                    wall_s=0.5,
                    accounts=list(accounts.values()),
                    fills=fills,
                    equity=[
                        t.EquityRow(
                            run_id=run_id,
                            agent=a,
                            round_no=k,
                            ts=ts,
                            cash=float(e[k]),
                            equity=float(e[k]),
                            gross_exposure=0.0,
                        )
                        for a, e in equity.items()
                    ],
                )
            )
    finally:
        store.engine.dispose()
    return equity


def make_version(name: str, metrics: Mapping[str, float], trained: Any, threshold: float = 0.0) -> str:
    """Log a run with `metrics` and register `trained`'s model as a new version of `name` (with its threshold)."""
    with tracking.start_run(EXPERIMENT) as run:
        tracking.log_metrics(metrics)
        register_trained_model(trained[0], trained[1], name, alias="candidate", trading_rule={"threshold": threshold})
    return str(run.info.run_id)


def _checks(report: Any) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def _at(clock: SimulatedClock, when: pd.Timestamp) -> SimulatedClock:
    clock.advance_to(when.value)
    return clock


# ------------------------------------------------------------------------------------------------------ passing
def test_a_good_paper_record_after_the_minimum_days_goes_live(trained: Any, tmp_path: Path) -> None:
    name = unique_name("live_ok")
    run_id = make_version(name, PASSING_VALIDATION, trained)
    clock = SimulatedClock(T0.value)
    assert promote(run_id, "paper", gates=gates(), clock=clock).promoted
    db = tmp_path / "arena.db"
    equity = paper_ledger(db, name, [Stint(20 * 24, GOOD)])

    result = promote(
        run_id, "live", gates=gates(), clock=_at(clock, T0 + pd.Timedelta(days=21)), paper_db_url=f"sqlite:///{db}"
    )

    assert result.promoted, result.report.to_frame()
    assert tracking.alias_version(name, "live") == "1"
    checks = _checks(result.report)
    assert [c.name for c in result.report.checks] == [
        "holds_paper",
        "paper_record",
        "min_oos_trades",
        "min_sharpe_margin",
        "max_pbo",
        "min_deflated_sharpe",
        "max_drawdown",
        "llm_cutoff",
        "min_paper_days",
    ]
    # The figures are the analytics' own on the version's bars (here: all of them, it held paper throughout).
    curve = pd.Series(equity[f"{name}@paper"], index=pd.date_range(START, periods=20 * 24 + 1, freq="h"))
    base = pd.Series(equity["buy_and_hold"], index=curve.index)
    margin = sharpe(curve, PPY) - sharpe(base, PPY)
    assert checks["min_sharpe_margin"].value == pytest.approx(margin)
    assert "paper_sharpe" in checks["min_sharpe_margin"].detail
    assert checks["max_drawdown"].value == pytest.approx(max_drawdown(curve))
    assert checks["min_oos_trades"].value == 60  # an entry every 8th round of 480
    assert checks["min_paper_days"].value == pytest.approx(20.0)
    assert checks["paper_record"].value == 480
    assert "run paper-job-main, agent" in checks["paper_record"].detail
    assert "n/a on a paper record" in checks["max_pbo"].detail

    # The report in MLflow carries the paper record it was judged on.
    assert result.report_artifact is not None
    saved = json.loads(Path(tracking.client().download_artifacts(run_id, result.report_artifact)).read_text())
    record = saved["paper_record"]["record"]
    assert (record["run_id"], record["version"], record["scored_bars"]) == ("paper-job-main", "1", 480)
    assert record["attributed_by"] == "alias history"
    assert record["metrics"]["paper_sharpe"] == pytest.approx(sharpe(curve, PPY))
    assert tracking.client().get_run(run_id).data.tags["gate.live.passed"] == "true"


def test_the_ledger_url_comes_from_the_gates_file_or_the_arena_default(
    trained: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("live_url")
    run_id = make_version(name, PASSING_VALIDATION, trained)
    clock = SimulatedClock(T0.value)
    assert promote(run_id, "paper", gates=gates(), clock=clock).promoted
    db = tmp_path / "ledger.db"
    paper_ledger(db, name, [Stint(15 * 24, GOOD)])
    _at(clock, T0 + pd.Timedelta(days=16))

    configured = gates(paper_ledger={"db_url": f"sqlite:///{db}", "job": "main"})
    first_report = evaluate_gates(run_id, "live", configured, clock=clock)
    assert first_report.passed, first_report.to_frame().to_string()
    other_job = gates(paper_ledger={"db_url": f"sqlite:///{db}", "job": "other"})
    assert (
        "no paper run paper-job-other"
        in _checks(evaluate_gates(run_id, "live", other_job, clock=clock))["paper_record"].detail
    )

    monkeypatch.setenv("ARENA_DB_URL", f"sqlite:///{db}")  # the arena store's default URL
    assert evaluate_gates(run_id, "live", gates(), clock=clock).passed


# ------------------------------------------------------------------------------------------------------ refusals
def test_too_few_paper_days_is_refused_naming_the_days(trained: Any, tmp_path: Path) -> None:
    name = unique_name("live_short")
    run_id = make_version(name, PASSING_VALIDATION, trained)
    clock = SimulatedClock(T0.value)
    assert promote(run_id, "paper", gates=gates(), clock=clock).promoted
    db = tmp_path / "arena.db"
    paper_ledger(db, name, [Stint(10 * 24, GOOD)])

    # Thirty days after the paper promotion, but only ten days of paper bars: the ledger decides, not the tag.
    result = promote(
        run_id, "live", gates=gates(), clock=_at(clock, T0 + pd.Timedelta(days=30)), paper_db_url=f"sqlite:///{db}"
    )

    assert not result.promoted
    assert result.failed() == ["min_paper_days"]
    check = _checks(result.report)["min_paper_days"]
    assert (check.value, check.threshold) == (pytest.approx(10.0), 14)
    assert "10.0 days < 14 of paper bars traded by version 1" in check.detail
    assert "failed min_paper_days" in result.message
    assert tracking.alias_version(name, "live") is None
    assert tracking.client().get_run(run_id).data.tags["gate.live.failed"] == "min_paper_days"


def test_no_paper_run_is_refused_naming_each_unmeasured_check(
    trained: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("live_none")
    run_id = make_version(name, GREAT_BACKTEST, trained)
    assert promote(run_id, "paper", gates=gates()).promoted

    monkeypatch.setenv("ARENA_DB_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    result = promote(run_id, "live", gates=gates())
    assert not result.promoted
    assert result.failed() == [
        "paper_record",
        "min_oos_trades",
        "min_sharpe_margin",
        "min_deflated_sharpe",
        "max_drawdown",
        "min_paper_days",
    ]
    checks = _checks(result.report)
    assert "no arena ledger at" in checks["paper_record"].detail
    assert not (tmp_path / "missing.db").exists()  # looking did not create an empty ledger
    assert checks["max_drawdown"].detail == "not measured on the paper record (needs metric paper_max_drawdown)"

    # A ledger whose paper runs never traded this model: refused the same way.
    db = tmp_path / "arena.db"
    paper_ledger(db, "someone_else", [Stint(20 * 24, GOOD)])
    other = promote(run_id, "live", gates=gates(), paper_db_url=f"sqlite:///{db}")
    assert "paper_record" in other.failed()
    assert f"has an agent trading {name} version 1" in _checks(other.report)["paper_record"].detail


def test_a_bad_paper_record_fails_its_gates_with_the_figures(trained: Any, tmp_path: Path) -> None:
    name = unique_name("live_bad")
    run_id = make_version(name, PASSING_VALIDATION, trained)
    clock = SimulatedClock(T0.value)
    assert promote(run_id, "paper", gates=gates(), clock=clock).promoted
    db = tmp_path / "arena.db"
    equity = paper_ledger(db, name, [Stint(20 * 24, BAD)])

    result = promote(
        run_id, "live", gates=gates(), clock=_at(clock, T0 + pd.Timedelta(days=21)), paper_db_url=f"sqlite:///{db}"
    )

    assert not result.promoted
    assert result.failed() == ["min_sharpe_margin", "min_deflated_sharpe", "max_drawdown"]
    checks = _checks(result.report)
    curve = pd.Series(equity[f"{name}@paper"], index=pd.date_range(START, periods=20 * 24 + 1, freq="h"))
    dd = max_drawdown(curve)
    assert dd < -0.3
    assert checks["max_drawdown"].value == pytest.approx(dd)
    assert f"paper_max_drawdown {dd:.1%} is deeper than the -30.0% limit" in checks["max_drawdown"].detail
    assert checks["min_sharpe_margin"].detail.startswith(
        f"paper_sharpe {sharpe(curve, PPY):.3f} - paper_best_baseline_sharpe"
    )
    assert checks["min_deflated_sharpe"].detail.startswith("paper_probabilistic_sharpe 0.0")
    assert tracking.alias_version(name, "live") is None
    run = tracking.client().get_run(run_id)
    assert run.data.tags["gate.live.failed"] == "min_sharpe_margin,min_deflated_sharpe,max_drawdown"
    assert run.data.metrics["gate.live.max_drawdown.passed"] == 0.0


def test_the_training_backtest_does_not_decide_live(trained: Any, tmp_path: Path) -> None:
    db = tmp_path / "arena.db"
    # A version with a great backtest and a bad paper record is refused...
    great = unique_name("live_great_backtest")
    run_id = make_version(great, GREAT_BACKTEST, trained)
    clock = SimulatedClock(T0.value)
    assert promote(run_id, "paper", gates=gates(), clock=clock).promoted
    assert evaluate_gates(run_id, "paper", gates()).passed  # the backtest clears every gate
    paper_ledger(db, great, [Stint(20 * 24, BAD)], run_id="paper-job-a")
    refused = evaluate_gates(
        run_id, "live", gates(), clock=_at(clock, T0 + pd.Timedelta(days=21)), paper_db_url=f"sqlite:///{db}"
    )
    assert not refused.passed
    assert {"min_sharpe_margin", "max_drawdown"} <= set(refused.failed())
    details = " ".join(c.detail for c in refused.checks)
    assert "wf_oos_sharpe" not in details
    assert "oos_trades" not in details

    # ...and one whose backtest would fail every gate goes live on a good paper record.
    poor = unique_name("live_poor_backtest")
    poor_run = make_version(poor, {"oos_trades": 3, "wf_oos_sharpe": -1.0, "best_baseline_oos_sharpe": 0.5}, trained)
    tracking.set_alias(poor, "paper", "1")  # by hand: the backtest would not have passed `paper`
    clock = SimulatedClock(T0.value)
    tracking.client().set_registered_model_tag(
        poor,
        "arena.history.paper",
        json.dumps([{"action": "promote", "version": "1", "previous": None, "at": T0.isoformat()}]),
    )
    paper_ledger(db, poor, [Stint(20 * 24, GOOD)], run_id="paper-job-b")
    assert not evaluate_gates(poor_run, "paper", gates()).passed
    report = evaluate_gates(
        poor_run, "live", gates(), clock=_at(clock, T0 + pd.Timedelta(days=21)), paper_db_url=f"sqlite:///{db}"
    )
    assert report.passed, report.to_frame()


def test_must_beat_is_not_for_live(trained: Any) -> None:
    run_id = make_version(unique_name("live_beat"), PASSING_VALIDATION, trained)
    with pytest.raises(PromotionError, match="live is judged on the paper record alone"):
        evaluate_gates(run_id, "live", gates(), must_beat="live")


# ------------------------------------------------------------------------------------------- which bars count
def test_only_the_bars_traded_by_the_version_count(trained: Any, tmp_path: Path) -> None:
    """The paper alias moves mid-run: each version is judged on its own bars of the one ledger."""
    name = unique_name("live_moved")
    first = make_version(name, PASSING_VALIDATION, trained)
    second = make_version(name, PASSING_VALIDATION, trained)
    clock = SimulatedClock(T0.value)
    assert promote(first, "paper", gates=gates(), clock=clock).promoted
    moved = START + pd.Timedelta(days=20)  # round 480 starts one minute later
    assert promote(second, "paper", gates=gates(), clock=_at(clock, moved)).promoted
    db = tmp_path / "arena.db"
    # Twenty good days of version 1, then ten bad ones of version 2, in one run, under one agent name.
    paper_ledger(db, name, [Stint(20 * 24, GOOD), Stint(10 * 24, BAD, seed=2)])
    url = f"sqlite:///{db}"
    now = _at(clock, T0 + pd.Timedelta(days=31))

    report = evaluate_gates(second, "live", gates(), clock=now, paper_db_url=url)
    checks = _checks(report)
    assert "min_paper_days" in report.failed()  # 30 days in the run, not ten of them version 2's
    assert checks["min_paper_days"].value == pytest.approx(10.0 - 1 / 24, abs=1e-4)
    assert "min_sharpe_margin" in report.failed()  # its own bad bars, not version 1's good ones
    assert checks["min_sharpe_margin"].detail.startswith("paper_sharpe -")
    detail = checks["paper_record"].detail
    assert "traded by version 2" in detail
    assert "480 other versions" in detail  # version 1's rounds 0..479
    assert "near an alias move" in detail  # round 480 started one minute after the move: credited to nobody

    # Version 1 no longer holds paper; its own (good) bars would pass every record gate.
    old = evaluate_gates(first, "live", gates(), clock=now, paper_db_url=url)
    assert old.failed() == ["holds_paper"]
    assert _checks(old)["min_paper_days"].value == pytest.approx(20.0 - 1 / 24, abs=1e-4)
    assert "near an alias move" not in _checks(old)["paper_record"].detail


def test_a_pinned_version_uri_is_credited_without_the_alias_history(trained: Any, tmp_path: Path) -> None:
    name = unique_name("live_pinned")
    run_id = make_version(name, PASSING_VALIDATION, trained)
    tracking.set_alias(name, "paper", "1")  # no promotion history at all
    db = tmp_path / "arena.db"
    paper_ledger(db, name, [Stint(15 * 24, GOOD)], model_uri=f"models:/{name}/1")
    report = evaluate_gates(run_id, "live", gates(), paper_db_url=f"sqlite:///{db}")
    assert report.passed, report.to_frame()
    assert "pinned version URI" in _checks(report)["paper_record"].detail

    # The same ledger through the alias, with no history: no bar can be credited.
    db2 = tmp_path / "alias.db"
    paper_ledger(db2, name, [Stint(15 * 24, GOOD)])
    unknown = evaluate_gates(run_id, "live", gates(), paper_db_url=f"sqlite:///{db2}")
    assert "paper_record" in unknown.failed()
    assert "no bar of it is attributable to version 1" in _checks(unknown)["paper_record"].detail


# ------------------------------------------------------------------------------------------------------ rollback
def test_rollback_of_live_reaches_the_next_agent_build(trained: Any, tmp_path: Path) -> None:
    """`arena rollback --alias live` moves @live back, and the job's next bar (which rebuilds its agents) loads it."""
    from arena_lib.agents.model_agent import ModelAgent
    from arena_lib.agents.registry import build_agent
    from arena_lib.core.spec import AgentSpec

    name = unique_name("live_rollback")
    first = make_version(name, PASSING_VALIDATION, trained, threshold=0.05)
    second = make_version(name, PASSING_VALIDATION, trained, threshold=0.15)
    db = tmp_path / "arena.db"
    url = f"sqlite:///{db}"
    clock = SimulatedClock(T0.value)
    assert promote(first, "paper", gates=gates(), clock=clock).promoted
    assert not promote(
        first, "live", gates=gates(), clock=_at(clock, T0 + pd.Timedelta(days=15)), paper_db_url=url
    ).promoted
    paper_ledger(db, name, [Stint(15 * 24, GOOD), Stint(15 * 24, GOOD, seed=3)])  # no ledger until now: refused
    assert promote(first, "live", gates=gates(), clock=clock, paper_db_url=url).promoted
    assert promote(second, "paper", gates=gates(), clock=_at(clock, START + pd.Timedelta(days=15))).promoted
    assert promote(
        second, "live", gates=gates(), clock=_at(clock, T0 + pd.Timedelta(days=31)), paper_db_url=url
    ).promoted
    assert tracking.alias_version(name, "live") == "2"

    spec = AgentSpec(agent="model", params={"model": name, "alias": "live"}, label=f"{name}@live")
    now = build_agent(spec)  # what `build_roster` does for this config entry at every bar of a job
    assert isinstance(now, ModelAgent)
    assert now.threshold == pytest.approx(0.15)  # what the job trades now: version 2

    back = rollback(name, "live")
    assert (back.from_version, back.to_version) == ("2", "1")
    assert tracking.alias_version(name, "live") == "1"
    agent = build_agent(spec)  # the job's next bar builds its agents again
    assert isinstance(agent, ModelAgent)
    assert agent.threshold == pytest.approx(0.05)  # version 1's trading rule: version 1 is loaded
    assert agent.model_uri == f"models:/{name}@live"
