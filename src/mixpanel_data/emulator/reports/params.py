"""Reading and checking Query API parameters the way Mixpanel answers bad ones.

Every report shares these rules (contract §3.1, §3.4): dates are ``YYYY-MM-DD``
and inclusive; a year before 2000 is ``Error in from_date: invalid date, bad year``;
``to_date`` later than today in the project timezone is a 400; arrays are JSON
strings; a malformed ``where``/``on`` is a 400 naming the parameter and the problem.
The exact wording of "missing parameter" errors is not known (contract §16), so
ours say which parameter is missing and what it should hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Final

import orjson

from mixpanel_data.emulator.expression_values import to_string, truthy
from mixpanel_data.emulator.expressions import (
    UNDEFINED,
    ExpressionError,
    compile_filter,
    compile_value,
    evaluate,
    parse,
)
from mixpanel_data.emulator.reports.dataset import Dataset, Event
from mixpanel_data.emulator.routing import ApiRequest, EmulatorError

__all__ = [
    "DEFAULT_HISTORY_DAYS",
    "TYPES",
    "EventFilter",
    "Segmenter",
    "as_mapping",
    "bad",
    "check_history",
    "choice",
    "date_range",
    "event_filter",
    "filtered",
    "history_days",
    "json_list",
    "number_out",
    "opt_bool",
    "opt_int",
    "opt_str",
    "parse_date",
    "req_date",
    "req_str",
    "segment_keys",
    "segmenter",
    "today",
    "unit_param",
    "value_fn",
]

TYPES: Final = ("general", "unique", "average")
DEFAULT_HISTORY_DAYS: Final = 365  # the plan's max_data_history_days unless the project says
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)

EventFilter = Callable[[Event], bool]
Segmenter = Callable[[Event], list[str]]


def bad(message: str, status: int = 400) -> EmulatorError:
    return EmulatorError(status, message)


def opt_str(req: ApiRequest, name: str) -> str | None:
    """A parameter's value, with empty strings treated as absent."""
    value = req.params.get(name)
    return value if value not in (None, "") else None


def req_str(req: ApiRequest, name: str, *, what: str) -> str:
    value = opt_str(req, name)
    if value is None:
        raise bad(f"Missing required parameter: {name} ({what})")
    return value


def opt_int(
    req: ApiRequest, name: str, *, default: int | None = None, minimum: int = 0
) -> int | None:
    value = opt_str(req, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad(f"Error in {name}: expected an integer, got {value!r}") from None
    if number < minimum:
        raise bad(f"Error in {name}: must be at least {minimum}, got {number}")
    return number


def opt_bool(req: ApiRequest, name: str, *, default: bool = False) -> bool:
    value = opt_str(req, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad(f"Error in {name}: expected true or false, got {value!r}")


def choice(req: ApiRequest, name: str, options: Sequence[str], *, default: str | None) -> str:
    value = opt_str(req, name)
    if value is None:
        if default is None:
            raise bad(f"Missing required parameter: {name} (one of {', '.join(options)})")
        return default
    if value not in options:
        raise bad(f"Error in {name}: invalid value {value!r}; expected one of {', '.join(options)}")
    return value


def unit_param(
    req: ApiRequest, options: Sequence[str], *, default: str | None = "day", name: str = "unit"
) -> str:
    """The ``unit`` (or another enum) parameter, a 400 envelope when it is not allowed."""
    return choice(req, name, options, default=default)


def today(project: Any) -> date:
    """Today in the project timezone (contract §3.5), as of this request."""
    return project.today_now()  # type: ignore[no-any-return]


def parse_date(value: str, name: str) -> date:
    if not _DATE_RE.fullmatch(value):
        raise bad(f"Error in {name}: invalid date {value!r}, expected YYYY-MM-DD")
    if int(value[:4]) < 2000:
        raise bad(f"Error in {name}: invalid date, bad year")  # contract §3.4
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad(f"Error in {name}: invalid date {value!r}, expected YYYY-MM-DD") from None


def req_date(req: ApiRequest, name: str) -> date:
    return parse_date(req_str(req, name, what="a date as YYYY-MM-DD"), name)


def date_range(
    req: ApiRequest, *, default_days: int | None = None, allow_future: bool = False
) -> tuple[date, date]:
    """The inclusive (from_date, to_date), checked; defaults to the last N days if allowed."""
    now = today(req.project)
    if default_days is not None and opt_str(req, "from_date") is None:
        last = parse_date(v, "to_date") if (v := opt_str(req, "to_date")) else now
        first = last - timedelta(days=default_days - 1)
    elif default_days is not None and opt_str(req, "to_date") is None:
        first, last = req_date(req, "from_date"), now
    else:
        first, last = req_date(req, "from_date"), req_date(req, "to_date")
    if last > now and not allow_future:
        raise bad("to_date cannot be later than today")  # contract §3.4 / §15.7
    if first > last:
        raise bad(f"from_date {first} cannot be later than to_date {last}")
    return first, last


def history_days(project: Any) -> int:
    """The plan's history window: ``max_data_history_days`` on the project or its spec."""
    for holder in (project, getattr(project, "spec", None)):
        value = getattr(holder, "max_data_history_days", None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_HISTORY_DAYS


def check_history(req: ApiRequest, first: date) -> None:
    """403 when ``first`` is older than the plan allows (contract §6.1, §11)."""
    days = history_days(req.project)
    if first < today(req.project) - timedelta(days=days):
        raise bad(f"Date range exceeds {days} days into the past", 403)


def json_list(req: ApiRequest, name: str, *, required: bool) -> list[Any] | None:
    """A JSON-array parameter (contract §3.1); a bare string counts as one item."""
    raw = opt_str(req, name)
    if raw is None:
        if required:
            raise bad(f'Missing required parameter: {name} (a JSON array, e.g. ["A","B"])')
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if raw.lstrip().startswith("["):
            raise bad(f"Error in {name}: invalid JSON array {raw!r}") from None
        value = [raw]
    if not isinstance(value, list):
        value = [value]
    return value


def _compile(text: str, name: str) -> Any:
    try:
        parse(text)
    except ExpressionError as exc:
        raise bad(f"Error in {name}: invalid expression {text!r}: {exc}") from None


def event_filter(req: ApiRequest, data: Dataset, name: str = "where") -> EventFilter | None:
    """The compiled ``where``-style filter of parameter ``name``, or None."""
    text = opt_str(req, name)
    if text is None:
        return None
    _compile(text, name)
    if "user[" in text:  # profile properties need the user's profile per event
        expr, profiles = parse(text), data.profiles
        return lambda e: truthy(
            evaluate(expr, properties=e.props, user=profiles.get(e.distinct_id, {}))
        )
    keep = compile_filter(text)
    return lambda e: keep(e.props)


def value_fn(req: ApiRequest, data: Dataset, name: str = "on") -> Callable[[Event], Any] | None:
    """The compiled value expression of parameter ``name`` (segment or number), or None."""
    text = opt_str(req, name)
    if text is None:
        return None
    _compile(text, name)
    if "user[" in text:
        expr, profiles = parse(text), data.profiles
        return lambda e: evaluate(expr, properties=e.props, user=profiles.get(e.distinct_id, {}))
    get = compile_value(text)
    return lambda e: get(e.props)


def segment_keys(value: Any) -> list[str]:
    """How Mixpanel labels a segment: ``"true"``, ``"42"`` (no ``.0``), ``"undefined"``.

    A list value puts the event in one segment per distinct item, as Mixpanel
    breaks down list properties; an empty list puts it in none.
    """
    if isinstance(value, list):
        keys: list[str] = []
        for item in value:
            key = _label(item)
            if key not in keys:
                keys.append(key)
        return keys
    return [_label(value)]


def _label(value: Any) -> str:
    if value is UNDEFINED or value is None:
        return "undefined"
    text = to_string(value)
    return "undefined" if text is UNDEFINED else str(text)


def segmenter(req: ApiRequest, data: Dataset, name: str = "on") -> Segmenter | None:
    """The ``on`` parameter as a function from an event to its segment labels."""
    get = value_fn(req, data, name)
    if get is None:
        return None
    return lambda e: segment_keys(get(e))


def number_out(value: float) -> int | float:
    """A JSON number: an int when whole (as Mixpanel prints ratios and sums)."""
    if isinstance(value, int):
        return value
    if math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def filtered(events: Sequence[Event], keep: EventFilter | None) -> list[Event]:
    return list(events) if keep is None else [e for e in events if keep(e)]


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
