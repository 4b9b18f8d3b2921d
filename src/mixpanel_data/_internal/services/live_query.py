"""LiveQueryService: the reports Mixpanel computes, asked exactly as the Query API expects.

Arguments are checked before any call (bad dates, units or combinations raise
ValidationError, exit 3), so a mistake never spends one of the 60 hourly queries.
The API client paces calls with the shared per-project budget and retries 429s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

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
    DAY_WEEK_MONTH,
    FLOW_QUERY_TYPES,
    HOUR_DAY,
    LENGTH_UNITS,
    MAX_LIMIT,
    RETENTION_TYPES,
    SEGMENTATION_ONLY_UNITS,
    SEGMENTATION_UNITS,
    TYPES,
    check_choice,
    check_name,
    check_positive,
    check_range,
    parse_day,
    project_today,
    to_expression,
)
from mixpanel_data.exceptions import NotFoundError, QueryError, ValidationError

if TYPE_CHECKING:
    from mixpanel_data._internal.http.client import MixpanelAPIClient
    from mixpanel_data._internal.services.discovery import DiscoveryService

__all__ = ["LiveQueryService"]


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

    # -- segmentation family (contract §9) ---------------------------------------------

    def segmentation(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str | None = None,
        where: str | None = None,
        unit: str | None = None,
        type: str = "general",
        limit: int | None = None,
        interval: int | None = None,
    ) -> SegmentationResult:
        """Count an event over time, optionally split by a property or expression.

        ``unit`` is minute, hour, day (the default) or month: the spec's /segmentation
        lists no week (use ``event_counts(unit="week")``, whose /events does).
        ``interval`` buckets by that many days instead of ``unit``; the spec offers it
        only for ``type`` unique or average, and the dates stay required.
        """
        start, end = check_range(from_date, to_date)
        type = check_choice(type, TYPES, name="type")
        if interval is not None:
            if unit is not None:
                raise ValidationError("give either unit or interval for segmentation, not both")
            if type == "general":
                raise ValidationError(
                    "segmentation's interval (days per bucket) is only for type unique or "
                    "average (Mixpanel's /segmentation spec); use unit for general counts"
                )
            check_positive(interval, name="interval")
        elif unit is not None and str(unit).strip().lower() == "week":
            raise ValidationError(
                "unit 'week' is not offered by Mixpanel's /segmentation (minute, hour, day or "
                "month); for weekly counts use `mp query event-counts --unit week` "
                "(Workspace.event_counts), or interval=7 with type unique or average"
            )
        else:
            unit = check_choice(unit or "day", SEGMENTATION_ONLY_UNITS, name="unit")
        expr = to_expression(on)
        body = self._get(
            "segmentation",
            {
                "event": check_name(event, name="event"),
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "on": expr,
                "where": where,
                "unit": unit,
                "interval": interval,
                "type": type,
                "limit": check_positive(limit, name="limit", maximum=MAX_LIMIT),
            },
        )
        return SegmentationResult.from_api(
            body,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit or "day",
            type=type,
            on=expr,
            interval=interval,
        )

    def segmentation_numeric(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None = None,
        unit: str = "day",
        type: str = "general",
    ) -> SegmentationResult:
        """Count an event in numeric buckets of ``on`` (the server picks the buckets)."""
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit, HOUR_DAY, name="unit")
        type = check_choice(type, TYPES, name="type")
        expr = to_expression(on)
        if expr is None:
            raise ValidationError("segmentation_numeric needs `on`, a numeric property")
        body = self._get(
            "segmentation/numeric",
            {
                "event": check_name(event, name="event"),
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "on": expr,
                "where": where,
                "unit": unit,
                "type": type,
            },
        )
        return SegmentationResult.from_api(
            body,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            type=type,
            on=expr,
        )

    def _aggregate(
        self,
        aggregate: str,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None,
        unit: str,
    ) -> NumericAggregateResult:
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit, HOUR_DAY, name="unit")
        expr = to_expression(on)
        if expr is None:
            raise ValidationError(f"segmentation_{aggregate} needs `on`, a numeric property")
        body = self._get(
            f"segmentation/{aggregate}",
            {
                "event": check_name(event, name="event"),
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "on": expr,
                "where": where,
                "unit": unit,
            },
        )
        return NumericAggregateResult.from_api(
            body,
            event=event,
            on=expr,
            aggregate=aggregate,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
        )

    def segmentation_sum(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None = None,
        unit: str = "day",
    ) -> NumericAggregateResult:
        """Sum a numeric expression per bucket (non-numbers count as 0)."""
        return self._aggregate(
            "sum", event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit
        )

    def segmentation_average(
        self,
        event: str,
        *,
        from_date: str | date,
        to_date: str | date,
        on: str,
        where: str | None = None,
        unit: str = "day",
    ) -> NumericAggregateResult:
        """Average a numeric expression per bucket."""
        return self._aggregate(
            "average", event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit
        )

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

    def funnel(
        self,
        funnel_id: int,
        *,
        from_date: str | date,
        to_date: str | date,
        length: int | None = None,
        length_unit: str | None = None,
        interval: int | None = None,
        unit: str | None = None,
        on: str | None = None,
        where: str | None = None,
        limit: int | None = None,
    ) -> FunnelResult:
        """Compute a saved funnel: step counts, conversion and average times.

        The totals count each user once over the whole range. ``unit`` or ``interval``
        also returns per-bucket results (one more query).
        """
        fid = check_positive(funnel_id, name="funnel_id")
        assert fid is not None
        start, end = check_range(from_date, to_date)
        if interval is not None and unit is not None:
            raise ValidationError("give either unit or interval for a funnel, not both")
        expr = to_expression(on)
        base: dict[str, Any] = {
            "funnel_id": fid,
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "length": check_positive(length, name="length"),
            "length_unit": None
            if length_unit is None
            else check_choice(length_unit, LENGTH_UNITS, name="length_unit"),
            "on": expr,
            "where": where,
            "limit": check_positive(limit, name="limit", maximum=MAX_LIMIT),
        }
        interval = check_positive(interval, name="interval")
        unit = None if unit is None else check_choice(unit, DAY_WEEK_MONTH, name="unit")
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
        if (interval is not None and interval != days) or unit is not None:
            buckets = self._call_with_existence_check(
                "funnels", {**base, "interval": interval, "unit": unit}, what=what, exists=exists
            )
        return FunnelResult.from_api(
            totals,
            funnel_id=fid,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            on=expr,
            buckets_body=buckets,
        )

    # -- retention (contract §10) ---------------------------------------------------------

    def retention(
        self,
        *,
        born_event: str,
        event: str | None = None,
        from_date: str | date,
        to_date: str | date,
        retention_type: str = "birth",
        born_where: str | None = None,
        where: str | None = None,
        interval: int | None = None,
        unit: str | None = None,
        interval_count: int = 1,
        unbounded: bool = False,
        on: str | None = None,
        limit: int | None = None,
    ) -> RetentionResult:
        """Compute birth ("first time") or compounded ("recurring") retention by cohort."""
        start, end = check_range(from_date, to_date)
        if interval is not None and unit is not None:
            # Contract §10.1: the server answers "unit and interval both specified".
            raise ValidationError(
                "give either unit or interval for retention, not both "
                "(Mixpanel refuses 'unit and interval both specified')"
            )
        retention_type = check_choice(retention_type, RETENTION_TYPES, name="retention_type")
        body = self._get(
            "retention",
            {
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "retention_type": retention_type,
                "born_event": check_name(born_event, name="born_event"),
                "event": None if event is None else check_name(event, name="event"),
                "born_where": born_where,
                "where": where,
                "interval": check_positive(interval, name="interval", maximum=90),
                "interval_count": check_positive(interval_count, name="interval_count"),
                "unit": None if unit is None else check_choice(unit, DAY_WEEK_MONTH, name="unit"),
                "unbounded_retention": True if unbounded else None,
                "on": to_expression(on),
                "limit": check_positive(limit, name="limit", maximum=MAX_LIMIT),
            },
        )
        return RetentionResult.from_api(
            body,
            born_event=born_event,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            retention_type=retention_type,
        )

    def frequency(
        self,
        *,
        from_date: str | date,
        to_date: str | date,
        unit: str = "day",
        addiction_unit: str = "hour",
        event: str | None = None,
        where: str | None = None,
        on: str | None = None,
        limit: int | None = None,
    ) -> FrequencyResult:
        """Count users by how many ``addiction_unit`` periods of each ``unit`` they were active."""
        start, end = check_range(from_date, to_date)
        unit = check_choice(unit, DAY_WEEK_MONTH, name="unit")
        addiction_unit = check_choice(addiction_unit, HOUR_DAY, name="addiction_unit")
        body = self._get(
            "retention/addiction",
            {
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "unit": unit,
                "addiction_unit": addiction_unit,
                "event": None if event is None else check_name(event, name="event"),
                "where": where,
                "on": to_expression(on),
                "limit": check_positive(limit, name="limit", maximum=MAX_LIMIT),
            },
        )
        return FrequencyResult.from_api(
            body,
            event=event,
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            unit=unit,
            addiction_unit=addiction_unit,
        )

    # -- event and property counts (contract §6.5–6.6) ----------------------------------

    def _dates_or_interval(
        self,
        from_date: str | date | None,
        to_date: str | date | None,
        interval: int | None,
    ) -> dict[str, Any]:
        """The spec's two ways to give /events a range: both dates, or ``interval``.

        ``interval`` is the number of units back from now, the current one included
        (openapi/query.openapi.yaml, ``components.parameters.interval``).
        """
        if interval is not None:
            if from_date is not None or to_date is not None:
                raise ValidationError("give either interval or from_date/to_date, not both")
            return {"interval": check_positive(interval, name="interval")}
        if from_date is None or to_date is None:
            raise ValidationError("give from_date and to_date, or interval (units back from now)")
        start, end = check_range(from_date, to_date)
        return {"from_date": start.isoformat(), "to_date": end.isoformat()}

    def event_counts(
        self,
        events: Iterable[str],
        *,
        from_date: str | date | None = None,
        to_date: str | date | None = None,
        type: str = "general",
        unit: str = "day",
        interval: int | None = None,
    ) -> EventCountsResult:
        """Count several events over time in one query.

        Give the dates, or ``interval``: the last N units up to now (then the result's
        dates are its first and last bucket).
        """
        names = [check_name(e, name="event") for e in events]
        if not names:
            raise ValidationError("give at least one event")
        span = self._dates_or_interval(from_date, to_date, interval)
        type = check_choice(type, TYPES, name="type")
        unit = check_choice(unit, SEGMENTATION_UNITS, name="unit")
        if type == "unique" and unit in ("minute", "hour"):
            raise ValidationError("Mixpanel has no hourly uniques; use unit day, week or month")
        body = self._get("events", {"event": names, **span, "type": type, "unit": unit})
        first, last = _span_dates(span, body)
        return EventCountsResult.from_api(
            body,
            events=names,
            from_date=first,
            to_date=last,
            type=type,
            unit=unit,
            interval=interval,
        )

    def property_counts(
        self,
        event: str,
        property: str,
        *,
        from_date: str | date | None = None,
        to_date: str | date | None = None,
        type: str = "general",
        unit: str = "day",
        values: Sequence[str] | None = None,
        limit: int | None = None,
        interval: int | None = None,
    ) -> PropertyCountsResult:
        """Count one event per value of one property over time (dates, or ``interval``)."""
        span = self._dates_or_interval(from_date, to_date, interval)
        type = check_choice(type, TYPES, name="type")
        unit = check_choice(unit, SEGMENTATION_UNITS, name="unit")
        body = self._get(
            "events/properties",
            {
                "event": check_name(event, name="event"),
                "name": check_name(property, name="property"),
                "values": list(values) if values is not None else None,
                **span,
                "type": type,
                "unit": unit,
                "limit": check_positive(limit, name="limit", maximum=MAX_LIMIT),
            },
        )
        first, last = _span_dates(span, body)
        return PropertyCountsResult.from_api(
            body,
            event=event,
            property=property,
            from_date=first,
            to_date=last,
            type=type,
            unit=unit,
            interval=interval,
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
