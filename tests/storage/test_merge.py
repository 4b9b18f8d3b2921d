"""The merge of new rows into stored days (``--update``, overlapping ``--append``).

Hypothesis: committing lines over a table that already holds other lines of the
same days must leave exactly the table one clean commit of all the lines gives
(every column, properties text included), with the merge cut into many time
slices and with a weak key hash that makes collisions common. Plus: errors raised
inside the merge's transaction surface as themselves, never as the cleanup's
"transaction is aborted".
"""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpanel_data._internal.services.fetch import ingest
from mixpanel_data._internal.services.fetch.ingest import StagedFile, commit_events, scan_duplicates
from mixpanel_data._internal.services.fetch.windows import DateWindow
from mixpanel_data._internal.storage import engine as storage_mod
from mixpanel_data._internal.storage.safety import cleanup, rollback_quietly

if TYPE_CHECKING:
    import duckdb

MISSING = object()
WINDOW = DateWindow(date(2023, 11, 14), date(2023, 11, 14))
T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC: the pool spans three hours

lines_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(["A", "B"]),
            "did": st.sampled_from(["u1", "u2", None, MISSING]),
            "time": st.sampled_from([T0, T0 + 1, T0 + 3600, T0 + 7300]),
            "iid": st.sampled_from(["x", "y", MISSING]),
            "pt": st.sampled_from([1, 2, MISSING]),
            "v": st.integers(min_value=0, max_value=1),
        }
    ),
    min_size=1,
    max_size=30,
)


def _line(rec: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {"time": rec["time"], "v": rec["v"]}
    names = {"did": "distinct_id", "iid": "$insert_id", "pt": "mp_processing_time_ms"}
    for key, name in names.items():
        if rec[key] is not MISSING:
            props[name] = rec[key]
    return {"event": rec["event"], "properties": props}


def _commit(
    conn: duckdb.DuckDBPyConnection, path: Path, lines: list[Any], *, merge: bool, sep: str = "\n"
) -> Any:
    path.write_text("".join(json.dumps(x) + sep for x in lines))
    staged = scan_duplicates(
        StagedFile(window=WINDOW, path=path, size=path.stat().st_size, attempts=1), legacy_tz=None
    )
    conn.execute("BEGIN TRANSACTION")
    counts = commit_events(
        conn, table="events", staged=[staged], dedup=True, merge=merge, legacy_tz=None
    )
    conn.execute("COMMIT")
    return counts


def _rows(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return sorted(
        conn.execute(
            "SELECT event_name, distinct_id, epoch_us(event_time), insert_id, "
            "properties::VARCHAR FROM events"
        ).fetchall(),
        key=repr,
    )


def _table(folder: Path, name: str) -> duckdb.DuckDBPyConnection:
    import duckdb

    conn = duckdb.connect(str(folder / f"{name}.duckdb"))
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(storage_mod.create_table_sql("events", "events"))
    return conn


def _check(stored: list[Any], new: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clean = _table(folder, "clean")
        _commit(clean, folder / "all.jsonl", stored + new, merge=False)
        merged = _table(folder, "merged")
        first = _commit(merged, folder / "stored.jsonl", stored, merge=False)
        second = _commit(merged, folder / "new.jsonl", new, merge=True)
        assert _rows(merged) == _rows(clean)
        # The counts add up: rows stored, and every other line counted as a duplicate.
        assert first.rows_inserted + second.rows_inserted == len(_rows(clean))
        total = first.rows_inserted + first.duplicates + second.rows_inserted + second.duplicates
        assert total == len(stored) + len(new)
        clean.close()
        merged.close()


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(stored=lines_strategy, new=lines_strategy, resend=st.booleans())
def test_merge_equals_one_clean_commit_of_all_lines(
    stored: list[dict[str, Any]],
    new: list[dict[str, Any]],
    resend: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "MERGE_SLICE_ROWS", 2)  # many slices, hours packed or split
    monkeypatch.setattr(ingest, "SKIP_STORED_ROWS", 3)  # some copies skipped, others merged
    old = [_line(r) for r in stored]
    # A re-fetch resends the stored lines as they are, plus what changed.
    fresh = [_line(r) for r in new] + (old if resend else [])
    _check(old, fresh)


@SETTINGS
@given(stored=lines_strategy, new=lines_strategy)
def test_merge_never_merges_colliding_keys(
    stored: list[dict[str, Any]], new: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "_key_hash", lambda ev, did, iid: f"(hash({ev}) % 3)")
    old = [_line(r) for r in stored]
    _check(old, [_line(r) for r in new] + old)


def test_a_refetched_day_keeps_its_rows_and_counts_them_as_duplicates(tmp_path: Path) -> None:
    lines = [
        _line({"event": "A", "did": "u1", "time": T0 + i, "iid": f"i{i}", "pt": 1, "v": 0})
        for i in range(50)
    ]
    conn = _table(tmp_path, "t")
    _commit(conn, tmp_path / "a.jsonl", lines, merge=False)
    before = _rows(conn)
    again = _commit(conn, tmp_path / "b.jsonl", lines, merge=True)
    assert _rows(conn) == before
    assert (again.rows_inserted, again.duplicates) == (0, 50)
    # Blank lines are no rows (read_json skips them), so no duplicates either.
    spaced = _commit(conn, tmp_path / "c.jsonl", lines[:10], merge=True, sep="\n\n")
    assert _rows(conn) == before
    assert (spaced.rows_inserted, spaced.duplicates) == (0, 10)


# -- errors inside the transaction -----------------------------------------------------


def test_a_failing_cleanup_does_not_hide_the_error(tmp_path: Path) -> None:
    """The old pattern (``finally: conn.execute("DROP ...")``) raised DuckDB's
    "transaction is aborted" over the real error; `cleanup` lets the real one out."""
    import duckdb

    def old_pattern() -> None:
        try:
            conn.execute("SELECT CAST('not a number' AS INTEGER)")
        finally:
            conn.execute("DROP TABLE IF EXISTS scratch")

    conn = duckdb.connect(str(tmp_path / "c.duckdb"))
    conn.execute("BEGIN TRANSACTION")
    conn.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    with pytest.raises(duckdb.TransactionException, match="aborted"):
        old_pattern()
    rollback_quietly(conn)

    conn.execute("BEGIN TRANSACTION")
    conn.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    with (
        pytest.raises(duckdb.ConversionException, match="not a number"),
        cleanup(conn, "DROP TABLE IF EXISTS scratch"),
    ):
        conn.execute("SELECT CAST('not a number' AS INTEGER)")
    rollback_quietly(conn)
    rollback_quietly(conn)  # no transaction left: still quiet
    # After a success the cleanup runs (and its own errors are not swallowed).
    with cleanup(conn, "DROP TABLE IF EXISTS scratch"):
        conn.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    assert conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scratch'"
    ).fetchone() == (0,)
    with pytest.raises(duckdb.CatalogException), cleanup(conn, "DROP TABLE missing"):
        pass
    conn.close()


def test_out_of_memory_inside_a_merging_commit_surfaces_as_itself(tmp_path: Path) -> None:
    """The commit's own failure (here its pool) reaches the caller, not the cleanup's."""
    import duckdb

    lines = [
        _line({"event": "A", "did": f"u{i}", "time": T0 + i, "iid": f"i{i}", "pt": 1, "v": 0})
        for i in range(20_000)
    ]
    conn = _table(tmp_path, "t")
    _commit(conn, tmp_path / "a.jsonl", lines, merge=False)
    before = _rows(conn)
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    staged = scan_duplicates(
        StagedFile(window=WINDOW, path=path, size=path.stat().st_size, attempts=1), legacy_tz=None
    )
    conn.execute("SET memory_limit = '1MB'")
    conn.execute("BEGIN TRANSACTION")
    with pytest.raises(duckdb.OutOfMemoryException):
        commit_events(conn, table="events", staged=[staged], dedup=True, merge=True, legacy_tz=None)
    rollback_quietly(conn)
    conn.execute("RESET memory_limit")
    assert _rows(conn) == before
    conn.close()
