"""`ConfigError`: one error, in one format, for every config file and for the environment's settings.

Why one format: a person who mistyped a key should read the same kind of sentence whether the file was a backtest,
a competition, an arena, an LLM agent or the promotion gates, and a script should be able to catch one class. So
pydantic's errors are rewritten here into plain sentences that name the file, the line, the key path and the
reason, with no documentation links and no "Input should be" noise:

    configs/x.yaml: invalid backtest config: line 4: 'costs.fee_bps' must be >= 0 (got -1.0)
    configs/x.yaml: invalid backtest config: line 3: unknown key 'costs.fe_bps' (did you mean 'fee_bps'?)
    configs/x.yaml: invalid YAML in backtest config at line 2, column 9: expected ',' or ']', but got '<stream end>'

`ConfigError` subclasses ValueError, so callers that already catch ValueError keep working; a missing file raises
`ConfigFileNotFoundError`, which is also a FileNotFoundError.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

Loc = tuple[str | int, ...]

__all__ = [
    "ConfigError",
    "ConfigFileNotFoundError",
    "Loc",
    "Problem",
    "key_path",
    "problems_from_validation",
    "reason",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: a full sentence, the key path it is about ("" for the whole file), its line."""

    text: str
    key: str = ""
    line: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}" if self.line is not None else self.text


class ConfigError(ValueError):
    """A config file (or the environment's settings) that cannot be used. The message is one line.

    Build it with `ConfigError.invalid(...)`, `.syntax(...)` or `.not_found(...)` so every message has the same
    shape; the parts stay on the error (`source`, `problems`, `line`, `column`) for code that wants them.
    """

    source: str = ""
    problems: tuple[Problem, ...] = ()
    line: int | None = None
    column: int | None = None

    @classmethod
    def invalid(cls, source: object, kind: str, problems: Iterable[Problem]) -> ConfigError:
        """`<source>: invalid <kind>: <problem>; <problem>`."""
        found = tuple(problems)
        err = cls(f"{source}: invalid {kind}: " + "; ".join(str(p) for p in found))
        err.source, err.problems = str(source), found
        return err

    @classmethod
    def syntax(cls, source: object, kind: str, reason: str, line: int | None, column: int | None) -> ConfigError:
        """`<source>: invalid YAML in <kind> at line L, column C: <reason>`."""
        where = f" at line {line}, column {column}" if line is not None else ""
        err = cls(f"{source}: invalid YAML in {kind}{where}: {reason}")
        err.source, err.line, err.column = str(source), line, column
        err.problems = (Problem(reason, line=line),)
        return err

    @classmethod
    def not_found(cls, source: object, kind: str) -> ConfigError:
        """`<source>: <kind> not found` (a `ConfigFileNotFoundError`, so `except FileNotFoundError` sees it too)."""
        err = ConfigFileNotFoundError(f"{source}: {kind} not found")
        err.source = str(source)
        return err


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """The config file does not exist."""


# ------------------------------------------------------------------------------------------------ key paths
def key_path(loc: Sequence[str | int]) -> str:
    """`("agents", 0, "params")` -> `agents[0].params`: the path a person finds in the YAML file."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> Any:
    """The type under `Annotated[...]` and `X | None`; a real union of several types stays a union."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _field_named(model: type[BaseModel], part: str) -> tuple[str, FieldInfo] | None:
    for name, info in model.model_fields.items():
        if part in (name, info.alias, info.validation_alias):
            return name, info
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


@dataclass
class _Resolved:
    loc: Loc
    field: FieldInfo | None  # the field the error is about, when the path ends on a model field
    parent: type[BaseModel] | None  # the model holding the last key (for "did you mean")


def _resolve(model: type[BaseModel] | None, loc: Loc) -> _Resolved:
    """Walk `loc` through the model's fields, dropping the tags pydantic adds for union members."""
    current: Any = model
    kept: list[str | int] = []
    field: FieldInfo | None = None
    parent: type[BaseModel] | None = model
    skip_tag = False
    for part in loc:
        if skip_tag:  # after a union of several types pydantic names the member it tried, e.g. 'str'
            skip_tag = False
            current = Any
            continue
        sub = _model(current)
        if sub is not None and isinstance(part, str):
            found = _field_named(sub, part)
            parent = sub
            kept.append(part)
            if found is None:  # an unknown key: the path ends here
                field, current = None, Any
                continue
            field = found[1]
            current = _unwrap(field.annotation)
            skip_tag = _is_union(current)
            continue
        kept.append(part)
        field = None
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple, set, frozenset) or (origin is not None and "Sequence" in str(origin)):
            current = _unwrap(args[0]) if args else Any
        elif origin is dict or (origin is not None and "Mapping" in str(origin)):
            current = _unwrap(args[1]) if len(args) == 2 else Any
        else:
            current = Any
        skip_tag = _is_union(current)
    return _Resolved(tuple(kept), field, parent)


# ------------------------------------------------------------------------------------------------ reasons in words
_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "frozen_set": "a list",
    "iterable": "a list",
    "dict": "a mapping of keys to values",
    "mapping": "a mapping of keys to values",
    "model": "a mapping of keys to values",
    "model_attributes": "a mapping of keys to values",
    "dataclass": "a mapping of keys to values",
    "date": "a date like 2025-01-31",
    "datetime": "a date and time like 2025-01-31T00:00:00Z",
    "time": "a time like 12:30:00",
    "timedelta": "a duration like 1h or 3600 (seconds)",
    "decimal": "a number",
    "path": "a file path",
    "url": "a URL like https://host/path",
    "uuid": "a UUID",
}


def _number(value: Any) -> Any:
    """0.0 -> 0: a bound reads as the number a person would write."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def reason(error: Mapping[str, Any]) -> str:
    """One pydantic error (from `ValidationError.errors()`) as a phrase, e.g. `must be >= 0`."""
    kind, ctx = str(error["type"]), error.get("ctx") or {}
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        key = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}[kind]
        return f"must be {bounds[kind]} {_number(ctx.get(key))}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected')}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {_plural(n, 'character')} long"
    if kind == "string_too_long":
        return f"must be at most {_plural(ctx.get('max_length'), 'character')} long"
    text_input = isinstance(error.get("input"), str | SecretStr)  # a SecretStr's length errors are "too_short"
    if kind == "too_short":
        if text_input:
            return f"must be at least {_plural(ctx.get('min_length'), 'character')} long"
        return f"must have at least {_plural(ctx.get('min_length'), 'item')}"
    if kind == "too_long":
        if text_input:
            return f"must be at most {_plural(ctx.get('max_length'), 'character')} long"
        return f"must have at most {_plural(ctx.get('max_length'), 'item')}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    if kind == "multiple_of":
        return f"must be a multiple of {ctx.get('multiple_of')}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("none_required",):
        return "must be null"
    if kind in ("frozen_instance", "frozen_field"):
        return "cannot be changed"
    if kind in ("int_from_float",):
        return "must be a whole number"
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix + "_") and kind.removeprefix(prefix + "_") in (
            "type",
            "parsing",
            "parsing_size",
            "from_datetime_parsing",
            "from_datetime_inexact",
            "from_date_parsing",
            "object_invalid",
            "past",
            "future",
            "scheme",
        ):
            return f"must be {words}"
    text = str(error.get("msg", kind))
    for noise, plain in (("Value error, ", ""), ("Assertion failed, ", ""), ("Input should be", "must be")):
        text = text.replace(noise, plain)
    return text


def _shown(value: Any) -> str | None:
    """A short repr of a scalar input for "(got ...)"; None for containers and long values."""
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "...'"
    return None


def _hides_input(model: type[BaseModel] | None, field: FieldInfo | None) -> bool:
    """Never echo a secret: SecretStr fields, fields kept out of repr, and models that hide input in errors."""
    if model is not None and model.model_config.get("hide_input_in_errors"):
        return True
    if field is None:
        return False
    return field.repr is False or "SecretStr" in str(field.annotation) or field.annotation is SecretStr


# ------------------------------------------------------------------------------------------------ whole errors
def problems_from_validation(
    exc: ValidationError,
    model: type[BaseModel] | None,
    *,
    prefix: Loc = (),
    lines: Mapping[Loc, int] | None = None,
) -> list[Problem]:
    """Every error of `exc` as a `Problem`, in file order; `prefix` is where `model` sits in the file, `lines`
    maps key paths to lines. Errors that pydantic reports once per member of a union (`str | dict`) are merged."""
    lines = lines or {}
    hidden_model = model is not None and bool(model.model_config.get("hide_input_in_errors"))
    values: dict[str, tuple[list[str], str | None]] = {}  # key -> (reasons, shown input) for value errors
    found: list[tuple[str, str | None, int | None]] = []  # (key, text or None for a value error, line)
    listed: set[type[BaseModel]] = set()  # models whose accepted keys were already listed once
    for error in exc.errors(include_url=False, include_input=not hidden_model):
        resolved = _resolve(model, tuple(error["loc"]))
        loc = prefix + resolved.loc
        key = key_path(loc)
        line = _line_of(loc, lines)
        kind = error["type"]
        if kind == "extra_forbidden":
            found.append((key, _unknown_key(key, resolved, listed), line))
        elif kind == "missing":
            field = resolved.field
            about = f" ({field.description})" if field is not None and field.description else ""
            nullable = field is not None and type(None) in typing.get_args(field.annotation)
            found.append((key, f"missing key {key!r}{about}: give a value" + (", or null" if nullable else ""), line))
        else:
            shown = None
            if not _hides_input(model, resolved.field) and "input" in error:
                shown = _shown(error["input"])
            if key not in values:
                values[key] = ([], shown)
                found.append((key, None, line))
            values[key][0].append(reason(error))
    problems = []
    for key, text, line in found:
        if text is None:
            reasons, shown = values[key]
            body = _join_alternatives(reasons)
            if shown is not None and shown not in body:
                body += f" (got {shown})"
            text = f"{key!r}: {body}" if key else body
        problems.append(Problem(text, key=key, line=line))
    return sorted(problems, key=lambda p: p.line if p.line is not None else 0)


def _unknown_key(key: str, resolved: _Resolved, listed: set[type[BaseModel]]) -> str:
    """`unknown key 'costs.fe_bps' (did you mean 'fee_bps'?)`; with no close match, the accepted keys (once)."""
    parent = resolved.parent
    known = _keys_of(parent) if parent is not None else []
    last = str(resolved.loc[-1]) if resolved.loc else key
    close = difflib.get_close_matches(last, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    if parent is not None and known and parent not in listed:
        listed.add(parent)
        return f"unknown key {key!r} (accepted here: {', '.join(known)})"
    return f"unknown key {key!r}"


def _join_alternatives(texts: list[str]) -> str:
    """`must be text`, `must be a mapping` -> `must be text or a mapping` (a union's members, one sentence)."""
    if len(texts) == 1:
        return texts[0]
    if all(t.startswith("must be ") for t in texts):
        return "must be " + " or ".join(dict.fromkeys(t.removeprefix("must be ") for t in texts))
    return "; ".join(dict.fromkeys(texts))


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of the deepest part of `loc` the file has (a missing key points at its parent)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
