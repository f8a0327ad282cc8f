"""Arena round benchmarks: what a decision round costs beyond its slowest model, and cached-replay throughput.

    .venv/bin/python benchmarks/arena.py                 # full sizes (about a minute)
    .venv/bin/python benchmarks/arena.py --quick         # smoke-run sizes (a few seconds after the imports)
    .venv/bin/python benchmarks/arena.py --json PATH     # results elsewhere than benchmarks/arena_results.json

1. Round overhead. Eight LLM contestants (`openai_compatible`, distinct names and model ids) play against the
   loopback server of `tests/servers/llm.py`, which answers every request after a fixed latency (1.0 s), with the
   response cache off. The timed unit is `ArenaRunner.play`: settle the bar, prompt all eight concurrently, parse,
   review, fill and commit the round. The ratio is the round's wall time over the slowest model's latency (the
   physical floor is 1.0). For contrast, the same eight agents are then called one after another on the same
   snapshot in the same run, as the nof1 clones do: about eight latencies.
2. Cached replay throughput. One LLM contestant trades three symbols for 500+ hourly rounds. Its answers come from
   the loopback server at zero latency while the cache is warmed; then the server is shut down and the same window
   is replayed with `cache_mode="strict"` from a fresh `ResponseCache` (every answer is read from the cache database,
   as in a new process). Throughput is per-coin LLM decisions per second (three per turn; turns per second are
   reported too) over the whole replay loop: settle, prompt build, cache hit, parse, risk, fill and the ledger
   commit. The pipeline without the ledger commit is reported beside it, with the time split measured by timers
   on the agent and the store, and one cProfile run lists the top costs.

The server's answers are TEST FIXTURES scripted below (a hash of the prompt picks each coin's signal), never a
language model's output. The market is the bundled real Binance sample. Results go to `--json` with every timing;
the figures belong to the run that wrote the file.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import hashlib
import io
import math
import pstats
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib and its loopback server
    sys.path.insert(0, str(ROOT))

from arena_lib.agents.base import AccountView  # noqa: E402
from arena_lib.agents.llm.agent import LLMAgent  # noqa: E402
from arena_lib.agents.llm.cache import CacheMode, ResponseCache  # noqa: E402
from arena_lib.agents.llm.config import LLMAgentConfig  # noqa: E402
from arena_lib.agents.turn import TurnContext  # noqa: E402
from arena_lib.arena.config import ArenaConfig, RoundSettings  # noqa: E402
from arena_lib.arena.rounds import ArenaRunner  # noqa: E402
from arena_lib.arena.session import build_roster, create_run, load_arena_market  # noqa: E402
from arena_lib.arena.store import ArenaStore  # noqa: E402
from arena_lib.core.config import BacktestConfig, RiskLimits  # noqa: E402
from arena_lib.data.market import MarketData  # noqa: E402
from arena_lib.data.snapshot import MarketSnapshot  # noqa: E402
from benchmarks._common import command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402
from tests.servers.llm import LLMServer, Reply, Script  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "arena_results.json"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
START = "2025-03-01"
TARGETS = {
    "round_overhead": 1.1,  # round wall time / slowest agent's latency (1.0 is the physical floor)
    "cached_decisions_per_s": 500.0,  # per-coin LLM decisions per second in a strict cached replay
}
SIZES: dict[str, dict[str, Any]] = {
    "full": {"agents": 8, "latency_s": 1.0, "rounds": 5, "replay_end": "2025-03-23", "profile": True},
    "quick": {"agents": 8, "latency_s": 0.1, "rounds": 2, "replay_end": "2025-03-02", "profile": True},
}
T = TypeVar("T")


# -- the scripted contestants ---------------------------------------------------------------------------------------
_PRICE = re.compile(r"ALL (\w+) DATA\ncurrent_price = ([0-9.eE+-]+),")
_OPEN = re.compile(r"^- (\w+) (?:long|short):", re.MULTILINE)


def _user_prompt(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _coin(name: str, signal: str = "hold", quantity: float = 0.0, leverage: float = 1.0, **plan: Any) -> dict[str, Any]:
    return {
        "coin": name,
        "signal": signal,
        "quantity": quantity,
        "leverage": leverage,
        "profit_target": plan.get("profit_target"),
        "stop_loss": plan.get("stop_loss"),
        "invalidation_condition": plan.get("invalidation", ""),
        "confidence": 0.5,
        "risk_usd": None,
        "justification": "benchmark fixture",
    }


def fixture_trader(body: dict[str, Any]) -> Reply:
    """Deterministic per prompt: enter long or short about a fifth of the time per flat coin, close a quarter of
    the open positions, hold otherwise; entries carry a stop and sometimes a target and a condition."""
    user = _user_prompt(body)
    prices = {coin: float(p) for coin, p in _PRICE.findall(user)}
    held = set(_OPEN.findall(user))
    h = hashlib.sha256(user.encode()).digest()
    out = []
    for k, coin in enumerate(sorted(prices)):
        b = h[3 * k : 3 * k + 3]
        if coin in held:
            out.append(_coin(coin, "close_position" if b[0] % 4 == 0 else "hold"))
        elif b[0] % 5 < 2:
            side = 1 if b[0] % 5 == 0 else -1
            price = prices[coin]
            out.append(
                _coin(
                    coin,
                    "buy_to_enter" if side > 0 else "sell_to_enter",
                    quantity=round(2_000.0 / price, 6),
                    leverage=(2.0, 3.0, 5.0)[b[1] % 3],
                    stop_loss=round(price * (1 - side * 0.02), 4),
                    profit_target=round(price * (1 + side * 0.03), 4) if b[2] % 2 else None,
                    invalidation="rsi14 > 75" if side > 0 and b[2] % 3 == 0 else "",
                )
            )
        else:
            out.append(_coin(coin))
    return Reply(data={"decisions": out})


def fixture_holder(latency_s: float) -> Callable[[dict[str, Any]], Reply]:
    """Hold every coin the prompt shows, after `latency_s` (the model's thinking time)."""

    def respond(body: dict[str, Any]) -> Reply:
        coins = sorted({coin for coin, _ in _PRICE.findall(_user_prompt(body))})
        return Reply(data={"decisions": [_coin(c) for c in coins]}, latency_s=latency_s)

    return respond


def llm_agent_config(name: str, base_url: str, timeout_s: float = 30.0) -> LLMAgentConfig:
    return LLMAgentConfig(
        name=name, provider="openai_compatible", model=f"fixture-{name}", base_url=base_url, timeout_s=timeout_s
    )


def arena_config(llm: tuple[LLMAgentConfig, ...], end: str, deadline_s: float = 60.0) -> ArenaConfig:
    return ArenaConfig(
        market=BacktestConfig(
            symbols=SYMBOLS, timeframe="1h", start=START, end=end, risk=RiskLimits(allow_reversal=False)
        ),
        rounds=RoundSettings(deadline_s=deadline_s, bars_per_round=1),
        quant=(),
        llm=llm,
    )


# -- 1. round overhead ----------------------------------------------------------------------------------------------
def bench_round_overhead(n_agents: int, latency_s: float, rounds: int, workdir: Path) -> dict[str, Any]:
    """Wall time of `ArenaRunner.play` with `n_agents` concurrent LLM agents, vs calling them one by one."""
    with LLMServer(Script(fixture_holder(latency_s))) as server:
        llm = tuple(llm_agent_config(f"llm_{k + 1}", server.openai_base_url) for k in range(n_agents))
        config = arena_config(llm, end="2025-03-02", deadline_s=max(30.0, 10 * latency_s))
        market, first = load_arena_market(config)
        if market.n_bars - first < rounds + 1:
            raise ValueError(f"the window has {market.n_bars - first} bars; {rounds + 1} rounds were asked for")
        store = ArenaStore(f"sqlite:///{workdir / 'rounds.db'}")
        roster = build_roster(config, cache=None, cache_mode="off")
        run_id, _ = create_run(store, config, roster, market, "replay", "bench-round-overhead")
        runner = ArenaRunner(config, roster.agents, market, store, run_id, first_row=first)
        try:
            t0 = time.perf_counter()
            warm = runner.play(first)  # opens every agent's HTTP connection
            warmup_s = time.perf_counter() - t0
            walls, inner = [], []
            for k in range(rounds):
                t0 = time.perf_counter()
                outcome = runner.play(first + 1 + k)
                walls.append(time.perf_counter() - t0)
                inner.append(outcome.wall_s)
                if outcome.errors:
                    raise RuntimeError(f"round {outcome.round_no} had agent errors: {outcome.errors}")
        finally:
            runner.close()
            store.engine.dispose()
        concurrent_in_flight = server.max_in_flight
        if warm.errors:
            raise RuntimeError(f"warm-up round had agent errors: {warm.errors}")

        sequential_s, per_agent = _sequential_turns(config, market, first + 1)
        calls = server.calls()
    median_wall = statistics.median(walls)
    ratio = median_wall / latency_s
    return {
        "agents": n_agents,
        "latency_s": latency_s,
        "rounds": rounds,
        "warmup_round_s": warmup_s,
        "round_wall_s": walls,
        "round_wall_s_before_commit": inner,
        "round_wall_median_s": median_wall,
        "round_wall_best_s": min(walls),
        "overhead_ms": (median_wall - latency_s) * 1e3,
        "ratio": ratio,
        "target": TARGETS["round_overhead"],
        "pass": ratio <= TARGETS["round_overhead"],
        "max_in_flight": concurrent_in_flight,
        "sequential_s": sequential_s,
        "sequential_per_agent_s": per_agent,
        "sequential_ratio": sequential_s / latency_s,
        "speedup_vs_sequential": sequential_s / median_wall,
        "server_requests": calls,
    }


def _sequential_turns(config: ArenaConfig, market: MarketData, row: int) -> tuple[float, list[float]]:
    """The same agents, called one after another on one snapshot (fresh clients on a fresh event loop)."""
    agents = [a for a in build_roster(config, cache=None, cache_mode="off").agents if isinstance(a, LLMAgent)]
    snapshot = MarketSnapshot(market, row)
    cash = config.market.execution.initial_cash
    view = AccountView(cash, cash, cash, {})
    started_at = int(market.close_times_ns[row])
    ctx = TurnContext(round_no=1, started_at_ns=started_at, max_leverage=config.market.risk.max_leverage)
    loop = asyncio.new_event_loop()
    per_agent: list[float] = []
    try:
        t0 = time.perf_counter()
        for agent in agents:
            t1 = time.perf_counter()
            turn = loop.run_until_complete(agent.play_turn(snapshot, view, ctx))
            per_agent.append(time.perf_counter() - t1)
            if turn.error:
                raise RuntimeError(f"{agent.name} failed in the sequential contrast: {turn.error}")
        total = time.perf_counter() - t0
    finally:
        for agent in agents:
            close = getattr(agent.client(), "aclose", None)
            if close is not None:
                loop.run_until_complete(close())
        loop.close()
    return total, per_agent


# -- 2. cached replay throughput ------------------------------------------------------------------------------------
class Stopwatch:
    """Accumulated wall time of wrapped calls, by label (instance-level wrappers: nothing global is patched)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def _add(self, label: str, dt: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + dt
        self.calls[label] = self.calls.get(label, 0) + 1

    def wrap(self, label: str, fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> T:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(label, time.perf_counter() - t0)

        return timed

    def wrap_async(self, label: str, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> T:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._add(label, time.perf_counter() - t0)

        return timed


def _replay_runner(
    config: ArenaConfig, workdir: Path, name: str, cache_mode: CacheMode = "strict"
) -> tuple[ArenaRunner, ArenaStore, ResponseCache]:
    """A replay of `config`, ready to run: its own store and a cache object with a cold memory layer (so every
    answer is read from the cache database, as in a fresh process)."""
    market, first = load_arena_market(config)
    store = ArenaStore(f"sqlite:///{workdir / f'{name}.db'}")
    cache = ResponseCache(f"sqlite:///{workdir / 'cache.db'}")
    roster = build_roster(config, cache=cache, cache_mode=cache_mode)
    run_id, _ = create_run(store, config, roster, market, "replay", "bench-replay")
    return ArenaRunner(config, roster.agents, market, store, run_id, first_row=first), store, cache


def _ledger_summary(store: ArenaStore, run_id: str) -> dict[str, Any]:
    equity = store.equity_frame(run_id)
    fills = store.fills_frame(run_id)
    calls = store.llm_calls_frame(run_id)
    return {
        "rounds": int(equity["round_no"].nunique()),
        "fills": len(fills),
        "fill_kinds": {str(k): int(v) for k, v in fills["kind"].value_counts().sort_index().items()},
        "final_equity": float(equity["equity"].iloc[-1]),
        "cache_hits": int(calls["cache_hit"].sum()),
    }


def bench_cached_replay(end: str, workdir: Path, profile: bool) -> dict[str, Any]:
    """Warm the cache from the loopback server, then time a strict replay of the same window from the cache."""
    with LLMServer(Script(fixture_trader)) as server:
        config = arena_config((llm_agent_config("cached_llm", server.openai_base_url),), end=end)
        runner, store, cache = _replay_runner(config, workdir, "warm", cache_mode="use")  # records every answer
        t0 = time.perf_counter()
        try:
            runner.run()
        finally:
            runner.close()
        warm_s = time.perf_counter() - t0
        warm = _ledger_summary(store, runner.run_id)
        store.engine.dispose()
        cache.engine.dispose()
        server_calls = server.calls()
    # The server is down from here: a replay that missed the cache would fail, not call it.

    runner, store, cache = _replay_runner(config, workdir, "replay")
    agent = runner.driver.accounts[0].agent
    assert isinstance(agent, LLMAgent)
    watch = Stopwatch()
    setattr(agent, "play_turn", watch.wrap_async("turn", agent.play_turn))  # noqa: B010
    setattr(agent, "build_prompt", watch.wrap("prompt_build", agent.build_prompt))  # noqa: B010
    setattr(agent, "_turn_from_text", watch.wrap("parse", agent._turn_from_text))  # noqa: B010
    setattr(cache, "get", watch.wrap("cache_get", cache.get))  # noqa: B010
    setattr(store, "commit_round", watch.wrap("ledger_commit", store.commit_round))  # noqa: B010
    t0 = time.perf_counter()
    try:
        outcomes = runner.run()
    finally:
        runner.close()
    total_s = time.perf_counter() - t0
    replay = _ledger_summary(store, runner.run_id)
    store.engine.dispose()
    cache.engine.dispose()

    turns = len(outcomes)
    decisions = turns * len(SYMBOLS)
    sec = watch.seconds
    turn_s, commit_s = sec.get("turn", 0.0), sec.get("ledger_commit", 0.0)
    split = {
        "prompt_build_s": sec.get("prompt_build", 0.0),
        "cache_get_s": sec.get("cache_get", 0.0),
        "parse_s": sec.get("parse", 0.0),
        "turn_other_s": turn_s - sec.get("prompt_build", 0.0) - sec.get("cache_get", 0.0) - sec.get("parse", 0.0),
        "engine_s": total_s - turn_s - commit_s,  # settle, snapshot hash, risk review, fills, ledger rows
        "ledger_commit_s": commit_s,
    }
    per_s = decisions / total_s
    result: dict[str, Any] = {
        "window": f"{START} .. {end}",
        "symbols": list(SYMBOLS),
        "turns": turns,
        "decisions": decisions,
        "unit": "per-coin LLM decisions (3 per turn) through settle, prompt, cache hit, parse, risk, fill, commit",
        "replay_s": total_s,
        "decisions_per_s": per_s,
        "turns_per_s": turns / total_s,
        "decisions_per_s_without_commit": decisions / (total_s - commit_s) if total_s > commit_s else math.inf,
        "target": TARGETS["cached_decisions_per_s"],
        "pass": per_s >= TARGETS["cached_decisions_per_s"],
        "split_s": split,
        "split_share": {k: v / total_s for k, v in split.items()},
        "per_turn_ms": {k.removesuffix("_s"): v / max(turns, 1) * 1e3 for k, v in split.items()},
        "warm_run_s": warm_s,
        "warm_server_calls": server_calls,
        "warm_run": warm,
        "replay_run": replay,
        "same_work": warm["fills"] == replay["fills"]
        and warm["final_equity"] == replay["final_equity"]
        and replay["cache_hits"] == turns,
    }
    if profile:
        result["profile"] = _profile_replay(config, workdir)
    return result


def _profile_replay(config: ArenaConfig, workdir: Path, top: int = 15) -> dict[str, Any]:
    """One more strict replay under cProfile; the functions with the most own time (profiling inflates Python)."""
    runner, store, cache = _replay_runner(config, workdir, "profiled")
    prof = cProfile.Profile()
    try:
        prof.runcall(runner.run)
    finally:
        runner.close()
        store.engine.dispose()
        cache.engine.dispose()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(file)}:{line}({func})",
                "calls": ncalls,
                "own_s": tottime,
                "cum_s": cumtime,
            }
        )
    by_own = sorted(rows, key=lambda r: r["own_s"], reverse=True)[:top]
    mine = [r for r in rows if r["function"].startswith("arena_lib/")]
    by_cum = sorted(mine, key=lambda r: r["cum_s"], reverse=True)[:top]
    return {"profiled_s": total, "top_own_time": by_own, "top_arena_cumulative": by_cum}


def _short(path: str) -> str:
    p = Path(path)
    for anchor in (ROOT, Path(sys.prefix)):
        try:
            return str(p.relative_to(anchor))
        except ValueError:
            continue
    marker = "site-packages/"
    return path.split(marker, 1)[1] if marker in path else path


# -- reporting ------------------------------------------------------------------------------------------------------
def render(results: dict[str, Any]) -> str:
    r, c = results["round_overhead"], results["cached_replay"]
    verdict = {True: "PASS", False: "FAIL"}
    lines = [
        f"round overhead: {r['agents']} LLM agents, {r['latency_s']:g} s each, {r['rounds']} rounds",
        f"  concurrent round (ArenaRunner.play)  median {r['round_wall_median_s']:.3f} s, best "
        f"{r['round_wall_best_s']:.3f} s, overhead {r['overhead_ms']:.0f} ms, {r['max_in_flight']} requests in flight",
        f"  ratio round / slowest agent          {r['ratio']:.3f}x  (target <= {r['target']:g}x)  {verdict[r['pass']]}",
        f"  sequential (nof1-style) for contrast {r['sequential_s']:.3f} s = {r['sequential_ratio']:.2f}x the latency; "
        f"concurrent is {r['speedup_vs_sequential']:.1f}x faster",
        f"cached replay: {c['turns']} turns x {len(c['symbols'])} coins, strict cache, server down",
        f"  throughput                           {c['decisions_per_s']:.0f} decisions/s "
        f"({c['turns_per_s']:.0f} turns/s)  (target >= {c['target']:g})  {verdict[c['pass']]}",
        f"  without the ledger commit            {c['decisions_per_s_without_commit']:.0f} decisions/s",
        "  per turn: " + ", ".join(f"{k} {v:.2f} ms" for k, v in c["per_turn_ms"].items()),
        f"  same work as the warm-up run         {'OK' if c['same_work'] else 'MISMATCH'} "
        f"({c['replay_run']['fills']} fills, {c['replay_run']['cache_hits']} cache hits)",
    ]
    prof = c.get("profile")
    if prof:
        lines.append(f"  cProfile (one replay, {prof['profiled_s']:.2f} s profiled), top own time:")
        for row in prof["top_own_time"]:
            lines.append(
                f"    {row['own_s']:7.3f} s own {row['cum_s']:7.3f} s cum {row['calls']:>7}  {row['function']}"
            )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    import openai
    import sqlalchemy

    return _environment(sqlalchemy=sqlalchemy.__version__, openai=openai.__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUTPUT, dest="output", help="where to write results")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        workdir = Path(tmp)
        results = {
            "round_overhead": bench_round_overhead(sizes["agents"], sizes["latency_s"], sizes["rounds"], workdir),
            "cached_replay": bench_cached_replay(sizes["replay_end"], workdir, sizes["profile"]),
        }
    passed = results["round_overhead"]["pass"] and results["cached_replay"]["pass"]
    payload = {
        "mode": mode,
        "sizes": sizes,
        "command": command_line("benchmarks/arena.py", argv),
        "environment": environment(),
        "targets": TARGETS,
        "results": results,
        "all_passed": passed,
        "total_s": time.perf_counter() - started,
    }
    return write_results(payload, args.output, render(results), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
