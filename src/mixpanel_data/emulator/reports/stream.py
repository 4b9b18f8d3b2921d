"""The activity feed: ``/stream/query`` (contract §11).

Events of the given users in time order, with ``distinct_id`` renamed to
``$distinct_id`` as the stream shows it (contract §15.14). The spec marks the dates
required but JMF sends none, so without them the feed covers the plan's history
window up to today; a window older than that is the recorded 403.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mixpanel_data.emulator.reports.dataset import dataset_for
from mixpanel_data.emulator.reports.params import (
    bad,
    check_history,
    date_range,
    history_days,
    json_list,
    opt_str,
    today,
)
from mixpanel_data.emulator.routing import ApiRequest, query_route

__all__: list[str] = []


def _stream_properties(props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"time": props.get("time"), "$distinct_id": props.get("distinct_id")}
    out.update((k, v) for k, v in props.items() if k not in ("time", "distinct_id"))
    return out


@query_route("stream/query")
def stream_query(req: ApiRequest) -> dict[str, Any]:
    """Every event of the ``distinct_ids`` in the range, oldest first."""
    ids = [str(i) for i in json_list(req, "distinct_ids", required=True) or []]
    if not ids:
        raise bad("Error in distinct_ids: the JSON array must hold at least one distinct_id")
    if opt_str(req, "from_date") is None and opt_str(req, "to_date") is None:
        last = today(req.project)
        first = last - timedelta(days=history_days(req.project))
    else:
        first, last = date_range(req)
        check_history(req, first)
    data = dataset_for(req.project)
    events = [
        e for i in dict.fromkeys(ids) for e in data.by_user.get(i, ()) if first <= e.day <= last
    ]
    events.sort(key=lambda e: e.ts)
    rows = [{"event": e.name, "properties": _stream_properties(e.props)} for e in events]
    return {"status": "ok", "results": {"events": rows}}
