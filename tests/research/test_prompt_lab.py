"""Prompt lab: versions compared on identical snapshots, scored against the market, replayable from the cache.

The model behind these tests is the loopback server of `tests/servers/llm.py`, answering with the scripted desk of
`tests/arena/conftest.py` (TEST FIXTURES, not a model's output): it enters BTC long and holds ETH.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.llm.cache import CacheMissError, ResponseCache
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.research.prompt_lab import load_recording, run_prompt_lab, snapshot_rows
from tests.arena.conftest import ENV, KEY, Desk, buyer, llm_config
from tests.servers.llm import LLMServer, Script

SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_market(SYMBOLS, "1h", "2025-02-15", "2025-03-03")


@pytest.fixture
def lab_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with LLMServer(Script(Desk({"lab": buyer()})), api_key=KEY) as srv:
        yield srv


def test_snapshot_rows_are_deterministic_and_refuse_a_short_market(market: MarketData) -> None:
    rows = snapshot_rows(market, "2025-03-01", 3, 4)
    start = market.index().searchsorted(pd.Timestamp("2025-03-01", tz="UTC"))
    assert rows == [start, start + 4, start + 8]
    with pytest.raises(ValueError, match="load a longer window"):
        snapshot_rows(market, "2025-03-01", 100, 24)


def test_versions_see_identical_snapshots_and_entries_are_scored_by_the_market(
    market: MarketData, lab_server: LLMServer, tmp_path: Path
) -> None:
    rows = snapshot_rows(market, "2025-03-01", 3, 4)
    cache = ResponseCache(f"sqlite:///{tmp_path / 'cache.db'}")
    config = llm_config(lab_server, "lab")
    result = run_prompt_lab(config, ["v1", "v2"], market, rows, cache=cache, horizon_bars=4)

    assert len(result.calls) == 6
    assert len(result.decisions) == 12
    assert result.calls["parse_ok"].all()
    # Same snapshots: the timestamps per version are equal; different templates: the prompt hashes differ.
    by_version = {v: g for v, g in result.calls.groupby("version")}
    assert list(by_version["v1"]["timestamp"]) == list(by_version["v2"]["timestamp"])
    assert set(by_version["v1"]["prompt_sha"]).isdisjoint(by_version["v2"]["prompt_sha"])

    btc = result.decisions[result.decisions["symbol"] == "BTC/USDT"]
    assert (btc["action"] == "enter_long").all()
    j = market.symbols.index("BTC/USDT")
    expected = [float(market.close[r + 4, j] / market.close[r, j] - 1 > 0) for r in rows] * 2
    assert btc["correct"].tolist() == expected
    eth = result.decisions[result.decisions["symbol"] == "ETH/USDT"]
    assert eth["correct"].isna().all()  # holds are not scored

    summary = result.summary()
    assert summary.loc["v1", "hit_rate"] == pytest.approx(np.mean(expected[:3]))
    assert summary.loc["v1", "valid_output_rate"] == 1.0
    assert result.agreement().loc["v1", "v2"] == 1.0


def test_a_recorded_comparison_replays_strictly_without_a_model(
    market: MarketData, lab_server: LLMServer, tmp_path: Path
) -> None:
    rows = snapshot_rows(market, "2025-03-01", 2, 6)
    config = llm_config(lab_server, "lab")
    recorded = run_prompt_lab(config, ["v1", "v2"], market, rows, cache=ResponseCache(f"sqlite:///{tmp_path}/a.db"))
    ResponseCache(f"sqlite:///{tmp_path}/a.db").export(tmp_path / "recording.jsonl.gz")
    served = lab_server.calls()

    replay_cache = ResponseCache(f"sqlite:///{tmp_path}/b.db")
    assert load_recording(tmp_path / "recording.jsonl.gz", replay_cache) == 4
    replayed = run_prompt_lab(config, ["v1", "v2"], market, rows, cache=replay_cache, cache_mode="strict")
    assert lab_server.calls() == served  # no request reached the server
    assert replayed.calls["cache_hit"].all()
    cols = ["version", "timestamp", "symbol", "action", "leverage", "confidence", "correct"]
    pd.testing.assert_frame_equal(replayed.decisions[cols], recorded.decisions[cols])

    with pytest.raises(CacheMissError, match="strict cache mode"):
        run_prompt_lab(config, ["v1"], market, [rows[0] + 1], cache=replay_cache, cache_mode="strict")
