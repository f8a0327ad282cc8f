"""One writer per run: two processes that keep resuming the same run, each seeing different provider answers.

This is the failure the writer lease exists for: before it, the loser of a round's commit kept the fills and
positions it had not committed and built later rounds on them (a cash gap, exits with no entry, repeated and
missing `seq` numbers). Here two writers race over one run 20 times. Each writer's LLM answers differently (the
loopback server's replies are TEST FIXTURES, routed by model), answers take a random time, and the lease expires
quickly, so writers take the run over from each other in the middle of it. Each writer that is refused the lease
or loses it starts again from the store, as a restarted process would.

Afterwards, for every round, the cash rebuilt from the committed fills equals the account's recorded cash, and
the fills' `seq` numbers have no gap and no repeat.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pandas as pd

from arena_lib.agents.llm.agent import LLMAgent
from arena_lib.arena.lease import LedgerConflictError
from arena_lib.arena.rounds import ArenaRunner
from arena_lib.arena.session import Roster, create_run, load_arena_market
from arena_lib.arena.store import ArenaStore
from tests.arena.conftest import ENV, Desk, Request, arena_config, buyer, llm_config
from tests.servers.llm import LLMServer, Reply

ITERATIONS = 20
END = "2025-03-01T07:00"  # 8 hourly bars


def _slow(behaviour: object, rng: random.Random) -> object:
    def respond(req: Request) -> Reply:
        time.sleep(rng.uniform(0.0, 0.12))
        return behaviour(req)  # type: ignore[operator]

    return respond


def _rebuilt_cash(fills: pd.DataFrame, cash0: float) -> dict[int, float]:
    """Cash after each round, from the committed fills alone (entries post margin and fee; exits release them)."""
    cash, by_round = cash0, {}
    for f in fills.sort_values("seq").itertuples():
        if f.kind == "entry":  # the portfolio's own order of operations, so the floats agree exactly
            cash = cash - f.margin - f.fee
        elif f.kind != "liquidation":
            cash = cash + f.margin + f.realized_pnl - f.fee
        by_round[int(f.round_no)] = cash
    return by_round


def _writer(
    config: object, cfg: object, market: object, first: int, store: ArenaStore, run_id: str, out: list[str]
) -> None:
    """Resume the run until it is complete, starting again from the store whenever the ledger is not ours."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.get_run(run_id).last_round >= market.n_bars - first - 1:  # type: ignore[attr-defined]
            return
        agents = [LLMAgent(cfg, env=ENV)]  # type: ignore[arg-type]
        runner = ArenaRunner(config, agents, market, store, run_id, first_row=first, lease_ttl_s=0.15)  # type: ignore[arg-type]
        try:
            runner.restore()
            runner.run()
        except LedgerConflictError as exc:
            out.append(type(exc).__name__)
            time.sleep(0.02)
        finally:
            runner.close()


def test_two_writers_resuming_one_run_leave_a_consistent_ledger(tmp_path: Path, desk: Desk, server: LLMServer) -> None:
    rng = random.Random(7)
    desk.routes["model-a"] = _slow(buyer(stop_pct=0.4, target_pct=0.4), rng)
    desk.routes["model-b"] = _slow(buyer(entry="sell_to_enter", stop_pct=0.3, target_pct=0.5), rng)
    cfg_a = llm_config(server, "trader", model="model-a")
    cfg_b = llm_config(server, "trader", model="model-b")
    config = arena_config(cfg_a, quant=(), end=END)
    market, first = load_arena_market(config)
    bars = market.n_bars - first
    cash0 = config.market.execution.initial_cash
    conflicts: list[str] = []

    for k in range(ITERATIONS):
        store = ArenaStore(f"sqlite:///{tmp_path}/run{k}.db")
        run_id, _ = create_run(store, config, Roster([LLMAgent(cfg_a, env=ENV)]), market, "replay", f"two-{k}")
        threads = [
            threading.Thread(target=_writer, args=(config, cfg, market, first, store, run_id, conflicts))
            for cfg in (cfg_a, cfg_b)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

        assert store.get_run(run_id).last_round == bars - 1
        rounds = store.rounds_frame(run_id)["round_no"].tolist()
        assert rounds == list(range(bars))
        fills = store.fills_frame(run_id, "trader")
        assert fills["seq"].tolist() == list(range(len(fills))), f"iteration {k}: seq has a gap or a repeat"
        rebuilt = _rebuilt_cash(fills, cash0)
        equity = store.equity_frame(run_id).set_index("round_no")["cash"]
        cash = cash0
        for r in range(bars):
            cash = rebuilt.get(r, cash)
            assert equity.loc[r] == cash, f"iteration {k}, round {r}: ledger cash {equity.loc[r]} != fills {cash}"
        assert store.load_accounts(run_id)["trader"].cash == cash
        store.engine.dispose()

    assert conflicts, "the writers never collided: this test did not exercise the lease"
