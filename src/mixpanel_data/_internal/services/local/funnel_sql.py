"""A funnel over the fetched events, computed in one DuckDB query (semantics: funnels.py).

Step by step, every open path (an entry: the user's first step-1 event of a bucket)
takes the earliest event of the next step's name with ``ts >= entry - 2 s``,
``ts >= previous step - 2 s`` (the grace period), ``ts <= entry + window``, and not
already taken by this path. Earliest by time is enough: the events of one name at one
instant are interchangeable for the counts and times, so only the entry (whose
``on`` labels count) is picked by ``(time, insert_id)``, as the report orders ties.
Only the final counts and time sums per bucket and segment come back to Python.
"""

# SQL here is built from compiled expressions, quoted literals and validated names.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from mixpanel_data._internal.results.reports import FunnelResult
from mixpanel_data._internal.services.local.engine import bucket_series
from mixpanel_data._internal.services.local.expressions import (
    LocalUnsupportedError,
    filter_sql,
    labels_sql,
    sql_string,
)
from mixpanel_data._internal.services.local.funnels import (
    ADHOC_WINDOW_DAYS,
    GRACE_SECONDS,
    LENGTH_SECONDS,
    SEGMENT_LIMIT,
    SavedFunnel,
    StepStats,
    day_chunks,
    saved_definition,
    shape_body,
)
from mixpanel_data._internal.storage.meta_tables import quote_ident
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.services.local.engine import LocalEngine
    from mixpanel_data._internal.services.query_specs import FunnelQuery

__all__ = ["funnel", "funnel_sql", "local_days_sql"]

_TOTALS, _BUCKETS = 0, 1


def funnel(svc: LocalEngine, q: FunnelQuery) -> FunnelResult:
    """A funnel over the fetched events: a saved one by id, or ad hoc from ``q.steps``.

    A saved funnel's steps and window are its saved definition's; ``length`` (and
    ``length_unit``) override the window, as they do for the live report.
    """
    start, end = q.start, q.end
    expr, top = q.on, q.limit or SEGMENT_LIMIT
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
    days = (end - start).days + 1
    series = {_TOTALS: [start.isoformat()]}
    bucket: str | None = None
    if q.unit is not None:
        series[_BUCKETS] = bucket_series(q.unit, start, end)
        bucket = "{day}" if q.unit == "day" else f"CAST(date_trunc('{q.unit}', {{day}}) AS DATE)"
    elif q.interval is not None and q.interval != days:
        chunks = day_chunks(q.interval, start, end)
        series[_BUCKETS] = [d.isoformat() for d in chunks]
        bucket = f"({{day}} - DATE '{start}') // {q.interval}"  # the chunk's index
    query = funnel_sql(
        table=svc._table,
        steps=names,
        window=window,
        first=start,
        last=end,
        tz=svc._tz(),
        where=filter_sql(q.where) if q.where is not None else None,
        labels=labels_sql(expr) if expr is not None else None,
        bucket=bucket,
    )
    n = len(names)
    out: dict[int, dict[str, dict[str | None, StepStats]]] = {g: {} for g in series}
    for g, b, label, *values in svc._rows(query):
        if g == _TOTALS:
            key = series[_TOTALS][0]
        else:
            key = series[_BUCKETS][b] if isinstance(b, int) else b.isoformat()
        out[g].setdefault(key, {})[label] = StepStats(
            [int(c) for c in values[:n]],
            [0.0, *(float(v or 0.0) for v in values[n : 2 * n - 1])],
            [0.0, *(float(v or 0.0) for v in values[2 * n - 1 :])],
        )
    bodies = {
        g: shape_body(out[g], names, series=series[g], segmented=expr is not None, limit=top)
        for g in series
    }
    return FunnelResult.from_api(
        bodies[_TOTALS],
        funnel_id=q.funnel_id or 0,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        on=expr,
        buckets_body=bodies.get(_BUCKETS),
    )


def _float(value: float) -> str:
    return f"CAST('{value!r}' AS DOUBLE)"


def funnel_sql(
    *,
    table: str,
    steps: Sequence[str],
    window: float,
    first: date,
    last: date,
    tz: str,
    where: str | None,
    labels: str | None,
    bucket: str | None,
) -> str:
    """Rows ``(group, bucket, segment, count per step..., from-previous sums...,
    from-entry sums...)``: group 0 is the whole range (one entry per user), group 1 the
    buckets of ``bucket`` (SQL over ``{day}``, the entry's project day); the segment is
    NULL for all entries, else one of the entry's ``labels``."""
    n = len(steps)
    s = [sql_string(name) for name in steps]
    horizon = last + timedelta(days=int(window // 86400) + 2)  # completions after to_date
    day = f"CAST((event_time AT TIME ZONE {sql_string(tz)}) AS DATE)"
    # Which steps' events a later step of the same name must skip (by rowid).
    marked = [any(steps[j] == steps[k] for j in range(k + 1, n)) for k in range(n)]
    cols = [
        "coalesce(distinct_id, '') AS u",
        "epoch(event_time) AS ts",
        "event_name AS n",
        f"event_name = {s[0]} AND {local_days_sql(tz, None, last)} AS ent",
    ]
    if any(marked):
        cols.append("rowid AS r")
    if labels is not None:
        cols += ["insert_id AS i", f"CASE WHEN event_name = {s[0]} THEN {labels} END AS l"]
    if bucket is not None:
        cols.append(f"CASE WHEN event_name = {s[0]} THEN {bucket.format(day=day)} END AS b")
    conds = [
        f"event_name IN ({', '.join(dict.fromkeys(s))})",
        "event_time IS NOT NULL",
        local_days_sql(tz, first, horizon),
    ]
    if where is not None:
        conds.append(where)
    # Inlined, not materialized: each step's scan then reads only its own event name's
    # rows (pushed down to the table scan), 1.5x faster at 1M events than one shared copy.
    ctes = [
        f"ev AS NOT MATERIALIZED (SELECT {', '.join(cols)} FROM {quote_ident(table)} "
        f"WHERE {' AND '.join(conds)})"
    ]
    key = ["u"] + (["b"] if bucket is not None else [])
    entry = [*key, "min(ts) AS t0"]
    if marked[0]:
        entry.append("arg_min(r, ts) AS r0")
    if labels is not None:
        entry.append("arg_min(l, (ts, i IS NULL, i)) AS l")
    if bucket is not None:
        entry.append("min(min(ts)) OVER (PARTITION BY u) = min(ts) AS whole")
    ctes.append(f"p0 AS (SELECT {', '.join(entry)} FROM ev WHERE ent GROUP BY {', '.join(key)})")
    grace, deadline = _float(GRACE_SECONDS), _float(window)
    carried = ["t0"] + (["r0"] if marked[0] else [])
    for k in range(1, n):
        # Events taken by earlier steps of the same name; other names never match.
        taken = [f"x.r <> p.r{j}" for j in range(k) if steps[j] == steps[k]]
        on = [
            *(f"x.{c} = p.{c}" for c in key[:1]),
            f"x.n = {s[k]}",
            *(f"x.ts >= p.t{j} - {grace}" for j in dict.fromkeys((0, k - 1))),
            f"x.ts <= p.t0 + {deadline}",
            *taken,
        ]
        picked = [f"min(x.ts) AS t{k}"] + ([f"arg_min(x.r, x.ts) AS r{k}"] if marked[k] else [])
        ctes.append(
            f"p{k} AS (SELECT {', '.join(f'p.{c}' for c in key)}, "
            f"{', '.join(f'any_value(p.{c}) AS {c}' for c in carried)}, {', '.join(picked)} "
            f"FROM p{k - 1} p JOIN ev x ON {' AND '.join(on)} "
            f"GROUP BY {', '.join(f'p.{c}' for c in key)})"
        )
        carried += [f"t{k}"] + ([f"r{k}"] if marked[k] else [])
    joins = " ".join(
        f"LEFT JOIN p{k} ON {' AND '.join(f'p{k}.{c} = p0.{c}' for c in key)}" for k in range(1, n)
    )
    times = ", ".join(f"p{k}.t{k}" for k in range(1, n))
    ctes.append(f"f AS (SELECT p0.*, {times} FROM p0 {joins})")
    label = "unnest(list_prepend(NULL::VARCHAR, list_distinct(l)))" if labels else "NULL"
    sums = [f"count(t{k})" for k in range(1, n)]
    sums += [f"sum(t{k} - t{k - 1})" for k in range(1, n)]
    sums += [f"sum(t{k} - t0)" for k in range(1, n)]
    times0 = ", ".join(f"t{k}" for k in range(n))
    parts = [f"SELECT {_TOTALS} AS g, NULL AS b, {label} AS lab, {times0} FROM f"]
    if bucket is not None:
        parts[0] += " WHERE whole"
        parts.append(f"SELECT {_BUCKETS}, b, {label}, {times0} FROM f")
    return (
        f"WITH {', '.join(ctes)} SELECT g, b, lab, count(*), {', '.join(sums)} FROM "
        f"({' UNION ALL '.join(parts)}) GROUP BY g, b, lab"
    )


def local_days_sql(tz: str, first: date | None, last: date) -> str:
    """``event_time``'s project day is within ``[first, last]``, exactly, converting only
    the instants near either end: a timezone's offset is under a day, so an instant more
    than a day inside the range's UTC bounds is in it, one more than a day outside is not
    (a CASE, so DuckDB converts only the rows its first branches leave)."""

    def at(d: date, shift: int) -> str:
        t = datetime.combine(d, time(), UTC) + timedelta(days=shift)
        return f"TIMESTAMPTZ '{t:%Y-%m-%d %H:%M:%S}+00'"

    day = f"CAST((event_time AT TIME ZONE {sql_string(tz)}) AS DATE)"
    after = last + timedelta(days=1)
    inner = [f"event_time < {at(after, -1)}"]
    outer = [f"event_time >= {at(after, 1)}"]
    exact = [f"{day} <= DATE '{last}'"]
    if first is not None:
        inner.append(f"event_time >= {at(first, 1)}")
        outer.append(f"event_time < {at(first, -1)}")
        exact.append(f"{day} >= DATE '{first}'")
    return (
        f"(CASE WHEN {' AND '.join(inner)} THEN true WHEN {' OR '.join(outer)} THEN false "
        f"ELSE {' AND '.join(exact)} END)"
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
