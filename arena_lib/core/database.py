"""Database URLs and engines shared by the arena store and the LLM response cache.

Both default to a SQLite file under `.arena/` in the project root (`arena_lib.core.paths.project_root`), and both
take any SQLAlchemy URL from an environment variable (PostgreSQL at scale) with no code change. SQLite gets
crash-safe settings: WAL, so a killed process never leaves half a transaction, and a busy timeout, so a reader
(the monitor) never makes a writer fail.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event

from arena_lib.core.paths import project_root


def local_url(env_var: str, filename: str) -> str:
    """The URL in `env_var` if set, else `sqlite:///<project root>/.arena/<filename>` (the folder is created)."""
    url = os.environ.get(env_var)
    if url:
        return url
    path = project_root() / ".arena" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def open_engine(url: str, metadata: MetaData) -> Engine:
    """An engine for `url` with `metadata`'s tables created, and crash-safe pragmas on SQLite."""
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    metadata.create_all(engine)
    return engine
