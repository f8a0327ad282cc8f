"""The promotion gates as a versioned, typed YAML file (`configs/gates.yaml`).

Why a file and not defaults in code: the bar a model must clear to trade on paper or live is a decision the
team reviews in git, and every gate report stores the exact settings it was judged by. Every gate must be named
in the file (null disables it), so forgetting a gate is an error instead of a silent pass, and a typo'd key is
refused with the key named. `paper_ledger` (where `live` reads the version's paper record) is a setting, not a gate:
it may be left out, and then the arena store's default ledger is read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena_lib.core.config_errors import ConfigError
from arena_lib.core.settings import settings
from arena_lib.core.yaml_config import load_yaml_model

__all__ = [
    "DEFAULT_GATES_FILE",
    "GATE_NAMES",
    "Gates",
    "GatesConfigError",
    "LookaheadGate",
    "PaperLedger",
    "default_gates_path",
    "load_gates",
]

DEFAULT_GATES_FILE = Path("configs") / "gates.yaml"
"""The project's gates, relative to the project root (`default_gates_path()`)."""


GatesConfigError = ConfigError
"""A gates file that is missing, unreadable, or holds an unknown, missing or out-of-range key (the project's one
`ConfigError`; this name is kept for callers)."""


class LookaheadGate(BaseModel):
    """Where the look-ahead test recomputes the model's features: the latest `bars` bars of `symbol` in the sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field("ETH/USDT", description="bundled-sample symbol whose latest bars the features are checked on")
    bars: int = Field(720, ge=50, description="how many of the latest sample bars (1h) to use")
    cuts: int = Field(5, ge=1, le=50, description="how many truncation points to recompute at")


class PaperLedger(BaseModel):
    """Where `paper -> live` finds the version's paper record (`arena_lib.workflow.promotion.paper`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_url: str | None = Field(
        None, description="arena ledger URL; null: the arena store's default (ARENA_DB_URL, else .arena/arena.db)"
    )
    job: str | None = Field(None, description="judge only run paper-job-<job>; null: every paper run of the ledger")


class Gates(BaseModel):
    """Thresholds a run must clear before its model version gets an alias; None disables a gate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = Field(description="schema version of the gates file")
    min_oos_trades: int | None = Field(ge=0, description="fewest out-of-sample entries")
    min_sharpe_margin: float | None = Field(description="OOS Sharpe minus the best baseline's OOS Sharpe, at least")
    max_pbo: float | None = Field(ge=0.0, le=1.0, description="probability of backtest overfitting, below")
    min_deflated_sharpe: float | None = Field(ge=0.0, le=1.0, description="deflated Sharpe (a probability), above")
    max_drawdown: float | None = Field(
        ge=-1.0, le=0.0, description="deepest OOS drawdown allowed (negative fraction: -0.25 = 25% below peak)"
    )
    lookahead: LookaheadGate | None = Field(description="recompute the model's features on truncated data")
    llm_cutoff: bool | None = Field(description="an LLM's test window must start after its training cutoff")
    min_paper_days: float | None = Field(
        ge=0.0, description="days of paper bars traded by the version (arena ledger) before live"
    )
    paper_ledger: PaperLedger = Field(
        default_factory=PaperLedger, description="where the paper record is read (not a gate: optional)"
    )

    def enabled(self) -> dict[str, Any]:
        """Gate name -> setting, for the gates that are switched on (not null, and `llm_cutoff` not false)."""
        settings = {name: getattr(self, name) for name in GATE_NAMES}
        return {k: v for k, v in settings.items() if v is not None and v is not False}

    def disabled(self) -> list[str]:
        """Names of the gates switched off (null, or false for `llm_cutoff`)."""
        return [name for name in GATE_NAMES if name not in self.enabled()]

    def digest(self) -> str:
        """A short hash of the settings, stored with every gate report."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


GATE_NAMES: tuple[str, ...] = tuple(name for name in Gates.model_fields if name not in ("version", "paper_ledger"))
"""The gates, in the order reports list them (`paper_ledger` is a setting, not a gate)."""


def default_gates_path() -> Path:
    """`<project root>/configs/gates.yaml` (`Settings.gates_path`)."""
    return settings().gates_path


def load_gates(path: str | Path | None = None) -> Gates:
    """Read and validate a gates file (default: the project's `configs/gates.yaml`).

    Raises:
        GatesConfigError: the file is missing, is not a YAML mapping, or has an unknown/missing/invalid key; the
            message names the file and the key.
    """
    return load_yaml_model(path if path is not None else default_gates_path(), Gates, kind="gates file")
