"""/events and /events/properties against counts computed from the raw export."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import pytest
from tests.reports.conftest import days_between, label


def test_events_counts_omit_zero_days_but_list_every_bucket(query, raw, window):
    first, last = window
    names = ["Purchase", "Sign Up", "No Such Event"]
    body = query.ok(
        "events",
        event=json.dumps(names),
        type="general",
        unit="day",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    expected: dict[str, dict[str, int]] = {n: {} for n in names}
    for r in raw:
        if r.name in expected and first <= r.day <= last:
            day = r.day.isoformat()
            expected[r.name][day] = expected[r.name].get(day, 0) + 1
    assert body["data"]["series"] == days_between(first, last)
    assert body["data"]["values"] == expected
    assert body["legend_size"] == 3
    assert expected["Purchase"]  # real data in the window


def test_events_unique_by_week(query, raw, window):
    first, last = window
    body = query.ok(
        "events",
        event='["Login"]',
        type="unique",
        unit="week",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    users: dict[str, set[str]] = defaultdict(set)
    for r in raw:
        if r.name == "Login" and first <= r.day <= last:
            users[(r.day - timedelta(days=r.day.weekday())).isoformat()].add(r.user)
    assert body["data"]["values"]["Login"] == {k: len(v) for k, v in users.items()}
    assert all(date_key in body["data"]["series"] for date_key in users)


def test_events_interval_counts_back_from_today(query, today):
    body = query.ok("events", event='["Login"]', type="general", unit="day", interval=5)
    assert body["data"]["series"] == days_between(today - timedelta(days=4), today)


def test_hourly_uniques_are_refused(query, window):
    first, last = window
    response = query(
        "events",
        event='["Login"]',
        type="unique",
        unit="hour",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    assert response.status_code == 400
    assert "not available per hour" in response.json()["error"]


@pytest.mark.parametrize("missing", ["event", "type", "unit"])
def test_events_required_parameters(query, window, missing):
    first, last = window
    params = {
        "event": '["Login"]',
        "type": "general",
        "unit": "day",
        "from_date": first.isoformat(),
        "to_date": last.isoformat(),
    }
    params[missing] = None
    response = query("events", **params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"Missing required parameter: {missing}")


def test_event_properties_by_value_with_values_filter(query, raw, window):
    first, last = window
    body = query.ok(
        "events/properties",
        event="View Item",
        name="$browser",
        values='["Chrome","Safari"]',
        type="general",
        unit="day",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    expected: dict[str, dict[str, int]] = defaultdict(dict)
    for r in raw:
        if r.name == "View Item" and first <= r.day <= last:
            value = label(r.props.get("$browser"))
            if value in ("Chrome", "Safari"):
                row = expected[value]
                row[r.day.isoformat()] = row.get(r.day.isoformat(), 0) + 1
    assert body["data"]["values"] == dict(expected)
    assert set(body["data"]["values"]) == {"Chrome", "Safari"}
    assert body["legend_size"] == 2


def test_event_properties_limit_and_unique(query, raw, window):
    first, last = window
    body = query.ok(
        "events/properties",
        event="View Item",
        name="mp_country_code",
        type="unique",
        unit="month",
        limit=2,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    users: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in raw:
        if r.name == "View Item" and first <= r.day <= last:
            month = r.day.replace(day=1).isoformat()
            users[label(r.props.get("mp_country_code"))][month].add(r.user)
    totals = {k: sum(len(s) for s in v.values()) for k, v in users.items()}
    top = sorted(totals, key=lambda k: (-totals[k], k))[:2]
    assert body["data"]["values"] == {k: {m: len(s) for m, s in users[k].items()} for k in top}
