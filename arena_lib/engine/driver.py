"""The one per-bar driver: Feed -> MarketSnapshot -> Agent -> RiskEngine -> Broker -> Fill -> Portfolio -> ledger.

Backtests (`run_replay`), arena replays, paper and live jobs (`arena.rounds.ArenaRunner`) all play bars through
`Driver.play_bar`; they differ only in the feed that fills the tape, the broker of each account, the clock, and
the hooks they switch on:

- exit plans and invalidation conditions, checked before the agents decide (always on: an agent that gives no
  condition costs nothing);
- agent turns: every account's agent answers on the same snapshot, concurrently when some agent plays async turns
  (LLM agents), each within the round's deadline;
- circuit breakers (`engine.breakers.BreakerBook`), between the agents and the RiskEngine;
- the ledger, which receives each bar's record after the bar (the arena's SQL commit; a backtest keeps it in
  memory).

Per bar and account, in this order: the broker settles the bar (funding, queued orders at the open, intrabar
exits); on decision bars the engine closes positions whose invalidation condition holds, the agent decides, and
every decision goes through the RiskEngine before the broker sees it; then the bar's closing equity is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from arena_lib.agents.base import AccountView, Agent
from arena_lib.agents.llm.cache import CacheMissError
from arena_lib.agents.llm.context import coin_context
from arena_lib.agents.llm.invalidation import Condition, compile_condition
from arena_lib.agents.turn import AgentStats, ClosedPosition, ExitPlan, Turn, TurnAgent, TurnContext
from arena_lib.core.clock import SimulatedClock
from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Action, Decision, Fill, FillKind, Order, RiskVerdict, hold
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.data.tape import MarketTape
from arena_lib.engine.breakers import HALTED, BreakerBook, BreakerChange, BreakerRisk, Trip
from arena_lib.engine.broker import Broker, BrokerError, SimBroker, order_id
from arena_lib.engine.portfolio import Portfolio, equity, gross_notional
from arena_lib.engine.risk import RiskEngine

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
_NO_TURNS: dict[str, AccountTurn] = {}  # never written: the turns of a bar nobody recorded
# LLM agents stop at the round's deadline (`TurnContext.deadline`) themselves and return the failed call (prompt,
# attempts, error), which the ledger and the leaderboard's invalid-output rate need. The driver's own bound is a
# backstop for agents that ignore the deadline; without this grace it fired first and the call went unrecorded.
DEADLINE_GRACE_S = 0.5
BROKER_FAULT = "reconciliation"  # the breaker name under which a broker's fault halts its account


@dataclass(frozen=True)
class RoundPolicy:
    """When agents decide and how long they may take.

    `bars_per_round`: agents decide on every n-th bar from the first played one (the others only settle).
    `deadline_s`: the round's deadline for agents that play async turns (None: no deadline).
    `stats_window`: bars of equity behind the `AgentStats` an adaptive prompt shows.
    `hold_on_error`: an agent that raises holds for the round and the error is recorded (an arena, where one
    agent's bug must not stop the others); False re-raises it (a backtest, where it is the researcher's bug).
    """

    bars_per_round: int = 1
    deadline_s: float | None = None
    stats_window: int = 168
    hold_on_error: bool = False


@dataclass
class Account:
    """One isolated account: its agent, its broker, its portfolio and what the engine keeps between bars."""

    agent: Agent
    broker: Broker
    portfolio: Portfolio
    plans: dict[str, ExitPlan] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    recent_equity: deque[float] = field(default_factory=deque)
    exits: list[float] = field(default_factory=list)  # net PnL of closed positions, for the win rate
    fills: list[Fill] = field(default_factory=list)  # this bar's; the driver clears them after the ledger
    verdicts: list[RiskVerdict] = field(default_factory=list)  # this bar's
    equity: float = 0.0  # at the last bar's close
    exposure: float = 0.0  # gross notional at the last bar's close
    idle_view: AccountView | None = None  # reused while the account is flat and its cash unchanged
    closed: list[ClosedPosition] = field(default_factory=list)  # since its last turn (turn agents only)
    noted: int = 0  # this bar's fills already looked at for `closed`

    @property
    def name(self) -> str:
        return self.agent.name

    def set_plan(self, symbol: str, plan: ExitPlan) -> None:
        """Adopt an exit plan; its invalidation condition is compiled once (plain text stays text, never run)."""
        self.plans[symbol] = plan
        self.conditions.pop(symbol, None)
        if plan.invalidation_condition:
            cond = compile_condition(plan.invalidation_condition)
            if cond is not None:
                self.conditions[symbol] = cond


@dataclass
class AccountTurn:
    """What one account did on a decision bar, for the ledger."""

    turn: Turn
    engine_closes: list[Decision]
    decisions: list[Decision]
    verdicts: dict[int, RiskVerdict]  # id(decision) -> verdict
    benched: bool = False
    approved_orders: list[tuple[Decision, RiskVerdict, float]] = field(default_factory=list)  # with the mark


@dataclass
class BarRecord:
    """Everything one bar produced: what a ledger writes after the bar."""

    round_no: int
    ts: int  # the bar's close, epoch ns
    snapshot: MarketSnapshot
    decided: bool
    turns: dict[str, AccountTurn]
    breaker_changes: list[BreakerChange]
    wall_started: int
    wall_s: float = 0.0


def open_accounts(
    agents: Sequence[Agent],
    config: BacktestConfig,
    symbols: Sequence[str],
    run_id: str,
    brokers: Sequence[Broker] | None = None,
) -> list[Account]:
    """One isolated account per agent, starting with the config's cash, each with its own broker: the given
    `brokers` (one per agent), or the simulator."""
    if brokers is not None and len(brokers) != len(agents):
        raise ValueError(f"one broker per agent: got {len(brokers)} brokers for {len(agents)} agents")
    cash0 = config.execution.initial_cash
    return [
        Account(
            a,
            brokers[k] if brokers is not None else SimBroker(config, tuple(symbols), f"{run_id}/{a.name}"),
            Portfolio.start(cash0),
            equity=cash0,
        )
        for k, a in enumerate(agents)
    ]


class BarLedger(Protocol):
    """Where the driver hands each bar after it is played (the arena's SQL ledger; a backtest's in-memory recorder).

    A ledger that sets `wants_records` gets a `BarRecord` (the snapshot, every turn with its prompt and raw answer,
    the verdicts, the breaker changes); one that does not gets None and reads the accounts, which keeps a backtest's
    bar free of bookkeeping it would throw away.
    """

    wants_records: bool

    def record(self, driver: Driver, bar: BarRecord | None) -> None: ...


class Driver:
    """Plays the newest bar of a `MarketTape` for every account, with the hooks its mode switches on."""

    def __init__(
        self,
        accounts: Sequence[Account],
        config: BacktestConfig,
        tape: MarketTape,
        *,
        run_id: str,
        policy: RoundPolicy | None = None,
        breakers: BreakerBook | None = None,
        ledger: BarLedger | None = None,
        clock: SimulatedClock | None = None,
        risk: RiskEngine | None = None,
    ) -> None:
        names = [a.name for a in accounts]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        self.accounts = list(accounts)
        self.config = config
        self.tape = tape
        self.run_id = run_id
        self.policy = policy or RoundPolicy()
        self.breakers = breakers
        self.ledger = ledger
        self.clock = clock
        self.risk = risk or RiskEngine(config.risk, config.costs.fee_rate)
        self.cash0 = config.execution.initial_cash
        self.started_at_ns = 0  # close of the first played bar (market time): the prompt's "minutes since start"
        self._async = any(isinstance(a.agent, TurnAgent) for a in self.accounts)
        self._records = ledger is None or ledger.wants_records
        self._marks: list[float] | None = None
        self._loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop() if self._async else None
        for acc in self.accounts:
            acc.recent_equity = deque(acc.recent_equity, maxlen=self.policy.stats_window)

    # -- the bar ------------------------------------------------------------------------------------------------
    def play_bar(self, round_no: int, decide: bool) -> BarRecord | None:
        """Play the tape's newest row: settle it, let the agents decide when `decide`, hand it to the ledger.

        Returns the bar's record when the ledger keeps records (or there is no ledger), else None.
        """
        records = self._records
        wall0 = time.time_ns() if records else 0
        t0 = time.perf_counter() if records else 0.0
        tape = self.tape
        t_close = tape.last_close_ns
        if self.clock is not None:
            self.clock.advance_to(t_close)
        if not self.started_at_ns:
            self.started_at_ns = t_close
        snapshot = MarketSnapshot.of(tape)
        self._marks = None
        faults: list[BreakerChange] = []
        for acc in self.accounts:
            if acc.portfolio.positions or acc.broker.has_pending():
                self._settle(acc)
                if acc.broker.fault is not None and self.breakers is not None:
                    faults += self.breakers.halt(
                        acc.name, BROKER_FAULT, acc.broker.fault, round_no=round_no, ts_ns=t_close
                    )
        turns = self._decide(snapshot, round_no) if decide else _NO_TURNS
        for acc in self.accounts:
            if acc.fills or acc.portfolio.positions or self._async:
                self._close_bar(acc)
            else:  # flat all bar: its equity is its cash
                acc.equity = acc.portfolio.cash
                acc.exposure = 0.0
        changes: list[BreakerChange] = faults
        if self.breakers is not None:
            changes = [*faults, *self.breakers.observe(round_no, t_close, [acc.equity for acc in self.accounts])]
        record = None
        if records:
            record = BarRecord(round_no, t_close, snapshot, decide, turns, changes, wall0)
            record.wall_s = time.perf_counter() - t0
        if self.ledger is not None:
            self.ledger.record(self, record)
        for acc in self.accounts:  # the per-bar lists only feed this bar's record
            acc.noted = 0
            if acc.fills:
                acc.fills.clear()
            if acc.verdicts:
                acc.verdicts.clear()
        return record

    def flatten(self, round_no: int) -> BarRecord | None:
        """The kill switch's flatten, as a round of its own at the newest row's close: every broker cancels what it
        has pending or resting and closes every position. Returns the record (None when nothing was open)."""
        if not any(acc.portfolio.positions or acc.broker.has_pending() for acc in self.accounts):
            return None
        wall0, t0 = time.time_ns(), time.perf_counter()
        for acc in self.accounts:
            try:
                acc.portfolio = acc.broker.flatten(self.tape, acc.portfolio, acc.fills)
            except Exception as exc:
                raise BrokerError(
                    f"broker {type(acc.broker).__name__} of {acc.name!r} failed flattening: {exc}"
                ) from exc
        if not any(acc.fills for acc in self.accounts):
            return None
        self._marks = None
        for acc in self.accounts:
            self._close_bar(acc)
        record = BarRecord(round_no, self.tape.last_close_ns, MarketSnapshot.of(self.tape), False, {}, [], wall0)
        record.wall_s = time.perf_counter() - t0
        if self.ledger is not None:
            self.ledger.record(self, record)
        for acc in self.accounts:
            acc.fills.clear()
            acc.noted = 0
        return record

    def marks(self) -> list[float]:
        """Every symbol's latest close at this bar's close, computed once per bar when something needs it."""
        if self._marks is None:
            self._marks = self.tape.close_marks()
        return self._marks

    def _settle(self, acc: Account) -> None:
        try:
            acc.portfolio = acc.broker.settle(self.tape, acc.portfolio, acc.fills)
        except Exception as exc:
            raise BrokerError(
                f"broker {type(acc.broker).__name__} of {acc.name!r} failed settling a bar: {exc}"
            ) from exc
        self._note_exits(acc)
        self._forget_closed(acc)

    def _note_exits(self, acc: Account) -> None:
        """Keep, for a turn agent's next turn, the closes of this bar it did not order (a stop that fired, ...)."""
        if not (self._async and isinstance(acc.agent, TurnAgent)):
            return
        for f in acc.fills[acc.noted :]:
            if f.kind is not FillKind.ENTRY and unseen_exit(f):
                acc.closed.append(closed_position(f))
        acc.noted = len(acc.fills)

    def _close_bar(self, acc: Account) -> None:
        """The bar's closing equity and exposure; exits for the win rate; plans of positions that closed."""
        pf = acc.portfolio
        if acc.fills:
            for f in acc.fills:
                if f.kind is not FillKind.ENTRY:
                    acc.exits.append(f.realized_pnl - f.fee)
            self._note_exits(acc)
            self._forget_closed(acc)
        if pf.positions:
            marks = self.marks()
            acc.equity = equity(pf, self.tape.symbols, marks)
            acc.exposure = gross_notional(pf, self.tape.symbols, marks)
        else:
            acc.equity = pf.cash
            acc.exposure = 0.0
        if self._async:
            acc.recent_equity.append(acc.equity)

    # -- decisions ----------------------------------------------------------------------------------------------
    def _decide(self, snapshot: MarketSnapshot, round_no: int) -> dict[str, AccountTurn]:
        """Every account's turn on the one snapshot, then the RiskEngine and the broker for what it decided."""
        if not (self._records or self._async or self.breakers is not None):
            for acc in self.accounts:  # a backtest of plain agents: no turn records to keep
                exits = self._invalidations(acc, snapshot) if acc.conditions else None
                decisions = acc.agent.decide(snapshot, self.view(acc))
                if decisions or exits:
                    self._apply(acc, Turn(list(decisions)), exits or [], snapshot, self.risk, False)
            return _NO_TURNS
        gates: dict[str, Trip | None] = {}
        if self.breakers is not None:
            gates = {acc.name: self.breakers.gate(acc.name) for acc in self.accounts}
        closes = {acc.name: self._invalidations(acc, snapshot) if acc.conditions else [] for acc in self.accounts}
        if self._async:
            assert self._loop is not None
            turns = self._loop.run_until_complete(self._play_all(snapshot, round_no, gates))
        else:
            turns = [self._play_sync(acc, snapshot, gates.get(acc.name)) for acc in self.accounts]
        out: dict[str, AccountTurn] = {}
        for acc, turn in zip(self.accounts, turns, strict=True):
            gate = gates.get(acc.name)
            risk = self.risk if gate is None else BreakerRisk(self.risk, gate)
            benched = gate is not None and gate.state == HALTED
            out[acc.name] = self._apply(acc, turn, closes[acc.name], snapshot, risk, benched)
        return out

    def view(self, acc: Account) -> AccountView:
        """What the agent may know of its own account at this bar's close."""
        pf = acc.portfolio
        if pf.positions:
            return AccountView(pf.cash, equity(pf, self.tape.symbols, self.marks()), self.cash0, pf.positions)
        idle = acc.idle_view
        if idle is None or idle.cash != pf.cash:
            idle = acc.idle_view = AccountView(pf.cash, pf.cash, self.cash0, pf.positions)
        return idle

    def context(self, acc: Account, round_no: int, deadline: float | None) -> TurnContext:
        """What the driver tells an agent besides the snapshot and its account; the same in every mode."""
        exits, acc.closed = tuple(acc.closed), []
        return TurnContext(
            round_no=round_no,
            started_at_ns=self.started_at_ns,
            max_leverage=self.config.risk.max_leverage,
            exit_plans=dict(acc.plans),
            stats=self._stats(acc),
            deadline=deadline,
            recent_exits=exits,
        )

    def _play_sync(self, acc: Account, snapshot: MarketSnapshot, gate: Trip | None) -> Turn:
        if gate is not None and gate.state == HALTED:  # not asked: no new orders
            return Turn([hold(s, gate.verdict()) for s in snapshot.symbols])
        t0 = time.perf_counter()
        try:
            decisions = acc.agent.decide(snapshot, self.view(acc))
        except CacheMissError:
            raise
        except Exception as exc:  # an arena agent's bug must not stop the run; it holds and the reason is recorded
            if not self.policy.hold_on_error:
                raise
            why = f"agent failed ({type(exc).__name__}: {exc}): holding this round"
            log.warning("%s: %s", acc.name, why)
            return Turn([hold(s, why) for s in snapshot.symbols], error=why, latency_s=time.perf_counter() - t0)
        return Turn(list(decisions), latency_s=time.perf_counter() - t0)

    async def _play_all(self, snapshot: MarketSnapshot, round_no: int, gates: dict[str, Trip | None]) -> list[Turn]:
        deadline_s = self.policy.deadline_s
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        tasks = []
        for acc in self.accounts:
            gate = gates.get(acc.name)
            if gate is not None and gate.state == HALTED:  # not asked: no new orders, and no LLM cost
                tasks.append(_ready(Turn([hold(s, gate.verdict()) for s in snapshot.symbols])))
            elif isinstance(acc.agent, TurnAgent):
                ctx = self.context(acc, round_no, deadline)
                view = self.view(acc)
                tasks.append(_play_turn(acc.agent, snapshot, view, ctx, deadline_s, self.policy.hold_on_error))
            else:
                tasks.append(_ready(self._play_sync(acc, snapshot, gate)))
        return list(await asyncio.gather(*tasks))

    def _stats(self, acc: Account) -> AgentStats | None:
        eq = np.asarray(acc.recent_equity, dtype=np.float64)
        if len(eq) < 3:
            return None
        rets = np.diff(eq) / eq[:-1]
        sd = float(rets.std(ddof=1))
        ppy = 365.25 * 86400e9 / self.tape.bar_ns
        sharpe = float(rets.mean() / sd * math.sqrt(ppy)) if sd > 0 else 0.0
        wins = sum(1 for x in acc.exits if x > 0)
        win_rate = wins / len(acc.exits) if acc.exits else 0.0
        ret = (eq[-1] / self.cash0 - 1.0) * 100.0
        return AgentStats(sharpe=sharpe, win_rate=win_rate, trades=len(acc.exits), return_pct=float(ret))

    # -- engine rules around the agents -------------------------------------------------------------------------
    def _invalidations(self, acc: Account, snapshot: MarketSnapshot) -> list[Decision]:
        """Close positions whose invalidation condition holds on this closed bar (evaluated safely, never eval)."""
        out = []
        positions = acc.portfolio.positions
        for sym, cond in acc.conditions.items():
            pos = positions.get(sym)
            if pos is None:
                continue
            ctx = coin_context(snapshot, sym)
            if ctx is None:
                continue
            values = dict(ctx.fields())
            price = self.marks()[snapshot.symbols.index(sym)]
            values["entry_price"] = pos.entry_price
            values["unrealized_pnl_pct"] = pos.direction * (price / pos.entry_price - 1.0) * 100.0 * pos.leverage
            if cond.evaluate(values):
                out.append(Decision(sym, Action.CLOSE, size=0.0, reason=f"invalidation condition met: {cond.source}"))
        return out

    def _forget_closed(self, acc: Account) -> None:
        """Drop exit plans of positions that closed (stop, take-profit, liquidation) and are not pending."""
        if not acc.plans:
            return
        held = set(acc.portfolio.positions)
        if acc.broker.has_pending():
            held |= {o.symbol for o in acc.broker.pending_orders()}
        for sym in [s for s in acc.plans if s not in held]:
            del acc.plans[sym]
            acc.conditions.pop(sym, None)

    def _apply(
        self,
        acc: Account,
        turn: Turn,
        engine_closes: list[Decision],
        snapshot: MarketSnapshot,
        risk: RiskEngine,
        benched: bool,
    ) -> AccountTurn:
        decisions = [*engine_closes, *turn.decisions] if engine_closes else list(turn.decisions)
        record = AccountTurn(turn, engine_closes, decisions, {}, benched)
        if not decisions:
            return record
        first = len(acc.verdicts)
        self.act(acc, decisions, risk, snapshot.timestamp_ns, self.marks(), record)
        record.verdicts = {id(v.decision): v for v in acc.verdicts[first:]}
        for d, _verdict, _mark in record.approved_orders:
            if d.is_entry:
                note = turn.notes.get(d.symbol)
                acc.set_plan(
                    d.symbol, ExitPlan(d.take_profit, d.stop_loss, note.invalidation_condition if note else "")
                )
        return record

    def act(
        self,
        acc: Account,
        decisions: Sequence[Decision],
        risk: RiskEngine,
        t_close: int,
        marks: list[float],
        record: AccountTurn | None = None,
    ) -> None:
        """Review decisions (one per symbol, in symbol order) and hand the approved ones to the account's broker."""
        pf = acc.portfolio
        symbols = self.tape.symbols
        index = {s: j for j, s in enumerate(symbols)}
        seen: set[str] = set()
        volumes: list[float] | None = None
        marks = list(marks)
        for d in sorted(decisions, key=lambda d: index.get(d.symbol, len(symbols))):
            if d.action is Action.HOLD:
                continue
            if d.symbol not in index:
                acc.verdicts.append(RiskVerdict(d, False, reasons=(f"unknown symbol {d.symbol!r}",), ts=t_close))
                continue
            if d.symbol in seen:
                acc.verdicts.append(RiskVerdict(d, False, reasons=("one action per symbol per round",), ts=t_close))
                continue
            seen.add(d.symbol)
            j = index[d.symbol]
            eq = equity(pf, symbols, marks) if pf.positions else pf.cash
            verdict = replace(risk.review(d, AccountView(pf.cash, eq, self.cash0, pf.positions), marks[j]), ts=t_close)
            acc.verdicts.append(verdict)
            if not verdict.approved:
                continue
            if volumes is None:
                volumes = self.tape.volumes()
            order = Order(
                order_id=order_id(self.run_id, acc.name, t_close, d.symbol),
                symbol=d.symbol,
                action=d.action,
                created_at=t_close,
                fraction=verdict.fraction,
                leverage=verdict.leverage,
                stop_loss=d.stop_loss,
                take_profit=d.take_profit,
                reference_price=marks[j],
                reference_volume=volumes[j],
            )
            if record is not None:
                record.approved_orders.append((d, verdict, marks[j]))
            try:
                pf = acc.broker.place(order, self.tape, pf, marks, acc.fills)
            except Exception as exc:
                raise BrokerError(
                    f"broker {type(acc.broker).__name__} of {acc.name!r} failed placing {order.order_id}: {exc}"
                ) from exc
        acc.portfolio = pf

    def close(self) -> None:
        """Close the agents' async clients and the event loop (when the driver opened one)."""
        if self._loop is None:
            return
        for acc in self.accounts:
            aclose = getattr(acc.agent, "aclose", None)
            if aclose is not None:
                try:
                    self._loop.run_until_complete(aclose())
                except Exception as exc:  # closing is best effort; the run's results are already recorded
                    log.debug("closing %s's client: %s", acc.name, exc)
        self._loop.close()
        self._loop = None


_EXIT_REASONS = {
    FillKind.STOP_LOSS: "stop-loss filled",
    FillKind.TAKE_PROFIT: "take-profit filled",
    FillKind.LIQUIDATION: "liquidated",
    FillKind.EXIT: "closed",
}
_SOURCES = {  # fills from these sources were not ordered by the agent at its last turn
    "exchange": " on the exchange",
    "manual": " by a trade made outside Arena",
    "recovered": " by an order sent before a restart",
}


def unseen_exit(f: Fill) -> bool:
    """A closing fill the agent did not order at its last turn: an exit that fired, a liquidation, a trade made
    outside Arena, or an order sent before a restart (its own closes it knows about)."""
    return f.kind is not FillKind.EXIT or f.source in _SOURCES


def closed_position(f: Fill) -> ClosedPosition:
    """What an agent is told about a fill that closed (part of) its position."""
    reason = _EXIT_REASONS.get(f.kind, f.kind.value) + _SOURCES.get(f.source, "")
    side = "long" if f.side.value == "sell" else "short"
    return ClosedPosition(f.symbol, side, f.quantity, f.price, f.realized_pnl, reason, f.timestamp)


async def _ready(turn: Turn) -> Turn:
    return turn


async def _play_turn(
    agent: TurnAgent,
    snapshot: MarketSnapshot,
    view: AccountView,
    ctx: TurnContext,
    deadline_s: float | None,
    hold_on_error: bool,
) -> Turn:
    """One async turn; a slow, failing or rate-limited agent holds and the others are unaffected."""
    t0 = time.perf_counter()
    try:
        if deadline_s is None:
            return await agent.play_turn(snapshot, view, ctx)
        return await asyncio.wait_for(agent.play_turn(snapshot, view, ctx), timeout=deadline_s + DEADLINE_GRACE_S)
    except CacheMissError:
        raise
    except TimeoutError:
        why = f"deadline of {deadline_s:g}s exceeded: holding this round"
    except Exception as exc:  # an arena agent's bug must not stop the run; it holds and the reason is recorded
        if not hold_on_error:
            raise
        why = f"agent failed ({type(exc).__name__}: {exc}): holding this round"
        log.warning("%s: %s", agent.name, why)
    return Turn([hold(s, why) for s in snapshot.symbols], error=why, latency_s=time.perf_counter() - t0)
