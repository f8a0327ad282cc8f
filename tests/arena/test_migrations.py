"""The ledger's and the cache's tables come from alembic migrations, run when a database is opened.

A ledger made before migrations existed (the TEST FIXTURE `fixtures/store_34b6861.sql`: the schema of commit
34b6861 with a few made-up rows) is stamped with the baseline revision and upgraded with nothing lost; the baseline
is byte for byte the DDL that code made; the models and the migrations agree (autogenerate finds no difference);
a database at head is opened with reads only; concurrent first opens of one file all succeed. The same holds on a
real PostgreSQL (skipped, saying why, where the server or psycopg is missing).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, event, text

from arena_lib.agents.llm import cache as llm_cache
from arena_lib.arena import schema as t
from arena_lib.arena.store import AccountState, ArenaStore, RoundWrite
from arena_lib.core.migrations import (
    LegacySchemaError,
    MigrationSpec,
    NewerSchemaError,
    alembic_config,
    compare_options,
    head_revisions,
)
from arena_lib.core.types import Action
from tests.arena.fixtures.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

FIXTURE = Path(__file__).parent / "fixtures" / "store_34b6861.sql"
RUN = "fixture-run-a"  # the fixture's running run: last round 2; alpha holds a BTC long and a pending order
HEAD = "0003_live_trading"


def _load(dump: Path, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.executescript(dump.read_text())
    finally:
        conn.close()


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    conn = sqlite3.connect(db)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        conn.close()


def _ddl(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")
        return {str(n): str(s) for n, s in rows}
    finally:
        conn.close()


def _version(db: Path, table: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [v for (v,) in conn.execute(f"SELECT version_num FROM {table}")]
    finally:
        conn.close()


@pytest.fixture
def legacy_db(tmp_path: Path) -> Path:
    db = tmp_path / "arena.db"
    _load(FIXTURE, db)
    return db


def test_the_head_revision_is_the_live_trading_one() -> None:
    assert head_revisions(t.MIGRATIONS.script_location) == {HEAD}
    assert head_revisions(llm_cache.MIGRATIONS.script_location) == {"cache_0001_baseline"}


def test_a_ledger_made_before_migrations_is_stamped_upgraded_and_loses_nothing(legacy_db: Path) -> None:
    before_rows, before_ddl = _rows(legacy_db), _ddl(legacy_db)
    assert "arena_alembic_version" not in before_rows
    assert all(before_rows[n] for n in t.MIGRATIONS.baseline_tables)  # the fixture has rows in every table

    store = ArenaStore(f"sqlite:///{legacy_db}")
    try:
        after_rows, after_ddl = _rows(legacy_db), _ddl(legacy_db)
        assert _version(legacy_db, "arena_alembic_version") == [HEAD]
        # Revision 0003 appends columns to three tables (rebuilt by batch mode): their old columns keep every
        # value, the new ones take their defaults; every other table is untouched.
        widened = {"fills": ("engine",), "accounts": ("{}",), "trading_halt": (0,)}
        for name, rows in before_rows.items():
            extra = widened.get(name, ())
            assert after_rows[name] == [(*row, *extra) for row in rows], name
        assert {n: after_ddl[n] for n in before_ddl if n not in widened} == {
            n: d for n, d in before_ddl.items() if n not in widened
        }
        assert after_rows["writer_leases"] == []
        assert after_rows["rejections"] == []

        accounts = store.load_accounts(RUN)
        alpha = accounts["alpha"]
        assert (alpha.last_round, alpha.cash, alpha.fees_paid) == (2, 9_158.95, 0.84)
        assert alpha.positions["BTC/USDT"].quantity == 0.02
        assert [(o.symbol, o.action) for o in alpha.pending] == [("ETH/USDT", Action.ENTER_SHORT)]
        assert alpha.plans["BTC/USDT"]["stop_loss"] == 79_800.0
        assert store.get_run(RUN).last_round == 2
        assert store.halt_state() is not None

        # The upgraded ledger takes the next round, with and without a writer lease.
        assert store.commit_round(_next_round(accounts, 3)) is True
        lease = store.acquire_lease(RUN)
        assert store.commit_round(_next_round(store.load_accounts(RUN), 4), lease) is True
        assert store.rounds_frame(RUN)["round_no"].tolist() == [0, 1, 2, 3, 4]
        assert store.load_accounts(RUN)["alpha"].positions == alpha.positions
    finally:
        store.engine.dispose()


def _next_round(accounts: dict[str, AccountState], round_no: int) -> RoundWrite:
    ts = 1_740_787_200_000_000_000 + round_no * 3_600_000_000_000
    for acc in accounts.values():
        acc.last_round = round_no
    return RoundWrite(
        run_id=RUN,
        round_no=round_no,
        ts=ts,
        snapshot_hash=f"{round_no:064x}",
        snapshot_content={},
        wall_started=ts,
        wall_s=0.1,
        accounts=list(accounts.values()),
        equity=[
            t.EquityRow(run_id=RUN, agent=a, round_no=round_no, ts=ts, cash=acc.cash, equity=acc.cash, gross_exposure=0)
            for a, acc in accounts.items()
        ],
    )


def test_the_baseline_revision_is_exactly_the_ddl_of_commit_34b6861(legacy_db: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "baseline.db"
    command.upgrade(alembic_config(t.MIGRATIONS, url=f"sqlite:///{fresh}"), "0001_baseline")
    ddl = _ddl(fresh)
    assert ddl.pop("arena_alembic_version").startswith("CREATE TABLE arena_alembic_version")
    assert ddl == _ddl(legacy_db)


def _differences(engine: Any, spec: MigrationSpec, metadata: MetaData | None = None) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts=compare_options(spec))
        return list(compare_metadata(ctx, metadata if metadata is not None else spec.metadata))


@pytest.mark.parametrize("made", ["fresh", "before migrations"])
def test_autogenerate_finds_no_difference_between_the_ledger_models_and_its_migrations(
    made: str, legacy_db: Path, tmp_path: Path
) -> None:
    db = legacy_db if made == "before migrations" else tmp_path / "fresh.db"
    store = ArenaStore(f"sqlite:///{db}")
    try:
        assert _differences(store.engine, t.MIGRATIONS) == []
        # The comparison does see a model the migrations lack, so the empty answer above means something.
        extra = MetaData()
        for table in t.Base.metadata.tables.values():
            table.to_metadata(extra)
        Table("not_migrated", extra, Column("id", Integer, primary_key=True))
        assert [d[0] for d in _differences(store.engine, t.MIGRATIONS, extra)] == ["add_table"]
    finally:
        store.engine.dispose()


def test_autogenerate_finds_no_difference_between_the_cache_model_and_its_migrations(tmp_path: Path) -> None:
    cache = llm_cache.ResponseCache(f"sqlite:///{tmp_path}/cache.db")
    try:
        assert _differences(cache.engine, llm_cache.MIGRATIONS) == []
        assert _version(tmp_path / "cache.db", "llm_cache_alembic_version") == ["cache_0001_baseline"]
    finally:
        cache.engine.dispose()


def test_the_ledger_and_the_cache_can_share_one_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    store, cache = ArenaStore(url), llm_cache.ResponseCache(url)
    try:
        assert _differences(store.engine, t.MIGRATIONS) == []
        assert _differences(cache.engine, llm_cache.MIGRATIONS) == []
        assert _version(tmp_path / "shared.db", "arena_alembic_version") == [HEAD]
        assert _version(tmp_path / "shared.db", "llm_cache_alembic_version") == ["cache_0001_baseline"]
    finally:
        store.engine.dispose()
        cache.engine.dispose()


def test_a_ledger_at_head_is_opened_with_reads_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/arena.db"
    ArenaStore(url).engine.dispose()
    engine = create_engine(url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    ArenaStore(url, engine=engine)
    engine.dispose()
    assert statements, "the version check ran no statement"
    assert len(statements) <= 3, statements
    assert all(s.lstrip().upper().startswith(("SELECT", "PRAGMA")) for s in statements), statements


def test_a_ledger_made_before_migrations_but_missing_baseline_tables_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "partial.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE runs (run_id VARCHAR(64) NOT NULL PRIMARY KEY)")
    conn.close()
    with pytest.raises(LegacySchemaError, match=r"lacks the tables \['accounts', 'breakers'"):
        ArenaStore(f"sqlite:///{db}")
    assert "arena_alembic_version" not in _ddl(db)  # nothing was stamped


def test_a_ledger_migrated_by_newer_code_is_refused_by_name(tmp_path: Path) -> None:
    db = tmp_path / "arena.db"
    ArenaStore(f"sqlite:///{db}").engine.dispose()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE arena_alembic_version SET version_num = '0009_from_the_future'")
    conn.close()
    with pytest.raises(NewerSchemaError, match=rf"at revision 0009_from_the_future.*its newest is {HEAD}"):
        ArenaStore(f"sqlite:///{db}")


def test_first_opens_from_many_threads_all_succeed(tmp_path: Path) -> None:
    """Three threads open one new ledger (one creates it, the others wait and find it at head), three others open
    ledgers and caches of their own at the same moment (alembic's proxies are process-global)."""
    urls = [f"sqlite:///{tmp_path}/shared.db"] * 3 + [f"sqlite:///{tmp_path}/own{i}.db" for i in range(3)]
    openers: list[Any] = [ArenaStore] * 4 + [llm_cache.ResponseCache] * 2
    start = threading.Barrier(len(urls))
    errors: list[BaseException] = []

    def open_one(opener: Any, url: str) -> None:
        try:
            start.wait()
            opener(url).engine.dispose()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=pair) for pair in zip(openers, urls, strict=True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for db in ("shared.db", "own0.db"):
        assert _version(tmp_path / db, "arena_alembic_version") == [HEAD]
    for db in ("own1.db", "own2.db"):
        assert _version(tmp_path / db, "llm_cache_alembic_version") == ["cache_0001_baseline"]


def _open_in_child(url: str, go: Any, results: Any) -> None:
    go.wait()
    try:
        ArenaStore(url).engine.dispose()
        results.put("ok")
    except BaseException as exc:  # reported to the parent
        results.put(repr(exc))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks its openers (POSIX only)")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_first_opens_from_many_processes_all_succeed(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Processes share no lock but the database's own: one creates the tables, the others wait and find them."""
    url = f"sqlite:///{tmp_path}/arena.db" if backend == "sqlite" else str(request.getfixturevalue("postgres_url"))
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open_in_child, args=(url, go, results)) for _ in range(4)]
    for p in procs:
        p.start()
    go.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert outcomes == ["ok"] * len(procs)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM arena_alembic_version")).scalars().all() == [HEAD]
    engine.dispose()


def test_on_postgresql_a_pre_migration_ledger_is_stamped_and_concurrent_opens_share_one_database(
    request: pytest.FixtureRequest,
) -> None:
    url = str(request.getfixturevalue("postgres_url"))
    # A ledger as `create_all` made it before migrations: the baseline's tables, a run, and no version table.
    command.upgrade(alembic_config(t.MIGRATIONS, url=url), "0001_baseline")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE arena_alembic_version"))
        conn.execute(
            text(
                "INSERT INTO runs VALUES ('old-run', 1, 'replay', 'completed', '{}', 'x', '', '[]', '1h', NULL, NULL, "
                "'', 4, 'made before migrations')"
            )
        )
    openers: list[Any] = [ArenaStore, ArenaStore, llm_cache.ResponseCache, llm_cache.ResponseCache]
    start = threading.Barrier(len(openers))
    errors: list[BaseException] = []

    def open_one(opener: Any) -> None:
        try:
            start.wait()
            opener(url).engine.dispose()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(opener,)) for opener in openers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM arena_alembic_version")).scalars().all() == [HEAD]
            cache_versions = conn.execute(text("SELECT version_num FROM llm_cache_alembic_version")).scalars().all()
            assert cache_versions == ["cache_0001_baseline"]
        assert _differences(engine, t.MIGRATIONS) == []
        assert _differences(engine, llm_cache.MIGRATIONS) == []
        store = ArenaStore(url)
        assert (store.get_run("old-run").last_round, store.get_run("old-run").message) == (4, "made before migrations")
        store.engine.dispose()
    finally:
        engine.dispose()
