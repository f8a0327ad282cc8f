"""Prefect's environment for Arena's flows: a project-local home, no analytics, set before Prefect is imported."""

from __future__ import annotations

import os
from pathlib import Path

from arena_lib.core.config_errors import ConfigError
from arena_lib.core.paths import project_root
from arena_lib.core.settings import settings

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "true",
}


def configure_prefect() -> None:
    """Default `PREFECT_HOME` to `<project>/.arena/prefect` and switch analytics off; explicit settings win.

    Why before import: Prefect reads its settings from the environment when they are first used, so the home must be
    in place before any flow or client exists. Why a bad `ARENA_*` variable does not fail here: this runs when the
    package is imported (by the `arena` command, to list its groups), where an error would be a traceback; the
    flows and `arena flows` commands read the settings before they use Prefect, and report it there in one line.
    """
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        home = settings().prefect_home
    except ConfigError:
        return
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)


def project_path(path: str | os.PathLike[str]) -> Path:
    """`path` as given when absolute, else relative to the project root (what a deployment's parameters name)."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p
