"""Turn an LLM's free-text answer into validated per-coin decisions, repairing only what is unambiguous.

`arena_lib.agents.llm.json_reader` finds and reads the answer's JSON (fences, ``<think>`` blocks, trailing commas,
truncation); this module maps what it read onto the canonical decision fields. Models write numbers as strings
("$1,200.50", "5x", "70%"), use synonyms ("long", "exit", "tp") and wrap their decisions in objects of their own;
all of that is repaired, while meaning it would have to guess is refused: an unknown coin, a second decision for
the same coin, a field given twice with different values, a quantity of "a lot", or an object cut off by
truncation is rejected with a message. Every repair and every rejection is one line in `ParseResult.problems`, so
the caller can log exactly what the model said and what was done with it. A coin without a decision is the
caller's HOLD. `parse_decisions` never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from arena_lib.agents.llm.json_reader import JsonError, JsonObject, answer_sources, json_candidates, strip_reasoning
from arena_lib.agents.llm.schema import CoinDecision, Signal, coin_name, symbol_for_coin

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
# Where the decisions sit in what the reader found
# --------------------------------------------------------------------------------------------------------------

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
        repeated = value.duplicates if isinstance(value, JsonObject) else []  # so that a second "BTC" is reported
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
    duplicates = obj.duplicates if isinstance(obj, JsonObject) else []
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
    body = strip_reasoning(text, problems)
    if not body.strip():
        problems.append("nothing is left after the reasoning: the answer has no decisions")
        return ParseResult({}, tuple(problems), text, False)

    furthest: JsonError | None = None
    found_json = False
    for source_note, source in answer_sources(body):
        for cand in json_candidates(source, problems):
            if isinstance(cand, JsonError):
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
