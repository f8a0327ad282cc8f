"""Stores the monitor is tested against: empty (a new install), a demo run, a random ledger, and a file that is not a
database.

The demo store is a real arena replay over the bundled sample (BTC and ETH hourly, 2025-03-01, 25 bars): four
quant baselines plus two LLM contestants on the loopback server of `tests.servers.llm`. The LLM answers are TEST
FIXTURES scripted in `tests.arena.conftest` (a `buyer` that enters BTC with a target and a stop, and a round-tripper
that closes on the next round), never a language model's output. The store is built once per session and must only
be read. The random ledger (`ledger`) is written row by row to exercise what the short demo cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert

from arena_lib.arena import schema as t
from arena_lib.arena.session import start_run
from arena_lib.arena.store import ArenaStore
from arena_lib.core.config import RiskLimits
from arena_lib.core.spec import AgentSpec
from arena_lib.monitor.queries import list_runs
from arena_lib.monitor.store import open_store
from tests.arena.conftest import ENV, KEY, Desk, Reply, Request, answer, arena_config, buyer, coin, llm_config
from tests.servers.llm import LLMServer, Script

DEMO_QUANT = (
    AgentSpec("noop", {}, label="cash"),
    AgentSpec("buy_and_hold", {"fraction": 0.5}),
    AgentSpec("sma_cross", {"fast": 5, "slow": 20, "fraction": 0.5, "allow_short": True}),
    AgentSpec("momentum", {"window": 12, "fraction": 0.5}),
)
DEMO_LLM = ("scalper", "roundtrip")
H = 3_600_000_000_000  # one hour in ns: the random ledger's bar
T0 = 1_735_689_600_000_000_000  # 2025-01-01 00:00 UTC: the random ledger's first bar


def _round_tripper(req: Request) -> Reply:
    """Buy BTC when flat and close it on the next round."""
    if req.holds("BTC"):
        return Reply(data=answer(coin("BTC", "close_position", justification="take the round trip"), coin("ETH")))
    p = req.price("BTC")
    entry = coin("BTC", "buy_to_enter", 0.02, 2, round(p * 1.05, 2), round(p * 0.95, 2), justification="scripted")
    return Reply(data=answer(entry, coin("ETH")))


@pytest.fixture(scope="session")
def demo_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLAlchemy URL of a store holding one completed replay run (see the module docstring)."""
    desk = Desk()
    desk.routes["scalper"] = buyer(target_pct=0.4, stop_pct=0.4, invalidation="BTC close below 1000")
    desk.routes["roundtrip"] = _round_tripper
    url = f"sqlite:///{tmp_path_factory.mktemp('monitor_demo')}/arena.db"
    store = ArenaStore(url)
    with LLMServer(Script(desk), api_key=KEY) as server:
        config = arena_config(
            *(llm_config(server, name) for name in DEMO_LLM),
            quant=DEMO_QUANT,
            risk=RiskLimits(max_leverage=10, allow_reversal=False),
        )
        report = start_run(config, store, env=ENV)
        assert server.errors == []
    assert report.status == "completed"
    store.engine.dispose()
    return url


@pytest.fixture
def empty_store_url(tmp_path: Path) -> str:
    """A store as a new install has it: the tables exist, no run does."""
    url = f"sqlite:///{tmp_path}/arena.db"
    ArenaStore(url).engine.dispose()
    return url


@pytest.fixture
def unreadable_store_url(tmp_path: Path) -> str:
    """A path that holds something other than a SQLite database (a corrupt or mistyped store)."""
    path = tmp_path / "arena.db"
    path.write_bytes(b"this is not a sqlite database\n" * 64)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def demo(demo_store_url: str) -> Iterator[tuple[ArenaStore, str]]:
    store = open_store(demo_store_url)
    yield store, list_runs(store)["run_id"].iloc[0]
    store.engine.dispose()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaStore, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('random_ledger')}/arena.db"
    run_id = _write_random_run(url, seed=11)
    store = open_store(url)
    yield store, run_id
    store.engine.dispose()


def _write_random_run(url: str, seed: int, rounds: int = 120) -> str:
    """A run of random but well-formed ledger rows: per (agent, symbol) fills alternate entry and exit, as the engine
    writes them (it never adds to an open position); a fill executes at the next bar's open, one bar before its
    round's close. Agent "gamma" has no equity row for round 40."""
    rng = np.random.default_rng(seed)
    run_id = f"random-{seed}"
    coins = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    kinds = {"alpha": "llm", "beta": "quant", "gamma": "quant"}
    ts = [T0 + i * H for i in range(rounds)]
    rows: dict[type[t.Base], list[dict[str, Any]]] = {k: [] for k in (t.FillRow, t.EquityRow, t.DecisionRow)}
    rows[t.LLMCallRow] = []
    for agent in kinds:
        seq, open_side = 0, dict.fromkeys(coins)
        equity = 10_000.0
        for i in range(rounds):
            equity *= 1.0 + rng.normal(0.0, 0.01)
            if not (agent == "gamma" and i == 40):
                rows[t.EquityRow].append(
                    {
                        "run_id": run_id,
                        "agent": agent,
                        "round_no": i,
                        "ts": ts[i],
                        "cash": equity,
                        "equity": equity,
                        "gross_exposure": 0.0,
                    }
                )
            latency = float(rng.uniform(0.001, 2.0))
            for symbol in coins:
                held = open_side[symbol]
                if i > 0 and rng.random() < (0.35 if held is None else 0.4):
                    if held is None:
                        kind, side = "entry", str(rng.choice(["buy", "sell"]))
                    else:
                        kind, side = (
                            str(rng.choice(["exit", "stop_loss", "take_profit"])),
                            {"buy": "sell"}.get(held, "buy"),
                        )
                    open_side[symbol] = side if kind == "entry" else None
                    rows[t.FillRow].append(
                        {
                            "fill_id": f"{run_id}/{agent}/{seq}",
                            "order_id": f"{run_id}/{agent}/{seq}",
                            "run_id": run_id,
                            "agent": agent,
                            "round_no": i,
                            "seq": seq,
                            "symbol": symbol,
                            "ts": ts[i] - H,
                            "side": str(side),
                            "kind": str(kind),
                            "quantity": 0.1,
                            "price": 100.0,
                            "fee": float(rng.uniform(0.01, 2.0)),
                            "realized_pnl": 0.0 if kind == "entry" else float(rng.normal(0.0, 5.0)),
                            "funding": 0.0 if kind == "entry" else float(rng.normal(0.0, 0.1)),
                            "leverage": float(rng.choice([1.0, 2.0, 5.0])),
                            "margin": 5.0,
                            "note": "",
                        }
                    )
                    seq += 1
                if rng.random() < 0.6:
                    approved = rng.choice([True, False, None])
                    rows[t.DecisionRow].append(
                        {
                            "run_id": run_id,
                            "round_no": i,
                            "agent": agent,
                            "symbol": symbol,
                            "ts": ts[i],
                            "source": str(rng.choice(["agent", "agent", "fallback", "invalidation"])),
                            "action": str(rng.choice(["hold", "enter_long", "enter_short", "close"])),
                            "size": 0.1,
                            "size_unit": "fraction",
                            "leverage": 1.0,
                            "stop_loss": None,
                            "take_profit": None,
                            "invalidation": "",
                            "confidence": None if rng.random() < 0.3 else float(rng.random()),
                            "risk_usd": None,
                            "reason": "random",
                            "approved": None if approved is None else bool(approved),
                            "clamped": bool(rng.random() < 0.2),
                            "fraction": 0.1,
                            "verdict": "",
                            "latency_s": latency,
                        }
                    )
            if kinds[agent] == "llm" and rng.random() < 0.9:
                rows[t.LLMCallRow].append(
                    {
                        "run_id": run_id,
                        "round_no": i,
                        "agent": agent,
                        "prompt_sha": "none",
                        "raw": "{}",
                        "parse_ok": bool(rng.random() < 0.8),
                        "error": "" if rng.random() < 0.9 else "deadline",
                        "problems": [],
                        "cost_usd": float(rng.uniform(0, 0.01)),
                        "latency_s": latency,
                    }
                )
    store = ArenaStore(url)
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.RunRow),
            [
                {
                    "run_id": run_id,
                    "created_at": T0,
                    "mode": "replay",
                    "status": "completed",
                    "spec_hash": "x",
                    "config": {"rounds": {"flip_flop_bars": 3}},
                    "symbols": coins,
                    "timeframe": "1h",
                    "last_round": rounds - 1,
                    "message": "",
                }
            ],
        )
        conn.execute(
            insert(t.RunAgentRow),
            [{"run_id": run_id, "agent": a, "kind": k, "model": a, "initial_cash": 10_000.0} for a, k in kinds.items()],
        )
        conn.execute(
            insert(t.RoundRow),
            [
                {
                    "run_id": run_id,
                    "round_no": i,
                    "ts": ts[i],
                    "snapshot_hash": f"h{i}",
                    "wall_started": T0 + i,
                    "wall_s": 0.5,
                }
                for i in range(rounds)
            ],
        )
        for table, records in rows.items():
            conn.execute(insert(table), records)
    store.engine.dispose()
    return run_id
