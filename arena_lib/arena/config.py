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
  - agent: sma_cross             # quant agents: registry name or class path (pkg.module:Class), params, label
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

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arena_lib.agents.llm.config import LLMAgentConfig, load_llm_config
from arena_lib.core.config import BacktestConfig, BreakerSettings, RiskLimits
from arena_lib.core.config_errors import ConfigFileNotFoundError
from arena_lib.core.spec import AgentSpec, backtest_part, check_agent_ref
from arena_lib.core.yaml_config import read_yaml_document
from arena_lib.execution.settings import LiveSettings

TradingMode = Literal["replay", "paper", "live"]


class RoundSettings(BaseModel):
    """How the round runner paces and bounds the agents."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_s: float = Field(60.0, gt=0, description="per-agent wall-clock budget for one round, retries included")
    bars_per_round: int = Field(1, ge=1, description="agents decide every N bars; the engine settles every bar")
    stats_window: int = Field(168, ge=2, description="bars of the agent's own equity used for adaptive prompts")
    flip_flop_bars: int = Field(6, ge=1, description="a reversal within this many bars counts as a flip-flop")
    exchange: str = Field("binance", description="paper mode: the ccxt exchange id the live candles come from")
    history_bars: int = Field(300, ge=50, description="paper mode: closed bars fetched per symbol each round")


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
    mode: TradingMode | None = None  # None: as the command says (replay or paper); live must be written here
    live: LiveSettings = field(default_factory=LiveSettings)

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
            "mode": self.mode,
            "live": self.live.model_dump(mode="json"),
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
            mode=d.get("mode"),
            live=LiveSettings.model_validate(d.get("live") or {}),
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


class ArenaEntry(BaseModel):
    """One `agents:` entry of an arena file: a quant agent (`agent:`) or a language model (`llm:`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str | None = Field(None, description="quant agent: a registry name or a class path (package.module:Class)")
    params: dict[str, Any] = Field(default_factory=dict, description="quant agent: its constructor's keyword arguments")
    label: str | None = Field(None, min_length=1, description="quant agent: its name in the run (default: agent)")
    llm: str | dict[str, Any] | None = Field(
        None, description="LLM agent: a config file (relative to the arena file) or an inline config mapping"
    )
    serve: Literal["local"] | None = Field(
        None, description="LLM agent: 'local' starts the bundled SmolLM2 on loopback and points base_url at it"
    )

    @field_validator("agent")
    @classmethod
    def _agent_ref(cls, value: str | None) -> str | None:
        return None if value is None else check_agent_ref(value)

    @field_validator("params", mode="before")
    @classmethod
    def _no_params(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _one_kind(self) -> ArenaEntry:
        if self.agent is None and self.llm is None:
            raise ValueError("needs 'agent:' (a quant agent) or 'llm:' (a language model)")
        if self.agent is not None and self.llm is not None:
            raise ValueError("has both 'agent:' and 'llm:'; give one per entry")
        if self.llm is not None and (self.params or self.label is not None):
            raise ValueError("'params' and 'label' belong to quant agents; an LLM agent's settings are in its config")
        if self.agent is not None and self.serve is not None:
            raise ValueError("'serve' applies to LLM agents only")
        return self


class ArenaFile(BacktestConfig):
    """An arena YAML as written: the market keys at the top level, then `arena:`, `breakers:` and `agents:`."""

    risk: RiskLimits = Field(
        default_factory=lambda: RiskLimits(allow_reversal=False),
        description="hard limits; in the arena allow_reversal defaults to false (while open: hold or close only)",
    )
    arena: RoundSettings = Field(default_factory=RoundSettings, description="how rounds are paced and bounded")
    breakers: BreakerSettings = Field(
        default_factory=BreakerSettings, description="circuit breakers; `off` (or null, false) disables them all"
    )
    agents: list[ArenaEntry] = Field(default_factory=list, description="the contestants, quant and LLM")
    mode: TradingMode | None = Field(
        None, description="live trading needs `mode: live` here (plus keys and a confirmation); replay/paper: optional"
    )
    live: LiveSettings = Field(default_factory=LiveSettings, description="live mode: exchange, account keys, caps")

    @field_validator("risk", mode="before")
    @classmethod
    def _no_reversal_by_default(cls, value: Any) -> Any:
        if value is None:
            return {"allow_reversal": False}
        if isinstance(value, Mapping) and "allow_reversal" not in value:
            return {**value, "allow_reversal": False}
        return value

    @field_validator("arena", mode="before")
    @classmethod
    def _empty_arena(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("agents", mode="before")
    @classmethod
    def _empty_agents(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("breakers", mode="before")
    @classmethod
    def _breakers_off(cls, value: Any) -> Any:
        return BreakerSettings.off() if value in (None, False, "off") else value

    @model_validator(mode="after")
    def _has_agents(self) -> ArenaFile:
        if not self.agents:
            raise ValueError("an arena needs at least one entry under 'agents:'")
        return self


def load_arena_config(path: str | Path) -> ArenaConfig:
    """Read an arena YAML. Raises ConfigError naming the file, the line and the key path (see `yaml_config`).

    LLM entries name a config file (relative to this file unless absolute) or hold one inline; an inline config's
    errors point into this file (`agents[2].llm.temperature`), a referenced file's into that file.
    """
    doc = read_yaml_document(path, kind="arena config")
    loaded = doc.validate(ArenaFile)
    quant: list[AgentSpec] = []
    llm: list[LLMAgentConfig] = []
    local: list[str] = []
    for k, entry in enumerate(loaded.agents):
        if entry.agent is not None:
            quant.append(AgentSpec(entry.agent, dict(entry.params), entry.label))
            continue
        if isinstance(entry.llm, str):
            ref = Path(entry.llm)
            try:
                llm.append(load_llm_config(ref if ref.is_absolute() else doc.path.parent / ref))
            except ConfigFileNotFoundError as exc:
                raise doc.error(doc.problem(("agents", k, "llm"), f"no such LLM agent config ({exc})")) from None
        else:
            llm.append(doc.validate(LLMAgentConfig, entry.llm, prefix=("agents", k, "llm")))
        if entry.serve == "local":
            local.append(llm[-1].name)
    names = [s.label or s.agent for s in quant] + [c.name for c in llm]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise doc.error(
            doc.problem(("agents",), f"agent names must be unique; repeated: {dupes} (give them a 'label:')")
        )
    return ArenaConfig(
        backtest_part(loaded),
        loaded.arena,
        tuple(quant),
        tuple(llm),
        source=str(doc.path),
        local_llm=tuple(local),
        breakers=loaded.breakers,
        mode=loaded.mode,
        live=loaded.live,
    )


def cutoff_overlap(training_cutoff: datetime.date | None, window_start: str | None) -> bool:
    """True when a replay window starts on or before the model's training cutoff: it may remember those prices."""
    if training_cutoff is None:
        return False
    if window_start is None:
        return True  # the whole sample: it certainly starts before any cutoff
    start = datetime.date.fromisoformat(str(window_start)[:10])
    return start <= training_cutoff
