"""Mixpanel's segmentation expression language: the ``where``/``on`` filters (contract §3.6).

The emulator evaluates these per event, so an expression is parsed once into a
small tree (``Expr``) and compiled to nested closures; both steps are cached.

Semantics (contract §3.6, with the choices the docs leave open marked *):

- A missing property, and a JSON ``null`` (*), is ``UNDEFINED``.
- ``==`` between different types is ``false``; anything ``==`` undefined is
  ``false`` and ``!=`` is its negation (*).
- ``> >= < <=`` compare numbers, or datetimes; a string compared with a datetime,
  or two strings that both read as ISO datetimes (the Airbyte engage form
  ``properties["$last_seen"] >= "2023-01-01T00:00:00"``), compare as datetimes (*).
  Any other pair gives undefined.
- ``x in [..]`` is list membership, ``"a" in "abc"`` a substring test, ``"k" in obj``
  key membership (*); ``not in`` is accepted (*).
- ``and``/``or``/``not`` treat undefined as false (so ``not undefined`` is true (*)).
  A literal non-boolean operand is rejected at parse time; a non-boolean
  property value at run time counts as undefined (*).
- ``/`` or ``%`` by zero, arithmetic on non-numbers, and non-finite results are undefined.
  ``+`` also concatenates two strings.
- ``properties["$time"]`` / ``event["$time"]`` is the event time as a datetime: the
  export record's ``time`` field read as naive epoch seconds, which ``datetime(...)``
  of epoch seconds or of a naive ``"YYYY-MM-DDTHH:MM:SS"`` string compares against.
- ``boolean()`` follows JavaScript truthiness; ``number()`` parses numeric strings;
  ``string()`` prints whole floats without ``.0``.

Example::

    keep = compile_filter('properties["price"] > 10 and defined(properties["$insert_id"])')
    keep({"price": 19.99, "$insert_id": "a1"})  # True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from mixpanel_data.emulator.expression_syntax import (
    Binary,
    Call,
    Expr,
    ExpressionError,
    Index,
    ListLiteral,
    Literal,
    Prop,
    Unary,
    parse,
)
from mixpanel_data.emulator.expression_values import (
    UNDEFINED,
    DateTime,
    arith,
    equal,
    is_number,
    member,
    order_pair,
    round_number,
    to_boolean,
    to_datetime,
    to_number,
    to_string,
    truthy,
)

__all__ = [
    "BEHAVIOR_PREFIX",
    "UNDEFINED",
    "DateTime",
    "Expr",
    "ExpressionError",
    "compile_filter",
    "compile_value",
    "evaluate",
    "parse",
]

_COMPARISONS: Final = ("==", "!=", ">=", "<=", ">", "<")

_Fn = Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]], Any]
_EMPTY: Final[Mapping[str, Any]] = {}
# ``behaviors["x"]`` reads ``user[BEHAVIOR_PREFIX + "x"]``: engage puts the counts there.
BEHAVIOR_PREFIX: Final = "\x00behaviors:"


def _lookup(mapping: Mapping[str, Any], name: str) -> Any:
    value = mapping.get(name, UNDEFINED)
    return UNDEFINED if value is None else value


def _time_lookup(mapping: Mapping[str, Any]) -> Any:
    """``$time``: the export record's ``time`` (epoch seconds) as a datetime."""
    value = mapping.get("$time", UNDEFINED)
    if value is UNDEFINED or value is None:
        value = mapping.get("time", UNDEFINED)
    if is_number(value):
        return DateTime(float(value)) if math.isfinite(value) else UNDEFINED
    if isinstance(value, str):
        return to_datetime(value)
    return UNDEFINED if value is None else value


def _is_constant(node: Expr) -> bool:
    if isinstance(node, Prop):
        return False
    if isinstance(node, Literal):
        return True
    if isinstance(node, ListLiteral):
        return all(_is_constant(i) for i in node.items)
    if isinstance(node, Binary):
        return _is_constant(node.left) and _is_constant(node.right)
    if isinstance(node, Unary):
        return _is_constant(node.operand)
    if isinstance(node, Call):
        return _is_constant(node.arg)
    return _is_constant(node.target)


def _compile(node: Expr) -> _Fn:
    """Compile a node; parts without property access are computed once (constant folding)."""
    fn = _compile_node(node)
    if not isinstance(node, Literal) and _is_constant(node):
        value = fn(_EMPTY, _EMPTY, _EMPTY)
        if not isinstance(value, list):  # a list would be shared between evaluations
            return lambda p, e, u: value
    return fn


def _compile_node(node: Expr) -> _Fn:
    if isinstance(node, Literal):
        value = node.value
        return lambda p, e, u: value
    if isinstance(node, ListLiteral):
        items = [_compile(i) for i in node.items]
        return lambda p, e, u: [f(p, e, u) for f in items]
    if isinstance(node, Prop):
        name = node.name
        if node.namespace == "behaviors":  # read from the user mapping under a reserved key
            key = BEHAVIOR_PREFIX + name
            return lambda p, e, u: _lookup(u, key)
        slot = ("properties", "event", "user").index(node.namespace)
        if name == "$time" and slot != 2:
            if slot == 0:
                return lambda p, e, u: _time_lookup(p)
            return lambda p, e, u: _time_lookup(e)
        if slot == 0:
            return lambda p, e, u: _lookup(p, name)
        if slot == 1:
            return lambda p, e, u: _lookup(e, name)
        return lambda p, e, u: _lookup(u, name)
    if isinstance(node, Index):
        target, key = _compile(node.target), node.key

        def index(p: Mapping[str, Any], e: Mapping[str, Any], u: Mapping[str, Any]) -> Any:
            value = target(p, e, u)
            return _lookup(value, key) if isinstance(value, Mapping) else UNDEFINED

        return index
    if isinstance(node, Unary):
        operand = _compile(node.operand)
        if node.op == "not":
            return lambda p, e, u: not _as_condition(operand(p, e, u))

        def negate(p: Mapping[str, Any], e: Mapping[str, Any], u: Mapping[str, Any]) -> Any:
            value = operand(p, e, u)
            return -value if is_number(value) else UNDEFINED

        return negate
    if isinstance(node, Call):
        return _compile_call(node)
    return _compile_binary(node)


def _as_condition(value: Any) -> bool:
    # contract §3.6: and/or treat undefined as false; a non-boolean run-time value
    # is treated like undefined rather than failing the whole request.
    return value is True


def _compile_call(node: Call) -> _Fn:
    arg = _compile(node.arg)
    func = node.func
    if func == "defined":
        return lambda p, e, u: arg(p, e, u) is not UNDEFINED
    if func in ("floor", "round", "ceil"):
        return lambda p, e, u: round_number(func, arg(p, e, u))
    convert: Callable[[Any], Any] = {
        "boolean": to_boolean,
        "number": to_number,
        "string": to_string,
        "datetime": to_datetime,
    }[func]
    return lambda p, e, u: convert(arg(p, e, u))


def _compile_binary(node: Binary) -> _Fn:
    left, right, op = _compile(node.left), _compile(node.right), node.op
    if op == "and":
        return lambda p, e, u: _as_condition(left(p, e, u)) and _as_condition(right(p, e, u))
    if op == "or":
        return lambda p, e, u: _as_condition(left(p, e, u)) or _as_condition(right(p, e, u))
    if op == "==":
        return lambda p, e, u: equal(left(p, e, u), right(p, e, u))
    if op == "!=":
        return lambda p, e, u: not equal(left(p, e, u), right(p, e, u))
    if op == "in":
        return lambda p, e, u: member(left(p, e, u), right(p, e, u))
    if op == "notin":

        def not_member(p: Mapping[str, Any], e: Mapping[str, Any], u: Mapping[str, Any]) -> Any:
            found = member(left(p, e, u), right(p, e, u))
            return UNDEFINED if found is UNDEFINED else not found

        return not_member
    if op in _COMPARISONS:
        check: Callable[[Any, Any], bool] = {
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
        }[op]

        def compare(p: Mapping[str, Any], e: Mapping[str, Any], u: Mapping[str, Any]) -> Any:
            a, b = left(p, e, u), right(p, e, u)
            if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
                return check(a, b) if a == a and b == b else UNDEFINED  # NaN is unordered
            if type(a) is DateTime and type(b) is DateTime:
                return check(a.epoch, b.epoch)
            pair = order_pair(a, b)
            return UNDEFINED if pair is None else check(pair[0], pair[1])

        return compare
    return lambda p, e, u: arith(op, left(p, e, u), right(p, e, u))


@lru_cache(maxsize=512)
def _compiled(expr: Expr) -> _Fn:
    return _compile(expr)


def evaluate(
    expr: Expr,
    *,
    properties: Mapping[str, Any],
    event: Mapping[str, Any] | None = None,
    user: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate a parsed expression; ``event[...]`` defaults to ``properties``."""
    return _compiled(expr)(
        properties, properties if event is None else event, _EMPTY if user is None else user
    )


@lru_cache(maxsize=256)
def compile_filter(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``where`` filter: the callable gets a record's properties, True keeps it.

    Export passes an event's properties (``event[...]`` reads the same mapping);
    engage passes a profile's ``$properties``. Undefined results drop the record.
    """
    fn = _compiled(parse(text))
    return lambda props: truthy(fn(props, props, _EMPTY))


@lru_cache(maxsize=256)
def compile_value(text: str) -> Callable[[Mapping[str, Any]], Any]:
    """Compile an ``on`` expression: the callable gives the segment value (maybe UNDEFINED)."""
    fn = _compiled(parse(text))
    return lambda props: fn(props, props, _EMPTY)
