"""`arena flows serve` / `arena flows list`: Prefect schedules, offered to the `arena` CLI by this package.

The library never imports `flows`; `arena_lib.cli.ops` finds this group through the `arena.cli` entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Prefect deployments: ingest, trade, retrain, report.")
LOCAL_API = "http://127.0.0.1:4200/api"


def _say(message: str) -> None:
    typer.echo(message)


def _wait_healthy(api_url: str, timeout_s: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"the Prefect server at {api_url} did not become healthy within {timeout_s:.0f}s")


@app.command("list")
def list_command() -> None:
    """Show the deployments `serve` registers: flow, name, cron (UTC) and parameters."""
    from flows.deploy import schedules

    for flow_name, s in schedules().items():
        _say(f"{flow_name:8s} {s.name:16s} cron '{s.cron}' {s.parameters}  - {s.description}")


@app.command("serve")
def serve_command(
    start_server: Annotated[
        bool, typer.Option("--start-server", help=f"start a local Prefect server on {LOCAL_API} first")
    ] = False,
    trade_config: Annotated[str | None, typer.Option(help="arena YAML of the trade job")] = None,
    trade_mode: Annotated[
        str | None, typer.Option(help="paper (default), replay, or live (needs the latch: see README)")
    ] = None,
) -> None:
    """Register the four deployments with the Prefect server and run them when due (Ctrl-C stops)."""
    if trade_mode not in (None, "paper", "replay", "live"):
        _say(f"--trade-mode must be paper, replay or live, got {trade_mode!r}")
        raise typer.Exit(2)
    from arena_lib.core.settings import settings

    settings()  # a bad ARENA_* variable stops here (one line from `arena`), before any server starts
    server: subprocess.Popen[bytes] | None = None
    if start_server:
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", "4200"]
        server = subprocess.Popen(cmd, env=env)
        os.environ["PREFECT_API_URL"] = LOCAL_API
        _wait_healthy(LOCAL_API)
        _say(f"Prefect server on {LOCAL_API} (UI: http://127.0.0.1:4200)")
    elif not os.environ.get("PREFECT_API_URL"):
        _say(
            "PREFECT_API_URL is not set: schedules need a Prefect server. Start one with "
            "`arena flows serve --start-server`, or `prefect server start --host 127.0.0.1` and "
            f"`export PREFECT_API_URL={LOCAL_API}`."
        )
        raise typer.Exit(2)
    from flows.deploy import serve_all

    try:
        serve_all(trade_config, trade_mode)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
