"""Segmentation reports: ``/segmentation`` and its numeric, sum and average variants (§9).

``type`` general counts events, unique counts distinct users per bucket, and
average is events per user in the bucket. ``on`` keys the values by segment label
(see ``params.segment_keys``); ``limit`` keeps the top segments by their total.
Segmentation fills every bucket of ``series`` (its doc example lists every date),
while the numeric report omits zero buckets, as its doc example does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Final

from mixpanel_data.emulator.expression_values import is_number
from mixpanel_data.emulator.reports.buckets import Buckets, day_buckets, unit_buckets
from mixpanel_data.emulator.reports.dataset import Event, dataset_for
from mixpanel_data.emulator.reports.params import (
    TYPES,
    bad,
    date_range,
    event_filter,
    filtered,
    number_out,
    opt_int,
    req_str,
    segmenter,
    unit_param,
    value_fn,
)
from mixpanel_data.emulator.reports.tabular import series_reply, wants_csv
from mixpanel_data.emulator.responses import Reply, now_iso
from mixpanel_data.emulator.routing import ApiRequest, query_route

__all__ = ["aggregate", "numeric_label", "numeric_width", "top_segments"]

SEGMENTATION_UNITS: Final = ("minute", "hour", "day", "week", "month")
NUMERIC_UNITS: Final = ("hour", "day")
DEFAULT_LIMIT: Final = 60
MAX_LIMIT: Final = 10_000
NUMERIC_BUCKETS: Final = 10  # the server picks the bucket count (contract §9.2)


def aggregate(
    events: Iterable[Event],
    *,
    key: Callable[[Event], Iterable[str]],
    bucket: Callable[[Event], str],
    type: str,
) -> dict[str, dict[str, int | float]]:
    """``{segment: {bucket: value}}`` for the events, by ``type`` (general/unique/average)."""
    counts: dict[str, dict[str, int]] = {}
    users: dict[str, dict[str, set[str]]] = {}
    for e in events:
        b = bucket(e)
        for k in key(e):
            row = counts.setdefault(k, {})
            row[b] = row.get(b, 0) + 1
            if type != "general":
                users.setdefault(k, {}).setdefault(b, set()).add(e.distinct_id)
    if type == "general":
        return dict(counts)  # type: ignore[arg-type]
    out: dict[str, dict[str, int | float]] = {}
    for k, row in counts.items():
        if type == "unique":
            out[k] = {b: len(users[k][b]) for b in row}
        else:
            out[k] = {b: number_out(n / len(users[k][b])) for b, n in row.items()}
    return out


def top_segments(values: dict[str, dict[str, Any]], limit: int) -> dict[str, dict[str, Any]]:
    """The ``limit`` segments with the largest totals (ties by label)."""
    ranked = sorted(values.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return dict(ranked[:limit])


def _limit(req: ApiRequest) -> int:
    limit = opt_int(req, "limit", default=DEFAULT_LIMIT, minimum=1)
    assert limit is not None
    if limit > MAX_LIMIT:
        raise bad(f"Error in limit: must be at most {MAX_LIMIT}, got {limit}")
    return limit


def _type(req: ApiRequest) -> str:
    return unit_param(req, TYPES, default="general", name="type")


def _buckets(req: ApiRequest, units: tuple[str, ...], first: Any, last: Any) -> Buckets:
    interval = opt_int(req, "interval", minimum=1)
    if interval is not None and req.params.get("unit") in (None, ""):
        return day_buckets(interval, first, last)  # interval "in lieu of unit" (§9.1)
    return unit_buckets(unit_param(req, units), first, last)


@query_route("segmentation")
def segmentation(req: ApiRequest) -> dict[str, Any] | Reply:
    """Event counts per bucket, optionally segmented by ``on`` and filtered by ``where``."""
    event = req_str(req, "event", what="a single event name")
    csv = wants_csv(req)
    first, last = date_range(req)
    data = dataset_for(req.project)
    keep, seg = event_filter(req, data), segmenter(req, data)
    kind, limit = _type(req), _limit(req)
    buckets = _buckets(req, SEGMENTATION_UNITS, first, last)
    events = filtered(data.between(first, last, name=event), keep)
    values = aggregate(
        events,
        key=(lambda e: (event,)) if seg is None else seg,
        bucket=lambda e: buckets.key(e.local),
        type=kind,
    )
    values = {event: values.get(event, {})} if seg is None else top_segments(values, limit)
    filled = {k: {b: row.get(b, 0) for b in buckets.series} for k, row in values.items()}
    body = {"data": {"series": buckets.series, "values": filled}, "legend_size": len(filled)}
    return series_reply(body) if csv else body


def numeric_width(lo: float, hi: float, *, buckets: int = NUMERIC_BUCKETS) -> float:
    """A round bucket width (1, 2 or 5 times a power of ten) giving at most ``buckets``."""
    span = hi - lo
    if span <= 0:
        return 1.0 if lo == int(lo) else 10.0 ** math.floor(math.log10(abs(lo) or 1.0) - 1)
    raw = span / buckets
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        width = factor * power
        if math.floor(hi / width) - math.floor(lo / width) < buckets:
            return width
    return 10 * power


def _decimals(width: float) -> int:
    return 0 if width >= 1 else max(0, -math.floor(math.log10(width) + 1e-9))


def numeric_label(start: float, width: float) -> str:
    """``"2,000 - 2,100"``: thousands separators, spaces around the hyphen (§9.2)."""
    d = _decimals(width)
    lo, hi = round(start, d), round(start + width, d)
    return f"{lo:,.{d}f} - {hi:,.{d}f}"


@query_route("segmentation/numeric")
def segmentation_numeric(req: ApiRequest) -> dict[str, Any]:
    """Events bucketed by the numeric ``on`` expression into ranges chosen by the server."""
    event = req_str(req, "event", what="a single event name")
    req_str(req, "on", what='a numeric expression, e.g. properties["price"]')
    first, last = date_range(req)
    data = dataset_for(req.project)
    keep, get = event_filter(req, data), value_fn(req, data)
    assert get is not None
    kind = _type(req)
    buckets = unit_buckets(unit_param(req, NUMERIC_UNITS), first, last)
    numbered = [
        (e, v)
        for e in filtered(data.between(first, last, name=event), keep)
        if is_number(v := get(e)) and math.isfinite(v)
    ]
    values: dict[str, dict[str, int | float]] = {}
    if numbered:
        lo = min(v for _, v in numbered)
        hi = max(v for _, v in numbered)
        width = numeric_width(lo, hi)
        labels = {e: numeric_label(math.floor(v / width) * width, width) for e, v in numbered}
        values = aggregate(
            (e for e, _ in numbered),
            key=lambda e: (labels[e],),
            bucket=lambda e: buckets.key(e.local),
            type=kind,
        )
        starts = {numeric_label(math.floor(v / width) * width, width): v for _, v in numbered}
        order = sorted(values, key=lambda label: math.floor(starts[label] / width))
        values = {label: values[label] for label in order}
    return {"data": {"series": buckets.series, "values": values}, "legend_size": len(values)}


def _per_bucket(req: ApiRequest) -> tuple[list[str], dict[str, list[float]]]:
    """The ``on`` value of every matching event, grouped by bucket (non-numbers as 0.0)."""
    event = req_str(req, "event", what="a single event name")
    req_str(req, "on", what='a numeric expression, e.g. properties["price"]')
    first, last = date_range(req)
    data = dataset_for(req.project)
    keep, get = event_filter(req, data), value_fn(req, data)
    assert get is not None
    buckets = unit_buckets(unit_param(req, NUMERIC_UNITS), first, last)
    grouped: dict[str, list[float]] = {b: [] for b in buckets.series}
    for e in filtered(data.between(first, last, name=event), keep):
        v = get(e)
        # "If the expression is not numeric, a value of 0.0 is assumed" (§9.3)
        number = float(v) if is_number(v) and math.isfinite(v) else 0.0
        grouped[buckets.key(e.local)].append(number)
    return buckets.series, grouped


@query_route("segmentation/sum")
def segmentation_sum(req: ApiRequest) -> dict[str, Any]:
    """The sum of the ``on`` expression per bucket."""
    series, grouped = _per_bucket(req)
    results = {b: number_out(round(math.fsum(grouped[b]), 6)) for b in series}
    return {"status": "ok", "computed_at": now_iso(), "results": results}


@query_route("segmentation/average")
def segmentation_average(req: ApiRequest) -> dict[str, Any]:
    """The mean of the ``on`` expression per bucket (0 for a bucket without events)."""
    series, grouped = _per_bucket(req)
    results = {
        b: number_out(round(math.fsum(grouped[b]) / len(grouped[b]), 6)) if grouped[b] else 0
        for b in series
    }
    return {"results": results, "status": "ok"}
