"""What is in the project: event names, top events, properties, values, funnels, cohorts (§6–§8).

Names, property names and values are ranked by volume over the window (the last
31 days unless ``from_date``/``to_date`` say otherwise, contract §6.1).
``/events/top`` is "today's" top events against yesterday; the synthetic data stops
at yesterday, so "today" is the latest day that has data (an emulator choice).
``type`` is required on both ``/events/top`` and ``/events/names`` (the spec's shared
``type`` parameter is ``required: true``). ``/events/properties/values`` keeps ``event``
optional, although the spec marks it required: without it the values span all events
(our client's ``property_values(prop)`` sends none).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any, Final

from mixpanel_data.emulator.reports.dataset import Event, dataset_for
from mixpanel_data.emulator.reports.params import (
    TYPES,
    check_history,
    date_range,
    opt_int,
    opt_str,
    req_str,
    segment_keys,
    today,
    unit_param,
)
from mixpanel_data.emulator.routing import ApiRequest, query_route

__all__: list[str] = []

NAMES_LIMIT: Final = 255
NAMES_MAX: Final = 5000  # the server clamps larger limits (contract §6.1)
TOP_LIMIT: Final = 100
PROPERTIES_LIMIT: Final = 10
VALUES_LIMIT: Final = 255
WINDOW_DAYS: Final = 31
_INTERNAL: Final = frozenset({"time", "distinct_id"})


def _amounts(events: list[Event], kind: str) -> dict[str, float]:
    """Per event name: events (general), distinct users (unique) or events per user."""
    counts: Counter[str] = Counter(e.name for e in events)
    if kind == "general":
        return dict(counts)
    users: dict[str, set[str]] = {}
    for e in events:
        users.setdefault(e.name, set()).add(e.distinct_id)
    if kind == "unique":
        return {n: len(u) for n, u in users.items()}
    return {n: counts[n] / len(u) for n, u in users.items()}


@query_route("events/names")
def event_names(req: ApiRequest) -> list[str]:
    """The most common event names in the window, most frequent first."""
    kind = unit_param(req, TYPES, default=None, name="type")  # required (spec)
    limit = min(opt_int(req, "limit", default=NAMES_LIMIT, minimum=1) or NAMES_LIMIT, NAMES_MAX)
    first, last = date_range(req, default_days=WINDOW_DAYS)
    check_history(req, first)
    amounts = _amounts(dataset_for(req.project).between(first, last), kind)
    ranked = sorted(amounts, key=lambda n: (-amounts[n], n))
    return ranked[:limit]


def _latest_day(req: ApiRequest) -> date:
    data, now = dataset_for(req.project), today(req.project)
    if data.last_day is None or data.between(now, now):
        return now
    return min(data.last_day, now)


@query_route("events/top")
def top_events(req: ApiRequest) -> dict[str, Any]:
    """Today's top events with the relative change from yesterday (contract §6.2)."""
    kind = unit_param(req, TYPES, default=None, name="type")  # required (spec)
    limit = opt_int(req, "limit", default=TOP_LIMIT, minimum=1) or TOP_LIMIT
    data, day = dataset_for(req.project), _latest_day(req)
    now = _amounts(data.between(day, day), kind)
    before = _amounts(data.between(day - timedelta(days=1), day - timedelta(days=1)), kind)
    rows = []
    for name in sorted(now, key=lambda n: (-now[n], n))[:limit]:
        prev = before.get(name, 0)
        change = 1 if not prev else (now[name] - prev) / prev
        amount = now[name] if kind != "average" else round(now[name], 6)
        rows.append({"amount": amount, "event": name, "percent_change": change})
    return {"events": rows, "type": kind}


def _window(req: ApiRequest) -> list[Event]:
    first, last = date_range(req, default_days=WINDOW_DAYS)
    return dataset_for(req.project).between(first, last, name=opt_str(req, "event"))


@query_route("events/properties/top")
def top_properties(req: ApiRequest) -> dict[str, dict[str, int]]:
    """An event's property names with how many events carry each, most common first."""
    req_str(req, "event", what="a single event name")
    limit = opt_int(req, "limit", default=PROPERTIES_LIMIT, minimum=1) or PROPERTIES_LIMIT
    counts: Counter[str] = Counter()
    for e in _window(req):
        counts.update(k for k in e.props if k not in _INTERNAL)
    ranked = sorted(counts, key=lambda k: (-counts[k], k))[:limit]
    return {k: {"count": counts[k]} for k in ranked}


@query_route("events/properties/values")
def property_values(req: ApiRequest) -> list[str]:
    """The most common values of a property (of one event, or of all), as strings."""
    name = req_str(req, "name", what="a property name")
    limit = opt_int(req, "limit", default=VALUES_LIMIT, minimum=1) or VALUES_LIMIT
    counts: Counter[str] = Counter()
    for e in _window(req):
        if name in e.props and e.props[name] is not None:
            counts.update(segment_keys(e.props[name]))
    return sorted(counts, key=lambda v: (-counts[v], v))[:limit]


@query_route("funnels/list")
def funnels_list(req: ApiRequest) -> list[dict[str, Any]]:
    """The saved funnels: ``[{"funnel_id", "name"}]`` (contract §7.1)."""
    return [{"funnel_id": f["funnel_id"], "name": f["name"]} for f in req.project.funnels()]


@query_route("cohorts/list")
def cohorts_list(req: ApiRequest) -> list[dict[str, Any]]:
    """The saved cohorts, GET or POST (contract §8)."""
    return [dict(c) for c in req.project.cohorts()]
