"""Executable specification of invalidation conditions: a whitelisted expression language, evaluated by a tree walk.

Accepted expressions get their truth value checked against a table; rejected ones (code, strings, unknown names,
overflowing literals) must come back as None, i.e. stay free text. Undecidable evaluations (NaN, missing values,
division by zero) answer False, so a position is never closed on missing data. Hypothesis checks that no text
raises and that whatever compiles contains only whitelisted nodes.
"""

from __future__ import annotations

import ast
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena_lib.agents.llm.invalidation import (
    CONDITION_FIELDS,
    MAX_LENGTH,
    Condition,
    compile_condition,
    describe_fields,
)

VALUES = {
    "price": 100.0,
    "ema20": 95.0,
    "ema50": 90.0,
    "rsi14": 25.0,
    "rsi7": 80.0,
    "macd": -1.5,
    "macd_signal": -1.0,
    "atr14": 2.0,
    "entry_price": 110.0,
    "unrealized_pnl_pct": -9.0,
    "funding_rate": 0.0001,
}

ACCEPTED = [
    ("price < 105", True),
    ("price < 95", False),
    ("price <= 100", True),
    ("price >= 100.5", False),
    ("price == 100", True),
    ("price != 100", False),
    ("90 < price < 110", True),
    ("ema50 < ema20 < price", True),
    ("ema50 < price < ema20", False),
    ("price < ema20 and rsi14 < 30", False),
    ("price < ema20 or rsi14 < 30", True),
    ("price < ema20 AND rsi14 < 30", False),
    ("price > ema20 And rsi14 < 30", True),
    ("price < ema20 OR rsi14 < 30", True),
    ("NOT price > 200", True),
    ("not (price > 50)", False),
    ("price > ema20 && rsi7 > 70", True),
    ("price > 1000 || macd < macd_signal", True),
    ("price < entry_price - 2 * atr14", True),
    ("price < entry_price - 6 * atr14", False),
    ("price > entry_price - 6 * atr14", True),
    ("(price - entry_price) / entry_price * 100 < -5", True),
    ("unrealized_pnl_pct <= -8", True),
    ("-macd > 1", True),
    ("+price > 99", True),
    ("macd < -1", True),
    ("funding_rate > 0.00005", True),
    ("price < 1e3", True),
    ("  price < 105  ", True),
    ("(price < 90 or rsi14 < 30) and not (macd > 0)", True),
]

REJECTED = [
    "__import__('os').system('x')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "open('f')",
    "price if rsi14 else ema20",
    "[1][0]",
    '"a" < "b"',
    "price < '100'",
    "volume_24h < 5",  # not an offered field
    "os < 1",
    "price < 1e309",  # overflows to inf
    "price < " + "9" * 400,  # an int too large for a float (and too long)
    "price < 1j",
    "price < True",
    "price",  # a number is not a condition
    "price + 1",
    "1 < 2",  # names no market value
    "not 1",
    "price and rsi14",
    "(price < 1) + 1 > 0",
    "price ** 2 > 4",
    "price // 2 > 4",
    "price % 2 == 0",
    "price << 2 > 4",
    "price is 100",
    "price in (1, 2)",
    "price < 100 if True else False",
    "lambda: price < 1",
    "[x for x in range(3)]",
    "(price := 5) > 1",
    "price.real < 1",
    "f'{price}' < 1",
    "price = 100",
    "price < 100; import os",
    "import os",
    "",
    "   ",
    "the trade is invalid if BTC closes below the 4h EMA50",
    "price < 100 and",
    "price < ema20 and " * 20 + "price < 1",  # over MAX_LENGTH
    "-" * 30 + "price < 1",  # fine on length, too deep
]
LONG_BUT_WITHIN_LIMITS = "price<1 and " * 12 + "price<1"


def test_fields_match_the_documented_names() -> None:
    fields = describe_fields()
    assert frozenset(fields) == CONDITION_FIELDS
    assert {"price", "ema20", "rsi14_4h", "atr3_4h", "funding_rate", "entry_price", "unrealized_pnl_pct"} <= set(fields)
    assert all(isinstance(v, str) and v for v in fields.values())
    fields["price"] = "changed"  # a copy: callers cannot change the module's table
    assert describe_fields()["price"] != "changed"


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_expressions_evaluate(text: str, expected: bool) -> None:
    cond = compile_condition(text, CONDITION_FIELDS)
    assert cond is not None, text
    assert cond.evaluate(VALUES) is expected
    assert cond.source == text.strip()
    assert cond.names <= CONDITION_FIELDS


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_expressions_stay_text(text: str) -> None:
    assert compile_condition(text, CONDITION_FIELDS) is None


def test_a_long_flat_conjunction_within_the_limits_is_accepted() -> None:
    text = LONG_BUT_WITHIN_LIMITS
    assert len(text) <= MAX_LENGTH
    cond = compile_condition(text, CONDITION_FIELDS)
    assert cond is not None
    assert cond.evaluate(VALUES) is False


def test_names_are_the_fields_used() -> None:
    cond = compile_condition("price < ema20 and rsi14 < 30 or price < ema20", CONDITION_FIELDS)
    assert cond is not None
    assert cond.names == frozenset({"price", "ema20", "rsi14"})


def test_fields_argument_limits_the_names() -> None:
    assert compile_condition("spread > 2", ["spread"]) is not None
    assert compile_condition("spread > 2", CONDITION_FIELDS) is None
    assert compile_condition("price > 2", ["spread"]) is None


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("price < 50", {**VALUES, "price": math.nan}),
        ("not (price > 50)", {**VALUES, "price": math.nan}),  # `not` must not turn "unknown" into True
        ("price > 50 or rsi14 > 90", {**VALUES, "rsi14": math.nan}),  # one unknown value decides nothing
        ("price > 50", {"rsi14": 20.0}),  # missing
        ("price > 50", {**VALUES, "price": math.inf}),
        ("price > 50", {**VALUES, "price": None}),
        ("price > 50", {**VALUES, "price": "101"}),  # values are numbers, not text to convert
        ("not (price / (ema20 - 95) > 1)", VALUES),  # division by zero
        ("price * 1e308 * 10 > 0", VALUES),  # overflow to inf
    ],
)
def test_undecidable_conditions_answer_false(text: str, values: dict[str, object]) -> None:
    cond = compile_condition(text, CONDITION_FIELDS)
    assert cond is not None
    assert cond.evaluate(values) is False  # type: ignore[arg-type]


def test_condition_is_frozen_and_compares_by_source() -> None:
    a = compile_condition("price < 90", CONDITION_FIELDS)
    b = compile_condition("price < 90", CONDITION_FIELDS)
    assert a == b
    assert isinstance(a, Condition)
    with pytest.raises(AttributeError):
        a.source = "price > 0"  # type: ignore[misc]


# -- property tests ---------------------------------------------------------------------------------------------

_WHITELIST = (
    ast.Expression,
    ast.Compare,
    ast.BoolOp,
    ast.UnaryOp,
    ast.BinOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.And,
    ast.Or,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Eq,
    ast.NotEq,
)

_TOKENS = st.sampled_from(
    [
        *sorted(CONDITION_FIELDS),
        *("0", "1", "2.5", "1e9", "1e400", "-3", "(", ")", "<", "<=", ">", ">=", "==", "!=", "+", "-", "*", "/"),
        *("**", "%", "//", "and", "or", "not", "AND", "Or", "&&", "||", ",", ".", "[", "]", "{", "}", ":", "="),
        *(";", "'", '"'),
        "__import__",
        "os",
        "open",
        "__class__",
        "lambda",
        "if",
        "else",
        "for",
        "in",
        "is",
        "True",
        "None",
        "x",
    ]
)
_EXPRESSION_LIKE = st.lists(_TOKENS, min_size=1, max_size=25).map(" ".join)

# Mostly well-formed expressions from the grammar, with some foreign atoms (calls, strings, attributes, unknown
# names) mixed in, so that the whitelist is exercised near its edge and not only by noise.
_ATOMS = st.sampled_from(
    [*sorted(CONDITION_FIELDS), "0", "2.5", "1e9", "1e400", "x", "open('f')", "'a'", "().__class__", "True", "[1][0]"]
)
_NUMERIC = st.recursive(
    _ATOMS,
    lambda t: (
        st.tuples(t, st.sampled_from(["+", "-", "*", "/", "**", "%"]), t).map(lambda p: f"({p[0]} {p[1]} {p[2]})")
        | t.map(lambda e: f"-{e}")
    ),
    max_leaves=6,
)
_COMPARISON = st.tuples(_NUMERIC, st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "is", "in"]), _NUMERIC).map(
    " ".join
)
_BOOLEAN = st.recursive(
    _COMPARISON,
    lambda t: (
        st.tuples(t, st.sampled_from(["and", "or", "AND", "||", "&&", "if"]), t).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        )
        | t.map(lambda e: f"not {e}")
    ),
    max_leaves=4,
)
_VALUE = st.floats(allow_nan=True, allow_infinity=True) | st.none()


def _check_whitelisted(cond: Condition, text: str) -> None:
    from arena_lib.agents.llm.invalidation import _normalize

    tree = ast.parse(_normalize(text.strip()), mode="eval")
    for node in ast.walk(tree):
        assert isinstance(node, _WHITELIST), (text, type(node).__name__)
        if isinstance(node, ast.Name):
            assert node.id in CONDITION_FIELDS
        if isinstance(node, ast.Constant):
            assert type(node.value) in (int, float)
            assert math.isfinite(node.value)
    assert cond.names <= CONDITION_FIELDS


@settings(max_examples=400, deadline=None)
@given(
    text=st.text(max_size=250) | _EXPRESSION_LIKE | _BOOLEAN,
    values=st.dictionaries(st.sampled_from(sorted(CONDITION_FIELDS)), _VALUE, max_size=len(CONDITION_FIELDS)),
)
def test_arbitrary_text_never_raises_and_never_leaves_the_whitelist(text: str, values: dict[str, float]) -> None:
    cond = compile_condition(text, CONDITION_FIELDS)
    if cond is None:
        return
    _check_whitelisted(cond, text)
    result = cond.evaluate(values)
    assert isinstance(result, bool)
    if any(values.get(n) is None or not math.isfinite(values[n]) for n in cond.names):
        assert result is False


_FINITE = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    a=_FINITE,
    b=_FINITE,
    c=_FINITE,
    op=st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    logic=st.sampled_from(["and", "or"]),
)
def test_evaluation_agrees_with_python_semantics(a: float, b: float, c: float, op: str, logic: str) -> None:
    text = f"price {op} ema20 {logic} not rsi14 - price {op} ema20 * 2"
    cond = compile_condition(text, CONDITION_FIELDS)
    assert cond is not None
    expected = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
    lhs, rhs = c - a, b * 2
    second = not {
        "<": lhs < rhs,
        "<=": lhs <= rhs,
        ">": lhs > rhs,
        ">=": lhs >= rhs,
        "==": lhs == rhs,
        "!=": lhs != rhs,
    }[op]
    want = (expected and second) if logic == "and" else (expected or second)
    assert cond.evaluate({"price": a, "ema20": b, "rsi14": c}) is want
