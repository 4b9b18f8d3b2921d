"""/retention (birth, compounded, unbounded, on, filters) and /retention/addiction."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from tests.reports.conftest import days_between, label

DAY = 86400


def reference_birth(
    raw, born, event, first, last, *, count, seconds=DAY, born_keep=None, keep=None
):
    """{cohort day: (size, [set of users per interval])}: birth = first-ever born event."""
    births = {}
    for r in raw:
        if r.name == born and r.user not in births and (born_keep is None or born_keep(r)):
            births[r.user] = r
    cohorts = {d: [0, [set() for _ in range(count + 1)]] for d in days_between(first, last)}
    for _user, b in births.items():
        if first <= b.day <= last:
            cohorts[b.day.isoformat()][0] += 1
    for r in raw:
        b = births.get(r.user)
        if b is None or not first <= b.day <= last or r.time <= b.time:
            continue
        if (event is not None and r.name != event) or (keep is not None and not keep(r)):
            continue
        i = (r.time - b.time) // seconds
        if i <= count:
            cohorts[b.day.isoformat()][1][i].add(r.user)
    return cohorts


def test_birth_retention_matches_the_raw_export(query, raw, window):
    first, last = window
    body = query.ok(
        "retention",
        born_event="Sign Up",
        event="Login",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        interval_count=5,
    )
    expected = reference_birth(raw, "Sign Up", "Login", first, last, count=5)
    assert list(body) == days_between(first, last)
    for day, (size, rows) in expected.items():
        assert body[day] == {"counts": [len(s) for s in rows], "first": size}
    assert sum(size for size, _ in expected.values()) > 5


def test_unbounded_weekly_retention_with_filters(query, raw, today):
    first, last = today - timedelta(days=27), today - timedelta(days=14)
    body = query.ok(
        "retention",
        born_event="Sign Up",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        unit="week",
        interval_count=2,
        unbounded_retention="true",
        born_where='properties["mp_country_code"] == "US"',
        where='properties["$browser"] == "Chrome"',
    )
    births = {}
    for r in raw:
        if r.name == "Sign Up" and r.user not in births and r.props.get("mp_country_code") == "US":
            births[r.user] = r
    expected: dict[str, list] = {}
    for user, b in births.items():
        if not first <= b.day <= last:
            continue
        week = (b.day - timedelta(days=b.day.weekday())).isoformat()
        entry = expected.setdefault(week, [0, [set(), set(), set()]])
        entry[0] += 1
        for r in raw:
            if r.user == user and r.time > b.time and r.props.get("$browser") == "Chrome":
                i = (r.time - b.time) // (7 * DAY)
                if i <= 2:
                    entry[1][i].add(user)
    for week, (size, rows) in expected.items():
        unbounded = [len(set().union(*rows[i:])) for i in range(3)]
        assert body[week] == {"counts": unbounded, "first": size}
        assert unbounded == sorted(unbounded, reverse=True)
    assert set(body) >= set(expected)


def test_compounded_retention_cohorts_are_the_days_event_users(query, raw, window):
    first, last = window
    body = query.ok(
        "retention",
        retention_type="compounded",
        event="Purchase",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        interval=2,
        interval_count=3,
    )
    for day in days_between(first, last):
        starts = {}
        for r in raw:
            if r.name == "Purchase" and r.day.isoformat() == day and r.user not in starts:
                starts[r.user] = r
        rows = [set() for _ in range(4)]
        for r in raw:
            s = starts.get(r.user)
            if s is not None and r.name == "Purchase" and r.time > s.time:
                i = (r.time - s.time) // (2 * DAY)
                if i <= 3:
                    rows[i].add(r.user)
        assert body[day] == {"counts": [len(x) for x in rows], "first": len(starts)}


def test_retention_segmented_by_the_return_event(query, raw, window):
    first, last = window
    body = query.ok(
        "retention",
        born_event="Sign Up",
        event="View Item",
        on='properties["$os"]',
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        interval_count=1,
    )
    births = {}
    for r in raw:
        if r.name == "Sign Up" and r.user not in births:
            births[r.user] = r
    per_segment: dict[str, dict[str, list[set[str]]]] = defaultdict(dict)
    for r in raw:
        b = births.get(r.user)
        if r.name != "View Item" or b is None or not first <= b.day <= last or r.time <= b.time:
            continue
        i = (r.time - b.time) // DAY
        if i <= 1:
            seg = label(r.props.get("$os"))
            per_segment[seg].setdefault(b.day.isoformat(), [set(), set()])[i].add(r.user)
    assert set(body) == set(per_segment)
    for seg, cohorts in per_segment.items():
        for day, rows in cohorts.items():
            assert body[seg][day]["counts"] == [len(x) for x in rows]


def test_unit_and_interval_together_is_400(query, window):
    first, last = window
    response = query(
        "retention",
        born_event="Sign Up",
        unit="day",
        interval=2,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unit and interval both specified"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"born_event": None}, "Missing required parameter: born_event"),
        ({"retention_type": "first"}, "Error in retention_type"),
        ({"unit": "quarter"}, "Error in unit"),
        ({"born_where": "properties["}, "Error in born_where: invalid expression"),
    ],
)
def test_retention_bad_parameters(query, window, params, message):
    first, last = window
    base = {"born_event": "Sign Up", "from_date": first.isoformat(), "to_date": last.isoformat()}
    response = query("retention", **{**base, **params})
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_addiction_counts_users_active_in_at_least_n_sub_periods(query, raw, today):
    monday = today - timedelta(days=today.weekday() + 14)
    first, last = monday, monday + timedelta(days=13)
    body = query.ok(
        "retention/addiction",
        event="Login",
        unit="week",
        addiction_unit="day",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    for week_start in (first, first + timedelta(days=7)):
        days: dict[str, set] = defaultdict(set)
        for r in raw:
            if r.name == "Login" and week_start <= r.day < week_start + timedelta(days=7):
                days[r.user].add(r.day)
        expected = [sum(1 for d in days.values() if len(d) >= i + 1) for i in range(7)]
        assert body["data"][week_start.isoformat()] == expected
        assert expected[0] > 0


def test_addiction_hourly_with_where(query, raw, window):
    first = window[0]
    body = query.ok(
        "retention/addiction",
        unit="day",
        addiction_unit="hour",
        where='properties["mp_lib"] == "web"',
        from_date=first.isoformat(),
        to_date=first.isoformat(),
    )
    hours: dict[str, set] = defaultdict(set)
    for r in raw:
        if r.day == first and r.props.get("mp_lib") == "web":
            hours[r.user].add(r.local.hour)
    expected = [sum(1 for h in hours.values() if len(h) >= i + 1) for i in range(24)]
    assert body == {"data": {first.isoformat(): expected}}


def test_addiction_needs_its_units(query, window):
    first, last = window
    response = query(
        "retention/addiction", unit="week", from_date=first.isoformat(), to_date=last.isoformat()
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("Missing required parameter: addiction_unit")
