"""The Engage (profile query) endpoint: filters, cohorts and session paging (contract §5).

Page 0 runs the query and caches its result under a new ``session_id``
(``<epoch-ms>-<32 hex>``); later pages read that cache, so a client paging with the
session sees one consistent result even if it fetches pages in parallel. A page > 0
without a live session is a 400 (contract §5, docs since Jul 2025). ``total`` is sent
on page 0 only: Airbyte notes it may be absent later, so clients must not rely on it.
Sessions expire after ``ttl`` seconds (unconfirmed upstream; default one hour).

``behaviors`` (contract §5; typed "integer" in the spec, a JSON array in practice) selects
profiles by what they did: each ``{"name", "window", "event_selectors"}`` counts a user's
events matching any selector (``{"event", "selector"}``, the selector in the expression
language) in the window ending at ``as_of_timestamp`` (epoch seconds; default: the end of
the project's today). ``where`` then filters on ``behaviors["name"]`` (and profile
properties); without a ``where`` a profile is kept if any behavior counted at least one
event. Paging such a query past page 0 needs ``as_of_timestamp``, else the documented
``request for page in uncached query for params``.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mixpanel_data.emulator.expression_values import truthy
from mixpanel_data.emulator.expressions import (
    BEHAVIOR_PREFIX,
    ExpressionError,
    compile_filter,
    evaluate,
    parse,
)
from mixpanel_data.emulator.responses import now_iso
from mixpanel_data.emulator.routing import ApiRequest, EmulatorError

__all__ = ["PAGE_SIZE", "Behavior", "EngageSessions", "behavior_counts", "engage"]

PAGE_SIZE = 1000
BEHAVIORS_WITH_COHORT = "behaviors and filter_by_cohort are mutually exclusive"
_WINDOW_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
# The documented text for a page request whose cached query is gone (contract §3.4).
UNCACHED_PAGE = "request for page in uncached query for params"


class EngageSessions:
    """Cached engage results keyed by session id, with expiry and a size cap."""

    def __init__(self, *, ttl: float = 3600.0, max_sessions: int = 1000) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()

    def create(self, results: list[dict[str, Any]]) -> str:
        """Store a result set and return its new session id."""
        session_id = f"{int(time.time() * 1000)}-{secrets.token_hex(16)}"
        with self._lock:
            self._sessions[session_id] = (time.monotonic(), results)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str) -> list[dict[str, Any]] | None:
        """The session's results, or None if unknown or expired."""
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            if time.monotonic() - found[0] > self.ttl:
                del self._sessions[session_id]
                return None
            return found[1]

    def expire(self, session_id: str | None = None) -> None:
        """Forget one session, or all of them."""
        with self._lock:
            if session_id is None:
                self._sessions.clear()
            else:
                self._sessions.pop(session_id, None)


def engage(
    request: ApiRequest, *, sessions: EngageSessions, expire_session: bool = False
) -> dict[str, Any]:
    """Answer one engage call; the dict's key order is the recorded one."""
    params = request.params
    page = _int_param(params, "page", default=0)
    if page < 0:
        raise EmulatorError(400, "page must be a non-negative integer")
    session_id = params.get("session_id") or None
    if expire_session and session_id:
        sessions.expire(session_id)
    if page > 0 and params.get("behaviors") and not params.get("as_of_timestamp"):
        # Paging a behaviors query needs as_of_timestamp (the engage spec, as_of_timestamp).
        raise EmulatorError(400, UNCACHED_PAGE)
    results = sessions.get(session_id) if session_id else None
    if results is None:
        if page > 0:
            raise EmulatorError(400, UNCACHED_PAGE)
        results = _query(request)
        session_id = sessions.create(results)
    body: dict[str, Any] = {
        "results": results[page * PAGE_SIZE : (page + 1) * PAGE_SIZE],
        "page": page,
        "session_id": session_id,
        "page_size": PAGE_SIZE,
    }
    if page == 0:
        body["total"] = len(results)
    body["status"] = "ok"
    body["computed_at"] = now_iso()
    return body


def _query(request: ApiRequest) -> list[dict[str, Any]]:
    params = request.params
    project = request.project
    behaviors = _behaviors(params)
    if behaviors is not None and params.get("filter_by_cohort"):
        raise EmulatorError(400, BEHAVIORS_WITH_COHORT)
    if params.get("data_group_id"):
        return []  # the synthetic project has no group profiles
    profiles: list[dict[str, Any]] = project.profiles()

    cohort = params.get("filter_by_cohort")
    if cohort:
        members = project_cohort_members(project, cohort)
        by_id = {p["$distinct_id"]: p for p in profiles}
        profiles = [p for p in profiles if p["$distinct_id"] in members]
        if _bool_param(params, "include_all_users", default=True):
            # Members without a profile appear with empty properties (contract §5).
            missing = sorted(str(m) for m in members if m not in by_id)
            profiles = profiles + [{"$distinct_id": m, "$properties": {}} for m in missing]

    wanted = _ids(params)
    if wanted is not None:
        profiles = [p for p in profiles if str(p["$distinct_id"]) in wanted]

    where = params.get("where")
    if behaviors is not None:
        counts = behavior_counts(project, behaviors, as_of=_as_of(params, project))
        profiles = _select_by_behaviors(profiles, behaviors, counts, where)
    elif where:
        try:
            keep = compile_filter(where)
        except ExpressionError as exc:
            raise EmulatorError(400, f"invalid 'where' expression: {exc}") from None
        profiles = [p for p in profiles if _safe(keep, p["$properties"])]

    output = params.get("output_properties")
    if output:
        names = _json_list(output, "output_properties")
        profiles = [
            {
                "$distinct_id": p["$distinct_id"],
                "$properties": {k: v for k, v in p["$properties"].items() if k in names},
            }
            for p in profiles
        ]
    return profiles


def project_cohort_members(project: Any, raw: str) -> frozenset[str]:
    """Resolve ``filter_by_cohort`` (``{"id": N}``) to its member ids."""
    try:
        cohort = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EmulatorError(400, 'filter_by_cohort must be JSON such as {"id": 123}') from None
    if isinstance(cohort, dict) and "raw_cohort" in cohort:
        raise EmulatorError(400, "the emulator supports filter_by_cohort by id only")
    cohort_id = cohort.get("id") if isinstance(cohort, dict) else None
    number: int | None = None
    if isinstance(cohort_id, int) and not isinstance(cohort_id, bool):
        number = cohort_id
    elif isinstance(cohort_id, str) and cohort_id.strip().lstrip("-").isdigit():
        number = int(cohort_id)
    if number is None:
        raise EmulatorError(400, 'filter_by_cohort must be JSON such as {"id": 123}')
    try:
        members: frozenset[str] = project.cohort_members(number)
    except KeyError:
        raise EmulatorError(400, f"cohort {number} does not exist in this project") from None
    return members


def _ids(params: Mapping[str, str]) -> set[str] | None:
    single = params.get("distinct_id")
    many = params.get("distinct_ids")
    if not single and not many:
        return None
    wanted: set[str] = set()
    if single:
        wanted.add(single)
    if many:
        wanted.update(str(v) for v in _json_list(many, "distinct_ids"))
    return wanted


def _json_list(raw: str, name: str) -> list[Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, list):
        raise EmulatorError(400, f'{name} must be a JSON array such as ["a", "b"]')
    return value


def _int_param(params: Mapping[str, str], name: str, *, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise EmulatorError(400, f"{name} must be an integer, got '{raw}'") from None


def _bool_param(params: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() not in ("false", "0", "no")


def _safe(keep: Any, properties: Mapping[str, Any]) -> bool:
    try:
        return bool(keep(properties))
    except ExpressionError:
        return False  # a record the expression cannot judge is not kept


# -- behaviors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Behavior:
    """One named ``behaviors`` entry: a window and the events it counts."""

    name: str
    window_seconds: int
    selectors: tuple[tuple[str | None, Callable[[Mapping[str, Any]], bool] | None], ...]


def _behaviors(params: Mapping[str, str]) -> list[Behavior] | None:
    raw = params.get("behaviors")
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EmulatorError(400, f"behaviors must be a JSON array; {_BEHAVIOR_FORM}") from None
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list) or not items:
        raise EmulatorError(400, f"behaviors must be a JSON array; {_BEHAVIOR_FORM}")
    return [_behavior(item) for item in items]


_BEHAVIOR_FORM = 'e.g. [{"name":"b","window":"30d","event_selectors":[{"event":"Purchase"}]}]'
_WINDOW_RE = re.compile(r"(\d+)\s*([hdw])")


def _behavior(item: Any) -> Behavior:
    if not isinstance(item, dict):
        raise EmulatorError(400, f"each behavior must be an object, {_BEHAVIOR_FORM}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise EmulatorError(400, f"each behavior needs a name, {_BEHAVIOR_FORM}")
    window = item.get("window")
    match = _WINDOW_RE.fullmatch(window.strip()) if isinstance(window, str) else None
    if match is None:
        raise EmulatorError(
            400, f"behavior {name!r}: window must be like '30d', '12h' or '2w', got {window!r}"
        )
    seconds = int(match.group(1)) * _WINDOW_UNITS[match.group(2)]
    raw_selectors = item.get("event_selectors")
    if not isinstance(raw_selectors, list) or not raw_selectors:
        raise EmulatorError(400, f"behavior {name!r} needs event_selectors, {_BEHAVIOR_FORM}")
    selectors = []
    for sel in raw_selectors:
        if not isinstance(sel, dict):
            raise EmulatorError(400, f"behavior {name!r}: each event selector must be an object")
        event = sel.get("event")
        text = sel.get("selector")
        try:
            keep = compile_filter(text) if isinstance(text, str) and text.strip() else None
        except ExpressionError as exc:
            raise EmulatorError(400, f"behavior {name!r}: invalid selector: {exc}") from None
        selectors.append((event if isinstance(event, str) else None, keep))
    return Behavior(name=name, window_seconds=seconds, selectors=tuple(selectors))


def _as_of(params: Mapping[str, str], project: Any) -> float:
    raw = params.get("as_of_timestamp")
    if raw:
        try:
            return float(int(raw))
        except ValueError:
            raise EmulatorError(
                400, f"as_of_timestamp must be epoch seconds (an integer), got '{raw}'"
            ) from None
    today = project.today_now()
    tz = ZoneInfo(project.spec.timezone)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return end.timestamp()


def behavior_counts(
    project: Any, behaviors: Sequence[Behavior], *, as_of: float
) -> dict[str, dict[str, int]]:
    """For each distinct_id, how many events each behavior counted in its window."""
    from mixpanel_data.emulator.reports.dataset import dataset_for

    data = dataset_for(project)
    counts: dict[str, dict[str, int]] = {}
    for behavior in behaviors:
        start = as_of - behavior.window_seconds
        for event in data.events:
            if not start < event.ts <= as_of:
                continue
            for name, keep in behavior.selectors:
                if (name is None or name == event.name) and (keep is None or keep(event.props)):
                    per_user = counts.setdefault(event.distinct_id, {})
                    per_user[behavior.name] = per_user.get(behavior.name, 0) + 1
                    break
    return counts


def _select_by_behaviors(
    profiles: list[dict[str, Any]],
    behaviors: Sequence[Behavior],
    counts: Mapping[str, Mapping[str, int]],
    where: str | None,
) -> list[dict[str, Any]]:
    names = [b.name for b in behaviors]
    if not where:
        return [p for p in profiles if any(counts.get(str(p["$distinct_id"]), {}).values())]
    try:
        expr = parse(where)
    except ExpressionError as exc:
        raise EmulatorError(400, f"invalid 'where' expression: {exc}") from None
    kept = []
    for p in profiles:
        done = counts.get(str(p["$distinct_id"]), {})
        user = {BEHAVIOR_PREFIX + n: done.get(n, 0) for n in names}
        try:
            if truthy(evaluate(expr, properties=p["$properties"], user=user)):
                kept.append(p)
        except ExpressionError:
            continue
    return kept
