"""The local funnel as it was first written, a walk over each user's events in Python:
the oracle that the SQL of ``funnel_sql.py`` must equal, body for body.

``old_funnel`` reads the events with the original query (ordered by user, time and
``insert_id``) and walks them with the original ``_path``; nothing here is shared with
the SQL version but the expression compiler.
"""

# The SQL is built from quoted literals and compiled expressions.
# ruff: noqa: S608

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mixpanel_data._internal.services.local.cohorts import bucket_of_day
from mixpanel_data._internal.services.local.engine import bucket_series
from mixpanel_data._internal.services.local.expressions import (
    filter_sql,
    labels_sql,
    sql_string,
    typed_columns,
)
from mixpanel_data._internal.services.local.funnels import (
    GRACE_SECONDS,
    day_chunks,
)


@dataclass(frozen=True)
class Step:
    """One event of a user: epoch seconds, name, bucket key, local day, segment labels."""

    ts: float
    name: str
    bucket: str
    day: date
    labels: tuple[str, ...] = ()


@dataclass
class _Stats:
    counts: list[int]
    from_prev: list[float] = field(default_factory=list)
    from_start: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> _Stats:
        return cls([0] * n, [0.0] * n, [0.0] * n)


def _path(
    events: Sequence[Step], times: list[float], i: int, steps: Sequence[str], window: float
) -> list[Step]:
    entry = events[i]
    path, used = [entry], {i}
    deadline, previous = entry.ts + window, entry.ts
    start = bisect.bisect_left(times, entry.ts - GRACE_SECONDS)
    for step in steps[1:]:
        found = None
        for j in range(start, len(events)):
            e = events[j]
            if e.ts > deadline:
                break
            if j not in used and e.name == step and e.ts >= previous - GRACE_SECONDS:
                found = j
                break
        if found is None:
            break
        used.add(found)
        path.append(events[found])
        previous = events[found].ts
    return path


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _rows(stats: _Stats, steps: Sequence[str]) -> list[dict[str, Any]]:
    c = stats.counts

    def avg(total: float, n: int, k: int) -> int | None:
        return None if k == 0 or n == 0 else round(total / n)

    def ratio(num: int, den: int) -> int | float:
        return _number(num / den) if den else 0

    return [
        {
            "count": c[k],
            "avg_time": avg(stats.from_prev[k], c[k], k),
            "avg_time_from_start": avg(stats.from_start[k], c[k], k),
            "step_conv_ratio": 1 if k == 0 else ratio(c[k], c[k - 1]),
            "goal": name,
            "step_label": name,
            "overall_conv_ratio": 1 if k == 0 else ratio(c[k], c[0]),
            "event": name,
        }
        for k, name in enumerate(steps)
    ]


def _analysis(stats: _Stats) -> dict[str, int]:
    c = stats.counts
    ratios = [(c[k] / c[k - 1] if c[k - 1] else 0.0) for k in range(1, len(c))]
    worst = 1 + ratios.index(min(ratios)) if ratios else 0
    return {"completion": c[-1], "starting_amount": c[0], "steps": len(c), "worst": worst}


def funnel_body(
    users: dict[str, list[Step]],
    steps: Sequence[str],
    *,
    series: list[str],
    last: date,
    window: float,
    segmented: bool,
    limit: int,
) -> dict[str, Any]:
    """The ``/funnels`` body for events grouped by user (each list sorted by time)."""
    n = len(steps)
    out: dict[str, dict[str | None, _Stats]] = {b: {None: _Stats.empty(n)} for b in series}
    for events in users.values():
        times = [e.ts for e in events]
        entered: set[str] = set()
        for i, e in enumerate(events):
            if e.name != steps[0] or e.day > last or e.bucket in entered:
                continue
            entered.add(e.bucket)
            path = _path(events, times, i, steps, window)
            targets: list[str | None] = [None, *e.labels] if segmented else [None]
            for target in targets:
                stats = out[e.bucket].setdefault(target, _Stats.empty(n))
                for k, reached in enumerate(path):
                    stats.counts[k] += 1
                    if k:
                        stats.from_prev[k] += reached.ts - path[k - 1].ts
                        stats.from_start[k] += reached.ts - e.ts
    body: dict[str, Any] = {}
    if not segmented:
        for b, by_seg in out.items():
            body[b] = {"steps": _rows(by_seg[None], steps), "analysis": _analysis(by_seg[None])}
        return {"meta": {"dates": series}, "data": body}
    totals: dict[str, int] = {}
    for by_seg in out.values():
        for target, stats in by_seg.items():
            if target is not None:
                totals[target] = totals.get(target, 0) + stats.counts[0]
    top = sorted(totals, key=lambda s: (-totals[s], s))[:limit]
    for b, by_seg in out.items():
        entry: dict[str, Any] = {"$overall": _rows(by_seg[None], steps)}
        for target in top:
            entry[target] = _rows(by_seg.get(target) or _Stats.empty(n), steps)
        body[b] = entry
    return {"meta": {"dates": series}, "data": body}


def old_funnel(
    db: Path,
    steps: Sequence[str],
    *,
    start: date,
    end: date,
    window: float,
    tz: str,
    where: str | None = None,
    on: str | None = None,
    limit: int = 255,
    interval: int | None = None,
    unit: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(whole-range body, per-bucket body or None), as the original ``funnel()`` made them."""
    names = list(steps)
    horizon = end + timedelta(days=int(window // 86400) + 2)
    local = f"(event_time AT TIME ZONE {sql_string(tz)})"
    with typed_columns({}):
        labels = labels_sql(on) if on is not None else "[]"
        keep = f" AND {filter_sql(where)}" if where is not None else ""
    query = (
        f"SELECT coalesce(distinct_id, ''), epoch(event_time), event_name, "
        f"CAST({local} AS DATE) AS d, {labels} FROM events "
        f"WHERE event_name IN ({', '.join(sql_string(n) for n in dict.fromkeys(names))}) "
        f"AND event_time IS NOT NULL AND d BETWEEN DATE '{start}' AND DATE '{horizon}'"
        + keep
        + " ORDER BY 1, 2, insert_id"
    )
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(query).fetchall()
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
            segmented=on is not None,
            limit=limit,
        )

    buckets = None
    if (interval is not None and interval != days) or unit is not None:
        buckets = body(interval, unit)
    return body(days, None), buckets
