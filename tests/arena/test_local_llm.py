"""A real language model in the embedded default: SmolLM2-135M served on loopback by llama.cpp, started by the arena.

It goes through exactly the path a frontier model takes (prompt, openai SDK, HTTP, JSON-schema decoding, parsing,
risk, fills). Its decisions are whatever this small model says; nothing here asserts what it trades, only that the
whole path ran, was recorded, and replays identically from the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_lib.agents.llm.cache import ResponseCache
from arena_lib.agents.llm.config import load_llm_config
from arena_lib.agents.llm.local_server import local_llm_available
from arena_lib.arena.config import ArenaConfig, RoundSettings
from arena_lib.arena.session import start_run
from arena_lib.arena.standings import arena_leaderboard
from arena_lib.arena.store import ArenaStore
from arena_lib.core.config import BacktestConfig, RiskLimits
from arena_lib.core.spec import AgentSpec

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(local_llm_available() is not None, reason=f"local LLM runtime: {local_llm_available()}"),
]


def test_smollm2_trades_offline_through_the_real_llm_path_and_replays_from_cache(tmp_path: Path) -> None:
    llm = load_llm_config(ROOT / "configs" / "llm" / "smollm2-local.yaml")
    config = ArenaConfig(
        market=BacktestConfig(
            symbols=("BTC/USDT",),
            timeframe="1h",
            start="2025-06-01",
            end="2025-06-01T02:00",
            risk=RiskLimits(allow_reversal=False),
        ),
        rounds=RoundSettings(deadline_s=240, bars_per_round=2),
        quant=(AgentSpec("noop", {}, "cash"),),
        llm=(llm,),
        local_llm=(llm.name,),
    )
    store = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    cache = ResponseCache(f"sqlite:///{tmp_path}/cache.db")
    first = start_run(config, store, cache=cache, run_id="live-local")
    assert first.status == "completed"
    assert first.errors.get(llm.name, 0) <= 1  # a 135M model may babble once; the arena records it and holds

    calls = store.llm_calls_frame("live-local", llm.name)
    assert len(calls) == 2  # decision bars 0 and 2
    assert (calls["raw"].str.len() > 0).all()
    assert (calls["latency_s"] > 0).all()
    assert (calls["input_tokens"] > 0).all()
    assert not calls["cache_hit"].any()
    assert store.prompt(calls["prompt_sha"].iloc[0]) is not None
    decisions = store.decisions_frame("live-local", llm.name)
    assert set(decisions["symbol"]) == {"BTC/USDT"}
    assert len(decisions) >= 2

    board = arena_leaderboard(store, "live-local").set_index("agent")
    assert board.loc[llm.name, "model"] == "smollm2"  # the leaderboard says which model this is
    assert board.loc[llm.name, "kind"] == "llm"

    # Strict replay: no server, no call; the recorded answers give the same decisions and the same equity.
    again = start_run(config, store, cache=cache, cache_mode="strict", run_id="replayed")
    assert again.status == "completed"
    replayed = store.llm_calls_frame("replayed", llm.name)
    assert replayed["cache_hit"].all()
    assert replayed["raw"].tolist() == calls["raw"].tolist()
    cols = ["round_no", "symbol", "action", "size", "leverage", "approved", "reason"]
    d2 = store.decisions_frame("replayed", llm.name)
    assert d2[cols].fillna(-1).values.tolist() == decisions[cols].fillna(-1).values.tolist()
    eq1 = store.equity_frame("live-local")["equity"].tolist()
    eq2 = store.equity_frame("replayed")["equity"].tolist()
    assert eq1 == eq2
