"""The nof1-style prompt: the templates' layout, versions, determinism and byte-stable rendering.

The numbers it shows come from `arena_lib.agents.llm.context` (tested in `test_context.py`)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from arena_lib.agents.base import AccountView
from arena_lib.agents.llm.context import CONDITION_FIELDS, coin_context
from arena_lib.agents.llm.prompt import (
    AgentStats,
    ExitPlan,
    Prompt,
    PromptBuilder,
    available_versions,
    format_number,
)
from arena_lib.core.types import Position
from arena_lib.data.market import MarketData
from arena_lib.data.snapshot import MarketSnapshot


def _account(positions: dict[str, Position] | None = None) -> AccountView:
    return AccountView(cash=8950.0, equity=10123.45, initial_cash=10000.0, positions=positions or {})


def _build(builder: PromptBuilder, snap: MarketSnapshot, account: AccountView | None = None, **kw: object) -> Prompt:
    args: dict[str, object] = {
        "symbols": snap.symbols,
        "started_at_ns": int(min(snap.times(s)[0] for s in snap.symbols if snap.bar_count(s))),
        "invocation": 7,
        "max_leverage": 10.0,
    }
    args.update(kw)
    return builder.build(snap, account or _account(), **args)  # type: ignore[arg-type]


def _truncated(market: MarketData, i: int) -> MarketData:
    """The same market cut after bar row `i` (as if the data ended there)."""
    frames = {s: market.series[s].frame.iloc[: int(market.position[i, j]) + 1] for j, s in enumerate(market.symbols)}
    end = pd.Timestamp(int(market.times[i]) + market.bar_ns, tz="UTC")
    funding = {s: r[r.index <= end] for s, r in market.funding_series.items()}
    return MarketData.from_frames(frames, market.timeframe, funding)


def test_prompt_is_point_in_time(market: MarketData) -> None:
    """The prompt at bar i is identical whether the data ends at i or extends further."""
    builder = PromptBuilder("v1")
    for i in (57, 130, 190):
        full = _build(builder, MarketSnapshot(market, i))
        cut = _build(builder, MarketSnapshot(_truncated(market, i), i))
        assert cut.user == full.user
        assert cut.sha256 == full.sha256


def test_user_prompt_layout(market: MarketData) -> None:
    snap = MarketSnapshot(market, 200)
    user = _build(PromptBuilder("v1"), snap).user
    minutes = (snap.timestamp_ns - int(market.times[0])) // 60_000_000_000
    assert user.startswith(f"It has been {minutes} minutes since you started trading.")
    assert "Current time: 2024-03-09 09:00:00 UTC; invocation #7" in user
    assert "ALL OF THE PRICE OR SIGNAL DATA BELOW IS ORDERED: OLDEST → NEWEST" in user
    assert user.index("ALL BTC DATA") < user.index("ALL ETH DATA") < user.index("HERE IS YOUR ACCOUNT")
    ctx = coin_context(snap, "BTC/USDT")
    assert ctx is not None
    closes = "[" + ", ".join(format_number(x, 7) for x in ctx.closes) + "]"
    assert f"Close prices: {closes}" in user
    assert f"current_price = {format_number(ctx.price, 7)}" in user
    assert (
        f"20-Period EMA: {format_number(ctx.ema20_4h, 7)} vs. 50-Period EMA: {format_number(ctx.ema50_4h, 7)}" in user
    )
    assert f"Funding Rate: {format_number(ctx.funding_rate, 4)}" in user
    assert "Open Interest: not available" in user
    assert "Current Total Return (percent): 1.23%" in user
    assert "Available Cash: 8950.00" in user
    assert "Current Account Value: 10123.45" in user
    assert "Current live positions & performance: none" in user
    assert "Sharpe" not in user  # v1 shows the record only when it is given
    assert re.search(r"\bnan\b", user, re.IGNORECASE) is None


def test_account_section_shows_positions_and_exit_plans(market: MarketData) -> None:
    snap = MarketSnapshot(market, 200)
    eth = Position("ETH/USDT", 1.5, 3500.0, 5.0, 1050.0, 0, 2820.5, stop_loss=3300.0, take_profit=3900.0)
    btc = Position("BTC/USDT", -0.02, 70000.0, 3.0, 466.7, 0, 92000.0, stop_loss=71000.0, take_profit=60000.0)
    plans = {"ETH/USDT": ExitPlan(3950.0, 3300.0, "close_4h < ema20_4h")}
    user = _build(PromptBuilder("v1"), snap, _account({"ETH/USDT": eth, "BTC/USDT": btc}), exit_plans=plans).user
    price = snap.close("ETH/USDT")
    assert (
        f"- ETH long: quantity = 1.5, entry_price = 3500, current_price = {format_number(price, 7)}, "
        f"unrealized_pnl = {1.5 * (price - 3500.0):.2f}, leverage = 5, liquidation_price = 2820.5"
    ) in user
    assert 'exit_plan: profit_target = 3950, stop_loss = 3300, invalidation_condition = "close_4h < ema20_4h"' in user
    # no stored plan: the position's own levels, and no condition
    assert "- BTC short: quantity = -0.02, entry_price = 70000" in user
    assert "exit_plan: profit_target = 60000, stop_loss = 71000, invalidation_condition = none" in user
    assert user.index("- BTC short") < user.index("- ETH long")  # the prompt's coin order


def test_system_prompt_states_the_rules(market: MarketData) -> None:
    system = _build(PromptBuilder("v1"), MarketSnapshot(market, 200), max_leverage=20).system
    for signal in ("buy_to_enter", "sell_to_enter", "hold", "close_position"):
        assert signal in system
    assert "only allowed signals for that coin are hold and close_position" in system
    assert "leverage is a number from 1 to 20" in system
    assert "only information you have" in system
    for name in CONDITION_FIELDS:
        assert f"- {name}: " in system
    example = re.search(r"^\{\"decisions\".*\}$", system, re.MULTILINE)
    assert example is not None
    keys = list(json.loads(example.group(0))["decisions"][0])
    assert keys == [
        "coin", "signal", "quantity", "leverage", "profit_target", "stop_loss", "invalidation_condition",
        "confidence", "risk_usd", "justification",
    ]  # fmt: skip
    custom = _build(
        PromptBuilder("v1"), MarketSnapshot(market, 200), condition_fields={"price": "last close", "x": "y"}
    ).system
    assert "- x: y" in custom
    assert "- ema50_4h" not in custom


def test_deterministic_and_versioned(market: MarketData) -> None:
    snap = MarketSnapshot(market, 180)
    a = _build(PromptBuilder("v1"), snap)
    b = _build(PromptBuilder("v1"), MarketSnapshot(market, 180))
    assert a == b
    assert len(a.sha256) == 64
    v2 = _build(PromptBuilder("v2"), snap)
    assert v2.sha256 != a.sha256
    assert _build(PromptBuilder("v1"), snap, invocation=8).sha256 != a.sha256
    assert a.messages() == [{"role": "system", "content": a.system}, {"role": "user", "content": a.user}]


def test_stats_in_v1_only_when_given_and_always_in_v2(market: MarketData) -> None:
    snap = MarketSnapshot(market, 180)
    stats = AgentStats(sharpe=-0.42, win_rate=0.375, trades=8, return_pct=-3.1)
    v1 = _build(PromptBuilder("v1"), snap, stats=stats).user
    assert "Sharpe Ratio: -0.42" in v1
    assert "Win Rate: 37.5% over 8 closed trades" in v1
    v2 = _build(PromptBuilder("v2"), snap, stats=stats).user
    assert "Sharpe Ratio: -0.42" in v2
    assert "Feedback: your risk-adjusted return is negative" in v2
    fresh = _build(PromptBuilder("v2"), snap).user
    assert "Sharpe Ratio: n/a" in fresh
    assert "Feedback: you have no closed trades yet" in fresh
    assert "PERFORMANCE FEEDBACK" in _build(PromptBuilder("v2"), snap).system


def test_coin_with_too_little_history_is_omitted_with_a_note(market: MarketData) -> None:
    late = market.series["ETH/USDT"].frame.iloc[150:]  # ETH starts 150 hours later than BTC
    frames = {"BTC/USDT": market.series["BTC/USDT"].frame, "ETH/USDT": late}
    mixed = MarketData.from_frames(frames, "1h", dict(market.funding_series))
    snap = MarketSnapshot(mixed, 170)
    user = _build(PromptBuilder("v1"), snap).user
    assert "ALL BTC DATA" in user
    assert "ALL ETH DATA" not in user
    assert "ETH: no data yet (21 closed 1h bars, 50 needed for the indicators); do not trade it." in user


def test_bad_input_is_a_clear_error(market: MarketData) -> None:
    snap = MarketSnapshot(market, 100)
    with pytest.raises(ValueError, match=r"unknown prompt version 'v0'; available versions: v1, v2"):
        PromptBuilder("v0")
    assert {"v1", "v2"} <= set(available_versions())
    builder = PromptBuilder("v1")
    with pytest.raises(ValueError, match="not in this snapshot"):
        _build(builder, snap, symbols=("DOGE/USDT",))
    with pytest.raises(ValueError, match="after the snapshot time"):
        _build(builder, snap, started_at_ns=snap.timestamp_ns + 1)
    with pytest.raises(ValueError, match="max_leverage"):
        _build(builder, snap, max_leverage=0.5)
    with pytest.raises(ValueError, match="at least one symbol"):
        _build(builder, snap, symbols=())


@pytest.mark.parametrize(
    ("value", "sig", "text"),
    [
        (61501.11, 7, "61501.11"),
        (61501.11, 6, "61501.1"),
        (0.000533, 4, "0.000533"),
        (1234567.8, 6, "1234568"),
        (-0.0, 6, "0"),
        (3500.0, 7, "3500"),
        (-2.39749123, 6, "-2.39749"),
        (float("nan"), 6, "n/a"),
        (None, 6, "n/a"),
    ],
)
def test_format_number(value: float | None, sig: int, text: str) -> None:
    assert format_number(value, sig) == text
