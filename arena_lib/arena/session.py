"""Starting, resuming and reporting arena runs: the layer the command line, notebooks and flows share.

`start_run` builds the roster (quant agents from the registry; LLM agents from their configs, skipped with the
variable to set when no key or endpoint is configured), loads the market with a warm-up before the window so the
first prompt already has its indicators, records the run and its flags (an LLM whose training cutoff is after the
window's start may remember those prices), and plays the bars. `resume_run` rebuilds the same run from the store
and continues after its last committed bar: a replay from the stored window, a paper run from the exchange (its
tape warmed up to the last committed bar, the bars missed meanwhile settled without asking the agents).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from arena_lib.agents.base import Agent
from arena_lib.agents.llm.agent import AgentNotConfiguredError, LLMAgent
from arena_lib.agents.llm.cache import CacheMode, ResponseCache
from arena_lib.agents.llm.config import configuration_status
from arena_lib.agents.model_agent import ModelNotFoundError
from arena_lib.agents.registry import build_agent
from arena_lib.arena import schema as t
from arena_lib.arena.config import ArenaConfig, cutoff_overlap
from arena_lib.arena.lease import LedgerConflictError
from arena_lib.arena.rounds import ArenaRunner, ProgressCallback, RoundOutcome
from arena_lib.arena.store import AccountState, ArenaStore
from arena_lib.core.clock import Clock, WallClock
from arena_lib.core.paths import git_state
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.data.resample import timeframe_to_ns, to_utc_timestamp
from arena_lib.data.snapshot import MarketSnapshot

log = logging.getLogger(__name__)
WARMUP_BARS = 300  # history before the window: the prompt's longest indicator (4h EMA50) needs ~200 hours


@dataclass
class Roster:
    """The agents that play, and those that cannot (with the reason, e.g. the variable to set)."""

    agents: list[Agent]
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class RunReport:
    run_id: str
    status: str
    rounds: int
    skipped: dict[str, str]
    cutoff_flags: dict[str, str]
    errors: dict[str, int]  # agent -> rounds in which it held because of an error
    message: str = ""  # why the run stopped early (the kill switch), plus the run's notes


def build_roster(
    config: ArenaConfig,
    *,
    cache: ResponseCache | None = None,
    cache_mode: CacheMode = "use",
    env: Mapping[str, str] | None = None,
) -> Roster:
    """Quant agents from the registry and LLM agents from their configs; unconfigured LLMs are listed, not fatal.

    A model agent whose registry alias holds no version yet (`ModelNotFoundError`) is listed the same way: a job
    that names `model@candidate` before the first retrain trades the rest of its roster.
    """
    agents: list[Agent] = []
    skipped: dict[str, str] = {}
    for spec in config.quant:
        try:
            agents.append(build_agent(spec))
        except ModelNotFoundError as exc:
            skipped[spec.label or spec.agent] = str(exc)
    for cfg in config.llm:
        status = configuration_status(cfg, env)
        if not status.configured and cache_mode != "strict":
            skipped[cfg.name] = status.reason
            continue
        try:
            agents.append(LLMAgent(cfg, cache=cache, cache_mode=cache_mode, env=env))
        except AgentNotConfiguredError as exc:
            skipped[cfg.name] = str(exc)
    return Roster(agents, skipped)


def load_arena_market(config: ArenaConfig, warmup_bars: int = WARMUP_BARS) -> tuple[MarketData, int]:
    """The window's bars plus `warmup_bars` of history before it; returns the market and the first round's row."""
    bt = config.market
    start = bt.start
    loaded_start = None
    if start is not None:
        ts = to_utc_timestamp(start, "start")
        loaded_start = (ts - pd.Timedelta(timeframe_to_ns(bt.timeframe) * warmup_bars, "ns")).isoformat()
    market = load_market(bt.symbols, bt.timeframe, loaded_start, bt.end)
    first = 0
    if start is not None:
        first = int(market.index().searchsorted(to_utc_timestamp(start, "start")))
    if first >= market.n_bars:
        raise ValueError(f"no bars in the window {bt.start} .. {bt.end}")
    return market, first


def new_run_id(mode: str) -> str:
    stamp = pd.Timestamp(WallClock().now_ns(), tz="UTC").strftime("%Y%m%dT%H%M%S")
    return f"{mode}-{stamp}-{secrets.token_hex(3)}"


def git_sha() -> str:
    """The commit the code runs from, with `-dirty` when the tree has changes ('' outside a git checkout)."""
    sha, dirty = git_state()
    return sha + ("-dirty" if sha and dirty else "")


def _agent_row(run_id: str, agent: Agent, config: ArenaConfig, cash: float) -> t.RunAgentRow:
    if isinstance(agent, LLMAgent):
        c = agent.config
        return t.RunAgentRow(
            run_id=run_id,
            agent=agent.name,
            kind="llm",
            provider=c.provider,
            model=c.model,
            prompt_version=c.prompt_version,
            training_cutoff=c.training_cutoff.isoformat() if c.training_cutoff else None,
            cutoff_overlap=cutoff_overlap(c.training_cutoff, config.market.start),
            initial_cash=cash,
            params={"temperature": c.temperature, "max_tokens": c.max_tokens, "base_url": c.base_url or ""},
        )
    spec = next((s for s in config.quant if (s.label or s.agent) == agent.name), None)
    return t.RunAgentRow(
        run_id=run_id,
        agent=agent.name,
        kind=str(getattr(agent, "kind", "quant")),
        provider="",
        model=getattr(agent, "model_uri", "") or (spec.agent if spec else type(agent).__name__),
        initial_cash=cash,
        params=dict(spec.params) if spec else {},
    )


def cutoff_flags(rows: Sequence[t.RunAgentRow], window_start: str | None) -> dict[str, str]:
    """The knowledge-cutoff warning of each agent whose window overlaps its training data."""
    return {
        r.agent: f"window starts {window_start} on or before {r.model}'s training cutoff {r.training_cutoff}: "
        "the model may remember these prices"
        for r in rows
        if r.cutoff_overlap
    }


def create_run(
    store: ArenaStore,
    config: ArenaConfig,
    roster: Roster,
    market: MarketData | str,
    mode: str,
    run_id: str | None = None,
) -> tuple[str, dict[str, str]]:
    """Record a new run, its agents and their starting accounts; returns the run id and the cutoff flags."""
    run_id = run_id or new_run_id(mode)
    cash = config.market.execution.initial_cash
    rows = [_agent_row(run_id, a, config, cash) for a in roster.agents]
    flags = cutoff_flags(rows, config.market.start) if mode == "replay" else {}
    if mode != "replay":
        for r in rows:
            r.cutoff_overlap = False
    message = "; ".join([*(f"{k} not configured: {v}" for k, v in roster.skipped.items()), *flags.values()])
    run = t.RunRow(
        run_id=run_id,
        created_at=WallClock().now_ns(),
        mode=mode,
        status="running",
        config=config.to_dict(),
        spec_hash=config.market.spec_hash(),
        data_hash=market if isinstance(market, str) else market.fingerprint(),
        symbols=list(market.symbols) if isinstance(market, MarketData) else list(config.market.symbols),
        timeframe=config.market.timeframe,
        start=config.market.start,
        end=config.market.end,
        git_sha=git_sha(),
        last_round=-1,
        message=message,
    )
    accounts = [AccountState(a.name, -1, cash, 0.0, 0.0, 0.0, {}, [], {}) for a in roster.agents]
    store.create_run(run, rows, accounts)
    return run_id, flags


def start_run(
    config: ArenaConfig,
    store: ArenaStore,
    *,
    run_id: str | None = None,
    rounds: int | None = None,
    cache: ResponseCache | None = None,
    cache_mode: CacheMode = "use",
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    env: Mapping[str, str] | None = None,
) -> RunReport:
    """Start a replay run over the config's window and play it (or its first `rounds` bars)."""
    market, first = load_arena_market(config)
    with local_llm_servers(config, cache_mode) as (served, unavailable):
        roster = build_roster(served, cache=cache, cache_mode=cache_mode, env=env)
        roster.skipped.update(unavailable)
        if not roster.agents:
            raise ValueError("no agent can play: " + "; ".join(f"{k}: {v}" for k, v in roster.skipped.items()))
        run_id, flags = create_run(store, config, roster, market, "replay", run_id)
        runner = ArenaRunner(served, roster.agents, market, store, run_id, first_row=first, stop=stop)
        return _play(runner, store, rounds, progress, roster.skipped, flags)


def resume_run(
    run_id: str,
    store: ArenaStore,
    *,
    rounds: int | None = None,
    cache: ResponseCache | None = None,
    cache_mode: CacheMode = "use",
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    env: Mapping[str, str] | None = None,
    exchange_url: str | None = None,
    every_s: float = 180.0,
    clock: Clock | None = None,
) -> RunReport:
    """Continue a run after its last committed bar, with the accounts exactly as they were committed.

    A replay run continues over its stored window (its data must be unchanged). A paper run continues on live bars
    (`exchange_url`, `every_s`, `clock` as for `start_paper_run`; `rounds` counts decision rounds): the tape is
    warmed up from the exchange to its last committed bar, the bars that closed since are settled without asking
    the agents, and the newest one is a decision round.
    """
    run = store.get_run(run_id)
    if run.mode == "paper":
        return _resume_paper(
            run, store, rounds, cache, cache_mode, stop, env, exchange_url=exchange_url, every_s=every_s, clock=clock
        )
    if run.mode != "replay":
        raise ValueError(f"run {run_id} is a {run.mode} run; only replay and paper runs resume here")
    config = ArenaConfig.from_dict(run.config)
    market, first = load_arena_market(config)
    if market.fingerprint() != run.data_hash:
        raise ValueError(f"cannot resume {run_id}: its market data changed ({run.data_hash} -> {market.fingerprint()})")
    playing = {r.agent for r in store.run_agents(run_id)}
    with local_llm_servers(config, cache_mode) as (served, _unavailable):
        roster = build_roster(served, cache=cache, cache_mode=cache_mode, env=env)
        missing = playing - {a.name for a in roster.agents}
        if missing:
            raise AgentNotConfiguredError(f"cannot resume {run_id}: agents {sorted(missing)} are not available now")
        agents = [a for a in roster.agents if a.name in playing]
        runner = ArenaRunner(served, agents, market, store, run_id, first_row=first, stop=stop)
        runner.restore()
        flags = cutoff_flags(store.run_agents(run_id), config.market.start)
        store.set_status(run_id, "running", run.message)
        return _play(runner, store, rounds, progress, {}, flags)


def _resume_paper(
    run: t.RunRow,
    store: ArenaStore,
    rounds: int | None,
    cache: ResponseCache | None,
    cache_mode: CacheMode,
    stop: threading.Event | None,
    env: Mapping[str, str] | None,
    *,
    exchange_url: str | None,
    every_s: float,
    clock: Clock | None,
) -> RunReport:
    from arena_lib.arena.paper import paper_feed, run_paper

    run_id = run.run_id
    config = ArenaConfig.from_dict(run.config)
    feed = paper_feed(config, exchange_url, clock)
    playing = {r.agent for r in store.run_agents(run_id)}
    with local_llm_servers(config, cache_mode) as (served, _unavailable):
        roster = build_roster(served, cache=cache, cache_mode=cache_mode, env=env)
        missing = playing - {a.name for a in roster.agents}
        if missing:
            raise AgentNotConfiguredError(f"cannot resume {run_id}: agents {sorted(missing)} are not available now")
        agents = [a for a in roster.agents if a.name in playing]
        runner = ArenaRunner(served, agents, feed, store, run_id, stop=stop)
        try:
            runner.restore()  # accounts from the ledger; the tape warmed up to the last committed bar
            runner.warm_up()  # (a run that never committed a bar starts as a new one would)
            store.set_status(run_id, "running", _with_note(run.message, feed.funding_note))
            outcomes = run_paper(runner, feed, every_s=every_s, rounds=rounds, stop=stop)
        finally:
            runner.close()
    return _paper_report(runner, store, outcomes, {}, {})


def _with_note(message: str, note: str) -> str:
    """`message` with `note` appended once (a resumed run does not repeat what its message says already)."""
    if not note or note in message:
        return message
    return "; ".join(m for m in (message, note) if m)


def _paper_report(
    runner: ArenaRunner,
    store: ArenaStore,
    outcomes: Sequence[RoundOutcome],
    skipped: dict[str, str],
    flags: dict[str, str],
) -> RunReport:
    """Record how a paper run ended (halted by the kill switch, else stopped), keeping its message's notes."""
    run = store.get_run(runner.run_id)
    status = "halted" if runner.halted else "stopped"
    message = "; ".join(m for m in (run.message, runner.halted.describe() if runner.halted else "") if m)
    store.set_status(runner.run_id, status, message)
    decided = sum(o.decided for o in outcomes)
    return RunReport(runner.run_id, status, decided, skipped, flags, error_rounds(outcomes), message)


def _play(
    runner: ArenaRunner,
    store: ArenaStore,
    rounds: int | None,
    progress: ProgressCallback | None,
    skipped: dict[str, str],
    flags: dict[str, str],
) -> RunReport:
    run = store.get_run(runner.run_id)
    try:
        outcomes = runner.run(rounds, progress)
    except LedgerConflictError:
        raise  # another process writes this run: this one must not write anything more, its status included
    except BaseException as exc:
        store.set_status(runner.run_id, "failed", f"{run.message}; failed: {type(exc).__name__}: {exc}".strip("; "))
        raise
    finally:
        runner.close()
    done = runner.feed.exhausted
    status = "completed" if done else "halted" if runner.halted else "stopped"
    message = "; ".join(m for m in (run.message, runner.halted.describe() if runner.halted else "") if m)
    store.set_status(runner.run_id, status, message)
    return RunReport(runner.run_id, status, len(outcomes), skipped, flags, error_rounds(outcomes), message)


def job_report(
    store: ArenaStore, runner: ArenaRunner, roster: Roster, flags: dict[str, str], outcomes: Sequence[RoundOutcome]
) -> RunReport:
    """A scheduled job's invocation as a report: `halted` when the kill switch stopped it, else still `running`."""
    run = store.get_run(runner.run_id)
    status, message = ("halted", runner.halted.describe()) if runner.halted else ("running", run.message)
    store.set_status(runner.run_id, status, message)
    decided = sum(o.decided for o in outcomes)
    return RunReport(runner.run_id, status, decided, roster.skipped, flags, error_rounds(outcomes), message)


def error_rounds(outcomes: Sequence[RoundOutcome]) -> dict[str, int]:
    """How many rounds each agent held because of an error."""
    return dict(Counter(name for o in outcomes for name in o.errors))


def start_paper_run(
    config: ArenaConfig,
    store: ArenaStore,
    *,
    every_s: float,
    rounds: int | None = None,
    exchange_url: str | None = None,
    run_id: str | None = None,
    cache: ResponseCache | None = None,
    cache_mode: CacheMode = "use",
    stop: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> RunReport:
    """Paper-trade the config's agents on live ccxt candles (simulated fills) until `rounds` or a stop.

    Perpetual funding (and mark prices) come from the exchange's linear-swap client; where ccxt has none, the
    run's message says funding is unavailable. `clock` is the feed's "now" (default: the wall clock).
    """
    from arena_lib.arena.paper import paper_feed, run_paper

    feed = paper_feed(config, exchange_url, clock)
    with local_llm_servers(config, cache_mode) as (served, unavailable):
        roster = build_roster(served, cache=cache, cache_mode=cache_mode, env=env)
        roster.skipped.update(unavailable)
        rid = run_id or new_run_id("paper")
        runner = ArenaRunner(served, roster.agents, feed, store, rid, stop=stop)
        runner.warm_up()
        warm = MarketSnapshot(runner.tape).content_hash() if runner.tape.n_rows else ""
        _, flags = create_run(store, config, roster, warm, "paper", rid)
        if feed.funding_note:
            store.set_status(rid, "running", _with_note(store.get_run(rid).message, feed.funding_note))
        try:
            outcomes = run_paper(runner, feed, every_s=every_s, rounds=rounds, stop=stop)
        finally:
            runner.close()
    return _paper_report(runner, store, outcomes, roster.skipped, flags)


@contextmanager
def local_llm_servers(config: ArenaConfig, cache_mode: CacheMode) -> Iterator[tuple[ArenaConfig, dict[str, str]]]:
    """Serve the config's local LLM agents on loopback for the duration; yields the config pointed at them.

    A strict cached replay makes no calls, so it starts nothing. When the local runtime is missing, those agents
    are reported as skipped with the reason and the rest of the arena plays.
    """
    if not config.local_llm or cache_mode == "strict":
        yield config, {}
        return
    from arena_lib.agents.llm.local_server import LocalLLMServer, local_llm_available

    missing = local_llm_available()
    if missing is not None:
        kept = tuple(c for c in config.llm if c.name not in config.local_llm)
        yield config.with_llm(kept), {name: f"local model unavailable: {missing}" for name in config.local_llm}
        return
    models = {c.model for c in config.llm if c.name in config.local_llm}
    if len(models) != 1:
        raise ValueError(f"local LLM agents must share one model to share a server, got {sorted(models)}")
    with LocalLLMServer(alias=models.pop(), n_ctx=8192) as server:
        log.info("local LLM served at %s", server.base_url)
        llm = tuple(
            c.model_copy(update={"base_url": server.base_url}) if c.name in config.local_llm else c for c in config.llm
        )
        yield config.with_llm(llm), {}


def job_run_id(job: str, mode: str) -> str:
    """The run a scheduled job trades in: one per job name and mode, so every invocation continues the same ledger."""
    if not job or not all(c.isalnum() or c in "-_." for c in job):
        raise ValueError(f"a job name is letters, digits, '-', '_' or '.', got {job!r}")
    return f"{mode}-job-{job}"


def trade_step(
    config: ArenaConfig,
    store: ArenaStore,
    *,
    job: str,
    market: MarketData | None = None,
    bars: int = 1,
    cache: ResponseCache | None = None,
    cache_mode: CacheMode = "use",
    env: Mapping[str, str] | None = None,
) -> RunReport:
    """One scheduled invocation of a trading job: play what is new, commit it, return.

    Paper (pass the latest closed bars as `market`, e.g. from `CcxtPaperFeed.market()`): every bar that closed since
    the job's last committed one is played, the newest as a decision round; nothing new plays nothing. Replay (no
    `market`): the job's replay run advances by `bars` bars of the config's window. Either way the job's run is
    created on first use and continued after that, agents are rebuilt each time (so a model agent loads whichever
    version its alias names now), and the kill switch stops it with status `halted` before any bar.

    Raises:
        ValueError: the job's run exists with another market spec (symbols, timeframe, costs, risk): a changed
            config must trade under a new job name, or its ledger would mix two strategies.
    """
    mode = "paper" if market is not None else "replay"
    run_id = job_run_id(job, mode)
    with store.session() as s:
        found = s.get(t.RunRow, run_id)
    exists = found is not None
    if found is not None and found.spec_hash != config.market.spec_hash():
        raise ValueError(
            f"job {job!r} trades run {run_id}, whose market spec differs from this config's "
            f"({found.spec_hash[:12]} != {config.market.spec_hash()[:12]}): use a new job name for a new config"
        )
    if market is None:
        if exists:
            return resume_run(run_id, store, rounds=bars, cache=cache, cache_mode=cache_mode, env=env)
        return start_run(config, store, run_id=run_id, rounds=bars, cache=cache, cache_mode=cache_mode, env=env)
    with local_llm_servers(config, cache_mode) as (served, unavailable):
        roster = build_roster(served, cache=cache, cache_mode=cache_mode, env=env)
        roster.skipped.update(unavailable)
        if exists:
            playing = {r.agent for r in store.run_agents(run_id)}
            missing = playing - {a.name for a in roster.agents}
            if missing:
                raise AgentNotConfiguredError(f"job {job!r}: agents {sorted(missing)} are not available now")
            roster.agents = [a for a in roster.agents if a.name in playing]
            flags: dict[str, str] = {}
        else:
            if not roster.agents:
                raise ValueError("no agent can play: " + "; ".join(f"{k}: {v}" for k, v in roster.skipped.items()))
            _, flags = create_run(store, config, roster, market.fingerprint(), "paper", run_id)
        runner = ArenaRunner(served, roster.agents, market, store, run_id, first_row=market.n_bars - 1)
        try:
            if exists:
                runner.restore()
            outcomes = runner.play_new()
        finally:
            runner.close()
    return job_report(store, runner, roster, flags, outcomes)
