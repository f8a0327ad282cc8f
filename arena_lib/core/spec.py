"""`AgentSpec`: how a config names an agent, and the competition file that lists them.

Why here, on the bottom floor: every config (a competition, an arena, a promoted job) names its agents the same
way, and those configs are read before any agent code is imported. Building the agent from its spec is the agent
layer's job (`arena_lib.agents.registry.build_agent`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from arena_lib.core.config import BacktestConfig


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


def load_competition(path: str | Path) -> tuple[BacktestConfig, list[AgentSpec]]:
    """Read a competition YAML: the `BacktestConfig` keys plus an `agents:` list."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    specs = [AgentSpec(a["agent"], a.get("params", {}), a.get("label")) for a in raw.pop("agents", [])]
    if not specs:
        raise ValueError(f"{path}: a competition needs an 'agents:' list")
    if "symbols" in raw:
        raw["symbols"] = tuple(raw["symbols"])
    return BacktestConfig.model_validate(raw), specs
