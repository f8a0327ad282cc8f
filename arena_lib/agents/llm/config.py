"""Typed configuration of one LLM contestant: provider, model, sampling, limits, costs and where its key lives.

An `LLMAgentConfig` is part of the promotable spec (DESIGN.md rule 4), so it is a frozen pydantic model loaded from
YAML (`configs/llm/*.yaml`). It never holds a secret: `api_key_env` is the *name* of an environment variable, and
`resolve_api_key` reads the value only when a client is built. Validation errors hide input values, so a key pasted
into the wrong field is not echoed back into logs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arena_lib.core.config_errors import ConfigError, Problem
from arena_lib.core.settings import env_secret
from arena_lib.core.yaml_config import load_yaml_model

Provider = Literal["openai", "anthropic", "openai_compatible"]
StructuredOutput = Literal["auto", "json_schema", "json_object_schema", "json_object", "tool", "none"]

DEFAULT_KEY_ENV: dict[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openai_compatible": None,
}
# What "auto" means per provider. Many OpenAI-compatible servers (llama.cpp, some hosted ones) reject json_schema.
AUTO_STRUCTURED: dict[str, str] = {"openai": "json_schema", "anthropic": "tool", "openai_compatible": "json_object"}
_OPENAI_MODES = frozenset({"json_schema", "json_object_schema", "json_object", "none"})
_ANTHROPIC_MODES = frozenset({"tool", "none"})
# Request fields the client sets itself; extra_params may not override them.
_MANAGED_PARAMS = frozenset(
    {"model", "messages", "system", "temperature", "max_tokens", "response_format", "tools", "tool_choice", "stream"}
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


LLMConfigError = ConfigError
"""A config file that cannot be loaded (the project's one `ConfigError`; this name is kept for callers)."""


class LLMAgentConfig(BaseModel):
    """One LLM contestant. See the module docstring; field descriptions say what each knob does."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(min_length=1, description="contestant name, unique within an arena")
    provider: Provider
    model: str = Field(min_length=1, description="the provider's model id")
    base_url: str | None = Field(None, description="API root; OpenAI-style URLs end in /v1, Anthropic's do not")
    api_key_env: str | None = Field(None, description="NAME of the env var holding the key (default per provider)")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(1024, gt=0)
    timeout_s: float = Field(30.0, gt=0, description="per-attempt timeout; the caller's deadline also bounds it")
    max_retries: int = Field(2, ge=0, description="retries after the first attempt on 429, 5xx, timeouts")
    prompt_version: str = Field("v1", min_length=1)
    series_len: int = Field(10, ge=1, le=100, description="values per intraday series in the prompt (nof1 shows 10)")
    cost_per_1m_input: float = Field(0.0, ge=0, description="USD per million input tokens")
    cost_per_1m_output: float = Field(0.0, ge=0, description="USD per million output tokens")
    training_cutoff: datetime.date | None = Field(None, description="for look-ahead flags on backtest windows")
    structured_output: StructuredOutput = "auto"
    adaptive: bool = Field(False, description="put the agent's own rolling Sharpe / win rate in the prompt")
    extra_params: dict[str, Any] = Field(default_factory=dict, description="e.g. top_p, seed")

    @model_validator(mode="before")
    @classmethod
    def _default_key_env(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "api_key_env" not in data and data.get("provider") in DEFAULT_KEY_ENV:
            return {**data, "api_key_env": DEFAULT_KEY_ENV[data["provider"]]}
        return data

    @field_validator("api_key_env")
    @classmethod
    def _is_env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself")
        return value

    @field_validator("base_url")
    @classmethod
    def _is_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value is not None else None

    @field_validator("extra_params")
    @classmethod
    def _not_managed(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(_MANAGED_PARAMS.intersection(value))
        if clash:
            raise ValueError(f"may not set {clash}: the client sets these from the config fields")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LLMAgentConfig:
        if self.provider == "openai_compatible" and self.base_url is None:
            raise ValueError("base_url is required for provider openai_compatible (e.g. http://127.0.0.1:8000/v1)")
        if self.provider != "openai_compatible" and self.api_key_env is None:
            raise ValueError(
                f"api_key_env is required for provider {self.provider} (default {DEFAULT_KEY_ENV[self.provider]})"
            )
        if self.provider == "anthropic" and self.temperature > 1:
            raise ValueError("temperature must be <= 1 for provider anthropic")
        allowed = _ANTHROPIC_MODES if self.provider == "anthropic" else _OPENAI_MODES
        if self.structured_output != "auto" and self.structured_output not in allowed:
            raise ValueError(
                f"structured_output {self.structured_output!r} is not available for provider {self.provider}; "
                f"use auto or one of {sorted(allowed)}"
            )
        return self

    @property
    def resolved_structured_output(self) -> str:
        """The structured-output mode the client will use ("auto" resolved for this provider)."""
        return AUTO_STRUCTURED[self.provider] if self.structured_output == "auto" else self.structured_output

    @property
    def needs_key(self) -> bool:
        """False only for an OpenAI-compatible endpoint configured without a key variable (a local server)."""
        return self.api_key_env is not None


# -- loading -----------------------------------------------------------------------------------------------

KIND = "LLM agent config"


def load_llm_config(path: str | Path) -> LLMAgentConfig:
    """Load one `LLMAgentConfig` from a YAML file.

    Raises ConfigError naming the file, the line and the field, never echoing a value (a key pasted into the wrong
    field stays out of logs); a missing file is also a FileNotFoundError.
    """
    return load_yaml_model(path, LLMAgentConfig, kind=KIND)


def load_llm_configs(paths_or_dir: str | Path | Iterable[str | Path]) -> list[LLMAgentConfig]:
    """Load several configs: a directory (every *.yaml / *.yml in it, sorted), one file, or a list of files.

    Contestant names must be unique, because results, caches and accounts are keyed by them.
    """
    if isinstance(paths_or_dir, str | Path):
        root = Path(paths_or_dir)
        paths = sorted([*root.glob("*.yaml"), *root.glob("*.yml")]) if root.is_dir() else [root]
        if root.is_dir() and not paths:
            raise FileNotFoundError(f"no *.yaml LLM agent configs in {root}")
    else:
        paths = [Path(p) for p in paths_or_dir]
    configs = [load_llm_config(p) for p in paths]
    seen: dict[str, Path] = {}
    for cfg, p in zip(configs, paths, strict=True):
        if cfg.name in seen:
            problem = Problem(f"'name': duplicate LLM agent name {cfg.name!r}, also in {seen[cfg.name]}", key="name")
            raise ConfigError.invalid(p, KIND, [problem])
        seen[cfg.name] = p
    return configs


# -- keys and status ---------------------------------------------------------------------------------------


def resolve_api_key(cfg: LLMAgentConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The key from the variable named by `cfg.api_key_env`, or None when it is not set (or no variable is named).

    Looks in `env` (default: os.environ), then in a `.env` file in the current directory. The .env file is only
    read (python-dotenv's `dotenv_values`), never loaded into os.environ, so keys do not leak to child processes.
    """
    if cfg.api_key_env is None:
        return None
    return env_secret(cfg.api_key_env, env)


@dataclass(frozen=True)
class ConfigStatus:
    """Whether a contestant can run, and a one-line reason for people (never contains the key)."""

    configured: bool
    reason: str


def configuration_status(cfg: LLMAgentConfig, env: Mapping[str, str] | None = None) -> ConfigStatus:
    """Whether `cfg` has what it needs to call its provider; agents without it are skipped and say why."""
    if cfg.api_key_env is None:
        # Only openai_compatible can get here (the others default their variable), and it always has a base_url.
        return ConfigStatus(True, f"configured: {cfg.base_url} needs no key")
    if resolve_api_key(cfg, env) is None:
        return ConfigStatus(False, f"not configured: set {cfg.api_key_env} (in the environment or .env)")
    return ConfigStatus(True, f"configured: key from {cfg.api_key_env}")


def token_cost(cfg: LLMAgentConfig, input_tokens: int, output_tokens: int) -> float:
    """USD cost of one call at the config's per-million-token prices."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got input={input_tokens} output={output_tokens}")
    return (input_tokens * cfg.cost_per_1m_input + output_tokens * cfg.cost_per_1m_output) / 1_000_000
