"""The ledger side of circuit breakers: state changes as `breakers` rows, what the monitor and the CLI read,
and the operator's reset. The state machine itself is `arena_lib.engine.breakers`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from arena_lib.arena import schema as t
from arena_lib.arena.store import ArenaStore
from arena_lib.core.config import BreakerSettings
from arena_lib.engine.breakers import ACTIVE, FRAME_COLUMNS, PORTFOLIO, BreakerBook, BreakerChange


def change_row(change: BreakerChange, run_id: str) -> t.BreakerRow:
    """The row a round (or an operator's reset) appends to the `breakers` table for one state change."""
    s = change.status
    return t.BreakerRow(
        run_id=run_id,
        agent=change.agent,
        state=s.state,
        breaker=s.breaker,
        reason=s.reason,
        since_ns=s.since_ns,
        round_no=s.round_no,
        by=change.by,
        trips={k: v.to_dict() for k, v in change.trips.items()},
        anchor_round=change.anchor_round,
        anchor_equity=change.anchor_equity,
    )


def breaker_frame(store: ArenaStore, run_id: str) -> pd.DataFrame:
    """Every account's breaker state, plus the portfolio breaker as agent `"*"` (the last row).

    Columns: agent, state (active | reducing | halted), breaker (the trip that causes the state, "" when active),
    reason, since (UTC Timestamp; NaT for a scope that never changed), round_no (the round the state began; <NA>
    when it never changed). An account's state includes the portfolio breaker's. Two small queries: the run's
    agents and the latest breaker row of each scope.
    """
    agents = sorted(r.agent for r in store.run_agents(run_id))
    if not agents:
        store.get_run(run_id)  # an unknown run raises KeyError naming the recent ones
    latest = {r.agent: r for r in store.latest_breakers(run_id)}
    rows: list[dict[str, Any]] = []
    for a in [*agents, PORTFOLIO]:
        r = latest.get(a)
        if r is None:
            rows.append({"agent": a, "state": ACTIVE, "breaker": "", "reason": "", "since": None, "round_no": None})
        else:
            rows.append(
                {
                    "agent": a,
                    "state": r.state,
                    "breaker": r.breaker,
                    "reason": r.reason,
                    "since": r.since_ns,
                    "round_no": r.round_no,
                }
            )
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame["since"] = pd.to_datetime(frame["since"].astype("Int64"), unit="ns", utc=True)
    frame["round_no"] = frame["round_no"].astype("Int64")
    return frame


def reset_breakers(
    store: ArenaStore, run_id: str, agent: str | None = None, *, by: str, reason: str = "", at_ns: int
) -> pd.DataFrame:
    """Re-arm a run's breakers (one account, `"*"` for the portfolio, or `None` for all); returns `breaker_frame`.

    The peaks restart from the equity of the run's last committed round. A job that is running picks the reset
    up before its next decision round (it polls for resets only while one of its accounts is tripped); a
    stopped run picks it up when it resumes.
    """
    if not by:
        raise ValueError("a breaker reset needs `by` (who reset it) for the audit trail")
    run = store.get_run(run_id)
    members = store.run_agents(run_id)
    agents = sorted(r.agent for r in members)
    if not agents:
        raise ValueError(f"run {run_id!r} has no accounts to reset")
    settings = BreakerSettings.model_validate((run.config or {}).get("breakers") or {})
    book = BreakerBook(settings, agents, float(members[0].initial_cash))
    book.load_states(store.latest_breakers(run_id))
    last = store.equity_at(run_id, run.last_round)
    for name, eq in last.items():
        if name in book.watch:
            book.watch[name].last = eq
    if last:
        book.portfolio.last = math.fsum(last.get(a, book.watch[a].last) for a in agents)
    changes = book.reset(agent, round_no=run.last_round, at_ns=at_ns, by=by, reason=reason)
    store.add_breakers([change_row(c, run_id) for c in changes])
    return breaker_frame(store, run_id)
