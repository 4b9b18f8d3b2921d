"""The segmentation expression language (contract §3.6): parsing, semantics, robustness."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mixpanel_data.emulator.expressions import (
    UNDEFINED,
    DateTime,
    ExpressionError,
    compile_filter,
    compile_value,
    evaluate,
    parse,
)

PROPS: dict[str, Any] = {
    "price": 19.99,
    "qty": 3,
    "name": "Running Shoes",
    "plan": "pro",
    "flag": True,
    "off": False,
    "tags": ["a", "b", 3],
    "cart": {"items": 2, "currency": "USD"},
    "nothing": None,
    "price_text": "19.99",
    "int_text": " 42 ",
    "seen": "2024-03-01T10:00:00",
    "time": 1_700_000_000,
}


def ev(text: str, props: dict[str, Any] | None = None, **kw: Any) -> Any:
    return evaluate(parse(text), properties=PROPS if props is None else props, **kw)


# -- semantics, table-driven ----------------------------------------------------------------

CASES: list[tuple[str, Any]] = [
    # literals and access
    ('properties["qty"]', 3),
    ('properties["missing"]', UNDEFINED),
    ('properties["nothing"]', UNDEFINED),
    ("'single' + \"double\"", "singledouble"),
    (r'"esc\"aped\\ \n \u00e9"', 'esc"aped\\ \n é'),
    ("[1, 2, 3]", [1, 2, 3]),
    ("[]", []),
    ("true", True),
    ("FALSE", False),
    ('properties["cart"]["items"]', 2),
    ('properties["cart"]["nope"]', UNDEFINED),
    ('properties["name"]["x"]', UNDEFINED),
    # arithmetic
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 - 2 - 1", 4),
    ("8 / 2 / 2", 2.0),
    ("7 % 3", 1),
    ("-7 % 3", -1),
    ("7.5 % 2", 1.5),
    ("1 / 0", UNDEFINED),
    ("1 % 0", UNDEFINED),
    ('properties["qty"] / 0', UNDEFINED),
    ('"a" + 1', UNDEFINED),
    ('properties["name"] - 1', UNDEFINED),
    ('-properties["qty"]', -3),
    ('-properties["name"]', UNDEFINED),
    ("--2", 2),
    ("1e3 + .5", 1000.5),
    ('properties["missing"] + 1', UNDEFINED),
    # equality: different types are never equal
    ('properties["qty"] == 3', True),
    ('properties["qty"] == 3.0', True),
    ('properties["qty"] == "3"', False),
    ('properties["price_text"] == 19.99', False),
    ('properties["flag"] == 1', False),
    ('properties["flag"] == true', True),
    ('properties["missing"] == properties["missing2"]', False),
    ('properties["missing"] != "x"', True),
    ('properties["plan"] != "pro"', False),
    ('properties["tags"] == ["a", "b", 3]', True),
    ('properties["tags"] == ["a", "b", "3"]', False),
    # ordering: numbers and datetimes only
    ('properties["price"] > 10', True),
    ('properties["price"] >= 19.99', True),
    ('properties["price"] < 19.99', False),
    ('properties["price_text"] > 10', UNDEFINED),
    ('"b" > "a"', UNDEFINED),
    ("true > false", UNDEFINED),
    ('properties["missing"] > 1', UNDEFINED),
    ('properties["seen"] >= "2024-01-01T00:00:00"', True),
    ('properties["seen"] < "2024-01-01"', False),
    ('properties["seen"] > datetime("2024-03-01T09:59:59")', True),
    ('datetime(1700000000) == datetime("2023-11-14T22:13:20")', True),
    # membership
    ('properties["qty"] in [1, 2, 3]', True),
    ('properties["qty"] in ["3"]', False),
    ('"b" in properties["tags"]', True),
    ('3 in properties["tags"]', True),
    ('"Shoes" in properties["name"]', True),
    ('"shoes" in properties["name"]', False),
    ('"currency" in properties["cart"]', True),
    ('1 in "123"', UNDEFINED),
    ('"x" in properties["missing"]', UNDEFINED),
    ('properties["qty"] not in [1, 2]', True),
    ('"Shoes" not in properties["name"]', False),
    # boolean logic: undefined counts as false
    ('properties["flag"] and properties["qty"] > 1', True),
    ('properties["missing"] > 1 or properties["flag"]', True),
    ('properties["missing"] > 1 and true', False),
    ('not properties["off"]', True),
    ('not properties["missing"] > 1', True),
    ('not properties["qty"] == 3', False),
    ("not not true", True),
    ('properties["name"] and true', False),  # a string value is not a boolean
    ('defined(properties["qty"])', True),
    ('defined(properties["missing"])', False),
    ('not defined(properties["nothing"])', True),
    ('defined(properties["qty"] / 0)', False),
    ("true or false and false", True),  # and binds tighter than or
    ('properties["qty"] > 1 == true', True),  # comparisons chain left to right
    # math functions
    ('floor(properties["price"])', 19),
    ('ceil(properties["price"])', 20),
    ('round(properties["price"])', 20),
    ("round(2.5)", 3),
    ("round(-2.5)", -2),
    ("floor(-0.5)", -1),
    ('floor(properties["name"])', UNDEFINED),
    ("floor(7)", 7),
    # casts
    ('number(properties["price_text"])', 19.99),
    ('number(properties["int_text"])', 42),
    ('number("abc")', UNDEFINED),
    ('number("nan")', UNDEFINED),
    ('number("1e999")', UNDEFINED),
    ("number(true)", 1),
    ('number(properties["missing"])', UNDEFINED),
    ('number(properties["price_text"]) == 19.99', True),
    ('string(properties["qty"])', "3"),
    ("string(2.0)", "2"),
    ("string(0.1)", "0.1"),
    ("string(true)", "true"),
    ('string(properties["tags"])', '["a","b",3]'),
    ('string([properties["missing"], 1])', "[null,1]"),
    ("string(datetime(0))", "1970-01-01T00:00:00"),
    ('string(properties["missing"])', UNDEFINED),
    ('boolean(properties["name"])', True),
    ('boolean("")', False),
    ("boolean(0)", False),
    ("boolean(0.5)", True),
    ("boolean([])", False),
    ('boolean(properties["missing"])', UNDEFINED),
    ('datetime("2024-01-02")', DateTime(datetime(2024, 1, 2, tzinfo=UTC).timestamp())),
    ('datetime(properties["name"])', UNDEFINED),
    # event and user namespaces
    ('event["qty"] == 3', True),
    ('user["plan"]', UNDEFINED),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_semantics(text: str, expected: Any) -> None:
    got = ev(text)
    if isinstance(expected, float):
        assert isinstance(got, float)
        assert got == pytest.approx(expected)
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_user_and_event_namespaces_read_their_own_mappings() -> None:
    expr = parse('user["$email"] == "a@b.c" and event["plan"] == "pro"')
    props = {"plan": "pro"}
    assert evaluate(expr, properties={}, event=props, user={"$email": "a@b.c"}) is True
    assert evaluate(expr, properties=props, user={"$email": "x@b.c"}) is False
    # event defaults to the properties themselves (an export record has one mapping)
    assert evaluate(expr, properties=props, user={"$email": "a@b.c"}) is True


# -- filters on export and engage records --------------------------------------------------


def test_time_filters_compare_the_export_time_as_a_datetime() -> None:
    midnight = int(datetime(2024, 4, 12, tzinfo=UTC).timestamp())
    records = [{"time": midnight + s} for s in (-1, 0, 3600, 86_399, 86_400)]
    # Airbyte's form: epoch seconds (contract §3.6)
    airbyte = compile_filter(
        f'properties["$time"]>=datetime({midnight}) and '
        f'properties["$time"]<datetime({midnight + 86_400})'
    )
    assert [airbyte(r) for r in records] == [False, True, True, True, False]
    # the docs' form: event["$time"] against an ISO string
    docs = compile_filter('event["$time"] >= datetime("2024-04-12T01:00:00")')
    assert [docs(r) for r in records] == [False, False, True, True, True]


def test_engage_last_seen_filter_compares_iso_datetimes() -> None:
    keep = compile_filter('properties["$last_seen"] >= "2023-01-01T00:00:00"')
    assert keep({"$last_seen": "2023-06-01T12:00:00"}) is True
    assert keep({"$last_seen": "2022-12-31T23:59:59"}) is False
    assert keep({}) is False


def test_filter_keeps_only_truthy_results() -> None:
    assert compile_filter('properties["qty"]')({"qty": 2}) is True
    assert compile_filter('properties["qty"]')({"qty": 0}) is False
    assert compile_filter('properties["qty"] / 0')({"qty": 2}) is False
    assert compile_filter('properties["name"]')({"name": ""}) is False


def test_compile_value_gives_the_segment_value() -> None:
    on = compile_value('properties["plan"] + "-" + string(floor(properties["price"] / 10) * 10)')
    assert on({"plan": "pro", "price": 42.5}) == "pro-40"
    assert on({"plan": "pro"}) is UNDEFINED


def test_constant_parts_are_folded_but_lists_are_fresh() -> None:
    on = compile_value("[1, 2]")
    first = on({})
    first.append(3)
    assert on({}) == [1, 2]
    assert compile_value('datetime("2024-01-01") + 0')({}) is UNDEFINED  # not a number
    assert compile_value('string(1 + 2) + properties["x"]')({"x": "!"}) == "3!"


def test_compiled_expressions_are_cached() -> None:
    text = 'properties["qty"] > 2'
    assert compile_filter(text) is compile_filter(text)
    assert parse(text) is parse(text)


# -- malformed input ------------------------------------------------------------------------

ERRORS: list[tuple[str, int, str]] = [
    ("", 0, "Empty expression"),
    ("   ", 3 - 3, "Empty expression"),
    ('properties["a"] == ', 19, "Unexpected token end of expression at position 19"),
    ('(properties["a"] == 1))', 22, "Unexpected token ')' at position 22"),
    ('properties["a"', 14, "expected ']'"),
    ("properties[a]", 11, "expected a quoted property name"),
    ("properties.a", 10, "Unexpected character '.'"),
    ('"unterminated', 0, "Unterminated string"),
    ("foo(1)", 0, "Unknown name 'foo'"),
    ("1 and 2", 0, "needs boolean operands"),
    ('properties["a"] or "x"', 19, "needs boolean operands"),
    ("not 5", 4, "needs boolean operands"),
    ('-"a"', 1, "Unary '-' needs a number"),
    ('floor("a")', 6, "floor() needs a number"),
    ('datetime("yesterday")', 9, "datetime() needs"),
    ("datetime(true)", 9, "datetime() needs"),
    ("1 = 1", 2, "Unexpected character '='"),
    ("1 ! 1", 2, "Unexpected character '!'"),
    ("[1, 2", 5, "expected ',' or ']'"),
    ("defined()", 8, "Unexpected token ')'"),
    ('"\\u12"', 1, "Invalid \\u escape"),
    ("1" * 400, 0, "Number too long"),
    ("(" * 80 + "1" + ")" * 80, 64, "nested too deeply"),
    ("+".join(["1"] * 300), 399, "nested too deeply"),  # the 200th "+"
]


@pytest.mark.parametrize(("text", "position", "message"), ERRORS)
def test_malformed_expressions_raise_with_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.position == position
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_message_names_the_token_and_position() -> None:
    with pytest.raises(ExpressionError, match=r"^Unexpected token '\)' at position 15$"):
        parse('properties["x"])')


@settings(max_examples=400, deadline=None)
@given(st.text())
@example(".²")  # "²".isdigit(): once an AssertionError in the tokenizer
def test_any_text_parses_or_raises_expression_error(text: str) -> None:
    try:
        expr = parse(text)
    except ExpressionError as err:
        position = err.position
    else:
        evaluate(expr, properties=PROPS)  # whatever parses also evaluates without raising
        return
    assert 0 <= position <= len(text)


TOKENS = st.sampled_from(
    [
        'properties["a"]', 'event["b"]', 'user["c"]', "(", ")", "[", "]", ",", "+", "-", "*",
        "/", "%", "==", "!=", ">", ">=", "<", "<=", " in ", " and ", " or ", " not ", "true",
        "false", "1", "2.5", "0", '"x"', "'y'", "defined(", "floor(", "round(", "ceil(",
        "boolean(", "number(", "string(", "datetime(", '"2024-01-01T00:00:00"', "1e400",
        "\\", '"', "'", "=", "!", ".", "$", " ",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=25))
def test_token_soup_parses_or_raises_expression_error(tokens: list[str]) -> None:
    text = "".join(tokens)
    try:
        expr = parse(text)
    except ExpressionError:
        return
    for props in ({}, PROPS, {"a": 0, "b": "x", "c": [1], "time": 5}):
        evaluate(expr, properties=props, user=props)


# -- generated expressions agree with an independent reference evaluator ---------------------

_U = object()  # the reference's own "undefined"
KEYS = ("a", "b", "c", "n", "s", "l", "d")


def _kind(v: Any) -> str:
    if v is _U:
        return "u"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    if isinstance(v, DateTime):
        return "dt"
    return "other"


def _ref_eq(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb or ka == "u":
        return False
    if ka == "list":
        return len(a) == len(b) and all(_ref_eq(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?")


def _ref_as_time(v: Any) -> float | None:
    if isinstance(v, DateTime):
        return v.epoch
    if isinstance(v, str) and _ISO.fullmatch(v):
        try:
            parts = [int(p) for p in re.split(r"[-T:]", v)]
            return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]
        except ValueError:
            return None
    return None


def _ref(node: tuple[Any, ...], props: dict[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "list":
        return [_ref(n, props) for n in node[1]]
    if op == "prop":
        v = props.get(node[1], _U)
        return _U if v is None else v
    if op == "neg":
        v = _ref(node[1], props)
        return -v if _kind(v) == "num" else _U
    if op == "not":
        return _ref(node[1], props) is not True
    if op == "call":
        fn, v = node[1], _ref(node[2], props)
        if fn == "defined":
            return v is not _U
        if fn in ("floor", "ceil", "round"):
            if _kind(v) != "num" or not math.isfinite(v):
                return _U
            if isinstance(v, int):
                return v
            return {"floor": math.floor, "ceil": math.ceil}.get(fn, lambda x: math.floor(x + 0.5))(
                v
            )
        if fn == "boolean":
            if v is _U:
                return _U
            if _kind(v) == "num":
                return v != 0 and v == v
            return bool(v) if _kind(v) in ("bool", "str", "list") else True
        if fn == "number":
            if _kind(v) == "bool":
                return int(v)
            if _kind(v) == "num":
                return v
            if _kind(v) == "str" and re.fullmatch(
                r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", v
            ):
                f = float(v)
                if not math.isfinite(f):
                    return _U
                return int(v) if re.fullmatch(r"\s*[+-]?\d+\s*", v) else f
            return _U
        if fn == "string":
            if _kind(v) == "str":
                return v
            if _kind(v) == "bool":
                return "true" if v else "false"
            if isinstance(v, int):
                return str(v)
            if isinstance(v, float):
                return str(int(v)) if v == int(v) else repr(v)
            if v is _U:
                return _U
            return json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=lambda o: None)
        raise AssertionError(fn)
    a, b = _ref(node[1], props), _ref(node[2], props)
    if op == "and":
        return a is True and b is True
    if op == "or":
        return a is True or b is True
    if op == "==":
        return _ref_eq(a, b)
    if op == "!=":
        return not _ref_eq(a, b)
    if op in ("<", "<=", ">", ">="):
        if _kind(a) == "num" and _kind(b) == "num":
            x, y = a, b
        else:
            x, y = _ref_as_time(a), _ref_as_time(b)  # type: ignore[assignment]
            if x is None or y is None:
                return _U
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if op == "in":
        if _kind(b) == "list":
            return any(_ref_eq(a, item) for item in b)
        if _kind(b) == "str":
            return a in b if _kind(a) == "str" else _U
        return _U
    if op == "+" and _kind(a) == "str" and _kind(b) == "str":
        return a + b
    if _kind(a) != "num" or _kind(b) != "num":
        return _U
    if op in ("/", "%") and b == 0:
        return _U
    result = {
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: a / b,
        "%": lambda: (
            (abs(a) % abs(b)) * (1 if a >= 0 else -1)
            if isinstance(a, int) and isinstance(b, int)
            else math.fmod(a, b)
        ),
    }[op]()
    return _U if isinstance(result, float) and not math.isfinite(result) else result


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(node: tuple[Any, ...]) -> str:
    """Fully parenthesised text."""
    op = node[0]
    if op == "lit":
        v = node[1]
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return _quote(v)
        return repr(v) if v >= 0 else f"(-{-v!r})"
    if op == "list":
        return "[" + ", ".join(_render(n) for n in node[1]) + "]"
    if op == "prop":
        return f"properties[{_quote(node[1])}]"
    if op == "neg":
        return f"(-{_render(node[1])})"
    if op == "not":
        return f"(not {_render(node[1])})"
    if op == "call":
        return f"{node[1]}({_render(node[2])})"
    return f"({_render(node[1])} {op} {_render(node[2])})"


_PREC = {"or": 1, "and": 2, "not": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
         "in": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6, "neg": 7}  # fmt: skip


def _render_min(node: tuple[Any, ...]) -> str:
    """Text with only the parentheses precedence needs (left-associative binaries)."""
    op = node[0]
    if op in ("lit", "prop"):
        return _render(node)
    if op == "list":
        return "[" + ",".join(_render_min(n) for n in node[1]) + "]"
    if op == "call":
        return f"{node[1]}({_render_min(node[2])})"
    if op in ("neg", "not"):
        inner = _render_min(node[1])
        if node[1][0] not in ("lit", "prop", "list", "call") or (
            node[1][0] == "lit" and not isinstance(node[1][1], bool | str) and node[1][1] < 0
        ):
            inner = f"({inner})"
        return ("-" if op == "neg" else "not ") + inner
    p = _PREC[op]

    def side(child: tuple[Any, ...], right: bool) -> str:
        text = _render_min(child)
        cp = _PREC.get(child[0], 9)
        if child[0] == "lit" and not isinstance(child[1], bool | str) and child[1] < 0:
            cp = 7
        if cp < p or (right and cp == p):
            return f"({text})"
        return text

    return f"{side(node[1], False)} {op} {side(node[2], True)}"


SCALARS = st.one_of(
    st.integers(-50, 50),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
    st.sampled_from(["", "a", "ab", "b a", "2024-01-01", "2024-05-05T10:00:00", "1.5", 'x"y']),
    st.booleans(),
)
PROP_VALUES = st.one_of(
    SCALARS,
    st.none(),
    st.lists(st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b"])), max_size=3),
)
PROPERTIES = st.dictionaries(st.sampled_from(KEYS), PROP_VALUES, max_size=len(KEYS))


BINARY_OPS = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in"]
CASTS = ["defined", "boolean", "number", "string"]


def _trees() -> st.SearchStrategy[tuple[Any, ...]]:
    leaf = st.one_of(
        SCALARS.map(lambda v: ("lit", v)),
        st.sampled_from(KEYS).map(lambda k: ("prop", k)),
    )

    def grow(children: st.SearchStrategy[tuple[Any, ...]]) -> st.SearchStrategy[tuple[Any, ...]]:
        boolish = children.filter(
            lambda n: (
                n[0] in ("prop", "and", "or", "not", "==", "!=", "<", ">", "<=", ">=", "in")
                or (n[0] == "lit" and isinstance(n[1], bool))
                or (n[0] == "call" and n[1] in ("defined", "boolean"))
            )
        )
        numberish = children.filter(
            lambda n: (
                n[0] in ("prop", "+", "-", "*", "/", "%", "neg")
                or (n[0] == "lit" and not isinstance(n[1], bool | str))
                or (n[0] == "call" and n[1] in ("floor", "ceil", "round", "number"))
            )
        )
        return st.one_of(
            st.tuples(
                st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in"]),
                children,
                children,
            ),
            st.tuples(st.sampled_from(["and", "or"]), boolish, boolish),
            st.tuples(st.just("not"), boolish),
            st.tuples(st.just("neg"), numberish),
            st.tuples(st.just("call"), st.sampled_from(["floor", "ceil", "round"]), numberish),
            st.tuples(
                st.just("call"),
                st.sampled_from(["defined", "boolean", "number", "string"]),
                children,
            ),
            st.lists(children, max_size=3).map(lambda items: ("list", tuple(items))),
        )

    return st.recursive(leaf, grow, max_leaves=12)


def _same(got: Any, want: Any) -> bool:
    if want is _U:
        return got is UNDEFINED
    if isinstance(want, float) and isinstance(got, float):
        return got == want or (math.isnan(got) and math.isnan(want))
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_same(g, w) for g, w in zip(got, want, strict=True))
        )
    return type(got) is type(want) and got == want


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees(), PROPERTIES)
def test_generated_expressions_match_the_reference(tree: tuple[Any, ...], props: dict[str, Any]):
    want = _ref(tree, props)
    full = evaluate(parse(_render(tree)), properties=props)
    assert _same(full, want), (_render(tree), props, full, want)
    minimal = evaluate(parse(_render_min(tree)), properties=props)
    assert _same(minimal, want), (_render_min(tree), props, minimal, want)
