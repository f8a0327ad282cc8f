"""Alembic migrations, run when a database is opened: its tables are created and upgraded by versioned scripts.

Each database (the arena ledger, the LLM response cache) has its own migration history shipped inside the package
and described by a `MigrationSpec`; no alembic.ini is read. Opening a database costs one look at its version table
when it is already at head (the test suite opens hundreds of stores); only a database that is behind takes locks
and runs the missing revisions, all in one transaction (SQLite and PostgreSQL both have transactional DDL), so a
crash mid-upgrade leaves the previous revision whole and two processes opening a fresh database never both create
its tables. A database made before migrations existed (its tables present, no version table) is stamped with the
baseline revision, which is the exact schema that code created, and then upgraded.

Each history keeps its own version table, so the ledger and the cache can share one PostgreSQL database.
Developers write a new revision with alembic's own commands on `alembic_config(spec, url=...)`, for example
``alembic.command.revision(alembic_config(MIGRATIONS, url=...), "add x", autogenerate=True)``.
"""

from __future__ import annotations

import functools
import threading
import zlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect, text

if TYPE_CHECKING:  # alembic is imported on first use: `import arena_lib` stays light
    from alembic.config import Config
    from alembic.script import ScriptDirectory


# alembic runs migrations through process-global proxies (`alembic.context`, `alembic.op`): one upgrade at a time
# per process, whichever database it is for. Taken before the database's own lock, never after it.
_UPGRADING = threading.Lock()


@dataclass(frozen=True)
class MigrationSpec:
    """One database's migration history: where its scripts live and how to recognise a pre-migration database."""

    name: str  # what messages call the database, e.g. "arena ledger"
    script_location: str  # the alembic environment as "package:folder", e.g. "arena_lib.arena:migrations"
    version_table: str  # its own version table, so that two histories can share one database
    metadata: MetaData = field(compare=False, hash=False)  # the models the head revision must match
    baseline: str  # the revision whose schema is the one `create_all` made before migrations existed
    baseline_tables: tuple[str, ...]  # the tables of `baseline`: present without a version table means "stamp"


class LegacySchemaError(RuntimeError):
    """A database made before migrations is missing tables of the baseline, so it cannot be stamped safely."""


class NewerSchemaError(RuntimeError):
    """A database is at a revision this code does not know: newer code migrated it."""


def alembic_config(spec: MigrationSpec, *, url: str | None = None, connection: Connection | None = None) -> Config:
    """An alembic `Config` for `spec`'s history, built in code: for `alembic.command` calls, at run time or by hand.

    With `connection` the commands run on it (inside its transaction); with `url` they open their own.
    """
    return _config(spec.script_location, url=url, connection=connection)


def _config(script_location: str, *, url: str | None = None, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


class Environment(Protocol):
    """What env.py scripts see as `alembic.context` (a module proxying an `EnvironmentContext`)."""

    @property
    def config(self) -> Config: ...

    def configure(self, connection: Connection | None = ..., **kw: Any) -> None: ...

    def begin_transaction(self) -> AbstractContextManager[Any]: ...

    def run_migrations(self, **kw: Any) -> None: ...


def run_environment(env: Environment, spec: MigrationSpec) -> None:
    """The body of every env.py: configure alembic for `spec` on the given connection (or URL), run migrations."""
    connection: Connection | None = env.config.attributes.get("connection")
    if connection is not None:
        _run_on(env, spec, connection)
        return
    url = env.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(f"{spec.name} migrations need a connection or a sqlalchemy.url (see alembic_config)")
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            _run_on(env, spec, conn)
    finally:
        engine.dispose()


def _run_on(env: Environment, spec: MigrationSpec, connection: Connection) -> None:
    _configure(env, spec, connection)
    with env.begin_transaction():
        env.run_migrations()


def _configure(env: Environment, spec: MigrationSpec, connection: Connection) -> None:
    env.configure(
        connection=connection,
        target_metadata=spec.metadata,
        version_table=spec.version_table,
        render_as_batch=True,  # SQLite has no ALTER for most changes: autogenerate writes batch operations
        include_object=_owned_by(spec),
    )


def _owned_by(spec: MigrationSpec) -> Any:
    """An autogenerate filter that ignores tables of other histories sharing the database."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (type_ == "table" and reflected and name not in spec.metadata.tables)

    return include


def compare_options(spec: MigrationSpec) -> dict[str, Any]:
    """The options `alembic.autogenerate.compare_metadata` needs to check a database against `spec`'s models."""
    return {"version_table": spec.version_table, "include_object": _owned_by(spec), "compare_type": True}


@functools.cache
def _scripts(script_location: str) -> ScriptDirectory:
    """A migration history's scripts, loaded once per process."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(script_location))


def head_revisions(script_location: str) -> frozenset[str]:
    """The head revision(s) of a migration history."""
    return frozenset(_scripts(script_location).get_heads())


@functools.cache
def _known_revisions(script_location: str) -> frozenset[str]:
    return frozenset(script.revision for script in _scripts(script_location).walk_revisions())


def current_revisions(conn: Connection, spec: MigrationSpec) -> frozenset[str]:
    """The revision(s) a database is at (empty: no version table, or an empty one)."""
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": spec.version_table})
    return frozenset(ctx.get_current_heads())


def upgrade_to_head(engine: Engine, spec: MigrationSpec) -> None:
    """Bring the database behind `engine` to `spec`'s head revision; one already there costs two small reads."""
    heads = head_revisions(spec.script_location)
    with engine.connect() as conn:
        if current_revisions(conn, spec) == heads:
            return
    from alembic.runtime.environment import EnvironmentContext

    scripts = _scripts(spec.script_location)
    with _UPGRADING, engine.connect() as conn, conn.begin():
        _lock_for_migration(conn, spec)
        current = current_revisions(conn, spec)  # another process may have upgraded it while we waited
        if current == heads:
            return
        unknown = sorted(current - _known_revisions(spec.script_location))
        if unknown:
            raise NewerSchemaError(
                f"this {spec.name} is at revision {', '.join(unknown)}, which this version of arena does not know "
                f"(its newest is {', '.join(sorted(heads))}): newer code migrated it; upgrade arena to open it"
            )
        made_before = not current and _made_before_migrations(conn, spec)

        # What `alembic.command.upgrade` does, minus re-reading the scripts and env.py on every fresh database.
        def steps(revision: Any, _context: Any) -> Any:
            return scripts._upgrade_revs("heads", revision)

        cfg = alembic_config(spec, connection=conn)
        with EnvironmentContext(cfg, scripts, fn=steps, destination_rev="heads") as env:
            _configure(env, spec, conn)
            if made_before:
                env.get_context().stamp(scripts, spec.baseline)
            env.run_migrations()  # inside this connection's transaction: alembic commits nothing itself


def _lock_for_migration(conn: Connection, spec: MigrationSpec) -> None:
    """Serialise upgrades of one database across processes until this transaction ends."""
    if conn.dialect.name == "sqlite":
        # pysqlite opens transactions lazily and never for DDL: take the write lock now, so that the version check
        # and the DDL that follow form one transaction that no other opener can interleave with.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        key = zlib.crc32(spec.version_table.encode()) & 0x7FFFFFFF
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _made_before_migrations(conn: Connection, spec: MigrationSpec) -> bool:
    """True when the baseline's tables are present without a version table (a database `create_all` made)."""
    existing = set(inspect(conn).get_table_names())
    present = existing.intersection(spec.baseline_tables)
    if not present:
        return False
    missing = sorted(set(spec.baseline_tables) - existing)
    if missing:
        raise LegacySchemaError(
            f"this {spec.name} predates schema migrations but lacks the tables {missing} that its baseline revision "
            f"{spec.baseline!r} has, so it cannot be stamped and upgraded in place; move the database aside (it keeps "
            "its data) and open a new one"
        )
    return True
