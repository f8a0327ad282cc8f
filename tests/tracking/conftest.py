"""One throwaway Arena project for the tracking tests: its own git checkout, MLflow store and tool homes.

Creating an MLflow sqlite store runs its migrations (about 5 s here), so the whole package shares one store and each
test uses experiment and model names of its own. Nothing is written under `~`: the Jupyter, IPython, matplotlib and
Keras homes point into the temporary folder. The `arena` kernelspec itself goes into the venv (`sys.prefix`), which
is where `make` installs it too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tool_homes import MLFLOW_ENV, redirect_tool_homes, reset_mlflow


def _git(root: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=arena-tests", "-c", "user.email=tests@arena.invalid", *args]
    return subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="package", autouse=True)
def arena_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ARENA_HOME: a committed git checkout that ignores mlruns/ and runs/, like the real project."""
    root = tmp_path_factory.mktemp("arena-home")
    homes = tmp_path_factory.mktemp("tool-homes")
    (root / ".gitignore").write_text("mlruns/\nruns/\n")
    (root / "README.md").write_text("tracking tests\n")
    _git(root, "init", "--quiet")
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "fixture project")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARENA_HOME", str(root))
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        redirect_tool_homes(mp, homes)
        yield root
        reset_mlflow()


@pytest.fixture
def git_head(arena_home: Path) -> str:
    """The fixture project's commit."""
    return _git(arena_home, "rev-parse", "HEAD")
