"""The promotion gates as a versioned, typed YAML file (`configs/gates.yaml`).

Why a file and not defaults in code: the bar a model must clear to trade on paper or live is a decision the
team reviews in git, and every gate report stores the exact settings it was judged by. Every gate must be named
in the file (null disables it), so forgetting a gate is an error instead of a silent pass, and a typo'd key is
refused with the key named.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_lib.core.paths import project_root

__all__ = [
    "DEFAULT_GATES_FILE",
    "GATE_NAMES",
    "Gates",
    "GatesConfigError",
    "LookaheadGate",
    "default_gates_path",
    "load_gates",
]

DEFAULT_GATES_FILE = Path("configs") / "gates.yaml"
"""The project's gates, relative to the project root (`default_gates_path()`)."""


class GatesConfigError(ValueError):
    """A gates file that is missing, unreadable, or holds an unknown, missing or out-of-range key."""


class LookaheadGate(BaseModel):
    """Where the look-ahead test recomputes the model's features: the latest `bars` bars of `symbol` in the sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field("ETH/USDT", description="bundled-sample symbol whose latest bars the features are checked on")
    bars: int = Field(720, ge=50, description="how many of the latest sample bars (1h) to use")
    cuts: int = Field(5, ge=1, le=50, description="how many truncation points to recompute at")


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
    min_paper_days: float | None = Field(ge=0.0, description="days on the paper alias before live")

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


GATE_NAMES: tuple[str, ...] = tuple(name for name in Gates.model_fields if name != "version")
"""The gates, in the order reports list them."""


def default_gates_path() -> Path:
    """`<project root>/configs/gates.yaml`."""
    return project_root() / DEFAULT_GATES_FILE


def _describe(path: Path, exc: ValidationError) -> str:
    known = list(Gates.model_fields) + list(LookaheadGate.model_fields)
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"unknown key {key!r}{hint}")
        elif err["type"] == "missing":
            lines.append(f"missing key {key!r}: give a value, or null to disable that gate")
        else:
            lines.append(f"{key!r}: {err['msg']} (got {err.get('input')!r})")
    return f"{path}: " + "; ".join(lines)


def load_gates(path: str | Path | None = None) -> Gates:
    """Read and validate a gates file (default: the project's `configs/gates.yaml`).

    Raises:
        GatesConfigError: the file is missing, is not a YAML mapping, or has an unknown/missing/invalid key; the
            message names the file and the key.
    """
    p = Path(path) if path is not None else default_gates_path()
    if not p.is_file():
        raise GatesConfigError(f"gates file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise GatesConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise GatesConfigError(f"{p}: expected a mapping of gate names to settings, got {type(raw).__name__}")
    try:
        return Gates.model_validate(raw)
    except ValidationError as exc:
        raise GatesConfigError(_describe(p, exc)) from None
