"""The LLM response cache: deterministic replays and shared recorded runs.

A response is cached under the sha256 of everything that determines it: provider, model, system prompt, user
prompt and the sampling parameters. A replay of a historical window with a warm cache therefore makes no API call
and reproduces its decisions exactly, and a prompt A/B test compares two versions on identical snapshots without
paying twice. In strict mode a miss is an error rather than a call, which is how a recorded run is audited.

The cache is a table in its own database (SQLite under `.arena/` by default, any SQLAlchemy URL by
`ARENA_LLM_CACHE_URL`), so it outlives runs and can be exported to a JSONL file and imported elsewhere. The table
is created and upgraded by its own alembic history (`cache_migrations/`, run on open), apart from the ledger's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import BigInteger, Engine, LargeBinary, String, bindparam, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from arena_lib.core.database import local_url, open_engine
from arena_lib.core.migrations import MigrationSpec

CACHE_URL_ENV = "ARENA_LLM_CACHE_URL"
CacheMode = Literal["use", "strict", "refresh", "off"]
CACHE_MODES: tuple[str, ...] = ("use", "strict", "refresh", "off")
_FORMAT = "arena-llm-cache/1"


class CacheMissError(LookupError):
    """Strict mode found no recorded response for a request."""


class _Base(DeclarativeBase):
    pass


class _CacheRow(_Base):
    __tablename__ = "llm_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # JSON: the response text, usage, latency


# The cache's migration history; revision 0001 is the table as `create_all` made it before migrations existed.
MIGRATIONS = MigrationSpec(
    name="LLM response cache",
    script_location="arena_lib.agents.llm:cache_migrations",
    version_table="llm_cache_alembic_version",
    metadata=_Base.metadata,
    baseline="cache_0001_baseline",
    baseline_tables=("llm_cache",),
)

_PAYLOAD_BY_KEY = select(_CacheRow.payload).where(_CacheRow.key == bindparam("b_key"))


def default_cache_url() -> str:
    """`ARENA_LLM_CACHE_URL` if set, else a SQLite file under `.arena/` in the current directory."""
    return local_url(CACHE_URL_ENV, "llm_cache.db")


def cache_key(provider: str, model: str, system: str, user: str, params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines a response."""
    blob = json.dumps(
        {"provider": provider, "model": model, "system": system, "user": user, "params": dict(params)},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Recorded LLM responses by request hash, with an in-memory layer for fast replays."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_cache_url()
        self.engine: Engine = open_engine(self.url, MIGRATIONS)
        self._memory: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The recorded response payload for `key`, or None."""
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        with self.engine.connect() as conn:  # a plain SELECT: an ORM session cost more than the lookup itself
            raw = conn.execute(_PAYLOAD_BY_KEY, {"b_key": key}).scalar_one_or_none()
        if raw is None:
            return None
        payload: dict[str, Any] = json.loads(raw)
        self._memory[key] = payload
        return payload

    def put(self, key: str, provider: str, model: str, payload: Mapping[str, Any]) -> None:
        """Record a response (committed at once, so a crash after the call never pays for it twice)."""
        data = dict(payload)
        with Session(self.engine) as s, s.begin():
            s.merge(
                _CacheRow(
                    key=key,
                    provider=provider,
                    model=model,
                    created_at=time.time_ns(),
                    payload=json.dumps(data).encode(),
                )
            )
        self._memory[key] = data

    def __len__(self) -> int:
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(_CacheRow)) or 0)

    def _rows(self) -> Iterator[_CacheRow]:
        with Session(self.engine) as s:
            yield from s.scalars(select(_CacheRow).order_by(_CacheRow.created_at, _CacheRow.key))

    def export(self, path: str | Path) -> int:
        """Write every entry to a JSONL file (gzip when the name ends in .gz); returns the count."""
        p = Path(path)
        opener = gzip.open if p.suffix == ".gz" else open
        n = 0
        with opener(p, "wt", encoding="utf-8") as f:
            f.write(json.dumps({"format": _FORMAT}) + "\n")
            for row in self._rows():
                rec = {"key": row.key, "provider": row.provider, "model": row.model, "created_at": row.created_at}
                rec["response"] = json.loads(row.payload)
                f.write(json.dumps(rec, sort_keys=True) + "\n")
                n += 1
        return n

    def import_file(self, path: str | Path) -> int:
        """Load entries exported by `export`; existing keys are kept. Returns how many were added.

        The file is read in one transaction: a malformed file (not gzip although named .gz, cut short, not UTF-8
        JSON lines, a wrong header, an entry without a key or without a response object holding its text) raises
        ValueError naming the file (and the line), and nothing is added.
        """
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"cache file not found: {p}")
        opener = gzip.open if p.suffix == ".gz" else open
        added = 0
        try:
            with opener(p, "rt", encoding="utf-8") as f, Session(self.engine) as s, s.begin():
                try:
                    header = json.loads(f.readline() or "{}")
                except ValueError:
                    header = None
                if not isinstance(header, dict) or header.get("format") != _FORMAT:
                    raise ValueError(f"{p}: not an Arena LLM cache export (expected format {_FORMAT!r})")
                for lineno, line in enumerate(f, start=2):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                        key, response = str(rec["key"]), rec["response"]
                    except (ValueError, KeyError, TypeError) as exc:
                        raise ValueError(f"{p}:{lineno}: malformed cache entry ({type(exc).__name__}: {exc})") from None
                    if not isinstance(response, dict) or not isinstance(response.get("text"), str):
                        raise ValueError(f"{p}:{lineno}: malformed cache entry (the response has no 'text' string)")
                    if s.get(_CacheRow, key) is None:
                        s.add(
                            _CacheRow(
                                key=key,
                                provider=str(rec.get("provider", "")),
                                model=str(rec.get("model", "")),
                                created_at=int(rec.get("created_at", 0)),
                                payload=json.dumps(response).encode(),
                            )
                        )
                        added += 1
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # not gzip, cut short, not text
            raise ValueError(f"{p}: not a readable Arena LLM cache export ({type(exc).__name__}: {exc})") from None
        return added
