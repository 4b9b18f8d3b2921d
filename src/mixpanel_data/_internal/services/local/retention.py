"""Retention and frequency (addiction) computed in DuckDB from a fetched events table.

Semantics follow contract §10 (the emulator's documented choices where Mixpanel's docs
are silent); the SQL returns only the final counts per cohort, interval and segment.

Retention: a birth cohort holds each user whose first ``born_event`` (all history up
to ``to_date``, ``born_where`` applied) falls in the bucket; a compounded cohort each
user with a return event (``where`` applied) in the bucket, from their first one there.
A return counts in interval ``i`` when it comes after the birth and ``i`` exact
durations of the interval later (a month is 30 days), as the retention docs' "within
24 hours (the 0th interval)" reads; ``unbounded`` counts a user in every interval up
to their last. ``on`` segments by the return event.

Frequency: per bucket of ``unit``, the users active in at least ``k`` distinct hours
(or days) of it, for every ``k`` up to the bucket's size.
"""

# SQL here is built from compiled expressions, quoted literals and validated names.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from mixpanel_data._internal.results.live import FrequencyResult
from mixpanel_data._internal.results.reports import RetentionResult
from mixpanel_data._internal.services.local.engine import (
    LocalEngine,
    bucket_key,
    bucket_series,
    bucket_sql,
    top_segments,
)
from mixpanel_data._internal.services.local.expressions import (
    filter_sql,
    label_sql,
    labels_sql,
    sql_string,
)
from mixpanel_data._internal.storage.meta_tables import quote_ident

if TYPE_CHECKING:
    from mixpanel_data._internal.services.query_specs import FrequencyQuery, RetentionQuery

__all__ = ["frequency", "retention"]

SEGMENT_LIMIT: Final = 255  # retention's and frequency's default `limit` (contract §10)
_USER: Final = "coalesce(distinct_id, '')"
_TS: Final = "epoch(event_time)"


def _segment(expr: str | None) -> tuple[str, bool]:
    """(SQL of an event's segment label(s), whether it is a list to unnest)."""
    if expr is None:
        return "NULL::VARCHAR", False
    label = label_sql(expr)
    return (label, False) if label is not None else (labels_sql(expr), True)


def _conds(*parts: str | None) -> str:
    return " AND ".join(p for p in parts if p)


def retention(svc: LocalEngine, q: RetentionQuery) -> RetentionResult:
    """Birth ("first time") or compounded ("recurring") retention by cohort.

    Birth finds each user's first ``born_event`` in the table, so the table should
    start where the project's history does (Mixpanel looks at all of it).
    """
    start, end = q.start, q.end
    kind, born, ret, days = q.retention_type, q.born_event, q.event, q.interval
    count = q.interval_count or 1
    cohort_unit = "day" if days is not None or q.unit is None else q.unit
    expr, unbounded = q.on, q.unbounded
    seconds = (
        days if days is not None else {"day": 1, "week": 7, "month": 30}[cohort_unit]
    ) * 86400
    day = svc._check_coverage(start, end, [born] + ([ret] if ret else []))
    series = bucket_series(cohort_unit, start, end)
    n = count + 1
    horizon = end + timedelta(days=seconds * n // 86400 + 2)
    table = quote_ident(svc._table)
    returns = f"event_name = {sql_string(ret)}" if ret is not None else None
    where = filter_sql(q.where) if q.where is not None else None
    if kind == "birth":
        first = _conds(
            f"event_name = {sql_string(born)}",
            "event_time IS NOT NULL",
            f"{day} <= DATE '{end}'",
            filter_sql(q.born_where) if q.born_where is not None else None,
        )
        births = (
            f"SELECT {bucket_sql(cohort_unit, day='d', local='')} AS b, u, t0 FROM ("
            f"SELECT {_USER} AS u, min({_TS}) AS t0, arg_min({day}, {_TS}) AS d "
            f"FROM {table} WHERE {first} GROUP BY u) WHERE d >= DATE '{start}'"
        )
    else:
        entered = _conds(
            returns,
            "event_time IS NOT NULL",
            f"{day} BETWEEN DATE '{start}' AND DATE '{end}'",
            where,
        )
        births = (
            f"SELECT {bucket_sql(cohort_unit, day=day, local='')} AS b, {_USER} AS u, "
            f"min({_TS}) AS t0 FROM {table} WHERE {entered} GROUP BY b, u"
        )
    label, listed = _segment(expr)
    later = _conds(
        returns,
        "event_time IS NOT NULL",
        f"{day} BETWEEN DATE '{start}' AND DATE '{horizon}'",
        where,
    )
    # Interval i = floor((ts - t0) / seconds), as Python's float floor division gives it
    # (a quotient rounded up to an integer is corrected).
    quotient = f"CAST(floor((l.ts - c.t0) / {seconds}) AS BIGINT)"
    index = (
        f"(CASE WHEN {quotient} * {seconds} > l.ts - c.t0 THEN {quotient} - 1 ELSE {quotient} END)"
    )
    hits = (
        f"SELECT c.b, c.u, {index} AS i, l.k FROM births c JOIN ("
        f"SELECT {_USER} AS u, {_TS} AS ts, {label} AS k FROM {table} WHERE {later}) l "
        f"ON l.u = c.u AND l.ts > c.t0 AND l.ts - c.t0 < {seconds * n}"
    )

    def tally(source: str) -> str:
        """Users per (k, b, i), or per (k, b, last i) when unbounded."""
        if unbounded:
            return (
                f"SELECT k, b, m AS i, count(*) AS n FROM (SELECT k, b, u, max(i) AS m "
                f"FROM {source} GROUP BY ALL) GROUP BY ALL"
            )
        return f"SELECT k, b, i, count(DISTINCT u) AS n FROM {source} GROUP BY ALL"

    parts = [
        "SELECT 0 AS part, NULL::VARCHAR AS k, b, NULL::BIGINT AS i, count(*) AS n "
        "FROM births GROUP BY b",
        f"SELECT 1, NULL::VARCHAR, b, i, n FROM ({tally('(SELECT b, u, i, NULL AS k FROM hits)')})",
    ]
    if expr is not None:
        segment = "unnest(k)" if listed else "k"
        parts.append(
            f"SELECT 2, k, b, i, n FROM ({tally(f'(SELECT b, u, i, {segment} AS k FROM hits)')})"
        )
    query = (
        f"WITH births AS MATERIALIZED ({births}), hits AS MATERIALIZED ({hits}) "
        + " UNION ALL ".join(parts)
    )
    sizes = dict.fromkeys(series, 0)
    found: dict[str | None, dict[str, list[int]]] = {None: {}}
    for part, k, b, i, users in svc._rows(query):
        key = bucket_key(cohort_unit, b)
        if part == 0:
            sizes[key] = int(users)
        else:
            row = found.setdefault(None if part == 1 else str(k), {}).setdefault(key, [0] * n)
            row[int(i)] += int(users)
    out: dict[str | None, dict[str, Any]] = {}
    for target, per_bucket in found.items():
        cohorts: dict[str, Any] = {}
        for b in series:
            counts = list(per_bucket.get(b) or [0] * n)
            if unbounded:  # users whose last return is in interval i or later
                for i in range(n - 2, -1, -1):
                    counts[i] += counts[i + 1]
            cohorts[b] = {"counts": counts, "first": sizes[b]}
        out[target] = cohorts
    overall = out.pop(None)
    body: dict[str, Any] = overall
    if expr is not None:
        totals = {str(k): {d: sum(c["counts"]) for d, c in v.items()} for k, v in out.items()}
        body = {k: out[k] for k in top_segments(totals, q.limit or SEGMENT_LIMIT)}
    return RetentionResult.from_api(
        body,
        born_event=q.born_event,
        event=q.event,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        retention_type=kind,
    )


def _bucket_size(unit: str, first_day: date) -> int:
    """Days in the bucket of ``unit`` that starts on ``first_day`` (whole, not clipped)."""
    if unit == "week":
        return 7
    if unit == "month":
        after = date(first_day.year + (first_day.month == 12), first_day.month % 12 + 1, 1)
        return (after - first_day).days
    return 1


def frequency(svc: LocalEngine, q: FrequencyQuery) -> FrequencyResult:
    """Users by how many ``addiction_unit`` periods of each ``unit`` they were active in."""
    start, end = q.start, q.end
    unit, addiction_unit, name, expr = q.unit, q.addiction_unit, q.event, q.on
    day = svc._check_coverage(start, end, [] if name is None else [name])
    local = svc._local_sql(start, end)
    series = bucket_series(unit, start, end)
    label, listed = _segment(expr)
    period = f"date_trunc('hour', {local})" if addiction_unit == "hour" else day
    conds = _conds(
        f"event_name = {sql_string(name)}" if name is not None else None,
        "event_time IS NOT NULL",
        f"{day} BETWEEN DATE '{start}' AND DATE '{end}'",
        filter_sql(q.where) if q.where is not None else None,
    )
    segments = f"unnest({label})" if listed else label
    query = (
        f"SELECT k, b, m, count(*) FROM (SELECT k, b, u, count(DISTINCT p) AS m FROM ("
        f"SELECT {segments} AS k, {bucket_sql(unit, day=day, local=local)} AS b, "
        f"{_USER} AS u, {period} AS p FROM {quote_ident(svc._table)} WHERE {conds}) "
        "GROUP BY ALL) GROUP BY ALL"
    )
    per_hour = 24 if addiction_unit == "hour" else 1
    active: dict[str | None, dict[str, list[int]]] = {}
    for k, b, m, users in svc._rows(query):
        key = bucket_key(unit, b)
        size = _bucket_size(unit, date.fromisoformat(key)) * per_hour
        tally = active.setdefault(None if expr is None else str(k), {}).setdefault(key, [0] * size)
        tally[min(int(m), size) - 1] += int(users)  # active in m periods: counted for 1..m

    def arrays(per_bucket: dict[str, list[int]]) -> dict[str, list[int]]:
        result: dict[str, list[int]] = {}
        for b in series:
            size = _bucket_size(unit, date.fromisoformat(b)) * per_hour
            tally = list(per_bucket.get(b) or [0] * size)
            for i in range(size - 2, -1, -1):
                tally[i] += tally[i + 1]
            result[b] = tally
        return result

    if expr is None:
        body: dict[str, Any] = {"data": arrays(active.get(None, {}))}
    else:
        segmented = {s: arrays(v) for s, v in active.items() if s is not None}
        totals = {s: {d: a[0] if a else 0 for d, a in v.items()} for s, v in segmented.items()}
        body = {"data": {s: segmented[s] for s in top_segments(totals, q.limit or SEGMENT_LIMIT)}}
    return FrequencyResult.from_api(
        body,
        event=q.event,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        unit=unit,
        addiction_unit=addiction_unit,
    )
