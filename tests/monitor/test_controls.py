"""The monitor's kill switch: armed only by a configured token that the operator repeats; the token never persists."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from arena_lib.arena import schema as t
from arena_lib.arena.store import ArenaStore
from arena_lib.core.clock import SimulatedClock
from arena_lib.monitor.controls import (
    ACTOR,
    TOKEN_ENV,
    ControlsDisabledError,
    InvalidTokenError,
    configured_token,
    controls_enabled,
    halt_all,
    resume_all,
    switch_state,
    token_matches,
)

TOKEN = "s3cret-operator-token-42"
ENV = {TOKEN_ENV: TOKEN}
T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC


@pytest.fixture
def store(empty_store_url: str) -> ArenaStore:
    return ArenaStore(empty_store_url)


def _halt_rows(store: ArenaStore) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.HaltRow.__table__)).all()]


def test_without_the_variable_the_switch_is_off_and_refuses(store: ArenaStore) -> None:
    for env in ({}, {TOKEN_ENV: ""}, {TOKEN_ENV: "   "}):
        assert configured_token(env) is None
        assert controls_enabled(env) is False
        assert token_matches("anything", env) is False
        with pytest.raises(ControlsDisabledError, match="read-only"):
            halt_all(store, "anything", "test", env=env)
        with pytest.raises(ControlsDisabledError):
            resume_all(store, "", env=env)
    assert switch_state(store) is None
    assert _halt_rows(store) == []


def test_token_comparison(store: ArenaStore) -> None:
    assert controls_enabled(ENV)
    assert token_matches(TOKEN, ENV)
    assert token_matches(f"  {TOKEN}\n", ENV)  # pasted with blanks
    for wrong in ("", None, TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert token_matches(wrong, ENV) is False


def test_a_wrong_token_writes_nothing_and_the_message_leaks_nothing(store: ArenaStore) -> None:
    with pytest.raises(InvalidTokenError) as err:
        halt_all(store, "guess", "test", env=ENV)
    assert TOKEN not in str(err.value)
    assert "guess" not in str(err.value)
    assert _halt_rows(store) == []


def test_halt_and_resume_record_the_monitor_not_the_token(store: ArenaStore) -> None:
    clock = SimulatedClock(T0)
    state = halt_all(store, TOKEN, "  exchange\nincident  ", clock=clock, env=ENV)
    assert (state.halted, state.reason, state.by, state.at_ns) == (True, "exchange incident", ACTOR, T0)
    assert switch_state(store) == state
    clock.advance_to(T0 + 60_000_000_000)
    resumed = resume_all(store, TOKEN, clock=clock, env=ENV)
    assert (resumed.halted, resumed.by, resumed.at_ns) == (False, ACTOR, T0 + 60_000_000_000)
    assert switch_state(store) == resumed
    assert all(TOKEN not in str(v) for row in _halt_rows(store) for v in row)


def test_a_halt_needs_a_reason_without_the_token(store: ArenaStore) -> None:
    with pytest.raises(ValueError, match="say why"):
        halt_all(store, TOKEN, "   ", clock=SimulatedClock(T0), env=ENV)
    with pytest.raises(ValueError, match="contains the operator token") as err:
        halt_all(store, TOKEN, f"halting, token {TOKEN}", clock=SimulatedClock(T0), env=ENV)
    assert TOKEN not in str(err.value)
    with pytest.raises(ValueError, match="characters"):
        halt_all(store, TOKEN, "x" * 501, clock=SimulatedClock(T0), env=ENV)
    assert _halt_rows(store) == []
