"""What the benchmark scripts share: best-of timing, the result table, and the environment record."""

from __future__ import annotations

import gc
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Run `fn` `repeats` times (after a collection, so one run's garbage doesn't bill the next); best, all, result."""
    times: list[float] = []
    out: Any = None
    for _ in range(max(1, repeats)):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def aligned_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned text columns with a dashed rule under the header."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment(**versions: str) -> dict[str, Any]:
    """The machine and Python, plus the given library versions."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        **versions,
    }
