"""The LLM response cache's alembic migration history (`versions/`), run on open by `arena_lib.core.migrations`.

Apart from the ledger's: the cache lives in its own database (`ARENA_LLM_CACHE_URL`) with its own version table.
The history is described by `arena_lib.agents.llm.cache.MIGRATIONS`; new revisions are written as for the ledger
(see `arena_lib.arena.migrations`).
"""
