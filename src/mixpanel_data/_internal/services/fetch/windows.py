"""Date windows: split an inclusive date range into consecutive request windows.

Export takes whole days (contract §4: ``from_date``/``to_date`` inclusive), so a
window is an inclusive pair of dates. Windows partition the range exactly: no
gaps, no overlaps, in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mixpanel_data._internal.storage.days import export_days, project_days, project_today
from mixpanel_data.exceptions import ValidationError

__all__ = [
    "DateWindow",
    "auto_window_days",
    "export_span",
    "kept_days",
    "parse_date",
    "project_today",
    "split_windows",
    "validate_range",
]

# A fetch uses at most about half the export hour's 60 requests (contract §3.3),
# so a long range does not burn the quota: windows grow past one day instead.
MAX_WINDOWS_PER_FETCH = 30


@dataclass(frozen=True, order=True)
class DateWindow:
    """One request's inclusive date range."""

    start: date
    end: date

    @property
    def days(self) -> int:
        """Number of days covered."""
        return (self.end - self.start).days + 1

    def dates(self) -> list[date]:
        """Every day of the window, in order."""
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def __str__(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def auto_window_days(total_days: int) -> int:
    """One-day windows, or longer ones so a range needs at most MAX_WINDOWS_PER_FETCH."""
    return max(1, math.ceil(total_days / MAX_WINDOWS_PER_FETCH))


def split_windows(start: date, end: date, *, days: int = 1) -> list[DateWindow]:
    """Split ``start..end`` (inclusive) into windows of `days` days (the last may be shorter)."""
    if days < 1:
        raise ValidationError(f"window size must be at least 1 day, got {days}")
    if start > end:
        raise ValidationError(f"from date {start} is after to date {end}")
    out = []
    cursor = start
    step = timedelta(days=days)
    while cursor <= end:
        stop = min(end, cursor + step - timedelta(days=1))
        out.append(DateWindow(cursor, stop))
        cursor = stop + timedelta(days=1)
    return out


def export_span(start: date, end: date, *, zone: ZoneInfo, legacy: bool, today: date) -> DateWindow:
    """The export days to request for project days ``start..end`` (contract §3.5).

    West of UTC a project day ends on the next UTC day, east of it it starts on
    the previous one. Export refuses a ``to_date`` after today in the project
    timezone (contract §3.4), so the last export day is at most `today` (the
    part of today's project day past that UTC midnight cannot be exported yet).
    """
    first = export_days(start, zone=zone, legacy=legacy)[0]
    last = export_days(end, zone=zone, legacy=legacy)[1]
    return DateWindow(first, max(first, min(last, today)))


def kept_days(
    window: DateWindow, start: date, end: date, *, zone: ZoneInfo, legacy: bool
) -> DateWindow:
    """The project days of ``start..end`` an export window holds events of."""
    lo, hi = project_days(window.start, window.end, zone=zone, legacy=legacy)
    return DateWindow(max(lo, start), min(hi, end))


def parse_date(value: str | date, *, option: str) -> date:
    """Parse ``YYYY-MM-DD`` strictly (a real calendar date) or raise ValidationError."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"invalid {option} '{text}'; use a real date as YYYY-MM-DD, e.g. 2024-01-31"
        ) from None


def validate_range(from_date: str | date, to_date: str | date, *, today: date) -> tuple[date, date]:
    """Parse and check a fetch range: real dates, from <= to, to not after today."""
    start = parse_date(from_date, option="--from date")
    end = parse_date(to_date, option="--to date")
    if start > end:
        raise ValidationError(f"--from {start} is after --to {end}; give the earlier date first")
    if end > today:
        raise ValidationError(
            f"--to {end} is after today ({today}) in the project's timezone; "
            "Mixpanel rejects future dates (use today or earlier)"
        )
    if start.year < 2000:
        raise ValidationError(f"--from {start} is before 2000; Mixpanel has no data that old")
    return start, end
