"""Shaping Mixpanel records: engage parameters, and export/engage records as table rows."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson

from mixpanel_data.exceptions import ValidationError

# The `event` parameter, URL-encoded, must leave room in the 65,536-character query
# string httpx (and common servers' larger limits) accept, for where, dates and id.
MAX_EVENT_PARAM = 60_000

__all__ = [
    "MAX_EVENT_PARAM",
    "clean_events",
    "engage_params",
    "normalize_event",
    "normalize_profile",
]


def clean_events(events: Sequence[str] | None) -> list[str] | None:
    if events is None:
        return None
    if isinstance(events, str):
        raise ValidationError("events must be a list of names, e.g. ['Login', 'Sign Up']")
    cleaned = [e for e in events if e.strip()]
    seen: dict[str, None] = dict.fromkeys(cleaned)
    names = list(seen)
    if names:
        sent = len(quote(orjson.dumps(names).decode(), safe=""))
        if sent > MAX_EVENT_PARAM:
            # Refused, not split: every extra request spends the export budget
            # (60/hour, contract §3.3) and the server's URL limit is not documented.
            raise ValidationError(
                f"the event filter lists {len(names):,} names ({sent:,} characters in the "
                f"request URL, at most {MAX_EVENT_PARAM:,} fit); pass fewer --events/-e "
                "names, or fetch all events and filter with `mp sql`"
            )
    return names or None


def engage_params(
    *,
    where: str | None = None,
    cohort_id: int | str | None = None,
    output_properties: Sequence[str] | None = None,
    distinct_ids: Sequence[str] | None = None,
    group_id: str | None = None,
    behaviors: str | Sequence[Any] | None = None,
    as_of_timestamp: int | None = None,
    include_all_users: bool | None = None,
) -> dict[str, Any]:
    """Build and check engage parameters (contract §5); arrays and objects go as JSON."""
    params: dict[str, Any] = {}
    if where and where.strip():
        params["where"] = where.strip()
    if cohort_id is not None:
        text = str(cohort_id).strip()
        if not text.isdigit():
            raise ValidationError(f"invalid cohort id '{text}'; use the cohort's number")
        params["filter_by_cohort"] = {"id": int(text)}
    if output_properties:
        params["output_properties"] = list(output_properties)
    if distinct_ids:
        ids = list(distinct_ids)
        if len(ids) == 1:
            params["distinct_id"] = ids[0]
        else:
            params["distinct_ids"] = ids
    if group_id:
        params["data_group_id"] = str(group_id)
    if behaviors is not None:
        if cohort_id is not None:
            raise ValidationError("use either --cohort or --behaviors, not both (contract §5)")
        if isinstance(behaviors, str):
            try:
                parsed = orjson.loads(behaviors)
            except orjson.JSONDecodeError:
                raise ValidationError(
                    "--behaviors must be JSON, e.g. "
                    '\'[{"window":"30d","name":"b","event_selectors":[{"event":"Login"}]}]\''
                ) from None
        else:
            parsed = list(behaviors)
        params["behaviors"] = parsed
    if as_of_timestamp is not None:
        params["as_of_timestamp"] = int(as_of_timestamp)
    if include_all_users is not None:
        params["include_all_users"] = bool(include_all_users)
    return params


def normalize_event(record: Mapping[str, Any], *, legacy_zone: ZoneInfo | None) -> dict[str, Any]:
    """Shape one export record like an events-table row (event_time in UTC)."""
    props = record.get("properties")
    props = props if isinstance(props, dict) else {}
    raw_time = props.get("time")
    event_time: datetime | None = None
    with contextlib.suppress(TypeError, ValueError, OverflowError, OSError):
        stamp = datetime.fromtimestamp(float(raw_time), tz=UTC)  # type: ignore[arg-type]
        if legacy_zone is not None:
            # Legacy projects shift the epoch by the zone's offset (contract §3.5).
            stamp = stamp.replace(tzinfo=legacy_zone).astimezone(UTC)
        event_time = stamp
    insert_id = props.get("$insert_id")
    if insert_id is None:
        insert_id = hashlib.md5(  # noqa: S324 - a content key, not security
            orjson.dumps([record.get("event"), props], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
    distinct_id = props.get("distinct_id")
    return {
        "event_name": record.get("event"),
        "event_time": event_time,
        "distinct_id": None if distinct_id is None else str(distinct_id),
        "insert_id": str(insert_id),
        "properties": props,
    }


def normalize_profile(record: Mapping[str, Any]) -> dict[str, Any]:
    """Shape one engage record like a profiles-table row."""
    props = record.get("$properties")
    props = props if isinstance(props, dict) else {}
    last_seen: datetime | None = None
    with contextlib.suppress(TypeError, ValueError):
        last_seen = datetime.fromisoformat(str(props.get("$last_seen"))).replace(tzinfo=UTC)
    distinct_id = record.get("$distinct_id")
    return {
        "distinct_id": None if distinct_id is None else str(distinct_id),
        "last_seen": last_seen,
        "properties": props,
    }
