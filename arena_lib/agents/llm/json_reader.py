"""Find the JSON in a language model's free-text answer and read it tolerantly, noting every repair.

Models wrap their JSON in prose, markdown fences and ``<think>`` blocks, leave trailing commas and comments, quote
with apostrophes, write Python literals, and get cut off mid-object. This module finds the JSON by scanning for
brackets with a small tolerant parser that respects strings (never a greedy regex, never a number picked out of
prose) and repairs form only; what the values mean is `arena_lib.agents.llm.parsing`'s business. Every repair is
one note, so the caller can log exactly what the model said and what was done with it.

Why it is written here rather than taken from `json-repair`: the policy matters more than the coverage. It has to
tell a complete object from one that truncation closed, so that a cut-off answer loses its last object instead of
trading on half of it (`JsonCandidate.truncated`, `JsonCandidate.dropped_incomplete`), and it has to keep a key
given twice (`JsonObject.duplicates`) so that the caller can refuse an ambiguous decision rather than silently take
one of the two values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonCandidate", "JsonError", "JsonObject", "answer_sources", "json_candidates", "strip_reasoning"]

_MAX_DEPTH = 32  # nesting deeper than any decision answer needs
_MAX_START_ATTEMPTS = 1000  # bracket positions tried per text, so adversarial prose stays cheap


# --------------------------------------------------------------------------------------------------------------
# A tolerant JSON reader that knows when it had to close things itself
# --------------------------------------------------------------------------------------------------------------


class JsonError(Exception):
    """Not JSON (even tolerantly); `pos` is where reading stopped, to report the furthest attempt."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


class _Truncated(Exception):
    """The text ended inside a value; `partial` is what was complete so far (a list or dict), else None."""

    def __init__(self, partial: list[Any] | dict[str, Any] | None) -> None:
        super().__init__("truncated")
        self.partial = partial


class JsonObject(dict[str, Any]):
    """A JSON object that remembers keys given twice (the first value is kept, as the first word counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.duplicates: list[tuple[str, Any]] = []


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}
_PLAIN_RUN = {q: re.compile(rf"[^{q}\\\n\r\t]+") for q in "\"'"}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "'": "'"}


class _Reader:
    """Reads one JSON value starting at `start`; collects repair notes; drops objects that truncation cut."""

    def __init__(self, text: str, start: int) -> None:
        self.s = text
        self.i = start
        self.notes: list[str] = []
        self.dropped_incomplete = False

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def read(self) -> tuple[Any, bool]:
        """The value and whether the text ended before it was closed (then only complete parts are kept)."""
        try:
            return self._value(0), False
        except _Truncated as t:
            return t.partial, True

    # -- lexical ---------------------------------------------------------------------------------------------
    def _skip_ws(self) -> None:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r\n\ufeff\xa0":
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end + 1
                self._note("removed a // comment from the JSON")
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    raise _Truncated(None)
                self.i = end + 2
                self._note("removed a /* */ comment from the JSON")
            else:
                return

    def _peek(self) -> str:
        self._skip_ws()
        if self.i >= len(self.s):
            raise _Truncated(None)
        return self.s[self.i]

    def _value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise JsonError(f"JSON nested deeper than {_MAX_DEPTH} levels", self.i)
        c = self._peek()
        if c == "{":
            return self._object(depth + 1)
        if c == "[":
            return self._array(depth + 1)
        if c in "\"'":
            return self._string()
        return self._scalar()

    def _scalar(self) -> Any:
        s, start = self.s, self.i
        for word, value in _LITERALS.items():
            if s.startswith(word, start):
                end = start + len(word)
                if end < len(s) and (s[end].isalnum() or s[end] == "_"):
                    continue
                self.i = end
                if word[0].isupper() and word in ("True", "False", "None"):
                    self._note(f"read Python literal {word} as JSON {'null' if value is None else str(value).lower()}")
                return value
            if word.startswith(s[start:]) and s[start:]:
                raise _Truncated(None)  # the text stops inside a literal such as "tru"
        m = _NUMBER.match(s, start)
        if not m:
            raise JsonError(f"unexpected {s[start]!r} where a JSON value should be", start)
        end = m.end()
        if end >= len(s):
            raise _Truncated(None)  # "12" at the very end may have been "125": never trust it
        if s[end].isalnum() or s[end] in "._":
            raise JsonError(f"malformed number {s[start : end + 1]!r}", end)
        self.i = end
        token = m.group()
        if token[0] == "+" or token.lstrip("-").startswith(".") or token.endswith("."):
            self._note(f"read non-standard number {token!r}")
        return float(token)

    def _string(self) -> str:
        s, quote = self.s, self.s[self.i]
        n, i = len(s), self.i + 1
        out: list[str] = []
        plain = _PLAIN_RUN[quote]
        while True:
            run = plain.match(s, i)
            if run and run.end() > i:
                out.append(run.group())
                i = run.end()
            if i >= n:
                raise _Truncated(None)
            c = s[i]
            if c == quote:
                i += 1
                break
            if c == "\\":
                if i + 1 >= n:
                    raise _Truncated(None)
                e = s[i + 1]
                if e == "u":
                    hexdigits = s[i + 2 : i + 6]
                    if len(hexdigits) < 4 and i + 2 + len(hexdigits) >= n:
                        raise _Truncated(None)
                    if not re.fullmatch(r"[0-9a-fA-F]{4}", hexdigits):
                        raise JsonError(f"bad \\u escape {s[i : i + 6]!r}", i)
                    out.append(chr(int(hexdigits, 16)))
                    i += 6
                    continue
                out.append(_ESCAPES.get(e, e))
                if e not in _ESCAPES:
                    self._note(f"kept unknown escape \\{e} as {e!r}")
                i += 2
                continue
            if c in "\n\r\t":
                self._note("kept a raw line break or tab inside a JSON string")
            out.append(c)
            i += 1
        self.i = i
        if quote == "'":
            # Only unambiguous when the closing quote is followed by JSON punctuation: in 'BTC's trend' it is not.
            j = i
            while j < n and s[j] in " \t\r\n":
                j += 1
            if j < n and s[j] not in ":,}]":
                raise JsonError("single-quoted string with an apostrophe inside is ambiguous", i)
            self._note("read single-quoted strings as JSON strings")
        return "".join(out)

    # -- containers ----------------------------------------------------------------------------------------
    def _keep_partial(self, child: list[Any] | dict[str, Any] | None) -> list[Any] | None:
        """Keep a truncated list's complete items; drop a truncated object (its fields may be missing)."""
        if isinstance(child, list):
            return child
        self.dropped_incomplete = True
        return None

    def _array(self, depth: int) -> list[Any]:
        self.i += 1
        items: list[Any] = []
        expect_item = True
        while True:
            try:
                c = self._peek()
            except _Truncated:
                raise _Truncated(items) from None
            if c == "]":
                self.i += 1
                return items
            if c == ",":
                if expect_item:
                    raise JsonError("stray comma in a JSON array", self.i)
                self.i += 1
                expect_item = True
                try:
                    if self._peek() == "]":
                        self._note("removed a trailing comma")
                except _Truncated:
                    raise _Truncated(items) from None
                continue
            if not expect_item:
                if c not in "{[\"'":
                    raise JsonError(f"expected ',' or ']' in a JSON array, got {c!r}", self.i)
                self._note("inserted a missing comma between array items")
            try:
                items.append(self._value(depth))
            except _Truncated as t:
                kept = self._keep_partial(t.partial)
                if kept is not None:
                    items.append(kept)
                raise _Truncated(items) from None
            expect_item = False

    def _key(self) -> str:
        c = self.s[self.i]
        if c in "\"'":
            return self._string()
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise JsonError(f"expected a key in a JSON object, got {c!r}", self.i)
        self.i = m.end()
        self._note("quoted an unquoted object key")
        return m.group()

    def _object(self, depth: int) -> JsonObject:
        self.i += 1
        obj = JsonObject()
        expect_item = True
        while True:
            try:
                c = self._peek()
            except _Truncated:
                raise _Truncated(obj) from None
            if c == "}":
                self.i += 1
                return obj
            if c == ",":
                if expect_item:
                    raise JsonError("stray comma in a JSON object", self.i)
                self.i += 1
                expect_item = True
                try:
                    if self._peek() == "}":
                        self._note("removed a trailing comma")
                except _Truncated:
                    raise _Truncated(obj) from None
                continue
            if not expect_item:
                if c not in "\"'":
                    raise JsonError(f"expected ',' or '}}' in a JSON object, got {c!r}", self.i)
                self._note("inserted a missing comma between object members")
            key = ""
            try:
                key = self._key()
                if self._peek() != ":":
                    raise JsonError(f"expected ':' after key {key!r}", self.i)
                self.i += 1
                value = self._value(depth)
            except _Truncated as t:
                kept = self._keep_partial(t.partial)
                if kept is not None and key not in obj:
                    obj[key] = kept  # a cut-off list keeps its complete items; anything else goes with its key
                raise _Truncated(obj) from None
            if key in obj:
                obj.duplicates.append((key, value))
            else:
                obj[key] = value
            expect_item = False


@dataclass(frozen=True)
class JsonCandidate:
    """One JSON value found in the text: the value, whether truncation cut it (then only its complete parts are
    kept), whether an incomplete object was dropped from it, and the notes on what reading it repaired."""

    value: Any
    truncated: bool
    dropped_incomplete: bool
    notes: tuple[str, ...]


def json_candidates(text: str, notes: list[str]) -> Iterator[JsonCandidate | JsonError]:
    """Every JSON value that starts at a bracket in `text`, left to right, skipping what a value already covered."""
    pos, attempts = 0, 0
    while True:
        starts = [k for k in (text.find("{", pos), text.find("[", pos)) if k >= 0]
        if not starts:
            return
        start = min(starts)
        attempts += 1
        if attempts > _MAX_START_ATTEMPTS:
            notes.append(f"stopped looking for JSON after {_MAX_START_ATTEMPTS} bracket positions")
            return
        reader = _Reader(text, start)
        try:
            value, truncated = reader.read()
        except JsonError as e:
            yield e
            pos = start + 1
            continue
        except RecursionError:  # pragma: no cover - depth is capped well below the interpreter's limit
            pos = start + 1
            continue
        yield JsonCandidate(value, truncated, reader.dropped_incomplete, tuple(reader.notes))
        if truncated:
            return
        pos = max(reader.i, start + 1)


# --------------------------------------------------------------------------------------------------------------
# Finding the answer inside the text
# --------------------------------------------------------------------------------------------------------------

_THINK_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)


def strip_reasoning(text: str, notes: list[str]) -> str:
    """Remove reasoning blocks: a draft inside them is not the answer, so it is never parsed."""
    out, n = _THINK_BLOCK.subn(" ", text)
    if n:
        notes.append(f"removed {n} <think> reasoning block(s)")
    closes = list(_THINK_CLOSE.finditer(out))
    if closes:  # templates that put <think> in the prompt leave only the closing tag in the answer
        out = out[closes[-1].end() :]
        notes.append("removed reasoning that ended with an unopened </think> tag")
    opened = _THINK_OPEN.search(out)
    if opened:
        out = out[: opened.start()]
        notes.append("removed an unclosed <think> block (the answer stopped while reasoning)")
    return out


def answer_sources(text: str) -> list[tuple[str, str]]:
    """Fenced code blocks first (the model marked them as the answer), then the whole text; each with its note."""
    fenced = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()]
    unfenced = _FENCE.sub(lambda m: "\n" + m.group(1) + "\n", text)
    return [*(("read the JSON inside a markdown code fence", f) for f in fenced), ("", unfenced)]
