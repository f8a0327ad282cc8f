"""Shared input of the prompt and context tests: real BTC and ETH hourly bars with funding."""

from __future__ import annotations

import pytest

from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData

SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def market() -> MarketData:
    """Real BTC and ETH hourly bars with funding, 2024-03-01 to 2024-03-10 (217 bars)."""
    return load_market(list(SYMBOLS), "1h", "2024-03-01", "2024-03-10")
