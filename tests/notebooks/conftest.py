"""Notebook tests: each research notebook runs top to bottom on a fresh kernel under papermill, with tiny parameters.

Stores go to a temporary folder (MLflow, the arena store, the LLM cache), as do the tool homes (Jupyter, IPython,
matplotlib, Keras); the notebooks still read the project's bundled data and configs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tool_homes import redirect_tool_homes, reset_mlflow

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="package", autouse=True)
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("notebook-stores")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        mp.setenv("ARENA_DB_URL", f"sqlite:///{root / 'arena.db'}")
        mp.setenv("ARENA_LLM_CACHE_URL", f"sqlite:///{root / 'llm_cache.db'}")
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        (root / "mlruns").mkdir()
        redirect_tool_homes(mp, root)
        yield root
        reset_mlflow()
