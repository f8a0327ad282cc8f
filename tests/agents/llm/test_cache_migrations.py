"""An LLM response cache made before migrations existed is upgraded on open, and its recorded responses still hit.

The old database is the TEST FIXTURE `fixtures/llm_cache_34b6861.sql`: the cache table exactly as the code of
commit 34b6861 created it, holding two made-up responses (see `tests/arena/fixtures/make_legacy_fixtures.py`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from arena_lib.agents.llm.cache import MIGRATIONS, ResponseCache, cache_key

FIXTURE = Path(__file__).parent / "fixtures" / "llm_cache_34b6861.sql"
# The requests recorded in the fixture, and the response text each one got.
RECORDED = (
    (("openai", "fixture-model", "You trade crypto.", "invocation #1.", {"temperature": 0.0}), '{"decisions": []}'),
    (("anthropic", "fixture-claude", "You trade crypto.", "invocation #2.", {"max_tokens": 512}), "hold everything"),
)


def _tables(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return {str(n): str(s) for n, s in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_an_old_cache_is_upgraded_and_its_entries_still_hit(tmp_path: Path) -> None:
    db = tmp_path / "llm_cache.db"
    conn = sqlite3.connect(db)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    before = _tables(db)
    assert MIGRATIONS.version_table not in before

    cache = ResponseCache(f"sqlite:///{db}")
    try:
        after = _tables(db)
        assert after["llm_cache"] == before["llm_cache"]  # stamped, not rebuilt
        check = sqlite3.connect(db)
        versions = [v for (v,) in check.execute(f"SELECT version_num FROM {MIGRATIONS.version_table}")]
        check.close()
        assert versions == [MIGRATIONS.baseline]
        assert len(cache) == len(RECORDED)
        for request, text in RECORDED:
            hit = cache.get(cache_key(*request))  # today's key function finds what the old code recorded
            assert hit is not None, request
            assert hit["text"] == text
        assert cache.get(cache_key("openai", "fixture-model", "You trade crypto.", "invocation #3.", {})) is None
        cache.put("new-key", "openai", "fixture-model", {"text": "recorded after the upgrade"})
    finally:
        cache.engine.dispose()

    reopened = ResponseCache(f"sqlite:///{db}")  # a new handle reads from the database, not from memory
    try:
        assert reopened.get("new-key") == {"text": "recorded after the upgrade"}
        assert len(reopened) == len(RECORDED) + 1
    finally:
        reopened.engine.dispose()
