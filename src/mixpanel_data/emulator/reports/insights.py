"""Saved reports: ``/insights?bookmark_id=`` for insights, funnel and retention bookmarks (§12.1).

Each bookmark's ``params`` (from the synthetic project) describe the saved query;
its date range is the last 30 days up to today unless the params give dates.
Series keys are ISO timestamps with the project's UTC offset on that date.
Funnel and retention bookmarks come back "normalised" (contract §12.1):
``headers`` ``["$funnel"]`` with ``{"count": {"1. Sign Up": {"all": n}}, ...}``
computed over the whole range as one bucket (each user once), and ``["$retention"]``
with ``{"<born> then <event>": {"<cohort ISO>": {"$overall": {first, counts, rates}}}}``.
A breakdown (``on``) nests the dates under ``"$overall"`` and each segment.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from mixpanel_data.emulator.reports.buckets import day_buckets, unit_buckets
from mixpanel_data.emulator.reports.dataset import dataset_for
from mixpanel_data.emulator.reports.funnels import (
    compute_funnel,
    find_funnel,
    step_events,
    window_seconds,
)
from mixpanel_data.emulator.reports.params import (
    bad,
    date_range,
    number_out,
    parse_date,
    req_str,
    segmenter,
    today,
)
from mixpanel_data.emulator.reports.retention import UNIT_SECONDS, compute_retention
from mixpanel_data.emulator.reports.segmentation import aggregate, top_segments
from mixpanel_data.emulator.responses import now_iso
from mixpanel_data.emulator.routing import ApiRequest, EmulatorError, query_route

__all__ = ["find_bookmark", "iso_day", "saved_range"]

DEFAULT_DAYS: Final = 30
RETENTION_INTERVALS: Final = 7
SEGMENT_LIMIT: Final = 60
_PROP_RE: Final = re.compile(r'^\s*(?:properties|user)\["((?:[^"\\]|\\.)*)"\]\s*$')


def find_bookmark(project: Any, raw_id: str) -> dict[str, Any]:
    """The saved report with this id; 404 when there is none (NotFoundError on the client)."""
    try:
        bookmark_id = int(raw_id)
    except ValueError:
        raise bad(f"Error in bookmark_id: expected an integer, got {raw_id!r}") from None
    for bookmark in project.bookmarks():
        if int(bookmark["id"]) == bookmark_id:
            return dict(bookmark)
    raise EmulatorError(404, f"Bookmark {bookmark_id} not found in this project")


def iso_day(day: date, tz: ZoneInfo, *, end: bool = False) -> str:
    """``2020-08-31T00:00:00-07:00`` (or the day's last millisecond when ``end``)."""
    moment = datetime(day.year, day.month, day.day, tzinfo=tz)
    if end:
        moment += timedelta(days=1, milliseconds=-1)
        return moment.isoformat(timespec="microseconds")
    return moment.isoformat(timespec="seconds")


def saved_range(req: ApiRequest, params: dict[str, Any]) -> tuple[date, date]:
    """The bookmark's dates, the request's ``from_date``/``to_date``, or the last 30 days."""
    if req.params.get("from_date") or req.params.get("to_date"):
        return date_range(req)
    if params.get("from_date") and params.get("to_date"):
        return parse_date(params["from_date"], "from_date"), parse_date(
            params["to_date"], "to_date"
        )
    last = today(req.project)
    return last - timedelta(days=DEFAULT_DAYS - 1), last


def _sub_request(req: ApiRequest, params: dict[str, Any]) -> ApiRequest:
    """The bookmark's saved query as request parameters, for the shared filter helpers."""
    strings = {k: str(v) for k, v in params.items() if v is not None and not isinstance(v, dict)}
    return ApiRequest(req.method, req.endpoint, strings, req.project, req.request_line)


def _insights(req: ApiRequest, params: dict[str, Any], first: date, last: date) -> dict[str, Any]:
    event = str(params.get("event") or "")
    if not event:
        raise bad("This insights bookmark has no event to count")
    tz = req.project.tz
    sub = _sub_request(req, params)
    data = dataset_for(req.project)
    seg = segmenter(sub, data)
    buckets = unit_buckets(str(params.get("unit") or "day"), first, last)
    iso = {s: iso_day(d, tz) for s, d in zip(buckets.series, buckets.starts, strict=True)}
    kind = str(params.get("type") or "general")
    events = data.between(first, last, name=event)

    def dated(row: dict[str, Any]) -> dict[str, Any]:
        return {iso[b]: row.get(b, 0) for b in buckets.series}

    overall = aggregate(
        events, key=lambda e: ("$overall",), bucket=lambda e: buckets.key(e.local), type=kind
    ).get("$overall", {})
    headers = ["$event"]
    if seg is None:
        series: dict[str, Any] = {event: dated(overall)}
    else:
        match = _PROP_RE.match(str(params["on"]))
        headers.append(match.group(1) if match else str(params["on"]))
        split = aggregate(events, key=seg, bucket=lambda e: buckets.key(e.local), type=kind)
        nested = {"$overall": dated(overall)}
        nested.update((k, dated(v)) for k, v in top_segments(split, SEGMENT_LIMIT).items())
        series = {event: nested}
    return {"headers": headers, "series": series}


def _funnel(req: ApiRequest, params: dict[str, Any], first: date, last: date) -> dict[str, Any]:
    funnel = find_funnel(req.project, str(params.get("funnel_id")))
    steps = [str(s) for s in funnel["steps"]]
    window = window_seconds(_sub_request(req, {}), {**funnel, **params})
    buckets = day_buckets((last - first).days + 1, first, last)  # one bucket: each user once
    stats = compute_funnel(
        dataset_for(req.project),
        steps,
        first=first,
        last=last,
        window=window,
        buckets=buckets,
        matches=step_events(req.project, steps),
    )[buckets.series[0]][None]
    labels = [f"{n + 1}. {name}" for n, name in enumerate(steps)]
    c = stats.counts

    def per_step(values: list[Any]) -> dict[str, dict[str, Any]]:
        return {label: {"all": v} for label, v in zip(labels, values, strict=True)}

    def avg(totals: list[float]) -> list[int | None]:
        return [None if n == 0 or not c[n] else round(totals[n] / c[n]) for n in range(len(c))]

    overall = [1] + [number_out(c[n] / c[0]) if c[0] else 0 for n in range(1, len(c))]
    step = [1] + [number_out(c[n] / c[n - 1]) if c[n - 1] else 0 for n in range(1, len(c))]
    series = {
        "count": per_step(list(c)),
        "overall_conv_ratio": per_step(overall),
        "step_conv_ratio": per_step(step),
        "avg_time": per_step(avg(stats.from_prev)),
        "avg_time_from_start": per_step(avg(stats.from_start)),
    }
    return {"headers": ["$funnel"], "series": series}


def _retention(req: ApiRequest, params: dict[str, Any], first: date, last: date) -> dict[str, Any]:
    born, event = str(params.get("born_event") or ""), params.get("event")
    if not born:
        raise bad("This retention bookmark has no born_event")
    unit = str(params.get("unit") or "day")
    count = int(params.get("interval_count") or RETENTION_INTERVALS)
    cohorts = compute_retention(
        _sub_request(req, params),
        first=first,
        last=last,
        born_event=born,
        event=str(event) if event else None,
        retention_type="birth",
        unit=unit,
        interval_seconds=float(UNIT_SECONDS.get(unit, 86400)),
        interval_count=count,
        unbounded=bool(params.get("unbounded_retention")),
    )[None]
    tz = req.project.tz
    series: dict[str, Any] = {}
    for key, cohort in cohorts.items():
        size = cohort["first"]
        rates = [number_out(n / size) if size else 0 for n in cohort["counts"]]
        overall = {"first": size, "counts": cohort["counts"], "rates": rates}
        series[iso_day(date.fromisoformat(key), tz)] = {"$overall": overall}
    metric = f"{born} then {event}" if event else f"{born} then any event"
    return {"headers": ["$retention"], "series": {metric: series}}


@query_route("insights")
def insights(req: ApiRequest) -> dict[str, Any]:
    """A saved report's numbers, computed now over its saved query."""
    started = time.perf_counter()
    bookmark = find_bookmark(req.project, req_str(req, "bookmark_id", what="a saved report's id"))
    params = dict(bookmark.get("params") or {})
    first, last = saved_range(req, params)
    kind = bookmark.get("type")
    if kind == "funnels":
        body = _funnel(req, params, first, last)
    elif kind == "retention":
        body = _retention(req, params, first, last)
    elif kind == "insights":
        body = _insights(req, params, first, last)
    else:
        raise bad(f"Bookmark {bookmark['id']} is a {kind} report; query it with /arb_funnels")
    tz = req.project.tz
    return {
        "computed_at": now_iso(),
        "date_range": {"from_date": iso_day(first, tz), "to_date": iso_day(last, tz, end=True)},
        "headers": body["headers"],
        "series": body["series"],
        "meta": {
            "sampling_factor": 1,
            "is_cached": False,
            "computation_time": round(time.perf_counter() - started, 6),
            "query_id": uuid.uuid4().hex,
        },
    }
