"""Deterministic replays from the LLM response cache, shared recorded runs, and resuming a run in process.

A run recorded through the loopback server (real SDKs, `cache_mode="use"`) must replay from its cache with zero
requests and an identical ledger; strict mode must refuse to call (a miss is an error, and no key or server is
needed on a hit); an exported cache must replay the same run elsewhere; and a run stopped after 6 bars and
resumed must end exactly where a run played in one go ends.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from arena_lib.agents.llm.agent import LLMAgent
from arena_lib.agents.llm.cache import CacheMissError, ResponseCache
from arena_lib.agents.llm.config import LLMAgentConfig
from arena_lib.arena.config import ArenaConfig
from arena_lib.arena.session import resume_run, start_run
from arena_lib.arena.store import ArenaStore
from tests.arena.conftest import (
    ENV,
    KEY,
    WINDOW_BARS,
    Desk,
    arena_config,
    assert_same_ledger,
    buyer,
    ledger,
    llm_config,
)
from tests.servers.llm import LLMServer, Script

N_LLM = 3  # LLM contestants in `_contestants`


def _contestants(desk: Desk, server: LLMServer) -> ArenaConfig:
    """Three providers and the quant baseline. Two scalp (targets and stops close enough to hit often), one of
    them shown its own rolling Sharpe and win rate (adaptive); one holds a long position with a wide exit plan for
    the whole window, so every prompt shows that plan. A resume must rebuild all of it exactly."""
    desk.routes["gpt"] = buyer(target_pct=0.4, stop_pct=0.4, invalidation="rsi14 > 80")
    desk.routes["claude"] = buyer(entry="sell_to_enter", target_pct=0.6, stop_pct=0.6)
    desk.routes["qwen"] = buyer(target_pct=8, stop_pct=8, invalidation="rsi14 > 99 and price < 1000")
    return arena_config(
        llm_config(server, "gpt", "openai", adaptive=True),
        llm_config(server, "claude", "anthropic"),
        llm_config(server, "qwen", "openai_compatible"),
    )


def _record(tmp_path: Path) -> tuple[ArenaConfig, ArenaStore, str, ResponseCache]:
    """Record a full run through a loopback server that is stopped afterwards (nothing answers at its URL)."""
    desk = Desk()
    store = ArenaStore(f"sqlite:///{tmp_path}/recorded.db")
    cache = ResponseCache(f"sqlite:///{tmp_path}/recorded-cache.db")
    with LLMServer(Script(desk), api_key=KEY) as server:
        config = _contestants(desk, server)
        report = start_run(config, store, cache=cache, cache_mode="use", env=ENV)
        assert server.errors == []
        assert server.calls() == N_LLM * WINDOW_BARS
    assert report.status == "completed"
    return config, store, report.run_id, cache


def test_a_warm_cache_replays_the_run_with_no_request_and_the_same_ledger(
    server: LLMServer, desk: Desk, store: ArenaStore, cache: ResponseCache
) -> None:
    config = _contestants(desk, server)
    first = start_run(config, store, cache=cache, cache_mode="use", env=ENV)
    recorded = server.calls()
    assert recorded == N_LLM * WINDOW_BARS
    assert len(cache) == recorded
    assert not store.llm_calls_frame(first.run_id)["cache_hit"].any()

    warm = ResponseCache(cache.url)  # a new handle: the entries come from the database, not memory
    second = start_run(config, store, cache=warm, cache_mode="use", env=ENV)

    assert server.calls() == recorded, "a warm-cache replay sent requests"
    assert second.run_id != first.run_id
    calls = store.llm_calls_frame(second.run_id)
    assert calls["cache_hit"].all()
    assert len(calls) == recorded
    assert calls["raw"].tolist() == store.llm_calls_frame(first.run_id)["raw"].tolist()
    assert_same_ledger(store, first.run_id, store, second.run_id)
    fills = ledger(store, first.run_id)["fills"]
    assert {"entry", "take_profit", "stop_loss"} <= set(fills["kind"])  # the replay reproduced real trading


def test_strict_mode_on_a_cold_cache_raises_instead_of_calling(
    server: LLMServer, desk: Desk, store: ArenaStore, cache: ResponseCache
) -> None:
    config = _contestants(desk, server)

    with pytest.raises(CacheMissError, match="strict cache mode makes no API calls"):
        start_run(config, store, cache=cache, cache_mode="strict", env=ENV, run_id="cold")

    assert server.calls() == 0
    run = store.get_run("cold")
    assert run.status == "failed"
    assert "CacheMissError" in run.message
    assert run.last_round == -1  # the round that missed was not committed


def test_strict_mode_needs_a_cache() -> None:
    cfg = LLMAgentConfig(name="gpt", provider="openai", model="gpt", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="needs a ResponseCache"):  # it would otherwise call the API
        LLMAgent(cfg, cache_mode="strict", env=ENV)


def test_a_strict_replay_needs_no_key_and_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, recorded, run_id, cache = _record(tmp_path)
    monkeypatch.chdir(tmp_path)  # no ./.env can supply a key either
    monkeypatch.delenv("TEST_KEY", raising=False)
    store = ArenaStore(f"sqlite:///{tmp_path}/replayed.db")

    report = start_run(config, store, cache=ResponseCache(cache.url), cache_mode="strict", env={})

    assert report.status == "completed"
    assert report.skipped == {}
    assert report.errors == {}
    assert store.llm_calls_frame(report.run_id)["cache_hit"].all()
    assert_same_ledger(recorded, run_id, store, report.run_id)


def test_an_exported_cache_replays_the_run_strictly_elsewhere(tmp_path: Path) -> None:
    config, recorded, run_id, cache = _record(tmp_path)
    path = tmp_path / "shared" / "run.jsonl.gz"
    path.parent.mkdir()

    exported = cache.export(path)

    assert exported == len(cache) == N_LLM * WINDOW_BARS
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert json.loads(f.readline()) == {"format": "arena-llm-cache/1"}
    fresh = ResponseCache(f"sqlite:///{tmp_path}/fresh-cache.db")
    assert fresh.import_file(path) == exported
    assert fresh.import_file(path) == 0  # existing entries are kept, not duplicated
    store = ArenaStore(f"sqlite:///{tmp_path}/elsewhere.db")
    report = start_run(config, store, cache=fresh, cache_mode="strict", env={})
    assert report.status == "completed"
    assert_same_ledger(recorded, run_id, store, report.run_id)


_HEADER = '{"format": "arena-llm-cache/1"}\n'
_ENTRY = '{"key": "k1", "provider": "openai", "model": "m", "response": {"text": "{}", "input_tokens": 1}}\n'


def _gz(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(gzip.compress(text.encode()))


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("notgzip.jsonl.gz", lambda p: p.write_text(_HEADER + _ENTRY), "not a readable Arena LLM cache export"),
        ("cut.jsonl.gz", lambda p: p.write_bytes(gzip.compress((_HEADER + _ENTRY).encode())[:-10]), "not a readable"),
        ("table.csv", lambda p: p.write_text("key,response\nk1,hold\n"), "not an Arena LLM cache export"),
        ("other.jsonl.gz", _gz('{"format": "something-else/2"}\n' + _ENTRY), "not an Arena LLM cache export"),
        ("badline.jsonl.gz", _gz(_HEADER + _ENTRY + '{"key": "k2", "resp\n'), r"badline\.jsonl\.gz:3: malformed"),
        ("nokey.jsonl", lambda p: p.write_text(_HEADER + '{"response": {"text": "x"}}\n'), ":2: malformed cache entry"),
        ("textonly.jsonl", lambda p: p.write_text(_HEADER + '{"key": "k", "response": "hold"}\n'), "no 'text'"),
    ],
)
def test_importing_a_malformed_file_is_a_clear_error_and_adds_nothing(
    tmp_path: Path, name: str, write: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / name
    write(path)
    target = ResponseCache(f"sqlite:///{tmp_path}/target.db")

    with pytest.raises(ValueError, match=message) as info:
        target.import_file(path)

    assert str(path) in str(info.value)
    assert len(target) == 0  # one transaction: the valid entry before a broken line is not kept either


def test_importing_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jsonl"):
        ResponseCache(f"sqlite:///{tmp_path}/c.db").import_file(tmp_path / "nowhere.jsonl")


# -- resume ------------------------------------------------------------------------------------------------------


def test_a_run_resumed_after_6_bars_ends_where_a_run_in_one_go_ends(
    server: LLMServer, desk: Desk, store: ArenaStore, cache: ResponseCache
) -> None:
    config = _contestants(desk, server)
    one_go = start_run(config, store, cache=cache, env=ENV, run_id="one-go")
    recorded = server.calls()

    first = start_run(config, store, rounds=6, cache=cache, env=ENV, run_id="split")
    assert first.status == "stopped"
    assert first.rounds == 6
    assert store.get_run("split").last_round == 5
    mid = store.load_accounts("split")
    assert any(a.positions or a.pending for a in mid.values())  # it stops with trades in flight

    rest = resume_run("split", store, cache=cache, env=ENV)

    assert rest.status == "completed"
    assert rest.rounds == WINDOW_BARS - 6
    # Resuming rebuilt every prompt byte for byte (accounts, exit plans, stats), so all were cache hits.
    assert server.calls() == recorded
    assert store.llm_calls_frame("split")["cache_hit"].all()
    assert_same_ledger(store, one_go.run_id, store, "split")
    assert store.load_accounts("split") == store.load_accounts("one-go")
