"""Aggregate event counts: ``/events`` and ``/events/properties`` (contract §6.5, §6.6).

Both list every bucket in ``series`` but omit zero-count buckets from the inner
maps, and ``legend_size`` is the number of keys in ``values``. ``interval`` (N units
back from today) replaces ``from_date``/``to_date`` when those are absent.
Hourly and minutely uniques are refused, as the docs say they are not available.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

from mixpanel_data.emulator.reports.buckets import unit_buckets
from mixpanel_data.emulator.reports.dataset import dataset_for
from mixpanel_data.emulator.reports.params import (
    TYPES,
    bad,
    date_range,
    json_list,
    opt_int,
    opt_str,
    req_str,
    segment_keys,
    today,
    unit_param,
)
from mixpanel_data.emulator.reports.segmentation import aggregate, top_segments
from mixpanel_data.emulator.reports.tabular import series_reply, wants_csv
from mixpanel_data.emulator.responses import Reply
from mixpanel_data.emulator.routing import ApiRequest, query_route

__all__: list[str] = []

UNITS: Final = ("minute", "hour", "day", "week", "month")
DEFAULT_PROPERTY_LIMIT: Final = 255


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _range(req: ApiRequest, unit: str) -> tuple[date, date]:
    """``from_date``/``to_date``, or the last ``interval`` units up to today."""
    interval = opt_int(req, "interval", minimum=1)
    if interval is None or opt_str(req, "from_date") or opt_str(req, "to_date"):
        return date_range(req)
    now = today(req.project)
    if unit == "week":
        return now - timedelta(days=now.weekday() + 7 * (interval - 1)), now
    if unit == "month":
        return _months_back(now, interval - 1), now
    if unit == "day":
        return now - timedelta(days=interval - 1), now
    return now - timedelta(days=(interval - 1) // (24 if unit == "hour" else 1440)), now


def _kind_and_unit(req: ApiRequest) -> tuple[str, str]:
    kind = unit_param(req, TYPES, default=None, name="type")
    unit = unit_param(req, UNITS, default=None)
    if kind != "general" and unit in ("minute", "hour"):
        raise bad(f"Error in unit: {kind} counts are not available per {unit}; use day or longer")
    return kind, unit


@query_route("events")
def events(req: ApiRequest) -> dict[str, Any] | Reply:
    """Counts per bucket for each event of the ``event`` JSON array."""
    names = [str(n) for n in json_list(req, "event", required=True) or []]
    csv = wants_csv(req)
    if not names:
        raise bad("Error in event: the JSON array must name at least one event")
    kind, unit = _kind_and_unit(req)
    first, last = _range(req, unit)
    data = dataset_for(req.project)
    buckets = unit_buckets(unit, first, last)
    counted = aggregate(
        data.named(dict.fromkeys(names), first, last),
        key=lambda e: (e.name,),
        bucket=lambda e: buckets.key(e.local),
        type=kind,
    )
    values = {name: counted.get(name, {}) for name in dict.fromkeys(names)}
    body = {"data": {"series": buckets.series, "values": values}, "legend_size": len(values)}
    return series_reply(body) if csv else body


@query_route("events/properties")
def event_properties(req: ApiRequest) -> dict[str, Any] | Reply:
    """Counts per bucket for each value of one property of one event."""
    event = req_str(req, "event", what="a single event name")
    name = req_str(req, "name", what="a property name")
    csv = wants_csv(req)
    wanted = json_list(req, "values", required=False)
    kind, unit = _kind_and_unit(req)
    first, last = _range(req, unit)
    limit = opt_int(req, "limit", default=DEFAULT_PROPERTY_LIMIT, minimum=1)
    assert limit is not None
    data = dataset_for(req.project)
    buckets = unit_buckets(unit, first, last)
    allowed = None if wanted is None else {k for v in wanted for k in segment_keys(v)}

    def key(e: Any) -> list[str]:
        labels = segment_keys(e.props.get(name))
        return labels if allowed is None else [k for k in labels if k in allowed]

    counted = aggregate(
        data.between(first, last, name=event),
        key=key,
        bucket=lambda e: buckets.key(e.local),
        type=kind,
    )
    values = top_segments(counted, limit)
    body = {"data": {"series": buckets.series, "values": values}, "legend_size": len(values)}
    return series_reply(body) if csv else body
