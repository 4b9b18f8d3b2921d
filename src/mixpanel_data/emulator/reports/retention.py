"""Retention: ``/retention`` (birth and compounded) and ``/retention/addiction`` (§10).

Birth ("first time"): a user is born at their first-ever ``born_event`` matching
``born_where``, in the cohort of that moment's ``unit`` bucket. ``counts[i]`` is the
users who did ``event`` (any event if absent, matching ``where``) in the i-th
interval after birth, measured from the birth time: "9 of those users did event
within 24 hours (the 0th interval) of doing the born_event" (the retention docs),
so intervals are exact durations (a month is 30 days). The birth event itself is
not a return. Compounded ("recurring"): each cohort is the users who did ``event``
in that bucket, measured from their first such event in it. ``unbounded_retention``
accumulates right to left. With ``on`` (its shape is unconfirmed, contract §10.1)
the body is keyed by segment first, each holding the usual date-keyed cohorts;
a user counts in a segment when a return event has that ``on`` value.

Addiction: per ``unit`` period, entry i is the users who did the event in at
least i+1 distinct ``addiction_unit`` sub-periods (contract §10.2).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final

from mixpanel_data.emulator.reports.buckets import unit_buckets, unit_end
from mixpanel_data.emulator.reports.dataset import Event, dataset_for
from mixpanel_data.emulator.reports.params import (
    bad,
    date_range,
    event_filter,
    opt_bool,
    opt_int,
    opt_str,
    segmenter,
    unit_param,
)
from mixpanel_data.emulator.reports.segmentation import top_segments
from mixpanel_data.emulator.routing import ApiRequest, query_route

__all__ = ["compute_retention"]

UNIT_SECONDS: Final = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400}
MAX_DAY_INTERVAL: Final = 90
DEFAULT_LIMIT: Final = 255

Cohorts = dict[str, dict[str, Any]]


def compute_retention(
    req: ApiRequest,
    *,
    first: date,
    last: date,
    born_event: str | None,
    event: str | None,
    retention_type: str,
    unit: str,
    interval_seconds: float,
    interval_count: int,
    unbounded: bool,
) -> dict[str | None, Cohorts]:
    """``{segment or None: {cohort date: {"counts", "first"}}}`` computed from the events."""
    data = dataset_for(req.project)
    born_keep, keep = event_filter(req, data, "born_where"), event_filter(req, data, "where")
    seg = segmenter(req, data)
    buckets = unit_buckets(unit, first, last)
    horizon = last + timedelta(seconds=interval_seconds * (interval_count + 1)) + timedelta(days=2)

    def returns(e: Event) -> bool:
        return (event is None or e.name == event) and (keep is None or keep(e))

    # Who is born when: (user, birth event) per cohort bucket.
    births: list[tuple[str, Event]] = []
    if retention_type == "birth":
        assert born_event is not None
        seen: set[str] = set()
        # "first time": the first born_event ever, so look before from_date too
        for e in data.between(data.first_day or first, last, name=born_event):
            if e.distinct_id in seen or (born_keep is not None and not born_keep(e)):
                continue
            seen.add(e.distinct_id)
            if e.day >= first:
                births.append((buckets.key(e.local), e))
    else:
        entered: set[tuple[str, str]] = set()
        for e in data.between(first, last, name=event):
            b = buckets.key(e.local)
            if (b, e.distinct_id) not in entered and returns(e):
                entered.add((b, e.distinct_id))
                births.append((b, e))

    later = data.between(first, horizon, name=event)
    by_user: dict[str, list[Event]] = {}
    wanted = {e.distinct_id for _, e in births}
    for e in later:
        if e.distinct_id in wanted and returns(e):
            by_user.setdefault(e.distinct_id, []).append(e)

    n = interval_count + 1
    sizes: dict[str, int] = dict.fromkeys(buckets.series, 0)
    hits: dict[str | None, dict[str, list[set[str]]]] = {None: {}}
    for b, born in births:
        sizes[b] += 1
        for e in by_user.get(born.distinct_id, ()):
            if e.ts <= born.ts or e is born:
                continue
            i = int((e.ts - born.ts) // interval_seconds)
            if i >= n:
                continue
            targets: list[str | None] = [None] if seg is None else [None, *seg(e)]
            for target in targets:
                rows = hits.setdefault(target, {}).setdefault(b, [set() for _ in range(n)])
                rows[i].add(born.distinct_id)

    out: dict[str | None, Cohorts] = {}
    for target, per_bucket in hits.items():
        cohorts: Cohorts = {}
        for b in buckets.series:
            rows = per_bucket.get(b) or [set() for _ in range(n)]
            if unbounded:
                acc: set[str] = set()
                counts = []
                for row in reversed(rows):
                    acc |= row
                    counts.append(len(acc))
                counts.reverse()
            else:
                counts = [len(row) for row in rows]
            cohorts[b] = {"counts": counts, "first": sizes[b]}
        out[target] = cohorts
    return out


def _interval(req: ApiRequest) -> tuple[str, float]:
    """The cohort unit and the interval length in seconds; never both params (§10.1)."""
    if opt_str(req, "unit") is not None and opt_str(req, "interval") is not None:
        # JMF's fixture answers 500, but this is a bad request, not a server fault: a 400
        # tells clients not to retry it (5xx are retried), contract §3.4 / §10.1.
        raise bad("unit and interval both specified")
    unit = unit_param(req, ("day", "week", "month"))
    interval = opt_int(req, "interval", minimum=1)
    if interval is None:
        return unit, float(UNIT_SECONDS[unit])
    if interval > MAX_DAY_INTERVAL:
        raise bad(f"Error in interval: may not be greater than {MAX_DAY_INTERVAL} days")
    return "day", float(interval * 86400)


@query_route("retention")
def retention(req: ApiRequest) -> dict[str, Any]:
    """Cohorts by birth (or recurring activity) with returning users per interval."""
    kind = unit_param(req, ("birth", "compounded"), default="birth", name="retention_type")
    born_event = opt_str(req, "born_event")
    if kind == "birth" and born_event is None:
        raise bad("Missing required parameter: born_event (required when retention_type is birth)")
    first, last = date_range(req)
    unit, seconds = _interval(req)
    interval_count = opt_int(req, "interval_count", default=1, minimum=0)
    assert interval_count is not None
    limit = opt_int(req, "limit", default=DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT
    result = compute_retention(
        req,
        first=first,
        last=last,
        born_event=born_event,
        event=opt_str(req, "event"),
        retention_type=kind,
        unit=unit,
        interval_seconds=seconds,
        interval_count=interval_count,
        unbounded=opt_bool(req, "unbounded_retention"),
    )
    overall = result.pop(None)
    if opt_str(req, "on") is None:
        return overall
    totals = {
        str(s): {d: sum(c["counts"]) for d, c in cohorts.items()} for s, cohorts in result.items()
    }
    return {s: result[s] for s in top_segments(totals, limit)}


def _sub_units(unit: str, addiction_unit: str, start: date) -> int:
    days = (unit_end(unit, start) - start).days
    return days * 24 if addiction_unit == "hour" else days


def _sub_unit(addiction_unit: str, local: datetime) -> tuple[date, int]:
    return local.date(), local.hour if addiction_unit == "hour" else 0


@query_route("retention/addiction")
def addiction(req: ApiRequest) -> dict[str, Any]:
    """How many users were active in at least 1, 2, ... sub-periods of each period."""
    first, last = date_range(req)
    unit = unit_param(req, ("day", "week", "month"), default=None)
    addiction_unit = unit_param(req, ("hour", "day"), default=None, name="addiction_unit")
    data = dataset_for(req.project)
    keep, seg = event_filter(req, data), segmenter(req, data)
    event = opt_str(req, "event")
    limit = opt_int(req, "limit", default=DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT
    buckets = unit_buckets(unit, first, last)
    active: dict[str | None, dict[str, dict[str, set[tuple[date, int]]]]] = {}
    for e in data.between(first, last, name=event):
        if keep is not None and not keep(e):
            continue
        b = buckets.key(e.local)
        targets: list[str | None] = [None] if seg is None else seg(e)  # type: ignore[assignment]
        for target in targets:
            per_user = active.setdefault(target, {}).setdefault(b, {})
            per_user.setdefault(e.distinct_id, set()).add(_sub_unit(addiction_unit, e.local))

    def arrays(per_bucket: dict[str, dict[str, set[tuple[date, int]]]]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for key, start in zip(buckets.series, buckets.starts, strict=True):
            size = _sub_units(unit, addiction_unit, start)
            tally = [0] * size
            for units in per_bucket.get(key, {}).values():
                for i in range(min(len(units), size)):
                    tally[i] += 1
            out[key] = tally
        return out

    if seg is None:
        return {"data": arrays(active.get(None, {}))}
    segmented = {s: arrays(per_bucket) for s, per_bucket in active.items() if s is not None}
    totals = {s: {d: a[0] if a else 0 for d, a in v.items()} for s, v in segmented.items()}
    return {"data": {s: segmented[s] for s in top_segments(totals, limit)}}
