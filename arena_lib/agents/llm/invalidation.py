"""Invalidation conditions: a model's "this trade is wrong if ..." as a safe, evaluable expression, or as free text.

nof1-style agents attach an invalidation condition to every position ("price < 95000 and rsi14 < 30"). When the
text is a plain comparison of the engine's named market values it can be checked every round; anything else stays
text for the log and the prompt, and is never executed. Safety comes from a whitelist, not a blacklist: the text is
parsed with `ast.parse(mode="eval")`, every node must be one of a handful of numeric/boolean node types, every name
one of the offered fields, and evaluation walks that tree itself. `eval`, `exec` and `compile` are never called.
"""

from __future__ import annotations

import ast
import math
import numbers
import operator
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

MAX_LENGTH = 200  # characters: a condition is a line, not a program
MAX_DEPTH = 20  # nesting of the expression tree
MAX_NODES = 100  # nodes in the expression tree

_FIELD_DESCRIPTIONS: dict[str, str] = {
    "price": "latest close of the trading timeframe (the current price)",
    "ema20": "20-period EMA of the trading-timeframe closes",
    "ema50": "50-period EMA of the trading-timeframe closes",
    "macd": "MACD line (EMA12 - EMA26) of the trading-timeframe closes",
    "macd_signal": "MACD signal line (9-period EMA of the MACD line)",
    "rsi7": "7-period RSI (Wilder) of the trading-timeframe closes, 0-100",
    "rsi14": "14-period RSI (Wilder) of the trading-timeframe closes, 0-100",
    "atr14": "14-period ATR (Wilder) of the trading timeframe, in price units",
    "volume": "volume of the latest closed bar, in base units",
    "close_4h": "close of the latest closed 4h bar",
    "ema20_4h": "20-period EMA of the 4h closes",
    "ema50_4h": "50-period EMA of the 4h closes",
    "atr3_4h": "3-period ATR of the 4h bars, in price units",
    "atr14_4h": "14-period ATR of the 4h bars, in price units",
    "rsi14_4h": "14-period RSI of the 4h closes, 0-100",
    "macd_4h": "MACD line of the 4h closes",
    "funding_rate": "latest settled funding rate, as a fraction per funding interval",
    "entry_price": "average entry price of the open position",
    "unrealized_pnl_pct": "unrealized PnL of the open position in percent of its margin",
}

CONDITION_FIELDS: frozenset[str] = frozenset(_FIELD_DESCRIPTIONS)


def describe_fields() -> dict[str, str]:
    """The field names a condition may use, each with a one-line meaning (for the prompt's instructions)."""
    return dict(_FIELD_DESCRIPTIONS)


_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_SIGN: dict[type[ast.unaryop], Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}

# Spelled-out logic models write: AND/OR/NOT in any case, and C-style && / ||. Strings are rejected later anyway,
# so rewriting inside one cannot smuggle anything through.
_WORDS = re.compile(r"\b(and|or|not)\b", re.IGNORECASE)


def _normalize(text: str) -> str:
    text = text.replace("&&", " and ").replace("||", " or ")
    return _WORDS.sub(lambda m: m.group(1).lower(), text)


class _Undefined(Exception):
    """The value is unknown (missing/NaN input, division by zero, overflow): the condition cannot be decided."""


class _Checker:
    """Accepts only the typed whitelist: numeric terms inside comparisons, comparisons inside boolean logic."""

    def __init__(self, fields: Collection[str]) -> None:
        self.fields = fields
        self.names: set[str] = set()
        self.nodes = 0

    def _count(self, depth: int) -> bool:
        self.nodes += 1
        return depth <= MAX_DEPTH and self.nodes <= MAX_NODES

    def boolean(self, node: ast.expr, depth: int = 0) -> bool:
        if not self._count(depth):
            return False
        if isinstance(node, ast.Compare):
            return (
                all(type(op) in _COMPARE for op in node.ops)
                and len(node.ops) == len(node.comparators)
                and all(self.numeric(n, depth + 1) for n in (node.left, *node.comparators))
            )
        if isinstance(node, ast.BoolOp):
            return isinstance(node.op, (ast.And, ast.Or)) and all(self.boolean(v, depth + 1) for v in node.values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self.boolean(node.operand, depth + 1)
        return False

    def numeric(self, node: ast.expr, depth: int) -> bool:
        if not self._count(depth):
            return False
        if isinstance(node, ast.Constant):
            # bool is an int subclass: True/False are not numbers here; 1e309 parses to inf and is refused.
            value = node.value
            return isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and node.id in self.fields:
                self.names.add(node.id)
                return True
            return False
        if isinstance(node, ast.BinOp):
            return (
                type(node.op) in _ARITHMETIC
                and self.numeric(node.left, depth + 1)
                and self.numeric(node.right, depth + 1)
            )
        if isinstance(node, ast.UnaryOp):
            return type(node.op) in _SIGN and self.numeric(node.operand, depth + 1)
        return False


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int literal too large for a float
        return False


@dataclass(frozen=True)
class Condition:
    """A whitelisted expression over named market values; build it with `compile_condition`.

    `evaluate` answers True only when every value it names is a finite number and the arithmetic is defined.
    Missing data, NaN, division by zero or overflow answer False: the condition exists to close a position, and
    a position must never be closed because a value was unavailable (the stop-loss still protects it).
    """

    source: str
    names: frozenset[str]
    _tree: ast.expr = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """Whether the condition holds for these values (False when it cannot be decided; see the class doc)."""
        try:
            for name in self.names:
                _lookup(values, name)
            return self._bool(self._tree, values)
        except (_Undefined, ArithmeticError):
            return False

    def _bool(self, node: ast.expr, values: Mapping[str, float]) -> bool:
        if isinstance(node, ast.Compare):
            left = self._num(node.left, values)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._num(right_node, values)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._bool(v, values) for v in node.values)
            return any(self._bool(v, values) for v in node.values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self._bool(node.operand, values)
        raise _Undefined(f"not a boolean node: {type(node).__name__}")  # unreachable for compiled conditions

    def _num(self, node: ast.expr, values: Mapping[str, float]) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            result = float(node.value)
        elif isinstance(node, ast.Name):
            result = _lookup(values, node.id)
        elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left, right = self._num(node.left, values), self._num(node.right, values)
            if isinstance(node.op, ast.Div) and right == 0:
                raise _Undefined("division by zero")
            result = _ARITHMETIC[type(node.op)](left, right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _SIGN:
            result = _SIGN[type(node.op)](self._num(node.operand, values))
        else:
            raise _Undefined(f"not a numeric node: {type(node).__name__}")  # unreachable for compiled conditions
        if not math.isfinite(result):
            raise _Undefined("overflow")
        return result


def _lookup(values: Mapping[str, float], name: str) -> float:
    raw = values.get(name)
    if raw is None:
        raise _Undefined(f"{name} is missing")
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):  # numpy floats are Real; text is not a value
        raise _Undefined(f"{name} is not a number: {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise _Undefined(f"{name} is not finite: {raw!r}")
    return value


def compile_condition(text: str, fields: Collection[str] = CONDITION_FIELDS) -> Condition | None:
    """The condition as a safe expression, or None when it is free text (kept as text, never executed).

    Accepted: comparisons (<, <=, >, >=, ==, !=, chained) of numbers, `fields` and + - * / arithmetic, combined
    with and/or/not (also AND/OR/NOT and &&/||). It must name at least one field: a condition about constants
    alone says nothing about the market. Anything else (calls, attributes, subscripts, strings, other names,
    over `MAX_LENGTH` characters, deeper than `MAX_DEPTH`) gives None.
    """
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return None
    source = text.strip()
    if not source:
        return None
    try:
        with warnings.catch_warnings():  # e.g. SyntaxWarning for "1 is 1": the text is refused below anyway
            warnings.simplefilter("ignore")
            tree = ast.parse(_normalize(source), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None
    checker = _Checker(frozenset(fields))
    if not checker.boolean(tree.body) or not checker.names:
        return None
    return Condition(source=source, names=frozenset(checker.names), _tree=tree.body)
