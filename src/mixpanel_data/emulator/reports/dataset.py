"""The project's events, loaded once per project, indexed for report computations.

Every Query API report reads the same synthetic export. Loading it once (the
test projects hold ~50k events) into plain columns and indexes, with each event's
project-timezone wall-clock time precomputed, keeps each report a few loops.

Two choices the contract leaves open:

- Reports count events deduplicated on (event, distinct_id, time, ``$insert_id``),
  as Mixpanel's query engine does; the raw export is not deduplicated (contract §3.5).
  Events without ``$insert_id`` are never merged.
- For ``legacy_time_shift`` projects the export ``time`` is the UTC epoch shifted by
  the project's UTC offset (contract §3.5), so it already reads as wall-clock time;
  for modern projects it is true UTC and is converted to the project timezone.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["Dataset", "Event", "dataset_for"]

_EPOCH = datetime(1970, 1, 1)


class Event:
    """One deduplicated event: name, user, true UTC epoch, local time and properties."""

    __slots__ = ("day", "distinct_id", "local", "name", "props", "seq", "time", "ts")

    def __init__(
        self,
        *,
        name: str,
        distinct_id: str,
        time: int | float,
        ts: float,
        local: datetime,
        props: dict[str, Any],
    ) -> None:
        self.name = name
        self.distinct_id = distinct_id
        self.time = time  # the export's raw ``time`` field
        self.ts = ts  # true UTC epoch seconds (conversion windows, retention intervals)
        self.local = local  # naive wall-clock time in the project timezone (buckets)
        self.day = local.date()
        self.props = props  # the export record's properties, ``time`` included
        self.seq = 0  # position in the project's time order (ties keep export order)


class _Index:
    """Events sorted by time with a parallel list of local days for range look-ups."""

    __slots__ = ("days", "events")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.days = [e.day for e in events]

    def between(self, first: date, last: date) -> list[Event]:
        lo = bisect.bisect_left(self.days, first)
        hi = bisect.bisect_right(self.days, last)
        return self.events[lo:hi]


class Dataset:
    """All events of a project, plus indexes by event name and by user."""

    def __init__(self, events: list[Event], *, profiles: Mapping[str, Mapping[str, Any]]) -> None:
        events.sort(key=lambda e: e.ts)  # stable: equal times keep export order
        for seq, e in enumerate(events):
            e.seq = seq
        self.events = events
        self.profiles = profiles
        self._all = _Index(events)
        by_name: dict[str, list[Event]] = {}
        by_user: dict[str, list[Event]] = {}
        for e in events:
            by_name.setdefault(e.name, []).append(e)
            by_user.setdefault(e.distinct_id, []).append(e)
        self._by_name = {name: _Index(evs) for name, evs in by_name.items()}
        self.by_user = by_user
        self.names = sorted(by_name)
        self.first_day = events[0].day if events else None
        self.last_day = events[-1].day if events else None

    def between(self, first: date, last: date, *, name: str | None = None) -> list[Event]:
        """Events whose local day is in [first, last], in time order; one name if given."""
        if name is None:
            return self._all.between(first, last)
        index = self._by_name.get(name)
        return [] if index is None else index.between(first, last)

    def named(self, names: Iterable[str], first: date, last: date) -> Iterator[Event]:
        """Events of several names in [first, last] (not merged in time order)."""
        for name in names:
            yield from self.between(first, last, name=name)


def _converter(tz: ZoneInfo, *, legacy: bool) -> Any:
    """A function from the export ``time`` to (true UTC epoch, local naive datetime)."""
    if legacy:

        def legacy_convert(t: float) -> tuple[float, datetime]:
            local = _EPOCH + timedelta(seconds=t)
            return local.replace(tzinfo=tz).timestamp(), local

        return legacy_convert

    offsets: dict[int, timedelta] = {}  # offset per UTC hour: zoneinfo calls are slow

    def convert(t: float) -> tuple[float, datetime]:
        hour = int(t // 3600)
        offset = offsets.get(hour)
        if offset is None:
            offset = datetime.fromtimestamp(hour * 3600, UTC).astimezone(tz).utcoffset()
            offsets[hour] = offset or timedelta(0)
            offset = offsets[hour]
        return float(t), _EPOCH + timedelta(seconds=t) + offset

    return convert


def load(project: Any) -> Dataset:
    """Read every export day of ``project`` into a Dataset (deduplicated)."""
    spec = getattr(project, "spec", None)
    convert = _converter(project.tz, legacy=bool(getattr(spec, "legacy_time_shift", False)))
    seen: set[tuple[str, str, Any, str]] = set()
    events: list[Event] = []
    for day in project.data_dates:
        for record in project.iter_export_day(day):
            props = record.get("properties") or {}
            t = props.get("time")
            if not isinstance(t, int | float):
                continue
            name = str(record.get("event"))
            distinct_id = str(props.get("distinct_id", ""))
            insert_id = props.get("$insert_id")
            if isinstance(insert_id, str):
                key = (name, distinct_id, t, insert_id)
                if key in seen:
                    continue
                seen.add(key)
            ts, local = convert(t)
            events.append(
                Event(name=name, distinct_id=distinct_id, time=t, ts=ts, local=local, props=props)
            )
    profiles = {str(p.get("$distinct_id")): p.get("$properties") or {} for p in project.profiles()}
    return Dataset(events, profiles=profiles)


_CACHE: weakref.WeakKeyDictionary[Any, Dataset] = weakref.WeakKeyDictionary()
_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def dataset_for(project: Any) -> Dataset:
    """The project's Dataset, loaded on first use and kept while the project lives."""
    cached = _CACHE.get(project)
    if cached is not None:
        return cached
    with _GUARD:
        lock = _LOCKS.setdefault(project, threading.Lock())
    with lock:  # one loader per project; concurrent requests wait for it
        cached = _CACHE.get(project)
        if cached is None:
            cached = load(project)
            _CACHE[project] = cached
        return cached
