"""Discovery endpoints: names, top events, properties, values, funnels and cohorts lists."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from tests.reports.conftest import label


def test_event_names_ranked_by_volume_over_31_days(query, raw, today):
    names = query.ok("events/names", type="general")
    counts = Counter(r.name for r in raw if today - timedelta(days=30) <= r.day <= today)
    assert names == sorted(counts, key=lambda n: (-counts[n], n))
    assert query.ok("events/names", type="general", limit=2) == names[:2]


def test_event_names_unique_with_explicit_window(query, raw, window):
    first, last = window
    names = query.ok(
        "events/names", type="unique", from_date=first.isoformat(), to_date=last.isoformat()
    )
    users: dict[str, set[str]] = {}
    for r in raw:
        if first <= r.day <= last:
            users.setdefault(r.name, set()).add(r.user)
    assert names == sorted(users, key=lambda n: (-len(users[n]), n))


def test_event_names_older_than_the_plan_history_is_403(query, today):
    response = query(
        "events/names",
        type="general",
        from_date=(today - timedelta(days=400)).isoformat(),
        to_date=today.isoformat(),
    )
    assert response.status_code == 403
    assert response.json()["error"] == "Date range exceeds 365 days into the past"


def test_top_events_compare_the_latest_day_with_the_day_before(query, raw):
    body = query.ok("events/top", type="general", limit=3)
    latest = max(r.day for r in raw)
    now = Counter(r.name for r in raw if r.day == latest)
    before = Counter(r.name for r in raw if r.day == latest - timedelta(days=1))
    top = sorted(now, key=lambda n: (-now[n], n))[:3]
    assert body["type"] == "general"
    assert [e["event"] for e in body["events"]] == top
    for row in body["events"]:
        assert list(row) == ["amount", "event", "percent_change"]
        assert row["amount"] == now[row["event"]]
        prev = before[row["event"]]
        assert row["percent_change"] == pytest.approx((now[row["event"]] - prev) / prev)


def test_top_properties_count_events_carrying_each(query, raw, today):
    body = query.ok("events/properties/top", event="Purchase", limit=50)
    counts: Counter[str] = Counter()
    for r in raw:
        if r.name == "Purchase" and r.day >= today - timedelta(days=30):
            counts.update(k for k in r.props if k not in ("time", "distinct_id"))
    assert body == {k: {"count": counts[k]} for k in body}
    assert set(body) == set(counts) or len(body) == 50
    assert "price" in body
    assert "time" not in body


def test_property_values_are_strings_most_common_first(query, raw, today):
    values = query.ok("events/properties/values", event="Add To Cart", name="in_stock")
    counts = Counter(
        label(r.props["in_stock"])
        for r in raw
        if r.name == "Add To Cart" and "in_stock" in r.props and r.day >= today - timedelta(days=30)
    )
    assert values == sorted(counts, key=lambda v: (-counts[v], v))
    assert set(values) <= {"true", "false"}


def test_property_values_need_a_name(query):
    response = query("events/properties/values", event="Purchase")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Missing required parameter: name")


def test_funnels_list_and_cohorts_list(query, emulator):
    funnels = query.ok("funnels/list")
    assert funnels == [
        {"funnel_id": f["funnel_id"], "name": f["name"]} for f in emulator.project.funnels()
    ]
    got = query.ok("cohorts/list")
    posted = query("cohorts/list", method="POST")
    assert posted.status_code == 200
    assert posted.json() == got
    assert [c["id"] for c in got] == [c["id"] for c in emulator.project.cohorts()]
    for cohort in got:
        assert cohort["count"] == len(emulator.project.cohort_members(cohort["id"]))
        assert list(cohort)[:7] == [
            "count", "is_visible", "description", "created", "project_id", "id", "name",
        ]  # fmt: skip


def test_history_window_follows_the_project_setting(query, emulator, today, monkeypatch):
    monkeypatch.setattr(emulator.project, "max_data_history_days", 20, raising=False)
    too_old = query(
        "events/names",
        type="general",
        from_date=(today - timedelta(days=25)).isoformat(),
        to_date=today.isoformat(),
    )
    assert too_old.status_code == 403
    assert too_old.json()["error"] == "Date range exceeds 20 days into the past"
    inside = query(
        "events/names",
        type="general",
        from_date=(today - timedelta(days=20)).isoformat(),
        to_date=today.isoformat(),
    )
    assert inside.status_code == 200
