"""ws.sql, ws.sql_scalar and ws.sql_rows on a real DuckDB file, with bound parameters."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpanel_data import Workspace
from mixpanel_data.exceptions import (
    DatabaseNotFoundError,
    TableNotFoundError,
    ValidationError,
)


def test_sql_dataframe_with_positional_parameters(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        df = ws.sql(
            "SELECT distinct_id, count(*) AS n FROM events WHERE event_name = ? "
            "GROUP BY 1 ORDER BY n DESC, distinct_id",
            ["Login"],
        )
    expected = Counter(e["distinct_id"] for e in local_db.events if e["event_name"] == "Login")
    got = dict(zip(df["distinct_id"], df["n"].astype(int), strict=True))
    assert got == dict(expected)
    assert list(df["n"]) == sorted(df["n"], reverse=True)


def test_sql_named_parameters_and_timestamps_in_utc(local_db) -> None:
    cutoff = datetime(2024, 3, 8, tzinfo=UTC)
    with Workspace.open(local_db.path) as ws:
        n = ws.sql_scalar(
            "SELECT count(*) FROM events WHERE event_time >= $cutoff AND distinct_id = $user",
            {"cutoff": cutoff, "user": "user-03"},
        )
        first = ws.sql_scalar("SELECT min(event_time) FROM events")
    assert n == sum(
        1 for e in local_db.events if e["event_time"] >= cutoff and e["distinct_id"] == "user-03"
    )
    assert first == min(e["event_time"] for e in local_db.events)
    assert first.utcoffset().total_seconds() == 0


def test_sql_rows_columns_types_rows(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        result = ws.sql_rows(
            "SELECT event_name, event_time, properties FROM events "
            "WHERE event_name = 'Purchase' ORDER BY event_time, insert_id"
        )
    assert result.columns == ("event_name", "event_time", "properties")
    assert result.types == ("VARCHAR", "TIMESTAMP WITH TIME ZONE", "JSON")
    expected = sorted(local_db.purchases, key=lambda e: (e["event_time"], e["insert_id"] or ""))
    assert len(result) == len(expected)
    assert [orjson.loads(r[2]) for r in result.rows] == [e["properties"] for e in expected]
    records = result.records()
    assert records[0]["event_time"] == expected[0]["event_time"]
    as_dict = result.to_dict()
    assert as_dict["rows"][0][1] == expected[0]["event_time"].isoformat()
    orjson.dumps(as_dict)  # JSON-ready


def test_scalar_of_empty_result_is_none(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        assert ws.sql_scalar("SELECT 1 FROM events WHERE false") is None


def test_missing_table_in_query_is_table_not_found(local_db) -> None:
    with Workspace.open(local_db.path) as ws, pytest.raises(TableNotFoundError) as info:
        ws.sql("SELECT * FROM evnets")
    assert info.value.table == "evnets"
    assert info.value.exit_code == 4


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM events", "nope"),
        ("SELECT 'x'::INTEGER", "Conversion"),
        ("   ", "empty SQL"),
    ],
)
def test_bad_sql_is_a_validation_error(local_db, query: str, fragment: str) -> None:
    with Workspace.open(local_db.path) as ws, pytest.raises(ValidationError) as info:
        ws.sql_rows(query)
    assert fragment in info.value.message
    assert info.value.exit_code == 3


def test_read_only_workspace_refuses_writes_and_changes_nothing(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        with pytest.raises(ValidationError, match="read-only"):
            ws.sql("DROP TABLE events")
        assert ws.sql_scalar("SELECT count(*) FROM events") == len(local_db.events)


def test_read_write_workspace_can_create_tables_with_sql(local_db) -> None:
    with Workspace.open(local_db.path, read_only=False) as ws:
        ws.sql("CREATE TABLE logins AS SELECT * FROM events WHERE event_name = $e", {"e": "Login"})
        n = ws.sql_scalar("SELECT count(*) FROM logins")
        kinds = {t.name: t.kind for t in ws.tables()}
    assert n == sum(1 for e in local_db.events if e["event_name"] == "Login")
    assert kinds["logins"] == "events"  # events-shaped, though made with SQL


def test_missing_database_is_database_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    with Workspace.open(missing) as ws, pytest.raises(DatabaseNotFoundError) as info:
        ws.sql("SELECT 1")
    assert info.value.exit_code == 4
    assert not missing.exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=40))
def test_bound_parameters_are_never_sql(local_db, value: str) -> None:
    """Any text, quotes and semicolons included, is a value: it comes back unchanged."""
    with Workspace.open(local_db.path) as ws:
        echoed = ws.sql_scalar("SELECT ?::VARCHAR", [value])
        matches = ws.sql_scalar("SELECT count(*) FROM events WHERE event_name = ?", [value])
    assert echoed == value
    assert matches == sum(1 for e in local_db.events if e["event_name"] == value)


def test_a_statement_interrupted_by_ctrl_c_is_a_keyboard_interrupt(tmp_path: Path) -> None:
    """DuckDB's interruption (a Ctrl-C lands inside a statement or its fetch) is a
    KeyboardInterrupt, so `mp` exits 130 with ``Interrupted.``, never a storage error or
    an unexpected one."""
    import threading

    import duckdb

    from mixpanel_data._internal.services.sql import translate_duckdb_errors

    conn = duckdb.connect(str(tmp_path / "i.duckdb"))
    done = threading.Event()

    def interrupt() -> None:
        while not done.wait(0.05):  # until the statement has ended
            conn.interrupt()

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt), translate_duckdb_errors(conn, "q", read_only=True):
            conn.execute("SELECT count(*) FROM range(10000000000000) a").fetchall()
    finally:
        done.set()
        thread.join(timeout=60)
    # The binding's fetch-time form, a RuntimeError of that fixed text; others pass.
    with pytest.raises(KeyboardInterrupt), translate_duckdb_errors(conn, "q", read_only=True):
        raise RuntimeError("Query interrupted")
    with (
        pytest.raises(RuntimeError, match="other"),
        translate_duckdb_errors(conn, "q", read_only=True),
    ):
        raise RuntimeError("other")
    assert conn.execute("SELECT 7").fetchone() == (7,)  # the connection still works
