"""Monitor query benchmark: every monitor query (`arena_lib.monitor`) on a synthetic store with 1,000,000+ fills.

    .venv/bin/python benchmarks/monitor_store.py                 # full: 1,000,000 fills (about two minutes)
    .venv/bin/python benchmarks/monitor_store.py --quick         # 20,000 fills, for the smoke test
    .venv/bin/python benchmarks/monitor_store.py --fills 2000000 --db /tmp/big.db   # other sizes; keep the store
    .venv/bin/python benchmarks/monitor_store.py --json PATH     # results elsewhere than the default file

THE DATA IS SYNTHETIC (the results say so). One paper run on one-minute bars: `--agents` contestants (two of them
language-model agents) trade `--symbols` coins, and every agent fills once per round (an entry, then the exit of
that position one round later, alternating over the coins), so the run has fills / agents rounds. Prices are
seeded random walks; quantities, leverage, exit kinds, RiskEngine verdicts, confidences, parse failures and
latencies are seeded draws. The other tables are in proportion, as a real run writes them: one equity row per
agent per round, one decision per coin per round for the language models and one per round (its action) for the
quant agents, one model call per language model per round (64 distinct prompts of about 6 kB), and one round and
one snapshot per round. Ids and texts have the lengths the arena writes. The rows are bulk-inserted with
SQLAlchemy Core `insert()` executemany through `ArenaStore`, so the schema is exactly the arena's.

Each query function the monitor calls is timed best of 3 on a warm connection pool (after one untimed call), and
the slowest is compared with the page budget of 2 s. Then the indexes the queries would like and the schema does
not have are created on the synthetic store, and the affected queries are timed again:
- `fills(run_id, agent, symbol, seq)`: the leaderboard pairs entries and exits with window functions partitioned
  by (agent, symbol) in `seq` order; this index gives that order without sorting a run's fills.
- `fills(run_id, ts)`: the leaderboard's period filter reads fills by time.
The schema is not changed here: the results say what each index buys.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere: benchmark this checkout's arena_lib
    sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from arena_lib.arena import schema as t  # noqa: E402
from arena_lib.arena.store import ArenaStore  # noqa: E402
from arena_lib.monitor import leaderboard_sql, risk  # noqa: E402
from arena_lib.monitor import queries as q  # noqa: E402
from arena_lib.monitor.store import open_store  # noqa: E402
from benchmarks._common import aligned_table, best_of, command_line, write_results  # noqa: E402
from benchmarks._common import environment as _environment  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "monitor_store_results.json"
PAGE_BUDGET_S = 2.0
SIZES: dict[str, dict[str, int]] = {
    "full": {"fills": 1_000_000, "agents": 8, "symbols": 2, "repeats": 3},
    "quick": {"fills": 20_000, "agents": 8, "symbols": 2, "repeats": 3},
}
RUN_ID = "synthetic-paper-run"
T0_NS = 1_735_689_600_000_000_000  # 2025-01-01 00:00 UTC
BAR_NS = 60_000_000_000  # one-minute bars
INITIAL_CASH = 10_000.0
FEE_RATE = 0.00002  # 0.2 bp per side (see _agent_trades)
TRADE_FRACTION = 0.3
SYMBOL_NAMES = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "DOGE/USDT")
START_PRICES = (85_000.0, 2_200.0, 140.0, 600.0, 2.2, 0.2)
BATCH = 50_000
INDEXES = {
    "ix_fills_run_agent_symbol_seq": ("fills", ("run_id", "agent", "symbol", "seq")),
    "ix_fills_run_ts": ("fills", ("run_id", "ts")),
}


@dataclass(frozen=True)
class SyntheticStore:
    """What `build_store` wrote: the run id and the row count of each table."""

    url: str
    run_id: str
    agents: list[str]
    llm_agents: list[str]
    symbols: list[str]
    rounds: int
    rows: dict[str, int]


def build_store(
    url: str,
    *,
    fills: int,
    agents: int = 8,
    llm_agents: int = 2,
    symbols: int = 2,
    seed: int = 0,
    decisions: bool = True,
) -> SyntheticStore:
    """Write one synthetic run with at least `fills` fills (and proportionate other rows) to the store at `url`.

    `decisions=False` leaves out the decisions and model calls (a leaner store for tests of the fill queries).
    """
    if not 1 <= llm_agents < agents or not 1 <= symbols <= len(SYMBOL_NAMES) or fills < 2 * agents:
        raise ValueError(
            f"need 1 <= llm_agents < agents, 1 <= symbols <= {len(SYMBOL_NAMES)} and fills >= 2 * agents; "
            f"got fills={fills}, agents={agents}, llm_agents={llm_agents}, symbols={symbols}"
        )
    rng = np.random.default_rng(seed)
    n_rounds = math.ceil(fills / agents)
    n_rounds += n_rounds % 2 == 0  # odd: every agent ends on an entry, so each has an open position
    names = [f"llm_{k}" for k in range(llm_agents)] + [f"quant_{k}" for k in range(agents - llm_agents)]
    syms = list(SYMBOL_NAMES[:symbols])
    ts = T0_NS + np.arange(n_rounds, dtype=np.int64) * BAR_NS
    steps = rng.normal(0.0, 0.001, size=(symbols, n_rounds))
    prices = np.asarray(START_PRICES[:symbols])[:, None] * np.exp(np.cumsum(steps, axis=1))
    store = ArenaStore(url)
    rows: dict[str, int] = {}
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # a build-only page cache: the interleaved rows hit many index pages
            conn.exec_driver_sql("PRAGMA cache_size=-1048576")

        def put(table: type[t.Base], records: Iterable[Any], columns: Sequence[str] | None = None) -> None:
            """Core `insert()` executemany, in batches; tuples in `columns` order skip the per-row dict binding."""
            stmt: Any = insert(table)
            if columns is not None:  # the same INSERT, compiled once, fed tuples through the DBAPI executemany
                compiled = stmt.compile(dialect=conn.dialect, column_keys=list(columns))
                if tuple(compiled.positiontup or ()) != tuple(columns):
                    raise ValueError(f"{table.__tablename__}: tuples must follow {compiled.positiontup}")
                stmt = str(compiled)
            run = conn.exec_driver_sql if columns is not None else conn.execute
            batch: list[Any] = []
            for rec in records:
                batch.append(rec)
                if len(batch) == BATCH:
                    run(stmt, batch)
                    rows[table.__tablename__] = rows.get(table.__tablename__, 0) + len(batch)
                    batch = []
            if batch:
                run(stmt, batch)
                rows[table.__tablename__] = rows.get(table.__tablename__, 0) + len(batch)

        put(t.RunRow, _runs(syms, n_rounds))
        put(t.RunAgentRow, _agent_rows(names, llm_agents))
        put(t.RoundRow, _rounds(ts))
        put(t.SnapshotRow, _snapshots(ts, syms, prices))
        prompts = _prompts(64)
        put(t.PromptRow, prompts)
        books = [_agent_trades(rng, a, syms, ts, prices) for a in range(len(names))]
        llm = range(llm_agents)
        shas = [p["sha256"] for p in prompts]
        # Round by round, as the arena commits them, so each table's rows of one agent are spread over its pages.
        put(t.FillRow, _interleave(_fills(n, b) for n, b in zip(names, books, strict=True)), FILL_COLUMNS)
        put(t.EquityRow, _interleave(_equity(n, b) for n, b in zip(names, books, strict=True)), EQUITY_COLUMNS)
        if decisions:
            coins = [syms if a in llm else None for a in range(len(names))]
            per_agent = (_decisions(rng, n, b, c) for n, b, c in zip(names, books, coins, strict=True))
            put(t.DecisionRow, _interleave(per_agent), DECISION_COLUMNS)
            put(t.LLMCallRow, _interleave(_calls(rng, names[a], n_rounds, shas) for a in llm))
        final_positions = [_open_position(n, b) for n, b in zip(names, books, strict=True)]
        final_equity = [float(b["equity"][-1]) for b in books]
        put(t.AccountRow, [_account(p, e, n_rounds) for p, e in zip(final_positions, final_equity, strict=True)])
        put(t.PositionRow, final_positions)
    store.engine.dispose()
    return SyntheticStore(url, RUN_ID, names, names[:llm_agents], syms, n_rounds, rows)


def _runs(syms: list[str], n_rounds: int) -> Iterator[dict[str, Any]]:
    config = {"rounds": {"flip_flop_bars": 6}, "note": "SYNTHETIC benchmark data (benchmarks/monitor_store.py)"}
    for k, run_id in enumerate(["synthetic-old-0", "synthetic-old-1", "synthetic-old-2", RUN_ID]):
        is_main = run_id == RUN_ID
        yield {
            "run_id": run_id,
            "created_at": T0_NS - (3 - k) * 86_400_000_000_000,
            "mode": "paper" if is_main else "replay",
            "status": "running" if is_main else "completed",
            "config": config,
            "spec_hash": hashlib.sha256(run_id.encode()).hexdigest(),
            "data_hash": "synthetic",
            "symbols": syms,
            "timeframe": "1m",
            "start": "2025-01-01",
            "end": None if is_main else "2025-01-02",
            "git_sha": "",
            "last_round": n_rounds - 1 if is_main else -1,
            "message": "synthetic data" if is_main else "",
        }


def _agent_rows(names: list[str], llm_agents: int) -> Iterator[dict[str, Any]]:
    for a, name in enumerate(names):
        llm = a < llm_agents
        yield {
            "run_id": RUN_ID,
            "agent": name,
            "kind": "llm" if llm else "quant",
            "provider": "openai" if llm else "",
            "model": f"synthetic-model-{a}" if llm else f"rule_{a}",
            "prompt_version": "v1" if llm else "",
            "training_cutoff": "2024-06-01" if llm else None,
            "cutoff_overlap": False,
            "initial_cash": INITIAL_CASH,
            "params": {},
        }


def _rounds(ts: np.ndarray) -> Iterator[dict[str, Any]]:
    for i, stamp in enumerate(ts.tolist()):
        yield {
            "run_id": RUN_ID,
            "round_no": i,
            "ts": stamp,
            "snapshot_hash": f"{i:016x}",
            "wall_started": stamp + 500_000_000,
            "wall_s": 2.5,
        }


def _snapshots(ts: np.ndarray, syms: list[str], prices: np.ndarray) -> Iterator[dict[str, Any]]:
    closes = prices.T.tolist()
    for i, stamp in enumerate(ts.tolist()):
        content: dict[str, Any] = {"ts": stamp}
        for s, sym in enumerate(syms):
            c = closes[i][s]
            content[sym] = {"t": stamp - BAR_NS, "o": c, "h": c * 1.001, "l": c * 0.999, "c": c, "v": 100.0}
        yield {"snapshot_hash": f"{i:016x}", "ts": stamp, "content": content}


def _prompts(n: int) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        user = f"synthetic prompt {k}\n" + "price data and indicators, oldest to newest: 12345.678, " * 100
        out.append(
            {
                "sha256": hashlib.sha256(user.encode()).hexdigest(),
                "version": "v1",
                "system": "You are an autonomous trading agent (synthetic benchmark text). " * 50,
                "user": user,
            }
        )
    return out


def _agent_trades(
    rng: np.random.Generator, a: int, syms: list[str], ts: np.ndarray, prices: np.ndarray
) -> dict[str, np.ndarray]:
    """One agent's fills as arrays: an entry every even round, its exit the next round, coins in turn.

    Each trade puts 30% of the equity at risk and guesses the next move right 52% of the time; the fee is 0.2 bp
    per side, so tens of thousands of trades neither ruin the account nor make it explode.
    """
    n = len(ts)
    i = np.arange(n)
    trade = i // 2
    sym = (trade + a) % len(syms)
    entry = i % 2 == 0
    n_trades = int(trade[-1]) + 1
    price = prices[sym, i]
    first = np.arange(n_trades) * 2
    entry_price = price[first]
    exit_price = np.append(price[first[:-1] + 1], entry_price[-1])  # the last trade is still open
    move = np.sign(exit_price - entry_price)
    direction = np.where(rng.random(n_trades) < 0.52, move, -move)
    direction[direction == 0] = 1
    ratio = exit_price / entry_price
    growth = 1.0 + TRADE_FRACTION * (direction * (ratio - 1.0) - FEE_RATE * (1.0 + ratio))
    before = INITIAL_CASH * np.concatenate(([1.0], np.cumprod(growth)[:-1]))  # equity when each trade opens
    qty = TRADE_FRACTION * before / entry_price
    leverage = rng.choice([1.0, 2.0, 3.0, 5.0], size=n_trades)
    qty_f = qty[trade]
    fee = qty_f * price * FEE_RATE
    pnl = np.where(entry, 0.0, qty_f * direction[trade] * (price - entry_price[trade]))
    equity = INITIAL_CASH + np.cumsum(pnl - fee)
    exit_kind = rng.choice(["exit", "stop_loss", "take_profit"], p=[0.6, 0.2, 0.2], size=n)
    return {
        "round": i,
        "ts": ts,
        "sym": np.asarray(syms, dtype=object)[sym],
        "entry": entry,
        "side": np.where(direction[trade] * np.where(entry, 1, -1) > 0, "buy", "sell"),
        "kind": np.where(entry, "entry", exit_kind),
        "direction": direction[trade],
        "qty": qty_f,
        "price": price,
        "fee": fee,
        "pnl": pnl,
        "leverage": leverage[trade],
        "equity": equity,
    }


def _interleave(per_agent: Iterator[Iterator[Any]]) -> Iterator[dict[str, Any]]:
    """Merge the agents' per-round records round by round (a record may be a list: one round's rows)."""
    for one_round in zip(*per_agent, strict=True):
        for item in one_round:
            if isinstance(item, list):
                yield from item
            else:
                yield item


FILL_COLUMNS = (
    "fill_id", "order_id", "run_id", "agent", "round_no", "seq", "symbol", "ts", "side", "kind", "quantity", "price",
    "fee", "realized_pnl", "funding", "leverage", "margin", "note", "source",
)  # fmt: skip
EQUITY_COLUMNS = ("run_id", "agent", "round_no", "ts", "cash", "equity", "gross_exposure")
DECISION_COLUMNS = (
    "run_id", "round_no", "agent", "symbol", "ts", "source", "action", "size", "size_unit", "leverage", "stop_loss",
    "take_profit", "invalidation", "confidence", "risk_usd", "reason", "approved", "clamped", "fraction", "verdict",
    "latency_s",
)  # fmt: skip


def _fills(name: str, tr: dict[str, np.ndarray]) -> Iterator[tuple[Any, ...]]:
    """One agent's fills as FILL_COLUMNS tuples, one per round."""
    cols = ("round", "ts", "sym", "side", "kind", "qty", "price", "fee", "pnl", "leverage")
    for i, stamp, sym, side, kind, qty, price, fee, pnl, lev in zip(*(tr[k].tolist() for k in cols), strict=True):
        order_id = f"{RUN_ID}/{name}/{stamp}/{sym}"
        fill_id = f"{order_id}#{kind}"
        yield (fill_id, order_id, RUN_ID, name, i, i, sym, stamp, side, kind, qty, price, fee, pnl, 0.0, lev,
               qty * price / lev, "", "engine")  # fmt: skip


def _equity(name: str, tr: dict[str, np.ndarray]) -> Iterator[tuple[Any, ...]]:
    """One agent's equity rows as EQUITY_COLUMNS tuples, one per round."""
    gross = np.where(tr["entry"], tr["qty"] * tr["price"], 0.0)
    margin = gross / tr["leverage"]
    cols = (tr["round"], tr["ts"], tr["equity"], gross, margin)
    for i, stamp, eq, g, m in zip(*(x.tolist() for x in cols), strict=True):
        yield (RUN_ID, name, i, stamp, eq - m, eq, g)


def _decisions(
    rng: np.random.Generator, name: str, tr: dict[str, np.ndarray], coins: list[str] | None
) -> Iterator[list[tuple[Any, ...]]]:
    """Each round's decisions (DECISION_COLUMNS tuples): the traded coin's action; a language model also holds
    every other coin (`coins`)."""
    n = len(tr["round"])
    approved = rng.random(n) > 0.05
    clamped = approved & (rng.random(n) < 0.05)
    confidence = rng.uniform(0.3, 0.9, size=n).tolist() if coins else [None] * n
    latency = (rng.lognormal(0.7, 0.4, size=n) if coins else rng.uniform(1e-5, 1e-4, size=n)).tolist()
    action = np.where(tr["entry"], np.where(tr["direction"] > 0, "enter_long", "enter_short"), "close")
    cols = (tr["round"], tr["ts"], tr["sym"], action, approved, clamped)
    rows = zip(*(x.tolist() for x in cols), confidence, latency, strict=True)
    for i, stamp, sym, act, ok, clamp, conf, lat in rows:
        out = []
        for coin in coins or [sym]:
            why = f"synthetic reasoning for {coin} in round {i}"
            if coin == sym:
                verdict = "" if ok else "synthetic: rejected by the risk engine"
                out.append((RUN_ID, i, name, coin, stamp, "agent", act, 0.05, "quantity", 2.0, None, None, "", conf,
                            None, why, ok, clamp, 0.1, verdict, lat))  # fmt: skip
            else:
                out.append((RUN_ID, i, name, coin, stamp, "agent", "hold", 0.0, "fraction", 1.0, None, None, "", conf,
                            None, why, None, False, 0.0, "", lat))  # fmt: skip
        yield out


def _calls(rng: np.random.Generator, name: str, n_rounds: int, prompt_shas: list[str]) -> Iterator[dict[str, Any]]:
    parse_ok = (rng.random(n_rounds) > 0.03).tolist()
    latency = rng.lognormal(0.7, 0.4, size=n_rounds).tolist()
    raw = json.dumps({"decisions": [{"coin": "BTC", "signal": "hold", "justification": "synthetic " * 8}]})
    for i in range(n_rounds):
        yield {
            "run_id": RUN_ID,
            "round_no": i,
            "agent": name,
            "prompt_sha": prompt_shas[i % len(prompt_shas)],
            "cache_key": "",
            "cache_hit": False,
            "raw": raw if parse_ok[i] else "not json",
            "parse_ok": parse_ok[i],
            "problems": [] if parse_ok[i] else ["synthetic: the answer is not JSON"],
            "error": "",
            "input_tokens": 3000,
            "output_tokens": 200,
            "cost_usd": 0.002,
            "latency_s": latency[i],
            "attempts": 1,
        }


def _open_position(name: str, tr: dict[str, np.ndarray]) -> dict[str, Any]:
    """The entry of the last round, still open (the run has an odd number of rounds)."""
    qty, price, lev = float(tr["qty"][-1]), float(tr["price"][-1]), float(tr["leverage"][-1])
    signed = qty * int(tr["direction"][-1])
    return {
        "run_id": RUN_ID,
        "agent": name,
        "symbol": str(tr["sym"][-1]),
        "quantity": signed,
        "entry_price": price,
        "leverage": lev,
        "margin": qty * price / lev,
        "opened_at": int(tr["ts"][-1]),
        "liquidation_price": price * (1 - np.sign(signed) / lev),
        "stop_loss": price * (1 - 0.01 * np.sign(signed)),
        "take_profit": price * (1 + 0.02 * np.sign(signed)),
        "entry_fee": float(tr["fee"][-1]),
        "funding_paid": 0.0,
        "invalidation": "price < 1000",
    }


def _account(position: dict[str, Any], equity: float, n_rounds: int) -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "agent": position["agent"],
        "last_round": n_rounds - 1,
        "cash": equity - position["margin"],
        "realized_pnl": 0.0,
        "fees_paid": 0.0,
        "funding_paid": 0.0,
        "pending": [],
        "plans": {},
    }


# -- the timed queries ---------------------------------------------------------------------------------------------
def query_suite(store: ArenaStore, synth: SyntheticStore) -> dict[str, Callable[[], Any]]:
    """Each monitor query as the pages call it, by a readable name."""
    run, llm = synth.run_id, synth.llm_agents[0]
    last_day = pd.Timestamp(T0_NS + (synth.rounds - 1) * BAR_NS, tz="UTC") - pd.Timedelta(days=1)
    middle = synth.rounds // 2

    def returns_risk() -> Any:
        returns = q.agent_returns(store, run, portfolio=True)
        return risk.var_cvar(returns), risk.correlation(returns)

    return {
        "list_runs": lambda: q.list_runs(store),
        "run_agents": lambda: q.run_agents(store, run),
        "leaderboard": lambda: leaderboard_sql.leaderboard(store, run),
        "leaderboard (last day)": lambda: leaderboard_sql.leaderboard(store, run, start=last_day),
        "leaderboard (flip_flops=False)": lambda: leaderboard_sql.leaderboard(store, run, flip_flops=False),
        "equity_curves": lambda: q.equity_curves(store, run),
        "positions": lambda: q.positions(store, run),
        "exposure": lambda: q.exposure(store, run),
        "trades (all agents)": lambda: q.trades(store, run),
        "trades (one agent)": lambda: q.trades(store, run, llm),
        "decision_rounds": lambda: q.decision_rounds(store, run, llm),
        "round_detail": lambda: q.round_detail(store, run, llm, middle),
        "agent_returns + var_cvar + correlation": returns_risk,
        "last_round": lambda: q.last_round(store),
        "fill_count": lambda: q.fill_count(store, run),
    }


def _size(result: Any) -> int:
    if isinstance(result, tuple):
        return sum(_size(r) for r in result)
    if hasattr(result, "shape"):
        return int(result.shape[0])
    return 0 if result is None else 1


def time_queries(
    store: ArenaStore, synth: SyntheticStore, repeats: int, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Best-of-`repeats` wall seconds of each query (after one untimed call), the process CPU seconds of each
    repeat (on a shared machine the wall time includes waiting for a core), and the rows it returned."""
    out: dict[str, Any] = {}
    for name, fn in query_suite(store, synth).items():
        if names is not None and name not in names:
            continue
        fn()
        cpu: list[float] = []

        def timed(fn: Callable[[], Any] = fn, cpu: list[float] = cpu) -> Any:
            c0 = time.process_time()
            result = fn()
            cpu.append(time.process_time() - c0)
            return result

        best, times, result = best_of(timed, repeats)
        out[name] = {"best_s": best, "all_s": times, "cpu_s": cpu, "rows": _size(result)}
    return out


def create_indexes(store: ArenaStore) -> None:
    """The indexes the module docstring argues for, on the synthetic store only."""
    with store.engine.begin() as conn:
        for name, (table, cols) in INDEXES.items():
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(cols)})"))


def render(results: dict[str, Any], with_index: dict[str, Any], synth: SyntheticStore) -> str:
    rows = []
    for name, r in results.items():
        after = with_index.get(name)
        rows.append(
            [
                name,
                f"{r['best_s'] * 1000:.1f}",
                f"{min(r['cpu_s']) * 1000:.1f}",
                f"{r['best_s'] / PAGE_BUDGET_S:.3f}",
                "-" if after is None else f"{after['best_s'] * 1000:.1f}",
                str(r["rows"]),
            ]
        )
    header = ["query (SYNTHETIC store)", "best ms", "cpu ms", "/ 2 s budget", "ms with indexes", "rows"]
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(synth.rows.items()))
    return f"store: {counts}\n\n" + aligned_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 fills, for the smoke test")
    parser.add_argument("--fills", type=int, default=None, help="fills in the synthetic run (default: the mode's)")
    parser.add_argument("--agents", type=int, default=None, help="contestants (two are language models)")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to build (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUTPUT, dest="output", help="where to write results")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when the slowest query is over 2 s")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    sizes["fills"] = args.fills or sizes["fills"]
    sizes["agents"] = args.agents or sizes["agents"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="arena-monitor-bench-") as tmp:
        path = args.db or Path(tmp) / "arena.db"
        if path.exists():
            raise SystemExit(f"{path} exists: pass a new --db path (the benchmark builds its own store)")
        url = f"sqlite:///{path.resolve()}"
        t0 = time.perf_counter()
        synth = build_store(url, fills=sizes["fills"], agents=sizes["agents"], symbols=sizes["symbols"])
        build_s = time.perf_counter() - t0
        store = open_store(url)
        results = time_queries(store, synth, sizes["repeats"])
        create_indexes(store)
        affected = ["leaderboard", "leaderboard (last day)", "leaderboard (flip_flops=False)", "trades (all agents)"]
        with_index = time_queries(store, synth, sizes["repeats"], affected)
        store.engine.dispose()
        db_bytes = path.stat().st_size
    slowest = max(results, key=lambda k: results[k]["best_s"])
    ratio = results[slowest]["best_s"] / PAGE_BUDGET_S
    payload = {
        "mode": mode,
        "data": "SYNTHETIC: generated by benchmarks/monitor_store.py (see its docstring), not a real run",
        "sizes": sizes,
        "store": {**asdict(synth), "url": "sqlite:///<temporary file>", "bytes": db_bytes, "build_s": build_s},
        "command": command_line("benchmarks/monitor_store.py", argv),
        "environment": _environment(sqlalchemy=sqlalchemy.__version__, sqlite=_sqlite_version()),
        "page_budget_s": PAGE_BUDGET_S,
        "results": results,
        "with_indexes": {"indexes": {k: list(v[1]) for k, v in INDEXES.items()}, "results": with_index},
        "slowest": {"query": slowest, "best_s": results[slowest]["best_s"], "ratio_to_budget": ratio},
        "all_passed": ratio <= 1.0,
        "total_s": time.perf_counter() - started,
    }
    table = render(results, with_index, synth)
    verdict = "PASS" if ratio <= 1.0 else "FAIL"
    table += f"\n\nslowest: {slowest} {results[slowest]['best_s']:.3f} s = {ratio:.2f} x the 2 s page budget {verdict}"
    return write_results(payload, args.output, table, strict=args.strict)


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


if __name__ == "__main__":
    sys.exit(main())
