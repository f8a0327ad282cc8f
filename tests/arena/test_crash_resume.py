"""SIGKILL an arena replay at random moments, resume it every time, and hold the ledger to its invariants.

The promise under test (`arena_lib/arena/store.py`, `rounds.py`): a round is committed in one transaction with every
account's state, so a process killed at any instant leaves the ledger at the end of a whole round, and
`arena run --resume RUN_ID` continues from there as if nothing had happened.

How: a helper process (the "zygote", a script written to tmp_path) imports the library once and runs the
uninterrupted reference replay through the real `arena run` command, against the loopback LLM server, which also
fills the response cache and warms every lazy import and numba cache. It then forks one child per attempt; each
child runs `arena run` (first with `--run-id`, then with `--resume`) in strict cache mode, so a resumed child that
built even one prompt differently from the uninterrupted run fails with a cache miss instead of calling a model.
This test process SIGKILLs each child at a seeded random moment, mostly after it has committed a round of its own
(so kills land mid-run; a few land during start-up), and after every kill checks the ledger:

- rounds are 0..last_round without gaps or duplicates; every agent has one equity row per committed round, and
  every account's `last_round` is the run's; nothing (fills, orders, decisions, model calls) belongs to a later
  round;
- fill ids and order ids are unique; every agent-made fill has its order; no pending order was already filled;
- each account's cash equals `cash0 - sum(entry margin + fee) + sum(exit margin + realized_pnl - fee)` over its
  fills (a liquidation releases its margin as a loss of the same size), its open positions are the net quantity
  of its fills per symbol, and its last equity row shows its cash;
- the committed prefix is identical to the same rounds of the uninterrupted run.

At the end the whole ledger (fills, orders, decisions, model calls, equity, accounts, positions) equals the
uninterrupted run's. The fork server exists because each fresh interpreter pays 2-6 s of imports here, which would
make twenty restarts cost minutes; the killed processes are still separate processes, killed by the kernel.

The LLM contestant's answers are TEST FIXTURES derived from a hash of its prompt (`_fixture_reply`), never a language
model's output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from arena_lib.arena import schema as t
from arena_lib.arena.store import ArenaStore
from tests.arena.conftest import Request, answer, coin
from tests.servers.llm import LLMServer, Reply, Script

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash harness forks its children (POSIX only)")

ROOT = Path(__file__).resolve().parents[2]
SEED = 20250301
RUN_ID = "crash-resume"
MIN_KILLS = 20  # SIGKILLs that must land after the child committed a round of its own
TARGET_KILLS = 26  # what the delays are scaled for, so that MIN_KILLS holds with a margin
EARLY_KILL_SHARE = 0.15  # attempts killed during start-up (loading the market, restoring the accounts)
CASH0 = 10_000.0
BARS_PER_ROUND = 2  # odd bars only settle (stops, targets, liquidations, funding): resume must keep the schedule
LLM_AGENT = "fixture_llm"
DEADLINE_S = 240.0  # the whole kill loop; far above what it needs, only to turn a hang into a failure

CONFIG = """\
symbols: [BTC/USDT, ETH/USDT, SOL/USDT]
timeframe: 1h
start: "2025-03-01"
end: "2025-03-15"
costs: {{fee_bps: 5.0, slippage_bps: 2.0}}
execution: {{fill: next_open, initial_cash: {cash}}}
risk: {{max_leverage: 20.0, max_position_notional: 3.0, max_gross_exposure: 5.0, allow_reversal: false}}
arena: {{deadline_s: 30, bars_per_round: {bars_per_round}, stats_window: 48}}
agents:
  - agent: sma_cross
    params: {{fast: 3, slow: 8, fraction: 0.3, allow_short: true, stop_loss_pct: 0.01, leverage: 3}}
  - agent: mean_reversion
    params: {{window: 12, entry_z: 1.0, exit_z: 0.2, allow_short: true, fraction: 0.3}}
  - agent: momentum
    params: {{window: 6, allow_short: true, fraction: 0.3, take_profit_pct: 0.02, leverage: 2}}
  - llm:
      name: {llm}
      provider: openai_compatible
      model: crash-fixture
      base_url: "{base_url}"
      timeout_s: 10
      max_retries: 0
"""

# The fork server. It speaks JSON lines: requests on stdin, answers on the stdout it had at start (its own output
# and its children's go to log files, so nothing else can corrupt the protocol).
ZYGOTE = r"""
import gc, json, os, sys, threading, time, traceback

sys.path.insert(0, sys.argv[1])
proto = os.fdopen(os.dup(1), "w", buffering=1)
log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(log, 1)
os.dup2(log, 2)

from arena_lib.cli.main import app
import arena_lib.arena.session, arena_lib.arena.rounds, arena_lib.arena.store, arena_lib.agents.llm.agent


def say(**kw):
    proto.write(json.dumps(kw) + "\n")


def cli(argv):
    try:
        code = app(argv, standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    return int(code or 0)


say(ready=True)
for line in sys.stdin:
    req = json.loads(line)
    if not req["fork"]:
        t0 = time.perf_counter()
        code = cli(req["argv"])
        wall = time.perf_counter() - t0
        gc.collect()
        deadline = time.monotonic() + 5.0  # fork only from a single-threaded process
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        say(status=code, wall_s=wall, threads=threading.active_count())
        continue
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        out = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        code = cli(req["argv"])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    say(pid=pid)
    _, status = os.waitpid(pid, 0)
    say(pid=pid, wait_status=status)
"""


# -- the scripted contestant ------------------------------------------------------------------------------------
def _fixture_reply(body: dict[str, Any]) -> Reply:
    """A deterministic trader: each coin's signal, size, leverage and exit plan come from a hash of the prompt.

    It opens longs and shorts with leverage up to 20 (the cap), with and without stops and targets, with
    invalidation conditions the engine evaluates, and closes positions at random: every ledger path gets traffic.
    """
    req = Request.from_body(body)
    h = hashlib.sha256(req.user.encode()).digest()
    out = []
    for k, name in enumerate(("BTC", "ETH", "SOL")):
        b = h[4 * k : 4 * k + 4]
        if req.holds(name):
            out.append(coin(name, "close_position" if b[0] % 4 == 0 else "hold"))
            continue
        if b[0] % 5 > 1:
            out.append(coin(name))
            continue
        side = 1 if b[0] % 5 == 0 else -1
        price = req.price(name)
        notional = 1_000.0 + 500.0 * (b[1] % 4)
        leverage = (2.0, 5.0, 10.0, 20.0)[b[2] % 4]
        conditions = ("", "unrealized_pnl_pct < -30", "rsi14 > 70" if side > 0 else "rsi14 < 30", "free text")
        out.append(
            coin(
                name,
                "buy_to_enter" if side > 0 else "sell_to_enter",
                quantity=round(notional / price, 6),
                leverage=leverage,
                profit_target=round(price * (1 + side * 0.03), 4) if b[3] % 2 else None,
                stop_loss=round(price * (1 - side * 0.02), 4) if b[3] % 3 else None,
                invalidation=conditions[b[1] % 4],
                justification="crash-test fixture",
            )
        )
    return Reply(data=answer(*out))


# -- the fork server --------------------------------------------------------------------------------------------
class Zygote:
    """The fork server process: run the CLI in-process, or fork a child that runs it, and report exit statuses."""

    def __init__(self, tmp: Path) -> None:
        script = tmp / "zygote.py"
        script.write_text(ZYGOTE)
        self.log = tmp / "zygote.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(ROOT), str(self.log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
        )
        self.child: int | None = None
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self.read(120.0).get("ready"), "the fork server did not start"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def read(self, timeout: float) -> dict[str, Any]:
        try:
            msg = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"fork server silent for {timeout:g}s; its log:\n{self.log_tail()}") from None
        if msg is None:
            raise AssertionError(f"fork server exited ({self.proc.poll()}); its log:\n{self.log_tail()}")
        return msg

    def send(self, argv: list[str], *, fork: bool, log: Path | None = None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "fork": fork, "log": str(log or "")}) + "\n")
        self.proc.stdin.flush()

    def run(self, argv: list[str]) -> dict[str, Any]:
        """Run `arena <argv>` inside the fork server itself, to the end; its exit status, wall time, threads left."""
        self.send(argv, fork=False)
        return self.read(300.0)

    def fork(self, argv: list[str], log: Path) -> int:
        """Start `arena <argv>` in a forked child writing to `log`; returns the child's pid."""
        self.send(argv, fork=True, log=log)
        self.child = int(self.read(30.0)["pid"])
        return self.child

    def wait(self) -> int:
        """The forked child's wait status, once it has ended (killed or not)."""
        status = int(self.read(60.0)["wait_status"])
        self.child = None
        return status

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else "(no log)"

    def close(self) -> None:
        if self.child is not None:  # a test that failed mid-attempt: its child must not outlive it
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    z = Zygote(tmp_path)
    try:
        yield z
    finally:
        z.close()


# -- reading the ledger -----------------------------------------------------------------------------------------
def committed_round(db: Path) -> int | None:
    """The run's last committed round, read with plain sqlite3 while a child may be writing (None: not yet)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute("SELECT last_round FROM runs WHERE run_id = ?", (RUN_ID,)).fetchone()
    except sqlite3.Error:  # the child is still creating the tables
        return None
    return None if row is None else int(row[0])


ROUND_TABLES = ("fills", "orders", "decisions", "llm_calls", "equity", "rounds")
# Columns that hold wall-clock measurements or database row ids; the cache hit flag differs by construction (the
# reference run called the model, the killed run replays it from the cache).
VOLATILE = {"id", "latency_s", "wall_s", "wall_started", "cache_hit"}


def ledger(store: ArenaStore, through_round: int | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the run that the rounds write, in a deterministic order, without volatile columns."""
    frames = {
        "fills": store.fills_frame(RUN_ID),
        "orders": store.frame(t.OrderRow, RUN_ID, order=("order_id",)),
        "decisions": store.decisions_frame(RUN_ID),
        "llm_calls": store.llm_calls_frame(RUN_ID),
        "equity": store.equity_frame(RUN_ID),
        "rounds": store.rounds_frame(RUN_ID),
        "accounts": store.frame(t.AccountRow, RUN_ID, order=("agent",)),
        "positions": store.frame(t.PositionRow, RUN_ID, order=("agent", "symbol")),
    }
    out = {}
    for name, frame in frames.items():
        if through_round is not None:
            if name not in ROUND_TABLES:
                continue
            frame = frame[frame["round_no"] <= through_round]
        out[name] = frame.drop(columns=sorted(VOLATILE & set(frame.columns))).reset_index(drop=True)
    return out


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], when: str) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=f"{name} ({when})")


def check_invariants(store: ArenaStore, agents: list[str]) -> int:
    """Assert the ledger invariants listed in the module docstring; returns the last committed round."""
    last = store.get_run(RUN_ID).last_round
    expected_rounds = list(range(last + 1))
    assert store.rounds_frame(RUN_ID)["round_no"].tolist() == expected_rounds, "rounds are not 0..last, once each"

    accounts = store.frame(t.AccountRow, RUN_ID, order=("agent",))
    assert sorted(accounts["agent"]) == sorted(agents)
    assert (accounts["last_round"] == last).all(), f"accounts out of step with the run (round {last})"

    equity = store.equity_frame(RUN_ID)
    fills = store.fills_frame(RUN_ID)
    orders = store.frame(t.OrderRow, RUN_ID)
    for name, frame in (
        ("fills", fills),
        ("orders", orders),
        ("decisions", store.decisions_frame(RUN_ID)),
        ("llm_calls", store.llm_calls_frame(RUN_ID)),
    ):
        assert frame.empty or frame["round_no"].max() <= last, f"{name} rows beyond the committed round {last}"
    assert fills["fill_id"].is_unique, "a fill was written twice"
    assert orders["order_id"].is_unique, "an order was written twice"
    agent_made = fills[fills["kind"].isin(["entry", "exit"])]
    assert set(agent_made["order_id"]) <= set(orders["order_id"]), "a fill without its order"
    calls = store.llm_calls_frame(RUN_ID)
    decision_rounds = [r for r in expected_rounds if r % BARS_PER_ROUND == 0]
    assert calls["round_no"].tolist() == decision_rounds, "not one model call per committed decision round"

    positions = store.frame(t.PositionRow, RUN_ID)
    for acc in accounts.to_dict("records"):
        agent: str = acc["agent"]
        mine = equity[equity["agent"] == agent]
        assert mine["round_no"].tolist() == expected_rounds, f"{agent}: not one equity row per round"
        assert mine["cash"].iloc[-1] == acc["cash"], f"{agent}: last equity row disagrees with the account"

        f = fills[fills["agent"] == agent]
        assert f["seq"].tolist() == list(range(len(f))), f"{agent}: fill sequence has gaps or repeats"
        entries, exits = f[f["kind"] == "entry"], f[f["kind"] != "entry"]
        liq = f[f["kind"] == "liquidation"]
        assert (liq["realized_pnl"] == -liq["margin"]).all(), f"{agent}: a liquidation kept some margin"
        cash = (
            CASH0
            - (entries["margin"] + entries["fee"]).sum()
            + (exits["margin"] + exits["realized_pnl"] - exits["fee"]).sum()
        )
        assert acc["cash"] == pytest.approx(cash, rel=1e-9, abs=1e-6), f"{agent}: cash does not reconcile"

        signed = f["quantity"].where(f["side"] == "buy", -f["quantity"])
        net = signed.groupby(f["symbol"]).sum()
        held = positions[positions["agent"] == agent].set_index("symbol")["quantity"]
        for sym in sorted(set(net.index) | set(held.index)):
            want = float(held.get(sym, 0.0))
            assert float(net.get(sym, 0.0)) == pytest.approx(want, abs=1e-9 * max(1.0, abs(want))), (
                f"{agent} {sym}: open position {want} but the fills net to {net.get(sym, 0.0)}"
            )
        pending = {o["order_id"] for o in acc["pending"]}
        assert pending <= set(orders["order_id"]), f"{agent}: a pending order that was never recorded"
        assert not pending & set(f["order_id"]), f"{agent}: a pending order that already filled"
    return last


# -- the test ---------------------------------------------------------------------------------------------------
@dataclass
class Tally:
    mid_run: int = 0  # killed after committing at least one round of its own
    early: int = 0  # killed during start-up
    finished: int = 0  # ran to the end on its own


@pytest.mark.slow  # about 20 s: two replays of 337 bars, one of them killed 20+ times
def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path: Path, zygote: Zygote) -> None:
    rng = random.Random(SEED)
    server = LLMServer(Script(_fixture_reply)).start()
    try:
        config = tmp_path / "arena.yaml"
        config.write_text(
            CONFIG.format(cash=CASH0, bars_per_round=BARS_PER_ROUND, llm=LLM_AGENT, base_url=server.openai_base_url)
        )
        ref_db, crash_db, cache_db = tmp_path / "reference.db", tmp_path / "crash.db", tmp_path / "llm_cache.db"
        common = ["run", "--config", str(config), "--mode", "replay", "--json", "--cache-db", f"sqlite:///{cache_db}"]

        # The uninterrupted run: it also records every model answer in the cache the killed runs replay from.
        done = zygote.run([*common, "--db", f"sqlite:///{ref_db}", "--run-id", RUN_ID, "--cache-mode", "use"])
        assert done["status"] == 0, f"reference run failed; log:\n{zygote.log_tail()}"
        assert done["threads"] == 1, "the fork server kept threads running; forking it would be unsafe"
        assert server.errors == []
    finally:
        server.stop()  # from here on the model is unreachable: the killed runs can only replay the cache

    ref_store = ArenaStore(f"sqlite:///{ref_db}")
    final_round = check_invariants(ref_store, [a.agent for a in ref_store.run_agents(RUN_ID)])
    reference = ledger(ref_store)
    kinds = set(reference["fills"]["kind"])
    assert {"entry", "exit", "stop_loss", "take_profit", "liquidation"} <= kinds, f"too little trading to test: {kinds}"
    rounds_per_s = (final_round + 1) / done["wall_s"]

    tally = Tally()
    crash_store: ArenaStore | None = None
    agents: list[str] = []
    last = -1
    attempt = 0
    started = time.monotonic()
    while True:
        assert time.monotonic() - started < DEADLINE_S, f"no completed run after {attempt} attempts"
        log = tmp_path / f"attempt-{attempt:03d}.log"
        mode = ["--run-id", RUN_ID] if attempt == 0 else ["--resume", RUN_ID]
        pid = zygote.fork([*common, "--db", f"sqlite:///{crash_db}", "--cache-mode", "strict", *mode], log)
        t_fork = time.monotonic()
        before = last
        early = attempt > 0 and rng.random() < EARLY_KILL_SHARE
        if early:
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            # Wait until this child has committed a round of its own, then give it a random share of what is left.
            while _progress(crash_db) <= before:
                if not _alive(pid):
                    break
                assert time.monotonic() - t_fork < 60.0, f"attempt {attempt} made no progress; log:\n{_tail(log)}"
                time.sleep(0.002)
            remaining = final_round - before
            kills_left = TARGET_KILLS - tally.mid_run
            span = remaining / rounds_per_s / (kills_left + 1) if kills_left > 0 else 2.0 * remaining / rounds_per_s
            time.sleep(rng.uniform(0.0, span))
        t_kill = time.monotonic()
        with contextlib.suppress(ProcessLookupError):  # a child that just finished on its own is gone
            os.kill(pid, signal.SIGKILL)
        status = zygote.wait()
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        if not killed:
            code = os.waitstatus_to_exitcode(status)
            assert code == 0, f"attempt {attempt} failed with exit code {code}; log:\n{_tail(log)}"

        if crash_store is None:
            crash_store = ArenaStore(f"sqlite:///{crash_db}")
            agents = [a.agent for a in crash_store.run_agents(RUN_ID)]
        last = check_invariants(crash_store, agents)
        assert_same(ledger(crash_store, last), ledger(ref_store, last), f"after attempt {attempt}, round {last}")
        progressed = last > before
        if killed and early and not progressed:
            tally.early += 1
        elif killed:
            tally.mid_run += 1
            # Measure how fast a child really plays, so the next delays spread the kills over what is left.
            rounds_per_s = 0.5 * rounds_per_s + 0.5 * max(last - before, 1) / max(t_kill - t_fork, 1e-3)
        else:
            tally.finished += 1
        attempt += 1
        run = crash_store.get_run(RUN_ID)
        if run.status == "completed":
            break

    assert last == final_round
    assert tally.mid_run >= MIN_KILLS, f"only {tally.mid_run} kills landed mid-run ({tally})"
    assert_same(ledger(crash_store), reference, "final")
    ref_store.engine.dispose()
    crash_store.engine.dispose()


def _alive(pid: int) -> bool:
    """Whether the child still runs (the fork server reaps it as soon as it ends)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _progress(db: Path) -> int:
    last = committed_round(db)
    return -1 if last is None else last


def _tail(path: Path) -> str:
    return path.read_text()[-4000:] if path.exists() else "(no log)"


def test_fixture_trader_is_a_pure_function_of_the_prompt() -> None:
    """The crash test's determinism rests on this: the same prompt always gets the same scripted answer."""
    user = "".join(f"ALL {c} DATA\ncurrent_price = {p},\n" for c, p in (("BTC", 85000.5), ("ETH", 2200), ("SOL", 140)))
    body = {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": user}]}
    first, second = _fixture_reply(body), _fixture_reply(body)
    assert first == second
    decisions = first.data["decisions"]
    assert [d["coin"] for d in decisions] == ["BTC", "ETH", "SOL"]
    assert all(math.isfinite(d["quantity"]) and d["quantity"] >= 0 for d in decisions)
