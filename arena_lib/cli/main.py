"""The `arena` command: data checks, backtests, the demo, and the command groups of `arena_lib.cli`.

Heavy imports happen inside each command so that `arena --help` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from arena_lib.cli.common import console, err
from arena_lib.cli.common import fail as _fail
from arena_lib.cli.common import progress as _progress

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Arena: AI trading agents, side by side.")
data_app = typer.Typer(no_args_is_help=True, help="Market data: checks and the bundled sample.")
app.add_typer(data_app, name="data")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package was imported from. Commands resolve their default paths through
`arena_lib.core.settings` instead (ARENA_HOME, else the project folder found from the cwd)."""
DEFAULT_RUNS = PROJECT_ROOT / "runs"


@data_app.command("check")
def data_check(
    paths: Annotated[
        list[Path], typer.Argument(help="CSV, CSV.gz or parquet files (timestamp,open,high,low,close,volume)")
    ],
    timeframe: Annotated[
        str | None, typer.Option(help="bar size, e.g. 1h (default: from the file name or spacing)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Check candle files; exit 1 when any file fails, naming every bad row."""
    from arena_lib.data.errors import DataError
    from arena_lib.data.loader import load_ohlcv, timeframe_from_name
    from arena_lib.data.quality import check_ohlcv

    reports: dict[str, Any] = {}
    failed = False
    for path in paths:
        try:
            frame = load_ohlcv(path)
            report = check_ohlcv(frame, timeframe or timeframe_from_name(path))
        except DataError as exc:
            failed = True
            reports[str(path)] = {"ok": False, "error": str(exc)}
            if not as_json:
                err.print(f"[bold red]{path}[/]: {exc}")
            continue
        failed |= not report.ok
        reports[str(path)] = report.to_dict()
        if not as_json:
            style = "green" if report.ok else "bold red"
            console.print(f"[{style}]{path}[/]")
            console.print(report.summary(max_issues=50), markup=False, highlight=False)
    if as_json:
        print(json.dumps({"ok": not failed, "files": reports}, indent=2, default=str))
    raise typer.Exit(1 if failed else 0)


@data_app.command("list")
def data_list() -> None:
    """List the bundled sample's symbols and timeframes."""
    from arena_lib.data.sample import available_symbols, available_timeframes, sample_dir

    console.print(f"sample folder: {sample_dir()}")
    for tf in available_timeframes():
        console.print(f"  {tf}: {', '.join(available_symbols(tf))}")


def _metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, _fmt(key, value))
    return table


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if key in {"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "fees_share_of_pnl"}:
            return f"{value:.2%}"
        return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


@app.command()
def backtest(
    agent: Annotated[str, typer.Option(help="agent name (see `arena agents`)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="agent parameter KEY=VALUE")] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="sample symbol, e.g. BTC/USDT (repeatable)")] = None,
    timeframe: Annotated[str, typer.Option(help="bar size of the sample: 1h or 1d")] = "1h",
    data: Annotated[list[Path] | None, typer.Option(help="your own OHLCV file instead of the sample")] = None,
    start: Annotated[str | None, typer.Option(help="first bar, ISO-8601 (UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="last bar, ISO-8601 (UTC)")] = None,
    fee_bps: Annotated[float, typer.Option(help="taker fee per side, bps")] = 5.0,
    slippage_bps: Annotated[float, typer.Option(help="fixed adverse slippage, bps")] = 1.0,
    impact_coef: Annotated[float, typer.Option(help="square-root impact coefficient (0 = off)")] = 0.0,
    fill: Annotated[str, typer.Option(help="next_open (default) or close")] = "next_open",
    cash: Annotated[float, typer.Option(help="initial capital")] = 10_000.0,
    batch: Annotated[bool, typer.Option(help="use the numba batch kernel (same fills as the step loop)")] = False,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/<time>-<agent>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Backtest one agent; prints metrics, saves equity, trades and an interactive HTML report."""
    from pydantic import ValidationError

    from arena_lib.agents.registry import make_agent, parse_params
    from arena_lib.core.clock import WallClock, to_timestamp
    from arena_lib.core.config import BacktestConfig, CostModel, ExecutionConfig
    from arena_lib.core.settings import settings
    from arena_lib.data.errors import DataError
    from arena_lib.data.history import load_market
    from arena_lib.engine.backtest import NoBatchPathError
    from arena_lib.engine.backtest import backtest as backtest_run
    from arena_lib.reports.files import save_result

    if not symbol and not data:
        _fail("give --symbol SYMBOL (bundled sample) or --data PATH (your file)")
    try:
        built = make_agent(agent, parse_params(param))
        config = BacktestConfig(
            symbols=tuple(symbol or ()),
            timeframe=timeframe,
            start=start,
            end=end,
            costs=CostModel(fee_bps=fee_bps, slippage_bps=slippage_bps, impact_coef=impact_coef),
            execution=ExecutionConfig.model_validate({"fill": fill, "initial_cash": cash}),
        )
        market = load_market(config.symbols, timeframe, start, end, data_paths=data)
    except (KeyError, ValueError, ValidationError, DataError, FileNotFoundError) as exc:
        _fail(str(exc).strip("'\""))
        return
    stamp = to_timestamp(WallClock().now_ns()).strftime("%Y%m%dT%H%M%SZ")
    run_dir = out or settings().runs_dir / f"{stamp}-{built.name}"
    if batch:
        try:
            result = backtest_run(built, market, config, "batch", run_id=run_dir.name)
        except NoBatchPathError:
            _fail(f"agent {agent} has no batch path; drop --batch")
            return
    else:
        with _progress() as bar:
            task = bar.add_task(f"{built.name} over {market.n_bars:,} bars", total=market.n_bars)
            result = backtest_run(
                built,
                market,
                config,
                "step",
                run_id=run_dir.name,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    paths = save_result(result, market, run_dir, config)
    metrics = dict(result.metrics)
    if as_json:
        payload = {
            "agent": built.name,
            **metrics,
            "max_drawdown": metrics.get("max_drawdown"),
            "run_dir": str(run_dir),
            "data_hash": result.meta.get("data_hash"),
            "files": {k: str(v) for k, v in paths.items()},
        }
        print(json.dumps(payload, default=lambda v: None if v != v else str(v)))
        return
    console.print(_metrics_table(f"{built.name} on {', '.join(market.symbols)} {timeframe}", metrics))
    console.print(f"run folder: {run_dir}")


@app.command()
def agents() -> None:
    """List the registered agents and their parameters."""
    from arena_lib.agents.registry import AGENTS, agent_parameters

    for name in sorted(AGENTS):
        params = ", ".join(f"{k}: {getattr(v, '__name__', v)}" for k, v in agent_parameters(name).items())
        console.print(f"[bold]{name}[/]  {params}")


@app.command()
def demo(
    config: Annotated[Path | None, typer.Option(help="competition YAML (default configs/demo.yaml)")] = None,
    arena_config: Annotated[
        Path | None, typer.Option(help="arena YAML, quant + LLM agents (default configs/arena.demo.yaml)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default runs/demo)")] = None,
) -> None:
    """Check the sample, replay the baseline competition, then an arena round-robin with the LLM agents."""
    from arena_lib.core.config_errors import ConfigError
    from arena_lib.core.settings import settings
    from arena_lib.core.spec import load_competition
    from arena_lib.data.quality import check_ohlcv
    from arena_lib.engine.backtest import run_competition
    from arena_lib.reports.figures import equity_race_figure, write_html
    from arena_lib.reports.files import save_result

    paths = settings()
    try:
        cfg, specs = load_competition(config or paths.configs_dir / "demo.yaml")
    except ConfigError as exc:
        _fail(str(exc))
        return
    out_dir = out or paths.runs_dir / "demo"
    console.rule("1. sample data quality")
    from arena_lib.agents.registry import build_agent
    from arena_lib.data.sample import load_sample

    for sym in cfg.symbols:
        report = check_ohlcv(load_sample(sym, cfg.timeframe), cfg.timeframe)
        headline = report.summary(max_issues=0).splitlines()[0]
        console.print(f"{sym} {cfg.timeframe}: {headline}", markup=False, highlight=False)
        if not report.ok:
            _fail(f"sample {sym} failed its quality checks", 1)
    console.rule(f"2. replay {len(specs)} agents on {', '.join(cfg.symbols)} {cfg.timeframe} {cfg.start} .. {cfg.end}")
    agents_built = [build_agent(s) for s in specs]
    with _progress() as bar:
        task = bar.add_task("replay", total=1)
        market, results, board = run_competition(
            cfg,
            agents_built,
            run_id="demo",
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(f"{market.n_bars:,} bars x {len(market.symbols)} symbols; data hash {market.fingerprint()}")
    console.rule("3. leaderboard")
    table = Table(show_header=True, header_style="bold")
    cols = [
        "rank",
        "agent",
        "final_equity",
        "total_return",
        "sharpe",
        "max_drawdown",
        "trades",
        "win_rate",
        "exposure",
        "rejections",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c == "agent" else "right")
    for _, row in board.iterrows():
        table.add_row(*[_fmt(c, row[c]) if c != "rank" else str(row[c]) for c in cols])
    console.print(table)
    console.rule("4. reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    board.to_csv(out_dir / "leaderboard.csv", index=False)
    race = write_html(equity_race_figure(results), out_dir / "equity_race.html")
    for name, res in results.items():
        save_result(res, market, out_dir / name, cfg)
    console.print(f"leaderboard: {out_dir / 'leaderboard.csv'}")
    console.print(f"equity race: {race}")
    console.print(f"per-agent runs: {out_dir}/<agent>/ (equity, fills, trades, metrics, report_*.html)")
    from arena_lib.cli.arena import demo_arena

    console.rule("5. arena: quant and LLM agents on the same snapshots, recorded in the store")
    demo_arena(arena_config or paths.configs_dir / "arena.demo.yaml", out_dir / "arena")


def _register_commands() -> None:
    from arena_lib.cli.arena import register as register_arena
    from arena_lib.cli.ops import register as register_ops
    from arena_lib.cli.promotion import register as register_promotion
    from arena_lib.cli.research import register as register_research
    from arena_lib.cli.twin import register as register_twin

    register_arena(app)
    register_research(app)
    register_promotion(app)
    register_ops(app)
    register_twin(app)


_register_commands()


def main() -> None:
    """Console-script entry point. A bad config or setting that a command did not report itself is one line too."""
    from arena_lib.core.config_errors import ConfigError

    try:
        app()
    except ConfigError as exc:
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
