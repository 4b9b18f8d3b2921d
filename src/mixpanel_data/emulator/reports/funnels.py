"""Funnels: ``/funnels`` computed from the events (contract §7.2).

A user enters a bucket's funnel at their first step-1 event in that bucket (so a
user can enter once per bucket), then converts step by step: step i+1 must come
after step i (or up to two seconds before it: the docs' grace period for
simultaneous events) and within the conversion window counted from the entry, and
completions after ``to_date`` still count. ``where`` filters every step's events;
``on`` segments users by the entry event, and a segmented funnel's buckets become
``{"$overall": [steps], "<segment>": [steps]}`` (the form JMF found, contract §7.2).
Ratios are JSON integers when whole; ``avg_time`` and ``avg_time_from_start`` are
whole seconds, ``null`` for step 0 and when nobody reached the step.
A step ``$custom_event:<id>`` matches any of the project's custom event's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from mixpanel_data.emulator.reports.buckets import Buckets, day_buckets, unit_buckets
from mixpanel_data.emulator.reports.dataset import Dataset, Event, dataset_for
from mixpanel_data.emulator.reports.params import (
    EventFilter,
    Segmenter,
    bad,
    date_range,
    event_filter,
    number_out,
    opt_int,
    opt_str,
    req_str,
    segmenter,
    unit_param,
)
from mixpanel_data.emulator.routing import ApiRequest, EmulatorError, query_route

__all__ = [
    "FunnelStats",
    "compute_funnel",
    "custom_event_id",
    "find_funnel",
    "step_events",
    "step_labels",
    "step_rows",
]

LENGTH_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_WINDOW_SECONDS: Final = 90 * 86400  # "May not be greater than 90 days"
GRACE_SECONDS: Final = 2.0  # simultaneous steps (funnels-faq.mdx), see _convert
DEFAULT_LIMIT: Final = 255
MAX_LIMIT: Final = 10_000


@dataclass
class FunnelStats:
    """Per step: users who reached it, and their summed seconds from the previous step/start."""

    counts: list[int]
    from_prev: list[float] = field(default_factory=list)
    from_start: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, steps: int) -> FunnelStats:
        return cls([0] * steps, [0.0] * steps, [0.0] * steps)


def find_funnel(project: Any, raw_id: str) -> dict[str, Any]:
    """The saved funnel with this id; 404 when there is none (NotFoundError on the client)."""
    try:
        funnel_id = int(raw_id)
    except ValueError:
        raise bad(f"Error in funnel_id: expected an integer, got {raw_id!r}") from None
    for funnel in project.funnels():
        if int(funnel["funnel_id"]) == funnel_id:
            return dict(funnel)
    raise EmulatorError(404, f"Funnel {funnel_id} not found in this project; see /funnels/list")


CUSTOM_EVENT_PREFIX: Final = "$custom_event:"


def custom_event_id(step: str) -> int | None:
    """The id in a ``$custom_event:<id>`` step, else None."""
    rest = step.removeprefix(CUSTOM_EVENT_PREFIX)
    return int(rest) if rest != step and rest.isdigit() else None


def step_events(project: Any, steps: Sequence[str]) -> list[frozenset[str]]:
    """The event names each step matches: its own name, or a custom event's alternatives."""
    by_id = {int(c["custom_event_id"]): c for c in getattr(project, "custom_events", list)()}
    out = []
    for step in steps:
        cid = custom_event_id(step)
        if cid is None:
            out.append(frozenset({step}))
        elif cid in by_id:
            out.append(frozenset(str(a) for a in by_id[cid]["alternatives"]))
        else:
            raise bad(f"custom event {cid} of this funnel does not exist in this project")
    return out


def step_labels(project: Any, steps: Sequence[str]) -> list[str]:
    """``step_label``: the event name, or the custom event's name (funnels spec)."""
    names = {
        int(c["custom_event_id"]): c["name"] for c in getattr(project, "custom_events", list)()
    }
    return [
        str(names.get(cid, step)) if (cid := custom_event_id(step)) is not None else step
        for step in steps
    ]


def _convert(
    events: Sequence[Event], i: int, steps: Sequence[frozenset[str]], window: float
) -> list[Event]:
    """The events reaching each step from the entry ``events[i]`` (earliest match is optimal).

    "Funnels include a built-in two-second grace period ... any consecutive steps that
    have timestamps within two seconds of one another are interchangeable" (Mixpanel docs,
    reports/funnels/funnels-faq.mdx, "How does the Funnel handle simultaneous events?"):
    step n+1 may come up to ``GRACE_SECONDS`` before step n. The docs do not say whether
    exactly two seconds counts; here it does.
    """
    entry = events[i]
    path, used = [entry], {i}
    deadline, previous = entry.ts + window, entry.ts
    start = i
    while start > 0 and events[start - 1].ts >= entry.ts - GRACE_SECONDS:
        start -= 1
    for step in steps[1:]:
        found = None
        for j in range(start, len(events)):
            e = events[j]
            if e.ts > deadline:
                break
            if j not in used and e.name in step and e.ts >= previous - GRACE_SECONDS:
                found = j
                break
        if found is None:
            break
        used.add(found)
        path.append(events[found])
        previous = events[found].ts
    return path


def compute_funnel(
    data: Dataset,
    steps: Sequence[str],
    *,
    first: date,
    last: date,
    window: float,
    buckets: Buckets,
    keep: EventFilter | None = None,
    seg: Segmenter | None = None,
    matches: Sequence[frozenset[str]] | None = None,
) -> dict[str, dict[str | None, FunnelStats]]:
    """``{bucket: {segment or None for overall: FunnelStats}}`` for every bucket of the range.

    ``matches`` gives each step's event names (``step_events``); by default a step
    matches the event of its own name.
    """
    names = list(matches) if matches is not None else [frozenset({s}) for s in steps]
    out: dict[str, dict[str | None, FunnelStats]] = {
        b: {None: FunnelStats.empty(len(steps))} for b in buckets.series
    }
    horizon = last + timedelta(days=int(window // 86400) + 2)  # completions after to_date count
    per_user: dict[str, list[Event]] = {}
    wanted = dict.fromkeys(n for step in names for n in sorted(step))
    for e in data.named(wanted, first, horizon):
        if keep is None or keep(e):
            per_user.setdefault(e.distinct_id, []).append(e)
    for events in per_user.values():
        events.sort(key=lambda e: e.seq)
        entered: set[str] = set()
        for i, e in enumerate(events):
            if e.name not in names[0] or e.day > last:
                continue
            b = buckets.key(e.local)
            if b in entered:
                continue
            entered.add(b)
            path = _convert(events, i, names, window)
            targets: list[str | None] = [None]
            if seg is not None:
                targets += seg(e)
            for target in targets:
                stats = out[b].get(target)
                if stats is None:
                    stats = out[b][target] = FunnelStats.empty(len(steps))
                for n, reached in enumerate(path):
                    stats.counts[n] += 1
                    if n:
                        stats.from_prev[n] += reached.ts - path[n - 1].ts
                        stats.from_start[n] += reached.ts - e.ts
    return out


def _ratio(num: int, den: int) -> int | float:
    return number_out(num / den) if den else 0


def _avg(total: float, count: int, step: int) -> int | None:
    return None if step == 0 or count == 0 else round(total / count)


def step_rows(
    stats: FunnelStats, steps: Sequence[str], labels: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The documented step objects, in the doc example's key order (contract §7.2).

    A custom-event step (``$custom_event:<id>``) carries ``custom_event: true`` and
    ``custom_event_id``, and its ``step_label`` is the custom event's name, as in the
    funnels spec example; other steps have neither key.
    """
    c = stats.counts
    rows = []
    for n, name in enumerate(steps):
        row: dict[str, Any] = {
            "count": c[n],
            "avg_time": _avg(stats.from_prev[n], c[n], n),
            "avg_time_from_start": _avg(stats.from_start[n], c[n], n),
            "step_conv_ratio": 1 if n == 0 else _ratio(c[n], c[n - 1]),
            "goal": name,
            "step_label": labels[n] if labels is not None else name,
        }
        cid = custom_event_id(name)
        if cid is not None:
            row["custom_event"] = True
            row["custom_event_id"] = cid
        row["overall_conv_ratio"] = 1 if n == 0 else _ratio(c[n], c[0])
        row["event"] = name
        rows.append(row)
    return rows


def analysis(stats: FunnelStats) -> dict[str, int]:
    """``completion``, ``starting_amount``, ``steps`` and ``worst`` (the biggest drop-off)."""
    c = stats.counts
    ratios = [(c[n] / c[n - 1] if c[n - 1] else 0.0) for n in range(1, len(c))]
    worst = 1 + ratios.index(min(ratios)) if ratios else 0
    return {"completion": c[-1], "starting_amount": c[0], "steps": len(c), "worst": worst}


def window_seconds(req: ApiRequest, funnel: dict[str, Any]) -> float:
    """The conversion window from ``length``/``length_unit`` or the saved funnel's."""
    length = opt_int(req, "length", minimum=1)
    if length is None:
        length = int(funnel.get("length") or 30)
    unit = (
        unit_param(req, tuple(LENGTH_UNITS), default=None, name="length_unit")
        if opt_str(req, "length_unit")
        else str(funnel.get("length_unit") or "day")
    )
    seconds = float(length * LENGTH_UNITS.get(unit, 86400))
    if seconds > MAX_WINDOW_SECONDS:
        raise bad("Error in length: the conversion window may not be greater than 90 days")
    return seconds


@query_route("funnels")
def funnels(req: ApiRequest) -> dict[str, Any]:
    """Step counts, conversion ratios and average times per bucket of a saved funnel."""
    funnel = find_funnel(req.project, req_str(req, "funnel_id", what="a saved funnel's id"))
    steps = [str(s) for s in funnel["steps"]]
    first, last = date_range(req)
    window = window_seconds(req, funnel)
    if opt_str(req, "unit") is not None:
        buckets = unit_buckets(unit_param(req, ("day", "week", "month")), first, last)
    else:
        buckets = day_buckets(opt_int(req, "interval", default=1, minimum=1) or 1, first, last)
    data = dataset_for(req.project)
    keep, seg = event_filter(req, data), segmenter(req, data)
    limit = opt_int(req, "limit", default=DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise bad(f"Error in limit: must be at most {MAX_LIMIT}, got {limit}")
    matches, labels = step_events(req.project, steps), step_labels(req.project, steps)
    result = compute_funnel(
        data,
        steps,
        first=first,
        last=last,
        window=window,
        buckets=buckets,
        keep=keep,
        seg=seg,
        matches=matches,
    )
    body: dict[str, Any] = {}
    if seg is None:
        for b, by_seg in result.items():
            overall = by_seg[None]
            body[b] = {"steps": step_rows(overall, steps, labels), "analysis": analysis(overall)}
        return {"meta": {"dates": buckets.series}, "data": body}
    totals: dict[str, int] = {}
    for by_seg in result.values():
        for target, stats in by_seg.items():
            if target is not None:
                totals[target] = totals.get(target, 0) + stats.counts[0]
    top = sorted(totals, key=lambda s: (-totals[s], s))[:limit]
    for b, by_seg in result.items():
        entry: dict[str, Any] = {"$overall": step_rows(by_seg[None], steps, labels)}
        for target in top:
            stats = by_seg.get(target) or FunnelStats.empty(len(steps))
            entry[target] = step_rows(stats, steps, labels)
        body[b] = entry
    return {"meta": {"dates": buckets.series}, "data": body}
