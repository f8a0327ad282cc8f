"""Shared inputs of the feature tests: hand-made hourly bars and four months of real ETH bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample


def bars(close: np.ndarray, *, start: str = "2024-01-01", spread: float = 0.0, volume: float = 1.0) -> pd.DataFrame:
    """Hourly bars with open = previous close, and high/low at close * exp(+-spread)."""
    close = np.asarray(close, dtype=np.float64)
    index = pd.date_range(start, periods=len(close), freq="h", tz="UTC", name="timestamp")
    opens = np.r_[close[0], close[:-1]]
    hi = np.maximum(opens, close) * math.exp(spread)
    lo = np.minimum(opens, close) * math.exp(-spread)
    return pd.DataFrame({"open": opens, "high": hi, "low": lo, "close": close, "volume": volume}, index=index)


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    return load_sample("ETH/USDT", "1h", "2024-01-01", "2024-04-30")
