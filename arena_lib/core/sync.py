"""Run a coroutine to completion from synchronous code, also where an event loop is already running.

Why: `asyncio.run` refuses to start inside a running loop, and a Jupyter kernel always runs one, so a synchronous
helper that calls async model clients would work in scripts and fail in every notebook. There the coroutine runs
on a fresh loop in a worker thread, and the caller waits for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)`, or the same on a worker thread when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-run-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
