"""Shared pieces of the arena integration tests: configs, a scripted trading desk on the loopback LLM server, stores.

Every LLM agent here talks to `tests.servers.llm.LLMServer` through the real ``openai`` / ``anthropic`` SDKs. The
server's answers are TEST FIXTURES written below (a `Desk` routes each request, by its model name, to a scripted
behaviour that reads the prompt and answers), never a language model's output.

The market is the bundled real sample: BTC/USDT and ETH/USDT hourly bars of 2025-03-01 (25 bars, with the
arena's 300-bar warm-up before them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from arena_lib.agents.llm.cache import ResponseCache
from arena_lib.agents.llm.config import LLMAgentConfig
from arena_lib.arena.config import ArenaConfig, RoundSettings
from arena_lib.arena.store import ArenaStore
from arena_lib.core.config import BacktestConfig, RiskLimits
from arena_lib.core.spec import AgentSpec
from tests.servers.llm import LLMServer, Reply, Script

SYMBOLS = ("BTC/USDT", "ETH/USDT")
START, END = "2025-03-01", "2025-03-02"
WINDOW_BARS = 25  # hourly bars from 2025-03-01 00:00 to 2025-03-02 00:00, both included
KEY_ENV = "TEST_KEY"
KEY = "sk-test-arena-0123456789"
ENV = {KEY_ENV: KEY}
QUANT = AgentSpec("sma_cross", {"fast": 5, "slow": 20, "fraction": 0.5})

# Columns that name a run, a database row or a wall-clock measurement: everything else must replay identically.
VOLATILE = ("run_id", "id", "latency_s", "wall_s", "wall_started")


# -- configs ---------------------------------------------------------------------------------------------------


def llm_config(server: LLMServer, name: str, provider: str = "openai", **overrides: Any) -> LLMAgentConfig:
    """An LLM contestant on the loopback server; its model id is its name, so the `Desk` can route by model."""
    base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    fields: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "model": name,
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "timeout_s": 10.0,
    }
    return LLMAgentConfig(**{**fields, **overrides})


def arena_config(
    *llm: LLMAgentConfig,
    quant: tuple[AgentSpec, ...] = (QUANT,),
    deadline_s: float = 10.0,
    bars_per_round: int = 1,
    end: str = END,
    risk: RiskLimits | None = None,
) -> ArenaConfig:
    """The test arena: BTC and ETH hourly from 2025-03-01, no reversals (the arena default), given contestants."""
    return ArenaConfig(
        market=BacktestConfig(
            symbols=SYMBOLS,
            timeframe="1h",
            start=START,
            end=end,
            risk=risk or RiskLimits(allow_reversal=False),
        ),
        rounds=RoundSettings(deadline_s=deadline_s, bars_per_round=bars_per_round),
        quant=quant,
        llm=llm,
    )


# -- reading a prompt the way a model would ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One completion request as the server received it: the model asked for and the prompt texts."""

    model: str
    system: str
    user: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Request:
        """Both wire shapes: OpenAI's system message, Anthropic's top-level `system`."""
        system = body.get("system") if isinstance(body.get("system"), str) else ""
        user = ""
        for message in body.get("messages") or []:
            content = message.get("content")
            text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content or [])
            if message.get("role") == "system":
                system = text
            elif message.get("role") == "user":
                user = text
        return cls(str(body.get("model")), str(system), user)

    @property
    def invocation(self) -> int:
        """The prompt's invocation number: the round number + 1."""
        return prompt_invocation(self.user)

    def price(self, coin: str) -> float:
        return prompt_price(self.user, coin)

    def holds(self, coin: str) -> bool:
        """Whether the account section lists an open position in `coin`."""
        return re.search(rf"^- {coin} (long|short):", self.user, re.MULTILINE) is not None


def prompt_price(user: str, coin: str) -> float:
    """The `current_price` the prompt shows for `coin`."""
    m = re.search(rf"ALL {coin} DATA\ncurrent_price = ([0-9.eE+-]+),", user)
    if m is None:
        raise AssertionError(f"no current_price for {coin} in the prompt")
    return float(m.group(1))


def prompt_invocation(user: str) -> int:
    m = re.search(r"invocation #(\d+)\.", user)
    if m is None:
        raise AssertionError("no invocation number in the prompt")
    return int(m.group(1))


def market_section(user: str) -> str:
    """The part of a user prompt that depends on the snapshot only (not on the account)."""
    start = user.index("CURRENT MARKET STATE FOR ALL COINS")
    return user[start : user.index("HERE IS YOUR ACCOUNT INFORMATION")]


# -- answers ----------------------------------------------------------------------------------------------------


def coin(
    name: str,
    signal: str = "hold",
    quantity: float = 0.0,
    leverage: float = 1.0,
    profit_target: float | None = None,
    stop_loss: float | None = None,
    invalidation: str = "",
    confidence: float | None = 0.5,
    risk_usd: float | None = None,
    justification: str = "scripted test answer",
) -> dict[str, Any]:
    """One coin's decision in the answer format the system prompt asks for."""
    return {
        "coin": name,
        "signal": signal,
        "quantity": quantity,
        "leverage": leverage,
        "profit_target": profit_target,
        "stop_loss": stop_loss,
        "invalidation_condition": invalidation,
        "confidence": confidence,
        "risk_usd": risk_usd,
        "justification": justification,
    }


def answer(*decisions: dict[str, Any]) -> dict[str, Any]:
    return {"decisions": list(decisions)}


Behaviour = Callable[[Request], Reply]


def buyer(
    *,
    entry: str = "buy_to_enter",
    quantity: float = 0.02,
    leverage: float = 2.0,
    target_pct: float | None = 5.0,
    stop_pct: float | None = 5.0,
    invalidation: str = "",
    when_open: str = "hold",
    latency_s: float = 0.0,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> Behaviour:
    """Enter BTC (long by default) with a target and a stop around the price read from the prompt, hold ETH.

    `entry` is the BTC signal while flat; `when_open` the BTC signal while a BTC position is open ("hold", or an
    entry signal to test the engine's rules against it).
    """

    def respond(req: Request) -> Reply:
        price = req.price("BTC")
        signal = when_open if req.holds("BTC") else entry
        if signal == "hold":
            btc = coin("BTC", justification="keep the position")
        else:
            side = 1 if signal == "buy_to_enter" else -1
            btc = coin(
                "BTC",
                signal,
                quantity=quantity,
                leverage=leverage,
                profit_target=None if target_pct is None else round(price * (1 + side * target_pct / 100), 2),
                stop_loss=None if stop_pct is None else round(price * (1 - side * stop_pct / 100), 2),
                invalidation=invalidation,
                confidence=0.7,
                risk_usd=10.0,
                justification=f"BTC at {price:g}: scripted entry",
            )
        return Reply(
            data=answer(btc, coin("ETH")),
            latency_s=latency_s,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    return respond


def holder(latency_s: float = 0.0) -> Behaviour:
    """Hold every coin (after `latency_s`)."""
    return lambda req: Reply(data=answer(coin("BTC"), coin("ETH")), latency_s=latency_s)


def always(reply: Reply) -> Behaviour:
    return lambda req: reply


@dataclass
class Desk:
    """The loopback server's responder: routes each request to the behaviour scripted for its model."""

    routes: dict[str, Behaviour] = field(default_factory=dict)

    def __call__(self, body: dict[str, Any]) -> Reply:
        req = Request.from_body(body)
        if req.model not in self.routes:
            raise LookupError(f"no behaviour scripted for model {req.model!r}")
        return self.routes[req.model](req)


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
def server(desk: Desk) -> Iterator[LLMServer]:
    """The loopback OpenAI/Anthropic server, answering from `desk`, checking the key the SDKs send."""
    with LLMServer(Script(desk), api_key=KEY) as srv:
        yield srv
        assert srv.errors == [], f"loopback fixture misuse: {srv.errors}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArenaStore]:
    st = ArenaStore(f"sqlite:///{tmp_path}/arena.db")
    yield st
    st.engine.dispose()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    c = ResponseCache(f"sqlite:///{tmp_path}/cache.db")
    yield c
    c.engine.dispose()


# -- comparing ledgers ------------------------------------------------------------------------------------------


def ledger(store: ArenaStore, run_id: str) -> dict[str, pd.DataFrame]:
    """A run's decisions, orders, fills, equity, accounts and positions, with run ids and wall-clock columns
    removed (ids that embed the run id are rewritten), so two runs of the same window compare equal."""
    from arena_lib.arena import schema as t

    frames = {
        "decisions": store.decisions_frame(run_id),
        "orders": store.frame(t.OrderRow, run_id, order=("agent", "round_no", "symbol")),
        "fills": store.fills_frame(run_id),
        "equity": store.equity_frame(run_id),
        "accounts": store.frame(t.AccountRow, run_id, order=("agent",)),
        "positions": store.frame(t.PositionRow, run_id, order=("agent", "symbol")),
    }
    out = {}
    for name, frame in frames.items():
        frame = frame.drop(columns=[c for c in VOLATILE if c in frame.columns])
        for col in ("order_id", "fill_id"):
            if col in frame.columns:
                frame[col] = frame[col].str.replace(run_id, "<run>", regex=False)
        if name == "decisions":
            frame = frame.sort_values(["round_no", "agent", "symbol", "source"], kind="stable")
        out[name] = frame.reset_index(drop=True)
    return out


def assert_same_ledger(store_a: ArenaStore, run_a: str, store_b: ArenaStore, run_b: str) -> None:
    a, b = ledger(store_a, run_a), ledger(store_b, run_b)
    for name in a:
        assert len(a[name]) > 0 or name == "positions", f"{name}: the run wrote nothing to compare"
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
