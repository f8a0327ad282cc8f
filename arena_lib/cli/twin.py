"""`arena twin RUN_ID`: replay a paper or live run through the simulator and explain the equity gap.

The logic is `arena_lib.arena.twin`; this prints its per-agent table (rich) or one JSON object (`--json`). An
unknown run, a replay run or a run with nothing committed is one error line, exit code 2.

`--from-cache` re-asks the run's LLM agents from the response cache (`--cache-db`) in strict mode; an agent whose
cache misses replays its recorded decisions from that round on. The output says, per agent, where its twin's
decisions came from, why the cache missed, and how many re-asked rounds differ from the recorded decisions
(`--json`: `replays`, with the first differing rounds, and `divergences`). Missing warm-up history for the prompts
is one error line, exit code 2.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.table import Table

_COLUMNS = {
    "agent": "agent",
    "real_equity": "real equity",
    "twin_equity": "twin equity",
    "gap": "gap",
    "fees": "fees",
    "slippage": "slippage",
    "funding": "funding",
    "latency": "latency",
    "one_sided": "one-sided",
    "residual": "residual",
    "one_sided_fills": "1-sided",
}


def twin(
    run_id: Annotated[str, typer.Argument(help="a paper or live run id (see `arena runs`)")],
    db: Annotated[
        str | None, typer.Option("--db", help="arena store URL (default ARENA_DB_URL or .arena/arena.db)")
    ] = None,
    fills: Annotated[
        bool, typer.Option("--fills", help="also print every fill's slippage against its reference")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object: agents, fills, replays")] = False,
    from_cache: Annotated[
        bool,
        typer.Option(
            "--from-cache", help="re-ask LLM agents from the response cache (strict); a miss falls back to the record"
        ),
    ] = False,
    cache_db: Annotated[
        str | None,
        typer.Option("--cache-db", help="LLM cache URL (default ARENA_LLM_CACHE_URL or .arena/llm_cache.db)"),
    ] = None,
) -> None:
    """Replay a paper/live run's decisions through the simulator; split each agent's equity gap into parts."""
    from arena_lib.agents.llm.cache import ResponseCache
    from arena_lib.arena.store import ArenaStore
    from arena_lib.arena.twin import TwinError, twin_report
    from arena_lib.cli.common import console, fail

    try:
        cache = ResponseCache(cache_db) if from_cache else None
        report = twin_report(ArenaStore(db), run_id, from_cache=from_cache, cache=cache)
    except TwinError as exc:
        fail(str(exc))
        return
    if as_json:
        print(json.dumps(report.to_dict(), default=_json_default, allow_nan=False))
        return
    table = Table(title=f"{report.mode} run {run_id} vs its simulated twin ({report.rounds} bars)", header_style="bold")
    for col, label in _COLUMNS.items():
        if col == "agent":
            table.add_column(label, overflow="fold", min_width=8)
        else:
            table.add_column(label, justify="right", no_wrap=True)
    for a in report.agents:
        row = a.__dict__
        table.add_row(*[_cell(row[c]) for c in _COLUMNS])
    console.print(table)
    console.print("gap = real - twin = fees + slippage + funding + latency + one-sided + residual (USDT)")
    sources: dict[str, list[str]] = {}
    for a in report.agents:
        sources.setdefault(a.source, []).append(a.agent)
    for source, names in sources.items():
        console.print(f"twin decisions from {source}: {', '.join(names)}", highlight=False)
    if report.warmup:
        console.print(f"warm-up: {report.warmup}", highlight=False)
    for r in report.replays:
        line = f"{r.agent}: {r.reasked} decision rounds re-asked from the cache, {r.differing} differ from the record"
        if r.differing_rounds:
            line += f" (first: rounds {', '.join(map(str, r.differing_rounds))})"
        if r.miss:
            line += f"; cache miss: {r.miss}"
        console.print(line, highlight=False, soft_wrap=True)
    for d in report.divergences:
        console.print(f"  {d}", highlight=False, soft_wrap=True)
    if fills:
        ft = Table(header_style="bold")
        cols = [
            "agent",
            "side_of",
            "round_no",
            "symbol",
            "kind",
            "reference_price",
            "price",
            "slippage_bps",
            "slippage_usd",
        ]
        for c in cols:
            ft.add_column(c, justify="left" if c in ("agent", "side_of", "symbol", "kind") else "right")
        for rec in report.fills.to_dict("records"):
            ft.add_row(*[_cell(rec[c]) for c in cols])
        console.print(ft)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.2f}"
    return str(v)


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, (int, float, str, bool)) else str(v)


def register(app: typer.Typer) -> None:
    app.command("twin")(twin)
