"""Activity stream, insights bookmarks (event, funnel, retention) and flows vs the raw export."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from tests.reports.conftest import label


def test_stream_lists_a_users_events_in_time_order(query, raw, window):
    first, last = window
    user = next(r.user for r in raw if first <= r.day <= last and r.name == "Purchase")
    body = query.ok(
        "stream/query",
        distinct_ids=json.dumps([user]),
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    expected = [r for r in raw if r.user == user and first <= r.day <= last]
    events = body["results"]["events"]
    assert body["status"] == "ok"
    assert [(e["event"], e["properties"]["time"]) for e in events] == [
        (r.name, r.time) for r in expected
    ]
    assert all(e["properties"]["$distinct_id"] == user for e in events)
    assert all("distinct_id" not in e["properties"] for e in events)


def test_stream_needs_distinct_ids(query):
    response = query("stream/query")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Missing required parameter: distinct_ids")


def _bookmark(emulator, bookmark_id):
    return next(b for b in emulator.project.bookmarks() if b["id"] == bookmark_id)


def test_insights_event_bookmark(query, raw, emulator, today):
    params = _bookmark(emulator, 5001)["params"]  # Purchase, unique users, by day
    body = query.ok("insights", bookmark_id=5001)
    tz = ZoneInfo(emulator.spec.timezone)
    first = today - timedelta(days=29)
    users: dict[str, set[str]] = defaultdict(set)
    for r in raw:
        if r.name == params["event"] and first <= r.day <= today:
            users[r.day.isoformat()].add(r.user)
    expected = {}
    for i in range(30):
        day = first + timedelta(days=i)
        key = datetime(day.year, day.month, day.day, tzinfo=tz).isoformat()
        expected[key] = len(users[day.isoformat()])
    assert list(body)[:4] == ["computed_at", "date_range", "headers", "series"]
    assert body["headers"] == ["$event"]
    assert body["series"] == {params["event"]: expected}
    assert (
        body["date_range"]["from_date"]
        == datetime(first.year, first.month, first.day, tzinfo=tz).isoformat()
    )
    assert body["date_range"]["to_date"].startswith(f"{today.isoformat()}T23:59:59.999000")
    assert body["meta"]["sampling_factor"] == 1


def test_insights_segmented_bookmark(query, raw, today):
    body = query.ok("insights", bookmark_id=5002)  # Sign Up by mp_country_code
    assert body["headers"] == ["$event", "mp_country_code"]
    series = body["series"]["Sign Up"]
    first = today - timedelta(days=29)
    counts = Counter(
        label(r.props.get("mp_country_code"))
        for r in raw
        if r.name == "Sign Up" and first <= r.day <= today
    )
    assert sum(series["$overall"].values()) == sum(counts.values())
    for segment, row in series.items():
        if segment != "$overall":
            assert sum(row.values()) == counts[segment]


def test_insights_funnel_bookmark_counts_each_user_once(query, raw, emulator, today):
    funnel = next(f for f in emulator.project.funnels() if f["funnel_id"] == 7001)
    body = query.ok("insights", bookmark_id=5004)
    assert body["headers"] == ["$funnel"]
    series = body["series"]
    assert list(series) == [
        "count",
        "overall_conv_ratio",
        "step_conv_ratio",
        "avg_time",
        "avg_time_from_start",
    ]
    labels = [f"{n + 1}. {s}" for n, s in enumerate(funnel["steps"])]
    assert list(series["count"]) == labels
    first = today - timedelta(days=29)
    entrants = {r.user for r in raw if r.name == funnel["steps"][0] and first <= r.day <= today}
    assert series["count"][labels[0]] == {"all": len(entrants)}
    counts = [series["count"][lab]["all"] for lab in labels]
    assert counts == sorted(counts, reverse=True)
    assert series["overall_conv_ratio"][labels[-1]]["all"] == pytest.approx(counts[-1] / counts[0])
    assert series["avg_time"][labels[0]] == {"all": None}


def test_insights_retention_bookmark(query, emulator):
    body = query.ok("insights", bookmark_id=5005)
    assert body["headers"] == ["$retention"]
    (metric,) = body["series"]
    assert metric == "Sign Up then Login"
    for cohort in body["series"][metric].values():
        overall = cohort["$overall"]
        assert overall["rates"] == [
            pytest.approx(c / overall["first"]) if overall["first"] else 0
            for c in overall["counts"]
        ]


def test_insights_unknown_bookmark_is_404_and_flows_bookmark_is_400(query):
    assert query("insights", bookmark_id=1).status_code == 404
    response = query("insights", bookmark_id=5006)
    assert response.status_code == 400
    assert "arb_funnels" in response.json()["error"]


def test_flows_follow_each_users_first_anchor(query, raw, emulator, today):
    params = _bookmark(emulator, 5006)["params"]
    anchor, steps = params["anchor_event"], params["steps"]
    first = today - timedelta(days=29)
    per_user: dict[str, list] = defaultdict(list)
    for r in raw:
        if first <= r.day <= today:
            per_user[r.user].append(r)
    paths = []
    for events in per_user.values():
        names = [r.name for r in events]
        if anchor in names:
            i = names.index(anchor)
            paths.append(tuple(names[i : i + 1 + steps]))
    body = query.ok("arb_funnels", bookmark_id=5006, query_type="flows_sankey")
    columns = body["steps"]
    assert len(columns) == steps + 1
    (anchor_node,) = columns[0]["nodes"]
    assert anchor_node["type"] == "ANCHOR"
    assert anchor_node["totalCount"] == str(len(paths))
    second = Counter(p[1] for p in paths if len(p) > 1)
    for node in columns[1]["nodes"]:
        assert isinstance(node["totalCount"], str)
        if node["type"] == "NORMAL":
            assert int(node["totalCount"]) == second[node["event"]]
    edges = {e["event"]: int(e["totalCount"]) for e in anchor_node["edges"]}
    assert sum(edges.values()) == len(paths)
    complete = sum(1 for p in paths if len(p) == steps + 1)
    assert body["overallConversionRate"] == pytest.approx(complete / len(paths))

    top = query.ok("arb_funnels", bookmark_id=5006, query_type="flows_top_paths")
    ranked = Counter(paths).most_common(1)[0]
    assert top["flows"][0]["totalCount"] == str(ranked[1])


def test_flows_errors(query):
    not_flows = query("arb_funnels", bookmark_id=5001)
    assert not_flows.status_code == 200  # errors can arrive as 200 with an "error" key
    assert "error" in not_flows.json()
    assert query("arb_funnels", bookmark_id=1).status_code == 404
    assert query("arb_funnels", bookmark_id=5006, query_type="tree").status_code == 400
