"""Stores the monitor is tested against: empty (a new install), a demo run, and a file that is not a database.

The demo store is a real arena replay over the bundled sample (BTC and ETH hourly, 2025-03-01, 25 bars): four
quant baselines plus two LLM contestants on the loopback server of `tests.servers.llm`. The LLM answers are TEST
FIXTURES scripted in `tests.arena.conftest` (a `buyer` that enters BTC with a target and a stop, and a round-tripper
that closes on the next round), never a language model's output. The store is built once per session and must only
be read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_lib.arena.session import start_run
from arena_lib.arena.store import ArenaStore
from arena_lib.core.config import RiskLimits
from arena_lib.core.spec import AgentSpec
from tests.arena.conftest import ENV, KEY, Desk, Reply, Request, answer, arena_config, buyer, coin, llm_config
from tests.servers.llm import LLMServer, Script

DEMO_QUANT = (
    AgentSpec("noop", {}, label="cash"),
    AgentSpec("buy_and_hold", {"fraction": 0.5}),
    AgentSpec("sma_cross", {"fast": 5, "slow": 20, "fraction": 0.5, "allow_short": True}),
    AgentSpec("momentum", {"window": 12, "fraction": 0.5}),
)
DEMO_LLM = ("scalper", "roundtrip")


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
