"""Funnels, retention and frequency computed from a fetched events table.

The funnel is computed in ``funnel_sql.py`` (its semantics in ``funnels.py``); retention
and frequency follow contract §10 (the emulator's documented choices where Mixpanel's
docs are silent). A saved funnel's steps and conversion window come from its saved
definition: the ``params`` of the ``funnels`` bookmark with the funnel's id, as
Mixpanel's bookmarks API returns them (contract §12.1; ``funnels.saved_definition``
reads them).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mixpanel_data._internal.results.live import FrequencyResult
from mixpanel_data._internal.results.reports import RetentionResult
from mixpanel_data._internal.services.local.engine import (
    LocalEngine,
    bucket_series,
    top_segments,
)
from mixpanel_data._internal.services.local.expressions import labels_sql
from mixpanel_data._internal.services.local.funnel_sql import funnel
from mixpanel_data._internal.services.local.funnels import SEGMENT_LIMIT

if TYPE_CHECKING:
    from mixpanel_data._internal.services.query_specs import (
        FrequencyQuery,
        RetentionQuery,
    )

__all__ = ["bucket_of_day", "frequency", "funnel", "retention"]


def retention(svc: LocalEngine, q: RetentionQuery) -> RetentionResult:
    """Birth ("first time") or compounded ("recurring") retention by cohort.

    Birth finds each user's first ``born_event`` in the table, so the table should
    start where the project's history does (Mixpanel looks at all of it).
    Intervals are exact durations from the birth (a month is 30 days), as the
    retention docs' "within 24 hours (the 0th interval)" reads; the emulator agrees.
    """
    start, end = q.start, q.end
    kind, born, ret, days = q.retention_type, q.born_event, q.event, q.interval
    count = q.interval_count or 1
    cohort_unit = "day" if days is not None or q.unit is None else q.unit
    where, born_where, unbounded = q.where, q.born_where, q.unbounded
    expr = q.on
    top = q.limit or SEGMENT_LIMIT
    seconds = float(
        days * 86400
        if days is not None
        else {"day": 1, "week": 7, "month": 30}[cohort_unit] * 86400
    )
    svc._check_coverage(start, end, [born] + ([ret] if ret else []))
    key = bucket_of_day(cohort_unit)
    series = bucket_series(cohort_unit, start, end)
    n = count + 1
    horizon = end + timedelta(seconds=seconds * (count + 1)) + timedelta(days=2)
    births: list[tuple[str, str, float]] = []  # (bucket, user, birth time)
    if kind == "birth":
        seen: set[str] = set()
        for user, ts, d in svc._local_rows(
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
        for user, ts, d in svc._local_rows(
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
    for user, ts, labs in svc._local_rows(
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
        body = {k: out[k] for k in top_segments(totals, top)}
    return RetentionResult.from_api(
        body,
        born_event=q.born_event,
        event=q.event,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        retention_type=kind,
    )


def frequency(svc: LocalEngine, q: FrequencyQuery) -> FrequencyResult:
    """Users by how many ``addiction_unit`` periods of each ``unit`` they were active in."""
    start, end = q.start, q.end
    unit, addiction_unit, name, expr, where = q.unit, q.addiction_unit, q.event, q.on, q.where
    top = q.limit or SEGMENT_LIMIT
    svc._check_coverage(start, end, [] if name is None else [name])
    key = bucket_of_day(unit)
    series = bucket_series(unit, start, end)
    labels = labels_sql(expr) if expr is not None else "[]"
    active: dict[str | None, dict[str, dict[str, set[tuple[date, int]]]]] = {}
    for user, t, labs in svc._local_rows(
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
                after = date(first_day.year + (first_day.month == 12), first_day.month % 12 + 1, 1)
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
        body = {"data": {s: segmented[s] for s in top_segments(totals, top)}}
    return FrequencyResult.from_api(
        body,
        event=q.event,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        unit=unit,
        addiction_unit=addiction_unit,
    )


def bucket_of_day(unit: str) -> Any:
    """The bucket key of a local day for ``unit`` (weeks start on Monday)."""

    def key(d: date) -> str:
        if unit == "week":
            return (d - timedelta(days=d.weekday())).isoformat()
        if unit == "month":
            return d.replace(day=1).isoformat()
        return d.isoformat()

    return key
