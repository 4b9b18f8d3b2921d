"""Typed results of live Query API reports: segmentation, counts, frequency, stream, JQL.

Each result keeps the raw response, exposes typed fields and ``to_dict()``, and a tidy
pandas ``.df`` (one row per date x segment x value). Parsing is lenient where the
contract says shapes vary (§3.2, §15): ``computed_at``/``status`` are optional, series
and result maps are unordered, and zero-count buckets may be absent (filled with 0 from
``series``). Funnels, retention, saved reports and flows live in `report_results.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from mixpanel_data._internal.results.notebook import NotebookRepr

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ActivityEvent",
    "ActivityFeedResult",
    "EventCountsResult",
    "FrequencyResult",
    "JQLResult",
    "NumericAggregateResult",
    "PropertyCountsResult",
    "SegmentationResult",
]

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")
OVERALL = "$overall"


def num(value: Any) -> float:
    """Read a count or measure: ints stay ints, numeric strings are parsed, junk is 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if value is None:
        return 0
    text = str(value).strip().replace(",", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return 0


def is_date_key(key: str) -> bool:
    """True for bucket keys such as ``2024-01-01`` or ``2024-03-18T00:00:00-07:00``."""
    return bool(_DATE_PREFIX.match(key))


def as_dict(value: Any) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object, else an empty dict (lenient parsing)."""
    return value if isinstance(value, dict) else {}


class Tidy(NotebookRepr):
    """Mixin: a tidy ``.df`` built from ``rows``; plain ``YYYY-MM-DD`` dates become datetimes.

    Through NotebookRepr every live result renders as a table in Jupyter and offers
    ``to_arrow()``/``to_polars()``; subclasses are dataclasses with ``repr=False``.
    """

    columns: ClassVar[tuple[str, ...]] = ()

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The tidy rows behind ``.df`` (also what `--format table|csv` prints)."""
        raise NotImplementedError

    @property
    def df(self) -> pd.DataFrame:
        """The result as a tidy DataFrame."""
        import pandas as pd

        rows = self.rows
        columns = list(self.columns) or list(dict.fromkeys(k for r in rows for k in r))
        frame = pd.DataFrame(rows, columns=columns)
        if "date" in frame.columns and len(frame):
            dates = frame["date"].tolist()
            if all(isinstance(d, str) and _DAY.match(d) for d in dates):
                frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
        return frame


def parse_series(body: Any) -> tuple[tuple[str, ...], dict[str, dict[str, float]], int]:
    """Read ``{"data":{"series":[…],"values":{…}},"legend_size":n}`` (contract §6.5, §9.1).

    Dates are sorted (the API does not order ``series``); every segment gets every
    date, with 0 where the API left a zero bucket out. Segments are ordered by total,
    largest first, then by name.
    """
    data = as_dict(as_dict(body).get("data"))
    raw_values = as_dict(data.get("values"))
    dates: set[str] = {str(s) for s in data.get("series") or []}
    for points in raw_values.values():
        dates.update(str(k) for k in as_dict(points))
    series = tuple(sorted(dates))
    values: dict[str, dict[str, float]] = {}
    for segment, points in raw_values.items():
        points = as_dict(points)
        values[str(segment)] = {d: num(points.get(d, 0)) for d in series}
    ordered = sorted(values.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    legend = as_dict(body).get("legend_size")
    return series, dict(ordered), int(num(legend)) if legend is not None else len(values)


def _series_rows(
    series: Iterable[str], values: Mapping[str, Mapping[str, float]], label: str
) -> list[dict[str, Any]]:
    dates = list(series)
    return [
        {"date": d, label: segment, "value": points.get(d, 0)}
        for segment, points in values.items()
        for d in dates
    ]


@dataclass(frozen=True, repr=False)
class SegmentationResult(Tidy):
    """Event counts over time, optionally split by ``on`` (segmentation and numeric, §9.1–9.2).

    Without ``on``, ``values`` has one key, the event name. ``total`` adds every bucket;
    for ``type="unique"`` that is a sum of per-bucket uniques, not distinct users.
    """

    event: str
    from_date: str
    to_date: str
    unit: str
    type: str
    on: str | None
    series: tuple[str, ...]
    values: dict[str, dict[str, float]]
    legend_size: int
    raw: Any = field(default=None, repr=False, compare=False)
    interval: int | None = None  # days per bucket (segmentation) or units back (events)

    columns: ClassVar[tuple[str, ...]] = ("date", "segment", "value")

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        event: str,
        from_date: str,
        to_date: str,
        unit: str,
        type: str,
        on: str | None,
        interval: int | None = None,
    ) -> SegmentationResult:
        """Parse a `/segmentation` or `/segmentation/numeric` body."""
        series, values, legend = parse_series(body)
        return cls(
            event=event,
            from_date=from_date,
            to_date=to_date,
            unit=unit,
            type=type,
            on=on,
            series=series,
            values=values,
            legend_size=legend,
            raw=body,
            interval=interval,
        )

    @property
    def total(self) -> float:
        """Sum of every bucket of every segment."""
        return sum(sum(points.values()) for points in self.values.values())

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per date x segment."""
        return _series_rows(self.series, self.values, "segment")

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw one line per segment over time, as Insights does (matplotlib, ``charts`` extra)."""
        from mixpanel_data._internal.results.charts import line_chart

        return line_chart(
            self.rows,
            series="segment",
            title=f"{self.event} ({self.type}, per {self.unit})",
            ylabel="events" if self.type == "general" else "users",
            ax=ax,
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "event": self.event,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "unit": self.unit,
            "type": self.type,
            "on": self.on,
            "series": list(self.series),
            "values": self.values,
            "legend_size": self.legend_size,
            "total": self.total,
            **({"interval": self.interval} if self.interval is not None else {}),
        }


@dataclass(frozen=True, repr=False)
class NumericAggregateResult(Tidy):
    """Per-bucket sum or average of a numeric expression (§9.3–9.4)."""

    event: str
    on: str
    aggregate: str
    from_date: str
    to_date: str
    unit: str
    results: dict[str, float]
    computed_at: str | None = None
    raw: Any = field(default=None, repr=False, compare=False)

    columns: ClassVar[tuple[str, ...]] = ("date", "value")

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        event: str,
        on: str,
        aggregate: str,
        from_date: str,
        to_date: str,
        unit: str,
    ) -> NumericAggregateResult:
        """Parse a `/segmentation/sum` or `/segmentation/average` body (unordered results)."""
        results = as_dict(as_dict(body).get("results"))
        computed = as_dict(body).get("computed_at")
        return cls(
            event=event,
            on=on,
            aggregate=aggregate,
            from_date=from_date,
            to_date=to_date,
            unit=unit,
            results={str(k): num(results[k]) for k in sorted(results)},
            computed_at=None if computed is None else str(computed),
            raw=body,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per date."""
        return [{"date": d, "value": v} for d, v in self.results.items()]

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw the aggregate over time (matplotlib, the ``charts`` extra)."""
        from mixpanel_data._internal.results.charts import line_chart

        return line_chart(
            self.rows,
            series="segment",
            title=f"{self.aggregate} of {self.on} on {self.event} (per {self.unit})",
            ylabel=self.aggregate,
            ax=ax,
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "event": self.event,
            "on": self.on,
            "aggregate": self.aggregate,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "unit": self.unit,
            "results": self.results,
            "computed_at": self.computed_at,
        }


@dataclass(frozen=True, repr=False)
class EventCountsResult(Tidy):
    """Counts of several events over time (`/events`, §6.5)."""

    events: tuple[str, ...]
    from_date: str
    to_date: str
    type: str
    unit: str
    series: tuple[str, ...]
    values: dict[str, dict[str, float]]
    legend_size: int
    raw: Any = field(default=None, repr=False, compare=False)
    interval: int | None = None  # days per bucket (segmentation) or units back (events)

    columns: ClassVar[tuple[str, ...]] = ("date", "event", "value")

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        events: Iterable[str],
        from_date: str,
        to_date: str,
        type: str,
        unit: str,
        interval: int | None = None,
    ) -> EventCountsResult:
        """Parse an `/events` body; asked-for events with no data get all-zero series."""
        series, values, legend = parse_series(body)
        for name in events:
            values.setdefault(name, dict.fromkeys(series, 0))
        return cls(
            events=tuple(events),
            from_date=from_date,
            to_date=to_date,
            type=type,
            unit=unit,
            series=series,
            values=values,
            legend_size=legend,
            raw=body,
            interval=interval,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per date x event."""
        return _series_rows(self.series, self.values, "event")

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw one line per event over time (matplotlib, the ``charts`` extra)."""
        from mixpanel_data._internal.results.charts import line_chart

        return line_chart(
            self.rows,
            series="event",
            title=f"events ({self.type}, per {self.unit})",
            ylabel="events" if self.type == "general" else "users",
            ax=ax,
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "events": list(self.events),
            "from_date": self.from_date,
            "to_date": self.to_date,
            "type": self.type,
            "unit": self.unit,
            "series": list(self.series),
            "values": self.values,
            "legend_size": self.legend_size,
            **({"interval": self.interval} if self.interval is not None else {}),
        }


@dataclass(frozen=True, repr=False)
class PropertyCountsResult(Tidy):
    """Counts of one event per value of one property (`/events/properties`, §6.6).

    ``legend_size`` is the server's number, which the contract says need not match
    ``len(values)``.
    """

    event: str
    property_name: str
    from_date: str
    to_date: str
    type: str
    unit: str
    series: tuple[str, ...]
    values: dict[str, dict[str, float]]
    legend_size: int
    raw: Any = field(default=None, repr=False, compare=False)
    interval: int | None = None  # days per bucket (segmentation) or units back (events)

    columns: ClassVar[tuple[str, ...]] = ("date", "segment", "value")

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        event: str,
        property: str,
        from_date: str,
        to_date: str,
        type: str,
        unit: str,
        interval: int | None = None,
    ) -> PropertyCountsResult:
        """Parse an `/events/properties` body."""
        series, values, legend = parse_series(body)
        return cls(
            event=event,
            property_name=property,
            from_date=from_date,
            to_date=to_date,
            type=type,
            unit=unit,
            series=series,
            values=values,
            legend_size=legend,
            raw=body,
            interval=interval,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per date x property value."""
        return _series_rows(self.series, self.values, "segment")

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw one line per property value over time (matplotlib, the ``charts`` extra)."""
        from mixpanel_data._internal.results.charts import line_chart

        return line_chart(
            self.rows,
            series="segment",
            title=f"{self.event} by {self.property_name} (per {self.unit})",
            ylabel="events" if self.type == "general" else "users",
            ax=ax,
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "event": self.event,
            "property": self.property_name,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "type": self.type,
            "unit": self.unit,
            "series": list(self.series),
            "values": self.values,
            "legend_size": self.legend_size,
            **({"interval": self.interval} if self.interval is not None else {}),
        }


def split_segments(
    data: Mapping[str, Any], is_leaf: Callable[[Any], bool]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split ``{date: leaf}`` and the segmented forms (shape unconfirmed, §16).

    Accepts ``{date: {segment: leaf}}`` and ``{segment: {date: leaf}}``; a ``$overall``
    segment is folded into the overall map.
    """
    overall: dict[str, Any] = {}
    segments: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if is_leaf(value):
            overall[key] = value
            continue
        for inner, item in as_dict(value).items():
            if not is_leaf(item):
                continue
            date, segment = (key, inner) if is_date_key(key) else (inner, key)
            if segment == OVERALL:
                overall[date] = item
            else:
                segments.setdefault(segment, {})[date] = item
    return overall, segments


@dataclass(frozen=True, repr=False)
class FrequencyResult(Tidy):
    """How often users did an event (`/retention/addiction`, §10.2).

    ``data[date][i]`` is the number of users who did the event in at least ``i + 1``
    distinct ``addiction_unit`` periods of that ``unit`` (the contract infers this meaning).
    """

    event: str | None
    from_date: str
    to_date: str
    unit: str
    addiction_unit: str
    data: dict[str, tuple[int, ...]]
    segments: dict[str, dict[str, tuple[int, ...]]]
    raw: Any = field(default=None, repr=False, compare=False)

    columns: ClassVar[tuple[str, ...]] = ("date", "segment", "at_least", "users")

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        event: str | None,
        from_date: str,
        to_date: str,
        unit: str,
        addiction_unit: str,
    ) -> FrequencyResult:
        """Parse `{"data": {date: [n, …]}}`, or a segmented variant."""
        overall, segments = split_segments(
            as_dict(as_dict(body).get("data")), lambda v: isinstance(v, list)
        )

        def ints(m: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
            return {d: tuple(int(num(x)) for x in m[d]) for d in sorted(m)}

        return cls(
            event=event,
            from_date=from_date,
            to_date=to_date,
            unit=unit,
            addiction_unit=addiction_unit,
            data=ints(overall),
            segments={s: ints(m) for s, m in sorted(segments.items())},
            raw=body,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per date x segment x frequency level."""
        out = []
        groups = [(OVERALL, self.data), *self.segments.items()]
        for segment, data in groups:
            for date, counts in data.items():
                for i, users in enumerate(counts):
                    out.append(
                        {"date": date, "segment": segment, "at_least": i + 1, "users": users}
                    )
        return out

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw users active in at least N periods, one line per N (matplotlib)."""
        from mixpanel_data._internal.results.charts import line_chart, top_levels

        what = self.event or "any event"
        title = f"{what}: users active in ≥ N {self.addiction_unit}s per {self.unit}"
        return line_chart(
            top_levels(self.rows), series="level", value="users", title=title, ylabel="users", ax=ax
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "event": self.event,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "unit": self.unit,
            "addiction_unit": self.addiction_unit,
            "data": {d: list(v) for d, v in self.data.items()},
            "segments": {s: {d: list(v) for d, v in m.items()} for s, m in self.segments.items()},
        }


@dataclass(frozen=True)
class ActivityEvent:
    """One event of a user's activity stream; ``time`` is epoch seconds (§11)."""

    event: str
    distinct_id: str | None
    time: int
    properties: dict[str, Any]

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ActivityEvent:
        """Parse one stream event; the id is ``$distinct_id`` or ``distinct_id`` (§15.14)."""
        props = as_dict(item.get("properties"))
        ident = props.get("$distinct_id", props.get("distinct_id"))
        return cls(
            event=str(item.get("event", "")),
            distinct_id=None if ident is None else str(ident),
            time=int(num(props.get("time"))),
            properties=dict(props),
        )

    @property
    def timestamp(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time, tz=UTC)

    def to_dict(self) -> dict[str, Any]:
        """Describe the event as JSON-ready data."""
        return {
            "event": self.event,
            "distinct_id": self.distinct_id,
            "time": self.time,
            "properties": self.properties,
        }


@dataclass(frozen=True, repr=False)
class ActivityFeedResult(Tidy):
    """Users' recent events from `/stream/query` (§11), oldest first."""

    distinct_ids: tuple[str, ...]
    from_date: str
    to_date: str
    events: tuple[ActivityEvent, ...]
    raw: Any = field(default=None, repr=False, compare=False)

    columns: ClassVar[tuple[str, ...]] = ("time", "distinct_id", "event", "properties")

    @classmethod
    def from_api(
        cls, body: Any, *, distinct_ids: Iterable[str], from_date: str, to_date: str
    ) -> ActivityFeedResult:
        """Parse ``{"status":"ok","results":{"events":[…]}}``."""
        items = as_dict(as_dict(body).get("results")).get("events") or []
        events = [ActivityEvent.from_api(i) for i in items if isinstance(i, dict)]
        return cls(
            distinct_ids=tuple(distinct_ids),
            from_date=from_date,
            to_date=to_date,
            events=tuple(sorted(events, key=lambda e: e.time)),
            raw=body,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per event, with the time as a UTC datetime."""
        return [
            {
                "time": e.timestamp,
                "distinct_id": e.distinct_id,
                "event": e.event,
                "properties": e.properties,
            }
            for e in self.events
        ]

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "distinct_ids": list(self.distinct_ids),
            "from_date": self.from_date,
            "to_date": self.to_date,
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True, repr=False)
class JQLResult(Tidy):
    """Whatever a JQL script's ``main()`` emitted (§13); ``groupBy`` rows are expanded."""

    data: list[Any]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_api(cls, body: Any) -> JQLResult:
        """Parse the JSON array a JQL call returns."""
        return cls(data=list(body) if isinstance(body, list) else [body], raw=body)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """``{"key": [a, b], "value": n}`` → ``key_1, key_2, value``; other objects as-is."""
        out: list[dict[str, Any]] = []
        for item in self.data:
            if isinstance(item, dict) and isinstance(item.get("key"), list) and "value" in item:
                row = {f"key_{i + 1}": k for i, k in enumerate(item["key"])}
                row["value"] = item["value"]
                out.append(row)
            elif isinstance(item, dict):
                out.append(dict(item))
            else:
                out.append({"value": item})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {"data": self.data}
