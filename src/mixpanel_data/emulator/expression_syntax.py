"""Tokens, tree and parser of the segmentation expression language (contract §3.6).

``parse`` turns text into a small frozen tree (``Expr``) and raises
``ExpressionError`` with the offending position for any malformed input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, NoReturn

from mixpanel_data.emulator.expression_values import UNDEFINED, to_datetime, type_name

__all__ = [
    "MAX_DEPTH",
    "MAX_NESTING",
    "Binary",
    "Call",
    "Expr",
    "ExpressionError",
    "Index",
    "ListLiteral",
    "Literal",
    "Prop",
    "Unary",
    "parse",
]

# Deeper trees are refused: Mixpanel's own limits are unknown, this one keeps
# parsing, hashing and evaluation far from Python's recursion limit.
MAX_DEPTH: Final = 200  # tree depth (e.g. a long chain of `+`)
MAX_NESTING: Final = 64  # brackets, calls and prefix operators inside each other


class ExpressionError(ValueError):
    """A malformed expression; ``.position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, eq=False)
class Literal:
    """A string, number or boolean literal.

    Compared by identity: ``True == 1 == 1.0`` in Python, and trees that differ
    only in such literals must not share a compiled (cached) evaluator.
    """

    value: str | int | float | bool
    pos: int


@dataclass(frozen=True)
class ListLiteral:
    """``[a, b, c]``."""

    items: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True)
class Prop:
    """``properties["x"]``, ``event["x"]``, ``user["x"]`` or ``behaviors["x"]``."""

    namespace: str
    name: str
    pos: int


@dataclass(frozen=True)
class Index:
    """``<expr>["key"]`` on a nested object value."""

    target: Expr
    key: str
    pos: int


@dataclass(frozen=True)
class Unary:
    """``-x`` or ``not x``."""

    op: str
    operand: Expr
    pos: int


@dataclass(frozen=True)
class Binary:
    """``a <op> b``; ``op`` is one of ``+ - * / % == != > >= < <= in notin and or``."""

    op: str
    left: Expr
    right: Expr
    pos: int


@dataclass(frozen=True)
class Call:
    """``defined floor round ceil boolean number string datetime`` applied to one argument."""

    func: str
    arg: Expr
    pos: int


Expr = Literal | ListLiteral | Prop | Index | Unary | Binary | Call

# ``behaviors["name"]`` is engage's count of a named ``behaviors`` selector (contract §3.6).
NAMESPACES: Final = frozenset({"properties", "event", "user", "behaviors"})
FUNCTIONS: Final = frozenset(
    {"defined", "floor", "round", "ceil", "boolean", "number", "string", "datetime"}
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false"})
_COMPARISONS: Final = ("==", "!=", ">=", "<=", ">", "<")
_OPERATORS: Final = (*_COMPARISONS, "+", "-", "*", "/", "%", "(", ")", "[", "]", ",")

# --------------------------------------------------------------------------- tokens

_NUMBER_RE: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS: Final = frozenset("0123456789")  # ASCII only: "²" is isdigit(), not a number
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "0": "\0",
    "/": "/",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


@dataclass(frozen=True)
class _Token:
    kind: str  # "num" | "str" | "ident" | "op" | "end"
    value: Any
    pos: int
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "\"'":
            value, end = _read_string(text, i)
            tokens.append(_Token("str", value, i, text[i:end]))
            i = end
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            assert m is not None  # the first character is a digit or ".<digit>"
            tokens.append(_Token("num", _number_literal(m.group(), i), i, m.group()))
            i = m.end()
            continue
        m = _IDENT_RE.match(text, i)
        if m is not None:
            word = m.group()
            kind = "kw" if word.lower() in _KEYWORDS else "ident"
            tokens.append(_Token(kind, word.lower() if kind == "kw" else word, i, word))
            i = m.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(_Token("op", op, i, op))
                i += len(op)
                break
        else:
            raise ExpressionError(f"Unexpected character {ch!r} at position {i}", position=i)
    tokens.append(_Token("end", None, n, "end of expression"))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = text[i + 1]
            if esc == "u":
                digits = text[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise ExpressionError(f"Invalid \\u escape at position {i}", position=i)
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(esc, esc))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError(f"Unterminated string starting at position {start}", position=start)


def _number_literal(text: str, pos: int) -> int | float:
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise ExpressionError(f"Number out of range at position {pos}", position=pos)
        return value
    if len(text) > 300:
        raise ExpressionError(f"Number too long at position {pos}", position=pos)
    return int(text)


# --------------------------------------------------------------------------- parser

# Static result types, used to reject `1 and 2` at parse time (contract §3.6:
# "other non-boolean operands are an error"). None means "known only at run time".
_NUMBER_OPS: Final = frozenset({"-", "*", "/", "%"})
_BOOL_OPS: Final = frozenset({*_COMPARISONS, "in", "notin", "and", "or"})


def _static_type(node: Expr) -> str | None:
    if isinstance(node, Literal):
        return type_name(node.value)
    if isinstance(node, ListLiteral):
        return "list"
    if isinstance(node, Unary):
        return "boolean" if node.op == "not" else "number"
    if isinstance(node, Binary):
        if node.op in _BOOL_OPS:
            return "boolean"
        if node.op in _NUMBER_OPS:
            return "number"
        return None  # "+" is numeric or string
    if isinstance(node, Call):
        return {
            "defined": "boolean",
            "boolean": "boolean",
            "floor": "number",
            "round": "number",
            "ceil": "number",
            "number": "number",
            "string": "string",
            "datetime": "datetime",
        }[node.func]
    return None


class _Parser:
    """Recursive descent, loosest first: or, and, not, comparison, + -, * / %, unary -."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.nesting = 0
        self.depths: dict[int, int] = {}  # id(node) -> tree depth, for MAX_DEPTH

    # -- helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, kind: str, value: Any = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def expect(self, kind: str, value: str, what: str) -> _Token:
        if not self.at(kind, value):
            self.unexpected(f", expected {what}")
        return self.advance()

    def unexpected(self, hint: str = "") -> NoReturn:
        tok = self.tok
        shown = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise ExpressionError(
            f"Unexpected token {shown} at position {tok.pos}{hint}", position=tok.pos
        )

    def depth(self, node: Expr) -> int:
        return self.depths.get(id(node), 1)

    def node(self, node: Expr) -> Expr:
        if isinstance(node, Binary):
            depth = 1 + max(self.depth(node.left), self.depth(node.right))
        elif isinstance(node, Unary):
            depth = 1 + self.depth(node.operand)
        elif isinstance(node, Call):
            depth = 1 + self.depth(node.arg)
        elif isinstance(node, Index):
            depth = 1 + self.depth(node.target)
        elif isinstance(node, ListLiteral):
            depth = 1 + max((self.depth(i) for i in node.items), default=0)
        else:
            depth = 1
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"Expression is nested too deeply at position {node.pos}", position=node.pos
            )
        self.depths[id(node)] = depth
        return node

    def enter(self, pos: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError(
                f"Expression is nested too deeply at position {pos}", position=pos
            )

    # -- grammar
    def parse(self) -> Expr:
        if self.at("end"):
            raise ExpressionError("Empty expression at position 0", position=0)
        expr = self.or_expr()
        if not self.at("end"):
            self.unexpected()
        return expr

    def boolean_operand(self, node: Expr, op: str) -> Expr:
        kind = _static_type(node)
        if kind is not None and kind != "boolean":
            raise ExpressionError(
                f"Operator '{op}' needs boolean operands, got a {kind} at position {node.pos}",
                position=node.pos,
            )
        return node

    def or_expr(self) -> Expr:
        left = self.and_expr()
        while self.at("kw", "or"):
            tok = self.advance()
            right = self.and_expr()
            left = self.node(
                Binary(
                    "or",
                    self.boolean_operand(left, "or"),
                    self.boolean_operand(right, "or"),
                    tok.pos,
                )
            )
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.at("kw", "and"):
            tok = self.advance()
            right = self.not_expr()
            left = self.node(
                Binary(
                    "and",
                    self.boolean_operand(left, "and"),
                    self.boolean_operand(right, "and"),
                    tok.pos,
                )
            )
        return left

    def not_expr(self) -> Expr:
        if self.at("kw", "not"):
            tok = self.advance()
            self.enter(tok.pos)
            operand = self.not_expr()
            self.nesting -= 1
            return self.node(Unary("not", self.boolean_operand(operand, "not"), tok.pos))
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.additive()
        while True:
            tok = self.tok
            if tok.kind == "op" and tok.value in _COMPARISONS:
                op = tok.value
                self.advance()
            elif self.at("kw", "in"):
                op = "in"
                self.advance()
            elif (
                self.at("kw", "not")
                and self.tokens[self.i + 1].kind == "kw"
                and self.tokens[self.i + 1].value == "in"
            ):
                op = "notin"
                self.advance()
                self.advance()
            else:
                return left
            right = self.additive()
            left = self.node(Binary(op, left, right, tok.pos))

    def additive(self) -> Expr:
        left = self.multiplicative()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            tok = self.advance()
            right = self.multiplicative()
            left = self.node(Binary(tok.value, left, right, tok.pos))
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/", "%"):
            tok = self.advance()
            right = self.unary()
            left = self.node(Binary(tok.value, left, right, tok.pos))
        return left

    def unary(self) -> Expr:
        if self.at("op", "-"):
            tok = self.advance()
            self.enter(tok.pos)
            operand = self.unary()
            self.nesting -= 1
            kind = _static_type(operand)
            if kind is not None and kind != "number":
                raise ExpressionError(
                    f"Unary '-' needs a number, got a {kind} at position {operand.pos}",
                    position=operand.pos,
                )
            return self.node(Unary("-", operand, tok.pos))
        return self.postfix()

    def postfix(self) -> Expr:
        node = self.primary()
        while self.at("op", "["):
            tok = self.advance()
            key = self.tok
            if key.kind != "str":
                self.unexpected(", expected a quoted property name")
            self.advance()
            self.expect("op", "]", "']'")
            node = self.node(Index(node, key.value, tok.pos))
        return node

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "num" or tok.kind == "str":
            self.advance()
            return Literal(tok.value, tok.pos)
        if tok.kind == "kw" and tok.value in ("true", "false"):
            self.advance()
            return Literal(tok.value == "true", tok.pos)
        if self.at("op", "("):
            self.advance()
            self.enter(tok.pos)
            inner = self.or_expr()
            self.nesting -= 1
            self.expect("op", ")", "')'")
            return inner
        if self.at("op", "["):
            return self.list_literal()
        if tok.kind == "ident":
            name = tok.value
            if name in NAMESPACES:
                self.advance()
                self.expect("op", "[", f"'[' after {name}")
                key = self.tok
                if key.kind != "str":
                    self.unexpected(", expected a quoted property name")
                self.advance()
                self.expect("op", "]", "']'")
                return Prop(name, key.value, tok.pos)
            if name.lower() in FUNCTIONS:
                return self.call(name.lower())
            raise ExpressionError(f"Unknown name {name!r} at position {tok.pos}", position=tok.pos)
        self.unexpected()

    def list_literal(self) -> Expr:
        start = self.advance()
        self.enter(start.pos)
        items: list[Expr] = []
        if not self.at("op", "]"):
            items.append(self.or_expr())
            while self.at("op", ","):
                self.advance()
                items.append(self.or_expr())
        self.expect("op", "]", "',' or ']'")
        self.nesting -= 1
        return self.node(ListLiteral(tuple(items), start.pos))

    def call(self, func: str) -> Expr:
        tok = self.advance()
        self.expect("op", "(", f"'(' after {func}")
        self.enter(tok.pos)
        arg = self.or_expr()
        self.nesting -= 1
        self.expect("op", ")", "')'")
        if (
            func == "datetime"
            and isinstance(arg, Literal)
            and (isinstance(arg.value, bool) or to_datetime(arg.value) is UNDEFINED)
        ):
            raise ExpressionError(
                f"datetime() needs epoch seconds or 'YYYY-MM-DDTHH:MM:SS' at position {arg.pos}",
                position=arg.pos,
            )
        if func in ("floor", "round", "ceil") and _static_type(arg) not in (None, "number"):
            raise ExpressionError(
                f"{func}() needs a number at position {arg.pos}", position=arg.pos
            )
        return self.node(Call(func, arg, tok.pos))


@lru_cache(maxsize=512)
def parse(text: str) -> Expr:
    """Parse an expression, raising ``ExpressionError`` (and nothing else) when malformed."""
    try:
        return _Parser(text).parse()
    except RecursionError:  # pragma: no cover - the limits keep well below it
        raise ExpressionError("Expression is nested too deeply", position=0) from None
