"""Exchange minimums: an entry smaller than the exchange's minimum order notional or amount is never filled.

The rule is `rules.entry_size` (numba, shared by `SimBroker` and the batch kernel); the minimums come from
`ExecutionConfig` (Binance USDⓈ-M perpetual MIN_NOTIONAL / LOT_SIZE minQty by default, 5 USDT for other symbols)
and, for paper and live runs, from ccxt markets (`min_notional_from_markets`).

The regression case is `make demo`'s arena replay (configs/arena.demo.yaml): in round 0 the local SmolLM2 agent
asked for BTC, ETH and SOL longs of 100% of equity each (quantities of 1 BTC at 2.5x and 125 ETH / 125 SOL at 1.5x,
all clamped to 100%). The BTC entry took the whole account and left 1.45e-12 USDT of cash, and the simulator filled
8.39e-16 ETH (2.1e-12 USDT of notional, "clamped to free margin"): a dust position no exchange would fill, which
then blocked every later ETH entry (pyramiding, or a reversal the config forbids). The agent below replays those
decisions (the LLM itself is not needed: the fills depend only on the decisions).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.baselines import BuyAndHold, SmaCross
from arena_lib.arena.config import load_arena_config
from arena_lib.arena.session import load_arena_market
from arena_lib.core.config import (
    BINANCE_PERP_MIN_AMOUNT,
    BINANCE_PERP_MIN_NOTIONAL,
    DEFAULT_MIN_NOTIONAL,
    BacktestConfig,
    ExecutionConfig,
)
from arena_lib.core.types import Action, Decision, FillKind, Order, SizeUnit
from arena_lib.data.ccxt_source import min_amount_from_markets, min_notional_from_markets
from arena_lib.data.market import MarketData
from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.engine import rules
from arena_lib.engine.broker import SimBroker
from arena_lib.engine.driver import RoundPolicy
from arena_lib.engine.kernel import entry_minimums, run_batch
from arena_lib.engine.loop import run_replay
from arena_lib.engine.portfolio import Portfolio
from arena_lib.engine.results import BacktestResult
from arena_lib.engine.rules import (
    CAP_BELOW_MIN_AMOUNT,
    CAP_BELOW_MIN_NOTIONAL,
    CAP_BELOW_MINIMUM,
    CAP_FREE_MARGIN,
    CAP_NO_CAPACITY,
    entry_size,
)

REPO = Path(__file__).resolve().parents[2]
FEE = 0.0005
NO_MINIMUMS = ExecutionConfig(min_notional=0.0, min_amount=0.0)


def _size(
    fraction: float,
    cash: float,
    price: float,
    min_notional: float,
    min_amount: float = 0.0,
    equity: float = 10_000.0,
    leverage: float = 1.0,
) -> tuple[float, int]:
    qty, flags = entry_size(fraction, equity, cash, price, leverage, FEE, 0.0, 3.0, 5.0, 0.0, min_notional, min_amount)
    return float(qty), int(flags)


# ---------------------------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------------------------
def test_an_entry_above_the_minimum_fills_unchanged() -> None:
    # 0.01 * 10_000 / (1 + 0.0005) = 99.95 USDT of notional
    assert _size(0.01, 10_000.0, 100.0, 20.0) == _size(0.01, 10_000.0, 100.0, 0.0)
    qty, flags = _size(0.01, 10_000.0, 100.0, 20.0)
    assert flags == 0
    assert qty * 100.0 == pytest.approx(100.0 / 1.0005, rel=1e-12)


def test_an_entry_below_the_minimum_sizes_nothing() -> None:
    assert _size(0.01, 10_000.0, 100.0, 100.0) == (0.0, CAP_BELOW_MIN_NOTIONAL)  # 99.95 < 100


def test_an_entry_exactly_at_the_minimum_fills() -> None:
    notional = 0.01 * 10_000.0 / (1.0 + FEE)
    qty, flags = _size(0.01, 10_000.0, 100.0, notional)
    assert flags == 0
    assert qty == notional / 100.0
    assert _size(0.01, 10_000.0, 100.0, math.nextafter(notional, math.inf)) == (0.0, CAP_BELOW_MIN_NOTIONAL)


def test_the_minimum_applies_to_the_notional_left_after_the_caps() -> None:
    # the demo case: 100% asked, 1.45e-12 USDT of free cash left -> 2.2e-12 USDT at 1.5x: dust
    qty, flags = _size(1.0, 1.4502520614602292e-12, 2526.275154, 20.0, leverage=1.5)
    assert qty == 0.0
    assert flags == CAP_FREE_MARGIN | CAP_BELOW_MIN_NOTIONAL
    assert rules.describe_caps(flags, 20.0) == (
        "clamped to free margin; rejected at fill: below the minimum order notional of 20 USDT"
    )
    # without a minimum it was filled: 8.4e-16 ETH
    dust, dust_flags = _size(1.0, 1.4502520614602292e-12, 2526.275154, 0.0, leverage=1.5)
    assert dust_flags == CAP_FREE_MARGIN
    assert 0.0 < dust < 1e-15
    # free cash above the minimum still fills, clamped
    qty, flags = _size(1.0, 50.0, 2526.275154, 20.0, leverage=1.5)
    assert flags == CAP_FREE_MARGIN
    assert qty * 2526.275154 == pytest.approx(50.0 / (1 / 1.5 + FEE), rel=1e-12)


def test_no_capacity_stays_a_no_capacity_rejection() -> None:
    assert _size(0.5, 0.0, 100.0, 20.0) == (0.0, CAP_FREE_MARGIN | CAP_NO_CAPACITY)


def test_the_minimum_amount() -> None:
    # 99.95 USDT at 100 = 0.9995 units
    assert _size(0.01, 10_000.0, 100.0, 5.0, min_amount=1.0) == (0.0, CAP_BELOW_MIN_AMOUNT)
    at = 0.01 * 10_000.0 / (1.0 + FEE) / 100.0  # exactly at the minimum: filled
    assert _size(0.01, 10_000.0, 100.0, 5.0, min_amount=at) == (at, 0)
    assert _size(0.01, 10_000.0, 100.0, 5.0, min_amount=math.nextafter(at, 1.0)) == (0.0, CAP_BELOW_MIN_AMOUNT)
    assert (
        rules.describe_caps(CAP_BELOW_MIN_AMOUNT, 5.0, 1.0) == "rejected at fill: below the minimum order amount of 1"
    )
    assert CAP_BELOW_MINIMUM == CAP_BELOW_MIN_NOTIONAL | CAP_BELOW_MIN_AMOUNT


def test_describe_caps_without_the_values() -> None:
    assert rules.describe_caps(CAP_BELOW_MIN_NOTIONAL) == "rejected at fill: below the minimum order notional"


# ---------------------------------------------------------------------------------------------------------------
# the config
# ---------------------------------------------------------------------------------------------------------------
def test_default_minimums_are_binance_perpetuals_with_a_5_usdt_fallback() -> None:
    ex = ExecutionConfig()
    assert ex.min_notional_for("BTC/USDT") == 100.0
    assert ex.min_notional_for("ETH/USDT") == 20.0
    assert ex.min_notional_for("ETH/USDT:USDT") == 20.0  # ccxt's perpetual name
    assert ex.min_notional_for("SOL/USDT") == DEFAULT_MIN_NOTIONAL == 5.0
    assert ex.min_amount_for("BTC/USDT") == 0.001
    assert ex.min_amount_for("SOL/USDT") == 0.0


def test_per_symbol_dict_scalar_and_fallback() -> None:
    ex = ExecutionConfig(min_notional={"BTC/USDT": 50.0}, default_min_notional=7.0, min_amount=0.5)
    assert ex.min_notional_for("BTC/USDT") == 50.0
    assert ex.min_notional_for("ETH/USDT") == 7.0
    assert ex.min_amount_for("ANY/USDT") == 0.5
    assert ExecutionConfig(min_notional=12).min_notional_for("BTC/USDT") == 12.0
    notional, amount = entry_minimums(BacktestConfig(execution=ex), ("BTC/USDT", "ETH/USDT"))
    assert notional.dtype == np.float64
    assert notional.tolist() == [50.0, 7.0]
    assert amount.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, {"BTC/USDT": -5.0}])
def test_minimums_must_be_finite_and_non_negative(bad: Any) -> None:
    with pytest.raises(ValueError, match="minimums must be finite"):
        ExecutionConfig(min_notional=bad)


def test_minimums_load_from_yaml(tmp_path: Path) -> None:
    from arena_lib.core.config import load_config

    path = tmp_path / "bt.yaml"
    path.write_text("execution:\n  min_notional: {BTC/USDT: 10, ETH/USDT: 2}\n  default_min_notional: 1\n")
    ex = load_config(path).execution
    assert (ex.min_notional_for("BTC/USDT"), ex.min_notional_for("SOL/USDT")) == (10.0, 1.0)
    assert ex.min_amount == BINANCE_PERP_MIN_AMOUNT  # not given: the default


# ---------------------------------------------------------------------------------------------------------------
# ccxt markets
# ---------------------------------------------------------------------------------------------------------------
MARKETS: dict[str, Any] = {
    # as ccxt's binance loads them (limits parsed from exchangeInfo filters); spot and perpetual side by side
    "BTC/USDT": {"symbol": "BTC/USDT", "limits": {"amount": {"min": 1e-05}, "cost": {"min": 5.0}}},
    "BTC/USDT:USDT": {"symbol": "BTC/USDT:USDT", "limits": {"amount": {"min": 0.001}, "cost": {"min": 100.0}}},
    "ETH/USDT:USDT": {"symbol": "ETH/USDT:USDT", "limits": {"amount": {"min": 0.001}, "cost": {"min": 20.0}}},
    "XRP/USDT": {"symbol": "XRP/USDT", "limits": {"amount": {"min": 0.1}, "cost": {"min": None}}},
    "DOGE/USDT:USDT": {"symbol": "DOGE/USDT:USDT", "limits": {}},
}


def test_minimums_from_ccxt_markets() -> None:
    symbols = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "DOGE/USDT", "SOL/USDT", "BTC/USDT:USDT"]
    # the perpetual is preferred to the spot pair; no minimum published or no market: left out (the fallback applies)
    assert min_notional_from_markets(MARKETS, symbols) == {
        "BTC/USDT": 100.0,
        "ETH/USDT": 20.0,
        "BTC/USDT:USDT": 100.0,
    }
    assert min_amount_from_markets(MARKETS, symbols) == {
        "BTC/USDT": 0.001,
        "ETH/USDT": 0.001,
        "XRP/USDT": 0.1,
        "BTC/USDT:USDT": 0.001,
    }
    spot_only = {k: v for k, v in MARKETS.items() if ":" not in k}
    assert min_notional_from_markets(spot_only, ["BTC/USDT"]) == {"BTC/USDT": 5.0}
    ex = ExecutionConfig(min_notional=min_notional_from_markets(MARKETS, symbols))
    assert ex.min_notional_for("XRP/USDT") == DEFAULT_MIN_NOTIONAL


def test_defaults_equal_what_ccxt_reads_from_binance_perpetual_filters() -> None:
    """The defaults are the repo's Binance fixture values: real ccxt, the loopback server's /fapi/v1/exchangeInfo."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from arena_lib.data.ingest import make_funding_exchange
    from tests.servers.binance import BinanceSpotServer

    with BinanceSpotServer() as server:
        exchange = make_funding_exchange("binanceusdm", server.url, timeout=2_000)
        exchange.load_markets()
        symbols = ["BTC/USDT", "ETH/USDT"]
        assert min_notional_from_markets(exchange.markets, symbols) == BINANCE_PERP_MIN_NOTIONAL
        assert min_amount_from_markets(exchange.markets, symbols) == BINANCE_PERP_MIN_AMOUNT


# ---------------------------------------------------------------------------------------------------------------
# SimBroker
# ---------------------------------------------------------------------------------------------------------------
def _entry(symbol: str, fraction: float, leverage: float = 1.0) -> Order:
    return Order(f"run/a/0/{symbol}", symbol, Action.ENTER_LONG, 0, fraction=fraction, leverage=leverage)


def test_simbroker_rejects_an_entry_below_the_minimum_with_the_reason() -> None:
    symbols = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    broker = SimBroker(BacktestConfig(symbols=symbols), symbols)
    marks = [60_000.0, 3_000.0, 150.0]
    fills: list = []
    pf = Portfolio.start(10_000.0)
    # 0.008 of 10_000 is 79.96 USDT of notional: below BTC's 100, above ETH's 20 and SOL's 5
    for j, sym in enumerate(symbols):
        pf = broker.execute(_entry(sym, 0.008), j, marks[j], 1, pf, list(marks), fills)
    assert [f.symbol for f in fills] == ["ETH/USDT", "SOL/USDT"]
    assert all(f.kind is FillKind.ENTRY and f.quantity * f.price >= 20.0 for f in fills)
    assert "BTC/USDT" not in pf.positions
    [rejection] = broker.rejections
    assert (rejection.order_id, rejection.symbol, rejection.timestamp) == ("run/a/0/BTC/USDT", "BTC/USDT", 1)
    assert rejection.reason == "rejected at fill: below the minimum order notional of 100 USDT"


def test_simbroker_rejects_below_the_minimum_amount() -> None:
    config = BacktestConfig(symbols=("BTC/USDT",), execution=ExecutionConfig(min_amount={"BTC/USDT": 1.0}))
    broker = SimBroker(config, config.symbols)
    fills: list = []
    pf = broker.execute(_entry("BTC/USDT", 0.5), 0, 60_000.0, 1, Portfolio.start(10_000.0), [60_000.0], fills)
    assert fills == []
    assert not pf.positions
    assert broker.rejections[0].reason == "rejected at fill: below the minimum order amount of 1"


# ---------------------------------------------------------------------------------------------------------------
# the demo case
# ---------------------------------------------------------------------------------------------------------------
class _Scripted:
    """Replays fixed decisions at its first decision rounds, then holds."""

    def __init__(self, name: str, rounds: Sequence[Sequence[Decision]]) -> None:
        self.name = name
        self.rounds = list(rounds)
        self.calls = 0

    def decide(self, snapshot: MarketSnapshot, account: Any) -> list[Decision]:
        k, self.calls = self.calls, self.calls + 1
        return list(self.rounds[k]) if k < len(self.rounds) else []


def _qty(symbol: str, size: float, leverage: float) -> Decision:
    return Decision(symbol, Action.ENTER_LONG, size, SizeUnit.QUANTITY, leverage, reason="smollm2-local, round 0")


SMOLLM2_ROUND_0 = [_qty("BTC/USDT", 1.0, 2.5), _qty("ETH/USDT", 125.0, 1.5), _qty("SOL/USDT", 125.0, 1.5)]
ROUND_1 = [  # 4 bars later: close BTC, and go short ETH as sma_cross does (a reversal of the dust, if it exists)
    Decision("BTC/USDT", Action.CLOSE, 0.0),
    Decision("ETH/USDT", Action.ENTER_SHORT, 0.33),
]


def _demo_replay(execution: ExecutionConfig | None = None) -> tuple[BacktestConfig, BacktestResult]:
    arena = load_arena_config(REPO / "configs" / "arena.demo.yaml")
    if execution is not None:
        arena = dataclasses.replace(arena, market=arena.market.model_copy(update={"execution": execution}))
    market, first = load_arena_market(arena)
    agent = _Scripted("smollm2-local", [SMOLLM2_ROUND_0, ROUND_1])
    policy = RoundPolicy(bars_per_round=arena.rounds.bars_per_round)
    result = run_replay([agent], market, arena.market, first_row=first, policy=policy)["smollm2-local"]
    return arena.market, result


def test_demo_dust_case_before_the_fix() -> None:
    """With no minimums the demo's dust fill comes back exactly, and blocks the later ETH entry."""
    config, res = _demo_replay(NO_MINIMUMS)
    assert not config.risk.allow_reversal
    eth = res.fills[(res.fills["symbol"] == "ETH/USDT") & (res.fills["kind"] == "entry")]
    assert len(eth) == 1
    assert eth["timestamp"].iloc[0] == pd.Timestamp("2025-06-01T01:00", tz="UTC")
    assert 8e-16 < eth["quantity"].iloc[0] < 9e-16
    assert eth["note"].iloc[0] == "clamped to free margin"
    refused = [v for v in res.verdicts if v.decision.symbol == "ETH/USDT" and v.decision.action is Action.ENTER_SHORT]
    assert [v.approved for v in refused] == [False]
    assert "ETH/USDT" in res.open_positions


def test_demo_dust_case_is_rejected_and_no_longer_blocks_eth() -> None:
    config, res = _demo_replay()
    fills = res.fills
    entries = fills[fills["kind"] == "entry"]
    # no entry below its symbol's minimum, ever
    for sym, qty, price in entries[["symbol", "quantity", "price"]].itertuples(index=False):
        assert qty * price >= config.execution.min_notional_for(sym)
        assert qty >= config.execution.min_amount_for(sym)
    # round 0: BTC filled as before, ETH rejected at fill with the minimum as reason, SOL found no capacity
    first = entries[entries["timestamp"] == pd.Timestamp("2025-06-01T01:00", tz="UTC")]
    assert first["symbol"].tolist() == ["BTC/USDT"]
    assert first["quantity"].iloc[0] == pytest.approx(0.239010389477731, rel=1e-12)
    reasons = {r.symbol: r.reason for r in res.fill_rejections}
    assert (
        reasons["ETH/USDT"] == "clamped to free margin; rejected at fill: below the minimum order notional of 20 USDT"
    )
    # the 1.45e-12 USDT that ETH no longer takes is dust for SOL too (before the fix ETH's dust took it all)
    assert reasons["SOL/USDT"] == "clamped to free margin; rejected at fill: below the minimum order notional of 5 USDT"
    # round 1: the short is approved and fills, now that no dust position holds the symbol
    eth = entries[entries["symbol"] == "ETH/USDT"]
    assert eth["side"].tolist() == ["sell"]
    assert eth["timestamp"].iloc[0] == pd.Timestamp("2025-06-01T05:00", tz="UTC")
    assert (eth["quantity"] * eth["price"]).iloc[0] > 1_000.0
    assert res.open_positions["ETH/USDT"].quantity < 0


# ---------------------------------------------------------------------------------------------------------------
# kernel / step loop parity where the minimum binds
# ---------------------------------------------------------------------------------------------------------------
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


@pytest.fixture(scope="module")
def market() -> MarketData:
    frames = {s: load_sample(s, "1h", "2024-01-01", "2024-04-30") for s in SYMBOLS}
    return MarketData.from_frames(frames, "1h", {s: load_sample_funding(s) for s in SYMBOLS})


PARITY_CASES: dict[str, tuple[Callable[[], Any], BacktestConfig]] = {
    # 0.005 of 10k is ~50 USDT: BTC (100) always refused, ETH and SOL filled
    "small": (lambda: BuyAndHold(fraction=0.005), BacktestConfig(symbols=SYMBOLS)),
    "small_close": (
        lambda: BuyAndHold(fraction=0.005),
        BacktestConfig(symbols=SYMBOLS, execution=ExecutionConfig(fill="close")),
    ),
    # all in on every symbol: the first entry leaves cents (or less) for the next ones
    "all_in": (
        lambda: SmaCross(fast=6, slow=24, allow_short=True, fraction=1.0, leverage=2.0),
        BacktestConfig(symbols=SYMBOLS),
    ),
    "amount": (
        lambda: SmaCross(fast=6, slow=24, allow_short=True, fraction=0.3),
        BacktestConfig(symbols=SYMBOLS, execution=ExecutionConfig(min_amount={"BTC/USDT": 0.05, "SOL/USDT": 1.0})),
    ),
}


def _assert_same(step: BacktestResult, batch: BacktestResult) -> None:
    assert (step.meta["path"], batch.meta["path"]) == ("step", "batch")
    pd.testing.assert_frame_equal(step.fills, batch.fills, check_exact=True)
    assert np.array_equal(step.equity.to_numpy(), batch.equity.to_numpy())
    assert step.verdicts == batch.verdicts
    assert step.fill_rejections == batch.fill_rejections
    assert step.open_positions == batch.open_positions


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_kernel_and_step_loop_agree_where_the_minimum_binds(market: MarketData, case: str) -> None:
    make, config = PARITY_CASES[case]
    step = run_replay([make()], market, config, run_id="min")
    (name,) = step
    batch = run_batch(make(), market, config, run_id="min")
    _assert_same(step[name], batch)
    below = [r for r in step[name].fill_rejections if "below the minimum" in r.reason]
    assert below, "the case must hit the minimum"
    entries = step[name].fills[step[name].fills["kind"] == "entry"]
    assert len(entries) > 0
    ex = config.execution
    for sym, qty, price in entries[["symbol", "quantity", "price"]].itertuples(index=False):
        assert qty * price >= ex.min_notional_for(sym)
        assert qty >= ex.min_amount_for(sym)
