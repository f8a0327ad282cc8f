"""Arena rounds: the engine's one per-bar driver with the SQL ledger, circuit breakers and the kill switch.

`ArenaRunner` owns no bar loop of its own. It feeds bars to `engine.driver.Driver` (from a replay of stored
history, or a live feed), switches on the hooks an arena needs (every agent on one snapshot concurrently within a
deadline, invalidation exits, circuit breakers) and commits each bar as one transaction: round, snapshot, prompts,
raw responses, decisions, verdicts, orders, fills, equity, breaker changes and every account's state. Order ids
derive from run/agent/bar/symbol, so a bar re-run after a crash cannot trade twice, and a restart continues from
the last committed bar.

One writer per run: the runner holds the run's writer lease from its first bar, every commit is conditional on the
lease and on the previous round, and a runner that loses its lease stops with a clear message and never writes
again (`LeaseLostError`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arena_lib.agents.base import Agent
from arena_lib.agents.turn import ExitPlan
from arena_lib.arena import schema as t
from arena_lib.arena.breakers import change_row
from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.lease import WriterLease
from arena_lib.arena.store import AccountState as StoredAccount
from arena_lib.arena.store import ArenaStore, HaltState, RoundWrite
from arena_lib.core.types import Action, Decision, Fill, FillKind, RiskVerdict
from arena_lib.data.market import MarketData
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.data.tape import MarketTape
from arena_lib.engine.breakers import ENGINE, BreakerBook, BreakerChange
from arena_lib.engine.broker import Broker, order_id
from arena_lib.engine.driver import (
    DEADLINE_GRACE_S,
    Account,
    AccountTurn,
    BarRecord,
    Driver,
    RoundPolicy,
    open_accounts,
)
from arena_lib.engine.feeds import Feed, ReplayFeed
from arena_lib.engine.portfolio import Portfolio

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
LEASE_TTL_S = 120.0  # a writer that stops renewing (killed) frees its run this long after its last commit
__all__ = ["DEADLINE_GRACE_S", "ArenaRunner", "ProgressCallback", "RoundOutcome"]


@dataclass
class RoundOutcome:
    round_no: int
    ts: int
    decided: bool
    committed: bool
    wall_s: float
    errors: dict[str, str]


class ArenaRunner:
    """Drives a run bar by bar through the engine's driver, writing every bar to the store.

    `source` is a `MarketData` to replay from row `first_row` (the rows before it are warm-up history), or any
    `Feed` (a live one). `brokers` (one per agent) replaces the simulator. `lease_ttl_s` is how long the writer
    lease outlives the last commit (by default four round deadlines, at least two minutes).
    """

    def __init__(
        self,
        config: ArenaConfig,
        agents: Sequence[Agent],
        source: MarketData | Feed,
        store: ArenaStore,
        run_id: str,
        *,
        first_row: int = 0,
        stop: threading.Event | None = None,
        brokers: Sequence[Broker] | None = None,
        lease_ttl_s: float | None = None,
    ) -> None:
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique in an arena, got {names}")
        self.config = config
        self.store = store
        self.run_id = run_id
        self.stop = stop or threading.Event()
        self.halted: HaltState | None = None  # the kill switch's state when it stopped this runner
        self.feed: Feed = ReplayFeed(source, first_row) if isinstance(source, MarketData) else source
        self.tape = (
            self.feed.new_tape()
            if isinstance(self.feed, ReplayFeed)
            else MarketTape(self.feed.symbols, self.feed.timeframe)
        )
        self._warm = False
        bt = config.market
        self.cash0 = bt.execution.initial_cash
        accounts = open_accounts(agents, bt, self.feed.symbols, run_id, brokers)
        self.breakers = BreakerBook(config.breakers, names, self.cash0)
        self.ledger = _SqlLedger(self)
        rounds = config.rounds
        policy = RoundPolicy(rounds.bars_per_round, rounds.deadline_s, rounds.stats_window, hold_on_error=True)
        self.driver = Driver(
            accounts, bt, self.tape, run_id=run_id, policy=policy, breakers=self.breakers, ledger=self.ledger
        )
        self.last_round = -1  # rounds count from the window's first played bar
        self._breaker_seen = 0  # the newest breaker row id read back (operator resets are polled after it)
        self._breaker_rewrites: list[BreakerChange] = []  # resets applied here, written with the next round
        self.lease: WriterLease | None = None
        self.lease_ttl_s = lease_ttl_s or max(LEASE_TTL_S, 4 * config.rounds.deadline_s)

    # -- resume ---------------------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Load every account from the store as its last committed bar left it; replays skip the played bars."""
        self._take_lease()
        stored = self.store.load_accounts(self.run_id)
        run = self.store.get_run(self.run_id)
        self.last_round = run.last_round
        window = self.config.rounds.stats_window
        eq = self.store.equity_frame(self.run_id)
        fills = self.store.fills_frame(self.run_id)
        for acc in self.driver.accounts:
            st = stored.get(acc.name)
            if st is None:
                raise KeyError(f"run {self.run_id!r} has no account for agent {acc.name!r}; the config changed?")
            acc.portfolio = Portfolio(st.cash, dict(st.positions), st.realized_pnl, st.fees_paid, st.funding_paid)
            acc.broker.load_state(st.broker_state)
            acc.broker.restore(st.pending)
            acc.plans, acc.conditions = {}, {}
            for sym, plan in st.plans.items():
                acc.set_plan(sym, ExitPlan.from_dict(plan))
            mine = eq[eq["agent"] == acc.name]
            acc.recent_equity = deque(mine["equity"].tail(window).tolist(), maxlen=window)
            acc.equity = float(mine["equity"].iloc[-1]) if len(mine) else acc.portfolio.cash
            f = fills[fills["agent"] == acc.name]
            self.ledger.seq[acc.name] = len(f)
            ex = f[f["kind"] != FillKind.ENTRY.value]
            acc.exits = (ex["realized_pnl"] - ex["fee"]).tolist()
        latest = self.store.latest_breakers(self.run_id)
        self.breakers.restore(latest, eq)
        self._breaker_seen = max((r.id for r in latest), default=0)
        rounds = self.store.rounds_frame(self.run_id)
        if len(rounds):
            self.driver.started_at_ns = int(rounds["ts"].iloc[0])
            self.feed.warm_up(self.tape, int(rounds["ts"].iloc[-1]))
            self._warm = True

    def warm_up(self) -> None:
        """Append the feed's warm-up history to the tape once (a restored run has it already)."""
        if not self._warm:
            self.feed.warm_up(self.tape)
            self._warm = True

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self, max_rounds: int | None = None, progress: ProgressCallback | None = None) -> list[RoundOutcome]:
        """Play the feed's bars from the bar after the last committed one (up to `max_rounds` bars)."""
        outcomes: list[RoundOutcome] = []
        total = self._remaining(max_rounds)
        while max_rounds is None or len(outcomes) < max_rounds:
            if self.stop.is_set():
                log.info("stop requested: finishing after round %d", self.last_round)
                break
            if self.check_halt():
                break
            self.warm_up()
            if not self.feed.advance(self.tape):
                break
            round_no = self.last_round + 1
            outcomes.append(self._play(round_no, round_no % self.config.rounds.bars_per_round == 0))
            if progress is not None:
                progress(len(outcomes), total)
        return outcomes

    def _remaining(self, max_rounds: int | None) -> int:
        if isinstance(self.feed, ReplayFeed):
            left = self.feed.stop - self.feed.next_row
            return left if max_rounds is None else min(left, max_rounds)
        return max_rounds or 0

    def play_new(self, is_decision: Callable[[], bool] | None = None) -> list[RoundOutcome]:
        """Play every bar the feed has now, in order; a bar is a decision round when `is_decision()` says so after
        it was appended (default: the feed has nothing newer). The kill switch is checked before every bar.

        This is how live jobs play: bars a job missed (a skipped schedule slot, a restart) are settled without
        asking the agents, so stops, targets and funding are never skipped, and the newest bar is decided.
        """
        newest = is_decision or (lambda: self.feed.exhausted)
        outcomes: list[RoundOutcome] = []
        self.warm_up()
        while not self.check_halt() and self.feed.advance(self.tape):
            outcomes.append(self._play(self.last_round + 1, newest()))
        return outcomes

    def check_halt(self) -> bool:
        """True (and `halted` set) when the kill switch is on: the job stops before its next round.

        A halt with `flatten` first closes every position and cancels every order of a paper or live run, as a
        round of its own in the ledger (a replay has nothing real to flatten).
        """
        state = self.store.halt_state()
        if state is not None and state.halted:
            self.halted = state
            log.warning("%s", state.describe())
            if state.flatten and self.tape.n_rows and self.store.get_run(self.run_id).mode != "replay":
                self._take_lease()
                if self.driver.flatten(self.last_round + 1) is not None:
                    self.last_round += 1
                    log.warning("kill switch: %s flattened (round %d)", self.run_id, self.last_round)
            return True
        return False

    def play(self, i: int | None = None, round_no: int | None = None, decide: bool | None = None) -> RoundOutcome:
        """Append the feed's next bar (row `i` of a replay, which must be the next one) and play it."""
        self.warm_up()
        if isinstance(self.feed, ReplayFeed) and i is not None and i != self.feed.next_row:
            raise ValueError(f"bars are played in order: the next bar is row {self.feed.next_row}, not {i}")
        if not self.feed.advance(self.tape):
            raise LookupError("the feed has no next bar")
        round_no = self.last_round + 1 if round_no is None else round_no
        if decide is None:
            decide = round_no % self.config.rounds.bars_per_round == 0
        return self._play(round_no, decide)

    def _play(self, round_no: int, decide: bool) -> RoundOutcome:
        self._take_lease()
        if decide and self.breakers.tripped:
            self._apply_resets()
        record = self.driver.play_bar(round_no, decide)
        assert record is not None  # the SQL ledger keeps records
        self.last_round = round_no
        errors = {name: at.turn.error for name, at in record.turns.items() if at.turn.error}
        return RoundOutcome(round_no, record.ts, decide, self.ledger.committed, record.wall_s, errors)

    def _take_lease(self) -> None:
        """Hold the run's writer lease (LeaseHeldError when another process writes it); commits renew it."""
        if self.lease is None:
            self.lease = self.store.acquire_lease(self.run_id, ttl_s=self.lease_ttl_s)

    def pause(self) -> None:
        """Give the writer lease back while the job waits for its next bar; it is taken again before that bar.

        A writer that took the run meanwhile and moved it on makes this runner's next commit fail (the round no
        longer follows the ledger's last one): it stops rather than build on accounts it no longer holds.
        """
        if self.lease is not None:
            self.store.release_lease(self.lease)
            self.lease = None

    def close(self) -> None:
        """Close the agents' HTTP clients and the event loop, and give the writer lease back."""
        self.driver.close()
        self.pause()

    def _apply_resets(self) -> None:
        """Adopt the operator resets written since the last look (`arena breakers reset` while this job runs).

        Called on decision bars only while an account is tripped, so an untripped arena makes no extra query.
        A scope's reset counts only when it is that scope's latest row: a row this runner wrote after it (a new
        trip) stands. The adopted state is written again with this round, as the engine's.
        """
        rows = self.store.breakers_after(self.run_id, self._breaker_seen)
        if not rows:
            return
        self._breaker_seen = rows[-1].id
        latest = {r.agent: r for r in rows}  # id order: the last row of each scope wins
        resets = [r for r in latest.values() if r.by != ENGINE]
        if resets:
            self._breaker_rewrites.extend(self.breakers.adopt(resets, self.last_round))


class _SqlLedger:
    """The arena's ledger hook: each bar's record becomes one `RoundWrite`, committed under the writer lease."""

    wants_records = True

    def __init__(self, runner: ArenaRunner) -> None:
        self.runner = runner
        self.seq: dict[str, int] = {}  # fills written so far, per agent
        self.rejected: dict[str, int] = {}  # broker rejections written so far by this process, per agent
        self.committed = False

    def record(self, driver: Driver, bar: BarRecord | None) -> None:
        assert bar is not None  # wants_records
        r = self.runner
        snapshot = bar.snapshot
        w = RoundWrite(
            run_id=r.run_id,
            round_no=bar.round_no,
            ts=bar.ts,
            snapshot_hash=snapshot.content_hash(),
            snapshot_content=_snapshot_content(snapshot),
            wall_started=bar.wall_started,
            wall_s=bar.wall_s,
            accounts=[],
        )
        for acc in driver.accounts:
            at = bar.turns.get(acc.name)
            if at is not None:
                self._decisions(w, acc, at, bar, snapshot)
            self._state(w, acc, bar)
        changes = bar.breaker_changes
        if r._breaker_rewrites:
            changes = [*r._breaker_rewrites, *changes]
            r._breaker_rewrites = []
        w.breakers.extend(change_row(c, r.run_id) for c in changes)
        self.committed = r.store.commit_round(w, r.lease)

    def _decisions(
        self, w: RoundWrite, acc: Account, at: AccountTurn, bar: BarRecord, snapshot: MarketSnapshot
    ) -> None:
        run_id = self.runner.run_id
        turn = at.turn
        call = turn.call
        if call is not None:
            w.prompts.append(
                t.PromptRow(sha256=call.prompt_sha, version=call.prompt_version, system=call.system, user=call.user)
            )
            w.llm_calls.append(
                t.LLMCallRow(
                    run_id=run_id,
                    round_no=bar.round_no,
                    agent=acc.name,
                    prompt_sha=call.prompt_sha,
                    cache_key=call.cache_key,
                    cache_hit=call.cache_hit,
                    raw=call.raw,
                    parse_ok=call.parse_ok,
                    problems=list(call.problems),
                    error=call.error or turn.error,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    cost_usd=call.cost_usd,
                    latency_s=call.latency_s,
                    attempts=call.attempts,
                )
            )
        closed_now = {d.symbol for d in at.engine_closes}
        for d in at.decisions:
            engine_made = any(d is e for e in at.engine_closes)
            note = None if engine_made else turn.notes.get(d.symbol)
            verdict = at.verdicts.get(id(d))
            if verdict is None and d.action is not Action.HOLD and not engine_made and d.symbol in closed_now:
                verdict = RiskVerdict(d, False, reasons=("the engine closed this position on its invalidation",))
            if engine_made:
                source = "invalidation"
            elif at.benched:
                source = "breaker"
            else:
                source = "fallback" if turn.error and d.action is Action.HOLD else "agent"
            w.decisions.append(
                _decision_row(run_id, bar.round_no, acc.name, bar.ts, d, verdict, note, source, turn.latency_s)
            )
        for d, v, mark in at.approved_orders:
            w.orders.append(_order_row(run_id, acc.name, bar.round_no, bar.ts, d, v, mark))

    def _state(self, w: RoundWrite, acc: Account, bar: BarRecord) -> None:
        run_id = self.runner.run_id
        pf = acc.portfolio
        seq = self.seq.get(acc.name, 0)
        for f in acc.fills:
            w.fills.append(_fill_row(run_id, acc.name, bar.round_no, seq, f))
            seq += 1
        self.seq[acc.name] = seq
        done = self.rejected.get(acc.name, 0)
        for r in acc.broker.rejections[done:]:
            w.rejections.append(
                t.RejectionRow(
                    run_id=run_id,
                    agent=acc.name,
                    round_no=bar.round_no,
                    order_id=r.order_id,
                    symbol=r.symbol,
                    ts=r.timestamp,
                    reason=r.reason[:4000],
                )
            )
        self.rejected[acc.name] = len(acc.broker.rejections)
        w.equity.append(
            t.EquityRow(
                run_id=run_id,
                agent=acc.name,
                round_no=bar.round_no,
                ts=bar.ts,
                cash=pf.cash,
                equity=acc.equity,
                gross_exposure=acc.exposure,
            )
        )
        w.accounts.append(
            StoredAccount(
                agent=acc.name,
                last_round=bar.round_no,
                cash=pf.cash,
                realized_pnl=pf.realized_pnl,
                fees_paid=pf.fees_paid,
                funding_paid=pf.funding_paid,
                positions=dict(pf.positions),
                pending=acc.broker.pending_orders(),
                plans={s: p.to_dict() for s, p in acc.plans.items()},
                broker_state=acc.broker.state(),
            )
        )
        w.invalidations[acc.name] = {s: p.invalidation_condition for s, p in acc.plans.items()}


def _snapshot_content(snapshot: MarketSnapshot) -> dict[str, Any]:
    """The compact audit copy of a snapshot: each symbol's latest closed bar and funding rate."""
    out: dict[str, Any] = {"ts": snapshot.timestamp_ns}
    for sym in snapshot.symbols:
        if snapshot.bar_count(sym) <= 0:
            continue
        b = snapshot.bar(sym)
        fr = snapshot.funding_rate(sym)
        out[sym] = {
            "t": b.timestamp,
            "o": b.open,
            "h": b.high,
            "l": b.low,
            "c": b.close,
            "v": b.volume,
            "funding": None if math.isnan(fr) else fr,
        }
    return out


def _decision_row(
    run_id: str,
    round_no: int,
    agent: str,
    ts: int,
    d: Decision,
    verdict: RiskVerdict | None,
    note: Any,
    source: str,
    latency_s: float,
) -> t.DecisionRow:
    return t.DecisionRow(
        run_id=run_id,
        round_no=round_no,
        agent=agent,
        symbol=d.symbol,
        ts=ts,
        source=source,
        action=d.action.value,
        size=_finite(d.size),
        size_unit=d.size_unit.value,
        leverage=_finite(d.leverage),
        stop_loss=d.stop_loss,
        take_profit=d.take_profit,
        invalidation=getattr(note, "invalidation_condition", "") or "",
        confidence=getattr(note, "confidence", None),
        risk_usd=getattr(note, "risk_usd", None),
        reason=d.reason[:4000],
        approved=None if verdict is None else verdict.approved,
        clamped=bool(verdict is not None and verdict.approved and verdict.reasons),
        fraction=0.0 if verdict is None else verdict.fraction,
        verdict="" if verdict is None else "; ".join(verdict.reasons),
        latency_s=latency_s,
    )


def _order_row(run_id: str, agent: str, round_no: int, ts: int, d: Decision, v: RiskVerdict, mark: float) -> t.OrderRow:
    return t.OrderRow(
        order_id=order_id(run_id, agent, ts, d.symbol),
        run_id=run_id,
        agent=agent,
        round_no=round_no,
        symbol=d.symbol,
        action=d.action.value,
        fraction=v.fraction,
        leverage=v.leverage,
        stop_loss=d.stop_loss,
        take_profit=d.take_profit,
        reference_price=mark,
        created_at=ts,
    )


def _fill_row(run_id: str, agent: str, round_no: int, seq: int, f: Fill) -> t.FillRow:
    return t.FillRow(
        fill_id=f"{f.order_id}#{f.kind.value}" + (f"#t{f.trade_id}" if f.trade_id else ""),
        order_id=f.order_id,
        run_id=run_id,
        agent=agent,
        round_no=round_no,
        seq=seq,
        symbol=f.symbol,
        ts=f.timestamp,
        side=f.side.value,
        kind=f.kind.value,
        quantity=f.quantity,
        price=f.price,
        fee=f.fee,
        realized_pnl=f.realized_pnl,
        funding=f.funding,
        leverage=f.leverage,
        margin=f.margin,
        note=f.note,
        source=f.source,
    )


def _finite(x: float) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else float("nan")
