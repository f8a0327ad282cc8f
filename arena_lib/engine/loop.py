"""`run_replay`: the one driver over stored history, without a ledger: the step path of every backtest.

Any number of agents replay the same bars. Every agent gets the same snapshot object each bar and its own isolated
account (a `SimBroker` and a portfolio), so a competition is fair by construction. A backtest is a replay with one
agent. An arena replay of the same bars runs the same `Driver` with the SQL ledger (`arena.rounds.ArenaRunner`),
so an agent sends the same prompts and gets the same fills in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from arena_lib.agents.base import Agent
from arena_lib.core.clock import SimulatedClock
from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Fill, RiskVerdict
from arena_lib.data.market import MarketData
from arena_lib.engine.breakers import BreakerBook
from arena_lib.engine.broker import Broker
from arena_lib.engine.driver import BarRecord, Driver, ProgressCallback, RoundPolicy, open_accounts
from arena_lib.engine.feeds import ReplayFeed
from arena_lib.engine.results import BacktestResult, equity_series, fills_frame

__all__ = ["ProgressCallback", "run_replay"]


@dataclass
class _Tally:
    """What a replay keeps of one account: equity and gross exposure per bar, every fill and verdict."""

    equity: list[float] = field(default_factory=list)
    exposure: list[float] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    verdicts: list[RiskVerdict] = field(default_factory=list)


class _Recorder:
    """The in-memory ledger of a replay (one `_Tally` per account, in the driver's account order)."""

    wants_records = False

    def __init__(self, n_accounts: int) -> None:
        self.tallies = [_Tally() for _ in range(n_accounts)]

    def record(self, driver: Driver, bar: BarRecord | None) -> None:
        for acc, tally in zip(driver.accounts, self.tallies, strict=True):
            tally.equity.append(acc.equity)
            tally.exposure.append(acc.exposure)
            if acc.fills or acc.verdicts:
                tally.fills.extend(acc.fills)
                tally.verdicts.extend(acc.verdicts)


def run_replay(
    agents: Sequence[Agent],
    market: MarketData,
    config: BacktestConfig,
    *,
    run_id: str = "replay",
    progress: ProgressCallback | None = None,
    clock: SimulatedClock | None = None,
    first_row: int = 0,
    policy: RoundPolicy | None = None,
    breakers: BreakerBook | None = None,
    brokers: Sequence[Broker] | None = None,
) -> dict[str, BacktestResult]:
    """Replay `market` bar by bar for every agent; returns one `BacktestResult` per agent name.

    Rows before `first_row` are warm-up history the agents can read but do not trade. `policy` sets how often the
    agents decide and their deadline (every bar, no deadline by default); `breakers` runs the accounts under
    circuit breakers as an arena does; `brokers` (one per agent) replaces the simulator, e.g. with another
    `Broker` implementation.
    """
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names must be unique in a replay, got {names}")
    feed = ReplayFeed(market, first_row)
    tape = feed.new_tape()
    feed.warm_up(tape)
    cash0 = config.execution.initial_cash
    accounts = open_accounts(agents, config, market.symbols, run_id, brokers)
    recorder = _Recorder(len(accounts))
    policy = policy or RoundPolicy()
    driver = Driver(
        accounts,
        config,
        tape,
        run_id=run_id,
        policy=policy,
        breakers=breakers,
        ledger=recorder,
        clock=clock or SimulatedClock(),
    )
    total = market.n_bars - first_row
    step = max(1, total // 100)
    every = policy.bars_per_round
    try:
        k = 0
        while feed.advance(tape):
            driver.play_bar(k, decide=k % every == 0)
            k += 1
            if progress is not None and (k % step == 0 or k == total):
                progress(k, total)
    finally:
        driver.close()
    close_times = market.close_times()[first_row:]
    return {
        acc.name: BacktestResult(
            agent=acc.name,
            equity=equity_series(np.asarray(tally.equity, dtype=np.float64), close_times, acc.name),
            fills=fills_frame(tally.fills),
            exposure=equity_series(np.asarray(tally.exposure), close_times, "gross_exposure"),
            initial_cash=cash0,
            verdicts=tally.verdicts,
            fill_rejections=list(acc.broker.rejections),
            open_positions=dict(acc.portfolio.positions),
            meta={"path": "step", "run_id": run_id, "data_hash": market.fingerprint(), "spec": config.spec_hash()},
        )
        for acc, tally in zip(accounts, recorder.tallies, strict=True)
    }
