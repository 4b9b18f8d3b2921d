"""Project-timezone days and the export days that hold them (contract §3.5).

Export ``from_date``/``to_date`` are UTC days for projects created after 2023 and
project-timezone days for older ("legacy") ones, while every Mixpanel report counts
project days. A fetch of project days ``A..B`` therefore requests the export days
that overlap them and keeps only the events of ``A..B``; ``_mp_windows`` records for
each committed export window the project days it kept (``first_day..last_day``), so
coverage is exact in project days however windows, appends and updates interleave.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["day_ranges", "export_days", "held_days", "project_days", "project_today"]

_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
# Where "today" is when the project's timezone is unknown (or not a zone name): a bound
# that a given date may not pass takes the latest today on Earth and lets Mixpanel
# decide; a date we choose ourselves (a default end, --update's) takes the earliest,
# which is never after the project's today (Mixpanel refuses those, contract §3.4).
LATEST_ZONE = "Pacific/Kiritimati"
EARLIEST_ZONE = "Etc/GMT+12"


def project_today(
    timezone: str | None, *, now: datetime | None = None, earliest: bool = False
) -> date:
    """Today in the project's timezone; an unknown zone's is the latest (or `earliest`)."""
    current = now or datetime.now(tz=UTC)
    fallback = EARLIEST_ZONE if earliest else LATEST_ZONE
    try:
        zone = ZoneInfo(timezone or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(fallback)
    return current.astimezone(zone).date()


def project_days(first: date, last: date, *, zone: ZoneInfo, legacy: bool) -> tuple[date, date]:
    """The project days that hold some instant of export days ``first..last``.

    West or east of UTC a UTC day overlaps two project days.
    """
    if legacy:
        return first, last
    lo = datetime.combine(first, time.min, UTC)
    hi = datetime.combine(last + _DAY, time.min, UTC) - _TICK
    return lo.astimezone(zone).date(), hi.astimezone(zone).date()


def export_days(day: date, *, zone: ZoneInfo, legacy: bool) -> tuple[date, date]:
    """The export days (one or two) that hold some instant of project day `day`."""
    if legacy:
        return day, day
    lo = datetime.combine(day, time.min, zone).astimezone(UTC)
    hi = datetime.combine(day + _DAY, time.min, zone).astimezone(UTC) - _TICK
    return lo.date(), hi.date()


def _span(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += _DAY


def held_days(
    windows: Iterable[tuple[date, date, date | None, date | None]],
    *,
    zone: ZoneInfo,
    legacy: bool,
) -> set[date]:
    """Project days a table holds wholly, from its ``_mp_windows`` rows.

    A row is (export from, export to, first kept project day, last kept project
    day); rows written before project days existed have no kept days and hold
    every event of their export days. A project day is held when each export day
    it overlaps is held by a window that kept that project day.
    """
    parts: dict[date, set[date]] = {}
    for a, b, lo, hi in windows:
        for u in _span(a, b):
            p0, p1 = project_days(u, u, zone=zone, legacy=legacy)
            for d in _span(max(p0, lo) if lo else p0, min(p1, hi) if hi else p1):
                parts.setdefault(d, set()).add(u)
    return {
        d
        for d, got in parts.items()
        if set(_span(*export_days(d, zone=zone, legacy=legacy))) <= got
    }


def day_ranges(days: Iterable[date]) -> str:
    """``2024-01-01..2024-01-03, 2024-01-05`` for a set of days (empty: '')."""
    ordered = sorted(set(days))
    runs: list[tuple[date, date]] = []
    for d in ordered:
        if runs and runs[-1][1] + _DAY == d:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)
