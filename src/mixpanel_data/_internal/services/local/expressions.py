"""Mixpanel's segmentation expression language (contract §3.6) compiled to DuckDB SQL.

``where``, ``on`` and ``born_where`` are expressions evaluated per event. DuckDB is
statically typed and the language is not, so every node compiles to a ``Sql``
fragment of one *kind*: ``num`` (DOUBLE), ``str`` (VARCHAR), ``bool`` (BOOLEAN),
``dt`` (DOUBLE epoch seconds), ``json`` (a JSON value whose type is known only per
row: a property) or ``list`` (a list literal, kept as its items). SQL NULL is
Mixpanel's *undefined*. Operators dispatch on ``json_type`` where a kind is dynamic.

The semantics follow contract §3.6 and match the emulator's evaluator
(``mixpanel_data.emulator.expressions``), which a Hypothesis test checks against:

- a missing property and a JSON ``null`` are undefined; ``defined(x)`` tests that;
- ``==`` across types is false (so ``"5" == 5`` is false: a number sent as a string
  needs ``number(...)``), anything ``==`` undefined is false, ``!=`` its negation;
- ``< <= > >=`` order numbers, or datetimes (a string next to a datetime, or two ISO
  strings, read as datetimes); any other pair is undefined;
- ``in``: list membership, substring of a string, key of an object;
- ``and``/``or``/``not`` count only ``true`` as true;
- arithmetic is on numbers (``+`` also joins strings); ``/`` or ``%`` by zero is undefined;
- a ``where`` keeps an event whose value is truthy (``boolean(x)``, JavaScript-like).

Property access goes through ``property_sql`` only: a property whose typed column
(docs/typed-columns.md) holds every one of its values with their JSON type (no
unfit value in the whole table) is read from that column, as a ``str``, ``num`` or
``bool``; any other property from the ``properties`` JSON.

Not compiled locally (``LocalUnsupportedError``): ``user[...]`` (profile properties)
and ``string()`` of a list literal.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from mixpanel_data._internal.storage.meta_tables import sql_literal
from mixpanel_data.exceptions import ValidationError

__all__ = [
    "ExpressionSyntaxError",
    "LocalUnsupportedError",
    "Sql",
    "compile_expression",
    "filter_sql",
    "label_list_sql",
    "label_sql",
    "labels_sql",
    "number_sql",
    "property_sql",
    "typed_columns",
]

sql_string = sql_literal  # a SQL string literal (the storage layer's one quoting)

# Per query: property -> (column, kind) of the typed columns the compiler may read.
_TYPED: ContextVar[Mapping[str, tuple[str, str]] | None] = ContextVar("typed_columns", default=None)


@contextlib.contextmanager
def typed_columns(columns: Mapping[str, tuple[str, str]]) -> Iterator[None]:
    """Let `property_sql` read these typed columns (``{property: (column, kind)}``)."""
    token = _TYPED.set(columns)
    try:
        yield
    finally:
        _TYPED.reset(token)


class ExpressionSyntaxError(ValidationError):
    """A malformed expression (the message names the position)."""


class LocalUnsupportedError(ValidationError):
    """An expression or report the local engine cannot reproduce exactly."""


# --------------------------------------------------------------------------- tree

_Node = tuple[Any, ...]  # ("lit", value) ("list", items) ("prop", ns, name) ("index", target, key)
# ("unary", op, operand) ("bin", op, left, right) ("call", func, arg)

_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false"})
_FUNCTIONS: Final = frozenset(
    {"defined", "floor", "round", "ceil", "boolean", "number", "string", "datetime"}
)
_NAMESPACES: Final = frozenset({"properties", "event", "user"})
_COMPARE: Final = ("==", "!=", ">=", "<=", ">", "<")
_OPS: Final = (*_COMPARE, "+", "-", "*", "/", "%", "(", ")", "[", "]", ",")
_NUM_RE: Final = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DIGITS: Final = frozenset("0123456789")  # ASCII only: "²" is isdigit(), not a number
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_ESC: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}
_ISO_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?Z?",
    re.ASCII,  # \d is 0-9 only, as in DuckDB's regexes (RE2) and Mixpanel's JavaScript
)


def _fail(message: str, pos: int) -> ExpressionSyntaxError:
    return ExpressionSyntaxError(f"invalid expression: {message} at position {pos}")


def _tokens(text: str) -> list[tuple[str, object, int]]:
    out: list[tuple[str, object, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in "\"'":
            buf, j = [], i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\" and j + 1 < n:
                    esc = text[j + 1]
                    if esc == "u":
                        digits = text[j + 2 : j + 6]
                        if len(digits) != 4 or not all(
                            c in "0123456789abcdefABCDEF" for c in digits
                        ):
                            raise _fail("invalid \\u escape", j)
                        buf.append(chr(int(digits, 16)))
                        j += 6
                        continue
                    buf.append(_ESC.get(esc, esc))
                    j += 2
                    continue
                if text[j] == "\\":
                    break
                buf.append(text[j])
                j += 1
            if j >= n:
                raise _fail("unterminated string", i)
            out.append(("str", "".join(buf), i))
            i = j + 1
        elif ch in _DIGITS or (ch == "." and text[i + 1 : i + 2] in _DIGITS):
            m = _NUM_RE.match(text, i)
            assert m is not None
            word = m.group()
            value: object = float(word) if any(c in word for c in ".eE") else int(word)
            if (isinstance(value, float) and not math.isfinite(value)) or len(word) > 300:
                raise _fail("number out of range", i)
            out.append(("num", value, i))
            i = m.end()
        elif m := _IDENT_RE.match(text, i):
            word = m.group()
            if word.lower() in _KEYWORDS:
                out.append(("kw", word.lower(), i))
            else:
                out.append(("ident", word, i))
            i = m.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise _fail(f"unexpected character {ch!r}", i)
            out.append(("op", op, i))
            i += len(op)
    out.append(("end", None, n))
    return out


def _static(node: _Node) -> str | None:
    """The kind a node always has, or None when it depends on the row (for parse checks)."""
    tag = node[0]
    if tag == "lit":
        v = node[1]
        return "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "num"
    if tag == "list":
        return "list"
    if tag == "unary":
        return "bool" if node[1] == "not" else "num"
    if tag == "bin":
        if node[1] in (*_COMPARE, "in", "notin", "and", "or"):
            return "bool"
        return None if node[1] == "+" else "num"
    if tag == "call":
        return {"defined": "bool", "boolean": "bool", "string": "str", "datetime": "dt"}.get(
            node[1], "num"
        )
    return None


class _Parser:
    """Recursive descent, loosest first: or, and, not, comparison, + -, * / %, unary -."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def at(self, kind: str, value: object = None) -> bool:
        k, v, _ = self.toks[self.i]
        return k == kind and (value is None or v == value)

    def take(self) -> tuple[str, object, int]:
        tok = self.toks[self.i]
        if tok[0] != "end":
            self.i += 1
        return tok

    def expect(self, value: str) -> None:
        if not self.at("op", value):
            self.bad(f", expected {value!r}")
        self.take()

    def bad(self, hint: str = "") -> None:
        kind, value, pos = self.toks[self.i]
        shown = "end of expression" if kind == "end" else repr(value)
        raise _fail(f"unexpected {shown}{hint}", pos)

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > 64:
            raise _fail("nested too deeply", pos)

    def parse(self) -> _Node:
        if self.at("end"):
            raise _fail("empty expression", 0)
        node = self.logical("or")
        if not self.at("end"):
            self.bad()
        return node

    def boolean(self, node: _Node, op: str, pos: int) -> _Node:
        kind = _static(node)
        if kind not in (None, "bool"):
            raise _fail(f"'{op}' needs boolean operands", pos)
        return node

    def logical(self, op: str) -> _Node:
        def inner() -> _Node:
            return self.logical("and") if op == "or" else self.negation()

        left = inner()
        while self.at("kw", op):
            pos = self.take()[2]
            right = inner()
            left = ("bin", op, self.boolean(left, op, pos), self.boolean(right, op, pos))
        return left

    def negation(self) -> _Node:
        if self.at("kw", "not"):
            pos = self.take()[2]
            self.nest(pos)
            operand = self.negation()
            self.depth -= 1
            return ("unary", "not", self.boolean(operand, "not", pos))
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.binary(("+", "-"))
        while True:
            if self.at("op") and self.toks[self.i][1] in _COMPARE:
                op = str(self.take()[1])
            elif self.at("kw", "in"):
                self.take()
                op = "in"
            elif self.at("kw", "not") and self.toks[self.i + 1][:2] == ("kw", "in"):
                self.take()
                self.take()
                op = "notin"
            else:
                return left
            left = ("bin", op, left, self.binary(("+", "-")))

    def binary(self, ops: tuple[str, ...]) -> _Node:
        def inner() -> _Node:
            return self.binary(("*", "/", "%")) if ops[0] == "+" else self.unary()

        left = inner()
        while self.at("op") and self.toks[self.i][1] in ops:
            op = str(self.take()[1])
            left = ("bin", op, left, inner())
        return left

    def unary(self) -> _Node:
        if self.at("op", "-"):
            pos = self.take()[2]
            self.nest(pos)
            operand = self.unary()
            self.depth -= 1
            if _static(operand) not in (None, "num"):
                raise _fail("unary '-' needs a number", pos)
            return ("unary", "-", operand)
        node = self.primary()
        while self.at("op", "["):
            self.take()
            if not self.at("str"):
                self.bad(", expected a quoted property name")
            key = self.take()[1]
            self.expect("]")
            node = ("index", node, key)
        return node

    def primary(self) -> _Node:
        kind, value, pos = self.toks[self.i]
        if kind in ("num", "str"):
            self.take()
            return ("lit", value)
        if kind == "kw" and value in ("true", "false"):
            self.take()
            return ("lit", value == "true")
        if self.at("op", "("):
            self.take()
            self.nest(pos)
            node = self.logical("or")
            self.depth -= 1
            self.expect(")")
            return node
        if self.at("op", "["):
            self.take()
            self.nest(pos)
            items: list[_Node] = []
            if not self.at("op", "]"):
                items.append(self.logical("or"))
                while self.at("op", ","):
                    self.take()
                    items.append(self.logical("or"))
            self.expect("]")
            self.depth -= 1
            return ("list", tuple(items))
        if kind == "ident":
            name = str(value)
            if name in _NAMESPACES:
                self.take()
                self.expect("[")
                if not self.at("str"):
                    self.bad(", expected a quoted property name")
                key = self.take()[1]
                self.expect("]")
                return ("prop", name, key)
            if name.lower() in _FUNCTIONS:
                self.take()
                self.expect("(")
                self.nest(pos)
                arg = self.logical("or")
                self.depth -= 1
                self.expect(")")
                func = name.lower()
                if func == "datetime" and arg[0] == "lit" and _literal_epoch(arg[1]) is None:
                    raise _fail("datetime() needs epoch seconds or 'YYYY-MM-DDTHH:MM:SS'", pos)
                if func in ("floor", "round", "ceil") and _static(arg) not in (None, "num"):
                    raise _fail(f"{func}() needs a number", pos)
                return ("call", func, arg)
            raise _fail(f"unknown name {name!r}", pos)
        self.bad()
        raise AssertionError  # pragma: no cover - bad() raises


def _literal_epoch(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (m := _ISO_RE.fullmatch(value.strip())):
        y, mo, d, h, mi, s, _ = m.groups()
        try:
            from datetime import datetime

            datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
        except ValueError:
            return None
        return 0.0
    return None


@lru_cache(maxsize=512)
def parse(text: str) -> _Node:
    """Parse an expression; ``ExpressionSyntaxError`` (a ValidationError) when malformed."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------- SQL
# Everything below builds SQL text from compiled fragments and quoted literals.
# ruff: noqa: S608


@dataclass(frozen=True)
class Sql:
    """A compiled node: its SQL text and kind (``items`` for a list literal)."""

    kind: str  # num | str | bool | dt | json | list
    sql: str
    items: tuple[Sql, ...] = ()


_NUMERIC_TYPES: Final = "('BIGINT','UBIGINT','DOUBLE','HUGEINT')"
_ISO_SQL: Final = (
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?Z?$"
)
_NUMERIC_SQL: Final = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _json_path(key: str) -> str:
    return sql_string('$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"')


def property_sql(name: str, *, column: str = "properties", time: bool = True) -> Sql:
    """The one place a property is read: a JSON value (NULL when missing).

    ``$time`` is the event's time as a datetime: ``$time`` if the record has one, else
    the export's ``time`` field (epoch seconds), as the emulator reads it; ``time=False``
    reads the stored ``$time`` value as it is (``/events/properties`` does).
    """
    if name == "$time" and time:
        own = f"json_extract({column}, {_json_path('$time')})"
        raw = Sql(
            "json",
            f"(CASE WHEN coalesce({_jtype(own)} <> 'NULL', false) THEN {own} "
            f"ELSE json_extract({column}, {_json_path('time')}) END)",
        )
        return _datetime(raw)
    known = _TYPED.get()  # may load on first use: never test its truth
    typed = known.get(name) if known is not None and column.endswith("properties") else None
    if typed is not None:
        col, kind = typed
        ref = column[: -len("properties")] + '"' + col.replace('"', '""') + '"'
        return Sql(kind, f"CAST({ref} AS DOUBLE)" if kind == "num" else ref)
    return Sql("json", f"json_extract({column}, {_json_path(name)})")


_VARS = itertools.count()


def _lambda_var() -> str:
    """A fresh lambda parameter name (lambdas may nest)."""
    return f"_x{next(_VARS)}"


def _jtype(j: str) -> str:
    return f"json_type({j})"


def _num(v: Sql) -> str:
    """The value as a DOUBLE when it is a number, else NULL."""
    if v.kind == "num":
        return v.sql
    if v.kind == "json":
        return f"(CASE WHEN {_jtype(v.sql)} IN {_NUMERIC_TYPES} THEN CAST({v.sql} AS DOUBLE) END)"
    return "CAST(NULL AS DOUBLE)"


def _str(v: Sql) -> str:
    if v.kind == "str":
        return v.sql
    if v.kind == "json":
        return f"(CASE WHEN {_jtype(v.sql)} = 'VARCHAR' THEN {v.sql}->>'$' END)"
    return "CAST(NULL AS VARCHAR)"


def _bool(v: Sql) -> str:
    if v.kind == "bool":
        return v.sql
    if v.kind == "json":
        return f"(CASE WHEN {_jtype(v.sql)} = 'BOOLEAN' THEN CAST({v.sql} AS BOOLEAN) END)"
    return "CAST(NULL AS BOOLEAN)"


def _finite(expr: str) -> str:
    return f"(CASE WHEN isfinite({expr}) THEN {expr} END)"


def _iso_epoch(s: str) -> str:
    """Epoch seconds of an ISO ``YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z]`` string, else NULL."""
    t = f"regexp_replace({s}, '^\\s+|\\s+$', '', 'g')"
    parts = f"regexp_extract({t}, {sql_string(_ISO_SQL)}, ['y','mo','d','h','mi','s','f'])"
    return (
        f"(SELECT CASE WHEN p.y <> '' AND p.y <> '0000' THEN "
        f"epoch(try_strptime(p.y || '-' || p.mo || '-' || p.d || ' ' || "
        f"coalesce(nullif(p.h, ''), '00') || ':' || coalesce(nullif(p.mi, ''), '00') || ':' || "
        f"coalesce(nullif(p.s, ''), '00'), '%Y-%m-%d %H:%M:%S')) + "
        f"coalesce(CAST(nullif(rpad(p.f, 6, '0'), '000000') AS BIGINT), 0) / 1e6 END "
        f"FROM (SELECT unnest([{parts}]) AS p))"
    )


def _datetime(v: Sql) -> Sql:
    """``datetime(x)``: epoch seconds of a datetime, a number or an ISO string."""
    if v.kind == "dt":
        return v
    if v.kind == "num":
        return Sql("dt", _finite(v.sql))
    if v.kind == "str":
        return Sql("dt", _iso_epoch(v.sql))
    if v.kind == "json":
        return Sql("dt", f"coalesce({_num(v)}, {_iso_epoch(_str(v))})")
    return Sql("dt", "CAST(NULL AS DOUBLE)")


def _defined(v: Sql) -> str:
    if v.kind == "list":
        return "true"
    if v.kind == "json":
        return f"coalesce({_jtype(v.sql)} <> 'NULL', false)"
    return f"({v.sql} IS NOT NULL)"


def _equal(a: Sql, b: Sql) -> str:
    """``a == b``: always true or false (different types and undefined are unequal)."""
    if a.kind == "list" or b.kind == "list":
        if a.kind == "list" and b.kind == "list":
            if len(a.items) != len(b.items):
                return "false"
            return "(" + " AND ".join(["true", *map(_equal, a.items, b.items)]) + ")"
        lst, other = (a, b) if a.kind == "list" else (b, a)
        if other.kind != "json":
            return "false"
        j = other.sql
        checks = [
            _equal(item, Sql("json", f"json_extract({j}, '$[{i}]')"))
            for i, item in enumerate(lst.items)
        ]
        return (
            f"coalesce({_jtype(j)} = 'ARRAY' AND json_array_length({j}) = {len(lst.items)}"
            + "".join(f" AND {c}" for c in checks)
            + ", false)"
        )
    if a.kind == "json" and b.kind == "json":
        ta, tb = _jtype(a.sql), _jtype(b.sql)
        return (
            f"coalesce(CASE WHEN {ta} IN {_NUMERIC_TYPES} THEN {_num(a)} = {_num(b)} "
            f"WHEN {ta} = 'VARCHAR' THEN {_str(a)} = {_str(b)} "
            f"WHEN {ta} = 'BOOLEAN' THEN {_bool(a)} = {_bool(b)} "
            f"WHEN {ta} IN ('ARRAY','OBJECT') THEN {ta} = {tb} AND "
            f"CAST({a.sql} AS VARCHAR) = CAST({b.sql} AS VARCHAR) END, false)"
        )
    if a.kind == "json":
        a, b = b, a
    if b.kind == "json":
        if a.kind == "dt":
            return "false"
        conv = {"num": _num, "str": _str, "bool": _bool}[a.kind]
        return f"coalesce({a.sql} = {conv(b)}, false)"
    if a.kind != b.kind:
        return "false"
    return f"coalesce({a.sql} = {b.sql}, false)"


def _order(op: str, a: Sql, b: Sql) -> str:
    """``a < b`` etc.: numbers, or datetimes (strings read as ISO); else undefined."""
    num = f"{_num(a)} {op} {_num(b)}"
    if a.kind == "num" and b.kind == "num":
        return f"({num})"

    def is_dt(v: Sql) -> str:
        return "true" if v.kind == "dt" else "false"

    def is_str(v: Sql) -> str:
        if v.kind == "str":
            return "true"
        return f"coalesce({_jtype(v.sql)} = 'VARCHAR', false)" if v.kind == "json" else "false"

    def epoch(v: Sql) -> str:
        if v.kind == "dt":
            return v.sql
        if v.kind in ("str", "json"):
            return _iso_epoch(_str(v))
        return "CAST(NULL AS DOUBLE)"

    return (
        f"(CASE WHEN {_num(a)} IS NOT NULL AND {_num(b)} IS NOT NULL THEN {num} "
        f"WHEN {is_dt(a)} OR {is_dt(b)} OR ({is_str(a)} AND {is_str(b)}) "
        f"THEN {epoch(a)} {op} {epoch(b)} END)"
    )


def _member(item: Sql, box: Sql) -> str:
    """``item in box``: list membership, substring, object key; else undefined."""
    if box.kind == "list":
        return "(" + " OR ".join(["false", *(_equal(item, x) for x in box.items)]) + ")"
    substring = f"(strpos({box.sql if box.kind == 'str' else _str(box)}, {_str(item)}) > 0)"
    if box.kind == "str":
        return f"(CASE WHEN {_str(item)} IS NOT NULL THEN {substring} END)"
    if box.kind != "json":
        return "CAST(NULL AS BOOLEAN)"
    j = box.sql
    var = _lambda_var()
    element = Sql("json", var)
    if item.kind == "list":
        return f"(CASE WHEN {_jtype(j)} = 'ARRAY' THEN false END)"
    in_array = f"len(list_filter(CAST({j} AS JSON[]), lambda {var}: {_equal(item, element)})) > 0"
    return (
        f"(CASE {_jtype(j)} WHEN 'ARRAY' THEN {in_array} "
        f"WHEN 'VARCHAR' THEN CASE WHEN {_str(item)} IS NOT NULL THEN {substring} END "
        f"WHEN 'OBJECT' THEN CASE WHEN {_str(item)} IS NOT NULL "
        f"THEN list_contains(json_keys({j}), {_str(item)}) END END)"
    )


def _to_boolean(v: Sql) -> str:
    """``boolean(x)``: JavaScript truthiness; undefined stays undefined."""
    if v.kind == "bool":
        return v.sql
    if v.kind == "num":
        return f"({v.sql} <> 0)"
    if v.kind == "str":
        return f"(length({v.sql}) > 0)"
    if v.kind == "dt":  # a date is true; no date (undefined) stays undefined
        return f"(CASE WHEN {v.sql} IS NOT NULL THEN true END)"
    if v.kind == "list":
        return "true" if v.items else "false"
    j = v.sql
    return (
        f"(CASE {_jtype(j)} WHEN 'BOOLEAN' THEN CAST({j} AS BOOLEAN) "
        f"WHEN 'VARCHAR' THEN length({j}->>'$') > 0 "
        f"WHEN 'ARRAY' THEN json_array_length({j}) > 0 "
        f"WHEN 'OBJECT' THEN len(json_keys({j})) > 0 "
        f"WHEN 'NULL' THEN NULL ELSE CAST({j} AS DOUBLE) <> 0 END)"
    )


def _parse_number(s: str) -> str:
    t = f"regexp_replace({s}, '^\\s+|\\s+$', '', 'g')"
    return (
        f"(CASE WHEN regexp_full_match({t}, {sql_string(_NUMERIC_SQL)}) AND length({t}) <= 300 "
        f"THEN {_finite(f'CAST({t} AS DOUBLE)')} END)"
    )


def _to_number(v: Sql) -> str:
    if v.kind in ("num", "dt"):
        return v.sql
    if v.kind == "bool":
        return f"CAST({v.sql} AS DOUBLE)"
    if v.kind == "str":
        return _parse_number(v.sql)
    if v.kind == "list":
        return "CAST(NULL AS DOUBLE)"
    j = v.sql
    return (
        f"(CASE {_jtype(j)} WHEN 'BOOLEAN' THEN CAST(CAST({j} AS BOOLEAN) AS DOUBLE) "
        f"WHEN 'VARCHAR' THEN {_parse_number(_str(v))} "
        f"WHEN 'BIGINT' THEN CAST({j} AS DOUBLE) WHEN 'UBIGINT' THEN CAST({j} AS DOUBLE) "
        f"WHEN 'DOUBLE' THEN CAST({j} AS DOUBLE) END)"
    )


def _number_text(x: str) -> str:
    """How ``string()`` prints a number: whole values without ``.0`` (below 1e16)."""
    return (
        f"(CASE WHEN {x} = trunc({x}) AND abs({x}) < 1e16 "
        f"THEN CAST(CAST({x} AS BIGINT) AS VARCHAR) "
        f"ELSE CAST({x} AS VARCHAR) END)"
    )


def _to_string(v: Sql) -> str:
    if v.kind == "str":
        return v.sql
    if v.kind == "bool":
        return f"(CASE WHEN {v.sql} THEN 'true' WHEN NOT {v.sql} THEN 'false' END)"
    if v.kind == "num":
        return _number_text(v.sql)
    if v.kind == "dt":
        return (
            f"strftime(make_timestamp(CAST(floor({v.sql} * 1e6) AS BIGINT)), '%Y-%m-%dT%H:%M:%S')"
        )
    if v.kind == "list":
        raise LocalUnsupportedError("string() of a list literal is not computed locally")
    j = v.sql
    return (
        f"(CASE {_jtype(j)} WHEN 'VARCHAR' THEN {j}->>'$' "
        f"WHEN 'BOOLEAN' THEN CAST({j} AS VARCHAR) "
        f"WHEN 'BIGINT' THEN CAST({j} AS VARCHAR) WHEN 'UBIGINT' THEN CAST({j} AS VARCHAR) "
        f"WHEN 'DOUBLE' THEN {_number_text(f'CAST({j} AS DOUBLE)')} "
        f"WHEN 'ARRAY' THEN CAST({j} AS VARCHAR) WHEN 'OBJECT' THEN CAST({j} AS VARCHAR) END)"
    )


def _arith(op: str, a: Sql, b: Sql) -> Sql:
    x, y = _num(a), _num(b)
    if op == "+":
        both_str = a.kind in ("str", "json") and b.kind in ("str", "json")
        both_num = a.kind in ("num", "json") and b.kind in ("num", "json")
        if a.kind == "str" and b.kind == "str":
            return Sql("str", f"({a.sql} || {b.sql})")
        if not both_str:
            return Sql("num", _finite(f"({x} + {y})") if both_num else "CAST(NULL AS DOUBLE)")
        if not both_num:
            return Sql("str", f"({_str(a)} || {_str(b)})")
        return Sql(
            "json",
            f"(CASE WHEN {x} IS NOT NULL AND {y} IS NOT NULL "
            f"THEN to_json({_finite(f'({x} + {y})')}) "
            f"WHEN {_str(a)} IS NOT NULL AND {_str(b)} IS NOT NULL "
            f"THEN to_json({_str(a)} || {_str(b)}) END)",
        )
    if op in ("-", "*"):
        return Sql("num", _finite(f"({x} {op} {y})"))
    if op == "/":
        return Sql("num", f"(CASE WHEN {y} <> 0 THEN {_finite(f'({x} / {y})')} END)")
    # "%" keeps the sign of the dividend (fmod), as the emulator and JavaScript do.
    return Sql("num", f"(CASE WHEN {y} <> 0 THEN {_finite(f'fmod({x}, {y})')} END)")


def _condition(v: Sql) -> str:
    """Whether a value counts as true for and/or/not: only ``true`` does."""
    return f"coalesce({_bool(v)}, false)"


def _call(func: str, v: Sql) -> Sql:
    if func == "defined":
        return Sql("bool", _defined(v))
    if func in ("floor", "ceil", "round"):
        x = _num(v)
        body = f"floor({x} + 0.5)" if func == "round" else f"{func}({x})"
        return Sql("num", body)  # half up, as JavaScript's Math.round
    if func == "boolean":
        return Sql("bool", _to_boolean(v))
    if func == "number":
        return Sql("num", _to_number(v))
    if func == "string":
        return Sql("str", _to_string(v))
    return _datetime(v)


def _compile(node: _Node, column: str) -> Sql:
    tag = node[0]
    if tag == "lit":
        value = node[1]
        if isinstance(value, bool):
            return Sql("bool", "true" if value else "false")
        if isinstance(value, str):
            if "\0" in value:
                raise LocalUnsupportedError("a NUL character in a string literal")
            return Sql("str", sql_string(value))
        return Sql("num", f"CAST({float(value)!r} AS DOUBLE)")
    if tag == "list":
        items = tuple(_compile(i, column) for i in node[1])
        return Sql("list", "NULL", items)
    if tag == "prop":
        if node[1] == "user":
            raise LocalUnsupportedError(
                'user["..."] (profile properties) is not computed locally; '
                "filter on event properties or run the live report"
            )
        return property_sql(str(node[2]), column=column)
    if tag == "index":
        target = _compile(node[1], column)
        if target.kind != "json":
            return Sql("json", "CAST(NULL AS JSON)")
        return Sql("json", f"json_extract({target.sql}, {_json_path(str(node[2]))})")
    if tag == "unary":
        operand = _compile(node[2], column)
        if node[1] == "not":
            return Sql("bool", f"(NOT {_condition(operand)})")
        return Sql("num", f"(- {_num(operand)})")
    if tag == "call":
        return _call(str(node[1]), _compile(node[2], column))
    op, left, right = node[1], _compile(node[2], column), _compile(node[3], column)
    if op in ("and", "or"):
        return Sql("bool", f"({_condition(left)} {op.upper()} {_condition(right)})")
    if op == "==":
        return Sql("bool", _equal(left, right))
    if op == "!=":
        return Sql("bool", f"(NOT {_equal(left, right)})")
    if op in ("in", "notin"):
        found = _member(left, right)
        return Sql("bool", found if op == "in" else f"(NOT {found})")
    if op in _COMPARE:
        return Sql("bool", _order(op, left, right))
    return _arith(str(op), left, right)


def compile_expression(text: str, *, column: str = "properties") -> Sql:
    """Compile an expression over the JSON column ``column``."""
    return _compile(parse(text), column)


def filter_sql(text: str, *, column: str = "properties") -> str:
    """A ``where``: SQL that is true for the events Mixpanel keeps (truthy values)."""
    return f"coalesce({_to_boolean(compile_expression(text, column=column))}, false)"


def number_sql(text: str, *, column: str = "properties") -> str:
    """An ``on`` for numeric reports: the value as a DOUBLE when it is a number, else NULL."""
    return _num(compile_expression(text, column=column))


def _label(v: Sql) -> str:
    return f"coalesce({_to_string(v)}, 'undefined')"


def labels_sql(text: str, *, column: str = "properties") -> str:
    """An ``on`` for segments: a VARCHAR[] of the event's segment labels."""
    v = compile_expression(text, column=column)
    if v.kind == "list":
        raise LocalUnsupportedError("a list literal as a segment is not computed locally")
    return label_list_sql(v)


def label_sql(text: str, *, column: str = "properties") -> str | None:
    """An ``on`` that is never a list: its one segment label (None: use ``labels_sql``)."""
    v = compile_expression(text, column=column)
    return _label(v) if v.kind not in ("json", "list") else None


def label_list_sql(v: Sql) -> str:
    """A value's segment labels as a VARCHAR[].

    A list value puts the event in one segment per distinct item (as Mixpanel breaks
    down list properties); an empty list in none; undefined is ``"undefined"``.
    """
    if v.kind != "json":
        return f"[{_label(v)}]"
    j, var = v.sql, _lambda_var()
    return (
        f"(CASE WHEN {_jtype(j)} = 'ARRAY' THEN list_distinct(list_transform("
        f"CAST({j} AS JSON[]), lambda {var}: {_label(Sql('json', var))})) ELSE [{_label(v)}] END)"
    )
