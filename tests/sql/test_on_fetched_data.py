"""Introspection on a table really fetched from the emulator, against its raw export."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from mixpanel_data import Workspace


def raw_deduplicated(emulator: Any, days: list[Any]) -> list[dict[str, Any]]:
    """The export's records of these project days (read from the export days around
    them), one per (event, distinct_id, time, $insert_id), latest kept."""
    zone = ZoneInfo(emulator.spec.timezone)
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    around = [days[0] - timedelta(days=1), *days, days[-1] + timedelta(days=1)]
    for day in around:
        for line in emulator.project.export_day_path(day).read_bytes().splitlines():
            record = orjson.loads(line)
            p = record["properties"]
            if datetime.fromtimestamp(p["time"], UTC).astimezone(zone).date() not in days:
                continue
            key = (
                record["event"],
                p["distinct_id"],
                p["time"],
                p.get("$insert_id") or hashlib.sha256(line).hexdigest(),
            )
            seen = best.get(key)
            if seen is None or (
                p["mp_processing_time_ms"] > seen["properties"]["mp_processing_time_ms"]
            ):
                best[key] = record
    return list(best.values())


@pytest.fixture
def fetched(emulator, emulator_creds, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    days = emulator.project.data_dates[-4:]
    db = tmp_path / "fetched.duckdb"
    with Workspace(credentials=emulator_creds, path=db) as ws:
        ws.fetch_events("events", from_date=days[0], to_date=days[-1])
    return db, raw_deduplicated(emulator, days)


def test_breakdown_keys_and_columns_match_the_export(fetched, run_mp) -> None:
    db, records = fetched
    with Workspace.open(db) as ws:
        breakdown = ws.event_breakdown("events")
        keys = ws.property_keys("events")
        price = ws.column_stats("events", "properties->>'$.price'")
        tables = ws.tables()
    counts = Counter(r["event"] for r in records)
    assert {e.event_name: e.count for e in breakdown.events} == dict(counts)
    assert breakdown.total_users == len({r["properties"]["distinct_id"] for r in records})
    # Every key, with case variants ("Plan" and "plan") and unicode-bearing ones, is kept.
    assert keys == sorted({k for r in records for k in r["properties"]})
    prices = [r["properties"]["price"] for r in records if "price" in r["properties"]]
    assert any(isinstance(p, str) for p in prices)  # the emulator's numeric strings
    assert price.numeric is not None
    assert price.numeric.count == len(prices)
    assert price.numeric.sum == pytest.approx(sum(float(p) for p in prices))
    assert [(t.name, t.kind, t.row_count, t.complete) for t in tables] == [
        ("events", "events", len(records), True)
    ]
    r = run_mp("--db", str(db), "sql", "SELECT count(*) AS n FROM events")
    assert json.loads(r.stdout) == [{"n": len(records)}]
