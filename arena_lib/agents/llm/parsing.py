"""Turn an LLM's free-text answer into validated per-coin decisions, repairing only what is unambiguous.

Models wrap their JSON in prose, markdown fences and ``<think>`` blocks, write numbers as strings ("$1,200.50",
"5x", "70%"), use synonyms ("long", "exit"), leave trailing commas, and get cut off mid-object. This module finds the
JSON by scanning for brackets with a small tolerant parser that respects strings (never a greedy regex, never a
number picked out of prose), repairs form, and refuses meaning it would have to guess: an unknown coin, a second
decision for the same coin, a quantity of "a lot", or an object cut off by truncation is rejected with a message.
Every repair and every rejection is one line in `ParseResult.problems`, so the caller can log exactly what the model
said and what was done with it. A coin without a decision is the caller's HOLD. `parse_decisions` never raises.

The tolerant JSON reader is written here rather than taken from `json-repair` because the policy matters more than
the coverage: it has to tell a complete object from one that truncation closed, so that a cut-off answer loses its
last object instead of trading on half of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from arena_lib.agents.llm.schema import CoinDecision, Signal, coin_name, symbol_for_coin

_MAX_DEPTH = 32  # nesting deeper than any decision answer needs
_MAX_START_ATTEMPTS = 1000  # bracket positions tried per text, so adversarial prose stays cheap
_MAX_WRAPPER_DEPTH = 3  # how deep decisions may sit under wrapper keys like {"response": {...}}


@dataclass(frozen=True)
class ParseResult:
    """What came out of one answer.

    `decisions` is keyed by engine symbol (e.g. "BTC/USDT"); `problems` has one message per repair or rejection;
    `raw` is the text as received; `ok` is true when at least one decision is valid and nothing fatal happened.
    """

    decisions: dict[str, CoinDecision]
    problems: tuple[str, ...]
    raw: str
    ok: bool


# --------------------------------------------------------------------------------------------------------------
# A tolerant JSON reader that knows when it had to close things itself
# --------------------------------------------------------------------------------------------------------------


class _JsonError(Exception):
    """Not JSON (even tolerantly); `pos` is where reading stopped, to report the furthest attempt."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


class _Truncated(Exception):
    """The text ended inside a value; `partial` is what was complete so far (a list or dict), else None."""

    def __init__(self, partial: list[Any] | dict[str, Any] | None) -> None:
        super().__init__("truncated")
        self.partial = partial


class _Obj(dict[str, Any]):
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
            raise _JsonError(f"JSON nested deeper than {_MAX_DEPTH} levels", self.i)
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
            raise _JsonError(f"unexpected {s[start]!r} where a JSON value should be", start)
        end = m.end()
        if end >= len(s):
            raise _Truncated(None)  # "12" at the very end may have been "125": never trust it
        if s[end].isalnum() or s[end] in "._":
            raise _JsonError(f"malformed number {s[start : end + 1]!r}", end)
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
                        raise _JsonError(f"bad \\u escape {s[i : i + 6]!r}", i)
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
                raise _JsonError("single-quoted string with an apostrophe inside is ambiguous", i)
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
                    raise _JsonError("stray comma in a JSON array", self.i)
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
                    raise _JsonError(f"expected ',' or ']' in a JSON array, got {c!r}", self.i)
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
            raise _JsonError(f"expected a key in a JSON object, got {c!r}", self.i)
        self.i = m.end()
        self._note("quoted an unquoted object key")
        return m.group()

    def _object(self, depth: int) -> _Obj:
        self.i += 1
        obj = _Obj()
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
                    raise _JsonError("stray comma in a JSON object", self.i)
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
                    raise _JsonError(f"expected ',' or '}}' in a JSON object, got {c!r}", self.i)
                self._note("inserted a missing comma between object members")
            key = ""
            try:
                key = self._key()
                if self._peek() != ":":
                    raise _JsonError(f"expected ':' after key {key!r}", self.i)
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
class _Candidate:
    value: Any
    truncated: bool
    dropped_incomplete: bool
    notes: tuple[str, ...]


def _candidates(text: str, notes: list[str]) -> Iterator[_Candidate | _JsonError]:
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
        except _JsonError as e:
            yield e
            pos = start + 1
            continue
        except RecursionError:  # pragma: no cover - depth is capped well below the interpreter's limit
            pos = start + 1
            continue
        yield _Candidate(value, truncated, reader.dropped_incomplete, tuple(reader.notes))
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


def _strip_reasoning(text: str, notes: list[str]) -> str:
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


def _sources(text: str) -> list[tuple[str, str]]:
    """Fenced code blocks first (the model marked them as the answer), then the whole text; each with its note."""
    fenced = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()]
    unfenced = _FENCE.sub(lambda m: "\n" + m.group(1) + "\n", text)
    return [*(("read the JSON inside a markdown code fence", f) for f in fenced), ("", unfenced)]


_WRAPPER_KEYS = ("decisions", "decision", "trades", "actions", "orders")


@dataclass(frozen=True)
class _Shape:
    """Where the decisions sit in a parsed value: (coin key or None, item) pairs, plus notes on the shape."""

    pairs: list[tuple[str | None, Any]]
    notes: tuple[str, ...] = ()
    single: bool = False


def _decision_items(value: Any, symbols: Sequence[str], depth: int = 0) -> _Shape | None:
    """The decisions of a recognised answer shape, or None when the value is not an answer.

    Shapes: ``{"decisions": [...]}``, a bare non-empty list of objects, nof1's ``{"BTC": {...}, "ETH": {...}}``
    and a single decision object; one to three levels of wrapper objects around them are looked through.
    """
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return _Shape([(None, v) for v in value])
        return None
    if not isinstance(value, dict):
        return None
    lowered = {str(k).strip().lower(): k for k in value}
    for wk in _WRAPPER_KEYS:
        inner = value.get(lowered.get(wk, object()))
        if isinstance(inner, list):
            return _Shape([(None, v) for v in inner])
        if isinstance(inner, dict):
            shape = _decision_items(inner, symbols, _MAX_WRAPPER_DEPTH)
            if shape is not None:
                return shape
    if any(k in lowered for k in ("signal", "action")) and any(k in lowered for k in ("coin", "symbol", "asset")):
        return _Shape([(None, value)], single=True)
    if any(isinstance(v, dict) and symbol_for_coin(str(k), symbols) is not None for k, v in value.items()):
        ignored = [str(k) for k, v in value.items() if not isinstance(v, dict)]
        notes = tuple(f"ignored top-level key {k!r}: it is not a coin's decision object" for k in ignored)
        repeated = value.duplicates if isinstance(value, _Obj) else []  # so that a second "BTC" is reported
        members = [*value.items(), *repeated]
        return _Shape([(str(k), v) for k, v in members if isinstance(v, dict)], notes)
    if depth < _MAX_WRAPPER_DEPTH:
        for k, v in value.items():
            shape = _decision_items(v, symbols, depth + 1)
            if shape is not None:
                return _Shape(shape.pairs, (f"found the decisions under the key {k!r}", *shape.notes), shape.single)
    return None


# --------------------------------------------------------------------------------------------------------------
# One decision object: field names, values, then pydantic
# --------------------------------------------------------------------------------------------------------------

_FIELDS = frozenset(CoinDecision.model_fields)
_ALIASES = {
    "action": "signal",
    "symbol": "coin",
    "asset": "coin",
    "qty": "quantity",
    "take_profit": "profit_target",
    "tp": "profit_target",
    "sl": "stop_loss",
    "stop": "stop_loss",
    "reason": "justification",
    "reasoning": "justification",
    "rationale": "justification",
    "invalidation": "invalidation_condition",
}
_SYNONYM_WORDS: dict[Signal, tuple[str, ...]] = {
    Signal.BUY_TO_ENTER: ("buy", "long", "go_long", "enter_long", "buy_long", "open_long", "buy_to_open"),
    Signal.SELL_TO_ENTER: ("sell", "short", "go_short", "enter_short", "sell_short", "open_short", "sell_to_open"),
    Signal.CLOSE_POSITION: ("close", "exit", "exit_position", "flatten"),
    Signal.HOLD: ("wait", "no_action", "none", "stay", "hold_position"),
}
_SIGNAL_SYNONYMS = {word: sig for sig, words in _SYNONYM_WORDS.items() for word in words}
_SIGNAL_VALUES = frozenset(s.value for s in Signal)
_NULL_WORDS = frozenset({"", "null", "none", "n/a", "na", "nil", "-"})
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CURRENCY_WORDS = re.compile(r"\s*(?:usdt|usdc|usd|dollars?)\s*$", re.IGNORECASE)


class _Reject(Exception):
    """This coin's decision cannot be read without guessing."""


def _field_name(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


def _signal(raw: Any, notes: list[str], coin: str) -> Signal:
    if not isinstance(raw, str):
        raise _Reject(f"signal {raw!r} is not one of {[s.value for s in Signal]}")
    word = _field_name(raw)
    if word in _SIGNAL_VALUES:
        return Signal(word)
    if word in _SIGNAL_SYNONYMS:
        sig = _SIGNAL_SYNONYMS[word]
        notes.append(f"{coin}: read signal {raw!r} as {sig.value!r}")
        return sig
    raise _Reject(f"signal {raw!r} is not one of {[s.value for s in Signal]}")


def _number(field: str, raw: Any, coin: str, notes: list[str]) -> float | None:
    """A finite number from a number or a decorated numeric string; anything vaguer is rejected, naming the field."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise _Reject(f"{field} {raw!r} is a boolean, not a number")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        parsed = _number_from_text(field, raw, coin, notes)
        if parsed is None:
            return None
        value = parsed
    else:
        raise _Reject(f"{field} {raw!r} is not a number")
    if not math.isfinite(value):
        raise _Reject(f"{field} {raw!r} is not a finite number")
    if field == "confidence" and 1 < value <= 100:
        notes.append(f"{coin}: read confidence {raw!r} as a percentage ({value / 100:g})")
        value /= 100
    return value


def _number_from_text(field: str, raw: str, coin: str, notes: list[str]) -> float | None:
    text = raw.strip()
    if text.lower() in _NULL_WORDS:
        if text:
            notes.append(f"{coin}: read {field} {raw!r} as null")
        return None
    divisor = 1.0
    if field == "leverage" and re.fullmatch(r"x\s*\S+|\S+?\s*x", text, re.IGNORECASE):
        text = text.strip("xX ").strip()
    elif field == "confidence" and text.endswith("%"):
        text, divisor = text[:-1].strip(), 100.0
    elif field in ("profit_target", "stop_loss", "risk_usd"):
        text = _CURRENCY_WORDS.sub("", text.replace("$", "", 1)).strip()
    elif field == "quantity":
        unit = re.fullmatch(r"(.*?)\s*([A-Za-z]+)", text)
        if unit and unit.group(2).upper() == coin_name(coin):
            text = unit.group(1)
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if not _PLAIN_NUMBER.fullmatch(text):
        raise _Reject(f"{field} {raw!r} is not a number")
    value = float(text) / divisor
    notes.append(f"{coin}: read {field} {raw!r} as {value:g}")
    return value


def _text(field: str, raw: Any, coin: str, notes: list[str]) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        notes.append(f"{coin}: read {field} {raw!r} as text")
        return str(raw)
    raise _Reject(f"{field} {raw!r} is not text")


def _canonical_fields(obj: Mapping[str, Any], coin: str, notes: list[str]) -> dict[str, Any]:
    """Map the model's keys to CoinDecision fields; a field given twice with different values is ambiguous."""
    duplicates = obj.duplicates if isinstance(obj, _Obj) else []
    for key, value in duplicates:
        if value != obj[key]:
            raise _Reject(f"field {key!r} is given twice ({obj[key]!r} and {value!r})")
        notes.append(f"{coin}: field {key!r} is given twice with the same value")
    flat: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = _field_name(str(key))
        if name == "exit_plan" and isinstance(value, dict):
            notes.append(f"{coin}: read the fields of 'exit_plan' as decision fields")
            flat.extend((_field_name(str(k)), v) for k, v in value.items())
        else:
            flat.append((name, value))
    out: dict[str, Any] = {}
    for name, value in flat:
        field = _ALIASES.get(name, name)
        if field not in _FIELDS:
            notes.append(f"{coin}: ignored unknown field {name!r}")
            continue
        if field in out:
            if out[field] != value:
                raise _Reject(f"field {field!r} is given twice ({out[field]!r} and {value!r})")
            continue
        if field != name:
            notes.append(f"{coin}: read field {name!r} as {field!r}")
        out[field] = value
    return out


def _coin_decision(obj: Mapping[str, Any], coin: str, notes: list[str]) -> CoinDecision:
    fields = _canonical_fields(obj, coin, notes)
    fields["coin"] = coin
    if fields.get("signal") is None:
        raise _Reject("missing signal")
    fields["signal"] = _signal(fields["signal"], notes, coin)
    for name in ("quantity", "leverage", "profit_target", "stop_loss", "confidence", "risk_usd"):
        if name in fields:
            value = _number(name, fields[name], coin, notes)
            if value is None and name in ("quantity", "leverage"):
                del fields[name]
            else:
                fields[name] = value
    for name in ("invalidation_condition", "justification"):
        if name in fields:
            fields[name] = _text(name, fields[name], coin, notes)
    if fields["signal"] in (Signal.BUY_TO_ENTER, Signal.SELL_TO_ENTER):
        for name, default in (("quantity", 0), ("leverage", 1)):
            if name not in fields:
                notes.append(f"{coin}: {fields['signal'].value} without {name}; it defaults to {default}")
    try:
        return CoinDecision.model_validate(fields)
    except ValidationError as e:
        messages = []
        for err in e.errors():
            name = ".".join(str(p) for p in err["loc"])
            messages.append(f"{name} {err.get('input')!r}: {err['msg']}")
        raise _Reject("; ".join(messages)) from None


# --------------------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------------------


def _collect(
    pairs: list[tuple[str | None, Any]], symbols: Sequence[str], problems: list[str]
) -> dict[str, CoinDecision]:
    """Validate each item; one decision per coin (the first counts); every rejection named."""
    decisions: dict[str, CoinDecision] = {}
    seen: set[str] = set()
    tradable = ", ".join(coin_name(s) for s in symbols)
    for n, (key, item) in enumerate(pairs, start=1):
        if not isinstance(item, dict):
            problems.append(f"decision #{n} is not an object: {item!r}")
            continue
        inner = next((item[k] for k in item if _ALIASES.get(_field_name(str(k)), _field_name(str(k))) == "coin"), None)
        if (
            key is not None
            and inner is not None
            and symbol_for_coin(str(inner), symbols) != symbol_for_coin(key, symbols)
        ):
            problems.append(f"{key}: the entry under {key!r} says coin {inner!r}; rejected as ambiguous")
            continue
        coin = key if key is not None else inner
        if not isinstance(coin, str) or not coin.strip():
            problems.append(f"decision #{n} names no coin: {item!r}")
            continue
        coin = coin.strip()
        symbol = symbol_for_coin(coin, symbols)
        if symbol is None:
            problems.append(f"unknown coin {coin!r} (tradable: {tradable}); its decision was ignored")
            continue
        if symbol in seen:
            problems.append(f"{coin}: a second decision for {symbol} was ignored (one action per coin per round)")
            continue
        seen.add(symbol)
        try:
            decisions[symbol] = _coin_decision(item, coin, problems)
        except _Reject as e:
            problems.append(f"{coin}: decision rejected: {e}")
    return decisions


def _parse(text: str, symbols: Sequence[str]) -> ParseResult:
    problems: list[str] = []
    if not isinstance(text, str):
        return ParseResult({}, (f"the answer is not text: {type(text).__name__}",), str(text), False)
    if not text.strip():
        return ParseResult({}, ("the answer is empty",), text, False)
    body = _strip_reasoning(text, problems)
    if not body.strip():
        problems.append("nothing is left after the reasoning: the answer has no decisions")
        return ParseResult({}, tuple(problems), text, False)

    furthest: _JsonError | None = None
    found_json = False
    for source_note, source in _sources(body):
        for cand in _candidates(source, problems):
            if isinstance(cand, _JsonError):
                if furthest is None or cand.pos > furthest.pos:
                    furthest = cand
                continue
            found_json = True
            shape = _decision_items(cand.value, symbols)
            if shape is None:
                if cand.truncated and cand.value:
                    problems.append("the answer was cut off before any complete decision: nothing can be used")
                    return ParseResult({}, tuple(problems), text, False)
                continue
            problems.extend(n for n in (source_note, *cand.notes, *shape.notes) if n)
            if cand.truncated:
                if shape.single:
                    problems.append("the answer was cut off inside its only decision: rejected rather than guessed")
                    return ParseResult({}, tuple(problems), text, False)
                problems.append("the answer was cut off: its JSON was never closed; only complete objects were used")
                if cand.dropped_incomplete:
                    problems.append("dropped the incomplete object at the end of the cut-off answer")
            if not shape.pairs:
                problems.append("the answer's list of decisions is empty")
                return ParseResult({}, tuple(problems), text, False)
            decisions = _collect(shape.pairs, symbols, problems)
            if not decisions:
                problems.append("no valid decision in the answer")
            return ParseResult(decisions, tuple(problems), text, bool(decisions))
    if found_json:
        problems.append(
            "the answer has JSON but no decisions in a known shape ({'decisions': [...]}, [...] or {coin: {...}})"
        )
    elif furthest is not None:
        problems.append(f"no valid JSON in the answer: {furthest} (at character {furthest.pos})")
    else:
        problems.append("no JSON in the answer")
    return ParseResult({}, tuple(problems), text, False)


def parse_decisions(text: str, symbols: Sequence[str]) -> ParseResult:
    """Read one decision per coin from a model's answer; never raises (an internal fault becomes a problem)."""
    try:
        return _parse(text, symbols)
    except Exception as e:  # the agent loop must survive any answer; a bug here is reported, not raised
        return ParseResult({}, (f"internal error while parsing the answer: {type(e).__name__}: {e}",), str(text), False)
