"""A retrained challenger must beat the version holding `paper` on the same out-of-sample Sharpe to replace it."""

from __future__ import annotations

from arena_lib.workflow import tracking
from arena_lib.workflow.promotion import promote
from tests.promotion.conftest import PASSING_VALIDATION, RunFactory, gates, unique_name


def test_a_challenger_replaces_paper_only_when_it_beats_the_incumbent(make_run: RunFactory) -> None:
    name = unique_name("challenger")
    incumbent = make_run(PASSING_VALIDATION, model=name)
    first = promote(incumbent, "paper", gates=gates(), must_beat="paper")
    assert first.promoted
    assert first.report.to_frame().loc["beats_paper", "detail"].endswith("nothing to beat")

    weaker = make_run({**PASSING_VALIDATION, "wf_oos_sharpe": 1.2}, model=name)
    lost = promote(weaker, "paper", gates=gates(), must_beat="paper")
    assert not lost.promoted
    assert lost.report.failed() == ["beats_paper"]
    assert "wf_oos_sharpe 1.200 <= 1.400 of version 1" in lost.report.to_frame().loc["beats_paper", "detail"]
    assert tracking.alias_version(name, "paper") == "1"

    stronger = make_run({**PASSING_VALIDATION, "wf_oos_sharpe": 1.9}, model=name)
    won = promote(stronger, "paper", gates=gates(), must_beat="paper")
    assert won.promoted
    assert won.report.to_frame().loc["beats_paper", "value"] == 1.9
    assert tracking.alias_version(name, "paper") == "3"


def test_without_must_beat_there_is_no_challenger_check(make_run: RunFactory) -> None:
    name = unique_name("plain")
    run = make_run(PASSING_VALIDATION, model=name)
    result = promote(run, "paper", gates=gates(), dry_run=True)
    assert "beats_paper" not in result.report.to_frame().index
