"""Funnels computed locally, shaped as the ``/funnels`` body (contract §7.2).

Semantics (the emulator's documented choices where Mixpanel's docs are silent):

- a user enters a bucket's funnel at their first step-1 event in that bucket, so the
  whole range as one bucket counts each user once; completions after ``to_date`` count;
- steps are in loose order ("a customer can engage in other actions in between funnel
  steps, as long as they complete all the funnel steps in order", funnels-faq.mdx), each
  within the conversion window counted from the entry;
- simultaneous events: "Funnels include a built-in two-second grace period ... any
  consecutive steps that have timestamps within two seconds of one another are
  interchangeable" (funnels-faq.mdx): step n+1 may come up to 2 s before step n
  (whether exactly 2 s counts the docs do not say; here it does, as in the emulator);
- ``where`` filters every step's events; ``on`` segments by the entry event; a segmented
  bucket is ``{"$overall": steps, "<segment>": steps}``, top ``limit`` segments by entries.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from mixpanel_data._internal.services.local.expressions import LocalUnsupportedError

GRACE_SECONDS: Final = 2.0
LENGTH_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

__all__ = [
    "GRACE_SECONDS",
    "LENGTH_SECONDS",
    "SavedFunnel",
    "Step",
    "funnel_body",
    "saved_definition",
]


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


def day_chunks(interval: int, first: date, last: date) -> list[date]:
    """Starts of ``interval``-day buckets from ``first`` (the funnel's default buckets)."""
    return [first + timedelta(days=i) for i in range(0, (last - first).days + 1, interval)]


@dataclass(frozen=True)
class SavedFunnel:
    """What the local engine takes from a saved funnel: its steps and window (seconds)."""

    steps: tuple[str, ...]
    window: float


# Units of a saved funnel's conversionWindowUnit the local engine reproduces exactly.
_WINDOW_SECONDS: Final = {**LENGTH_SECONDS, "week": 7 * 86400}
_UNIQUE_MATHS: Final = (None, "conversion_rate_unique", "unique")


def saved_definition(funnel_id: int, params: Any) -> SavedFunnel:
    """Read a ``funnels`` bookmark's ``params`` (the bookmarks API's saved query).

    The shape is Mixpanel's bookmark JSON (contract §12.1, the bookmarks research it cites):
    ``sections.show[0].behavior`` is ``{"type": "funnel", "behaviors": [{"type": "event",
    "name": ...}, ...], "conversionWindowDuration": N, "conversionWindowUnit": "day",
    "funnelOrder": "loose", "exclusions": [...]}``, with report-wide filters in
    ``sections.filter``. Anything the local engine would not reproduce exactly (custom
    events, step or report filters, exclusions, any-order steps, totals, session windows)
    is refused with one line rather than answered differently.
    """
    what = f"funnel {funnel_id}"

    def refuse(why: str) -> LocalUnsupportedError:
        return LocalUnsupportedError(
            f"{what}'s saved definition {why}, which the local engine does not reproduce; "
            "run it live (without --local), or as an ad-hoc funnel (-s A -s B --window 7d)"
        )

    sections = params.get("sections") if isinstance(params, dict) else None
    show = sections.get("show") if isinstance(sections, dict) else None
    behavior = show[0].get("behavior") if isinstance(show, list) and show else None
    if not isinstance(behavior, dict) or behavior.get("type") != "funnel":
        raise refuse("is not a funnel of events (no sections.show[0].behavior of type funnel)")
    assert isinstance(sections, dict) and isinstance(show, list)
    steps: list[str] = []
    for item in behavior.get("behaviors") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind != "event":
            label = item.get("name") if isinstance(item, dict) else item
            raise refuse(f"has a {kind or 'non-event'} step ({label})")
        if item.get("filters"):
            raise refuse(f"filters its step {item.get('name')!r}")
        if item.get("funnelOrder", "loose") != "loose":
            raise refuse(f"lets step {item.get('name')!r} happen in any order")
        steps.append(str(item.get("name")))
    if len(steps) < 2:
        raise refuse("has fewer than two steps")
    if behavior.get("funnelOrder", "loose") != "loose":
        raise refuse("lets its steps happen in any order")
    if behavior.get("exclusions"):
        raise refuse("excludes events between steps")
    if behavior.get("aggregateBy"):
        raise refuse("aggregates by a property")
    if sections.get("filter"):
        raise refuse("filters its events (sections.filter)")
    math = (show[0].get("measurement") or {}).get("math")
    if math not in _UNIQUE_MATHS:
        raise refuse(f"counts {math!r} instead of unique users")
    unit = str(behavior.get("conversionWindowUnit") or "day")
    duration = behavior.get("conversionWindowDuration")
    if unit not in _WINDOW_SECONDS:
        raise refuse(f"has a conversion window in {unit!r}")
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        raise refuse(f"has no usable conversion window ({duration!r})")
    return SavedFunnel(tuple(steps), float(duration * _WINDOW_SECONDS[unit]))
