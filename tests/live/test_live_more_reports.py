"""Frequency, property counts, saved insights and flows: typed results vs the raw export.

Expected numbers come from the deduplicated raw export (``raw_events``), bucketed by
project-timezone day, never from the emulator's report code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.conftest import emulator_credentials
from tests.live.test_live_emulator import raw_events, seg_value

from mixpanel_data import Workspace


@pytest.fixture
def ws(emulator: Any) -> Iterator[Workspace]:
    with Workspace(credentials=emulator_credentials(emulator)) as w:
        yield w


@pytest.fixture
def window(emulator: Any) -> tuple[date, date]:
    end = emulator.project.today - timedelta(days=1)
    return end - timedelta(days=6), end


def test_property_counts_match_the_export(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    first, last = window
    want: dict[str, Counter[str]] = defaultdict(Counter)
    for e in raw_events(emulator):
        if e.name == "Purchase" and first <= e.day <= last:
            want[seg_value(e.props, "mp_country_code")][e.day.isoformat()] += 1
    got = ws.property_counts(
        "Purchase", "mp_country_code", from_date=first.isoformat(), to_date=last.isoformat()
    )
    nonzero = {seg: {d: int(n) for d, n in per.items() if n} for seg, per in got.values.items()}
    assert nonzero == {seg: dict(per) for seg, per in want.items()}
    assert sum(sum(per.values()) for per in want.values()) > 0
    # `series` lists every bucket of the range, even the days a segment has no count for.
    assert set(got.series) == {(first + timedelta(days=i)).isoformat() for i in range(7)}


def test_frequency_counts_distinct_hours_per_user(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    first, last = window
    tz = emulator.project.tz
    hours: dict[date, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for e in raw_events(emulator):
        if e.name == "Login" and first <= e.day <= last:
            hours[e.day][e.user].add(datetime.fromtimestamp(e.ts, tz).hour)
    got = ws.frequency(
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        unit="day",
        addiction_unit="hour",
        event="Login",
    )
    for day, users in hours.items():
        counts = Counter(len(h) for h in users.values())
        expected = [sum(n for k, n in counts.items() if k >= i + 1) for i in range(24)]
        assert list(got.data[day.isoformat()]) == expected, day
    assert sum(got.data[first.isoformat()]) > 0


def test_saved_insights_report_matches_the_export(emulator: Any, ws: Workspace) -> None:
    saved = [b for b in emulator.project.bookmarks() if b["type"] == "insights"]
    bookmark = saved[0]
    params = bookmark["params"]
    result = ws.saved_report(bookmark["id"])
    assert result.report_type == "insights"
    assert result.raw["series"] == {k: dict(v) for k, v in result.series.items()}
    # Recompute the series from the export: the bookmark's event per project-timezone day.
    (metric, per_day), *_ = result.series.items()
    counted: dict[str, set[str] | int] = {}
    for e in raw_events(emulator):
        if e.name != params["event"]:
            continue
        key = e.day.isoformat()
        if params.get("type") == "unique":
            users = counted.setdefault(key, set())
            assert isinstance(users, set)
            users.add(e.user)
        else:
            n = counted.get(key, 0)
            assert isinstance(n, int)
            counted[key] = n + 1
    assert per_day, "the saved report has a series"
    assert sum(per_day.values()) > 0
    for stamp, value in per_day.items():
        want = counted.get(stamp[:10], 0)
        assert value == (len(want) if isinstance(want, set) else want), (metric, stamp)


def test_flows_typed_result_keeps_every_node_of_the_raw_answer(
    emulator: Any, ws: Workspace
) -> None:
    flows = next(b for b in emulator.project.bookmarks() if b["type"] == "flows")
    result = ws.flows(flows["id"])
    c = emulator.credentials
    raw = httpx.get(
        f"{emulator.base_url}/api/query/arb_funnels",
        params={
            "project_id": c["project_id"],
            "bookmark_id": flows["id"],
            "query_type": "flows_sankey",
        },
        auth=(c["username"], c["secret"]),
        timeout=60,
    ).json()
    raw_nodes = [n for step in raw["steps"] for n in step["nodes"]]
    assert len(result.nodes) == len(raw_nodes)
    # totalCount arrives as a string (contract §12.2); typed counts are integers.
    assert sorted(n.total_count for n in result.nodes) == sorted(
        int(n["totalCount"]) for n in raw_nodes
    )
    anchor = flows["params"]["anchor_event"]
    assert any(n.event == anchor for n in result.nodes)
