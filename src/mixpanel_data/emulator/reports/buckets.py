"""Time buckets in the project timezone, keyed the way the Query API keys them.

Day buckets are ``YYYY-MM-DD``; weeks start on Monday and are keyed by that
Monday (the funnels doc example keys weeks 2016-09-12, -19, -26, all Mondays);
months by their first day; hours and minutes as ``YYYY-MM-DD HH:MM:SS``
(the contract leaves that format open, §9.1, and names this as the likely one).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

__all__ = ["Buckets", "day_buckets", "unit_buckets"]


class Buckets:
    """A way to key an event's local time, and every key between two dates."""

    def __init__(
        self, key: Callable[[datetime], str], series: list[str], starts: list[date]
    ) -> None:
        self.key = key
        self.series = series  # every bucket in the range, chronological
        self.starts = starts  # the first local day of each day-or-longer bucket

    def key_of_day(self, day: date) -> str:
        return self.key(datetime(day.year, day.month, day.day))


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def unit_buckets(unit: str, first: date, last: date) -> Buckets:
    """Buckets of one ``unit`` (minute, hour, day, week, month) covering [first, last]."""
    if unit in ("minute", "hour"):
        step = timedelta(minutes=1) if unit == "minute" else timedelta(hours=1)
        fmt = "%Y-%m-%d %H:%M:00" if unit == "minute" else "%Y-%m-%d %H:00:00"
        series: list[str] = []
        t = datetime(first.year, first.month, first.day)
        end = datetime(last.year, last.month, last.day) + timedelta(days=1)
        while t < end:
            series.append(t.strftime(fmt))
            t += step
        return Buckets(lambda dt: dt.strftime(fmt), series, [first])
    if unit == "day":
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        return Buckets(lambda dt: dt.date().isoformat(), [d.isoformat() for d in days], days)
    if unit == "week":
        starts, d = [], _week_start(first)
        while d <= last:
            starts.append(d)
            d += timedelta(days=7)
        return Buckets(
            lambda dt: _week_start(dt.date()).isoformat(), [s.isoformat() for s in starts], starts
        )
    starts, d = [], _month_start(first)
    while d <= last:
        starts.append(d)
        d = _next_month(d)
    return Buckets(
        lambda dt: _month_start(dt.date()).isoformat(), [s.isoformat() for s in starts], starts
    )


def day_buckets(interval: int, first: date, last: date) -> Buckets:
    """Buckets of ``interval`` days starting at ``first``, keyed by their first day."""
    starts = [first + timedelta(days=i) for i in range(0, (last - first).days + 1, interval)]

    def key(dt: datetime) -> str:
        offset = (dt.date() - first).days // interval
        return (first + timedelta(days=offset * interval)).isoformat()

    return Buckets(key, [s.isoformat() for s in starts], starts)


def unit_end(unit: str, start: date) -> date:
    """The first day after the bucket of ``unit`` that starts on ``start``."""
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return _next_month(start)
    return start + timedelta(days=1)
