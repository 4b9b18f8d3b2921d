"""LocalQueryService: the segmentation family computed from a fetched events table.

Same methods, parameters and result types as ``LiveQueryService``: each report builds
the JSON body the Query API returns and parses it with the same ``from_api``, so
every output format is identical. Semantics (contract §9, §6.5-6.6; where Mixpanel's
docs are silent, the emulator's documented choice, ``emulator/reports/segmentation.py``):

- buckets are the project timezone's wall clock (``event_time AT TIME ZONE tz``); weeks
  start on Monday and are keyed by it, months by their first day, hours and minutes as
  ``YYYY-MM-DD HH:MM:00``;
- ``general`` counts events, ``unique`` distinct users per bucket, ``average`` events
  per user in the bucket;
- ``on`` puts an event in one segment per label (a list property in one per distinct
  item), ``undefined`` for a missing value; ``limit`` keeps the segments with the
  largest totals, ties by label;
- segmentation fills every bucket with 0; numeric, ``/events`` and ``/events/properties``
  list only the buckets that have events;
- numeric buckets: a round width (1, 2 or 5 times a power of ten) giving at most 10
  buckets between the smallest and largest value, labelled ``"2,000 - 2,100"``;
- sum/average: a non-numeric ``on`` counts as 0.0 (contract §9.3), rounded to 6 places.
"""

# SQL here is built from compiled expressions, quoted literals and validated names.
# ruff: noqa: S608

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from mixpanel_data._internal.results.live import (
    EventCountsResult,
    FrequencyResult,
    NumericAggregateResult,
    PropertyCountsResult,
    SegmentationResult,
)
from mixpanel_data._internal.results.reports import FunnelResult, RetentionResult
from mixpanel_data._internal.services.local.engine import (
    LocalEngine,
    bucket_key,
    bucket_series,
    top_segments,
)
from mixpanel_data._internal.services.local.expressions import (
    filter_sql,
    label_list_sql,
    label_sql,
    labels_sql,
    number_sql,
    property_sql,
    sql_string,
)
from mixpanel_data._internal.services.query_specs import (
    AverageQuery,
    EventCountsQuery,
    FrequencyQuery,
    FunnelQuery,
    NumericQuery,
    PropertyCountsQuery,
    QuerySpec,
    RetentionQuery,
    SegmentationQuery,
    SumQuery,
    run_spec,
    takes,
)
from mixpanel_data.exceptions import ValidationError

__all__ = [
    "LocalQueryService",
    "bucket_series",
    "numeric_label",
    "numeric_width",
    "top_segments",
]

R = TypeVar("R")

DEFAULT_LIMIT: Final = 60  # segmentation's default `limit` (contract §9.1)
DEFAULT_PROPERTY_LIMIT: Final = 255  # /events/properties (contract §6.6)
NUMERIC_BUCKETS: Final = 10


def numeric_width(lo: float, hi: float, *, buckets: int = NUMERIC_BUCKETS) -> float:
    """The bucket width: the smallest of 1, 2, 5 (x 10^k) giving at most ``buckets`` ranges."""
    span = hi - lo
    if span <= 0:
        return 1.0 if lo == int(lo) else 10.0 ** math.floor(math.log10(abs(lo) or 1.0) - 1)
    power = 10.0 ** math.floor(math.log10(span / buckets))
    for factor in (1, 2, 5, 10):
        width = factor * power
        if math.floor(hi / width) - math.floor(lo / width) < buckets:
            return width
    return 10 * power


def numeric_label(start: float, width: float) -> str:
    """``"2,000 - 2,100"``: thousands separators, as many decimals as the width needs."""
    places = 0 if width >= 1 else max(0, -math.floor(math.log10(width) + 1e-9))
    lo, hi = round(start, places), round(start + width, places)
    return f"{lo:,.{places}f} - {hi:,.{places}f}"


def _number_out(value: float) -> int | float:
    """A JSON number as Mixpanel prints it: an int when whole."""
    if isinstance(value, int):
        return value
    return int(value) if math.isfinite(value) and value.is_integer() else value


def _value(kind: str, events: int, users: int) -> int | float:
    if kind == "general":
        return events
    if kind == "unique":
        return users
    return _number_out(events / users)


class LocalQueryService(LocalEngine):
    """Run the live reports' computations over a fetched events table.

    Example:
        ws.local.segmentation("Purchase", from_date="2024-01-01", to_date="2024-01-31")
    """

    def run(self, spec: QuerySpec[R]) -> R:
        """Run a query spec built beforehand (``ws.local.run(FunnelQuery(...))``)."""
        return run_spec(self, spec)

    @staticmethod
    def _live_only(what: str, value: Any) -> None:
        if value is not None:
            raise ValidationError(
                f"{what} is only computed by Mixpanel (live); locally give from_date/to_date "
                "(--from/--to) instead"
            )

    # -- segmentation family (contract §9) -----------------------------------------------

    @takes(SegmentationQuery)
    def segmentation(self, q: SegmentationQuery) -> SegmentationResult:
        """Count an event over time, optionally split by a property or expression."""
        self._live_only("interval (--interval)", q.interval)
        start, end, expr, name, unit = q.start, q.end, q.on, q.event, q.unit or "day"
        # One label per event unless the value may be a list (then unnested).
        label = sql_string(name) if expr is None else label_sql(expr)
        labels = labels_sql(expr) if expr is not None and label is None else ""
        counts = self._counts(
            start,
            end,
            names=[name],
            unit=unit,
            labels=labels,
            label=label,
            where=q.where,
            users=q.type != "general",
        )
        values = {
            k: {b: _value(q.type, n, u) for b, (n, u) in row.items()} for k, row in counts.items()
        }
        values = (
            {name: values.get(name, {})}
            if expr is None
            else top_segments(values, q.limit or DEFAULT_LIMIT)
        )
        series = bucket_series(unit, start, end)
        filled = {k: {b: row.get(b, 0) for b in series} for k, row in values.items()}
        body = {"data": {"series": series, "values": filled}, "legend_size": len(filled)}
        return SegmentationResult.from_api(
            body,
            event=name,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            type=q.type,
            on=expr,
        )

    @takes(NumericQuery)
    def segmentation_numeric(self, q: NumericQuery) -> SegmentationResult:
        """Count an event in numeric buckets of ``on`` (ranges chosen as Mixpanel does)."""
        start, end, unit = q.start, q.end, q.unit
        source, day = self._events_sql(start, end, names=[q.event])
        if q.where is not None:
            source += f" AND {filter_sql(q.where)}"
        value = number_sql(q.on)
        bucket = self._bucket(unit, start, end, day)
        numbered = f"SELECT coalesce(distinct_id, '') AS u, {bucket} AS b, {value} AS v {source}"
        lo, hi = self._rows(f"SELECT min(v), max(v) FROM ({numbered}) WHERE isfinite(v)")[0]
        values: dict[str, dict[str, int | float]] = {}
        if lo is not None:
            width = numeric_width(float(lo), float(hi))
            rows = self._rows(
                f"SELECT floor(v / {width!r}) AS k, b, count(*), count(DISTINCT u) "
                f"FROM ({numbered}) WHERE isfinite(v) GROUP BY k, b ORDER BY k, b"
            )
            for k, b, n, users in rows:
                label = numeric_label(float(k) * width, width)
                values.setdefault(label, {})[bucket_key(unit, b)] = _value(
                    q.type, int(n), int(users)
                )
        body = {
            "data": {"series": bucket_series(unit, start, end), "values": values},
            "legend_size": len(values),
        }
        return SegmentationResult.from_api(
            body,
            event=q.event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            type=q.type,
            on=q.on,
        )

    def _aggregate(self, q: SumQuery) -> NumericAggregateResult:
        start, end, unit, aggregate = q.start, q.end, q.unit, q.aggregate
        source, day = self._events_sql(start, end, names=[q.event])
        if q.where is not None:
            source += f" AND {filter_sql(q.where)}"
        bucket = self._bucket(unit, start, end, day)
        # "If the expression is not numeric, a value of 0.0 is assumed" (contract §9.3).
        number = number_sql(q.on)
        value = f"coalesce((CASE WHEN isfinite({number}) THEN {number} END), 0.0)"
        rows = self._rows(f"SELECT {bucket} AS b, fsum({value}), count(*) {source} GROUP BY b")
        found = {bucket_key(unit, b): (float(s), int(n)) for b, s, n in rows}
        series = bucket_series(unit, start, end)
        results: dict[str, int | float] = {}
        for b in series:
            total, n = found.get(b, (0.0, 0))
            if aggregate == "sum":
                results[b] = _number_out(round(total, 6))
            else:
                results[b] = _number_out(round(total / n, 6)) if n else 0
        body: dict[str, Any] = {"status": "ok", "results": results}
        if aggregate == "sum":
            body["computed_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        return NumericAggregateResult.from_api(
            body,
            event=q.event,
            on=q.on,
            aggregate=aggregate,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
        )

    @takes(SumQuery)
    def segmentation_sum(self, q: SumQuery) -> NumericAggregateResult:
        """Sum a numeric expression per bucket (non-numbers count as 0)."""
        return self._aggregate(q)

    @takes(AverageQuery)
    def segmentation_average(self, q: AverageQuery) -> NumericAggregateResult:
        """Average a numeric expression per bucket."""
        return self._aggregate(q)

    # -- event and property counts (contract §6.5-6.6) -----------------------------------

    @takes(EventCountsQuery)
    def event_counts(self, q: EventCountsQuery) -> EventCountsResult:
        """Count several events over time in one query."""
        self._live_only("interval (--interval)", q.interval)
        start, end, names = q.start, q.end, list(q.events)
        counts = self._counts(
            start,
            end,
            names=names,
            unit=q.unit,
            labels="",
            label="event_name",
            where=None,
            users=q.type != "general",
        )
        values = {
            n: {b: _value(q.type, c, u) for b, (c, u) in counts.get(n, {}).items()}
            for n in dict.fromkeys(names)
        }
        body = {
            "data": {"series": bucket_series(q.unit, start, end), "values": values},
            "legend_size": len(values),
        }
        return EventCountsResult.from_api(
            body,
            events=names,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            type=q.type,
            unit=q.unit,
        )

    @takes(PropertyCountsQuery)
    def property_counts(self, q: PropertyCountsQuery) -> PropertyCountsResult:
        """Count one event per value of one property over time."""
        self._live_only("interval (--interval)", q.interval)
        start, end = q.start, q.end
        labels = label_list_sql(property_sql(q.property, time=False))
        if q.values is not None:
            allowed = ", ".join(sql_string(v) for v in q.values) or "NULL"
            labels = f"list_filter({labels}, lambda _v: _v IN ({allowed}))"
        counts = self._counts(
            start,
            end,
            names=[q.event],
            unit=q.unit,
            labels=labels,
            where=None,
            users=q.type != "general",
        )
        shaped = {
            k: {b: _value(q.type, n, u) for b, (n, u) in row.items()} for k, row in counts.items()
        }
        ranked = top_segments(shaped, q.limit or DEFAULT_PROPERTY_LIMIT)
        body = {
            "data": {"series": bucket_series(q.unit, start, end), "values": ranked},
            "legend_size": len(ranked),
        }
        return PropertyCountsResult.from_api(
            body,
            event=q.event,
            property=q.property,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            type=q.type,
            unit=q.unit,
        )

    # -- funnels (cohorts.py), retention and frequency (retention.py): §7.2, §10 ----------

    @takes(FunnelQuery)
    def funnel(self, q: FunnelQuery) -> FunnelResult:
        """A funnel: a saved one by id (its saved steps and window), or ad hoc from ``steps``."""
        from mixpanel_data._internal.services.local.cohorts import funnel

        return funnel(self, q)

    @takes(RetentionQuery)
    def retention(self, q: RetentionQuery) -> RetentionResult:
        """Birth ("first time") or compounded ("recurring") retention by cohort."""
        from mixpanel_data._internal.services.local.retention import retention

        return retention(self, q)

    @takes(FrequencyQuery)
    def frequency(self, q: FrequencyQuery) -> FrequencyResult:
        """Users by how many ``addiction_unit`` periods of each ``unit`` they were active in."""
        from mixpanel_data._internal.services.local.retention import frequency

        return frequency(self, q)
