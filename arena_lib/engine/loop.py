"""The one loop: Feed -> MarketSnapshot -> Agent.decide -> RiskEngine -> Broker -> Fill -> Portfolio.

`run_replay` drives any number of agents over the same bars. Every agent gets the same snapshot object each bar and
its own isolated account (portfolio and broker), so a competition is fair by construction. A backtest is a replay
with one agent. Paper and live trading reuse the agent and risk code unchanged; only the feed, broker and clock
differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arena_lib.agents.base import AccountView, Agent
from arena_lib.core.clock import SimulatedClock
from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Action, Decision, Fill, Order, RiskVerdict
from arena_lib.data.market import MarketData
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.engine.broker import SimBroker
from arena_lib.engine.portfolio import Portfolio, equity, gross_notional
from arena_lib.engine.results import BacktestResult, equity_series, fills_frame
from arena_lib.engine.risk import RiskEngine

ProgressCallback = Callable[[int, int], None]


@dataclass
class AccountState:
    """One isolated account in a replay or arena: its agent, broker, portfolio and what it produced."""

    agent: Agent
    broker: SimBroker
    portfolio: Portfolio
    exposure: np.ndarray
    equity: list[float] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    verdicts: list[RiskVerdict] = field(default_factory=list)
    idle_view: AccountView | None = None  # reused while the account is flat and its cash unchanged


def order_id(run_id: str, agent: str, round_ns: int, symbol: str) -> str:
    """Deterministic order id (run/agent/round/symbol): a re-executed round maps to the same ids."""
    return f"{run_id}/{agent}/{round_ns}/{symbol}"


class BarMarks:
    """Per-bar marks, computed only when an account needs them (a flat, idle account needs none)."""

    def __init__(self, market: MarketData) -> None:
        close_ff = pd.DataFrame(market.close).ffill().to_numpy()
        # Per-symbol 1D lists: indexing them is fast, and they are m objects rather than n small ones.
        self.close_cols = [close_ff[:, j].tolist() for j in range(close_ff.shape[1])]
        self.open_cols = [market.open[:, j].tolist() for j in range(close_ff.shape[1])]
        self.has_cols = [market.has_bar[:, j].tolist() for j in range(close_ff.shape[1])]
        self.volume_cols = [market.volume[:, j].tolist() for j in range(close_ff.shape[1])]

    def at_close(self, i: int) -> list[float]:
        """Latest close of every symbol at the close of row `i` (NaN before its first bar)."""
        return [col[i] for col in self.close_cols]

    def at_open(self, i: int) -> list[float]:
        """Row `i`'s open where the symbol has a bar, else its last close."""
        nan = math.nan
        return [
            o[i] if h[i] else (c[i - 1] if i > 0 else nan)
            for o, h, c in zip(self.open_cols, self.has_cols, self.close_cols, strict=True)
        ]

    def volumes(self, i: int) -> list[float]:
        return [col[i] for col in self.volume_cols]


def funding_by_row(market: MarketData) -> dict[int, list[tuple[int, float]]]:
    """Funding settlements indexed by bar row: row -> [(symbol index, rate)]."""
    rows: dict[int, list[tuple[int, float]]] = {}
    for i, j in zip(*np.nonzero(market.funding), strict=True):
        rows.setdefault(int(i), []).append((int(j), float(market.funding[i, j])))
    return rows


def settle_bar(acc: AccountState, i: int, funding_now: list[tuple[int, float]] | None, marks: BarMarks) -> Portfolio:
    """The bar events before a decision, in the broker's order: funding, pending fills at the open, intrabar exits."""
    pf = acc.portfolio
    broker = acc.broker
    if pf.positions or broker.pending:
        if funding_now is not None and pf.positions:
            pf = broker.settle_funding(i, pf, funding_now)
        if broker.pending:
            pf = broker.fill_pending(i, pf, marks.at_open(i), acc.fills)
        if pf.positions:
            pf = broker.check_exits(i, pf, acc.fills)
        acc.portfolio = pf
    return pf


def run_replay(
    agents: Sequence[Agent],
    market: MarketData,
    config: BacktestConfig,
    *,
    run_id: str = "replay",
    progress: ProgressCallback | None = None,
    clock: SimulatedClock | None = None,
) -> dict[str, BacktestResult]:
    """Replay `market` bar by bar for every agent; returns one `BacktestResult` per agent name.

    Per bar and account: funding, pending fills at the open and intrabar exits (see `SimBroker`), then the agent
    decides on the shared snapshot and the RiskEngine reviews each decision before the broker sees it.
    """
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names must be unique in a replay, got {names}")
    clock = clock or SimulatedClock()
    n = market.n_bars
    symbols = market.symbols
    risk = RiskEngine(config.risk, config.costs.fee_rate)
    at_close = config.execution.fill == "close"
    cash0 = config.execution.initial_cash
    accounts = [
        AccountState(a, SimBroker(market, config, f"{run_id}/{a.name}"), Portfolio.start(cash0), np.zeros(n))
        for a in agents
    ]
    marks = BarMarks(market)
    funding_rows = funding_by_row(market)
    close_ns = market.close_times_ns
    step = max(1, n // 100)

    for i in range(n):
        t_close = close_ns[i]
        clock.advance_to(t_close)
        funding_now = funding_rows.get(i)
        snapshot = MarketSnapshot(market, i)
        close_marks: list[float] | None = None
        for acc in accounts:
            pf = settle_bar(acc, i, funding_now, marks)
            if pf.positions:
                close_marks = close_marks or marks.at_close(i)
                eq = equity(pf, symbols, close_marks)
                view = AccountView(pf.cash, eq, cash0, pf.positions)
            else:
                eq = pf.cash
                idle = acc.idle_view
                if idle is None or idle.cash != eq:
                    idle = acc.idle_view = AccountView(eq, eq, cash0, pf.positions)
                view = idle
            decisions = acc.agent.decide(snapshot, view)
            if decisions:
                close_marks = close_marks or marks.at_close(i)
                pf = act_on_decisions(
                    acc, decisions, risk, run_id, t_close, close_marks, marks.volumes(i), at_close, snapshot
                )
                acc.portfolio = pf
                eq = equity(pf, symbols, close_marks)
            acc.equity.append(eq)
            if pf.positions:
                acc.exposure[i] = gross_notional(pf, symbols, close_marks or marks.at_close(i))
        if progress is not None and (i % step == 0 or i == n - 1):
            progress(i + 1, n)

    close_times = market.close_times()
    return {
        acc.agent.name: BacktestResult(
            agent=acc.agent.name,
            equity=equity_series(np.asarray(acc.equity, dtype=np.float64), close_times, acc.agent.name),
            fills=fills_frame(acc.fills),
            exposure=equity_series(acc.exposure, close_times, "gross_exposure"),
            initial_cash=cash0,
            verdicts=acc.verdicts,
            fill_rejections=acc.broker.rejections,
            open_positions=dict(acc.portfolio.positions),
            meta={"path": "step", "run_id": run_id, "data_hash": market.fingerprint(), "spec": config.spec_hash()},
        )
        for acc in accounts
    }


def act_on_decisions(
    acc: AccountState,
    decisions: Sequence[Decision],
    risk: RiskEngine,
    run_id: str,
    t_close: int,
    marks: list[float],
    volumes: list[float],
    at_close: bool,
    snapshot: MarketSnapshot,
) -> Portfolio:
    """Review an agent's decisions (one per symbol, in symbol order) and queue or fill the approved ones."""
    pf = acc.portfolio
    symbols = snapshot.symbols
    index = {s: j for j, s in enumerate(symbols)}
    seen: set[str] = set()
    ordered = sorted(decisions, key=lambda d: index.get(d.symbol, len(symbols)))
    for d in ordered:
        if d.action is Action.HOLD:
            continue
        if d.symbol not in index:
            acc.verdicts.append(RiskVerdict(d, False, reasons=(f"unknown symbol {d.symbol!r}",)))
            continue
        if d.symbol in seen:
            acc.verdicts.append(RiskVerdict(d, False, reasons=("one action per symbol per round",)))
            continue
        seen.add(d.symbol)
        j = index[d.symbol]
        eq = equity(pf, symbols, marks) if pf.positions else pf.cash
        verdict = risk.review(
            d, AccountView(pf.cash, eq, acc.broker.config.execution.initial_cash, pf.positions), marks[j]
        )
        acc.verdicts.append(verdict)
        if not verdict.approved:
            continue
        order = Order(
            order_id=order_id(run_id, acc.agent.name, t_close, d.symbol),
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
        if at_close:
            pf = acc.broker.execute(order, j, marks[j], t_close, pf, list(marks), acc.fills)
        else:
            acc.broker.submit(order)
    return pf
