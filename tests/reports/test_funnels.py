"""/funnels against a plain re-computation over the raw export, plus the funnel invariants."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.reports.conftest import days_between, label

DAY = 86400


def reference_funnel(
    raw,
    steps: list[str],
    first: date,
    last: date,
    *,
    window: int,
    bucket_days: int = 1,
    keep=lambda r: True,
    segment=None,
) -> dict[str, dict[Any, dict[str, Any]]]:
    """{bucket: {segment or None: {"counts": [...], "prev": [...], "start": [...]}}}."""
    per_user: dict[str, list] = defaultdict(list)
    for r in raw:  # raw is in time order
        if r.name in steps and r.day >= first and keep(r):
            per_user[r.user].append(r)
    out: dict[str, dict[Any, dict[str, Any]]] = {}
    for events in per_user.values():
        entered: set[str] = set()
        for i, entry in enumerate(events):
            if entry.name != steps[0] or entry.day > last:
                continue
            bucket = first + timedelta(days=(entry.day - first).days // bucket_days * bucket_days)
            key = bucket.isoformat()
            if key in entered:
                continue
            entered.add(key)
            path = [entry]
            for later in events[i + 1 :]:
                if len(path) == len(steps) or later.time > entry.time + window:
                    break
                if later.name == steps[len(path)]:
                    path.append(later)
            targets = [None] if segment is None else [None, segment(entry)]
            for target in targets:
                stats = out.setdefault(key, {}).setdefault(
                    target,
                    {
                        "counts": [0] * len(steps),
                        "prev": [0] * len(steps),
                        "start": [0] * len(steps),
                    },
                )
                for n, reached in enumerate(path):
                    stats["counts"][n] += 1
                    if n:
                        stats["prev"][n] += reached.time - path[n - 1].time
                        stats["start"][n] += reached.time - entry.time
    return out


def _check_steps(rows, stats, steps):
    counts = stats["counts"]
    assert [r["count"] for r in rows] == counts
    for n, row in enumerate(rows):
        assert list(row)[:5] == [
            "count",
            "avg_time",
            "avg_time_from_start",
            "step_conv_ratio",
            "goal",
        ]
        assert row["event"] == row["goal"] == steps[n]
        if n == 0:
            assert row["step_conv_ratio"] == 1
            assert row["overall_conv_ratio"] == 1
            assert row["avg_time"] is None
            assert row["avg_time_from_start"] is None
            continue
        assert row["step_conv_ratio"] == pytest.approx(
            counts[n] / counts[n - 1] if counts[n - 1] else 0
        )
        assert row["overall_conv_ratio"] == pytest.approx(counts[n] / counts[0] if counts[0] else 0)
        if counts[n]:
            assert row["avg_time"] == round(stats["prev"][n] / counts[n])
            assert row["avg_time_from_start"] == round(stats["start"][n] / counts[n])
        else:
            assert row["avg_time"] is None


@pytest.fixture(scope="module")
def purchase_funnel(emulator) -> dict[str, Any]:
    return next(f for f in emulator.project.funnels() if f["funnel_id"] == 7001)


def test_daily_funnel_matches_the_raw_export(query, raw, window, purchase_funnel):
    first, last = window
    body = query.ok(
        "funnels", funnel_id=7001, from_date=first.isoformat(), to_date=last.isoformat()
    )
    steps = purchase_funnel["steps"]
    expected = reference_funnel(raw, steps, first, last, window=purchase_funnel["length"] * DAY)
    assert body["meta"]["dates"] == days_between(first, last)
    assert list(body["data"]) == days_between(first, last)
    empty = {"counts": [0] * len(steps), "prev": [0] * 4, "start": [0] * 4}
    for day, entry in body["data"].items():
        stats = expected.get(day, {}).get(None, empty)
        _check_steps(entry["steps"], stats, steps)
        assert entry["analysis"]["starting_amount"] == stats["counts"][0]
        assert entry["analysis"]["completion"] == stats["counts"][-1]
        assert entry["analysis"]["steps"] == len(steps)
    assert sum(expected[d][None]["counts"][0] for d in expected) > 5


def test_whole_range_bucket_counts_each_user_once(query, raw, window, purchase_funnel):
    first, last = window
    days = (last - first).days + 1
    body = query.ok(
        "funnels",
        funnel_id=7001,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        interval=days,
        length=2,
        length_unit="hour",
    )
    steps = purchase_funnel["steps"]
    expected = reference_funnel(raw, steps, first, last, window=2 * 3600, bucket_days=days)
    assert list(body["data"]) == [first.isoformat()]
    _check_steps(body["data"][first.isoformat()]["steps"], expected[first.isoformat()][None], steps)
    entrants = {r.user for r in raw if r.name == steps[0] and first <= r.day <= last}
    assert body["data"][first.isoformat()]["steps"][0]["count"] == len(entrants)


def test_segmented_and_filtered_funnel(query, raw, window, emulator):
    first, last = window
    funnel = next(f for f in emulator.project.funnels() if f["funnel_id"] == 7003)
    where = 'properties["$browser"] != "Edge"'
    body = query.ok(
        "funnels",
        funnel_id=7003,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        unit="week",
        on='properties["mp_country_code"]',
        where=where,
    )
    weekly = reference_weekly(raw, funnel, first, last)
    for week, entry in body["data"].items():
        assert set(entry) >= {"$overall"}
        assert "steps" not in entry
        _check_steps(entry["$overall"], weekly[week][None], funnel["steps"])
        for segment, rows in entry.items():
            if segment != "$overall":
                stats = weekly[week].get(
                    segment, {"counts": [0] * 3, "prev": [0] * 3, "start": [0] * 3}
                )
                _check_steps(rows, stats, funnel["steps"])
    assert sum(len(entry) - 1 for entry in body["data"].values()) >= 2  # real segments


def reference_weekly(raw, funnel, first, last):
    """The same funnel with one entry per user per Monday-started week."""
    steps = funnel["steps"]
    per_user: dict[str, list] = defaultdict(list)
    for r in raw:
        if r.name in steps and r.day >= first and r.props.get("$browser") != "Edge":
            per_user[r.user].append(r)
    out: dict[str, dict[Any, dict[str, Any]]] = {}
    for events in per_user.values():
        entered: set[str] = set()
        for i, entry in enumerate(events):
            if entry.name != steps[0] or entry.day > last:
                continue
            week = (entry.day - timedelta(days=entry.day.weekday())).isoformat()
            if week in entered:
                continue
            entered.add(week)
            path = [entry]
            for later in events[i + 1 :]:
                if len(path) == len(steps) or later.time > entry.time + funnel["length"] * DAY:
                    break
                if later.name == steps[len(path)]:
                    path.append(later)
            for target in (None, label(entry.props.get("mp_country_code"))):
                stats = out.setdefault(week, {}).setdefault(
                    target, {"counts": [0] * 3, "prev": [0] * 3, "start": [0] * 3}
                )
                for n, reached in enumerate(path):
                    stats["counts"][n] += 1
                    if n:
                        stats["prev"][n] += reached.time - path[n - 1].time
                        stats["start"][n] += reached.time - entry.time
    return out


def test_unknown_funnel_is_404_and_bad_unit_is_400(query, window):
    first, last = window
    dates = {"from_date": first.isoformat(), "to_date": last.isoformat()}
    missing = query("funnels", funnel_id=424242, **dates)
    assert missing.status_code == 404
    assert missing.json()["error"].startswith("Funnel 424242 not found")
    bad_unit = query("funnels", funnel_id=7001, unit="year", **dates)
    assert bad_unit.status_code == 400
    assert "Error in unit" in bad_unit.json()["error"]
    too_long = query("funnels", funnel_id=7001, length=91, length_unit="day", **dates)
    assert too_long.status_code == 400
    no_id = query("funnels", **dates)
    assert no_id.status_code == 400
    assert no_id.json()["error"].startswith("Missing required parameter: funnel_id")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.sampled_from(["Sign Up", "Login", "Search", "View Item", "Add To Cart", "Purchase"]),
        min_size=1,
        max_size=5,
    ),
    hours=st.integers(min_value=1, max_value=24 * 14),
)
def test_funnel_counts_never_grow_along_the_steps(emulator, window, steps, hours):
    from mixpanel_data.emulator.reports.buckets import day_buckets
    from mixpanel_data.emulator.reports.dataset import dataset_for
    from mixpanel_data.emulator.reports.funnels import compute_funnel, step_rows

    first, last = window
    buckets = day_buckets(2, first, last)
    result = compute_funnel(
        dataset_for(emulator.project),
        steps,
        first=first,
        last=last,
        window=hours * 3600.0,
        buckets=buckets,
    )
    for by_segment in result.values():
        counts = by_segment[None].counts
        assert all(a >= b for a, b in itertools.pairwise(counts))
        for row in step_rows(by_segment[None], steps):
            assert 0 <= row["overall_conv_ratio"] <= 1
            assert 0 <= row["step_conv_ratio"] <= 1
