"""Opening the arena store for the monitor, and the reading helpers every monitor query shares.

Why a module of its own: the monitor reads the store in two ways (the leaderboard aggregated in SQL,
`monitor.leaderboard_sql`, and the page queries, `monitor.queries`), and both need the same things: the store
opened read-mostly and probed (a clear `StoreUnavailableError`, never a traceback, when it cannot be read), the
ledger tables, the rounds of a period, and frames whose columns and dtypes do not depend on whether a query found
rows. They are defined once here. Nothing here writes.

Conventions: the store keeps epoch-ns integers; they come back as UTC pandas Timestamps. An unknown run id reads as
a run with no rows yet (empty frames with the documented columns, never an exception), because a dashboard may ask
about a run removed between two refreshes. Statements are SQLAlchemy Core over `ArenaStore.engine` and use only
what SQLite (3.25 or later) and PostgreSQL share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from typing import cast as cast_type

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, event, func, null, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from arena_lib.arena import schema as t
from arena_lib.arena.store import DB_URL_ENV, ArenaStore, default_db_url, redact_url
from arena_lib.data.resample import TimeLike, to_utc_timestamp

__all__ = [
    "ACCOUNTS", "AGENTS", "CALLS", "DECISIONS", "EQUITY", "FILLS", "INVALIDATION_SOURCE", "NAT", "POSITIONS",
    "PROMPTS", "ROUNDS", "RUNS", "SNAPSHOTS",
    "RoundWindow", "StoreUnavailableError",
    "account_values", "in_window", "maybe_utc", "open_store", "pairs", "parse_schema", "period_bounds",
    "positive_int", "round_window", "schema_frame", "utc_index", "utc_stamp", "with_schema",
]  # fmt: skip

# The ledger tables the monitor reads.
RUNS = t.RunRow.__table__
AGENTS = t.RunAgentRow.__table__
ACCOUNTS = t.AccountRow.__table__
POSITIONS = t.PositionRow.__table__
ROUNDS = t.RoundRow.__table__
SNAPSHOTS = t.SnapshotRow.__table__
PROMPTS = t.PromptRow.__table__
CALLS = t.LLMCallRow.__table__
DECISIONS = t.DecisionRow.__table__
FILLS = t.FillRow.__table__
EQUITY = t.EquityRow.__table__

INVALIDATION_SOURCE = "invalidation"  # decisions the engine made when an exit plan's invalidation fired
_SQLITE_MMAP_BYTES = 1 << 30  # address space only: pages are read as they are touched
_SQLITE_CACHE_KIB = 65_536
NAT = cast_type(pd.Timestamp, pd.NaT)  # missing times are NaT, which pandas types apart from Timestamp


class StoreUnavailableError(RuntimeError):
    """The arena store cannot be read (corrupt file, unreachable server, missing driver)."""


# -- opening the store --------------------------------------------------------------------------------------------
def open_store(url: str | None = None) -> ArenaStore:
    """The store at `url` (None: `default_db_url()`), probed with a cheap SELECT.

    A missing SQLite file becomes an empty store, as on a new install (`ArenaStore` creates the tables). A file
    that is not a database, an unreachable server or a missing driver raises `StoreUnavailableError`.
    """
    target = url or default_db_url()
    try:
        store = ArenaStore(target)
    except (SQLAlchemyError, OSError, ImportError) as exc:
        raise StoreUnavailableError(_unavailable(target, exc)) from exc
    if store.engine.dialect.name == "sqlite":
        event.listen(store.engine, "connect", _sqlite_reader_settings)
        store.engine.dispose()  # pooled connections opened before the listener lack the settings
    try:
        with store.engine.connect() as conn:
            conn.execute(select(RUNS.c.run_id).limit(1)).all()
    except SQLAlchemyError as exc:
        store.engine.dispose()
        raise StoreUnavailableError(_unavailable(target, exc)) from exc
    return store


def _sqlite_reader_settings(dbapi_conn: Any, _record: Any) -> None:
    """Read the file through memory-mapped I/O with a larger page cache: the monitor's scans visit rows in index
    order, which on a store written round by round jumps between pages; both settings belong to this connection
    only and change nothing in the file."""
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    cursor.close()


def _unavailable(url: str, exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return (
        f"cannot read the arena store at {redact_url(url)}: {type(cause).__name__}: {cause}. "
        f"Point the monitor at a readable store with the {DB_URL_ENV} environment variable "
        "(a SQLAlchemy URL such as sqlite:////abs/path/arena.db or postgresql+psycopg://user@host/db)."
    )


# -- the rounds of a period ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundWindow:
    """Rounds of a period: `first`..`last` fall in [start, end]; `before` is the last round before start."""

    before: int | None
    first: int | None
    last: int | None


def period_bounds(start: TimeLike | None, end: TimeLike | None) -> tuple[int | None, int | None]:
    """A period's bounds as epoch ns (None: open), checked for order; the error names a bad timestamp."""
    lo = None if start is None else int(to_utc_timestamp(start, "start").value)
    hi = None if end is None else int(to_utc_timestamp(end, "end").value)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {pd.Timestamp(lo, tz='UTC')} is after end {pd.Timestamp(hi, tz='UTC')}")
    return lo, hi


def round_window(conn: Connection, run_id: str, lo: int | None, hi: int | None) -> RoundWindow:
    """The rounds of [lo, hi] (epoch ns, inclusive) and the last round before lo, from the small rounds table."""
    r = ROUNDS.c
    inside = [
        cond for cond in (None if lo is None else r.ts >= lo, None if hi is None else r.ts <= hi) if cond is not None
    ]
    in_period = and_(*inside) if inside else None
    picked = r.round_no if in_period is None else case((in_period, r.round_no))
    before = null() if lo is None else func.max(case((r.ts < lo, r.round_no)))
    row = conn.execute(
        select(before, func.min(picked), func.max(picked)).select_from(ROUNDS).where(r.run_id == run_id)
    ).one()
    return RoundWindow(*(None if v is None else int(v) for v in row))


def in_window(round_no: Any, window: RoundWindow) -> ColumnElement[bool]:
    """SQL condition: a round number column falls in the window's rounds."""
    return round_no.between(window.first, window.last)


def account_values(conn: Connection, run_id: str, window: RoundWindow) -> dict[str, tuple[Any, Any]]:
    """Per agent: equity at the period's last round and just before it starts (None where there is none)."""
    a, e = AGENTS.c, EQUITY.c

    def equity_at_or_before(round_no: int | None) -> Any:
        if round_no is None:
            return null()
        return (
            select(e.equity)
            .where(e.run_id == a.run_id, e.agent == a.agent, e.round_no <= round_no)
            .order_by(e.round_no.desc())
            .limit(1)
            .scalar_subquery()
        )

    stmt = select(a.agent, equity_at_or_before(window.last), equity_at_or_before(window.before)).where(
        a.run_id == run_id
    )
    return {row[0]: (row[1], row[2]) for row in conn.execute(stmt)}


# -- typed frames and values -------------------------------------------------------------------------------------
def parse_schema(spec: str) -> dict[str, str | None]:
    """Columns and dtypes from "name name:dtype ...": `parse_schema("a b:float64") == {"a": None, "b": "float64"}`."""
    return {name: (dtype or None) for name, _, dtype in (item.partition(":") for item in spec.split())}


def schema_frame(rows: Sequence[Any], schema: Mapping[str, str | None]) -> pd.DataFrame:
    """Result rows as a frame with the schema's columns and dtypes."""
    return with_schema(pd.DataFrame(list(rows), columns=list(schema)), schema)


def with_schema(frame: pd.DataFrame, schema: Mapping[str, str | None]) -> pd.DataFrame:
    """`frame`'s schema columns in order, with their dtypes (also when it is empty)."""
    out = frame.reindex(columns=list(schema)).reset_index(drop=True)
    for col, dtype in schema.items():
        if dtype == "utc":
            out[col] = utc_index(out[col])
        elif dtype is not None:
            out[col] = out[col].astype(cast_type(Any, dtype))
    return out


def positive_int(value: int, name: str) -> int:
    """`value` as an int, or a ValueError naming the argument (a page size or a limit)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def utc_stamp(ns: Any) -> pd.Timestamp:
    """Epoch ns from the store as a UTC Timestamp (NaT for None)."""
    return NAT if ns is None else pd.Timestamp(int(ns), unit="ns", tz="UTC")


def maybe_utc(value: Any) -> pd.Timestamp:
    """A run's start/end text as a UTC Timestamp; NaT when absent or unreadable (it is shown, never computed on)."""
    try:
        return NAT if value in (None, "") else to_utc_timestamp(value)
    except ValueError:
        return NAT


def utc_index(values: Any) -> pd.DatetimeIndex:
    """Epoch-ns integers (None for missing) as a UTC DatetimeIndex, without a lossy trip through float."""
    ints = pd.Series(list(values) if not isinstance(values, pd.Series) else values, dtype=object).astype("Int64")
    return pd.DatetimeIndex(pd.to_datetime(ints, unit="ns", utc=True))


def pairs(result: Iterable[Any]) -> dict[Any, Any]:
    """A two-column result as a dict of first column -> second column."""
    return {row[0]: row[1] for row in result}
