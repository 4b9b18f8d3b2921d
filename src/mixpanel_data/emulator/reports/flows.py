"""Flows: ``/arb_funnels`` for a flows bookmark, computed from the events (contract §12.2).

Simple but real: each user's path is their first anchor event in the range and the
next ``steps`` events after it (or before it, for ``direction`` "before"). The sankey
view has one column per step; a column keeps its ``MAX_NODES`` most common events,
folds the rest into a ``PRUNED`` node and counts finished paths in a ``DROPOFF``
node. Edges hang off their source node. Counts are strings, as JMF saw (§12.2).
``flows_top_paths`` lists the most common whole paths instead of ``steps``.
A bookmark that is not a flows report is an error sent with HTTP 200 (§12.2).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import orjson

from mixpanel_data.emulator.reports.dataset import Event, dataset_for
from mixpanel_data.emulator.reports.insights import find_bookmark, saved_range
from mixpanel_data.emulator.reports.params import bad, opt_str, unit_param
from mixpanel_data.emulator.responses import now_iso
from mixpanel_data.emulator.routing import ApiRequest, query_route

__all__ = ["flow_paths"]

QUERY_TYPES: Final = ("flows_sankey", "flows_top_paths", "flows")
MAX_NODES: Final = 5
TOP_PATHS: Final = 10
DROPOFF: Final = "$dropoff"
PRUNED: Final = "$other"


def flow_paths(
    users: dict[str, list[Event]], anchor: str, *, steps: int, before: bool
) -> list[list[str]]:
    """One path per user who did ``anchor``: the anchor then up to ``steps`` events."""
    paths = []
    for events in users.values():
        index = next((i for i, e in enumerate(events) if e.name == anchor), None)
        if index is None:
            continue
        if before:
            around = [e.name for e in reversed(events[max(0, index - steps) : index])]
        else:
            around = [e.name for e in events[index + 1 : index + 1 + steps]]
        paths.append([anchor, *around])
    return paths


def _column_labels(paths: list[list[str]], step: int) -> dict[str, str]:
    """The node each event at ``step`` falls into: itself, or PRUNED past the top few."""
    counts = Counter(p[step] for p in paths if len(p) > step)
    top = {name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_NODES]}
    return {name: name if name in top else PRUNED for name in counts}


def _node_type(label: str, step: int) -> str:
    if step == 0:
        return "ANCHOR"
    return {DROPOFF: "DROPOFF", PRUNED: "PRUNED"}.get(label, "NORMAL")


def _sankey(paths: list[list[str]], steps: int) -> list[dict[str, Any]]:
    labelled: list[list[str]] = []
    columns = [_column_labels(paths, s) for s in range(steps + 1)]
    for p in paths:
        row = [columns[s][name] for s, name in enumerate(p)]
        if len(row) <= steps:
            row.append(DROPOFF)  # the path ended: it drops off at the next step
        labelled.append(row)
    out = []
    for s in range(steps + 1):
        totals = Counter(row[s] for row in labelled if len(row) > s)
        edges: dict[str, Counter[str]] = {}
        for row in labelled:
            if len(row) > s + 1 and s < steps:
                edges.setdefault(row[s], Counter())[row[s + 1]] += 1
        nodes = []
        for label, total in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])):
            node_edges = [
                {"event": t, "type": _node_type(t, s + 1), "step": s + 1, "totalCount": str(n)}
                for t, n in sorted(edges.get(label, Counter()).items(), key=lambda kv: -kv[1])
            ]
            nodes.append(
                {
                    "event": label,
                    "type": _node_type(label, s),
                    "step": s,
                    "totalCount": str(total),
                    "edges": node_edges,
                }
            )
        out.append({"nodes": nodes})
    return out


@query_route("arb_funnels")
def arb_funnels(req: ApiRequest) -> dict[str, Any]:
    """A flows report: where users went after (or came from before) the anchor event."""
    query_type = unit_param(req, QUERY_TYPES, default="flows_sankey", name="query_type")
    raw_bookmark = opt_str(req, "bookmark")
    if raw_bookmark is not None:  # inline query: {"bookmark": {...params...}}
        try:
            bookmark = {"type": "flows", "params": orjson.loads(raw_bookmark)}
        except orjson.JSONDecodeError:
            raise bad("Error in bookmark: expected a JSON object") from None
        if not isinstance(bookmark["params"], dict):
            raise bad("Error in bookmark: expected a JSON object")
    else:
        bookmark_id = opt_str(req, "bookmark_id")
        if bookmark_id is None:
            raise bad("Missing required parameter: bookmark_id (or a bookmark body)")
        bookmark = find_bookmark(req.project, bookmark_id)
    if bookmark.get("type") != "flows":
        # contract §12.2: errors can arrive as HTTP 200 with an ``error`` key
        return {"error": f"Bookmark {bookmark.get('id')} is not a flows report"}
    params = bookmark.get("params") or {}
    anchor = params.get("anchor_event")
    if not anchor:
        return {"error": "This flows report has no anchor event"}
    steps = max(1, min(int(params.get("steps") or 3), 10))
    before = params.get("direction") == "before"
    first, last = saved_range(req, params)
    users: dict[str, list[Event]] = {}
    for e in dataset_for(req.project).between(first, last):
        users.setdefault(e.distinct_id, []).append(e)
    paths = flow_paths(users, str(anchor), steps=steps, before=before)
    complete = sum(1 for p in paths if len(p) == steps + 1)
    rate = round(complete / len(paths), 6) if paths else 0.0
    body: dict[str, Any] = {"computed_at": now_iso()}
    if query_type == "flows_top_paths":
        ranked = Counter(tuple(p) for p in paths).most_common(TOP_PATHS)
        body["flows"] = [{"path": list(p), "totalCount": str(n)} for p, n in ranked]
    else:
        body["steps"] = _sankey(paths, steps)
    body.update(
        {"breakdowns": [], "overallConversionRate": rate, "metadata": {"min_sampling_factor": 1}}
    )
    return body
