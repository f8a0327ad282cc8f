"""One throwaway Arena project for the tracking tests: its own git checkout, MLflow store and tool homes.

Creating an MLflow sqlite store runs its migrations (about 5 s here), so the whole package shares one store and each
test uses experiment and model names of its own. Nothing is written under `~`: the Jupyter, IPython, matplotlib and
Keras homes point into the temporary folder. The `arena` kernelspec itself goes into the venv (`sys.prefix`), which
is where `make` installs it too.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tool_homes import redirect_tool_homes

_MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
)


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
        for name in _MLFLOW_ENV:
            mp.delenv(name, raising=False)
        redirect_tool_homes(mp, homes)
        yield root
        if "mlflow" in sys.modules:  # leave no global store pointing at the deleted folder
            import mlflow

            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)


@pytest.fixture
def git_head(arena_home: Path) -> str:
    """The fixture project's commit."""
    return _git(arena_home, "rev-parse", "HEAD")
