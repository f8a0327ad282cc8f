"""Opening the arena store for the monitor: a new install, an unreadable file, an unreachable server."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_lib.monitor.queries import list_runs
from arena_lib.monitor.store import StoreUnavailableError, open_store


def test_an_unreadable_store_raises_a_clear_error(unreadable_store_url: str) -> None:
    with pytest.raises(StoreUnavailableError) as err:
        open_store(unreadable_store_url)
    message = str(err.value)
    assert unreadable_store_url.removeprefix("sqlite:///") in message
    assert "not a database" in message
    assert "ARENA_DB_URL" in message


def test_a_password_never_reaches_the_error_message() -> None:
    with pytest.raises(StoreUnavailableError) as err:
        open_store("postgresql+psycopg://arena:s3cret@127.0.0.1:1/arena")
    assert "s3cret" not in str(err.value)
    assert "***" in str(err.value)


def test_a_missing_sqlite_file_opens_as_a_new_empty_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/new.db")
    assert list_runs(store).empty
