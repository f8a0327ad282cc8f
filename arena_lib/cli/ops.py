"""Operations commands: `arena monitor` (Streamlit), and the `arena flows` group that `flows/` contributes.

The library never imports `flows/` or Prefect: the `flows` group is found through the `arena.cli` entry-point group
(`flows.cli:app`, declared in pyproject.toml), so the CLI offers it whenever the project is installed, and
`arena --help` stays instant. Streamlit runs in a subprocess on `apps/monitor/app.py`.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import typer


def _say(message: str) -> None:
    typer.echo(message)


def monitor_command(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8501,
) -> None:
    """Start the Streamlit monitor on loopback over the arena store and MLflow (read-only unless unlocked)."""
    from arena_lib.core.paths import project_root

    app = project_root() / "apps" / "monitor" / "app.py"
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    _say(f"monitor on http://127.0.0.1:{port}")
    # From the app's folder, so Streamlit reads apps/monitor/.streamlit/config.toml (theme, no tracebacks shown).
    raise typer.Exit(subprocess.call(cmd, cwd=app.parent))


def plugin_groups() -> dict[str, typer.Typer]:
    """Command groups other packages add through the `arena.cli` entry points (name -> Typer app), loaded lazily."""
    from importlib.metadata import entry_points

    groups: dict[str, typer.Typer] = {}
    for ep in entry_points(group="arena.cli"):
        groups[ep.name] = ep.load()
    return groups


def register(app: typer.Typer) -> None:
    """Add `monitor` and the entry-point groups (`flows`) to the `arena` app."""
    app.command("monitor")(monitor_command)
    for name, group in plugin_groups().items():
        app.add_typer(group, name=name)
