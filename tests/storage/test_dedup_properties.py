"""Hypothesis: the bulk dedup (scan + insert) keeps exactly what Mixpanel's rule keeps.

Lines are drawn from tiny pools so keys collide often: shared and missing
``$insert_id``, missing, numeric and null ``distinct_id``, equal and missing
``mp_processing_time_ms``, identical resends. The reference is written out here
in plain Python. A second run swaps the scan's key hash for a deliberately weak
one (three values), so hash collisions are common and must never merge two
different events.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpanel_data._internal.services.fetch import ingest
from mixpanel_data._internal.services.fetch.ingest import StagedFile, commit_events, scan_duplicates
from mixpanel_data._internal.services.fetch.windows import DateWindow
from mixpanel_data._internal.storage import engine as storage_mod
from mixpanel_data._internal.storage.engine import StorageEngine

MISSING = object()
WINDOW = DateWindow(date(2023, 11, 14), date(2023, 11, 14))  # the lines' day

records = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(["A", "B"]),
            "did": st.sampled_from(["u1", "u2", 7, None, MISSING]),
            "time": st.sampled_from([1_700_000_000, 1_700_000_001]),
            "iid": st.sampled_from(["x", "y", MISSING]),
            "pt": st.sampled_from([1, 2, 3, MISSING]),
            "v": st.integers(min_value=0, max_value=2),
        }
    ),
    min_size=1,
    max_size=40,
)


def _line(rec: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {"time": rec["time"], "v": rec["v"]}
    names = {"did": "distinct_id", "iid": "$insert_id", "pt": "mp_processing_time_ms"}
    for key, name in names.items():
        if rec[key] is not MISSING:
            props[name] = rec[key]
    return {"event": rec["event"], "properties": props}


def _key(line: dict[str, Any]) -> tuple[Any, ...]:
    p = line["properties"]
    if "$insert_id" not in p:  # keyed by content: an identical resend is one event
        return ("content", line["event"], json.dumps(p, sort_keys=True))
    did = p.get("distinct_id")
    return ("id", line["event"], None if did is None else str(did), p["time"], p["$insert_id"])


def _expected(lines: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[str]]:
    """Per key, the properties texts that may win: the newest processing time."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        groups[_key(line)].append(line["properties"])
    out = {}
    for key, props in groups.items():
        pts = [p.get("mp_processing_time_ms", -1) for p in props]
        newest = [p for p, pt in zip(props, pts, strict=True) if pt == max(pts)]
        out[key] = [json.dumps(p, sort_keys=True) for p in newest]
    return out


def _fetch_locally(lines: list[dict[str, Any]], folder: Path) -> tuple[list[dict[str, Any]], Any]:
    staged_path = folder / "day.jsonl"
    staged_path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    staged = scan_duplicates(
        StagedFile(window=WINDOW, path=staged_path, size=staged_path.stat().st_size, attempts=1),
        legacy_tz=None,
    )
    engine = StorageEngine(folder / "t.duckdb")
    try:
        with engine.writer() as conn:
            conn.execute("BEGIN TRANSACTION")
            conn.execute(storage_mod.create_table_sql("events", "events"))
            counts = commit_events(
                conn, table="events", staged=[staged], dedup=True, merge=False, legacy_tz=None
            )
            conn.execute("COMMIT")
        _cols, rows = engine.execute_rows(
            "SELECT event_name, distinct_id, epoch(event_time)::BIGINT, insert_id, properties "
            "FROM events"
        )
    finally:
        engine.close()
    stored = [{"event": r[0], "properties": json.loads(r[4])} for r in rows]
    for r, line in zip(rows, stored, strict=True):
        p = line["properties"]
        assert r[1] == (None if p.get("distinct_id") is None else str(p["distinct_id"]))
        assert r[2] == p["time"]
        if "$insert_id" in p:
            assert r[3] == p["$insert_id"]
    return stored, counts


def _check(lines: list[dict[str, Any]]) -> None:
    expected = _expected(lines)
    with tempfile.TemporaryDirectory() as folder:
        stored, counts = _fetch_locally(lines, Path(folder))
    keys = [_key(line) for line in stored]
    assert sorted(keys, key=repr) == sorted(expected, key=repr)  # each key exactly once
    for line, key in zip(stored, keys, strict=True):
        assert json.dumps(line["properties"], sort_keys=True) in expected[key]
    assert counts.rows_inserted == len(expected)
    assert counts.duplicates == len(lines) - len(expected)
    assert counts.malformed == 0


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(recs=records)
def test_bulk_dedup_equals_mixpanels_rule(recs: list[dict[str, Any]]) -> None:
    _check([_line(r) for r in recs])


@SETTINGS
@given(recs=records)
def test_hash_collisions_never_merge_different_events(
    recs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "_key_hash", lambda ev, did, iid: f"(hash({ev}) % 3)")
    _check([_line(r) for r in recs])


def test_a_collision_is_detected_and_left_to_the_exact_fix_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two events sharing a weak hash are flagged, not treated as one key."""
    recs = [
        {"event": "A", "did": "u1", "time": 1_700_000_000, "iid": "x", "pt": 1, "v": 0},
        {"event": "A", "did": "u1", "time": 1_700_000_000, "iid": "x", "pt": 2, "v": 0},
        {"event": "A", "did": "u2", "time": 1_700_000_000, "iid": "y", "pt": 1, "v": 0},
    ]
    path = tmp_path / "day.jsonl"
    path.write_text("".join(json.dumps(_line(r)) + "\n" for r in recs))

    def scan() -> StagedFile:
        staged = StagedFile(window=WINDOW, path=path, size=path.stat().st_size, attempts=1)
        return scan_duplicates(staged, legacy_tz=None)

    exact = scan()
    assert exact.needs_fix is False
    assert exact.losers is not None
    assert exact.losers.exists()
    exact.losers.unlink()
    monkeypatch.setattr(ingest, "_key_hash", lambda ev, did, iid: "0::UBIGINT")
    weak = scan()
    assert weak.needs_fix is True  # the check hash saw two keys in one group
    assert weak.losers is not None
    assert not weak.losers.exists()
    _check([_line(r) for r in recs])
