"""`trade`: one invocation of a scheduled trading job through the arena's engine loop (paper by default).

Each run plays what is new since the job's last committed bar, then returns: the schedule (every bar) is the loop.
Agents are rebuilt on every run, so a model agent configured as `{agent: model, params: {model: M, alias: paper}}`
trades whichever version holds `M@paper` at that bar (`@live` for a live job): promotion and rollback reach the
job without a redeploy.

Retries apply to fetching the bars only (network I/O). Playing a bar is never retried by Prefect: the ledger is
idempotent (order ids derive from run/agent/bar/symbol, and a committed bar is never committed twice), so the next
scheduled run picks up whatever a failed one did not commit.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.states import Cancelled, Failed, State

from arena_lib.arena.config import ArenaConfig, load_arena_config
from arena_lib.arena.session import RunReport, trade_step
from arena_lib.arena.store import ArenaStore
from arena_lib.data.market import MarketData
from arena_lib.execution.latch import LiveNotArmedError
from flows.settings import project_path

TradeMode = Literal["paper", "replay", "live"]


@task(name="fetch-latest-bars", retries=3, retry_delay_seconds=[5, 30, 120])
def fetch_latest_bars(config: ArenaConfig, exchange_url: str | None = None) -> MarketData:
    """The latest closed bars of the config's symbols through ccxt (the forming bar is never included)."""
    from arena_lib.arena.paper import paper_feed

    return paper_feed(config, exchange_url).market()


@task(name="play-new-bars")
def play_new_bars(config: ArenaConfig, job: str, market: MarketData | None, bars: int, db_url: str | None) -> RunReport:
    """Play and commit the new bars (paper) or the next `bars` bars (replay) of the job's run."""
    from arena_lib.agents.llm.cache import ResponseCache

    store = ArenaStore(db_url)
    cache = ResponseCache()
    try:
        return trade_step(config, store, job=job, market=market, bars=bars, cache=cache)
    finally:
        cache.engine.dispose()
        store.engine.dispose()


@task(name="play-live-bars")
def play_live(
    config: ArenaConfig, job: str, confirm_live: str | None, exchange_url: str | None, db_url: str | None
) -> RunReport:
    """Check the latch, fetch the latest closed bars, reconcile each account and trade the new bars for real."""
    from arena_lib.agents.llm.cache import ResponseCache
    from arena_lib.arena.trading import trade_once

    store = ArenaStore(db_url)
    cache = ResponseCache()
    try:
        return trade_once(
            config, store, job=job, mode="live", confirm=confirm_live, exchange_url=exchange_url, cache=cache
        )
    finally:
        cache.engine.dispose()
        store.engine.dispose()


@flow(name="trade")
def trade(
    config: str = "configs/arena.paper.yaml",
    job: str = "main",
    mode: TradeMode = "paper",
    bars: int = 1,
    exchange_url: str | None = None,
    db_url: str | None = None,
    confirm_live: str | None = None,
) -> dict[str, Any] | State:
    """Trade one bar (or catch up on missed ones) for job `job` with the agents of `config`.

    `mode="paper"` fills on the simulator at live ccxt prices; `mode="replay"` advances a replay run over the
    config's window by `bars` bars (offline, on the bundled sample); `mode="live"` trades on the exchange behind
    the latch (`mode: live` in the config, each agent's keys, and `confirm_live="LIVE"` or
    `ARENA_LIVE_CONFIRM=LIVE`; a refusal ends the run Failed, naming everything missing, with nothing started).
    The kill switch (`arena halt`) ends the run Cancelled with who halted trading, when and why, before any bar is
    played; with `--flatten`, a paper or live job first closes its positions and cancels its orders.
    """
    log = get_run_logger()
    store = ArenaStore(db_url)
    try:
        halt = store.halt_state()
    finally:
        store.engine.dispose()
    if halt is not None and halt.halted and not (halt.flatten and mode != "replay"):
        log.warning("%s", halt.describe())
        return Cancelled(message=halt.describe())
    cfg = load_arena_config(project_path(config))
    if mode == "live":
        try:
            report = play_live(cfg, job, confirm_live, exchange_url, db_url)
        except LiveNotArmedError as exc:
            log.error("%s", exc)
            return Failed(message=str(exc))
    else:
        market = fetch_latest_bars(cfg, exchange_url) if mode == "paper" else None
        report = play_new_bars(cfg, job, market, bars, db_url)
    if report.status == "halted":
        return Cancelled(message=report.message)
    for name, reason in report.skipped.items():
        log.warning("%s is not trading: %s", name, reason)
    log.info(
        "job %s (%s): run %s, %d decision round(s), status %s", job, mode, report.run_id, report.rounds, report.status
    )
    return {
        "run_id": report.run_id,
        "status": report.status,
        "rounds": report.rounds,
        "skipped": report.skipped,
        "errors": report.errors,
    }
