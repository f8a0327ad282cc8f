"""`run_sync` works from plain code and from inside a running event loop (a Jupyter kernel always has one)."""

from __future__ import annotations

import asyncio
import threading

from arena_lib.core.sync import run_sync


async def _where() -> tuple[str, bool]:
    await asyncio.sleep(0)
    return threading.current_thread().name, True


def test_run_sync_without_a_running_loop_runs_here() -> None:
    name, ok = run_sync(_where())
    assert ok
    assert name == threading.current_thread().name


def test_run_sync_inside_a_running_loop_runs_on_a_worker_thread() -> None:
    async def inside() -> tuple[str, bool]:
        return run_sync(_where())  # asyncio.run here would raise "cannot be called from a running event loop"

    name, ok = asyncio.run(inside())
    assert ok
    assert name.startswith("arena-run-sync")
