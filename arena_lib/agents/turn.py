"""An arena turn: what an agent answers in one round, with everything the ledger records about how.

Every agent implements `Agent.decide`. In the arena, agents that talk to a model also implement the async
`play_turn`, which returns a `Turn`: the decisions plus the prompt, the raw response, the parse problems, tokens,
cost and latency. The engine's driver times a plain agent's `decide` into a `Turn` itself, so every agent is
recorded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from arena_lib.agents.base import AccountView, Agent
from arena_lib.core.types import Decision

if TYPE_CHECKING:
    from arena_lib.data.snapshot import MarketSnapshot


@dataclass(frozen=True)
class ExitPlan:
    """The exit plan an agent gave with an entry; the engine turns it into orders and checks."""

    profit_target: float | None = None
    stop_loss: float | None = None
    invalidation_condition: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "profit_target": self.profit_target,
            "stop_loss": self.stop_loss,
            "invalidation_condition": self.invalidation_condition,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExitPlan:
        return cls(d.get("profit_target"), d.get("stop_loss"), str(d.get("invalidation_condition") or ""))


@dataclass(frozen=True)
class AgentStats:
    """An agent's own recent record, for adaptive prompts (nof1 shows each model its Sharpe)."""

    sharpe: float
    win_rate: float
    trades: int
    return_pct: float


@dataclass(frozen=True)
class ClosedPosition:
    """A position that closed since the agent last decided, and why: the agent did not see it happen (a stop or
    take-profit that filled, on the exchange or in the simulator, a liquidation, a trade made outside Arena)."""

    symbol: str
    side: str  # the position's side: long | short
    quantity: float
    exit_price: float
    realized_pnl: float  # price PnL of the closed quantity, before fees
    reason: str
    timestamp: int  # epoch ns of the fill


@dataclass(frozen=True)
class TurnContext:
    """What the runner tells an agent besides the snapshot and its account."""

    round_no: int
    started_at_ns: int  # when the run's first round was taken (market time)
    max_leverage: float
    exit_plans: Mapping[str, ExitPlan] = field(default_factory=dict)
    stats: AgentStats | None = None
    deadline: float | None = None  # time.monotonic() by which the turn must be answered (None: no deadline)
    recent_exits: tuple[ClosedPosition, ...] = ()  # positions closed since the agent's previous turn


@dataclass(frozen=True)
class DecisionNote:
    """What a model said about one decision beyond the engine's fields."""

    confidence: float | None = None
    risk_usd: float | None = None
    invalidation_condition: str = ""


@dataclass
class ModelCall:
    """One model call as the ledger keeps it: prompt, raw response (verbatim), parse outcome, usage and cost."""

    prompt_version: str
    prompt_sha: str
    system: str
    user: str
    raw: str = ""
    cache_key: str = ""
    cache_hit: bool = False
    parse_ok: bool = False
    problems: list[str] = field(default_factory=list)
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0


@dataclass
class Turn:
    """An agent's answer for one round."""

    decisions: list[Decision]
    notes: dict[str, DecisionNote] = field(default_factory=dict)
    call: ModelCall | None = None
    error: str = ""  # why the agent holds this round (deadline, exception, no valid output)
    latency_s: float = 0.0


@runtime_checkable
class TurnAgent(Agent, Protocol):
    """An agent that plays arena turns asynchronously (LLM agents)."""

    async def play_turn(self, snapshot: MarketSnapshot, account: AccountView, context: TurnContext) -> Turn: ...
