"""Values and operators of the segmentation expression language (contract §3.6).

The semantics, including the choices the docs leave open, are listed in
``mixpanel_data.emulator.expressions``; this module holds the value helpers the
parser (for literal checks) and the compiled closures share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

__all__ = [
    "UNDEFINED",
    "DateTime",
    "arith",
    "equal",
    "is_number",
    "member",
    "order_pair",
    "parse_iso",
    "round_number",
    "to_boolean",
    "to_datetime",
    "to_number",
    "to_string",
    "truthy",
    "type_name",
]


class _Undefined:
    """The value of a missing property or a meaningless operation."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


class DateTime:
    """A naive datetime as epoch seconds (what ``datetime(...)`` and ``$time`` give).

    A slotted class rather than a frozen dataclass: one is made per event when
    filtering on ``$time``, and this is several times cheaper to create.
    """

    __slots__ = ("epoch",)

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DateTime) and self.epoch == other.epoch

    def __hash__(self) -> int:
        return hash(("DateTime", self.epoch))

    def __lt__(self, other: DateTime) -> bool:
        return self.epoch < other.epoch

    def __repr__(self) -> str:
        return f"DateTime({self.epoch!r})"

    def __str__(self) -> str:
        try:
            return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        except (OverflowError, ValueError, OSError):
            return str(self.epoch)


def type_name(value: Any) -> str:
    if value is UNDEFINED or value is None:
        return "undefined"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, DateTime):
        return "datetime"
    if isinstance(value, Mapping):
        return "object"
    return "unknown"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_ISO_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?Z?",
    re.ASCII,  # \d is 0-9 only, as in JavaScript and DuckDB's regexes
)


def parse_iso(text: str) -> DateTime | None:
    m = _ISO_RE.fullmatch(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC)
    except ValueError:
        return None
    return DateTime(dt.timestamp() + (int(frac.ljust(6, "0")) / 1e6 if frac else 0.0))


def to_datetime(value: Any) -> Any:
    if isinstance(value, DateTime):
        return value
    if is_number(value):
        return DateTime(float(value)) if math.isfinite(value) else UNDEFINED
    if isinstance(value, str):
        parsed = parse_iso(value)
        return UNDEFINED if parsed is None else parsed
    return UNDEFINED


_NUMERIC_RE: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def to_number(value: Any) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0
    if is_number(value):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not _NUMERIC_RE.fullmatch(text) or len(text) > 300:
            return UNDEFINED
        if any(c in text for c in ".eE"):
            number = float(text)
            return number if math.isfinite(number) else UNDEFINED
        return int(text)
    if isinstance(value, DateTime):
        return value.epoch
    return UNDEFINED


def to_string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**300 else UNDEFINED
    if isinstance(value, float):
        if not math.isfinite(value):
            return UNDEFINED
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, DateTime):
        return str(value)
    if isinstance(value, list | tuple | Mapping):
        try:
            return orjson.dumps(value, default=_json_default).decode()
        except (TypeError, orjson.JSONEncodeError):
            return UNDEFINED
    return UNDEFINED


def _json_default(value: Any) -> Any:
    return None if value is UNDEFINED else str(value)  # an undefined list item prints as null


def to_boolean(value: Any) -> Any:
    if value is UNDEFINED or value is None:
        return UNDEFINED
    if isinstance(value, bool):
        return value
    if is_number(value):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def truthy(value: Any) -> bool:
    """How a ``where`` result decides whether a record is kept."""
    return to_boolean(value) is True


def equal(a: Any, b: Any) -> bool:
    ta, tb = type_name(a), type_name(b)
    if ta != tb or ta == "undefined":
        return False
    if ta == "list":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if ta == "object":
        return bool(a == b)
    return bool(a == b)


def order_pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """The two values in one comparable type, or None when ordering is undefined."""
    if is_number(a) and is_number(b):
        if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
            return None
        return a, b
    if (
        isinstance(a, DateTime)
        or isinstance(b, DateTime)
        or (isinstance(a, str) and isinstance(b, str))
    ):
        da = a if isinstance(a, DateTime) else parse_iso(a) if isinstance(a, str) else None
        db = b if isinstance(b, DateTime) else parse_iso(b) if isinstance(b, str) else None
        if da is not None and db is not None:
            return da.epoch, db.epoch
    return None


def member(item: Any, container: Any) -> Any:
    if isinstance(container, list | tuple):
        return any(equal(item, x) for x in container)
    if isinstance(container, str):
        return container.find(item) >= 0 if isinstance(item, str) else UNDEFINED
    if isinstance(container, Mapping):
        return item in container if isinstance(item, str) else UNDEFINED
    return UNDEFINED


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return UNDEFINED
    return value


def arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (is_number(a) and is_number(b)):
        return UNDEFINED
    try:
        if op == "+":
            return _finite(a + b)
        if op == "-":
            return _finite(a - b)
        if op == "*":
            return _finite(a * b)
        if b == 0:
            return UNDEFINED  # contract §3.6: division by zero is undefined
        if op == "/":
            return _finite(a / b)
        # "%" keeps the sign of the dividend, as in JavaScript and C.
        if isinstance(a, int) and isinstance(b, int):
            r = abs(a) % abs(b)
            return -r if a < 0 else r
        return _finite(math.fmod(a, b))
    except (OverflowError, ValueError, ZeroDivisionError):
        return UNDEFINED


def round_number(func: str, value: Any) -> Any:
    if not is_number(value):
        return UNDEFINED
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        return UNDEFINED
    if func == "floor":
        return math.floor(value)
    if func == "ceil":
        return math.ceil(value)
    return math.floor(value + 0.5)  # half up, as JavaScript's Math.round
