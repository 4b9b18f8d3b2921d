"""Fixtures for fetch tests: credentials for the shared emulator, and the expected rows.

The expected rows are computed independently of the product code: plain Python
over the emulator's raw export day files (the bytes export serves), with
Mixpanel's dedup rule written out by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from mixpanel_data._internal.config import Credentials
from mixpanel_data._internal.http.client import RetryPolicy
from mixpanel_data.workspace import Workspace


def creds_for(emu: Any) -> Credentials:
    """Credentials pointing at an Emulator."""
    return Credentials(
        username=emu.username,
        secret=SecretStr(emu.secret),
        project_id=str(emu.spec.project_id),
        base_url=emu.base_url,
        timezone=emu.spec.timezone,
    )


@pytest.fixture
def creds(emulator: Any) -> Iterator[Credentials]:
    emulator.faults.clear()
    yield creds_for(emulator)
    emulator.faults.clear()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data.duckdb"


@pytest.fixture
def ws(creds: Credentials, db_path: Path) -> Iterator[Workspace]:
    with Workspace(credentials=creds, path=db_path) as workspace:
        # Retries stay real but quick, so failure tests finish fast.
        workspace.api.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
        yield workspace


@pytest.fixture
def cli_env(emulator: Any, monkeypatch: pytest.MonkeyPatch, db_path: Path) -> Path:
    """Environment so `mp` (in-process or a subprocess) talks to the emulator."""
    monkeypatch.setenv("MP_USERNAME", emulator.username)
    monkeypatch.setenv("MP_SECRET", emulator.secret)
    monkeypatch.setenv("MP_PROJECT_ID", str(emulator.spec.project_id))
    monkeypatch.setenv("MP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MP_TIMEZONE", emulator.spec.timezone)
    monkeypatch.setenv("MP_DB_PATH", str(db_path))
    return db_path


def raw_records(emu: Any, days: Iterable[date]) -> list[dict[str, Any]]:
    """Every export record of these days, parsed with the stdlib json module."""
    out = []
    for day in days:
        for line in emu.project.export_day_path(day).read_bytes().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def project_records(emu: Any, first: date, last: date) -> list[dict[str, Any]]:
    """Every export record whose day in the project timezone is in ``first..last``.

    Reads the export days around them (UTC days, contract §3.5) and keeps the events
    by converting their epoch ``time`` with the stdlib, as Mixpanel's reports do.
    """
    zone = ZoneInfo(emu.spec.timezone)
    span = [first + timedelta(days=i) for i in range(-1, (last - first).days + 2)]
    return [
        r
        for r in raw_records(emu, span)
        if first
        <= datetime.fromtimestamp(r["properties"]["time"], UTC).astimezone(zone).date()
        <= last
    ]


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def canonical(props: dict[str, Any]) -> str:
    return json.dumps(props, sort_keys=True, ensure_ascii=False)


def dedup(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mixpanel's rule: one event per (event, distinct_id, time, $insert_id), newest
    mp_processing_time_ms wins; events without $insert_id are kept once per content."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in records:
        p = rec["properties"]
        if "$insert_id" in p:
            key: tuple[Any, ...] = (
                "id",
                rec["event"],
                _s(p.get("distinct_id")),
                p["time"],
                p["$insert_id"],
            )
        else:
            key = ("content", rec["event"], canonical(p))
        old = best.get(key)
        if old is None or p.get("mp_processing_time_ms", -1) > old["properties"].get(
            "mp_processing_time_ms", -1
        ):
            best[key] = rec
    return list(best.values())


def expected_counter(records: Iterable[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (
            r["event"],
            _s(r["properties"].get("distinct_id")),
            int(r["properties"]["time"]),
            canonical(r["properties"]),
        )
        for r in records
    )


def table_counter(ws: Workspace, table: str = "events") -> Counter[tuple[Any, ...]]:
    """The stored table in the same shape (properties parsed back from DuckDB's JSON)."""
    sql = "SELECT event_name, distinct_id, epoch(event_time)::BIGINT, properties FROM "
    _cols, rows = ws.storage.execute_rows(sql + f'"{table}"')
    return Counter((e, d, t, canonical(json.loads(p))) for e, d, t, p in rows)
