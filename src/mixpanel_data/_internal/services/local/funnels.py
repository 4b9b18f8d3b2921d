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
- each step takes the user's earliest qualifying event (ties by ``insert_id``) from
  2 s before the entry on, and an event taken by one step is not taken by a later one
  (a funnel A -> B -> A needs two A events);
- ``where`` filters every step's events; ``on`` segments by the entry event; a segmented
  bucket is ``{"$overall": steps, "<segment>": steps}``, top ``limit`` segments by entries.

``funnel_sql.py`` computes the counts and time sums in DuckDB; this module shapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from mixpanel_data._internal.services.local.expressions import LocalUnsupportedError

GRACE_SECONDS: Final = 2.0
LENGTH_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
SEGMENT_LIMIT: Final = 255  # funnels' and retention's default `limit` (contract §7.2, §10)
ADHOC_WINDOW_DAYS: Final = 30  # an ad-hoc funnel's default window, the emulator's default

__all__ = [
    "ADHOC_WINDOW_DAYS",
    "GRACE_SECONDS",
    "LENGTH_SECONDS",
    "SEGMENT_LIMIT",
    "SavedFunnel",
    "StepStats",
    "day_chunks",
    "saved_definition",
    "shape_body",
]


@dataclass
class StepStats:
    """Per step: users reaching it, and their summed seconds from the previous step and
    from the entry (index 0 is the entry itself)."""

    counts: list[int]
    from_prev: list[float] = field(default_factory=list)
    from_start: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> StepStats:
        return cls([0] * n, [0.0] * n, [0.0] * n)


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _rows(stats: StepStats, steps: Sequence[str]) -> list[dict[str, Any]]:
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


def _analysis(stats: StepStats) -> dict[str, int]:
    c = stats.counts
    ratios = [(c[k] / c[k - 1] if c[k - 1] else 0.0) for k in range(1, len(c))]
    worst = 1 + ratios.index(min(ratios)) if ratios else 0
    return {"completion": c[-1], "starting_amount": c[0], "steps": len(c), "worst": worst}


def shape_body(
    out: dict[str, dict[str | None, StepStats]],
    steps: Sequence[str],
    *,
    series: list[str],
    segmented: bool,
    limit: int,
) -> dict[str, Any]:
    """The ``/funnels`` body from ``{bucket: {segment, or None for all: stats}}``."""
    n = len(steps)
    body: dict[str, Any] = {}
    if not segmented:
        for b in series:
            stats = out.get(b, {}).get(None) or StepStats.empty(n)
            body[b] = {"steps": _rows(stats, steps), "analysis": _analysis(stats)}
        return {"meta": {"dates": series}, "data": body}
    totals: dict[str, int] = {}
    for b in series:
        for target, stats in out.get(b, {}).items():
            if target is not None:
                totals[target] = totals.get(target, 0) + stats.counts[0]
    top = sorted(totals, key=lambda s: (-totals[s], s))[:limit]
    for b in series:
        by_seg = out.get(b, {})
        entry: dict[str, Any] = {"$overall": _rows(by_seg.get(None) or StepStats.empty(n), steps)}
        for target in top:
            entry[target] = _rows(by_seg.get(target) or StepStats.empty(n), steps)
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
