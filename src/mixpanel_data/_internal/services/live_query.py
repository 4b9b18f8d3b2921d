"""LiveQueryService: the reports Mixpanel computes, asked exactly as the Query API expects.

Arguments are checked before any call (bad dates, units or combinations raise
ValidationError, exit 3), so a mistake never spends one of the 60 hourly queries.
The API client paces calls with the shared per-project budget and retries 429s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from mixpanel_data._internal.results.live import (
    ActivityFeedResult,
    EventCountsResult,
    FrequencyResult,
    JQLResult,
    NumericAggregateResult,
    PropertyCountsResult,
    SegmentationResult,
)
from mixpanel_data._internal.results.reports import (
    FlowsResult,
    FunnelResult,
    RetentionResult,
    SavedReportResult,
)
from mixpanel_data._internal.services.params import (
    FLOW_QUERY_TYPES,
    SEGMENTATION_ONLY_UNITS,
    check_choice,
    check_positive,
    check_range,
    parse_day,
    project_today,
)
from mixpanel_data._internal.services.query_specs import (
    AverageQuery,
    EventCountsQuery,
    FrequencyQuery,
    FunnelQuery,
    NumericQuery,
    PropertyCountsQuery,
    QuerySpec,
    RetentionQuery,
    SegmentationQuery,
    SumQuery,
    run_spec,
    takes,
)
from mixpanel_data.exceptions import NotFoundError, QueryError, ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.http.client import MixpanelAPIClient
    from mixpanel_data._internal.services.discovery import DiscoveryService

__all__ = ["LiveQueryService"]

R = TypeVar("R")


class LiveQueryService:
    """Run live reports for one project.

    ``discovery`` (optional) answers "does this funnel/bookmark exist?" when the server's
    error is ambiguous; the Workspace passes its own so the lists are cached once.
    """

    def __init__(
        self, api_client: MixpanelAPIClient, *, discovery: DiscoveryService | None = None
    ) -> None:
        self._api = api_client
        self._discovery = discovery

    def _get(self, endpoint: str, params: Mapping[str, Any]) -> Any:
        return self._api.request("GET", "query", endpoint, params=params)

    def _discovery_service(self) -> DiscoveryService:
        if self._discovery is None:
            from mixpanel_data._internal.services.discovery import DiscoveryService

            self._discovery = DiscoveryService(self._api)
        return self._discovery

    def run(self, spec: QuerySpec[R]) -> R:
        """Run a query spec built beforehand (``ws.run(SegmentationQuery(...))``)."""
        return run_spec(self, spec)

    # -- segmentation family (contract §9) ---------------------------------------------

    @takes(SegmentationQuery)
    def segmentation(self, q: SegmentationQuery) -> SegmentationResult:
        """Count an event over time, optionally split by a property or expression.

        ``unit`` is minute, hour, day (the default) or month: the spec's /segmentation
        lists no week (use ``event_counts(unit="week")``, whose /events does).
        ``interval`` buckets by that many days instead of ``unit``; the spec offers it
        only for ``type`` unique or average, and the dates stay required.
        """
        unit = q.unit
        if q.interval is None:
            if unit == "week":
                raise ValidationError(
                    "unit 'week' is not offered by Mixpanel's /segmentation (minute, hour, day "
                    "or month); for weekly counts use `mp query event-counts --unit week` "
                    "(Workspace.event_counts), or interval=7 with type unique or average"
                )
            unit = check_choice(unit or "day", SEGMENTATION_ONLY_UNITS, name="unit")
        body = self._get(
            "segmentation",
            {
                "event": q.event,
                "from_date": q.start.isoformat(),
                "to_date": q.end.isoformat(),
                "on": q.on,
                "where": q.where,
                "unit": unit,
                "interval": q.interval,
                "type": q.type,
                "limit": q.limit,
            },
        )
        return SegmentationResult.from_api(
            body,
            event=q.event,
            from_date=q.start.isoformat(),
            to_date=q.end.isoformat(),
            unit=unit or "day",
            type=q.type,
            on=q.on,
            interval=q.interval,
        )

    @takes(NumericQuery)
    def segmentation_numeric(self, q: NumericQuery) -> SegmentationResult:
        """Count an event in numeric buckets of ``on`` (the server picks the buckets)."""
        body = self._get(
            "segmentation/numeric",
            {
                "event": q.event,
                "from_date": q.start.isoformat(),
                "to_date": q.end.isoformat(),
                "on": q.on,
                "where": q.where,
                "unit": q.unit,
                "type": q.type,
            },
        )
        return SegmentationResult.from_api(
            body,
            event=q.event,
            from_date=q.start.isoformat(),
            to_date=q.end.isoformat(),
            unit=q.unit,
            type=q.type,
            on=q.on,
        )

    def _aggregate(self, q: SumQuery) -> NumericAggregateResult:
        body = self._get(
            f"segmentation/{q.aggregate}",
            {
                "event": q.event,
                "from_date": q.start.isoformat(),
                "to_date": q.end.isoformat(),
                "on": q.on,
                "where": q.where,
                "unit": q.unit,
            },
        )
        return NumericAggregateResult.from_api(
            body,
            event=q.event,
            on=q.on,
            aggregate=q.aggregate,
            from_date=q.start.isoformat(),
            to_date=q.end.isoformat(),
            unit=q.unit,
        )

    @takes(SumQuery)
    def segmentation_sum(self, q: SumQuery) -> NumericAggregateResult:
        """Sum a numeric expression per bucket (non-numbers count as 0)."""
        return self._aggregate(q)

    @takes(AverageQuery)
    def segmentation_average(self, q: AverageQuery) -> NumericAggregateResult:
        """Average a numeric expression per bucket."""
        return self._aggregate(q)

    # -- funnels (contract §7.2) ----------------------------------------------------------

    def _call_with_existence_check(
        self, endpoint: str, params: Mapping[str, Any], *, what: str, exists: Callable[[], bool]
    ) -> Any:
        """Make a call; when the server refuses it, say "not found" if the object is unknown.

        The contract gives no status for an unknown funnel or bookmark: a 404 is already
        NotFoundError, and an ambiguous 400 is checked against the saved list (one more
        call, only on the error path) so an unknown id ends in exit 4.
        """
        try:
            return self._get(endpoint, params)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{what} not found ({exc.server_message}); {_LIST_HINT[endpoint]}",
                status_code=exc.status_code,
                method=exc.method,
                endpoint=exc.endpoint,
                request_summary=exc.request_summary,
                server_message=exc.server_message,
            ) from None
        except QueryError as exc:
            try:
                known = exists()
            except Exception:  # the check is best effort; the server's own error wins
                known = True
            if known:
                raise
            raise NotFoundError(
                f"{what} does not exist ({exc.server_message}); {_LIST_HINT[endpoint]}",
                status_code=exc.status_code,
                method=exc.method,
                endpoint=exc.endpoint,
                request_summary=exc.request_summary,
                server_message=exc.server_message,
            ) from None

    @takes(FunnelQuery)
    def funnel(self, q: FunnelQuery) -> FunnelResult:
        """Compute a saved funnel: step counts, conversion and average times.

        The totals count each user once over the whole range. ``unit`` or ``interval``
        also returns per-bucket results (one more query).
        """
        if q.steps is not None or q.funnel_id is None:
            raise ValidationError(
                "ad-hoc funnels (steps) run only locally (--local, ws.local.funnel): "
                "Mixpanel's Query API computes saved funnels only"
            )
        fid = q.funnel_id
        start, end = q.start, q.end
        base: dict[str, Any] = {
            "funnel_id": fid,
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "length": q.length,
            "length_unit": q.length_unit,
            "on": q.on,
            "where": q.where,
            "limit": q.limit,
        }
        # Contract §7.2: /funnels answers per-bucket cohorts (default one bucket per day),
        # and adding daily cohorts counts a user once for every day they entered. Asking
        # for the whole range as ONE bucket (interval = days in the range) makes the API
        # count each user once, with its own conversion window logic.
        days = (end - start).days + 1

        def exists() -> bool:
            return any(f.funnel_id == fid for f in self._discovery_service().funnels())

        what = f"funnel {fid}"
        totals = self._call_with_existence_check(
            "funnels", {**base, "interval": days}, what=what, exists=exists
        )
        buckets = None
        if (q.interval is not None and q.interval != days) or q.unit is not None:
            buckets = self._call_with_existence_check(
                "funnels",
                {**base, "interval": q.interval, "unit": q.unit},
                what=what,
                exists=exists,
            )
        return FunnelResult.from_api(
            totals,
            funnel_id=fid,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            on=q.on,
            buckets_body=buckets,
        )

    # -- retention (contract §10) ---------------------------------------------------------

    @takes(RetentionQuery)
    def retention(self, q: RetentionQuery) -> RetentionResult:
        """Compute birth ("first time") or compounded ("recurring") retention by cohort."""
        body = self._get(
            "retention",
            {
                "from_date": q.start.isoformat(),
                "to_date": q.end.isoformat(),
                "retention_type": q.retention_type,
                "born_event": q.born_event,
                "event": q.event,
                "born_where": q.born_where,
                "where": q.where,
                "interval": q.interval,
                "interval_count": q.interval_count,
                "unit": q.unit,
                "unbounded_retention": True if q.unbounded else None,
                "on": q.on,
                "limit": q.limit,
            },
        )
        return RetentionResult.from_api(
            body,
            born_event=q.born_event,
            event=q.event,
            from_date=q.start.isoformat(),
            to_date=q.end.isoformat(),
            retention_type=q.retention_type,
        )

    @takes(FrequencyQuery)
    def frequency(self, q: FrequencyQuery) -> FrequencyResult:
        """Count users by how many ``addiction_unit`` periods of each ``unit`` they were active."""
        body = self._get(
            "retention/addiction",
            {
                "from_date": q.start.isoformat(),
                "to_date": q.end.isoformat(),
                "unit": q.unit,
                "addiction_unit": q.addiction_unit,
                "event": q.event,
                "where": q.where,
                "on": q.on,
                "limit": q.limit,
            },
        )
        return FrequencyResult.from_api(
            body,
            event=q.event,
            from_date=q.start.isoformat(),
            to_date=q.end.isoformat(),
            unit=q.unit,
            addiction_unit=q.addiction_unit,
        )

    # -- event and property counts (contract §6.5–6.6) ----------------------------------

    @staticmethod
    def _span(q: EventCountsQuery | PropertyCountsQuery) -> dict[str, Any]:
        if q.interval is not None:
            return {"interval": q.interval}
        return {"from_date": q.start.isoformat(), "to_date": q.end.isoformat()}

    @takes(EventCountsQuery)
    def event_counts(self, q: EventCountsQuery) -> EventCountsResult:
        """Count several events over time in one query.

        Give the dates, or ``interval``: the last N units up to now (then the result's
        dates are its first and last bucket).
        """
        span = self._span(q)
        names = list(q.events)
        body = self._get("events", {"event": names, **span, "type": q.type, "unit": q.unit})
        first, last = _span_dates(span, body)
        return EventCountsResult.from_api(
            body,
            events=names,
            from_date=first,
            to_date=last,
            type=q.type,
            unit=q.unit,
            interval=q.interval,
        )

    @takes(PropertyCountsQuery)
    def property_counts(self, q: PropertyCountsQuery) -> PropertyCountsResult:
        """Count one event per value of one property over time (dates, or ``interval``)."""
        span = self._span(q)
        body = self._get(
            "events/properties",
            {
                "event": q.event,
                "name": q.property,
                "values": list(q.values) if q.values is not None else None,
                **span,
                "type": q.type,
                "unit": q.unit,
                "limit": q.limit,
            },
        )
        first, last = _span_dates(span, body)
        return PropertyCountsResult.from_api(
            body,
            event=q.event,
            property=q.property,
            from_date=first,
            to_date=last,
            type=q.type,
            unit=q.unit,
            interval=q.interval,
        )

    # -- activity stream (contract §11) ---------------------------------------------------

    def activity_feed(
        self,
        distinct_ids: Iterable[str],
        *,
        from_date: str | date | None = None,
        to_date: str | date | None = None,
    ) -> ActivityFeedResult:
        """Return the recent events of some users, oldest first.

        The spec marks the dates required, so defaults are always sent: up to today and
        back 364 days (the stream refuses more than 365 days into the past).
        """
        ids = [str(i) for i in distinct_ids if str(i).strip()]
        if not ids:
            raise ValidationError("give at least one distinct_id")
        today = project_today(self._api.credentials)
        end = parse_day(to_date, name="to_date") if to_date is not None else today
        if from_date is not None:
            start = parse_day(from_date, name="from_date")
        else:
            start = min(end, today - timedelta(days=364))
        start, end = check_range(start, end)
        body = self._get(
            "stream/query",
            {"distinct_ids": ids, "from_date": start.isoformat(), "to_date": end.isoformat()},
        )
        return ActivityFeedResult.from_api(
            body, distinct_ids=ids, from_date=start.isoformat(), to_date=end.isoformat()
        )

    # -- saved reports (contract §12) -----------------------------------------------------

    def _bookmark_exists(self, bookmark_id: int) -> bool:
        return any(b.id == bookmark_id for b in self._discovery_service().bookmarks())

    def saved_report(self, bookmark_id: int) -> SavedReportResult:
        """Compute a saved Insights report; funnel and retention bookmarks work too."""
        bid = check_positive(bookmark_id, name="bookmark_id")
        assert bid is not None
        body = self._call_with_existence_check(
            "insights",
            {"bookmark_id": bid},
            what=f"bookmark {bid}",
            exists=lambda: self._bookmark_exists(bid),
        )
        return SavedReportResult.from_api(body, bookmark_id=bid)

    def flows(self, bookmark_id: int, *, query_type: str = "flows_sankey") -> FlowsResult:
        """Compute a saved Flows report through the undocumented `/arb_funnels`."""
        bid = check_positive(bookmark_id, name="bookmark_id")
        assert bid is not None
        query_type = check_choice(query_type, FLOW_QUERY_TYPES, name="query_type")
        body = self._call_with_existence_check(
            "arb_funnels",
            {"bookmark_id": bid, "query_type": query_type},
            what=f"bookmark {bid}",
            exists=lambda: self._bookmark_exists(bid),
        )
        if isinstance(body, dict) and body.get("error"):
            # Contract §12.2: flows errors can arrive as HTTP 200 with an `error` key.
            message = str(body["error"])
            if not self._bookmark_exists(bid):
                raise NotFoundError(
                    f"bookmark {bid} does not exist ({message}); {_LIST_HINT['arb_funnels']}",
                    status_code=200,
                    server_message=message,
                )
            raise QueryError(
                f"Mixpanel could not compute flows for bookmark {bid}: {message}",
                status_code=200,
                server_message=message,
            )
        return FlowsResult.from_api(body, bookmark_id=bid, query_type=query_type)

    # -- JQL (contract §13) ---------------------------------------------------------------

    def jql(self, script: str, *, params: Mapping[str, Any] | None = None) -> JQLResult:
        """Run a JQL script (legacy: Mixpanel keeps JQL in maintenance mode, §13).

        Script errors come back as HTTP 412 and raise QueryError with the server's text.
        """
        if not isinstance(script, str) or "main" not in script:
            raise ValidationError("a JQL script must define a main() function")
        body = self._api.request(
            "POST",
            "query",
            "jql",
            data={"script": script, "params": dict(params) if params is not None else None},
        )
        return JQLResult.from_api(body)


def _span_dates(span: Mapping[str, Any], body: Any) -> tuple[str, str]:
    """The dates asked for, or (with ``interval``) the first and last bucket answered."""
    if "from_date" in span:
        return str(span["from_date"]), str(span["to_date"])
    data = body.get("data") if isinstance(body, dict) else None
    series = sorted(str(d) for d in (data.get("series") or [])) if isinstance(data, dict) else []
    return (series[0], series[-1]) if series else ("", "")


_LIST_HINT = {
    "funnels": "list saved funnels with `mp inspect funnels`",
    "insights": "list saved reports with `mp inspect bookmarks`",
    "arb_funnels": "list saved flows with `mp inspect bookmarks -t flows`",
}
