"""Funnels, retention and frequency computed from a fetched events table.

The funnel semantics are in ``funnels.py``; retention and frequency follow contract §10
(the emulator's documented choices where Mixpanel's docs are silent). A saved funnel's
steps and conversion window come from its saved definition: the ``params`` of the
``funnels`` bookmark with the funnel's id, as Mixpanel's bookmarks API returns them
(contract §12.1; ``funnels.saved_definition`` reads them).
"""

# SQL here is built from compiled expressions, quoted literals and validated names.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from mixpanel_data._internal.results.reports import FunnelResult
from mixpanel_data._internal.services.local.engine import (
    LocalEngine,
    bucket_series,
)
from mixpanel_data._internal.services.local.expressions import (
    LocalUnsupportedError,
    filter_sql,
    labels_sql,
    sql_string,
)
from mixpanel_data._internal.services.local.funnels import (
    LENGTH_SECONDS,
    SavedFunnel,
    Step,
    day_chunks,
    funnel_body,
    saved_definition,
)
from mixpanel_data._internal.storage.meta_tables import quote_ident
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.services.query_specs import (
        FunnelQuery,
    )

__all__ = ["bucket_of_day", "funnel"]

SEGMENT_LIMIT: Final = 255  # funnels' and retention's default `limit` (contract §7.2, §10)
ADHOC_WINDOW_DAYS: Final = 30  # an ad-hoc funnel's default window, the emulator's default


def funnel(svc: LocalEngine, q: FunnelQuery) -> FunnelResult:
    """A funnel over the fetched events: a saved one by id, or ad hoc from ``q.steps``.

    A saved funnel's steps and window are its saved definition's; ``length`` (and
    ``length_unit``) override the window, as they do for the live report.
    """
    start, end = q.start, q.end
    expr, where, top = q.on, q.where, q.limit or SEGMENT_LIMIT
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
    horizon = end + timedelta(days=int(window // 86400) + 2)  # completions after to_date
    tz = sql_string(svc._tz())
    local = f"(event_time AT TIME ZONE {tz})"
    labels = labels_sql(expr) if expr is not None else "[]"
    query = (
        f"SELECT coalesce(distinct_id, ''), epoch(event_time), event_name, "
        f"CAST({local} AS DATE) AS d, {labels} FROM {quote_ident(svc._table)} "
        f"WHERE event_name IN ({', '.join(sql_string(n) for n in dict.fromkeys(names))}) "
        f"AND event_time IS NOT NULL AND d BETWEEN DATE '{start}' AND DATE '{horizon}'"
        + (f" AND {filter_sql(where)}" if where is not None else "")
        + " ORDER BY 1, 2, insert_id"
    )
    rows = svc._rows(query)
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
            segmented=expr is not None,
            limit=top,
        )

    totals = body(days, None)
    buckets = None
    if (q.interval is not None and q.interval != days) or q.unit is not None:
        buckets = body(q.interval, q.unit)
    return FunnelResult.from_api(
        totals,
        funnel_id=q.funnel_id or 0,
        from_date=start.isoformat(),
        to_date=end.isoformat(),
        on=expr,
        buckets_body=buckets,
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


def bucket_of_day(unit: str) -> Any:
    """The bucket key of a local day for ``unit`` (weeks start on Monday)."""

    def key(d: date) -> str:
        if unit == "week":
            return (d - timedelta(days=d.weekday())).isoformat()
        if unit == "month":
            return d.replace(day=1).isoformat()
        return d.isoformat()

    return key
