"""What the benchmark scripts share: best-of timing, the result table, the environment record and the results file."""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
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


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How the run was started, for the results file (`argv` None: this process's own arguments)."""
    return " ".join([script, *(sys.argv[1:] if argv is None else argv)])


def write_results(payload: dict[str, Any], output: Path, table: str, *, strict: bool = False) -> int:
    """Write the JSON results, print the table and a summary; the exit status is 1 only for `strict` and a miss.

    `payload` holds `mode`, `total_s` and, where the script has targets, `all_passed`.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(table)
    print(f"\n{payload['mode']} run in {payload['total_s']:.1f} s; results written to {output}")
    passed = bool(payload.get("all_passed", True))
    if not passed:
        print("some targets were missed (see FAIL above)" + ("" if strict else "; --strict makes that exit 1"))
    return 1 if strict and not passed else 0
