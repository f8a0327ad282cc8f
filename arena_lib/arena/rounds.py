"""Arena rounds: every agent, the same snapshot, concurrently, each with a deadline, and a durable ledger.

One ledger step per bar. On every bar each account settles funding, fills queued orders at the open and
triggers stops, take-profits and liquidations (the same `settle_bar` as the backtest loop). On decision bars the
engine first checks the invalidation conditions of open positions, then all agents answer concurrently on the one
snapshot (LLM calls in flight together, so a round costs about the slowest agent, not the sum), and every
decision goes through the RiskEngine and the broker (`act_on_decisions`, also shared with the backtest loop).
After the bar the circuit breakers (`breakers.py`) read every account's closing equity; a tripped account decides
under them from the next decision round (reducing: entries rejected; halted: not asked). The bar is then
committed in one transaction: round, snapshot, prompts, raw responses, decisions, verdicts, orders, fills, equity,
breaker changes and every account's state. Order ids derive from run/agent/bar/symbol, so a bar re-run
after a crash cannot trade twice, and a restart continues from the last committed bar.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arena_lib.agents.base import AccountView, Agent
from arena_lib.agents.llm.cache import CacheMissError
from arena_lib.agents.llm.invalidation import Condition, compile_condition
from arena_lib.agents.llm.prompt import coin_context
from arena_lib.agents.turn import AgentStats, ExitPlan, Turn, TurnAgent, TurnContext, turn_from_decide
from arena_lib.arena import schema as t
from arena_lib.arena.breakers import ENGINE, HALTED, BreakerBook, BreakerChange, BreakerRisk, Trip
from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.store import AccountState as StoredAccount
from arena_lib.arena.store import ArenaStore, HaltState, RoundWrite
from arena_lib.core.types import Action, Decision, Fill, FillKind, RiskVerdict, hold
from arena_lib.data.market import MarketData
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.engine.broker import SimBroker
from arena_lib.engine.loop import AccountState, BarMarks, act_on_decisions, funding_by_row, order_id, settle_bar
from arena_lib.engine.portfolio import Portfolio, equity, gross_notional
from arena_lib.engine.risk import RiskEngine

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
# LLM agents stop at the round's deadline (`TurnContext.deadline`) themselves and return the failed call (prompt,
# attempts, error), which the ledger and the leaderboard's invalid-output rate need. The runner's own bound is a
# backstop for agents that ignore the deadline; without this grace it fired first and the call went unrecorded.
DEADLINE_GRACE_S = 0.5


@dataclass
class _Seat:
    """One contestant's isolated account plus what the arena keeps about it between bars."""

    acc: AccountState
    plans: dict[str, ExitPlan] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    recent_equity: deque[float] = field(default_factory=deque)
    exits: list[float] = field(default_factory=list)  # net PnL of closed positions, for win rate
    seq: int = 0  # fills written so far

    @property
    def name(self) -> str:
        return self.acc.agent.name


@dataclass
class RoundOutcome:
    round_no: int
    ts: int
    decided: bool
    committed: bool
    wall_s: float
    errors: dict[str, str]


class ArenaRunner:
    """Drives a run over a `MarketData`, bar by bar, writing every bar to the store."""

    def __init__(
        self,
        config: ArenaConfig,
        agents: Sequence[Agent],
        market: MarketData,
        store: ArenaStore,
        run_id: str,
        *,
        first_row: int = 0,
        stop: threading.Event | None = None,
    ) -> None:
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique in an arena, got {names}")
        self.config = config
        self.market = market
        self.store = store
        self.run_id = run_id
        self.first_row = first_row
        self.stop = stop or threading.Event()
        self.halted: HaltState | None = None  # the kill switch's state when it stopped this runner
        bt = config.market
        self.cash0 = bt.execution.initial_cash
        self.risk = RiskEngine(bt.risk, bt.costs.fee_rate)
        self.at_close = bt.execution.fill == "close"
        window = config.rounds.stats_window
        self.seats = [
            _Seat(
                AccountState(a, SimBroker(market, bt, f"{run_id}/{a.name}"), Portfolio.start(self.cash0), np.zeros(0)),
                recent_equity=deque(maxlen=window),
            )
            for a in agents
        ]
        self.last_round = -1  # rounds count from the window's first bar (row `first_row`)
        self.breakers = BreakerBook(config.breakers, names, self.cash0)
        self._breaker_seen = 0  # the newest breaker row id read back (operator resets are polled after it)
        self._breaker_rewrites: list[BreakerChange] = []  # resets applied here, written with the next round
        # One event loop for the whole run: async HTTP clients keep connections bound to the loop that opened them.
        self._loop = asyncio.new_event_loop()
        self.started_at_ns = market.close_times_ns[first_row] if market.n_bars > first_row else 0
        self.set_market(market)

    # -- market (replaced each round in paper mode) ---------------------------------------------------------------
    def set_market(self, market: MarketData) -> None:
        self.market = market
        self.marks = BarMarks(market)
        self.funding_rows = funding_by_row(market)
        for seat in self.seats:
            seat.acc.broker.market = market

    # -- resume ---------------------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Load every account from the store as its last committed bar left it."""
        stored = self.store.load_accounts(self.run_id)
        run = self.store.get_run(self.run_id)
        self.last_round = run.last_round
        window = self.config.rounds.stats_window
        eq = self.store.equity_frame(self.run_id)
        fills = self.store.fills_frame(self.run_id)
        index = {s: j for j, s in enumerate(self.market.symbols)}
        for seat in self.seats:
            st = stored.get(seat.name)
            if st is None:
                raise KeyError(f"run {self.run_id!r} has no account for agent {seat.name!r}; the config changed?")
            seat.acc.portfolio = Portfolio(st.cash, dict(st.positions), st.realized_pnl, st.fees_paid, st.funding_paid)
            seat.acc.broker.pending = {index[o.symbol]: o for o in st.pending}
            seat.plans = {s: ExitPlan.from_dict(p) for s, p in st.plans.items()}
            seat.conditions = self._compile(seat.plans)
            mine = eq[eq["agent"] == seat.name]
            seat.recent_equity = deque(mine["equity"].tail(window).tolist(), maxlen=window)
            f = fills[fills["agent"] == seat.name]
            seat.seq = len(f)
            ex = f[f["kind"] != FillKind.ENTRY.value]
            seat.exits = (ex["realized_pnl"] - ex["fee"]).tolist()
        latest = self.store.latest_breakers(self.run_id)
        self.breakers.restore(latest, eq)
        self._breaker_seen = max((r.id for r in latest), default=0)

    def _compile(self, plans: dict[str, ExitPlan]) -> dict[str, Condition]:
        out = {}
        for sym, plan in plans.items():
            cond = compile_condition(plan.invalidation_condition) if plan.invalidation_condition else None
            if cond is not None:
                out[sym] = cond
        return out

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self, max_rounds: int | None = None, progress: ProgressCallback | None = None) -> list[RoundOutcome]:
        """Run from the bar after the last committed one to the end of the market (or `max_rounds` bars)."""
        start = self.first_row + self.last_round + 1
        end = self.market.n_bars if max_rounds is None else min(self.market.n_bars, start + max_rounds)
        outcomes: list[RoundOutcome] = []
        total = end - start
        for k, i in enumerate(range(start, end)):
            if self.stop.is_set():
                log.info("stop requested: finishing after bar %d", i - 1)
                break
            if self.check_halt():
                break
            outcomes.append(self.play(i))
            if progress is not None:
                progress(k + 1, total)
        return outcomes

    def check_halt(self) -> bool:
        """True (and `halted` set) when the kill switch is on: the job stops before its next round."""
        state = self.store.halt_state()
        if state is not None and state.halted:
            self.halted = state
            log.warning("%s", state.describe())
            return True
        return False

    def play(self, i: int, round_no: int | None = None, decide: bool | None = None) -> RoundOutcome:
        """`play_bar` on the runner's event loop (the synchronous entry point)."""
        return self._loop.run_until_complete(self.play_bar(i, round_no, decide))

    def close(self) -> None:
        """Close the agents' HTTP clients and the event loop."""
        for seat in self.seats:
            close = getattr(seat.acc.agent, "aclose", None)
            if close is not None:
                try:
                    self._loop.run_until_complete(close())
                except Exception as exc:  # closing is best effort; the run's results are already committed
                    log.debug("closing %s's client: %s", seat.name, exc)
        self._loop.close()

    def is_decision_bar(self, i: int) -> bool:
        return (i - self.first_row) % self.config.rounds.bars_per_round == 0

    async def play_bar(self, i: int, round_no: int | None = None, decide: bool | None = None) -> RoundOutcome:
        """Settle bar `i`, let the agents decide (on decision bars, or as `decide` says), and commit it as a round."""
        wall0 = time.time_ns()
        t0 = time.perf_counter()
        round_no = i - self.first_row if round_no is None else round_no
        market = self.market
        t_close = market.close_times_ns[i]
        snapshot = MarketSnapshot(market, i)
        funding_now = self.funding_rows.get(i)
        for seat in self.seats:
            settle_bar(seat.acc, i, funding_now, self.marks)
            self._forget_closed(seat)
        close_marks = self.marks.at_close(i)
        w = RoundWrite(
            run_id=self.run_id,
            round_no=round_no,
            ts=t_close,
            snapshot_hash=snapshot.content_hash(),
            snapshot_content=_snapshot_content(snapshot),
            wall_started=wall0,
            wall_s=0.0,
            accounts=[],
        )
        errors: dict[str, str] = {}
        decided = self.is_decision_bar(i) if decide is None else decide
        if decided:
            if self.breakers.tripped:
                self._apply_resets()
            gates = {seat.name: self.breakers.gate(seat.name) for seat in self.seats}
            engine_closes = {seat.name: self._invalidations(seat, snapshot, close_marks) for seat in self.seats}
            turns = await self._play_all(snapshot, close_marks, round_no, gates)
            for seat, turn in zip(self.seats, turns, strict=True):
                if turn.error:
                    errors[seat.name] = turn.error
                gate = gates[seat.name]
                risk = self.risk if gate is None else BreakerRisk(self.risk, gate)
                benched = gate is not None and gate.state == HALTED
                self._apply(seat, turn, engine_closes[seat.name], snapshot, i, round_no, close_marks, w, risk, benched)
        for seat in self.seats:
            self._record_state(seat, i, round_no, close_marks, seat.acc.fills, w)
        changes = self.breakers.observe(round_no, t_close, [seat.recent_equity[-1] for seat in self.seats])
        if self._breaker_rewrites:
            changes = [*self._breaker_rewrites, *changes]
            self._breaker_rewrites = []
        w.breakers.extend(c.row(self.run_id) for c in changes)
        w.wall_s = time.perf_counter() - t0
        committed = self.store.commit_round(w)
        for seat in self.seats:  # the in-memory lists only feed this round's rows; the store keeps history
            seat.acc.fills.clear()
            seat.acc.verdicts.clear()
        self.last_round = round_no
        return RoundOutcome(round_no, t_close, decided, committed, w.wall_s, errors)

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

    # -- agents ---------------------------------------------------------------------------------------------------
    async def _play_all(
        self, snapshot: MarketSnapshot, marks: list[float], round_no: int, gates: dict[str, Trip | None]
    ) -> list[Turn]:
        deadline_s = self.config.rounds.deadline_s
        deadline = time.monotonic() + deadline_s
        tasks = []
        for seat in self.seats:
            gate = gates.get(seat.name)
            if gate is not None and gate.state == HALTED:  # not asked: no new orders, and no LLM cost
                tasks.append(_benched(Turn([hold(s, gate.verdict()) for s in snapshot.symbols])))
                continue
            pf = seat.acc.portfolio
            eq = equity(pf, snapshot.symbols, marks) if pf.positions else pf.cash
            view = AccountView(pf.cash, eq, self.cash0, pf.positions)
            ctx = TurnContext(
                round_no=round_no,
                started_at_ns=self.started_at_ns,
                max_leverage=self.config.market.risk.max_leverage,
                exit_plans=dict(seat.plans),
                stats=self._stats(seat),
                deadline=deadline,
            )
            tasks.append(self._play(seat.acc.agent, snapshot, view, ctx, deadline_s))
        return list(await asyncio.gather(*tasks))

    @staticmethod
    async def _play(
        agent: Agent, snapshot: MarketSnapshot, view: AccountView, ctx: TurnContext, deadline_s: float
    ) -> Turn:
        """One agent's turn; a slow, failing or rate-limited agent holds and the others are unaffected."""
        t0 = time.perf_counter()
        try:
            if isinstance(agent, TurnAgent):
                return await asyncio.wait_for(
                    agent.play_turn(snapshot, view, ctx), timeout=deadline_s + DEADLINE_GRACE_S
                )
            return turn_from_decide(agent, snapshot, view)
        except CacheMissError:
            raise
        except TimeoutError:
            why = f"deadline of {deadline_s:g}s exceeded: holding this round"
        except Exception as exc:  # an agent's bug must not stop the arena; it holds and the reason is recorded
            why = f"agent failed ({type(exc).__name__}: {exc}): holding this round"
            log.warning("%s: %s", agent.name, why)
        return Turn([hold(s, why) for s in snapshot.symbols], error=why, latency_s=time.perf_counter() - t0)

    def _stats(self, seat: _Seat) -> AgentStats | None:
        eq = np.asarray(seat.recent_equity, dtype=np.float64)
        if len(eq) < 3:
            return None
        rets = np.diff(eq) / eq[:-1]
        sd = float(rets.std(ddof=1))
        ppy = 365.25 * 86400e9 / self.market.bar_ns
        sharpe = float(rets.mean() / sd * math.sqrt(ppy)) if sd > 0 else 0.0
        wins = sum(1 for x in seat.exits if x > 0)
        win_rate = wins / len(seat.exits) if seat.exits else 0.0
        ret = (eq[-1] / self.cash0 - 1.0) * 100.0
        return AgentStats(sharpe=sharpe, win_rate=win_rate, trades=len(seat.exits), return_pct=float(ret))

    # -- engine rules around the agents ---------------------------------------------------------------------------
    def _invalidations(self, seat: _Seat, snapshot: MarketSnapshot, marks: list[float]) -> list[Decision]:
        """Close positions whose invalidation condition holds on this closed bar (evaluated safely, never eval)."""
        out = []
        positions = seat.acc.portfolio.positions
        for sym, cond in seat.conditions.items():
            pos = positions.get(sym)
            if pos is None:
                continue
            ctx = coin_context(snapshot, sym)
            if ctx is None:
                continue
            values = dict(ctx.fields())
            price = marks[snapshot.symbols.index(sym)]
            values["entry_price"] = pos.entry_price
            values["unrealized_pnl_pct"] = pos.direction * (price / pos.entry_price - 1.0) * 100.0 * pos.leverage
            if cond.evaluate(values):
                out.append(Decision(sym, Action.CLOSE, size=0.0, reason=f"invalidation condition met: {cond.source}"))
        return out

    def _forget_closed(self, seat: _Seat) -> None:
        """Drop exit plans of positions that closed (stop, take-profit, liquidation) and are not pending."""
        open_or_pending = set(seat.acc.portfolio.positions) | {o.symbol for o in seat.acc.broker.pending.values()}
        for sym in [s for s in seat.plans if s not in open_or_pending]:
            del seat.plans[sym]
            seat.conditions.pop(sym, None)

    def _apply(
        self,
        seat: _Seat,
        turn: Turn,
        engine_closes: list[Decision],
        snapshot: MarketSnapshot,
        i: int,
        round_no: int,
        marks: list[float],
        w: RoundWrite,
        risk: RiskEngine,
        benched: bool = False,
    ) -> None:
        acc = seat.acc
        closed_now = {d.symbol for d in engine_closes}
        decisions = [*engine_closes, *turn.decisions]
        pf = act_on_decisions(
            acc,
            decisions,
            risk,
            self.run_id,
            self.market.close_times_ns[i],
            list(marks),
            self.marks.volumes(i),
            self.at_close,
            snapshot,
        )
        acc.portfolio = pf
        verdicts = {id(v.decision): v for v in acc.verdicts}
        call = turn.call
        if call is not None:
            w.prompts.append(
                t.PromptRow(sha256=call.prompt_sha, version=call.prompt_version, system=call.system, user=call.user)
            )
            w.llm_calls.append(
                t.LLMCallRow(
                    run_id=self.run_id,
                    round_no=round_no,
                    agent=seat.name,
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
        t_close = self.market.close_times_ns[i]
        for d in decisions:
            engine_made = any(d is e for e in engine_closes)
            note = None if engine_made else turn.notes.get(d.symbol)
            verdict = verdicts.get(id(d))
            if verdict is None and d.action is not Action.HOLD and not engine_made and d.symbol in closed_now:
                verdict = RiskVerdict(d, False, reasons=("the engine closed this position on its invalidation",))
            if engine_made:
                source = "invalidation"
            elif benched:
                source = "breaker"
            else:
                source = "fallback" if turn.error and d.action is Action.HOLD else "agent"
            w.decisions.append(
                _decision_row(self.run_id, round_no, seat.name, t_close, d, verdict, note, source, turn.latency_s)
            )
            if verdict is not None and verdict.approved:
                w.orders.append(_order_row(self.run_id, seat.name, round_no, t_close, d, verdict, marks, snapshot))
                if d.is_entry:
                    plan = ExitPlan(d.take_profit, d.stop_loss, note.invalidation_condition if note else "")
                    seat.plans[d.symbol] = plan
                    seat.conditions.pop(d.symbol, None)
                    seat.conditions.update(self._compile({d.symbol: plan}))

    def _record_state(
        self, seat: _Seat, i: int, round_no: int, marks: list[float], fills: Sequence[Fill], w: RoundWrite
    ) -> None:
        acc = seat.acc
        pf = acc.portfolio
        self._forget_closed(seat)
        for f in fills:
            w.fills.append(_fill_row(self.run_id, seat.name, round_no, seat.seq, f))
            seat.seq += 1
            if f.kind is not FillKind.ENTRY:
                seat.exits.append(f.realized_pnl - f.fee)
        symbols = self.market.symbols
        eq = equity(pf, symbols, marks) if pf.positions else pf.cash
        seat.recent_equity.append(eq)
        w.equity.append(
            t.EquityRow(
                run_id=self.run_id,
                agent=seat.name,
                round_no=round_no,
                ts=self.market.close_times_ns[i],
                cash=pf.cash,
                equity=eq,
                gross_exposure=gross_notional(pf, symbols, marks) if pf.positions else 0.0,
            )
        )
        w.accounts.append(
            StoredAccount(
                agent=seat.name,
                last_round=round_no,
                cash=pf.cash,
                realized_pnl=pf.realized_pnl,
                fees_paid=pf.fees_paid,
                funding_paid=pf.funding_paid,
                positions=dict(pf.positions),
                pending=list(acc.broker.pending.values()),
                plans={s: p.to_dict() for s, p in seat.plans.items()},
            )
        )
        w.invalidations[seat.name] = {s: p.invalidation_condition for s, p in seat.plans.items()}


async def _benched(turn: Turn) -> Turn:
    """A halted account's turn: holds decided by the breaker, gathered with the agents that play."""
    return turn


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


def _order_row(
    run_id: str,
    agent: str,
    round_no: int,
    ts: int,
    d: Decision,
    v: RiskVerdict,
    marks: list[float],
    snapshot: MarketSnapshot,
) -> t.OrderRow:
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
        reference_price=marks[snapshot.symbols.index(d.symbol)],
        created_at=ts,
    )


def _fill_row(run_id: str, agent: str, round_no: int, seq: int, f: Fill) -> t.FillRow:
    return t.FillRow(
        fill_id=f"{f.order_id}#{f.kind.value}",
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
    )


def _finite(x: float) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else float("nan")
