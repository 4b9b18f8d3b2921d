"""Report parameters: the choices and checks every report shares, asked before any call.

Live queries and discovery both validate with these, so a bad date or unit fails before a
query is spent. Imports only the exceptions, the config's Credentials type and the
project-day rules (storage.days).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from mixpanel_data._internal.storage import days
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.config import Credentials

TYPES = ("general", "unique", "average")
SEGMENTATION_UNITS = ("minute", "hour", "day", "week", "month")  # /events, /events/properties
# /segmentation's own `unit` enum lists no week (openapi/query.openapi.yaml, GET /segmentation).
SEGMENTATION_ONLY_UNITS = ("minute", "hour", "day", "month")
HOUR_DAY = ("hour", "day")
DAY_WEEK_MONTH = ("day", "week", "month")
LENGTH_UNITS = ("second", "minute", "hour", "day")
RETENTION_TYPES = ("birth", "compounded")
FLOW_QUERY_TYPES = ("flows_sankey", "flows_top_paths", "flows")
MAX_LIMIT = 10000  # top `on` values (contract §7.2, §9.1)
_FIRST_YEAR = 2000  # "Error in from_date: invalid date, bad year" (contract §3.4)
# Symbols only an expression has; a bare property name (even with spaces) has none.
_EXPRESSION = re.compile(r"""[\[\]()"'=!<>+*/%]""")


def parse_day(value: str | date, *, name: str) -> date:
    """Read a ``YYYY-MM-DD`` date (or a date object) or raise ValidationError."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"invalid {name} '{value}'; use a real date in YYYY-MM-DD form, e.g. 2024-01-31"
        ) from None


def check_range(from_date: str | date, to_date: str | date) -> tuple[date, date]:
    """Validate an inclusive date range (contract §3.1) and return it as dates."""
    start = parse_day(from_date, name="from_date")
    end = parse_day(to_date, name="to_date")
    if start.year < _FIRST_YEAR:
        raise ValidationError(f"from_date {start} is before {_FIRST_YEAR}; Mixpanel rejects it")
    if start > end:
        raise ValidationError(f"from_date {start} is after to_date {end}; swap them")
    return start, end


def check_choice(value: str, choices: Sequence[str], *, name: str) -> str:
    """Return ``value`` lower-cased if it is one of ``choices``, else raise ValidationError."""
    text = str(value).strip().lower()
    if text not in choices:
        raise ValidationError(f"invalid {name} '{value}'; use one of: {', '.join(choices)}")
    return text


def check_positive(value: int | None, *, name: str, maximum: int | None = None) -> int | None:
    """Validate an optional positive integer option."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"invalid {name} '{value}'; give a whole number of at least 1")
    if maximum is not None and value > maximum:
        raise ValidationError(f"{name} {value} is too large; the maximum is {maximum}")
    return value


def check_name(value: str, *, name: str) -> str:
    """Require a non-empty event or property name."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty name")
    return value


def to_expression(on: str | None) -> str | None:
    """Wrap a bare property name as ``properties["name"]``; pass expressions through.

    Anything holding brackets, parentheses, quotes or operator symbols is taken as an
    expression (contract §3.6); names with such characters must be written out in full.
    """
    if on is None:
        return None
    text = on.strip()
    if not text:
        raise ValidationError("`on` must be a property name or an expression")
    if _EXPRESSION.search(text):
        return text
    return f"properties[{json.dumps(text, ensure_ascii=False)}]"


def project_today(credentials: Credentials) -> date:
    """Today in the project's timezone, or the earliest today on Earth when it is unknown
    (a default ``to_date``: Mixpanel refuses one after the project's today, contract §3.4)."""
    return days.project_today(credentials.timezone, earliest=True)
