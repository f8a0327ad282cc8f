"""`AgentSpec`: how a config names an agent, and the competition file that lists them.

Why here, on the bottom floor: every config (a competition, an arena, a promoted job) names its agents the same
way, and those configs are read before any agent code is imported. Building the agent from its spec is the agent
layer's job (`arena_lib.agents.registry.build_agent`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arena_lib.core.config import BacktestConfig

AGENT_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")
"""What a config may put under `agent:`: a registry name (`sma_cross`) or a class path (`pkg.module:Class`)."""


def check_agent_ref(agent: str) -> str:
    """`agent` unchanged when it has the form of a registry name or a class path; else a ValueError saying so.

    Only the form is checked here: whether the name exists is the agent layer's question, asked when it builds.
    """
    if not AGENT_REF.match(agent):
        raise ValueError(
            "must be a registry name like sma_cross or a class path like package.module:Class (see `arena agents`)"
        )
    return agent


def is_class_path(agent: str) -> bool:
    """True when `agent` names a class or factory by path (`module:Class` or `module.Class`), not a registry name."""
    return ":" in agent or "." in agent


@dataclass(frozen=True)
class AgentSpec:
    """An agent entry of a config: a registry name or a class path (`module:Class`), parameters, a display label."""

    agent: str
    params: Mapping[str, Any]
    label: str | None = None

    @property
    def name(self) -> str:
        """The agent's name in a run: its label, else what the spec names."""
        return self.label or self.agent


class AgentEntry(BaseModel):
    """One `agents:` entry of a config file, as written: checked for form here, built by the agent layer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str = Field(description="a registry name (sma_cross) or a class path (package.module:Class)")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the agent's constructor")
    label: str | None = Field(None, min_length=1, description="the agent's name in the run (default: agent)")

    @field_validator("agent")
    @classmethod
    def _agent_ref(cls, value: str) -> str:
        return check_agent_ref(value)

    @field_validator("params", mode="before")
    @classmethod
    def _no_params(cls, value: Any) -> Any:
        return {} if value is None else value  # `params:` left empty in YAML

    def spec(self) -> AgentSpec:
        return AgentSpec(self.agent, dict(self.params), self.label)


def backtest_part(config: BacktestConfig) -> BacktestConfig:
    """The plain `BacktestConfig` inside a file model that extends it (a competition, an arena)."""
    return BacktestConfig(**{name: getattr(config, name) for name in BacktestConfig.model_fields})


class CompetitionFile(BacktestConfig):
    """A competition YAML: the `BacktestConfig` keys plus the contestants."""

    agents: list[AgentEntry] = Field(default_factory=list, description="the contestants: agent, params, label")

    @field_validator("agents", mode="before")
    @classmethod
    def _no_agents(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _has_agents(self) -> CompetitionFile:
        if not self.agents:
            raise ValueError("a competition needs at least one entry under 'agents:'")
        return self


def load_competition(path: str | Path) -> tuple[BacktestConfig, list[AgentSpec]]:
    """Read a competition YAML: the `BacktestConfig` keys plus an `agents:` list (registry names or class paths).

    Raises ConfigError naming the file, the line and the key (a missing file is also a FileNotFoundError).
    """
    from arena_lib.core.yaml_config import load_yaml_model

    loaded = load_yaml_model(path, CompetitionFile, kind="competition")
    return backtest_part(loaded), [entry.spec() for entry in loaded.agents]
