"""Suite-wide isolation from the developer's machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def empty_ingest_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point `ARENA_DATA_CACHE` at a new empty folder for the whole session.

    Research reads the sample extended by the ingest cache (`arena_lib.data.history`), so without this a
    developer's `data/cache/` (bars fetched last week) would change what the tests compute. Tests of the cache set
    their own folder on top of this one.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARENA_DATA_CACHE", str(tmp_path_factory.mktemp("ingest-cache")))
        yield
