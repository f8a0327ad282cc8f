"""The simulated twin of a paper or live run, and where the equity gap between the two comes from (the
pricing and the split of the gap, pure functions, are in `twin_gap`).

`twin_report(store, run_id)` replays the run's recorded decisions through the simulator (`SimBroker`, with the
run's own config: costs, execution, risk limits, breakers) on the run's own bars, then splits each agent's equity
gap between the run and its twin into parts. Nothing is written to the store: the report is a pure function of
the ledger, computed on demand.

The twin
--------
- Bars: each round's snapshot row holds every symbol's latest closed bar (o/h/l/c/v, open time `t`) and its latest
  funding rate. The twin's tape gets one row per round (a symbol whose latest bar is older has no bar in that row).
  Funding events are inferred where a symbol's recorded rate changes (or first appears): settled at that round's
  bar close, hence charged at the next bar's open, as the replay feed charges an event settled during a bar. Two
  consecutive equal rates look like one event, so such a run's funding can differ in the twin: the funding part
  shows it.
- Decisions: a `LedgerAgent` per account returns, on each decision round, exactly the decisions the ledger recorded
  for it (agent, fallback and breaker holds, and the engine's invalidation closes, in the recorded order), so the
  twin needs no API key and is exact for quant agents too. Every one goes through the twin's own RiskEngine and
  breakers: a decision the run's risk engine rejected may be approved in the twin (and the reverse) when the two
  accounts differ; the fill that results is a one-sided fill. Every agent's source is "recorded decisions".
- `from_cache=True` (`arena twin RUN_ID --from-cache`): LLM agents (`run_agents` rows of kind "llm") are rebuilt
  from the run's stored config in strict cache mode and asked again on the twin's snapshots, so the twin replays
  "from the cached responses". The cache key is the prompt, so the twin gives the agent what the run gave it: the
  same tape history (the warm-up, see below), round numbers and start time, exit plans, stats window and closed
  positions (the driver's `TurnContext`, rebuilt by the same driver), and an account that matches the run's as
  long as the broker did (a simulator run: always). A miss (`CacheMissError`: the run's entry is gone, or the
  twin's prompt differs from the run's, e.g. after a real broker's different fill) switches that agent to its
  recorded decisions from that round on, with their notes (invalidation conditions); the report says per agent
  where its decisions came from ("cache (strict)", "cache until round N, then recorded", or "recorded
  decisions") and why the cache missed. Re-asked rounds whose decisions differ from the recorded ones are
  counted and the first few listed (a finding: a non-deterministic answer or a changed parser). Quant agents
  always replay their recorded decisions.
- Warm-up (from-cache only): the run's first prompt already showed indicators over the history before its first
  round, and an indicator window that is not full yet depends on how much history there was, so the twin's tape
  holds the run's own history. A run recorded over `load_arena_market(config)` (its data hash is that market's
  fingerprint) gets exactly the rows before its first round; any other run (a live paper feed) gets the
  `rounds.history_bars - 2` bars the paper feed warms up with, read from the bundled sample and the ingest cache
  (`arena_lib.data.history.load_market`), and a `TwinError` names the bars that are not there. The last funding
  rate of the warm-up is where the inference of funding events below starts.
- Order and exit ids derive from run/agent/bar/symbol, so the twin's fills carry the run's fill ids and are
  matched by them.

The decomposition (per agent; all amounts in the quote currency, USDT)
----------------------------------------------------------------------
For a fill i: s = +1 (buy) or -1 (sell), q its quantity, p its price, f its fee, M its symbol's last close (the mark
of the final equity). R is its reference price: the order's `reference_price` (the decision bar's close) for an
agent order; the stop or take-profit level (from the entry order that set it) for a stop or take-profit exit; the
fill price itself for a liquidation. A is its arrival price, the market price when it was filled: R when it was
filled in the decision's own round (at its close: the simulator's `close` fills, or a broker that fills at once),
else the open of the symbol's bar in which it was filled (the next open for the simulator's `next_open` fills; a
live fill inside a bar gets that bar's open, the finest price the ledger has); A = R for engine exits.

Per fill, against its own reference (the per-fill table):
    slippage_usd = s * q * (p - R)            (positive: a cost);  slippage_bps = s * (p / R - 1) * 1e4
    latency_usd  = s * q * (A - R)            (the move from the decision's close to the fill time)
    execution    = s * q * (p - A)            (slippage_usd = latency_usd + execution)

Every fill adds s * q * (M - p) - f to the final equity, and funding is charged on top, so the final equity is
cash0 + sum_i [s_i q_i (M - p_i) - f_i] - funding (exactly, except for liquidations, which lose the margin).
With gap = E_real - E_twin, matched fills (same fill id) r/t and one-sided fills:

    fees      = - sum_matched (f_r - f_t)
    latency   = - sum_matched s q_r (A_r - A_t)
    slippage  = - sum_matched s q_r ((p_r - A_r) - (p_t - A_t))
    funding   = - (funding_real - funding_twin)                 (each account's funding paid over the run)
    one_sided = sum_real_only (s q (M - p) - f) - sum_twin_only (s q (M - p) - f)
    residual  = gap - (fees + latency + slippage + funding + one_sided)

so the parts add up to the gap exactly. The residual holds what no part names: sum_matched s (q_r - q_t)(M - p_t)
(the same decision sized on a different equity, e.g. after the other side's fees), a liquidation's lost margin
beyond its price move, and float rounding. A run whose broker is the simulator has a twin gap of 0 and all parts 0.

Limits: operator resets of circuit breakers (`arena breakers reset`) are not replayed (the twin's breakers only
trip and clear by themselves); funding inferred from rate changes, as above.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from arena_lib.agents.base import AccountView
from arena_lib.agents.llm.cache import CacheMissError, ResponseCache, cache_key
from arena_lib.agents.turn import DecisionNote, Turn, TurnContext
from arena_lib.arena import schema as t
from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.store import ArenaStore
from arena_lib.arena.twin_gap import (
    FILL_COLUMNS,
    PARTS,
    SOURCE_RECORDED,
    AgentGap,
    decompose,
    fill_prices,
    optional_float,
    records,
)
from arena_lib.core.types import Action, Decision, SizeUnit
from arena_lib.data.errors import DataError
from arena_lib.data.market import MarketData
from arena_lib.data.resample import timeframe_to_ns
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.data.tape import FundingEvent, MarketTape
from arena_lib.engine.breakers import HALTED, BreakerBook, Trip
from arena_lib.engine.broker import order_id
from arena_lib.engine.driver import Account, BarRecord, Driver, RoundPolicy, open_accounts
from arena_lib.engine.feeds import ReplayFeed

if TYPE_CHECKING:
    from arena_lib.agents.llm.agent import LLMAgent

__all__ = ["FILL_COLUMNS", "PARTS", "AgentGap", "TwinError", "TwinReport", "decompose", "fill_prices", "twin_report"]

_SOURCE_CACHE = "cache (strict)"
FIRST_DIFFERING = 5  # differing rounds listed per agent (all are counted)


class TwinError(ValueError):
    """The run cannot have a twin (unknown run, a replay run, no rounds, the warm-up history a re-asked LLM agent
    needs is missing): the message says why, in one line."""


@dataclass
class CacheReplay:
    """How one LLM agent's twin decisions were made with `from_cache`: re-asked from the cache, then (after a miss)
    its recorded decisions."""

    agent: str
    source: str  # "cache (strict)" | "cache until round N, then recorded" | "recorded decisions"
    reasked: int  # decision rounds answered from the cache
    differing: int  # of those, rounds whose decisions differ from the recorded ones
    differing_rounds: list[int]  # the first FIRST_DIFFERING of them
    fallback_round: int | None  # the round of the first miss (recorded decisions from it on); None: no miss
    miss: str  # why the cache missed ('' when it did not)


@dataclass
class TwinReport:
    run_id: str
    mode: str
    rounds: int
    agents: list[AgentGap]
    fills: pd.DataFrame  # FILL_COLUMNS: every fill of both sides, with its slippage against its reference
    divergences: list[str] = field(default_factory=list)  # re-asked decisions that differ from the recorded ones
    replays: list[CacheReplay] = field(default_factory=list)  # per LLM agent, with `from_cache`
    warmup: str = ""  # the history before the first round on the twin's tape (with `from_cache`)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(a) for a in self.agents])

    def to_dict(self) -> dict[str, Any]:
        fills = self.fills.astype(object).where(self.fills.notna(), None)
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "rounds": self.rounds,
            "agents": [asdict(a) for a in self.agents],
            "fills": fills.to_dict("records"),
            "divergences": list(self.divergences),
            "replays": [asdict(r) for r in self.replays],
            "warmup": self.warmup,
        }


# -- reading the ledger --------------------------------------------------------------------------------------------
@dataclass
class LedgerFrames:
    """What the twin and the decomposition read from the ledger for one run."""

    run: t.RunRow
    agents: list[str]
    kinds: dict[str, str]  # agent -> llm | quant | ml
    rounds: pd.DataFrame  # round_no, ts, content (the snapshot's compact content)
    decisions: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    equity: pd.DataFrame
    funding_paid: dict[str, float]


def read_ledger(store: ArenaStore, run_id: str) -> LedgerFrames:
    """The run's frames; `TwinError` for an unknown run, a replay run or a run with no committed round."""
    try:
        run = store.get_run(run_id)
    except KeyError:
        raise TwinError(f"no run {run_id!r} in the store (see `arena runs`)") from None
    if run.mode == "replay":
        raise TwinError(f"run {run_id} is a replay run: it ran on the simulator already, so it is its own twin")
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.RoundRow.round_no, t.RoundRow.ts, t.SnapshotRow.content)
            .join(t.SnapshotRow, t.SnapshotRow.snapshot_hash == t.RoundRow.snapshot_hash)
            .where(t.RoundRow.run_id == run_id)
            .order_by(t.RoundRow.round_no)
        ).all()
    if not rows:
        raise TwinError(f"run {run_id} has no committed round yet: nothing to replay")
    accounts = store.load_accounts(run_id)
    agent_rows = store.run_agents(run_id)
    return LedgerFrames(
        run=run,
        agents=[r.agent for r in agent_rows],
        kinds={r.agent: r.kind for r in agent_rows},
        rounds=pd.DataFrame(rows, columns=["round_no", "ts", "content"]),
        decisions=store.decisions_frame(run_id),
        orders=store.frame(t.OrderRow, run_id, order=("agent", "round_no")),
        fills=store.fills_frame(run_id),
        equity=store.equity_frame(run_id),
        funding_paid={name: float(a.funding_paid) for name, a in accounts.items()},
    )


# -- the twin ------------------------------------------------------------------------------------------------------
class LedgerAgent:
    """Replays the ledger: answers each decision round with exactly the decisions recorded for `name`."""

    def __init__(self, name: str, decisions: pd.DataFrame, round_at: Mapping[int, int]) -> None:
        self.name = name
        self.round_at = dict(round_at)  # bar close (ns) -> round number
        self.by_round: dict[int, list[Decision]] = {}
        self.closes: dict[int, list[Decision]] = {}
        for row in records(decisions.sort_values("id")):
            d = _decision(row)
            self.by_round.setdefault(int(row["round_no"]), []).append(d)
            if row["source"] == "invalidation":
                self.closes.setdefault(int(row["round_no"]), []).append(d)

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        return list(self.by_round.get(self.round_at.get(snapshot.timestamp_ns, -1), ()))

    def engine_closes(self, snapshot: MarketSnapshot) -> list[Decision]:
        return list(self.closes.get(self.round_at.get(snapshot.timestamp_ns, -1), ()))


class ReaskedAgent:
    """An LLM agent asked again in strict cache mode; from its first miss on, its recorded decisions.

    On a hit the turn is the agent's own (decisions and notes, so the twin's engine adopts its exit plans and
    invalidation conditions as the run's did) and is compared with the decisions the run recorded for that round.
    After a miss each turn is the round's recorded decisions (the engine's invalidation closes excepted: the twin's
    engine makes those itself from the recorded notes).
    """

    kind = "llm"

    def __init__(
        self,
        llm: LLMAgent,
        decisions: pd.DataFrame,
        calls: pd.DataFrame,
        round_at: Mapping[int, int],
        prompt_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.name = llm.name
        self.llm = llm
        self.round_at = dict(round_at)  # bar close (ns) -> round number
        self.prompt_of = prompt_of
        self.asked: dict[int, list[Decision]] = {}  # the agent's own decisions per round (agent and fallback rows)
        self.replayed: dict[int, list[Decision]] = {}  # what a fallback turn returns (invalidation closes left out)
        self.notes: dict[int, dict[str, DecisionNote]] = {}
        for row in records(decisions.sort_values("id")):
            r, source = int(row["round_no"]), str(row["source"])
            if source == "invalidation":
                continue
            d = _decision(row)
            self.replayed.setdefault(r, []).append(d)
            if source in ("agent", "fallback"):
                self.asked.setdefault(r, []).append(d)
            if source == "agent":
                inv = row.get("invalidation")
                self.notes.setdefault(r, {})[d.symbol] = DecisionNote(
                    optional_float(row.get("confidence")),
                    optional_float(row.get("risk_usd")),
                    inv if isinstance(inv, str) else "",
                )
        self.keys = {int(r): (str(k or ""), str(p or "")) for r, k, p in _call_keys(calls)}
        self.reasked = 0
        self.differing: list[int] = []
        self.divergences: list[str] = []
        self.fallback_round: int | None = None
        self.miss = ""

    @property
    def source(self) -> str:
        if self.fallback_round is None:
            return _SOURCE_CACHE
        if self.reasked == 0:
            return SOURCE_RECORDED
        return f"cache until round {self.fallback_round}, then recorded"

    def replay(self) -> CacheReplay:
        return CacheReplay(
            agent=self.name,
            source=self.source,
            reasked=self.reasked,
            differing=len(self.differing),
            differing_rounds=self.differing[:FIRST_DIFFERING],
            fallback_round=self.fallback_round,
            miss=self.miss,
        )

    async def play_turn(self, snapshot: MarketSnapshot, account: AccountView, context: TurnContext) -> Turn:
        r = context.round_no
        if self.fallback_round is None:
            try:
                turn = await self.llm.play_turn(snapshot, account, context)
            except CacheMissError:
                self._fall_back(r, self._why_missed(snapshot, account, context))
            except Exception as exc:  # re-asking failed otherwise: the recorded decisions are still the run's
                self._fall_back(r, f"round {r}: re-asking failed ({type(exc).__name__}: {exc})")
            else:
                self.reasked += 1
                recorded = self.asked.get(r, [])
                if [_comparable(d) for d in turn.decisions] != [_comparable(d) for d in recorded]:
                    self.differing.append(r)
                    if len(self.differing) <= FIRST_DIFFERING:
                        self.divergences.append(
                            f"{self.name} round {r}: recorded [{_describe(recorded)}], "
                            f"re-asked [{_describe(turn.decisions)}]"
                        )
                return turn
        return Turn(list(self.replayed.get(r, ())), dict(self.notes.get(r, {})))

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        """The `Agent` interface; the twin's driver plays `play_turn` (this agent is a turn agent)."""
        return list(self.replayed.get(self.round_at.get(snapshot.timestamp_ns, -1), ()))

    async def aclose(self) -> None:
        await self.llm.aclose()

    def _fall_back(self, round_no: int, why: str) -> None:
        self.fallback_round = round_no
        self.miss = why

    def _why_missed(self, snapshot: MarketSnapshot, account: AccountView, context: TurnContext) -> str:
        """Why round `context.round_no` missed: the run's own request is not cached, or the twin asked another."""
        r = context.round_no
        recorded_key, recorded_sha = self.keys.get(r, ("", ""))
        if not recorded_key:
            return f"round {r}: the run did not ask {self.name} in this round"
        llm = self.llm
        prompt = llm.build_prompt(snapshot, account, context)
        c = llm.config
        key = cache_key(c.provider, c.model, prompt.system, prompt.user, llm.request_params())
        if key == recorded_key:
            return f"round {r}: the run's own request is not in the cache"
        if prompt.sha256 == recorded_sha:
            return f"round {r}: the prompt is the run's but the request parameters differ (the config changed?)"
        where = ""
        if self.prompt_of is not None:
            where = _first_difference(self.prompt_of(recorded_sha), prompt.system + "\n" + prompt.user)
        return f"round {r}: the twin's prompt differs from the run's{where}"


def _call_keys(calls: pd.DataFrame) -> list[tuple[Any, Any, Any]]:
    if not len(calls):
        return []
    return list(zip(calls["round_no"], calls["cache_key"], calls["prompt_sha"], strict=True))


def _first_difference(recorded: str | None, twin: str) -> str:
    """': line N: run 'x' vs twin 'y'' for the first line where two prompts differ ('' when unknown)."""
    if recorded is None:
        return ""
    a, b = recorded.splitlines(), twin.splitlines()
    for k, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f" (line {k}: run {x[:100]!r} vs twin {y[:100]!r})"
    return f" (the run's prompt has {len(a)} lines, the twin's {len(b)})" if len(a) != len(b) else ""


def _comparable(d: Decision) -> tuple[Any, ...]:
    """What a decision row records of a decision, with non-finite numbers as None."""
    return (
        d.symbol,
        d.action.value,
        _finite_or_none(d.size),
        d.size_unit.value,
        _finite_or_none(d.leverage),
        _finite_or_none(d.stop_loss),
        _finite_or_none(d.take_profit),
        (d.reason or "")[:4000],
    )


def _finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _describe(decisions: Sequence[Decision]) -> str:
    def one(d: Decision) -> str:
        if d.action is Action.HOLD:
            return f"{d.symbol} hold"
        levels = "".join(f" {name} {v:g}" for name, v in (("sl", d.stop_loss), ("tp", d.take_profit)) if v is not None)
        return f"{d.symbol} {d.action.value} {d.size:g} {d.size_unit.value} x{d.leverage:g}{levels}"

    return ", ".join(one(d) for d in decisions)


def _decision(row: Mapping[str, Any]) -> Decision:
    return Decision(
        symbol=str(row["symbol"]),
        action=Action(row["action"]),
        size=float(row["size"]),
        size_unit=SizeUnit(row["size_unit"]),
        leverage=float(row["leverage"]),
        stop_loss=optional_float(row["stop_loss"]),
        take_profit=optional_float(row["take_profit"]),
        reason=str(row["reason"] or ""),
    )


class _TwinDriver(Driver):
    """The engine's driver; a halted account still gets the engine's recorded invalidation closes.

    In the run those closes come from the invalidation conditions the agent's notes carried; the twin's agents give
    no notes, so the ledger agent hands them back as decisions, also on a bar where a breaker benches the account.
    """

    def _play_sync(self, acc: Account, snapshot: MarketSnapshot, gate: Trip | None) -> Turn:
        return _with_closes(acc, snapshot, gate, super()._play_sync(acc, snapshot, gate))

    async def _play_all(self, snapshot: MarketSnapshot, round_no: int, gates: dict[str, Trip | None]) -> list[Turn]:
        # With a turn agent aboard (a re-asked LLM agent) the driver plays async and benches a halted account
        # without `_play_sync`: its recorded invalidation closes are added here instead.
        turns = await super()._play_all(snapshot, round_no, gates)
        return [
            _with_closes(acc, snapshot, gates.get(acc.name), turn)
            for acc, turn in zip(self.accounts, turns, strict=True)
        ]


def _with_closes(acc: Account, snapshot: MarketSnapshot, gate: Trip | None, turn: Turn) -> Turn:
    agent = acc.agent
    if gate is not None and gate.state == HALTED and isinstance(agent, LedgerAgent):
        return Turn([*agent.engine_closes(snapshot), *turn.decisions], error=turn.error)
    return turn


class _Recorder:
    """The twin's ledger: keeps every fill (with its round) in memory."""

    wants_records = True

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []

    def record(self, driver: Driver, bar: BarRecord | None) -> None:
        assert bar is not None
        for name, at in bar.turns.items():
            for d, _verdict, mark in at.approved_orders:
                self.orders.append(
                    {
                        "order_id": order_id(driver.run_id, name, bar.ts, d.symbol),
                        "agent": name,
                        "round_no": bar.round_no,
                        "symbol": d.symbol,
                        "stop_loss": d.stop_loss,
                        "take_profit": d.take_profit,
                        "reference_price": mark,
                        "created_at": bar.ts,
                    }
                )
        for acc in driver.accounts:
            for f in acc.fills:
                self.rows.append(
                    {
                        "fill_id": f"{f.order_id}#{f.kind.value}",
                        "order_id": f.order_id,
                        "agent": acc.name,
                        "round_no": bar.round_no,
                        "symbol": f.symbol,
                        "ts": f.timestamp,
                        "side": f.side.value,
                        "kind": f.kind.value,
                        "quantity": f.quantity,
                        "price": f.price,
                        "fee": f.fee,
                        "realized_pnl": f.realized_pnl,
                        "funding": f.funding,
                    }
                )


@dataclass
class TwinRun:
    """The twin's outcome: its fills, each account's final equity and funding paid, the last close per symbol."""

    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: dict[str, float]
    funding_paid: dict[str, float]
    marks: dict[str, float]
    opens: dict[tuple[str, int], float]  # (symbol, bar open ns) -> open, for arrival prices
    bar_ns: int


def played_bars(
    frames: LedgerFrames, symbols: Sequence[str], bar_ns: int, last_rates: Mapping[str, float] | None = None
) -> list[tuple[int, np.ndarray, np.ndarray, list[FundingEvent]]]:
    """The run's played bars from its snapshots: (open time, values symbols x OHLCV, present, funding events).

    `last_rates`: each symbol's latest funding rate before the first round (from the warm-up), where a change at
    the first round is an event; without it, the first rate seen counts as settled before the run.
    """
    out = []
    last_rate: dict[str, float] = dict(last_rates or {})
    for rnd in records(frames.rounds):
        content = rnd["content"] or {}
        open_ns = int(rnd["ts"]) - bar_ns
        values = np.full((len(symbols), 5), np.nan)
        present = np.zeros(len(symbols), dtype=bool)
        events: list[FundingEvent] = []
        for j, sym in enumerate(symbols):
            b = content.get(sym)
            if not isinstance(b, dict):
                continue
            if int(b.get("t", -1)) == open_ns:
                values[j] = [b["o"], b["h"], b["l"], b["c"], b["v"]]
                present[j] = True
            rate = b.get("funding")
            if rate is not None and (sym not in last_rate or last_rate[sym] != rate):
                if sym in last_rate:  # the first rate seen was settled before the run: not charged in it
                    events.append(FundingEvent(sym, int(rnd["ts"]), float(rate)))
                last_rate[sym] = float(rate)
        out.append((open_ns, values, present, events))
    return out


def round_times(frames: LedgerFrames) -> dict[int, int]:
    """Bar close (ns) -> round number, for every committed round."""
    return {int(ts): int(r) for r, ts in zip(frames.rounds["round_no"], frames.rounds["ts"], strict=True)}


def run_twin(
    frames: LedgerFrames, agents: Sequence[Any] | None = None, warmup: tuple[MarketData, int] | None = None
) -> TwinRun:
    """Play the run's bars through the simulator with `agents` (default: a `LedgerAgent` per account).

    `warmup`: a market whose first rows go on the tape before the first round (history the snapshots show).
    """
    config = ArenaConfig.from_dict(frames.run.config)
    run_id = frames.run.run_id
    symbols = tuple(frames.run.symbols)
    timeframe = frames.run.timeframe
    bar_ns = timeframe_to_ns(timeframe)
    round_at = round_times(frames)
    if agents is None:
        dec = frames.decisions
        agents = [LedgerAgent(name, dec[dec["agent"] == name], round_at) for name in frames.agents]
    bt = config.market
    accounts = open_accounts(agents, bt, symbols, run_id)
    cash0 = bt.execution.initial_cash
    breakers = BreakerBook(config.breakers, [a.name for a in agents], cash0)
    rounds = config.rounds
    policy = RoundPolicy(rounds.bars_per_round, None, rounds.stats_window, hold_on_error=True)
    tape = MarketTape(symbols, timeframe)
    last_rates: dict[str, float] | None = None
    if warmup is not None:
        market, rows = warmup
        if tuple(market.symbols) != symbols:
            raise TwinError(f"the warm-up history has symbols {list(market.symbols)}, the run {list(symbols)}")
        if rows:
            ReplayFeed(market, rows, rows).warm_up(tape)
        first_close = int(frames.rounds["ts"].iloc[0])
        last_rates = {}
        for j, sym in enumerate(symbols):
            _, rates = tape.funding_history(j, first_close)
            if len(rates):
                last_rates[sym] = float(rates[-1])
    recorder = _Recorder()
    driver = _TwinDriver(accounts, bt, tape, run_id=run_id, policy=policy, breakers=breakers, ledger=recorder)
    decided = set(frames.decisions["round_no"].astype(int)) if len(frames.decisions) else set()
    opens: dict[tuple[str, int], float] = {}
    try:
        for (open_ns, values, present, events), round_no in zip(
            played_bars(frames, symbols, bar_ns, last_rates), frames.rounds["round_no"], strict=True
        ):
            tape.append_aligned(open_ns, values, None if present.all() else present, events)
            for j, sym in enumerate(symbols):
                if present[j]:
                    opens[(sym, open_ns)] = float(values[j, 0])
            driver.play_bar(int(round_no), int(round_no) in decided)
    finally:
        driver.close()
    marks = {s: float(m) for s, m in zip(symbols, tape.close_marks(), strict=True)}
    fills = pd.DataFrame(recorder.rows, columns=[*_FILL_KEYS])
    return TwinRun(
        fills=fills,
        orders=pd.DataFrame(recorder.orders, columns=_ORDER_KEYS),
        equity={acc.name: float(acc.equity) for acc in accounts},
        funding_paid={acc.name: float(acc.portfolio.funding_paid) for acc in accounts},
        marks=marks,
        opens=opens,
        bar_ns=bar_ns,
    )


_ORDER_KEYS = ("order_id", "agent", "round_no", "symbol", "stop_loss", "take_profit", "reference_price", "created_at")
_FILL_KEYS = (
    "fill_id",
    "order_id",
    "agent",
    "round_no",
    "symbol",
    "ts",
    "side",
    "kind",
    "quantity",
    "price",
    "fee",
    "realized_pnl",
    "funding",
)


def twin_report(
    store: ArenaStore, run_id: str, *, from_cache: bool = False, cache: ResponseCache | None = None
) -> TwinReport:
    """Replay a paper or live run's recorded decisions through the simulator and explain each agent's equity gap.

    `from_cache`: re-ask the run's LLM agents from `cache` (default: the configured response cache) in strict
    mode, falling back to an agent's recorded decisions from its first miss on (see the module).

    Raises `TwinError` (one line) for an unknown run, a replay run, a run with no committed round, or (with
    `from_cache`) a run whose warm-up history is not in the local data.
    """
    frames = read_ledger(store, run_id)
    if not from_cache:
        return explain(frames, run_twin(frames))
    return _from_cache(store, frames, cache)


def _from_cache(store: ArenaStore, frames: LedgerFrames, cache: ResponseCache | None) -> TwinReport:
    from arena_lib.agents.llm.agent import LLMAgent
    from arena_lib.arena.session import build_roster

    llm_names = [n for n in frames.agents if frames.kinds.get(n) == "llm"]
    if not llm_names:
        report = explain(frames, run_twin(frames))
        report.warmup = "none needed: the run has no LLM agent to re-ask"
        return report
    market, rows, note = warmup_history(frames)
    config = ArenaConfig.from_dict(frames.run.config)
    cache = cache if cache is not None else ResponseCache()
    roster = build_roster(config, cache=cache, cache_mode="strict", env={})
    built = {a.name: a for a in roster.agents if isinstance(a, LLMAgent)}
    round_at = round_times(frames)
    dec, calls = frames.decisions, store.llm_calls_frame(frames.run.run_id)
    agents: list[Any] = []
    reasked: list[ReaskedAgent] = []
    unbuilt: list[CacheReplay] = []

    def prompt_of(sha: str) -> str | None:
        row = store.prompt(sha)
        return None if row is None else row.system + "\n" + row.user

    for name in frames.agents:
        mine = dec[dec["agent"] == name]
        llm = built.get(name)
        if llm is not None and name in llm_names:
            agent = ReaskedAgent(llm, mine, calls[calls["agent"] == name], round_at, prompt_of)
            reasked.append(agent)
            agents.append(agent)
            continue
        agents.append(LedgerAgent(name, mine, round_at))
        if name in llm_names:
            why = roster.skipped.get(name, f"{name} is not in the run's stored config")
            unbuilt.append(CacheReplay(name, SOURCE_RECORDED, 0, 0, [], None, f"not rebuilt: {why}"))
    twin = run_twin(frames, agents, (market, rows))
    replays = {a.name: a.replay() for a in reasked} | {r.agent: r for r in unbuilt}
    report = explain(frames, twin, {name: r.source for name, r in replays.items()})
    report.replays = [replays[n] for n in frames.agents if n in replays]
    report.divergences = [line for a in reasked for line in a.divergences]
    report.warmup = note
    return report


def warmup_history(frames: LedgerFrames) -> tuple[MarketData, int, str]:
    """The history the run's tape held before its first round: (a market, how many of its first rows, a note).

    A run recorded over `load_arena_market(config)` gets that market's rows before its first round; any other run
    the paper feed's `history_bars - 2` bars before it from the local data. `TwinError` when they are not there.
    """
    from arena_lib.arena.session import load_arena_market
    from arena_lib.data.history import load_market

    run = frames.run
    config = ArenaConfig.from_dict(run.config)
    symbols, timeframe = tuple(run.symbols), run.timeframe
    bar_ns = timeframe_to_ns(timeframe)
    first_open = int(frames.rounds["ts"].iloc[0]) - bar_ns
    try:
        market: MarketData | None = load_arena_market(config)[0]
    except (DataError, ValueError, KeyError, OSError):
        market = None
    if market is not None and market.fingerprint() == run.data_hash and tuple(market.symbols) == symbols:
        rows = int(np.searchsorted(market.times, first_open))
        return market, rows, f"{rows} bars before the first round: the run's own market data ({run.data_hash})"
    n = max(config.rounds.history_bars - 2, 0)
    start = first_open - n * bar_ns
    what = f"the {n} {timeframe} bars before the first round ({_iso(start)} to {_iso(first_open - bar_ns)})"
    try:
        market = load_market(symbols, timeframe, _iso(start), _iso(first_open - bar_ns))
    except (DataError, ValueError) as exc:
        raise TwinError(
            f"run {run.run_id}: --from-cache needs {what} for the LLM prompts' indicators; the local data "
            f"(bundled sample and ingest cache) has not got them: {str(exc).splitlines()[0]}"
        ) from None
    rows = int(np.searchsorted(market.times, first_open))
    has = np.asarray(market.has_bar, dtype=bool)[:rows]
    short = []
    for j, sym in enumerate(market.symbols):
        seen = market.times[:rows][has[:, j]] if rows else market.times[:0]
        if not len(seen) or int(seen[0]) > start or int(seen[-1]) < first_open - bar_ns:
            got = f"{_iso(int(seen[0]))} to {_iso(int(seen[-1]))}" if len(seen) else "none"
            short.append(f"{sym} (has {got})")
    if short or tuple(market.symbols) != symbols:
        missing = ", ".join(short) or f"symbols {list(symbols)} (got {list(market.symbols)})"
        raise TwinError(
            f"run {run.run_id}: --from-cache needs {what} for the LLM prompts' indicators; missing in the local "
            f"data (bundled sample and ingest cache): {missing}"
        )
    tape = MarketTape(symbols, timeframe, capacity=rows)
    ReplayFeed(market, rows, rows).warm_up(tape)
    same = MarketSnapshot.of(tape).content_hash() == run.data_hash
    check = "it matches the run's recorded warm-up" if same else "the run's data hash does not confirm it"
    return market, rows, f"{rows} bars before the first round from the local data ({check})"


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def explain(frames: LedgerFrames, twin: TwinRun, sources: Mapping[str, str] | None = None) -> TwinReport:
    """The report from the ledger's frames and the twin's outcome (no I/O)."""
    eq = frames.equity
    agents: list[AgentGap] = []
    tables: list[pd.DataFrame] = []
    for name in frames.agents:
        mine = eq[eq["agent"] == name]
        real_eq = float(mine["equity"].iloc[-1]) if len(mine) else float("nan")
        real = fill_prices(_of(frames.fills, name), _of(frames.orders, name), twin.opens, twin.bar_ns)
        sim = fill_prices(_of(twin.fills, name), _of(twin.orders, name), twin.opens, twin.bar_ns)
        gap = decompose(
            name,
            real,
            sim,
            real_equity=real_eq,
            twin_equity=twin.equity.get(name, float("nan")),
            real_funding=frames.funding_paid.get(name, 0.0),
            twin_funding=twin.funding_paid.get(name, 0.0),
            marks=twin.marks,
            source=(sources or {}).get(name, SOURCE_RECORDED),
        )
        agents.append(gap)
        matched = set(real["fill_id"]) & set(sim["fill_id"])
        for side, frame in (("real", real), ("twin", sim)):
            if len(frame):
                frame = frame.assign(side_of=side, matched=frame["fill_id"].isin(matched), agent=name)
                tables.append(frame.reindex(columns=FILL_COLUMNS))
    fills = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=FILL_COLUMNS)
    return TwinReport(frames.run.run_id, frames.run.mode, len(frames.rounds), agents, fills)


def _of(fills: pd.DataFrame, agent: str) -> pd.DataFrame:
    return fills[fills["agent"] == agent].reset_index(drop=True)
