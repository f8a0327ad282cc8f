"""Agents by name, so a spec, a YAML config or the command line can name an agent and its parameters.

Parameters arrive as strings from the command line (`--param fast=12`) and are coerced to the types of the agent
constructor's annotations; an unknown agent or parameter is a clear error that lists what exists.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from arena_lib.agents.base import Agent
from arena_lib.agents.baselines import BuyAndHold, MeanReversion, Momentum, NoOpAgent, SmaCross
from arena_lib.agents.model_agent import load_model_agent
from arena_lib.core.spec import AgentSpec, is_class_path

AGENTS: dict[str, Callable[..., Agent]] = {
    "buy_and_hold": BuyAndHold,
    "sma_cross": SmaCross,
    "momentum": Momentum,
    "mean_reversion": MeanReversion,
    "noop": NoOpAgent,
    "model": load_model_agent,  # a trained model from the MLflow registry, by alias
}

_COMMON = {"fraction": float, "leverage": float, "stop_loss_pct": float, "take_profit_pct": float}


def _coerce(value: Any, kind: Any, key: str, agent: str) -> Any:
    if not isinstance(value, str):
        return value
    if isinstance(kind, str):  # postponed annotations: "float | None" coerces like "float"
        kind = kind.removesuffix(" | None")
        if kind.startswith("Sequence[str]"):
            return [part.strip() for part in value.split(",") if part.strip()]
    try:
        if kind in (bool, "bool"):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind in (int, "int"):
            return int(value)
        if kind in (float, "float"):
            return float(value)
    except ValueError:
        raise ValueError(
            f"{agent}: parameter {key}={value!r} is not a valid {getattr(kind, '__name__', kind)}"
        ) from None
    return value


def agent_parameters(name: str) -> dict[str, Any]:
    """Parameter names of agent `name` and their types."""
    factory = _factory(name)
    params: dict[str, Any] = {}
    if isinstance(factory, type) and hasattr(factory, "target_now"):
        params.update(_COMMON)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError) as exc:  # a builtin named by class path
        raise ValueError(f"{name}: cannot read its constructor's parameters ({exc})") from None
    for p in signature.parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        params[p.name] = p.annotation if p.annotation is not p.empty else type(p.default)
    return params


def _factory(name: str) -> Callable[..., Agent]:
    """The registry entry `name`, or the class or factory at class path `module:Class` (`module.Class` also works)."""
    if name in AGENTS:
        return AGENTS[name]
    if is_class_path(name):
        return _import_path(name)
    close = difflib.get_close_matches(name, AGENTS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise KeyError(
        f"unknown agent {name!r}{hint}; available: {', '.join(sorted(AGENTS))}, or a class path 'module:Class'"
    )


def _import_path(path: str) -> Callable[..., Agent]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KeyError(f"agent class path {path!r}: cannot import module {module_name!r} ({exc})") from None
    target = getattr(module, attr, None)
    if target is None or not callable(target):
        raise KeyError(f"agent class path {path!r}: module {module_name!r} has no callable {attr!r}")
    return target


def make_agent(name: str, params: Mapping[str, Any] | None = None, *, label: str | None = None) -> Agent:
    """Build agent `name` with `params` (strings are coerced); `label` renames it, e.g. for two variants in a replay."""
    params = dict(params or {})
    known = agent_parameters(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; accepted: {sorted(known)}")
    kwargs = {k: _coerce(v, known[k], k, name) for k, v in params.items()}
    agent = _factory(name)(**kwargs)
    if not callable(getattr(agent, "decide", None)):
        raise ValueError(f"{name} built a {type(agent).__name__}, which is not an Agent (it has no decide method)")
    if label:
        agent.name = label
    return agent


def build_agent(spec: AgentSpec) -> Agent:
    """The agent a config entry names, built with its parameters and label.

    An agent named by class path and given no label is named by that path (`spec.name`), so the name in the run
    is the one the config's uniqueness check saw, and the store can find the agent's spec again by it.
    """
    label = spec.label or (spec.agent if is_class_path(spec.agent) else None)
    return make_agent(spec.agent, spec.params, label=label)


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """`["fast=12", "slow=48"]` -> `{"fast": "12", "slow": "48"}`."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {pair!r} must look like KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
