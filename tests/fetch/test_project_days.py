"""`mp fetch events --from A --to B` stores exactly project-timezone days A..B.

For a project west of UTC (Los Angeles) and one east of it (Tokyo), against the
emulator over loopback: ``GROUP BY event_date`` equals the live segmentation day by
day, no event of A-1 or B+1 is stored, and resume, ``--update``, ``mp inspect
tables`` and the local reports' coverage all speak project days. "Today" is pinned.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mixpanel_data._internal.http.client import RetryPolicy
from mixpanel_data.cli.main import main
from mixpanel_data.exceptions import IncompleteDataError, PartialFetchError
from mixpanel_data.workspace import Workspace

from .conftest import creds_for, dedup, expected_counter, project_records, table_counter

TODAY = date(2024, 11, 20)
DAY = timedelta(days=1)


@pytest.fixture(scope="module", params=["America/Los_Angeles", "Asia/Tokyo"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    spec = ProjectSpec(seed=12, users=150, days=12, timezone=request.param, today=TODAY)
    cache = tmp_path_factory.mktemp("days-cache")
    with Emulator(spec=spec, cache_dir=cache, threads=8) as emu:
        yield emu


@pytest.fixture
def env(project: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    project.faults.clear()
    db = tmp_path / "days.duckdb"
    for key, value in {
        "MP_USERNAME": project.username,
        "MP_SECRET": project.secret,
        "MP_PROJECT_ID": str(project.spec.project_id),
        "MP_BASE_URL": project.base_url,
        "MP_TIMEZONE": project.spec.timezone,
        "MP_DB_PATH": str(db),
    }.items():
        monkeypatch.setenv(key, value)
    return db


def mp(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def a_b(project: Any) -> tuple[date, date]:
    """Days with data on both sides, so leaking A-1 or B+1 would show."""
    dates = project.project.data_dates
    return dates[2], dates[-3]


def purchases_by_day(db: Path) -> dict[date, int]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "SELECT event_date, count(*) FROM events WHERE event_name = 'Purchase' GROUP BY 1"
        ).fetchall()
    return {d: int(n) for d, n in rows}


def live_purchases(project: Any, db: Path, first: date, last: date) -> dict[date, int]:
    with Workspace(credentials=creds_for(project), path=db) as ws:
        live = ws.segmentation(
            "Purchase", from_date=first.isoformat(), to_date=last.isoformat(), unit="day"
        )
    return {date.fromisoformat(k): int(v) for k, v in live.values["Purchase"].items() if v}


def test_event_date_matches_live_segmentation_and_nothing_outside(
    env: Path, project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = a_b(project)
    code, out, err = mp(capsys, "-q", "fetch", "events", "--from", str(first), "--to", str(last))
    assert code == 0, err
    result = json.loads(out)
    assert (result["from_date"], result["to_date"]) == (str(first), str(last))
    local = purchases_by_day(env)
    assert sorted(local) == [first + DAY * i for i in range((last - first).days + 1)]
    assert local == live_purchases(project, env, first, last)
    # Every stored event, exactly: the independent expectation over project days.
    expected = dedup(project_records(project, first, last))
    with Workspace(credentials=creds_for(project), path=env) as ws:
        assert table_counter(ws) == expected_counter(expected)
        _c, rows = ws.storage.execute_rows(
            "SELECT count(*) FILTER (WHERE event_date <> CAST(timezone(?, event_time) AS DATE)), "
            "min(event_date), max(event_date) FROM events",
            [project.spec.timezone],
        )
    assert rows == [(0, first, last)]
    assert result["table_rows"] == len(expected)


def test_inspect_tables_shows_project_days(
    env: Path, project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = a_b(project)
    assert mp(capsys, "-q", "fetch", "events", "--from", str(first), "--to", str(last))[0] == 0
    code, out, _err = mp(capsys, "inspect", "tables")
    assert code == 0
    (table,) = json.loads(out)
    assert table["days"] == f"{first}..{last}"
    assert table["timezone"] == project.spec.timezone
    assert (table["fetch_args"]["from_date"], table["fetch_args"]["to_date"]) == (
        str(first),
        str(last),
    )


def test_resume_after_a_partial_fetch_keeps_project_days(
    env: Path, project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = a_b(project)
    # workers=1 asks for windows in date order: the first export window gets every
    # failure, so its project day A (which also needs the next export day) is not held.
    project.faults.add("500", endpoint="export", count=3)
    try:
        with Workspace(credentials=creds_for(project), path=env) as ws:
            ws.api.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
            with pytest.raises(PartialFetchError) as info:
                ws.fetch_events(from_date=first, to_date=last, workers=1)
            assert len(info.value.failed_ranges) == 1
            partial = ws.storage.list_tables()[0]
            assert partial.complete is False
            assert partial.days == f"{first + DAY}..{last}"
            with pytest.raises(IncompleteDataError) as missing:
                ws.local.segmentation("Purchase", from_date=str(first), to_date=str(last))
            assert missing.value.details["missing_days"] == [str(first)]
    finally:
        project.faults.clear()
    # The same command resumes: only the failed window is fetched.
    code, out, err = mp(capsys, "-q", "fetch", "events", "--from", str(first), "--to", str(last))
    assert code == 0, err
    result = json.loads(out)
    assert result["windows_resumed"] == result["windows"]["total"] - 1
    assert purchases_by_day(env) == live_purchases(project, env, first, last)
    with Workspace(credentials=creds_for(project), path=env) as ws:
        assert table_counter(ws) == expected_counter(dedup(project_records(project, first, last)))
        assert ws.storage.list_tables()[0].days == f"{first}..{last}"
        local = ws.local.segmentation("Purchase", from_date=str(first), to_date=str(last))
        live = ws.segmentation("Purchase", from_date=str(first), to_date=str(last))
        assert local.values == live.values


@pytest.fixture
def pinned_now(project: Any, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The client's clock at a local hour of TODAY whose UTC date is another day
    (17:00 in Los Angeles is tomorrow in UTC, 08:00 in Tokyo is yesterday)."""
    from mixpanel_data._internal.services.fetch import service, windows

    zone = ZoneInfo(project.spec.timezone)
    hour = 17 if project.spec.timezone.startswith("America") else 8
    now = datetime.combine(TODAY, datetime.min.time(), zone).replace(hour=hour)
    assert now.astimezone(UTC).date() != TODAY

    def today(tz: str | None, *, now_: datetime | None = None, earliest: bool = False) -> date:
        return windows.project_today(tz, now=now.astimezone(UTC), earliest=earliest)

    monkeypatch.setattr(service, "project_today", today)
    return now


def test_update_extends_project_days_to_today(
    env: Path, project: Any, capsys: pytest.CaptureFixture[str], pinned_now: datetime
) -> None:
    first, last = a_b(project)
    assert mp(capsys, "-q", "fetch", "events", "--from", str(first), "--to", str(last))[0] == 0
    code, out, err = mp(capsys, "-q", "fetch", "events", "--update", "--lookback-days", "1")
    assert code == 0, err
    assert json.loads(out)["to_date"] == str(TODAY)
    zone = ZoneInfo(project.spec.timezone)
    # Today's project day is held only when its export days are all <= today (east of UTC).
    end_utc = datetime.combine(TODAY + DAY, datetime.min.time(), zone).astimezone(UTC)
    held_last = TODAY if (end_utc - timedelta(microseconds=1)).date() <= TODAY else TODAY - DAY
    with Workspace(credentials=creds_for(project), path=env) as ws:
        table = ws.storage.list_tables()[0]
        assert table.days == f"{first}..{held_last}"
        expected = dedup(project_records(project, first, TODAY))
        assert table_counter(ws) == expected_counter(expected)
        live_last = TODAY - DAY
        local = ws.local.segmentation("Purchase", from_date=str(first), to_date=str(live_last))
        live = ws.segmentation("Purchase", from_date=str(first), to_date=str(live_last))
        assert local.values == live.values
        if held_last < TODAY:
            with pytest.raises(IncompleteDataError) as info:
                ws.local.segmentation("Purchase", from_date=str(first), to_date=str(TODAY))
            assert str(TODAY) in str(info.value)


def test_append_of_neighbouring_days_shares_their_export_day_once(env: Path, project: Any) -> None:
    first, last = a_b(project)
    middle = first + DAY * 4
    with Workspace(credentials=creds_for(project), path=env) as ws:
        ws.fetch_events(from_date=first, to_date=middle)
        again = ws.fetch_events(from_date=middle + DAY, to_date=last, append=True)
        assert again.rows_inserted == len(dedup(project_records(project, middle + DAY, last)))
        assert table_counter(ws) == expected_counter(dedup(project_records(project, first, last)))
        assert ws.storage.list_tables()[0].days == f"{first}..{last}"
    assert purchases_by_day(env) == live_purchases(project, env, first, last)


def test_lake_partitions_are_project_days(env: Path, project: Any, tmp_path: Path) -> None:
    first, last = a_b(project)
    lake = tmp_path / "lake"
    with Workspace(credentials=creds_for(project), path=env) as ws:
        ws.fetch_events(from_date=first, to_date=last, workers=1, to_parquet=lake)
        exported = tmp_path / "exported"
        ws.export_parquet("events", exported)
    import duckdb

    for root in (lake, exported):
        with duckdb.connect() as conn:
            rows = conn.execute(
                "SELECT date, event_date, count(*) FROM read_parquet(?, hive_partitioning = true) "
                "GROUP BY ALL",
                [str(root / "events" / "**" / "*.parquet")],
            ).fetchall()
        assert all(str(d) == str(e) for d, e, _n in rows), root
        per_day = Counter({e: n for _d, e, n in rows})
        with Workspace(credentials=creds_for(project), path=env) as ws:
            _c, table = ws.storage.execute_rows(
                "SELECT event_date, count(*) FROM events GROUP BY 1"
            )
        assert per_day == Counter(dict(table)), root


def test_a_table_made_before_event_date_gets_it_on_the_next_fetch(env: Path, project: Any) -> None:
    first, last = a_b(project)
    with Workspace(credentials=creds_for(project), path=env) as ws:
        ws.fetch_events(from_date=first, to_date=last - DAY * 2)
        ws.storage.execute_rows("ALTER TABLE events DROP COLUMN event_date", write=True)
        ws.fetch_events(from_date=last - DAY, to_date=last, append=True)
        _c, rows = ws.storage.execute_rows(
            "SELECT count(*), count(*) FILTER (WHERE event_date = "
            "CAST(timezone(?, event_time) AS DATE)) FROM events",
            [project.spec.timezone],
        )
    total, right = rows[0]
    assert total == right == len(dedup(project_records(project, first, last)))


def _days_in(first: date, last: date) -> list[date]:
    return [first + DAY * i for i in range((last - first).days + 1)]
