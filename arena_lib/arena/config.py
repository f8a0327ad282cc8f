"""The arena spec: market, costs and limits (a `BacktestConfig`), the contestants, and how rounds run.

```yaml
symbols: [BTC/USDT, ETH/USDT]
timeframe: 1h
start: "2025-01-01"
end: "2025-01-08"
risk: {max_leverage: 5}          # allow_reversal defaults to false in the arena: while open, only hold or close
arena: {deadline_s: 60, bars_per_round: 1, stats_window: 168}
breakers: {agent_drawdown: 0.10, portfolio_drawdown: 0.15, daily_loss: 0.05}  # null disables one; `breakers: off` all
agents:
  - agent: sma_cross             # quant agents: registry name, params, optional label
    params: {fast: 24, slow: 96}
  - llm: configs/llm/openai.yaml # LLM agents: a config file (relative to this file) or an inline mapping
  - llm: configs/llm/smollm2-local.yaml
    serve: local                 # the arena starts the bundled SmolLM2 on loopback and points base_url at it
```
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_lib.agents.llm.config import LLMAgentConfig, load_llm_config
from arena_lib.core.config import BacktestConfig
from arena_lib.core.spec import AgentSpec


class RoundSettings(BaseModel):
    """How the round runner paces and bounds the agents."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_s: float = Field(60.0, gt=0, description="per-agent wall-clock budget for one round, retries included")
    bars_per_round: int = Field(1, ge=1, description="agents decide every N bars; the engine settles every bar")
    stats_window: int = Field(168, ge=2, description="bars of the agent's own equity used for adaptive prompts")
    flip_flop_bars: int = Field(6, ge=1, description="a reversal within this many bars counts as a flip-flop")
    exchange: str = Field("binance", description="paper mode: the ccxt exchange id the live candles come from")
    history_bars: int = Field(300, ge=50, description="paper mode: closed bars fetched per symbol each round")


BreakerAction = Literal["reducing", "halted"]


class BreakerSettings(BaseModel):
    """Circuit breakers on the arena's accounts (`arena_lib.arena.breakers`); a threshold of null disables one.

    Defaults follow the prop-trading convention of a daily loss limit at half the maximum drawdown (10% / 5%): a
    losing agent first loses its right to open positions (REDUCING, closes only), and a portfolio-wide loss of 15%
    or a 5% loss within one UTC day stops new orders (HALTED). Drawdown trips are sticky until `arena breakers
    reset`; a daily-loss trip clears at the next UTC day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_drawdown: float | None = Field(0.10, gt=0, lt=1, description="account equity below its peak, fraction")
    agent_drawdown_action: BreakerAction = "reducing"
    portfolio_drawdown: float | None = Field(
        0.15, gt=0, lt=1, description="all accounts' summed equity below its peak, fraction; trips every account"
    )
    portfolio_drawdown_action: BreakerAction = "halted"
    daily_loss: float | None = Field(
        0.05, gt=0, lt=1, description="account equity below its equity at 00:00 UTC, fraction; clears next day"
    )
    daily_loss_action: BreakerAction = "halted"

    @classmethod
    def off(cls) -> BreakerSettings:
        """Every breaker disabled (research replays that study unbounded losses)."""
        return cls(agent_drawdown=None, portfolio_drawdown=None, daily_loss=None)


@dataclass(frozen=True)
class ArenaConfig:
    """A whole competition: the market spec, round settings, quant agents and LLM agents."""

    market: BacktestConfig
    rounds: RoundSettings
    quant: tuple[AgentSpec, ...]
    llm: tuple[LLMAgentConfig, ...]
    source: str = ""
    local_llm: tuple[str, ...] = ()  # LLM agents served by a local llama.cpp server that the arena starts
    breakers: BreakerSettings = field(default_factory=BreakerSettings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form stored with the run. Holds no secret: LLM configs carry only the key's variable name."""
        return {
            "market": self.market.model_dump(mode="json"),
            "rounds": self.rounds.model_dump(mode="json"),
            "quant": [{"agent": s.agent, "params": dict(s.params), "label": s.label} for s in self.quant],
            "llm": [c.model_dump(mode="json") for c in self.llm],
            "source": self.source,
            "local_llm": list(self.local_llm),
            "breakers": self.breakers.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArenaConfig:
        return cls(
            market=BacktestConfig.model_validate(d["market"]),
            rounds=RoundSettings.model_validate(d["rounds"]),
            quant=tuple(AgentSpec(q["agent"], q.get("params", {}), q.get("label")) for q in d["quant"]),
            llm=tuple(LLMAgentConfig.model_validate(c) for c in d["llm"]),
            source=str(d.get("source", "")),
            local_llm=tuple(d.get("local_llm", ())),
            breakers=BreakerSettings.model_validate(d.get("breakers") or {}),  # runs stored before breakers: defaults
        )

    def with_window(self, start: str | None, end: str | None) -> ArenaConfig:
        data = self.market.model_dump()
        if start is not None:
            data["start"] = start
        if end is not None:
            data["end"] = end
        return replace(self, market=BacktestConfig.model_validate(data))

    def with_llm(self, llm: tuple[LLMAgentConfig, ...]) -> ArenaConfig:
        return replace(self, llm=llm)


def load_arena_config(path: str | Path) -> ArenaConfig:
    """Read an arena YAML; errors name the file and the field."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"arena config not found: {p}")
    raw = yaml.safe_load(p.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a mapping at the top level")
    entries = raw.pop("agents", None) or []
    rounds_raw = raw.pop("arena", None) or {}
    breakers_raw = raw.pop("breakers", {})  # absent: the defaults; `breakers: off` (or null/false): all disabled
    raw.setdefault("risk", {})
    if isinstance(raw["risk"], dict):
        raw["risk"].setdefault("allow_reversal", False)
    if "symbols" in raw:
        raw["symbols"] = tuple(raw["symbols"])
    try:
        market = BacktestConfig.model_validate(raw)
        rounds = RoundSettings.model_validate(rounds_raw)
        off = breakers_raw in (None, False, "off")
        breakers = BreakerSettings.off() if off else BreakerSettings.model_validate(breakers_raw)
    except ValidationError as exc:
        raise ValueError(f"{p}: {exc}") from None
    quant: list[AgentSpec] = []
    llm: list[LLMAgentConfig] = []
    local: list[str] = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{p}: agents[{k}] must be a mapping with 'agent:' or 'llm:'")
        if "llm" in entry:
            ref = entry["llm"]
            if isinstance(ref, str):
                llm.append(load_llm_config((p.parent / ref) if not Path(ref).is_absolute() else Path(ref)))
            else:
                try:
                    llm.append(LLMAgentConfig.model_validate(ref))
                except ValidationError as exc:
                    raise ValueError(f"{p}: agents[{k}].llm: {exc}") from None
            serve = entry.get("serve")
            if serve not in (None, "local"):
                raise ValueError(f"{p}: agents[{k}].serve must be 'local' (the bundled SmolLM2), got {serve!r}")
            if serve == "local":
                local.append(llm[-1].name)
        elif "agent" in entry:
            quant.append(AgentSpec(entry["agent"], entry.get("params", {}) or {}, entry.get("label")))
        else:
            raise ValueError(f"{p}: agents[{k}] needs 'agent:' (quant) or 'llm:' (language model)")
    if not quant and not llm:
        raise ValueError(f"{p}: an arena needs at least one entry under 'agents:'")
    names = [s.label or s.agent for s in quant] + [c.name for c in llm]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{p}: agent names must be unique; repeated: {dupes} (give them a 'label:')")
    return ArenaConfig(
        market, rounds, tuple(quant), tuple(llm), source=str(p), local_llm=tuple(local), breakers=breakers
    )


def cutoff_overlap(training_cutoff: datetime.date | None, window_start: str | None) -> bool:
    """True when a replay window starts on or before the model's training cutoff: it may remember those prices."""
    if training_cutoff is None:
        return False
    if window_start is None:
        return True  # the whole sample: it certainly starts before any cutoff
    start = datetime.date.fromisoformat(str(window_start)[:10])
    return start <= training_cutoff
