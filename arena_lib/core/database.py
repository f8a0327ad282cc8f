"""Database URLs and engines shared by the arena store and the LLM response cache.

Both default to a SQLite file under `.arena/` in the project root (`arena_lib.core.paths.project_root`), and both
take any SQLAlchemy URL from an environment variable (PostgreSQL at scale) with no code change. SQLite gets
crash-safe settings: WAL, so a killed process never leaves half a transaction, and a busy timeout, so a reader
(the monitor) never makes a writer fail.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event

from arena_lib.core.migrations import MigrationSpec, upgrade_to_head
from arena_lib.core.settings import settings


def local_url(env_var: str, filename: str) -> str:
    """The URL in `env_var` if set, else `sqlite:///<project root>/.arena/<filename>` (the folder is created).

    `env_var` names a `Settings` field (`ARENA_DB_URL`, `ARENA_LLM_CACHE_URL`); another name is a KeyError.
    """
    current = settings()
    url = current.value_of(env_var)
    if url:
        return str(url)
    path = current.arena_dir / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def open_engine(url: str, migrations: MigrationSpec) -> Engine:
    """An engine for `url`, its database upgraded to the head of `migrations`, with crash-safe pragmas on SQLite.

    The tables come from alembic migrations rather than `create_all`, so a database made by older code is
    upgraded in place (see `arena_lib.core.migrations`); one already at head costs two small reads.
    """
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=10000")
            _switch_to_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    upgrade_to_head(engine, migrations)
    return engine


def _switch_to_wal(cur: Any, attempts: int = 50) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another process is switching a new file: SQLite then answers
    "database is locked" at once, without waiting out the busy timeout (seen with processes opening one new
    ledger at the same moment)."""
    for attempt in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.005 * (attempt + 1))  # about 6 s in all before giving up
