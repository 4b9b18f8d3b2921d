"""Segmentation, numeric, sum and average against counts computed from the raw export."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import timedelta

import pytest
from tests.reports.conftest import days_between, label


def _in_window(raw, event, first, last):
    return [r for r in raw if r.name == event and first <= r.day <= last]


def test_segmentation_counts_every_day_in_project_time(query, raw, window):
    first, last = window
    body = query.ok(
        "segmentation", event="View Item", from_date=first.isoformat(), to_date=last.isoformat()
    )
    expected = dict.fromkeys(days_between(first, last), 0)
    for r in _in_window(raw, "View Item", first, last):
        expected[r.day.isoformat()] += 1
    assert body["data"]["series"] == days_between(first, last)
    assert body["data"]["values"] == {"View Item": expected}
    assert body["legend_size"] == 1
    assert sum(expected.values()) > 50  # the window really holds data


@pytest.mark.parametrize("kind", ["unique", "average"])
def test_segmentation_unique_and_average(query, raw, window, kind):
    first, last = window
    body = query.ok(
        "segmentation",
        event="Login",
        type=kind,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    counts: dict[str, int] = defaultdict(int)
    users: dict[str, set[str]] = defaultdict(set)
    for r in _in_window(raw, "Login", first, last):
        counts[r.day.isoformat()] += 1
        users[r.day.isoformat()].add(r.user)
    got = body["data"]["values"]["Login"]
    for day in days_between(first, last):
        if kind == "unique":
            assert got[day] == len(users[day])
        else:
            assert got[day] == pytest.approx(counts[day] / len(users[day]) if users[day] else 0)
    if kind == "average":
        assert any(v > 1 for v in got.values())  # users log in more than once a day


def test_segmentation_on_property_with_where_filter(query, raw, window):
    first, last = window
    body = query.ok(
        "segmentation",
        event="Add To Cart",
        on='properties["mp_country_code"]',
        where='properties["quantity"] >= 2',
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    expected: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(days_between(first, last), 0)
    )
    for r in _in_window(raw, "Add To Cart", first, last):
        q = r.props.get("quantity")
        if isinstance(q, int) and not isinstance(q, bool) and q >= 2:
            expected[label(r.props.get("mp_country_code"))][r.day.isoformat()] += 1
    assert body["data"]["values"] == dict(expected)
    assert body["legend_size"] == len(expected) >= 2


def test_segmentation_limit_keeps_top_segments(query, raw, window):
    first, last = window
    body = query.ok(
        "segmentation",
        event="View Item",
        on='properties["$city"]',
        limit=3,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    totals: dict[str, int] = defaultdict(int)
    for r in _in_window(raw, "View Item", first, last):
        totals[label(r.props.get("$city"))] += 1
    top = sorted(totals, key=lambda k: (-totals[k], k))[:3]
    assert list(body["data"]["values"]) == top
    assert {k: sum(v.values()) for k, v in body["data"]["values"].items()} == {
        k: totals[k] for k in top
    }


def test_segmentation_by_month_and_hour(query, raw, window):
    first, last = window
    monthly = query.ok(
        "segmentation",
        event="Search",
        unit="month",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    expected: dict[str, int] = defaultdict(int)
    for r in _in_window(raw, "Search", first, last):
        expected[r.day.replace(day=1).isoformat()] += 1
    assert monthly["data"]["values"]["Search"] == dict(expected)
    hourly = query.ok(
        "segmentation",
        event="Search",
        unit="hour",
        from_date=first.isoformat(),
        to_date=first.isoformat(),
    )
    series = hourly["data"]["series"]
    assert len(series) == 24
    assert series[0] == f"{first.isoformat()} 00:00:00"
    per_hour: dict[str, int] = defaultdict(int)
    for r in _in_window(raw, "Search", first, first):
        per_hour[r.local.strftime("%Y-%m-%d %H:00:00")] += 1
    assert {k: v for k, v in hourly["data"]["values"]["Search"].items() if v} == dict(per_hour)


def _bounds(text: str) -> tuple[float, float]:
    m = re.fullmatch(r"(-?[\d,.]+) - (-?[\d,.]+)", text)
    assert m, text
    return float(m.group(1).replace(",", "")), float(m.group(2).replace(",", ""))


def test_numeric_buckets_hold_each_event_in_its_labelled_range(query, raw, window):
    first, last = window
    body = query.ok(
        "segmentation/numeric",
        event="Purchase",
        on='properties["price"]',
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    prices = [
        (r.day.isoformat(), r.props["price"])
        for r in _in_window(raw, "Purchase", first, last)
        if isinstance(r.props.get("price"), float | int) and not isinstance(r.props["price"], bool)
    ]
    values = body["data"]["values"]
    assert sum(n for row in values.values() for n in row.values()) == len(prices)
    ranges = {k: _bounds(k) for k in values}
    for key, (lo, hi) in ranges.items():
        assert re.fullmatch(r"[\d,.]+ - [\d,.]+", key)
        for day, n in values[key].items():
            assert n == sum(1 for d, p in prices if d == day and lo <= p < hi)
    assert all(n > 0 for row in values.values() for n in row.values())  # zeros omitted


def test_sum_and_average_per_day(query, raw, window):
    first, last = window
    params = {
        "event": "Purchase",
        "on": 'number(properties["quantity"]) * 2',
        "from_date": first.isoformat(),
        "to_date": last.isoformat(),
    }
    total = query.ok("segmentation/sum", **params)
    mean = query.ok("segmentation/average", **params)
    assert total["status"] == "ok"
    assert "computed_at" in total
    assert list(mean) == ["results", "status"]
    grouped: dict[str, list[float]] = defaultdict(list)
    for r in _in_window(raw, "Purchase", first, last):
        q = r.props.get("quantity")
        grouped[r.day.isoformat()].append(2.0 * q if isinstance(q, int) else 0.0)
    for day in days_between(first, last):
        assert total["results"][day] == pytest.approx(math.fsum(grouped[day]))
        expected_mean = math.fsum(grouped[day]) / len(grouped[day]) if grouped[day] else 0
        assert mean["results"][day] == pytest.approx(expected_mean)


def test_sum_counts_non_numeric_values_as_zero(query, raw, window):
    first, last = window
    body = query.ok(
        "segmentation/sum",
        event="Purchase",
        on='properties["price"]',
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    grouped: dict[str, float] = defaultdict(float)
    for r in _in_window(raw, "Purchase", first, last):
        p = r.props.get("price")
        grouped[r.day.isoformat()] += (
            p if isinstance(p, float | int) else 0.0
        )  # "19.99" is a string
    assert body["results"] == {d: pytest.approx(grouped[d]) for d in days_between(first, last)}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"unit": "fortnight"}, "Error in unit: invalid value 'fortnight'"),
        ({"type": "median"}, "Error in type: invalid value 'median'"),
        ({"from_date": "1999-12-31"}, "Error in from_date: invalid date, bad year"),
        ({"from_date": "2024-02-30"}, "Error in from_date: invalid date"),
        ({"where": 'properties["x" =='}, "Error in where: invalid expression"),
        ({"on": "properties[", "where": None}, "Error in on: invalid expression"),
        ({"event": None}, "Missing required parameter: event"),
        ({"to_date": None}, "Missing required parameter: to_date"),
    ],
)
def test_segmentation_bad_parameters_are_400_envelopes(query, window, params, message):
    first, last = window
    base = {"event": "Login", "from_date": first.isoformat(), "to_date": last.isoformat()}
    response = query("segmentation", **{**base, **params})
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["request", "error"]
    assert body["error"].startswith(message)
    assert body["request"].startswith("/api/query/segmentation?")


def test_to_date_after_today_is_400(query, today):
    tomorrow = today + timedelta(days=1)
    response = query(
        "segmentation", event="Login", from_date=today.isoformat(), to_date=tomorrow.isoformat()
    )
    assert response.status_code == 400
    assert response.json()["error"] == "to_date cannot be later than today"


def test_numeric_requires_on(query, window):
    first, last = window
    response = query(
        "segmentation/numeric",
        event="Purchase",
        from_date=first.isoformat(),
        to_date=last.isoformat(),
    )
    assert response.status_code == 400
    assert "Missing required parameter: on" in response.json()["error"]
