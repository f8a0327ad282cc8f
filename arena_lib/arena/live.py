"""Live trading jobs: the same driver and agents as paper, with a `LiveBroker` per account, behind the latch.

`live_step` is one scheduled invocation, like `session.trade_step` for paper: it checks the latch before anything
else (nothing starts without it), rebuilds the agents (a model agent loads whichever version `@live` names now, so
a rollback reaches the job at its next bar), connects each agent's own exchange account, reconciles it, plays the
bars that closed since the job's last one (the newest as a decision round) and commits each bar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from arena_lib.agents.llm.cache import CacheMode, ResponseCache
from arena_lib.arena import schema as t
from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.rounds import ArenaRunner
from arena_lib.arena.session import RunReport, build_roster, create_run, job_report, job_run_id, local_llm_servers
from arena_lib.arena.store import ArenaStore
from arena_lib.data.market import MarketData
from arena_lib.execution.latch import AccountSecrets, check_latch
from arena_lib.execution.live_broker import LiveBroker
from arena_lib.execution.settings import LiveSettings
from arena_lib.execution.venue import Venue

log = logging.getLogger(__name__)
LIVE_ALIAS = "live"


def model_alias_problems(config: ArenaConfig, skipped: Mapping[str, str]) -> dict[str, str]:
    """Model agents that would not trade the `@live` version: another alias named, or no version there yet."""
    problems: dict[str, str] = {}
    for spec in config.quant:
        if spec.agent != "model":
            continue
        name = spec.label or spec.agent
        model = str(spec.params.get("model", ""))
        alias = model.rsplit("@", 1)[1] if "@" in model else str(spec.params.get("alias", "paper"))
        if alias != LIVE_ALIAS:
            problems[name] = f"it names alias @{alias}; a live job trades @{LIVE_ALIAS} only"
        elif name in skipped:
            problems[name] = skipped[name]
    return problems


VenueFactory = Callable[[LiveSettings, AccountSecrets], Venue]


def connect_accounts(
    config: ArenaConfig, secrets: Mapping[str, AccountSecrets], connect: VenueFactory
) -> dict[str, Venue]:
    """Each agent's exchange account, markets loaded and every arena symbol checked against them."""
    venues: dict[str, Venue] = {}
    for agent, keys in secrets.items():
        venue = connect(config.live, keys)
        for sym in config.market.symbols:
            venue.market_symbol(sym)  # an unlisted symbol is refused here, before any order
        venues[agent] = venue
    return venues


def warm_engine(config: ArenaConfig) -> None:
    """Load the compiled engine rules before the bar (numba's cache costs ~0.3 s on a process's first call), so
    the first decision of an invocation reaches the exchange as fast as the others."""
    from arena_lib.agents.base import AccountView
    from arena_lib.core.types import Action, Decision
    from arena_lib.engine import rules
    from arena_lib.engine.risk import RiskEngine

    bt = config.market
    sym = bt.symbols[0]
    cash = bt.execution.initial_cash
    RiskEngine(bt.risk, bt.costs.fee_rate).review(
        Decision(sym, Action.ENTER_LONG, size=0.1, stop_loss=90.0, take_profit=110.0),
        AccountView(cash, cash, cash, {}),
        100.0,
    )
    rules.entry_size(0.1, cash, cash, 100.0, 1.0, bt.costs.fee_rate, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)


def live_step(
    config: ArenaConfig,
    store: ArenaStore,
    market: MarketData,
    *,
    job: str,
    confirm: str | None = None,
    exchange_url: str | None = None,
    connect: VenueFactory | None = None,
    cache: ResponseCache | None = None,
    cache_mode: CacheMode = "use",
    env: Mapping[str, str] | None = None,
) -> RunReport:
    """One scheduled invocation of a live job on `market` (the latest closed bars, e.g. a candle feed's `market()`).

    `connect` builds each account's `Venue` (default: ccxt with the config's exchange, `exchange_url` redirecting
    its hosts, for a proxy or a loopback exchange).

    Raises:
        LiveNotArmedError: the latch does not hold; the message lists every missing item, nothing was started.
        ValueError: the job's run exists with another market spec.
    """
    run_id = job_run_id(job, "live")
    with store.session() as s:
        found = s.get(t.RunRow, run_id)
    if found is not None and found.spec_hash != config.market.spec_hash():
        raise ValueError(f"job {job!r} trades run {run_id}, whose market spec differs from this config's")
    with local_llm_servers(config, cache_mode) as (served, unavailable):
        roster = build_roster(served, cache=cache, cache_mode=cache_mode, env=env)
        roster.skipped.update(unavailable)
        if found is not None:
            playing = {r.agent for r in store.run_agents(run_id)}
            roster.agents = [a for a in roster.agents if a.name in playing]
        secrets = check_latch(
            config_mode=config.mode,
            live=config.live,
            agents=[a.name for a in roster.agents],
            model_problems=model_alias_problems(config, roster.skipped),
            confirm=confirm,
            env=env,
        )
        if connect is None:

            def connect(live: LiveSettings, keys: AccountSecrets) -> Venue:
                return Venue.connect(live, keys.api_key, keys.secret, exchange_url=exchange_url)

        venues = connect_accounts(config, secrets, connect)
        brokers = [
            LiveBroker(venues[a.name], config.market, market.symbols, run_id=run_id, agent=a.name, settings=config.live)
            for a in roster.agents
        ]
        flags: dict[str, str] = {}
        if found is None:
            for b in brokers:  # before the run exists: a failure here leaves nothing to resume
                b.begin(config.market.execution.initial_cash)
            _, flags = create_run(store, config, roster, market.fingerprint(), "live", run_id)
            for a, b in zip(roster.agents, brokers, strict=True):
                store.set_broker_state(run_id, a.name, b.state())
        warm_engine(config)
        runner = ArenaRunner(served, roster.agents, market, store, run_id, first_row=market.n_bars - 1, brokers=brokers)
        try:
            if found is not None:
                runner.restore()
            outcomes = runner.play_new()
        finally:
            runner.close()
    return job_report(store, runner, roster, flags, outcomes)
