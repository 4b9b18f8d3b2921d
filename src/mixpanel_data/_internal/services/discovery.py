"""DiscoveryService: what is in the project (events, properties, funnels, cohorts, reports).

Answers are cached per argument set for the life of the Workspace, because the schema
changes slowly and each call spends one of the 60 hourly queries; ``top_events`` is
today's, real-time view and is never cached.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from mixpanel_data._internal.results.discovery import (
    BookmarkInfo,
    FunnelInfo,
    SavedCohort,
    TopEvent,
)
from mixpanel_data._internal.results.notebook import ResultList
from mixpanel_data._internal.services.params import (
    TYPES,
    check_choice,
    check_name,
    check_positive,
    project_today,
)
from mixpanel_data.exceptions import APIError, QueryError

if TYPE_CHECKING:
    from mixpanel_data._internal.http.client import MixpanelAPIClient

__all__ = ["DiscoveryService"]

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENT_NAMES_LIMIT = 5000  # the server clamps `limit` here (contract §6.1)
PROPERTY_NAMES_LIMIT = 5000  # /events/properties/top defaults to only 10 (§6.3)
HISTORY_START = date(2000, 1, 1)  # the earliest date Mixpanel accepts (§3.4)
BOOKMARK_TYPES = ("insights", "funnels", "retention", "flows", "launch-analysis")
_HISTORY_GATE = re.compile(r"exceeds\s+(\d+)\s+days", re.IGNORECASE)


class DiscoveryService:
    """List what a project holds; every list but top events is cached."""

    def __init__(self, api_client: MixpanelAPIClient) -> None:
        self._api = api_client
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._history_days: int | None = None

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = compute()
        value: T = self._cache[key]
        return value

    def clear_cache(self) -> None:
        """Forget every cached answer (e.g. after creating a funnel in the UI)."""
        self._cache.clear()

    def _get(self, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        return self._api.request("GET", "query", endpoint, params=params)

    # -- events and properties (contract §6) ----------------------------------------------

    def events(self) -> list[str]:
        """Every event name in the project's history, sorted (case-insensitively).

        `/events/names` looks back only 31 days and returns 255 names by default
        (§6.1), so the whole history and the server's maximum limit are asked for; a
        plan with a shorter history answers 403 "Date range exceeds N days into the
        past", and the call is retried once with that N-day window.
        """
        return list(self._cached(("events",), self._fetch_event_names))

    def _fetch_event_names(self) -> tuple[str, ...]:
        today = project_today(self._api.credentials)
        days = self._history_days
        start = today - timedelta(days=days - 1) if days else HISTORY_START
        try:
            names = self._event_names(start, today)
        except QueryError as exc:
            match = _HISTORY_GATE.search(exc.server_message or exc.message)
            if exc.status_code != 403 or not match or days:
                raise
            self._history_days = max(1, int(match.group(1)))
            start = today - timedelta(days=self._history_days - 1)
            names = self._event_names(start, today)
        if len(names) >= EVENT_NAMES_LIMIT:
            log.warning(
                "Mixpanel returned %d event names, its maximum; the list may be incomplete",
                len(names),
            )
        return tuple(sorted(set(names), key=_name_order))

    def _event_names(self, start: date, end: date) -> list[str]:
        body = self._get(
            "events/names",
            {
                "type": "general",
                "limit": EVENT_NAMES_LIMIT,
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
            },
        )
        return [str(n) for n in _list(body, "events/names")]

    def properties(self, event: str) -> list[str]:
        """The property names seen on an event, sorted (case-insensitively)."""
        check_name(event, name="event")

        def fetch() -> tuple[str, ...]:
            body = self._get(
                "events/properties/top", {"event": event, "limit": PROPERTY_NAMES_LIMIT}
            )
            if not isinstance(body, dict):
                raise _unexpected("events/properties/top", body)
            # Values may be {"count": n} or {} (count is optional, §6.3); names are what we keep.
            return tuple(sorted((str(k) for k in body), key=_name_order))

        return list(self._cached(("properties", event), fetch))

    def property_values(
        self, prop: str, *, event: str | None = None, limit: int = 100
    ) -> list[str]:
        """The most common values of a property (as strings), most common first."""
        check_name(prop, name="property")
        check_positive(limit, name="limit")

        def fetch() -> tuple[str, ...]:
            body = self._get(
                "events/properties/values", {"name": prop, "event": event, "limit": limit}
            )
            return tuple(_stringify(v) for v in _list(body, "events/properties/values"))

        return list(self._cached(("values", prop, event, limit), fetch))

    def top_events(self, *, type: str = "general", limit: int | None = None) -> list[TopEvent]:
        """Today's most frequent events, with the change since yesterday (never cached)."""
        type = check_choice(type, TYPES, name="type")
        body = self._get("events/top", {"type": type, "limit": check_positive(limit, name="limit")})
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            raise _unexpected("events/top", body)
        return ResultList(TopEvent.from_api(e) for e in events if isinstance(e, dict))

    # -- saved objects (contract §7.1, §8, §12.1) -----------------------------------------

    def funnels(self) -> list[FunnelInfo]:
        """The project's saved funnels, sorted by name."""

        def fetch() -> tuple[FunnelInfo, ...]:
            rows = _list(self._get("funnels/list"), "funnels/list")
            found = [FunnelInfo.from_api(r) for r in rows if isinstance(r, dict)]
            return tuple(sorted(found, key=lambda f: (f.name.lower(), f.funnel_id)))

        return ResultList(self._cached(("funnels",), fetch))

    def cohorts(self) -> list[SavedCohort]:
        """The project's saved cohorts, sorted by name."""

        def fetch() -> tuple[SavedCohort, ...]:
            body = self._api.request("POST", "query", "cohorts/list")
            rows = _list(body, "cohorts/list")
            found = [SavedCohort.from_api(r) for r in rows if isinstance(r, dict)]
            return tuple(sorted(found, key=lambda c: (c.name.lower(), c.id)))

        return ResultList(self._cached(("cohorts",), fetch))

    def bookmarks(self, type: str | None = None) -> list[BookmarkInfo]:
        """Saved reports from the App API, optionally of one type, sorted by type and name."""
        kind = None if type is None else check_choice(type, BOOKMARK_TYPES, name="type")

        def fetch() -> tuple[BookmarkInfo, ...]:
            pid = self._api.credentials.project_id
            body = self._api.request(
                "GET",
                "app",
                f"projects/{pid}/bookmarks",
                params={"v": 2, "type": kind},
                project_scoped=False,
            )
            rows = body.get("results") if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise _unexpected("bookmarks", body)
            found = [BookmarkInfo.from_api(r) for r in rows if isinstance(r, dict)]
            return tuple(sorted(found, key=lambda b: (b.type, b.name.lower(), b.id)))

        return ResultList(self._cached(("bookmarks", kind), fetch))


def _name_order(name: str) -> tuple[str, str]:
    """Case-insensitive order, ties broken by the exact text (stable and human-friendly)."""
    return (name.casefold(), name)


def _list(body: Any, endpoint: str) -> list[Any]:
    if not isinstance(body, list):
        raise _unexpected(endpoint, body)
    return body


def _stringify(value: Any) -> str:
    """Render a value as Mixpanel's UI does: true/false, no trailing .0 (§6.4)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unexpected(endpoint: str, body: Any) -> APIError:
    return APIError(
        f"unexpected response from {endpoint} ({type(body).__name__}); "
        "retry, and report it if it persists",
        endpoint=endpoint,
    )
