"""What every `arena` command shares: the consoles, the one-line failure, the progress bar.

Why its own module: the command modules (`arena`, `research`, `promotion`, `ops`) and `main`, which registers them,
all print the same way; importing these from `main` would make a cycle.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

# Wide tables even when piped (CI logs, `| tee`); errors never wrap, so they stay greppable.
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print `message` as one error line and exit with `code` (2: bad input, the CLI's usage error)."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def progress() -> Any:
    """A transient progress bar on stderr, so stdout stays the command's output."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
