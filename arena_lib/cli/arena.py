"""The arena's commands: `arena run`, `runs`, `leaderboard`, `decisions`, `breakers ...`, `llm ...`, `cache ...`.

Registered on the main `arena` app by `arena_lib.cli.main`. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

if TYPE_CHECKING:
    from arena_lib.agents.llm.cache import CacheMode

llm_app = typer.Typer(no_args_is_help=True, help="Language-model contestants: status and the local model server.")
cache_app = typer.Typer(no_args_is_help=True, help="The LLM response cache: export and import recorded runs.")
breakers_app = typer.Typer(
    no_args_is_help=True, help="Circuit breakers on a run's accounts (drawdown, daily loss): show and reset."
)

DbOption = Annotated[str | None, typer.Option("--db", help="arena store URL (default ARENA_DB_URL or .arena/arena.db)")]
CacheUrlOption = Annotated[
    str | None, typer.Option("--cache-db", help="LLM cache URL (default ARENA_LLM_CACHE_URL or .arena/llm_cache.db)")
]


def _console() -> Any:
    from arena_lib.cli.common import console

    return console


def _fail(message: str, code: int = 2) -> None:
    from arena_lib.cli.common import fail

    fail(message, code)


def _every_seconds(text: str) -> float:
    from arena_lib.data.resample import timeframe_to_ns

    try:
        return timeframe_to_ns(text) / 1e9
    except ValueError:
        raise typer.BadParameter(f"--every takes a duration like 30s, 3m or 1h, got {text!r}") from None


def _graceful_stop() -> threading.Event:
    """SIGINT/SIGTERM set the event; the runner finishes the current round, commits it and stops."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        from arena_lib.cli.common import err

        err.print(f"{signal.Signals(signum).name}: stopping after the current round (again to abort)")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return stop


def run(
    config: Annotated[
        Path | None, typer.Option(help="arena YAML (market, round settings, agents); not with --resume")
    ] = None,
    mode: Annotated[str, typer.Option(help="replay (historical bars) or paper (live ccxt candles)")] = "replay",
    start: Annotated[str | None, typer.Option(help="replay window start, ISO-8601 UTC")] = None,
    end: Annotated[str | None, typer.Option(help="replay window end, ISO-8601 UTC")] = None,
    rounds: Annotated[int | None, typer.Option(help="stop after N bars (replay) or N decision rounds (paper)")] = None,
    every: Annotated[str, typer.Option(help="paper mode: time between rounds, e.g. 3m")] = "3m",
    resume: Annotated[
        str | None,
        typer.Option(help="continue this run id (replay or paper) after its last committed round, with its config"),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="id for a new run (default: mode-time-random)")] = None,
    cache_mode: Annotated[str, typer.Option(help="use | strict (fail on a miss) | refresh | off")] = "use",
    exchange_url: Annotated[str | None, typer.Option(help="paper mode: exchange API host override")] = None,
    db: DbOption = None,
    cache_db: CacheUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object with run_id")] = False,
) -> None:
    """Run an arena: every agent on the same snapshots, each with an isolated account, all recorded."""
    from arena_lib.agents.llm.cache import CACHE_MODES, CacheMissError, ResponseCache
    from arena_lib.arena.config import load_arena_config
    from arena_lib.arena.session import resume_run, start_paper_run, start_run
    from arena_lib.arena.store import ArenaStore, redact_url
    from arena_lib.cli.common import progress as _progress
    from arena_lib.data.errors import DataError

    if mode not in ("replay", "paper"):
        _fail(f"--mode must be replay or paper (live trading is not available from this command), got {mode!r}")
    if config is None and not resume:
        _fail("--config is required (or --resume RUN_ID to continue a run with its own config)")
    if cache_mode not in CACHE_MODES:
        _fail(f"--cache-mode must be one of {list(CACHE_MODES)}, got {cache_mode!r}")
    mode_ = cast("CacheMode", cache_mode)
    stop = _graceful_stop()
    store = ArenaStore(db)
    cache = ResponseCache(cache_db) if cache_mode != "off" else None
    try:
        if resume:  # the run's own mode and config; paper runs poll every --every on --exchange-url
            report = resume_run(
                resume,
                store,
                rounds=rounds,
                cache=cache,
                cache_mode=mode_,
                stop=stop,
                exchange_url=exchange_url,
                every_s=_every_seconds(every),
            )
        elif mode == "paper":
            assert config is not None
            report = start_paper_run(
                load_arena_config(config),
                store,
                every_s=_every_seconds(every),
                rounds=rounds,
                exchange_url=exchange_url,
                run_id=run_id,
                cache=cache,
                cache_mode=mode_,
                stop=stop,
            )
        else:
            assert config is not None
            cfg = load_arena_config(config).with_window(start, end)
            with _progress() as bar:
                task = bar.add_task("arena", total=1)
                report = start_run(
                    cfg,
                    store,
                    run_id=run_id,
                    rounds=rounds,
                    cache=cache,
                    cache_mode=mode_,
                    stop=stop,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
    except CacheMissError as exc:
        _fail(f"strict cache: {exc}", 1)
        return
    except (KeyError, ValueError, FileNotFoundError, DataError) as exc:
        _fail(str(exc).strip("'\""))
        return
    tripped = _tripped_breakers(store, report.run_id)
    payload = {
        "run_id": report.run_id,
        "status": report.status,
        "rounds": report.rounds,
        "not_configured": report.skipped,
        "cutoff_flags": report.cutoff_flags,
        "error_rounds": report.errors,
        "message": report.message,
        "breakers": tripped,
        "db": redact_url(store.url),
    }
    if as_json:
        print(json.dumps(payload))
        return
    console = _console()
    console.print(f"run [bold]{report.run_id}[/]: {report.status} after {report.rounds} rounds")
    if report.status == "halted":
        console.print(f"[bold red]kill switch[/] {report.message}")
    for name, why in report.skipped.items():
        console.print(f"[yellow]not configured[/] {name}: {why}")
    for name, why in report.cutoff_flags.items():
        console.print(f"[yellow]knowledge cutoff[/] {name}: {why}")
    for name, why in tripped.items():
        console.print(f"[bold yellow]circuit breaker[/] {name}: {why}")
    _print_board(store, report.run_id)
    if tripped:
        console.print(f"breakers: arena breakers show {report.run_id} (reset: arena breakers reset {report.run_id})")
    console.print(f"decisions: arena decisions --run {report.run_id}")


def _tripped_breakers(store: Any, run_id: str) -> dict[str, str]:
    """The accounts (and `*`, the portfolio) a circuit breaker holds at the end of a run: name -> state and why."""
    from arena_lib.arena.breakers import ACTIVE, breaker_frame

    frame = breaker_frame(store, run_id)
    return {str(r.agent): f"{r.state}: {r.reason}" for r in frame.itertuples() if r.state != ACTIVE}


def demo_arena(config: Path, out_dir: Path) -> str:
    """The demo's arena replay: prints which LLMs play (and which variable enables the others), then the board."""
    from arena_lib.agents.llm.cache import ResponseCache
    from arena_lib.arena.config import load_arena_config
    from arena_lib.arena.session import start_run
    from arena_lib.arena.standings import arena_leaderboard, export_leaderboard, results_from_store
    from arena_lib.arena.store import ArenaStore
    from arena_lib.cli.common import progress as _progress
    from arena_lib.core.config_errors import ConfigError
    from arena_lib.reports.figures import equity_race_figure, write_html

    console = _console()
    try:
        cfg = load_arena_config(config)
    except ConfigError as exc:
        _fail(str(exc))
        raise
    store = ArenaStore()
    with _progress() as bar:
        task = bar.add_task("arena", total=1)
        report = start_run(
            cfg,
            store,
            cache=ResponseCache(),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for name, why in report.skipped.items():
        console.print(f"[yellow]{name}[/]: {why}")
    for name, why in report.cutoff_flags.items():
        console.print(f"[yellow]knowledge cutoff[/] {name}: {why}")
    _print_board(store, report.run_id)
    export_leaderboard(arena_leaderboard(store, report.run_id), out_dir)
    html = write_html(
        equity_race_figure(results_from_store(store, report.run_id), with_drawdown=True), out_dir / "report.html"
    )
    console.print(f"run {report.run_id} in {store.url}; decisions: arena decisions --run {report.run_id}")
    console.print(f"arena report: {html}")
    return report.run_id


_BOARD_COLUMNS = {
    "rank": "#",
    "agent": "agent",
    "model": "model",
    "account_value": "value",
    "return_pct": "return %",
    "sharpe": "sharpe",
    "trades": "trades",
    "win_rate": "win",
    "invalid_output_rate": "invalid",
    "risk_clamps": "clamps",
    "llm_cost_usd": "LLM $",
    "latency_p50": "p50 s",
    "cutoff_overlap": "cutoff!",
}


def _print_board(store: Any, run_id: str) -> None:
    from arena_lib.arena.standings import arena_leaderboard

    board = arena_leaderboard(store, run_id)
    table = Table(show_header=True, header_style="bold")
    for col, label in _BOARD_COLUMNS.items():
        table.add_column(label, justify="left" if col in ("agent", "model") else "right", no_wrap=True)
    for _, row in board.iterrows():
        table.add_row(*[_cell(row[c]) for c in _BOARD_COLUMNS])
    _console().print(table)
    _console().print(
        "full columns: arena leaderboard --json; cutoff! = window starts before the model's training cutoff"
    )


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)


def runs(db: DbOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the runs in the store."""
    from arena_lib.arena.store import ArenaStore

    frame = ArenaStore(db).runs()
    if as_json:
        print(frame.to_json(orient="records", date_format="iso"))
        return
    _console().print(frame.to_string(index=False) if len(frame) else "no runs yet: try `arena run --config ...`")


def leaderboard(
    run: Annotated[str | None, typer.Option("--run", help="run id (default: the latest run)")] = None,
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option(help="write leaderboard.csv/.json and report.html here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON row per agent")] = False,
) -> None:
    """The arena leaderboard: nof1's metrics plus reliability columns, LLM and quant agents together."""
    from arena_lib.arena.standings import arena_leaderboard, export_leaderboard, results_from_store
    from arena_lib.arena.store import ArenaStore
    from arena_lib.reports.figures import equity_race_figure, write_html

    store = ArenaStore(db)
    run_id = run or store.latest_run_id()
    if run_id is None:
        _fail("the store has no runs yet: start one with `arena run --config configs/arena.demo.yaml`")
        return
    try:
        board = arena_leaderboard(store, run_id)
    except KeyError as exc:
        _fail(str(exc).strip("'\""))
        return
    if out is not None:
        export_leaderboard(board, out)
        write_html(equity_race_figure(results_from_store(store, run_id), with_drawdown=True), out / "report.html")
    if as_json:
        print(board.to_json(orient="records"))
        return
    _console().print(f"run {run_id}")
    _print_board(store, run_id)
    if out is not None:
        _console().print(f"written: {out}/leaderboard.csv, leaderboard.json, report.html")


def decisions(
    run: Annotated[str | None, typer.Option("--run", help="run id (default: the latest run)")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    round_no: Annotated[int | None, typer.Option("--round", help="only this round")] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per decision")] = False,
) -> None:
    """Each decision with its raw model response, parsed action, leverage, risk verdict and reason."""
    from arena_lib.arena.store import ArenaStore

    store = ArenaStore(db)
    run_id = run or store.latest_run_id()
    if run_id is None:
        _fail("the store has no runs yet")
        return
    try:
        store.get_run(run_id)
    except KeyError as exc:
        _fail(str(exc).strip("'\""))
        return
    dec = store.decisions_frame(run_id, agent)
    calls = store.llm_calls_frame(run_id, agent)[["round_no", "agent", "raw", "prompt_sha", "cache_hit", "problems"]]
    if round_no is not None:
        dec = dec[dec["round_no"] == round_no]
    merged = dec.merge(calls, on=["round_no", "agent"], how="left")
    cols = [
        "round_no",
        "ts",
        "agent",
        "symbol",
        "source",
        "action",
        "size",
        "size_unit",
        "leverage",
        "stop_loss",
        "take_profit",
        "invalidation",
        "confidence",
        "approved",
        "clamped",
        "verdict",
        "reason",
        "raw",
        "prompt_sha",
        "cache_hit",
        "problems",
    ]
    merged = merged.reindex(columns=cols)
    if as_json:
        for rec in merged.to_dict("records"):
            print(json.dumps({k: _json_value(v) for k, v in rec.items()}))
        return
    table = Table(show_header=True, header_style="bold", show_lines=True)
    for c in ("round_no", "agent", "symbol", "action", "leverage", "approved", "verdict", "reason"):
        table.add_column(c)
    for rec in merged.to_dict("records"):
        table.add_row(
            *(
                _cell(rec[c])
                for c in ("round_no", "agent", "symbol", "action", "leverage", "approved", "verdict", "reason")
            )
        )
    _console().print(table)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


@llm_app.command("status")
def llm_status(config: Annotated[Path, typer.Option(help="arena YAML or a folder of LLM configs")]) -> None:
    """Which LLM contestants are configured, and which variable to set for the others."""
    from arena_lib.agents.llm.config import configuration_status, load_llm_configs
    from arena_lib.arena.config import load_arena_config
    from arena_lib.core.config_errors import ConfigError

    try:
        cfgs = load_llm_configs(config) if config.is_dir() else list(load_arena_config(config).llm)
    except (ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    for c in cfgs:
        st = configuration_status(c)
        mark = "[green]configured[/]" if st.configured else f"[yellow]{st.reason}[/]"
        _console().print(f"{c.name} ({c.provider} {c.model}): {mark}")


@llm_app.command("serve")
def llm_serve(port: Annotated[int, typer.Option(help="loopback port")] = 8088) -> None:
    """Serve the bundled SmolLM2-135M on 127.0.0.1 as an OpenAI-compatible endpoint until Ctrl-C."""
    from arena_lib.agents.llm.local_server import local_llm_available, serve_forever

    missing = local_llm_available()
    if missing is not None:
        _fail(missing)
    serve_forever(port=port)


@cache_app.command("export")
def cache_export(path: Path, cache_db: CacheUrlOption = None) -> None:
    """Write every cached response to a JSONL file (.gz to compress), to share a recorded run."""
    from arena_lib.agents.llm.cache import ResponseCache

    n = ResponseCache(cache_db).export(path)
    _console().print(f"exported {n} responses to {path}")


@cache_app.command("import")
def cache_import(path: Path, cache_db: CacheUrlOption = None) -> None:
    """Load responses exported by `arena cache export` (existing entries are kept)."""
    from arena_lib.agents.llm.cache import ResponseCache

    try:
        n = ResponseCache(cache_db).import_file(path)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    _console().print(f"imported {n} new responses from {path}")


def halt(
    reason: Annotated[str, typer.Option(help="why trading stops (shown to every job and in the monitor)")] = "",
    flatten: Annotated[
        bool, typer.Option("--flatten", help="paper and live jobs also cancel their orders and close every position")
    ] = False,
    db: DbOption = None,
) -> None:
    """Kill switch: every trading job on this store stops before its next round, until `arena resume`.

    Without --flatten, positions stay open and the stops and take-profits already on an exchange stay there. With
    it, each paper or live job cancels its orders and closes its positions at its next check, recording each step
    in its ledger, then stops.
    """
    import getpass

    from arena_lib.arena.store import ArenaStore
    from arena_lib.core.clock import WallClock

    store = ArenaStore(db)
    state = store.set_halt(True, reason=reason, by=getpass.getuser(), at_ns=WallClock().now_ns(), flatten=flatten)
    _console().print(f"[bold red]{state.describe()}[/]")
    if flatten:
        _console().print("each paper or live job flattens at its next check (within one bar); `arena runs` shows it")


def trade(
    config: Annotated[Path, typer.Option("--config", help="arena config (YAML)")],
    job: Annotated[
        str, typer.Option(help="the job's name: one run per job and mode, continued on every call")
    ] = "main",
    mode: Annotated[str, typer.Option(help="paper or live")] = "paper",
    confirm_live: Annotated[
        str | None, typer.Option("--confirm-live", help="live mode: type LIVE (or set ARENA_LIVE_CONFIRM=LIVE)")
    ] = None,
    exchange_url: Annotated[
        str | None, typer.Option(help="exchange API host override (a proxy, a test exchange)")
    ] = None,
    db: DbOption = None,
) -> None:
    """One invocation of a trading job: play the bars that closed since its last one, the newest as a decision.

    This is what the scheduled `trade` flow runs. Live mode trades real money: it needs `mode: live` in the config,
    each agent's exchange keys, and the confirmation; a refusal lists everything missing and starts nothing.
    """
    from arena_lib.arena.config import load_arena_config
    from arena_lib.arena.store import ArenaStore
    from arena_lib.arena.trading import trade_once
    from arena_lib.engine.broker import BrokerError
    from arena_lib.execution.latch import LiveNotArmedError
    from arena_lib.execution.venue import ExchangeRejection

    if mode not in ("paper", "live"):
        _fail(f"--mode must be paper or live, got {mode!r}")
    cfg = load_arena_config(config)
    store = ArenaStore(db)
    try:
        report = trade_once(cfg, store, job=job, mode=mode, confirm=confirm_live, exchange_url=exchange_url)
    except LiveNotArmedError as exc:
        _fail(str(exc))
        return
    except (BrokerError, ExchangeRejection) as exc:  # nothing of the failed bar was committed; the next call retries
        _fail(f"job {job!r}: {exc}; nothing of this bar was committed, the next invocation resumes from the last one")
        return
    finally:
        store.engine.dispose()
    color = "red" if report.status == "halted" else "green"
    _console().print(f"[{color}]{report.run_id}: {report.status}, {report.rounds} decision round(s)[/]")
    if report.message:
        _console().print(report.message)


def resume(db: DbOption = None) -> None:
    """Lift the kill switch: trading jobs may play their next round again (a stopped run resumes with --resume)."""
    import getpass

    from arena_lib.arena.store import ArenaStore
    from arena_lib.core.clock import WallClock

    store = ArenaStore(db)
    before = store.halt_state()
    state = store.set_halt(False, by=getpass.getuser(), at_ns=WallClock().now_ns())
    was = "" if before is None or not before.halted else f" (it was halted by {before.by}: {before.reason})"
    _console().print(state.describe() + was)


@breakers_app.command("show")
def breakers_show(
    run_id: Annotated[str | None, typer.Argument(help="run id (default: the latest run)")] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per account")] = False,
) -> None:
    """Each account's trading state (active; reducing: closes only; halted: no new orders) and why."""
    from arena_lib.arena.breakers import breaker_frame
    from arena_lib.arena.store import ArenaStore

    store = ArenaStore(db)
    run_id = run_id or store.latest_run_id()
    if run_id is None:
        _fail("the store has no runs yet")
        return
    try:
        frame = breaker_frame(store, run_id)
    except KeyError as exc:
        _fail(str(exc).strip("'\""))
        return
    _print_breakers(run_id, frame, as_json)


@breakers_app.command("reset")
def breakers_reset(
    run_id: Annotated[str, typer.Argument(help="the run whose breakers to re-arm")],
    agent: Annotated[
        str | None, typer.Option(help="only this account ('*': the portfolio breaker); default all")
    ] = None,
    reason: Annotated[str, typer.Option(help="why (kept in the ledger)")] = "",
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per account")] = False,
) -> None:
    """Re-arm tripped breakers: the accounts trade again and their peaks restart from the current equity."""
    import getpass

    from arena_lib.arena.breakers import reset_breakers
    from arena_lib.arena.store import ArenaStore
    from arena_lib.core.clock import WallClock

    store = ArenaStore(db)
    try:
        frame = reset_breakers(store, run_id, agent, by=getpass.getuser(), reason=reason, at_ns=WallClock().now_ns())
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
        return
    if not as_json:
        _console().print(f"breakers reset on run {run_id} ({'all accounts' if agent is None else agent})")
    _print_breakers(run_id, frame, as_json)


def _print_breakers(run_id: str, frame: Any, as_json: bool) -> None:
    import pandas as pd

    records: list[dict[str, Any]] = [
        {k: (None if pd.isna(v) else v) for k, v in rec.items()} for rec in frame.to_dict("records")
    ]
    if as_json:
        for rec in records:
            rec["since"] = None if rec["since"] is None else rec["since"].isoformat()
            print(json.dumps({k: _json_value(v) for k, v in rec.items()}))
        return
    colors = {"active": "green", "reducing": "yellow", "halted": "bold red"}
    table = Table(show_header=True, header_style="bold", title=f"breakers of run {run_id} (* = portfolio)")
    for c in ("agent", "state", "breaker", "since", "round", "reason"):
        table.add_column(c, no_wrap=c != "reason")
    for rec in records:
        table.add_row(
            rec["agent"],
            f"[{colors.get(str(rec['state']), 'white')}]{rec['state']}[/]",
            rec["breaker"],
            "" if rec["since"] is None else rec["since"].strftime("%Y-%m-%d %H:%M UTC"),
            "" if rec["round_no"] is None else str(rec["round_no"]),
            rec["reason"],
        )
    _console().print(table)


def register(app: typer.Typer) -> None:
    """Add the arena commands to the `arena` app."""
    app.command("run")(run)
    app.command("halt")(halt)
    app.command("trade")(trade)
    app.command("resume")(resume)
    app.command("runs")(runs)
    app.command("leaderboard")(leaderboard)
    app.command("decisions")(decisions)
    app.add_typer(llm_app, name="llm")
    app.add_typer(cache_app, name="cache")
    app.add_typer(breakers_app, name="breakers")
