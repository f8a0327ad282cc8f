"""Point the homes that Jupyter, IPython, matplotlib and Keras write to at a temporary folder: tests never touch ~."""

from __future__ import annotations

from pathlib import Path

import pytest

TOOL_HOMES = (
    "IPYTHONDIR",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "MPLCONFIGDIR",
    "KERAS_HOME",
)


def redirect_tool_homes(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Set every variable of `TOOL_HOMES` to its own new folder under `root`."""
    for name in TOOL_HOMES:
        folder = root / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        mp.setenv(name, str(folder))
