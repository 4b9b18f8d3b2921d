"""Funnels, retention and frequency computed from a fetched events table.

The funnel semantics are in ``funnels.py``; retention and frequency follow contract §10
(the emulator's documented choices where Mixpanel's docs are silent). A saved funnel's
steps and conversion window come from its saved definition: the ``params`` of the
``funnels`` bookmark with the funnel's id, as Mixpanel's bookmarks API returns them
(contract §12.1; ``funnels.saved_definition`` reads them).
"""

# SQL here is built from compiled expressions, quoted literals and validated names.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from mixpanel_data._internal.results.live import FrequencyResult
from mixpanel_data._internal.results.reports import FunnelResult, RetentionResult
from mixpanel_data._internal.services.local.engine import (
    LocalEngine,
    bucket_series,
    top_segments,
)
from mixpanel_data._internal.services.local.expressions import (
    LocalUnsupportedError,
    filter_sql,
    labels_sql,
    sql_string,
)
from mixpanel_data._internal.services.local.funnels import (
    LENGTH_SECONDS,
    SavedFunnel,
    Step,
    day_chunks,
    funnel_body,
    saved_definition,
)
from mixpanel_data._internal.storage.meta_tables import quote_ident
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.services.query_specs import (
        FrequencyQuery,
        FunnelQuery,
        RetentionQuery,
    )

__all__ = ["bucket_of_day", "frequency", "funnel", "retention"]

SEGMENT_LIMIT: Final = 255  # funnels' and retention's default `limit` (contract §7.2, §10)
ADHOC_WINDOW_DAYS: Final = 30  # an ad-hoc funnel's default window, the emulator's default


def funnel(svc: LocalEngine, q: FunnelQuery) -> FunnelResult:
    """A funnel over the fetched events: a saved one by id, or ad hoc from ``q.steps``.

    A saved funnel's steps and window are its saved definition's; ``length`` (and
    ``length_unit``) override the window, as they do for the live report.
    """
    start, end = q.start, q.end
    expr, where, top = q.on, q.where, q.limit or SEGMENT_LIMIT
    if q.steps is not None:
        names = list(q.steps)
        window = float(ADHOC_WINDOW_DAYS * 86400)
    else:
        assert q.funnel_id is not None
        saved = _saved(svc, q.funnel_id, end, window_given=q.length is not None)
        names, window = list(saved.steps), saved.window
    if q.length is not None:
        window = float(q.length * LENGTH_SECONDS[q.length_unit or "day"])
    svc._check_coverage(start, end, names)
    horizon = end + timedelta(days=int(window // 86400) + 2)  # completions after to_date
    tz = sql_string(svc._tz())
    local = f"(event_time AT TIME ZONE {tz})"
    labels = labels_sql(expr) if expr is not None else "[]"
    query = (
        f"SELECT coalesce(distinct_id, ''), epoch(event_time), event_name, "
        f"CAST({local} AS DATE) AS d, {labels} FROM {quote_ident(svc._table)} "
        f"WHERE event_name IN ({', '.join(sql_string(n) for n in dict.fromkeys(names))}) "
        f"AND event_time IS NOT NULL AND d BETWEEN DATE '{start}' AND DATE '{horizon}'"
        + (f" AND {filter_sql(where)}" if where is not None else "")
        + " ORDER BY 1, 2, insert_id"
    )
    rows = svc._rows(query)
    days = (end - start).days + 1

    def body(step_days: int | None, step_unit: str | None) -> dict[str, Any]:
        if step_unit is not None:
            series = bucket_series(step_unit, start, end)
            key = bucket_of_day(step_unit)
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
    if (q.interval is not None and q.interval != days) or q.unit is not None:
        buckets = body(q.interval, q.unit)
    return FunnelResult.from_api(
        totals,
        funnel_id=q.funnel_id or 0,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        on=expr,
        buckets_body=buckets,
    )


def _saved(svc: LocalEngine, funnel_id: int, end: date, *, window_given: bool) -> SavedFunnel:
    """The saved funnel's definition, from its bookmark (or its steps, with a given window)."""
    live = svc._live
    if live is None:
        raise ValidationError(
            "a saved funnel's definition comes from Mixpanel; open the workspace with credentials"
        )
    bookmarks = live._discovery_service().bookmarks("funnels")
    found = next((b for b in bookmarks if b.id == funnel_id and b.raw.get("params")), None)
    if found is not None:
        return saved_definition(funnel_id, found.raw["params"])
    # No definition found: the live report names the steps, the user gives the window.
    result = live.funnel(funnel_id, from_date=end, to_date=end)
    custom = [s for s in result.steps if s.custom_event_id or s.event.startswith("$custom_")]
    if custom:
        label = custom[0].step_label or custom[0].event
        raise LocalUnsupportedError(
            f"funnel {funnel_id} has a custom-event step ({label}), whose events Mixpanel's "
            "API does not list; run it live (without --local), or give its events as an "
            "ad-hoc funnel (-s A -s B)"
        )
    if not window_given:
        raise LocalUnsupportedError(
            f"Mixpanel returned no saved definition for funnel {funnel_id} (no funnels bookmark "
            "with its id), so its conversion window is unknown; pass the window it was saved "
            "with (--window 7d, or length=)"
        )
    return SavedFunnel(tuple(s.event for s in result.steps), 0.0)


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
