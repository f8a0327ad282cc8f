"""TEST FIXTURE process for the SIGKILL test: one live job invocation at hour H against a loopback exchange.

Usage: python -m tests.live.kill_child URL DB CONFIG HOUR. Prints "ready" once imports are done, so the parent
kills it while it trades rather than while it starts.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from arena_lib.arena.config import load_arena_config
from arena_lib.arena.live import live_step
from arena_lib.arena.store import ArenaStore
from arena_lib.execution.latch import AccountSecrets
from arena_lib.execution.settings import LiveSettings
from arena_lib.execution.venue import Venue
from tests.live.conftest import ENV, market_until
from tests.servers.binance_futures import futures_client


def main() -> None:
    url, db, config, hour = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    server = SimpleNamespace(url=url)

    def connect(live: LiveSettings, keys: AccountSecrets) -> Venue:
        return Venue(futures_client(server, keys.api_key, keys.secret), live, (keys.api_key, keys.secret))  # type: ignore[arg-type]

    cfg = load_arena_config(config)
    market = market_until(hour)
    store = ArenaStore(db)
    print("ready", flush=True)
    live_step(cfg, store, market, job="k", connect=connect, env=ENV)
    print("done", flush=True)


if __name__ == "__main__":
    main()
