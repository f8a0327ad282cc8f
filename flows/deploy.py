"""Arena's deployments: `ingest` hourly, `trade` every bar, `retrain` weekly, `report` daily, served by one process.

Run `arena flows serve` (or `python -m flows.deploy`) with `PREFECT_API_URL` pointing at a Prefect server: the
schedules live on the server, and this process polls it and runs each flow when due. On many machines, register
the same flows against a work pool instead (`prefect deploy` / `flow.deploy(work_pool_name=...)`) and start
`prefect worker start --pool <pool>` wherever they should run; see the README's "Scheduled jobs".

`trade` has a deployment concurrency limit of 1 with CANCEL_NEW: a second scheduler (or a slow bar overrunning the
next slot) cannot start a second trade while one runs; the ledger's deterministic order ids and once-only round
commits guard the same line underneath. Cron times are UTC and fire a minute after the bar closes, so the bar is
final on the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from arena_lib.core.settings import settings
from flows.ingest import ingest
from flows.report import report
from flows.retrain import retrain
from flows.trade import trade

TRADE_CONFIG_ENV = "ARENA_TRADE_CONFIG"
"""The trade job's arena YAML (`Settings.trade_config`)."""
TRADE_MODE_ENV = "ARENA_TRADE_MODE"
"""The trade job's mode, paper, replay or live (`Settings.trade_mode`; live needs the latch)."""


@dataclass(frozen=True)
class Schedule:
    """One deployment: which flow, when (cron, UTC), with which parameters."""

    name: str
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def schedules(trade_config: str | None = None, trade_mode: str | None = None) -> dict[str, Schedule]:
    """The four schedules (flow name -> Schedule); the trade job's config and mode default to the settings'.

    Raises ConfigError when `ARENA_TRADE_MODE` is neither paper nor replay: a live job is never scheduled by a typo.
    """
    env = settings()
    config = trade_config or env.trade_config
    mode = trade_mode or env.trade_mode
    return {
        "ingest": Schedule(
            "ingest-hourly", "1 * * * *", {"source": "exchange"}, "refresh candles and funding after each hourly close"
        ),
        "trade": Schedule(
            "trade-every-bar",
            "1 * * * *",
            {"config": config, "job": "main", "mode": mode},
            "one arena round per closed 1h bar (paper by default)",
        ),
        "retrain": Schedule(
            "retrain-weekly", "30 2 * * 1", {}, "walk-forward retrain; the candidate takes paper only if it wins"
        ),
        "report": Schedule("report-daily", "15 0 * * *", {"days": 1.0}, "the arena report for the last UTC day"),
    }


def deployments(trade_config: str | None = None, trade_mode: str | None = None) -> list[Any]:
    """The RunnerDeployments `serve` runs (built, not yet registered with a server)."""
    plan = schedules(trade_config, trade_mode)
    flows: dict[str, Flow[..., Any]] = {"ingest": ingest, "trade": trade, "retrain": retrain, "report": report}
    built = []
    for key, flow_ in flows.items():
        s = plan[key]
        limit = (
            ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
            if key == "trade"
            else None
        )
        built.append(
            flow_.to_deployment(
                name=s.name,
                cron=s.cron,
                parameters=s.parameters,
                description=s.description,
                concurrency_limit=limit,
                tags=["arena", key],
            )
        )
    return built


def serve_all(trade_config: str | None = None, trade_mode: str | None = None) -> None:
    """Register the deployments with the Prefect server at `PREFECT_API_URL` and run them as they come due."""
    from prefect import serve

    serve(*deployments(trade_config, trade_mode))


if __name__ == "__main__":
    serve_all()
