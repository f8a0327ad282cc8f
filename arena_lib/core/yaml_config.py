"""The one way a YAML config file becomes a pydantic model: `load_yaml_model(path, Model)`.

Why one loader: backtests, competitions, arenas, LLM agents and promotion gates are all YAML files that people
edit by hand, so they should fail the same way. Every failure is a `ConfigError` (see `config_errors`) naming the
file, and the line where there is one: a missing file, a YAML syntax error (line and column), a key given twice
(PyYAML would silently keep the last one), a top level that is not a mapping, and every validation error with its
key path, its reason in words and, for an unknown key, the closest known one.

    gates = load_yaml_model("configs/gates.yaml", Gates, kind="gates file")
    config = load_yaml_model(path, BacktestConfig, overrides={"start": "2025-01-01", "costs.fee_bps": 2})

Loaders that need more than one model per file (an arena's inline LLM configs) read the file once with
`read_yaml_document` and validate each part with `YamlDocument.validate(..., prefix=...)`, so the key paths and
lines of the inner model still point into the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from arena_lib.core.config_errors import ConfigError, Loc, Problem, key_path, problems_from_validation

__all__ = ["ConfigError", "YamlDocument", "load_yaml_model", "read_yaml_document"]

M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping, instead of keeping the last value silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"the key {key!r} is given twice (first on line {first[key] + 1})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: let PyYAML report it as it does
                break
        return super().construct_mapping(node, deep=deep)


def _key_lines(node: yaml.Node | None, prefix: Loc = ()) -> dict[Loc, int]:
    """Key path -> 1-based line of every key and list item in the document, so errors can say where."""
    out: dict[Loc, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                loc = (*prefix, str(key_node.value))
                out[loc] = key_node.start_mark.line + 1
                out.update(_key_lines(value_node, loc))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            loc = (*prefix, i)
            out[loc] = item.start_mark.line + 1
            out.update(_key_lines(item, loc))
    return out


@dataclass(frozen=True)
class YamlDocument:
    """A YAML mapping read from `path`, with the line of every key, ready to validate into models."""

    path: Path
    data: dict[str, Any]
    lines: Mapping[Loc, int]
    kind: str = "config"

    def validate(self, model: type[M], data: Any = None, *, prefix: Loc = ()) -> M:
        """`model` validated from `data` (default: the whole file); `prefix` is where `data` sits in the file."""
        try:
            return model.model_validate(self.data if data is None else data)
        except ValidationError as exc:
            found = problems_from_validation(exc, model, prefix=prefix, lines=self.lines)
            raise ConfigError.invalid(self.path, self.kind, found) from None

    def problem(self, loc: Loc, text: str) -> Problem:
        """A problem about the key at `loc`, found by the loader's own checks (after the model's)."""
        key = key_path(loc)
        line = next((self.lines[loc[:end]] for end in range(len(loc), 0, -1) if loc[:end] in self.lines), None)
        return Problem(f"{key!r}: {text}" if key else text, key=key, line=line)

    def error(self, *problems: Problem) -> ConfigError:
        """A `ConfigError` about this file, in the same format as validation errors."""
        return ConfigError.invalid(self.path, self.kind, problems)


def read_yaml_document(path: str | Path, *, kind: str = "config") -> YamlDocument:
    """Read `path` as a YAML mapping (an empty file is an empty mapping). Raises ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        if p.exists():
            raise ConfigError.invalid(p, kind, [Problem("is a folder, not a YAML file")])
        raise ConfigError.not_found(p, kind)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.invalid(p, kind, [Problem(f"cannot be read ({exc})")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        text_ = f"{what} ({context})" if context and context not in what else what
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise ConfigError.syntax(p, kind, text_, line, column) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        names: dict[type, str] = {list: "a list", str: "text"}
        got = names.get(type(data), type(data).__name__)
        raise ConfigError.invalid(p, kind, [Problem(f"the top level must be a mapping of keys to values, got {got}")])
    return YamlDocument(p, data, lines, kind)


def _with_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each override set; a dotted key (`costs.fee_bps`) sets a nested one. None values are skipped."""
    out = dict(data)
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[last] = value
    return out


def load_yaml_model(
    path: str | Path,
    model: type[M],
    *,
    overrides: Mapping[str, Any] | None = None,
    kind: str = "config",
) -> M:
    """Read the YAML file at `path` and validate it as `model`; `overrides` replace keys (dotted for nested ones).

    `kind` names the file in messages ("backtest config", "gates file"). Raises `ConfigError` (a ValueError; a
    missing file is also a FileNotFoundError) naming the file, the line, the key path and the reason.
    """
    doc = read_yaml_document(path, kind=kind)
    return doc.validate(model, _with_overrides(doc.data, overrides or {}))
