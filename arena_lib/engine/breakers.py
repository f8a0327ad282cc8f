"""Circuit breakers on arena accounts: per-agent drawdown, portfolio drawdown and daily loss.

An account trades in one of three states (NautilusTrader's trading states):

- `active`: decisions go to the RiskEngine as usual;
- `reducing`: only decisions that close a position pass; an entry is rejected with the breaker's verdict, e.g.
  "circuit breaker REDUCING: agent drawdown 10.4% >= 10% (...) since 2025-03-01 05:00 UTC - closes only";
- `halted`: no new orders at all. The agent is not even asked (no LLM cost); the ledger records holds with
  source "breaker". Engine exits (stops, take-profits, liquidations, invalidations) still settle, and orders queued
  before the trip still fill: a state applies to decisions taken after it.

Three breakers (thresholds and actions in `BreakerSettings`; a threshold of None disables one):

- `agent_drawdown`: an account's equity below its running peak (from its initial cash). Sticky until an operator
  resets it (`reset_breakers`, `arena breakers reset`); the peak then restarts from the current equity.
- `portfolio_drawdown`: the sum of every account's equity below its running peak. It applies to every account
  and is sticky the same way. In the ledger and in `breaker_frame` its scope is the agent `"*"` (PORTFOLIO).
- `daily_loss`: an account's equity below its equity at 00:00 UTC (the last bar close at or before midnight, or
  the initial cash on the run's first day). It clears by itself on the first bar of the next UTC day.

Breakers are evaluated on every bar from the bar-close equity, after the bar's decisions, so a trip applies from
the next decision. An account's effective state is the most severe of its own trips and the portfolio's (the
earliest trip wins a tie). `BreakerBook` is the pure state machine: O(accounts) float work per bar, no I/O, and it
reports only the changes, which a ledger writes with the bar (the arena appends them to its `breakers` table in
the round's transaction; the latest row of a scope is its state). A restart rebuilds the trips from those records
and the peaks and the day's starting equity from the recorded equity. The book lives in the engine, so a backtest
can run under breakers as an arena does; the ledger side (rows, the operator's reset) is `arena.breakers`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from arena_lib.agents.base import AccountView
from arena_lib.core.config import BreakerSettings
from arena_lib.core.types import Decision, RiskVerdict
from arena_lib.engine.risk import RiskEngine

log = logging.getLogger(__name__)

ACTIVE, REDUCING, HALTED = "active", "reducing", "halted"
AGENT_DRAWDOWN, PORTFOLIO_DRAWDOWN, DAILY_LOSS = "agent_drawdown", "portfolio_drawdown", "daily_loss"
PORTFOLIO = "*"  # the portfolio breaker's scope, in the ledger and in `breaker_frame`
ENGINE = "engine"  # the `by` of rows the runner writes; an operator's reset carries the operator's name
DAY_NS = 86_400 * 1_000_000_000
FRAME_COLUMNS = ["agent", "state", "breaker", "reason", "since", "round_no"]
_SEVERITY = {ACTIVE: 0, REDUCING: 1, HALTED: 2}


class BreakerRecord(Protocol):
    """A scope's recorded state as a ledger keeps it (the arena's `schema.BreakerRow` is one)."""

    agent: str
    state: str
    reason: str
    since_ns: int
    round_no: int
    trips: Any
    anchor_round: int
    anchor_equity: float | None


@dataclass(frozen=True)
class Trip:
    """Why a scope is in its state: a breaker's trip (reducing/halted), or its last clear (active, breaker "")."""

    state: str
    breaker: str
    reason: str
    since_ns: int  # a bar close (epoch ns), or an operator reset's wall clock
    round_no: int

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "since_ns": self.since_ns, "round_no": self.round_no}

    @classmethod
    def from_dict(cls, breaker: str, d: Mapping[str, Any]) -> Trip:
        return cls(str(d["state"]), breaker, str(d.get("reason", "")), int(d["since_ns"]), int(d["round_no"]))

    def verdict(self) -> str:
        """The RiskEngine's reason when it rejects an entry under this trip."""
        if self.state == ACTIVE:
            return ""
        since = datetime.fromtimestamp(self.since_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")
        if self.state == REDUCING:
            what = "closes only"
        elif self.breaker == DAILY_LOSS:
            nxt = datetime.fromtimestamp(((self.since_ns - 1) // DAY_NS + 1) * DAY_NS / 1e9, tz=UTC)
            what = f"no new orders until {nxt:%Y-%m-%d %H:%M} UTC"
        else:
            what = "no new orders"
        return f"circuit breaker {self.state.upper()}: {self.reason} since {since} UTC - {what}"


NEVER = Trip(ACTIVE, "", "", 0, -1)  # a scope that never tripped


def most_severe(trips: Iterable[Trip]) -> Trip | None:
    """The trip that decides the state: the most severe, and the earliest among equals."""
    best: Trip | None = None
    for trip in trips:
        if best is None or (_SEVERITY[trip.state], -trip.since_ns) > (_SEVERITY[best.state], -best.since_ns):
            best = trip
    return best


@dataclass
class _Watch:
    """What one scope (an account, or the portfolio) tracks between bars."""

    last: float  # equity at the latest bar close (the initial cash before the first)
    peak: float
    trips: dict[str, Trip] = field(default_factory=dict)
    calm: Trip = NEVER  # the last clear: what an active row says
    anchor_round: int = -1  # the round whose equity restarted the peak at an operator reset (-1: the run's start)
    anchor_equity: float | None = None
    day: int | None = None  # the UTC day (days since the epoch) of the latest bar's close
    day_start: float = math.nan  # equity at 00:00 UTC of `day`


@dataclass(frozen=True)
class BreakerChange:
    """A scope's new state, with what a restart needs (the arena writes it as a `breakers` row)."""

    agent: str
    status: Trip
    trips: dict[str, Trip]
    anchor_round: int
    anchor_equity: float | None
    by: str = ENGINE


class BreakerBook:
    """The breakers of one run's accounts: feed it each bar's closing equities; it returns the state changes."""

    def __init__(self, settings: BreakerSettings, agents: Sequence[str], initial_cash: float) -> None:
        if len(set(agents)) != len(agents) or PORTFOLIO in agents:
            raise ValueError(f"breaker scopes must be unique agent names other than {PORTFOLIO!r}, got {agents}")
        if not (math.isfinite(initial_cash) and initial_cash > 0):
            raise ValueError(f"initial cash must be a positive number, got {initial_cash!r}")
        self.settings = settings
        self.agents = tuple(agents)
        self.initial_cash = initial_cash
        self.watch = {a: _Watch(initial_cash, initial_cash) for a in agents}
        total = initial_cash * len(agents)
        self.portfolio = _Watch(total, total)

    # -- reading ------------------------------------------------------------------------------------------------
    def status(self, scope: str) -> Trip:
        """A scope's effective state and its cause (an account's includes the portfolio breaker)."""
        p = self.portfolio
        if scope == PORTFOLIO:
            return most_severe(p.trips.values()) or p.calm
        w = self._scope(scope)
        trip = most_severe([*w.trips.values(), *p.trips.values()])
        if trip is not None:
            return trip
        return w.calm if w.calm.since_ns >= p.calm.since_ns else p.calm

    def gate(self, agent: str) -> Trip | None:
        """The trip that restricts the agent's next decision, or None while it trades freely (the fast path)."""
        if not self.watch[agent].trips and not self.portfolio.trips:
            return None
        return self.status(agent)

    @property
    def tripped(self) -> bool:
        """Whether any scope is reducing or halted."""
        return bool(self.portfolio.trips) or any(w.trips for w in self.watch.values())

    # -- the state machine --------------------------------------------------------------------------------------
    def observe(self, round_no: int, ts_ns: int, equities: Sequence[float]) -> list[BreakerChange]:
        """Evaluate every breaker on one bar's closing equities (in `agents` order); returns the changes.

        `ts_ns` is the bar's close: the bar belongs to the UTC day of the instant just before it, so the 00:00
        close ends the previous day and its equity is the next day's starting equity.
        """
        if len(equities) != len(self.agents):
            raise ValueError(f"expected {len(self.agents)} equities (one per agent), got {len(equities)}")
        s = self.settings
        day = (ts_ns - 1) // DAY_NS
        before: dict[str, Trip] = {}
        for name, eq in zip(self.agents, equities, strict=True):
            w = self.watch[name]
            if day != w.day:
                w.day, w.day_start = day, w.last
                if DAILY_LOSS in w.trips:
                    before.setdefault(name, self.status(name))
                    del w.trips[DAILY_LOSS]
                    w.calm = Trip(ACTIVE, "", "daily loss limit lifted: a new UTC day", ts_ns, round_no)
            if not math.isfinite(eq):
                continue  # no mark for this bar: nothing to measure
            w.last = eq
            if eq > w.peak:
                w.peak = eq
            limit = s.agent_drawdown
            if limit is not None and AGENT_DRAWDOWN not in w.trips:
                drop = 1.0 - eq / w.peak
                if drop >= limit:
                    before.setdefault(name, self.status(name))
                    why = f"agent drawdown {_pct(drop)} >= {_pct(limit)} (equity {eq:,.2f} from peak {w.peak:,.2f})"
                    w.trips[AGENT_DRAWDOWN] = Trip(s.agent_drawdown_action, AGENT_DRAWDOWN, why, ts_ns, round_no)
            limit = s.daily_loss
            if limit is not None and DAILY_LOSS not in w.trips and w.day_start > 0:
                drop = 1.0 - eq / w.day_start
                if drop >= limit:
                    before.setdefault(name, self.status(name))
                    start = w.day_start
                    why = f"daily loss {_pct(drop)} >= {_pct(limit)} (equity {eq:,.2f} from {start:,.2f} at 00:00)"
                    w.trips[DAILY_LOSS] = Trip(s.daily_loss_action, DAILY_LOSS, why, ts_ns, round_no)
        limit = s.portfolio_drawdown
        p = self.portfolio
        total = math.fsum(equities)
        if math.isfinite(total):
            p.last = total
            p.peak = max(p.peak, total)
            if limit is not None and PORTFOLIO_DRAWDOWN not in p.trips:
                drop = 1.0 - total / p.peak
                if drop >= limit:
                    for scope in (PORTFOLIO, *self.agents):  # every account's state may change with it
                        before.setdefault(scope, self.status(scope))
                    why = (
                        f"portfolio drawdown {_pct(drop)} >= {_pct(limit)} "
                        f"(all accounts {total:,.2f} from peak {p.peak:,.2f})"
                    )
                    p.trips[PORTFOLIO_DRAWDOWN] = Trip(
                        s.portfolio_drawdown_action, PORTFOLIO_DRAWDOWN, why, ts_ns, round_no
                    )
        return self._changes(before, ENGINE)

    def reset(self, scope: str | None, *, round_no: int, at_ns: int, by: str, reason: str = "") -> list[BreakerChange]:
        """Re-arm breakers: one account's, the portfolio's (`"*"`), or all (`None`); returns the changes.

        Trips are cleared and the peak (and the day's starting equity) restarts from the current equity, so the
        same drawdown does not trip again on the next bar. Resetting an account leaves a portfolio trip in force.
        """
        if scope is not None and scope != PORTFOLIO and scope not in self.watch:
            raise ValueError(f"no account {scope!r} to reset; accounts: {list(self.agents)} (or {PORTFOLIO!r})")
        scopes = [*self.agents, PORTFOLIO] if scope is None else [scope]
        before: dict[str, Trip] = {}
        for sc in [*scopes, *(self.agents if PORTFOLIO in scopes else ())]:
            before.setdefault(sc, self.status(sc))
        calm = Trip(ACTIVE, "", f"reset by {by}" + (f": {reason}" if reason else ""), at_ns, round_no)
        for sc in scopes:
            w = self.portfolio if sc == PORTFOLIO else self.watch[sc]
            w.trips.clear()
            w.calm = calm
            if math.isfinite(w.last):
                w.peak = w.day_start = w.last
                w.anchor_round, w.anchor_equity = round_no, w.last
        return self._changes(before, by)

    def halt(self, agent: str, breaker: str, reason: str, *, round_no: int, ts_ns: int) -> list[BreakerChange]:
        """Halt one account for a cause outside the equity breakers (a reconciliation difference on a live
        account); sticky until an operator resets it. A halt already in force for the same cause changes nothing."""
        w = self._scope(agent)
        if breaker in w.trips:
            return []
        before = {agent: self.status(agent)}
        w.trips[breaker] = Trip(HALTED, breaker, reason, ts_ns, round_no)
        return self._changes(before, ENGINE)

    def adopt(self, rows: Iterable[BreakerRecord], round_no: int) -> list[BreakerChange]:
        """Take over states an operator wrote while this book ran (a reset from another process).

        Each row's trips replace its scope's; a new reset anchor re-arms the peak (and the day's start) at this
        book's current equity, anchored at `round_no`. Returns the resulting changes, written as the engine's.
        """
        before: dict[str, Trip] = {}
        for r in rows:
            if r.agent != PORTFOLIO and r.agent not in self.watch:
                continue
            for sc in (r.agent, *(self.agents if r.agent == PORTFOLIO else ())):
                before.setdefault(sc, self.status(sc))
            w = self.portfolio if r.agent == PORTFOLIO else self.watch[r.agent]
            w.trips = {k: Trip.from_dict(k, v) for k, v in (r.trips or {}).items()}
            if r.state == ACTIVE:
                w.calm = Trip(ACTIVE, "", r.reason, r.since_ns, r.round_no)
            if (r.anchor_round, r.anchor_equity) != (w.anchor_round, w.anchor_equity) and math.isfinite(w.last):
                w.peak = w.day_start = w.last
                w.anchor_round, w.anchor_equity = round_no, w.last
        return self._changes(before, ENGINE)

    def _changes(self, before: Mapping[str, Trip], by: str) -> list[BreakerChange]:
        out = []
        for scope, old in before.items():
            new = self.status(scope)
            w = self.portfolio if scope == PORTFOLIO else self.watch[scope]
            out.append(BreakerChange(scope, new, dict(w.trips), w.anchor_round, w.anchor_equity, by))
            if (new.state, new.breaker) != (old.state, old.breaker):
                who = "portfolio" if scope == PORTFOLIO else f"account {scope!r}"
                if new.state == ACTIVE:
                    log.info("circuit breaker: %s active again (%s)", who, new.reason)
                else:
                    log.warning("circuit breaker tripped: %s %s: %s", who, new.state.upper(), new.reason)
        return out

    def _scope(self, agent: str) -> _Watch:
        try:
            return self.watch[agent]
        except KeyError:
            raise KeyError(f"no account {agent!r} in the breaker book; accounts: {list(self.agents)}") from None

    # -- restart ------------------------------------------------------------------------------------------------
    def load_states(self, rows: Iterable[BreakerRecord]) -> None:
        """Take each scope's trips and reset anchor from its latest ledger row (rows of other agents are ignored)."""
        for r in rows:
            if r.agent == PORTFOLIO:
                w = self.portfolio
            elif r.agent in self.watch:
                w = self.watch[r.agent]
            else:
                continue
            w.trips = {k: Trip.from_dict(k, v) for k, v in (r.trips or {}).items()}
            if r.state == ACTIVE:
                w.calm = Trip(ACTIVE, "", r.reason, r.since_ns, r.round_no)
            w.anchor_round = r.anchor_round
            w.anchor_equity = r.anchor_equity

    def load_equity(self, equity: pd.DataFrame) -> None:
        """Recompute peaks, the latest equity and the day's starting equity from the ledger's equity rows.

        `equity` has columns agent, round_no, ts, equity (as `ArenaStore.equity_frame`). Peaks count from the
        last reset's anchor (or the initial cash); a state loaded with `load_states` must come first.
        """
        eq = equity[equity["agent"].isin(self.agents)]
        if eq.empty:
            return
        for name, w in self.watch.items():
            mine = eq[eq["agent"] == name].sort_values("round_no")
            _rebuild(w, mine["round_no"], mine["ts"], mine["equity"], self.initial_cash)
        totals = eq.groupby("round_no", sort=True).agg(ts=("ts", "max"), equity=("equity", "sum"))
        _rebuild(self.portfolio, totals.index.to_series(), totals["ts"], totals["equity"], self.portfolio_start)

    @property
    def portfolio_start(self) -> float:
        return self.initial_cash * len(self.agents)

    def restore(self, rows: Iterable[BreakerRecord], equity: pd.DataFrame) -> None:
        """`load_states` then `load_equity`: the book exactly as the last committed round left it."""
        self.load_states(rows)
        self.load_equity(equity)


def _rebuild(w: _Watch, rounds: pd.Series, ts: pd.Series, values: pd.Series, baseline: float) -> None:
    """A scope's peak, latest equity, day and day-start equity from its equity history (rounds ascending)."""
    r = rounds.to_numpy(np.int64)
    v = values.to_numpy(np.float64)
    days = (ts.to_numpy(np.int64) - 1) // DAY_NS
    if not len(v):
        return
    anchored = w.anchor_round >= 0 and w.anchor_equity is not None
    start = float(w.anchor_equity) if anchored and w.anchor_equity is not None else baseline
    since = v[(r > w.anchor_round) & np.isfinite(v)]
    w.peak = max(start, float(since.max())) if len(since) else start
    finite = np.isfinite(v)
    w.last = float(v[finite][-1]) if finite.any() else baseline
    w.day = int(days[-1])
    earlier = v[(days < w.day) & finite]
    w.day_start = float(earlier[-1]) if len(earlier) else baseline
    if anchored and w.anchor_equity is not None:
        at = days[r == w.anchor_round]
        if len(at) and int(at[0]) == w.day:  # reset today: the day restarts from the reset's equity
            w.day_start = float(w.anchor_equity)


class BreakerRisk(RiskEngine):
    """The RiskEngine behind a tripped breaker: entries (reversals included) are rejected with the trip's verdict;
    closes get the normal review. Used for reducing and halted accounts alike (a halted agent is not asked, but
    the engine's own closes still pass)."""

    def __init__(self, inner: RiskEngine, trip: Trip) -> None:
        super().__init__(inner.limits, inner.fee_rate)
        self.trip = trip
        self.reason = trip.verdict()

    def review(self, decision: Decision, account: AccountView, price: float) -> RiskVerdict:
        if decision.is_entry:
            return RiskVerdict(decision, approved=False, reasons=(self.reason,))
        return super().review(decision, account, price)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%" if round(x * 100, 1) != round(x * 100) else f"{x * 100:.0f}%"
