"""Where the project lives, and which commit it runs: shared by the stores, MLflow tracking and run provenance.

Why one place: the arena store, the LLM cache and the MLflow store must be the same files whether `arena` runs in
the project folder, a notebook kernel runs in `notebooks/`, or the monitor runs from `apps/`. So every default path
hangs off one project root, found the same way everywhere: `arena_lib.core.settings.Settings.project_root`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from arena_lib.core.settings import settings

HOME_ENV = "ARENA_HOME"
"""The variable that sets the project root (`Settings.home`); kept for code that exports it to a child process."""


def project_root() -> Path:
    """`ARENA_HOME`, else the nearest folder upward from the cwd holding `pyproject.toml` and `arena_lib/`, else cwd.

    Walking upward lets a notebook kernel whose cwd is `notebooks/` use the project's stores, not new ones.
    """
    return settings().project_root


def git_state() -> tuple[str, bool]:
    """(commit SHA, dirty) of the project checkout; ("", False) outside git. Ignored files do not count as dirty."""
    root = project_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "", False
    return sha, bool(status.strip())
