"""Live trading against the loopback Binance USDⓈ-M exchange (`tests/servers/binance_futures.py`, a FIXTURE whose
prices are the real sample's and whose matching is modelled): the real ccxt code, the real ledger."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from arena_lib.arena.config import ArenaConfig, load_arena_config
from arena_lib.arena.live import live_step
from arena_lib.arena.session import RunReport
from arena_lib.arena.store import ArenaStore
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from arena_lib.execution.latch import AccountSecrets
from arena_lib.execution.settings import LiveSettings
from arena_lib.execution.venue import Venue
from tests.servers.binance_futures import BinanceFuturesServer, futures_client

KEY, SECRET = "canary-key-4f1b7c0d9e2a", "canary-secret-8a6e3d5f1c7b"
ENV = {"ARENA_LIVE_API_KEY": KEY, "ARENA_LIVE_API_SECRET": SECRET, "ARENA_LIVE_CONFIRM": "LIVE"}
START = pd.Timestamp("2025-03-01", tz="UTC")


def arena_yaml(agent: str = "tests.live.agents:Alternator", params: str = "{}", extra: str = "") -> str:
    return f"""
symbols: [BTC/USDT, ETH/USDT]
timeframe: 1h
risk: {{max_leverage: 5}}
breakers: off
mode: live
live: {{exchange: binanceusdm, caps: {{max_order_notional: 1000, max_orders_per_minute: 50}}}}
agents:
  - agent: {agent}
    label: bot
    params: {params}
{extra}
"""


def market_until(hours: int) -> MarketData:
    """The sample's closed bars up to `hours` after START: what a candle feed would hand the job then."""
    end = (START + pd.Timedelta(hours=hours)).isoformat()
    return load_market(["BTC/USDT", "ETH/USDT"], "1h", (START - pd.Timedelta(hours=300)).isoformat(), end)


@dataclass
class LiveRig:
    """A loopback exchange, a ledger and a config: `step(h)` is one scheduled invocation at hour `h`."""

    server: BinanceFuturesServer
    store: ArenaStore
    config: ArenaConfig
    job: str = "t"

    def connect(self, live: LiveSettings, keys: AccountSecrets) -> Venue:
        client = futures_client(
            self.server, keys.api_key, keys.secret, options={"warnOnFetchOpenOrdersWithoutSymbol": False}
        )
        return Venue(client, live, (keys.api_key, keys.secret), sleep=lambda s: None)

    def step(self, hours: int, **kw: Any) -> RunReport:
        market = market_until(hours)
        close = float(market.close[-1][0])
        self.server.set_price("BTCUSDT", round(close, 1))
        self.server.set_price("ETHUSDT", round(float(market.close[-1][1]), 2))
        return live_step(self.config, self.store, market, job=self.job, connect=self.connect, env=ENV, **kw)

    @property
    def run_id(self) -> str:
        return f"live-job-{self.job}"

    def exchange_position(self, symbol: str = "BTCUSDT") -> float:
        p = self.server.account_state(KEY)["positions"].get(symbol)
        return 0.0 if p is None else float(p["positionAmt"])

    def ledger_position(self, symbol: str = "BTC/USDT") -> float:
        acc = next(iter(self.store.load_accounts(self.run_id).values()))
        pos = acc.positions.get(symbol)
        return 0.0 if pos is None else pos.quantity


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[LiveRig]:
    path = tmp_path / "arena.yaml"
    path.write_text(arena_yaml())
    with BinanceFuturesServer({KEY: (SECRET, 10_000)}) as server:
        store = ArenaStore(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            yield LiveRig(server, store, load_arena_config(path))
        finally:
            store.engine.dispose()
