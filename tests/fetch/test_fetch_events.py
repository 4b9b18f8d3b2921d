"""fetch_events against the emulator over loopback HTTP: exact, filtered, appended, replaced."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mixpanel_data.exceptions import (
    PartialFetchError,
    ServerError,
    TableExistsError,
)
from mixpanel_data.types import FetchProgress
from mixpanel_data.workspace import Workspace

from .conftest import dedup, expected_counter, project_records, table_counter


def test_thirty_day_fetch_equals_the_deduplicated_export(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates
    seen: list[FetchProgress] = []
    result = ws.fetch_events("events", from_date=days[0], to_date=days[-1], progress=seen.append)
    raw = project_records(emulator, days[0], days[-1])
    expected = dedup(raw)
    assert len(days) == 30
    assert table_counter(ws) == expected_counter(expected)
    assert result.rows_inserted == len(expected)
    assert result.duplicates_dropped == len(raw) - len(expected) > 0
    assert result.malformed_lines == 0
    # 30 project days in Los Angeles are 31 export (UTC) days, one window each.
    assert (result.windows_done, result.windows_total) == (31, 31)
    assert seen
    assert seen[-1].windows_done == 31
    assert seen[-1].rows == len(expected)
    meta = ws.storage.table_metadata("events")
    assert meta is not None
    assert meta["complete"] is True
    assert meta["row_count"] == len(expected)
    assert meta["fetch_args"]["from_date"] == days[0].isoformat()
    # event_time is UTC and equals properties.time for a modern project (contract §3.5).
    _c, rows = ws.storage.execute_rows(
        "SELECT count(*) FROM events WHERE epoch(event_time) <> (properties->>'time')::DOUBLE"
    )
    assert rows == [(0,)]


def test_properties_are_lossless(ws: Workspace, emulator: Any) -> None:
    day = emulator.project.data_dates[3]
    ws.fetch_events("e", from_date=day, to_date=day)
    stored = {
        json.dumps(json.loads(p), sort_keys=True)
        for (p,) in ws.storage.execute_rows('SELECT properties FROM "e"')[1]
    }
    originals = {
        json.dumps(r["properties"], sort_keys=True)
        for r in dedup(project_records(emulator, day, day))
    }
    assert stored == originals


def test_case_variant_keys_and_unicode_survive(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates[:4]
    ws.fetch_events("e", from_date=days[0], to_date=days[-1])
    _c, rows = ws.storage.execute_rows(
        """SELECT properties->>'plan', properties->>'Plan' FROM "e"
           WHERE properties->>'Plan' IS NOT NULL AND properties->>'plan' IS NOT NULL"""
    )
    expected = [
        (r["properties"]["plan"], r["properties"]["Plan"])
        for r in dedup(project_records(emulator, days[0], days[-1]))
        if "plan" in r["properties"] and "Plan" in r["properties"]
    ]
    assert expected
    assert sorted(rows) == sorted(expected)


def test_events_and_where_match_independent_filtering(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates[:5]
    raw = project_records(emulator, days[0], days[-1])
    ws.fetch_events("picked", from_date=days[0], to_date=days[-1], events=["Login", "Purchase"])
    picked = [r for r in raw if r["event"] in ("Login", "Purchase")]
    assert table_counter(ws, "picked") == expected_counter(dedup(picked))

    ws.fetch_events("pro", from_date=days[0], to_date=days[-1], where='properties["plan"] == "pro"')
    pro = [r for r in raw if r["properties"].get("plan") == "pro"]
    assert pro
    assert table_counter(ws, "pro") == expected_counter(dedup(pro))


def test_limit_matches_the_servers_limit(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates[1:4]
    ws.fetch_events("lim", from_date=days[0], to_date=days[-1], limit=50)
    # One request for the export days around the project days (Los Angeles: UTC days
    # A..B+1), the events outside A..B dropped (contract §3.5).
    zone = ZoneInfo(emulator.spec.timezone)
    reply = httpx.get(
        f"{emulator.base_url}/api/2.0/export",
        params={
            "from_date": days[0].isoformat(),
            "to_date": (days[-1] + timedelta(days=1)).isoformat(),
            "limit": 50,
            "project_id": emulator.spec.project_id,
        },
        auth=(emulator.username, emulator.secret),
    )
    records = [json.loads(line) for line in reply.content.splitlines() if line.strip()]
    assert len(records) == 50
    kept = [
        r
        for r in records
        if days[0]
        <= datetime.fromtimestamp(r["properties"]["time"], UTC).astimezone(zone).date()
        <= days[-1]
    ]
    assert 0 < len(kept) < 50
    assert table_counter(ws, "lim") == expected_counter(dedup(kept))


def test_append_over_an_overlapping_range_adds_nothing_twice(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates
    ws.fetch_events("events", from_date=days[0], to_date=days[5])
    result = ws.fetch_events("events", from_date=days[3], to_date=days[9], append=True)
    expected = dedup(project_records(emulator, days[0], days[9]))
    assert table_counter(ws) == expected_counter(expected)
    again = ws.fetch_events("events", from_date=days[0], to_date=days[9], append=True)
    assert again.rows_inserted == 0
    assert table_counter(ws) == expected_counter(expected)
    assert result.rows_inserted == len(expected) - len(
        dedup(project_records(emulator, days[0], days[5]))
    )


def test_existing_table_needs_append_or_replace(ws: Workspace, emulator: Any) -> None:
    day = emulator.project.data_dates[0]
    ws.fetch_events("events", from_date=day, to_date=day)
    before = table_counter(ws)
    with pytest.raises(TableExistsError, match=r"append=True to add to it, replace=True"):
        ws.fetch_events("events", from_date=day, to_date=day)
    assert table_counter(ws) == before


def test_replace_swaps_in_the_new_data(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates
    ws.fetch_events("events", from_date=days[0], to_date=days[1])
    ws.fetch_events("events", from_date=days[2], to_date=days[3], replace=True)
    assert table_counter(ws) == expected_counter(dedup(project_records(emulator, days[2], days[3])))
    assert [t.name for t in ws.storage.list_tables()] == ["events"]


def test_failed_replace_keeps_the_old_table(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates
    ws.fetch_events("events", from_date=days[0], to_date=days[1])
    before = table_counter(ws)
    meta_before = ws.storage.table_metadata("events")
    emulator.faults.add("500", endpoint="export", count=1000)
    with pytest.raises((PartialFetchError, ServerError)):
        ws.fetch_events("events", from_date=days[2], to_date=days[4], replace=True)
    emulator.faults.clear()
    assert table_counter(ws) == before
    assert ws.storage.table_metadata("events") == meta_before


def test_truncated_and_malformed_exports_are_handled(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates[:2]
    for n, kind in enumerate(("terminated_early", "reset")):
        emulator.faults.add(kind, endpoint="export", count=1, after_bytes=5000)
        result = ws.fetch_events(f"t{n}", from_date=days[0], to_date=days[1], workers=1)
        assert table_counter(ws, f"t{n}") == expected_counter(
            dedup(project_records(emulator, days[0], days[1]))
        )
        assert result.retries >= 1

    emulator.faults.add("malformed_line", endpoint="export", count=1)
    bad = ws.fetch_events("bad", from_date=days[0], to_date=days[0], workers=1)
    assert bad.malformed_lines == 1
    assert table_counter(ws, "bad") == expected_counter(
        dedup(project_records(emulator, days[0], days[0]))
    )


def test_keep_duplicates_stores_raw_rows(ws: Workspace, emulator: Any) -> None:
    day = emulator.project.data_dates[2]
    result = ws.fetch_events("raw", from_date=day, to_date=day, keep_duplicates=True)
    raw = project_records(emulator, day, day)
    assert result.duplicates_dropped == 0
    assert table_counter(ws, "raw") == expected_counter(raw)


def test_update_refetches_the_lookback_without_duplicates(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates
    ws.fetch_events("events", from_date=days[0], to_date=days[20])
    result = ws.update_events("events", lookback_days=5)
    assert result.from_date == days[15]
    assert result.to_date == emulator.project.today
    expected = dedup(project_records(emulator, days[0], emulator.project.today))
    assert table_counter(ws) == expected_counter(expected)


def test_fetch_into_memory_keeps_the_users_settings(creds: Any, emulator: Any) -> None:
    """An in-memory database keeps its one connection for good: the fetch's pool
    limits (tuned for a file) must not stay behind on it."""
    days = emulator.project.data_dates[-3:]
    with Workspace.memory(credentials=creds) as mem:
        setting = (
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
        )
        _c, before = mem.storage.execute_rows(setting)
        result = mem.fetch_events("events", from_date=days[0], to_date=days[-1])
        expected = dedup(project_records(emulator, days[0], days[-1]))
        assert table_counter(mem) == expected_counter(expected)
        assert result.rows_inserted == len(expected)
        _c, after = mem.storage.execute_rows(setting)
        assert after == before
