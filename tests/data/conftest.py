"""Fixtures for the data-layer tests: the real sample, and real ccxt talking to a loopback Binance server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

# `tests` is not an installed package: make `tests.servers` importable however pytest was started.
_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from arena_lib.data import api_urls_for_host, load_sample, make_exchange  # noqa: E402
from tests.servers.binance import BinanceSpotServer  # noqa: E402

SPOT_ONLY: dict[str, Any] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}


@pytest.fixture
def btc_1h() -> pd.DataFrame:
    """Real BTC/USDT hourly bars of the bundled sample."""
    return load_sample("BTC/USDT", "1h")


@pytest.fixture
def binance_server() -> Iterator[BinanceSpotServer]:
    """A fresh loopback Binance spot server (per test, so counters and injected failures never leak)."""
    with BinanceSpotServer() as server:
        yield server


@pytest.fixture
def binance(binance_server: BinanceSpotServer) -> Any:
    """A real ccxt binance client whose REST hosts point at the loopback server; spot markets only."""
    return make_exchange(
        "binance",
        urls_override=api_urls_for_host("binance", binance_server.url),
        options=SPOT_ONLY,
        timeout=2_000,
    )
