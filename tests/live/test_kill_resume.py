"""SIGKILL a live job at random moments against the loopback exchange: after each resume there is no duplicate
order, and the ledger equals the exchange (positions and wallet)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from arena_lib.arena.config import load_arena_config
from arena_lib.arena.store import ArenaStore
from tests.live.conftest import KEY, SECRET, LiveRig, arena_yaml, market_until
from tests.servers.binance_futures import BinanceFuturesServer

KILLS = 20
ROOT = Path(__file__).resolve().parents[2]


def _child(url: str, db: str, config: Path, hour: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.live.kill_child", url, db, str(config), str(hour)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_twenty_sigkills_leave_no_duplicate_order_and_the_ledger_equal_to_the_exchange(tmp_path: Path) -> None:
    rng = random.Random(7)
    config = tmp_path / "arena.yaml"
    config.write_text(arena_yaml())
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    killed_mid_trade = 0
    with BinanceFuturesServer({KEY: (SECRET, 10_000)}) as server:
        for hour in range(KILLS):
            market = market_until(hour)
            server.set_price("BTCUSDT", round(float(market.close[-1][0]), 1))
            server.set_price("ETHUSDT", round(float(market.close[-1][1]), 2))
            before = len(server.calls)
            child = _child(server.url, db, config, hour)
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
            at_call = before + rng.randint(1, 14)  # a random point of its conversation with the exchange
            deadline = time.monotonic() + 30
            while len(server.calls) < at_call and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            killed_mid_trade += before < len(server.calls)
            store = ArenaStore(db)
            try:
                rig = LiveRig(server, store, load_arena_config(config), job="k")
                rig.step(hour)  # the next invocation resumes the run
                dupes = {c: o for c, o in server.orders_by_client_id(KEY).items() if len(o) > 1}
                assert not dupes, f"after kill {hour}: orders sent twice: {list(dupes)}"
                assert (
                    rig.ledger_position() == rig.exchange_position()
                    or abs(rig.ledger_position() - rig.exchange_position()) < 1e-9
                ), f"after kill {hour}"
                acc = next(iter(store.load_accounts(rig.run_id).values()))
                wallet = acc.cash + sum(p.margin for p in acc.positions.values())
                assert abs(wallet - float(server.account_state(KEY)["walletBalance"])) < 1e-6, f"after kill {hour}"
                halted = [b for b in store.latest_breakers(rig.run_id) if b.state == "halted"]
                assert not halted, halted[0].reason if halted else ""
            finally:
                store.engine.dispose()
    assert killed_mid_trade >= KILLS // 2, "most kills must land while the job talks to the exchange"
