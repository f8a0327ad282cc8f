"""Point in time by construction: an agent cannot reach a bar after its snapshot's time, however it tries.

An adversarial agent (below) tries every way in: the snapshot's public and private attributes, every array it
returns and their `.base`, the DataFrames it returns and the arrays under them, the tape behind the snapshot and
everything it holds, followed recursively through instance attributes, containers and array bases. At every
bar, nothing it reaches may hold a bar time after the decision, nor a price that only a later bar carries.

The ML agent is held to the same rule: the model it wraps is asked to predict from feature rows up to the
snapshot's bar and never later ones.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import numpy as np
import pandas as pd

from arena_lib.agents.base import AccountView
from arena_lib.agents.model_agent import ModelAgent
from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Decision
from arena_lib.data.history import load_market
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.engine.loop import run_replay

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _reachable(root: object, limit: int = 20_000) -> Iterator[object]:
    """Every object reachable from `root` through instance data: attributes (slots and __dict__), containers,
    numpy bases, pandas internals. Classes, modules and functions are not followed (they lead everywhere)."""
    seen: set[int] = set()
    stack = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, type(gc), str, bytes, int, float, bool)) or callable(obj):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, np.ndarray):
            if obj.base is not None:
                stack.append(obj.base)
            continue
        if isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
            stack.append(obj.to_numpy())
            stack.extend(gc.get_referents(obj))
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                stack.append(getattr(obj, name))
        if hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


class _Peeker:
    """TEST DOUBLE: an adversarial agent. Each bar it gathers everything it can reach and records the latest bar
    open time and the set of prices it found, then holds."""

    name = "peeker"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, set[float]]] = []  # (decision time, latest time found, prices found)

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
        found: list[object] = [snapshot]
        for sym in snapshot.symbols:
            found += [snapshot.closes(sym), snapshot.window(sym), snapshot.ohlcv(sym), snapshot.times(sym)]
            found += [snapshot.resampled(sym, "4h"), snapshot.funding_history(sym)]
        for attr in dir(snapshot):
            with contextlib.suppress(Exception):
                found.append(getattr(snapshot, attr))
        latest, prices = 0, set()
        for obj in (o for root in found for o in _reachable(root)):
            if isinstance(obj, np.ndarray) and obj.dtype == np.int64 and obj.size:
                latest = max(latest, int(obj.max()))
            elif isinstance(obj, np.ndarray) and obj.dtype == np.float64:
                prices.update(obj[np.isfinite(obj)].ravel().tolist())
            elif isinstance(obj, pd.DatetimeIndex) and len(obj):
                latest = max(latest, int(obj.as_unit("ns").asi8.max()))
        self.seen.append((snapshot.timestamp_ns, latest, prices))
        return []


def test_an_adversarial_agent_finds_nothing_after_its_snapshot() -> None:
    market = load_market(SYMBOLS, "1h", "2025-03-01", "2025-03-03")
    peeker = _Peeker()
    run_replay([peeker], market, BacktestConfig(symbols=SYMBOLS))

    assert len(peeker.seen) == market.n_bars
    closes = market.close_times_ns
    for i, (t, latest, prices) in enumerate(peeker.seen):
        assert t == closes[i]
        # bar open times are before the decision; a funding settlement may be at it (known at the close), not after
        assert latest <= t, f"bar {i}: reached a time {pd.Timestamp(latest, tz='UTC')} after the decision at {t}"
        later = {x for a in (market.open, market.high, market.low, market.close) for x in a[i + 1 :].ravel().tolist()}
        known = {
            x for a in (market.open, market.high, market.low, market.close, market.volume) for x in a[: i + 1].ravel()
        }
        leaked = prices & (later - known - set(market.funding.ravel().tolist()))
        assert not leaked, f"bar {i}: reached prices of later bars: {sorted(leaked)[:5]}"
        assert latest >= int(market.times[i])  # and it did see everything up to now


def test_a_snapshot_keeps_its_time_while_the_tape_grows() -> None:
    market = load_market(SYMBOLS, "1h", "2025-03-01", "2025-03-02")
    kept: list[MarketSnapshot] = []

    class Keeper:
        name = "keeper"

        def decide(self, snapshot: MarketSnapshot, account: AccountView) -> list[Decision]:
            kept.append(snapshot)
            return []

    run_replay([Keeper()], market, BacktestConfig(symbols=SYMBOLS))
    first = kept[0]
    assert first.bar_count("BTC/USDT") == 1
    assert first.closes("BTC/USDT").tolist() == [market.close[0, 0]]
    assert first.ohlcv("BTC/USDT").index[-1] == market.index()[0]


class _SpyModel:
    """TEST DOUBLE: a 'model' that records the latest feature row time it is asked about and predicts 0.6."""

    features = ("ret_1", "rsi_14")
    task = "classification"

    def __init__(self) -> None:
        self.asked: list[pd.Timestamp] = []

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.asked.append(pd.DatetimeIndex(X.index.get_level_values(0)).max())
        return np.full(len(X), 0.6)


def test_the_model_agent_predicts_from_rows_up_to_its_snapshot_only() -> None:
    market = load_market(SYMBOLS, "1h", "2025-03-01", "2025-03-03")
    model = _SpyModel()
    agent = ModelAgent(model, name="spy", fraction=0.3)
    batch = ModelAgent(_SpyModel(), name="spy", fraction=0.3)
    config = BacktestConfig(symbols=SYMBOLS)
    step = run_replay([agent], market, config)["spy"]

    assert len(model.asked) == market.n_bars
    for i, latest in enumerate(model.asked):
        assert latest == market.index()[i], f"bar {i}: the model saw a row at {latest}"
    from arena_lib import backtest

    batched = backtest(batch, market, config, path="batch")
    pd.testing.assert_frame_equal(step.fills, batched.fills)
    assert step.equity.tolist() == batched.equity.tolist()
