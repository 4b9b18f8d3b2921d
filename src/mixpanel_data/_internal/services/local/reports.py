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
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import orjson

from mixpanel_data._internal.results.live import (
    EventCountsResult,
    FrequencyResult,
    NumericAggregateResult,
    PropertyCountsResult,
    SegmentationResult,
)
from mixpanel_data._internal.results.reports import FunnelResult, RetentionResult
from mixpanel_data._internal.services.local.expressions import (
    LocalUnsupportedError,
    filter_sql,
    label_list_sql,
    labels_sql,
    number_sql,
    property_sql,
    sql_string,
)
from mixpanel_data._internal.services.params import (
    DAY_WEEK_MONTH,
    HOUR_DAY,
    LENGTH_UNITS,
    MAX_LIMIT,
    RETENTION_TYPES,
    SEGMENTATION_UNITS,
    TYPES,
    check_choice,
    check_name,
    check_positive,
    check_range,
    to_expression,
)
from mixpanel_data._internal.storage.days import held_days
from mixpanel_data._internal.storage.meta_tables import quote_ident, window_rows
from mixpanel_data.exceptions import IncompleteDataError, TableNotFoundError, ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.services.live_query import LiveQueryService
    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["LocalQueryService", "bucket_series", "numeric_label", "numeric_width"]

DEFAULT_LIMIT: Final = 60  # segmentation's default `limit` (contract §9.1)
DEFAULT_PROPERTY_LIMIT: Final = 255  # /events/properties (contract §6.6)
NUMERIC_BUCKETS: Final = 10

_KEY_FORMATS: Final = {
    "minute": "strftime({t}, '%Y-%m-%d %H:%M:00')",
    "hour": "strftime({t}, '%Y-%m-%d %H:00:00')",
    "day": "strftime({t}, '%Y-%m-%d')",
    "week": "strftime(date_trunc('week', {t}), '%Y-%m-%d')",  # ISO weeks start on Monday
    "month": "strftime(date_trunc('month', {t}), '%Y-%m-%d')",
}


def bucket_series(unit: str, first: date, last: date) -> list[str]:
    """Every bucket key of ``unit`` between two local days, in order."""
    if unit in ("minute", "hour"):
        step = timedelta(minutes=1 if unit == "minute" else 60)
        fmt = "%Y-%m-%d %H:%M:00" if unit == "minute" else "%Y-%m-%d %H:00:00"
        t, end = (
            datetime.combine(first, datetime.min.time()),
            datetime.combine(last + timedelta(days=1), datetime.min.time()),
        )
        out = []
        while t < end:
            out.append(t.strftime(fmt))
            t += step
        return out
    if unit == "day":
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    if unit == "week":
        d = first - timedelta(days=first.weekday())
        out = []
        while d <= last:
            out.append(d.isoformat())
            d += timedelta(days=7)
        return out
    d, out = first.replace(day=1), []
    while d <= last:
        out.append(d.isoformat())
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


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


def _top(values: dict[str, dict[str, Any]], limit: int) -> dict[str, dict[str, Any]]:
    """The ``limit`` segments with the largest totals, ties by label."""
    ranked = sorted(values.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return dict(ranked[:limit])


def _day_ranges(days: list[date]) -> str:
    parts: list[str] = []
    start = prev = days[0]
    for d in [*days[1:], None]:
        if d is not None and d == prev + timedelta(days=1):
            prev = d
            continue
        parts.append(start.isoformat() if start == prev else f"{start} to {prev}")
        if d is not None:
            start = prev = d
    return ", ".join(parts)


class LocalQueryService:
    """Run the live reports' computations over a fetched events table.

    Example:
        ws.local.segmentation("Purchase", from_date="2024-01-01", to_date="2024-01-31")
    """

    def __init__(
        self,
        storage: StorageEngine,
        *,
        timezone: str | None,
        table: str = "events",
        live: LiveQueryService | None = None,
    ):
        self._storage = storage
        self._timezone = timezone
        self._table = table
        self._live = live  # reads a saved funnel's steps (one query), nothing else

    def using(self, table: str) -> LocalQueryService:
        """The same engine over another events table (``--table NAME``)."""
        return LocalQueryService(
            self._storage, timezone=self._timezone, table=table, live=self._live
        )

    # -- plumbing ------------------------------------------------------------------------

    def _tz(self) -> str:
        if not self._timezone:
            raise ValidationError(
                "local reports need the project timezone for their day buckets; "
                "set MP_TIMEZONE or the account's timezone"
            )
        return self._timezone

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        from mixpanel_data._internal.services.sql import translate_duckdb_errors

        with (
            self._storage.connection() as conn,
            translate_duckdb_errors(conn, query, read_only=self._storage.read_only),
        ):
            return conn.execute(query, list(params)).fetchall()

    def _check_coverage(self, first: date, last: date, names: Sequence[str]) -> None:
        """Refuse a range the table does not fully hold, naming the project-time days.

        The fetch records for each export window the project days it kept, so a day
        is covered when every export day it overlaps was fetched for it
        (``storage/days.py``; contract §3.5).
        """
        table = self._table
        if not self._rows("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table])[0][
            0
        ]:
            raise TableNotFoundError(table)
        meta = {
            r[0]
            for r in self._rows(
                "SELECT table_name FROM duckdb_tables() "
                "WHERE table_name IN ('_mp_windows', '_mp_tables')"
            )
        }
        windows: list[tuple[date, date, date | None, date | None]] = []
        args: dict[str, Any] = {}
        if "_mp_windows" in meta:
            with self._storage.connection() as conn:
                windows = window_rows(conn, table)
        if "_mp_tables" in meta:
            for (raw,) in self._rows("SELECT fetch_args FROM _mp_tables WHERE name = ?", [table]):
                args = orjson.loads(raw) if isinstance(raw, str) else dict(raw or {})
        self._check_args(args, names)
        zone = ZoneInfo(self._tz())
        covered = held_days(windows, zone=zone, legacy=bool(args.get("legacy_time")))
        missing = [
            first + timedelta(days=i)
            for i in range((last - first).days + 1)
            if first + timedelta(days=i) not in covered
        ]
        if missing:
            raise IncompleteDataError(
                f"table {table!r} does not hold all events of {_day_ranges(missing)} "
                f"(project time, {zone.key}); fetch those days first, e.g. "
                f"`mp fetch events --from {missing[0]} --to {missing[-1]} --append`",
                missing_days=[d.isoformat() for d in missing],
            )

    @staticmethod
    def _check_args(args: dict[str, Any], names: Sequence[str]) -> None:
        """A table fetched with a filter, a limit or duplicates kept cannot answer exactly."""
        for key, what in (("where", "a where filter"), ("limit", "a limit")):
            if args.get(key) not in (None, ""):
                raise LocalUnsupportedError(
                    f"the table was fetched with {what}, so it may miss events; "
                    "fetch without it for local reports"
                )
        if args.get("keep_duplicates"):
            raise LocalUnsupportedError(
                "the table was fetched with --keep-duplicates; Mixpanel's reports count "
                "each event once: fetch it again without that option"
            )
        fetched = args.get("events")
        if fetched:
            absent = [n for n in names if n not in fetched]
            if absent:
                raise LocalUnsupportedError(
                    f"the table holds only the events {', '.join(map(repr, fetched))}, "
                    f"not {', '.join(map(repr, absent))}; fetch them for this report"
                )

    def _events_sql(self, first: date, last: date, *, names: Sequence[str]) -> tuple[str, str]:
        """(FROM-WHERE clause over the range and event names, local-time SQL)."""
        self._check_coverage(first, last, names)
        tz = sql_string(self._tz())
        local = f"(event_time AT TIME ZONE {tz})"
        where = (
            f"FROM {quote_ident(self._table)} WHERE event_name IN "
            f"({', '.join(sql_string(n) for n in names)}) AND event_time IS NOT NULL "
            f"AND CAST({local} AS DATE) BETWEEN DATE '{first}' AND DATE '{last}'"
        )
        return where, local

    def _counts(
        self,
        first: date,
        last: date,
        *,
        names: Sequence[str],
        unit: str,
        labels: str,
        where: str | None,
    ) -> dict[str, dict[str, tuple[int, int]]]:
        """``{label: {bucket: (events, users)}}`` for the matching events."""
        source, local = self._events_sql(first, last, names=names)
        if where is not None:
            source += f" AND {filter_sql(where)}"
        bucket = _KEY_FORMATS[unit].format(t=local)
        query = (
            f"SELECT k, b, count(*), count(DISTINCT u) FROM (SELECT coalesce(distinct_id, '') "
            f"AS u, {bucket} AS b, unnest({labels}) AS k {source}) GROUP BY k, b"
        )
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for k, b, n, users in self._rows(query):
            out.setdefault(str(k), {})[str(b)] = (int(n), int(users))
        return out

    # -- segmentation family (contract §9) -----------------------------------------------

    def segmentation(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str | None = None,
        where: str | None = None,
        unit: str | None = None,
        type: str = "general",
        limit: int | None = None,
    ) -> SegmentationResult:
        """Count an event over time, optionally split by a property or expression."""
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit or "day", SEGMENTATION_UNITS, name="unit")
        type = check_choice(type, TYPES, name="type")
        expr = to_expression(on)
        name = check_name(event, name="event")
        top = check_positive(limit, name="limit", maximum=MAX_LIMIT) or DEFAULT_LIMIT
        labels = f"[{sql_string(name)}]" if expr is None else labels_sql(expr)
        counts = self._counts(start, end, names=[name], unit=unit, labels=labels, where=where)
        values = {
            k: {b: _value(type, n, u) for b, (n, u) in row.items()} for k, row in counts.items()
        }
        values = {name: values.get(name, {})} if expr is None else _top(values, top)
        series = bucket_series(unit, start, end)
        filled = {k: {b: row.get(b, 0) for b in series} for k, row in values.items()}
        body = {"data": {"series": series, "values": filled}, "legend_size": len(filled)}
        return SegmentationResult.from_api(
            body,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            type=type,
            on=expr,
        )

    def segmentation_numeric(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None = None,
        unit: str = "day",
        type: str = "general",
    ) -> SegmentationResult:
        """Count an event in numeric buckets of ``on`` (ranges chosen as Mixpanel does)."""
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit, HOUR_DAY, name="unit")
        type = check_choice(type, TYPES, name="type")
        expr = to_expression(on)
        if expr is None:
            raise ValidationError("segmentation_numeric needs `on`, a numeric property")
        name = check_name(event, name="event")
        source, local = self._events_sql(start, end, names=[name])
        if where is not None:
            source += f" AND {filter_sql(where)}"
        value = number_sql(expr)
        numbered = f"SELECT coalesce(distinct_id, '') AS u, {local} AS t, {value} AS v {source}"
        lo, hi = self._rows(f"SELECT min(v), max(v) FROM ({numbered}) WHERE isfinite(v)")[0]
        values: dict[str, dict[str, int | float]] = {}
        if lo is not None:
            width = numeric_width(float(lo), float(hi))
            bucket = _KEY_FORMATS[unit].format(t="t")
            rows = self._rows(
                f"SELECT floor(v / {width!r}) AS k, {bucket} AS b, count(*), count(DISTINCT u) "
                f"FROM ({numbered}) WHERE isfinite(v) GROUP BY k, b ORDER BY k, b"
            )
            for k, b, n, users in rows:
                label = numeric_label(float(k) * width, width)
                values.setdefault(label, {})[str(b)] = _value(type, int(n), int(users))
        body = {
            "data": {"series": bucket_series(unit, start, end), "values": values},
            "legend_size": len(values),
        }
        return SegmentationResult.from_api(
            body,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            type=type,
            on=expr,
        )

    def _aggregate(
        self,
        aggregate: str,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None,
        unit: str,
    ) -> NumericAggregateResult:
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit, HOUR_DAY, name="unit")
        expr = to_expression(on)
        if expr is None:
            raise ValidationError(f"segmentation_{aggregate} needs `on`, a numeric property")
        name = check_name(event, name="event")
        source, local = self._events_sql(start, end, names=[name])
        if where is not None:
            source += f" AND {filter_sql(where)}"
        bucket = _KEY_FORMATS[unit].format(t=local)
        # "If the expression is not numeric, a value of 0.0 is assumed" (contract §9.3).
        value = (
            f"coalesce((CASE WHEN isfinite({number_sql(expr)}) THEN {number_sql(expr)} END), 0.0)"
        )
        rows = self._rows(f"SELECT {bucket} AS b, fsum({value}), count(*) {source} GROUP BY b")
        found = {str(b): (float(s), int(n)) for b, s, n in rows}
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
            event=event,
            on=expr,
            aggregate=aggregate,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
        )

    def segmentation_sum(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None = None,
        unit: str = "day",
    ) -> NumericAggregateResult:
        """Sum a numeric expression per bucket (non-numbers count as 0)."""
        return self._aggregate(
            "sum", event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit
        )

    def segmentation_average(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None = None,
        unit: str = "day",
    ) -> NumericAggregateResult:
        """Average a numeric expression per bucket."""
        return self._aggregate(
            "average", event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit
        )

    # -- event and property counts (contract §6.5-6.6) -----------------------------------

    def event_counts(
        self,
        events: Iterable[str],
        *,
        from_date: str | date,
        to_date: str | date,
        type: str = "general",
        unit: str = "day",
    ) -> EventCountsResult:
        """Count several events over time in one query."""
        names = [check_name(e, name="event") for e in events]
        if not names:
            raise ValidationError("give at least one event")
        start, end = check_range(from_date, to_date)
        type = check_choice(type, TYPES, name="type")
        unit = check_choice(unit, SEGMENTATION_UNITS, name="unit")
        if type == "unique" and unit in ("minute", "hour"):
            raise ValidationError("Mixpanel has no hourly uniques; use unit day, week or month")
        counts = self._counts(start, end, names=names, unit=unit, labels="[event_name]", where=None)
        values = {
            n: {b: _value(type, c, u) for b, (c, u) in counts.get(n, {}).items()}
            for n in dict.fromkeys(names)
        }
        body = {
            "data": {"series": bucket_series(unit, start, end), "values": values},
            "legend_size": len(values),
        }
        return EventCountsResult.from_api(
            body,
            events=names,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            type=type,
            unit=unit,
        )

    def property_counts(
        self,
        event: str,
        property: str,
        *,
        from_date: str | date,
        to_date: str | date,
        type: str = "general",
        unit: str = "day",
        values: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> PropertyCountsResult:
        """Count one event per value of one property over time."""
        start, end = check_range(from_date, to_date)
        type = check_choice(type, TYPES, name="type")
        unit = check_choice(unit, SEGMENTATION_UNITS, name="unit")
        name = check_name(event, name="event")
        prop = check_name(property, name="property")
        top = check_positive(limit, name="limit", maximum=MAX_LIMIT) or DEFAULT_PROPERTY_LIMIT
        labels = label_list_sql(property_sql(prop, time=False))
        if values is not None:
            allowed = ", ".join(sql_string(str(v)) for v in values) or "NULL"
            labels = f"list_filter({labels}, lambda _v: _v IN ({allowed}))"
        counts = self._counts(start, end, names=[name], unit=unit, labels=labels, where=None)
        shaped = {
            k: {b: _value(type, n, u) for b, (n, u) in row.items()} for k, row in counts.items()
        }
        ranked = _top(shaped, top)
        body = {
            "data": {"series": bucket_series(unit, start, end), "values": ranked},
            "legend_size": len(ranked),
        }
        return PropertyCountsResult.from_api(
            body,
            event=event,
            property=property,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            type=type,
            unit=unit,
        )

    # -- funnels (contract §7.2) ---------------------------------------------------------

    def funnel(
        self,
        funnel_id: int | None = None,
        *,
        from_date: str | date,
        to_date: str | date,
        length: int | None = None,
        length_unit: str | None = None,
        interval: int | None = None,
        unit: str | None = None,
        on: str | None = None,
        where: str | None = None,
        limit: int | None = None,
        steps: Sequence[str] | None = None,
    ) -> FunnelResult:
        """A funnel over the fetched events: a saved one by id, or ad hoc from ``steps``.

        Mixpanel's API gives a saved funnel's steps (read with one live query) but not its
        conversion window, so a saved funnel needs ``length`` (and ``length_unit``). An
        ad-hoc funnel's window defaults to 30 days, the emulator's default.
        """
        from mixpanel_data._internal.services.local.funnels import (
            LENGTH_SECONDS,
            Step,
            day_chunks,
            funnel_body,
        )

        start, end = check_range(from_date, to_date)
        if interval is not None and unit is not None:
            raise ValidationError("give either unit or interval for a funnel, not both")
        expr = to_expression(on)
        top = check_positive(limit, name="limit", maximum=MAX_LIMIT) or 255
        interval = check_positive(interval, name="interval")
        unit = None if unit is None else check_choice(unit, DAY_WEEK_MONTH, name="unit")
        lu = (
            "day"
            if length_unit is None
            else check_choice(length_unit, LENGTH_UNITS, name="length_unit")
        )
        names = self._funnel_steps(funnel_id, steps, end)
        if length is None and steps is None:
            raise LocalUnsupportedError(
                f"Mixpanel's API does not return saved funnel {funnel_id}'s conversion window; "
                "pass the window it was saved with (--length N --length-unit day)"
            )
        window = float((check_positive(length, name="length") or 30) * LENGTH_SECONDS[lu])
        if window > 90 * 86400:
            raise ValidationError("the conversion window may not be greater than 90 days")
        self._check_coverage(start, end, names)
        horizon = end + timedelta(days=int(window // 86400) + 2)  # completions after to_date
        tz = sql_string(self._tz())
        local = f"(event_time AT TIME ZONE {tz})"
        labels = labels_sql(expr) if expr is not None else "[]"
        query = (
            f"SELECT coalesce(distinct_id, ''), epoch(event_time), event_name, "
            f"CAST({local} AS DATE) AS d, {labels} FROM {quote_ident(self._table)} "
            f"WHERE event_name IN ({', '.join(sql_string(n) for n in dict.fromkeys(names))}) "
            f"AND event_time IS NOT NULL AND d BETWEEN DATE '{start}' AND DATE '{horizon}'"
            + (f" AND {filter_sql(where)}" if where is not None else "")
            + " ORDER BY 1, 2, insert_id"
        )
        rows = self._rows(query)
        days = (end - start).days + 1

        def body(step_days: int | None, step_unit: str | None) -> dict[str, Any]:
            if step_unit is not None:
                series = bucket_series(step_unit, start, end)
                key = _bucket_of_day(step_unit)
            else:
                size = step_days or 1
                series = [d.isoformat() for d in day_chunks(size, start, end)]

                def key(d: date) -> str:
                    return (start + timedelta(days=(d - start).days // size * size)).isoformat()

            users: dict[str, list[Step]] = {}
            for user, ts, name, d, labs in rows:
                users.setdefault(user, []).append(
                    Step(float(ts), str(name), key(d), d, tuple(dict.fromkeys(labs)))
                )
            return funnel_body(
                users,
                names,
                series=series,
                last=end,
                window=window,
                segmented=expr is not None,
                limit=top,
            )

        totals = body(days, None)
        buckets = None
        if (interval is not None and interval != days) or unit is not None:
            buckets = body(interval, unit)
        return FunnelResult.from_api(
            totals,
            funnel_id=funnel_id or 0,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            on=expr,
            buckets_body=buckets,
        )

    def _funnel_steps(
        self, funnel_id: int | None, steps: Sequence[str] | None, end: date
    ) -> list[str]:
        if steps is not None:
            if funnel_id is not None:
                raise ValidationError("give a saved funnel's id or steps, not both")
            names = [check_name(s, name="step") for s in steps]
            if len(names) < 2:
                raise ValidationError(
                    "a funnel needs at least two steps, e.g. -s Login -s Purchase"
                )
            return names
        if funnel_id is None:
            raise ValidationError("give a saved funnel's id, or its steps (-s A -s B)")
        if self._live is None:
            raise ValidationError(
                "a saved funnel's steps come from Mixpanel; open the workspace with credentials"
            )
        saved = self._live.funnel(funnel_id, from_date=end, to_date=end)
        custom = [s for s in saved.steps if s.custom_event_id or s.event.startswith("$custom_")]
        if custom:
            # The Query API names a custom event's step but not which events make it up.
            label = custom[0].step_label or custom[0].event
            raise LocalUnsupportedError(
                f"funnel {funnel_id} has a custom-event step ({label}), "
                "whose definition Mixpanel's API does not return; run it live (without --local), "
                "or give its events as an ad-hoc funnel (-s A -s B)"
            )
        return [s.event for s in saved.steps]

    # -- retention and frequency (contract §10) ------------------------------------------

    def _local_rows(
        self,
        columns: str,
        *,
        names: Sequence[str] | None,
        first: date | None,
        last: date,
        where: str | None,
    ) -> list[tuple[Any, ...]]:
        tz = sql_string(self._tz())
        local = f"(event_time AT TIME ZONE {tz})"
        conds = ["event_time IS NOT NULL", f"CAST({local} AS DATE) <= DATE '{last}'"]
        if first is not None:
            conds.append(f"CAST({local} AS DATE) >= DATE '{first}'")
        if names is not None:
            conds.append(f"event_name IN ({', '.join(sql_string(n) for n in names)})")
        if where is not None:
            conds.append(filter_sql(where))
        cols = columns.format(local=local)
        return self._rows(
            f"SELECT {cols} FROM {quote_ident(self._table)} WHERE {' AND '.join(conds)} "
            "ORDER BY epoch(event_time), insert_id"
        )

    def retention(
        self,
        *,
        born_event: str,
        event: str | None = None,
        from_date: str | date,
        to_date: str | date,
        retention_type: str = "birth",
        born_where: str | None = None,
        where: str | None = None,
        interval: int | None = None,
        unit: str | None = None,
        interval_count: int = 1,
        unbounded: bool = False,
        on: str | None = None,
        limit: int | None = None,
    ) -> RetentionResult:
        """Birth ("first time") or compounded ("recurring") retention by cohort.

        Birth finds each user's first ``born_event`` in the table, so the table should
        start where the project's history does (Mixpanel looks at all of it).
        Intervals are exact durations from the birth (a month is 30 days), as the
        retention docs' "within 24 hours (the 0th interval)" reads; the emulator agrees.
        """
        start, end = check_range(from_date, to_date)
        if interval is not None and unit is not None:
            raise ValidationError(
                "give either unit or interval for retention, not both "
                "(Mixpanel refuses 'unit and interval both specified')"
            )
        kind = check_choice(retention_type, RETENTION_TYPES, name="retention_type")
        born = check_name(born_event, name="born_event")
        ret = None if event is None else check_name(event, name="event")
        days = check_positive(interval, name="interval", maximum=90)
        count = check_positive(interval_count, name="interval_count")
        count = 1 if count is None else count
        cohort_unit = (
            "day"
            if days is not None
            else ("day" if unit is None else check_choice(unit, DAY_WEEK_MONTH, name="unit"))
        )
        seconds = float(
            days * 86400
            if days is not None
            else {"day": 1, "week": 7, "month": 30}[cohort_unit] * 86400
        )
        expr = to_expression(on)
        top = check_positive(limit, name="limit", maximum=MAX_LIMIT) or 255
        self._check_coverage(start, end, [born] + ([ret] if ret else []))
        key = _bucket_of_day(cohort_unit)
        series = bucket_series(cohort_unit, start, end)
        n = count + 1
        horizon = end + timedelta(seconds=seconds * (count + 1)) + timedelta(days=2)
        births: list[tuple[str, str, float]] = []  # (bucket, user, birth time)
        if kind == "birth":
            seen: set[str] = set()
            for user, ts, d in self._local_rows(
                "coalesce(distinct_id, ''), epoch(event_time), CAST({local} AS DATE)",
                names=[born],
                first=None,
                last=end,
                where=born_where,
            ):
                if user not in seen:
                    seen.add(user)
                    if d >= start:
                        births.append((key(d), user, float(ts)))
        else:
            entered: set[tuple[str, str]] = set()
            for user, ts, d in self._local_rows(
                "coalesce(distinct_id, ''), epoch(event_time), CAST({local} AS DATE)",
                names=None if ret is None else [ret],
                first=start,
                last=end,
                where=where,
            ):
                b = key(d)
                if (b, user) not in entered:
                    entered.add((b, user))
                    births.append((b, user, float(ts)))
        labels = labels_sql(expr) if expr is not None else "[]"
        wanted = {u for _, u, _ in births}
        later: dict[str, list[tuple[float, list[str]]]] = {}
        for user, ts, labs in self._local_rows(
            f"coalesce(distinct_id, ''), epoch(event_time), {labels}",
            names=None if ret is None else [ret],
            first=start,
            last=horizon,
            where=where,
        ):
            if user in wanted:
                later.setdefault(user, []).append((float(ts), list(dict.fromkeys(labs))))
        sizes = dict.fromkeys(series, 0)
        hits: dict[str | None, dict[str, list[set[str]]]] = {None: {}}
        for b, user, t0 in births:
            sizes[b] += 1
            for ts, labs in later.get(user, ()):
                if ts <= t0:
                    continue
                i = int((ts - t0) // seconds)
                if i >= n:
                    continue
                for target in [None, *labs] if expr is not None else [None]:
                    rows = hits.setdefault(target, {}).setdefault(b, [set() for _ in range(n)])
                    rows[i].add(user)
        out: dict[str | None, dict[str, Any]] = {}
        for target, per_bucket in hits.items():
            cohorts: dict[str, Any] = {}
            for b in series:
                rows = per_bucket.get(b) or [set() for _ in range(n)]
                if unbounded:
                    acc: set[str] = set()
                    counts: list[int] = []
                    for row in reversed(rows):
                        acc |= row
                        counts.append(len(acc))
                    counts.reverse()
                else:
                    counts = [len(row) for row in rows]
                cohorts[b] = {"counts": counts, "first": sizes[b]}
            out[target] = cohorts
        overall = out.pop(None)
        body: dict[str, Any] = overall
        if expr is not None:
            totals = {str(k): {d: sum(c["counts"]) for d, c in v.items()} for k, v in out.items()}
            body = {k: out[k] for k in _top(totals, top)}
        return RetentionResult.from_api(
            body,
            born_event=born_event,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            retention_type=kind,
        )

    def frequency(
        self,
        *,
        from_date: str | date,
        to_date: str | date,
        unit: str = "day",
        addiction_unit: str = "hour",
        event: str | None = None,
        where: str | None = None,
        on: str | None = None,
        limit: int | None = None,
    ) -> FrequencyResult:
        """Users by how many ``addiction_unit`` periods of each ``unit`` they were active in."""
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit, DAY_WEEK_MONTH, name="unit")
        addiction_unit = check_choice(addiction_unit, HOUR_DAY, name="addiction_unit")
        name = None if event is None else check_name(event, name="event")
        expr = to_expression(on)
        top = check_positive(limit, name="limit", maximum=MAX_LIMIT) or 255
        self._check_coverage(start, end, [] if name is None else [name])
        key = _bucket_of_day(unit)
        series = bucket_series(unit, start, end)
        labels = labels_sql(expr) if expr is not None else "[]"
        active: dict[str | None, dict[str, dict[str, set[tuple[date, int]]]]] = {}
        for user, t, labs in self._local_rows(
            f"coalesce(distinct_id, ''), {{local}}, {labels}",
            names=None if name is None else [name],
            first=start,
            last=end,
            where=where,
        ):
            b = key(t.date())
            sub = (t.date(), t.hour if addiction_unit == "hour" else 0)
            targets: list[str | None] = list(dict.fromkeys(labs)) if expr is not None else [None]
            for target in targets:
                active.setdefault(target, {}).setdefault(b, {}).setdefault(user, set()).add(sub)

        def arrays(per_bucket: dict[str, dict[str, set[tuple[date, int]]]]) -> dict[str, list[int]]:
            result: dict[str, list[int]] = {}
            for b in series:
                first_day = date.fromisoformat(b)
                if unit == "week":
                    after = first_day + timedelta(days=7)
                elif unit == "month":
                    after = date(
                        first_day.year + (first_day.month == 12), first_day.month % 12 + 1, 1
                    )
                else:
                    after = first_day + timedelta(days=1)
                size = (after - first_day).days * (24 if addiction_unit == "hour" else 1)
                tally = [0] * size
                for units in per_bucket.get(b, {}).values():
                    for i in range(min(len(units), size)):
                        tally[i] += 1
                result[b] = tally
            return result

        if expr is None:
            body: dict[str, Any] = {"data": arrays(active.get(None, {}))}
        else:
            segmented = {s: arrays(v) for s, v in active.items() if s is not None}
            totals = {s: {d: a[0] if a else 0 for d, a in v.items()} for s, v in segmented.items()}
            body = {"data": {s: segmented[s] for s in _top(totals, top)}}
        return FrequencyResult.from_api(
            body,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            addiction_unit=addiction_unit,
        )


def _bucket_of_day(unit: str) -> Any:
    def key(d: date) -> str:
        if unit == "week":
            return (d - timedelta(days=d.weekday())).isoformat()
        if unit == "month":
            return d.replace(day=1).isoformat()
        return d.isoformat()

    return key
