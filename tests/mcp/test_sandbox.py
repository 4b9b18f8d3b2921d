"""The agent SQL sandbox: real DuckDB files, each refusal proven, limits enforced."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpanel_data._internal.services.sandbox import SandboxLimits, SQLSandbox
from mixpanel_data.exceptions import DatabaseNotFoundError, ValidationError
from mixpanel_data.mcp.payloads import dumps, json_value, table


@pytest.fixture
def db(tmp_path: Path) -> Path:
    import duckdb

    path = tmp_path / "local.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(
        "CREATE TABLE events AS SELECT 'e' || (range % 3) AS event_name, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(range * 3600) AS event_time, "
        "'u' || (range % 7) AS distinct_id, '{\"n\": ' || range || '}' AS properties "
        "FROM range(250)"
    )
    conn.close()
    return path


def _count(path: Path) -> int:
    import duckdb

    conn = duckdb.connect(str(path), read_only=True)
    try:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        tables = conn.execute("SELECT count(*) FROM information_schema.tables").fetchone()
    finally:
        conn.close()
    assert tables == (1,)
    return int(row[0]) if row else -1


def test_select_returns_capped_rows_and_total(db: Path) -> None:
    result = SQLSandbox(db, limits=SandboxLimits(max_rows=100)).run(
        "SELECT distinct_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    )
    assert result.columns == ("distinct_id", "n")
    assert result.types == ("VARCHAR", "BIGINT")
    expected = {f"u{i}": len([r for r in range(250) if r % 7 == i]) for i in range(7)}
    assert dict(result.rows) == expected
    assert result.total_rows == 7
    assert not result.truncated

    big = SQLSandbox(db).run("SELECT * FROM events ORDER BY event_time", max_rows=10)
    assert big.total_rows == 250
    assert len(big.rows) == 10
    assert big.truncated
    assert big.rows[0][1] == datetime(2024, 1, 1, tzinfo=UTC)
    assert big.rows[9][3] == '{"n": 9}'


def test_duplicate_column_names_keep_their_values(db: Path) -> None:
    result = SQLSandbox(db).run("SELECT 1 AS a, 2 AS a")
    assert result.columns == ("a", "a")
    assert result.rows == ((1, 2),)


def test_describe_show_summarize_and_cte_are_selects(db: Path) -> None:
    sandbox = SQLSandbox(db)
    assert [r[0] for r in sandbox.run("DESCRIBE events").rows] == [
        "event_name",
        "event_time",
        "distinct_id",
        "properties",
    ]
    assert sandbox.run("SHOW TABLES").rows == (("events",),)
    assert sandbox.run("WITH t AS (SELECT 41 AS x) SELECT x + 1 FROM t").rows == ((42,),)
    assert sandbox.run("FROM events SELECT count(*)").rows == ((250,),)


def test_session_time_zone_is_utc(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        rows = (
            SQLSandbox(db)
            .run("SELECT current_setting('TimeZone'), min(event_time)::DATE FROM events")
            .rows
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert rows[0][0] == "UTC"
    assert str(rows[0][1]) == "2024-01-01"


# Reading files, writing, attaching, extensions and settings: each refused, with a message.
REFUSED = {
    "SELECT * FROM read_csv('/etc/passwd')": "cannot read or write files",
    "SELECT * FROM read_text('/etc/passwd')": "cannot read or write files",
    "SELECT * FROM read_blob('/etc/hostname')": "cannot read or write files",
    "SELECT * FROM glob('/etc/*')": "cannot read or write files",
    "SELECT * FROM '/etc/passwd'": "Table with name /etc/passwd does not exist",
    "SELECT * FROM '/etc/passwd.csv'": "cannot read or write files",
    "SELECT * FROM read_parquet('x.parquet')": "cannot read or write files",
    "COPY events TO '/tmp/stolen.csv'": "only read-only SELECT",
    "ATTACH '/tmp/other.duckdb' AS other": "only read-only SELECT",
    "INSTALL httpfs": "only read-only SELECT",
    "LOAD httpfs": "only read-only SELECT",
    "SET memory_limit = '100GB'": "only read-only SELECT",
    "SET enable_external_access = true": "only read-only SELECT",
    "RESET lock_configuration": "only read-only SELECT",
    "PRAGMA threads = 64": "only read-only SELECT",
    "CREATE TABLE x AS SELECT 1": "only read-only SELECT",
    "CREATE TEMP TABLE x AS SELECT 1": "only read-only SELECT",
    "INSERT INTO events SELECT * FROM events": "only read-only SELECT",
    "UPDATE events SET distinct_id = 'x'": "only read-only SELECT",
    "DELETE FROM events": "only read-only SELECT",
    "DROP TABLE events": "only read-only SELECT",
    "EXPORT DATABASE '/tmp/dump'": "only read-only SELECT",
    "CALL pragma_version()": "only read-only SELECT",
    "SELECT 1; DROP TABLE events": "exactly one SQL statement",
    "": "empty SQL query",
    "SELEC 1": "invalid SQL",
}


@pytest.mark.parametrize(("query", "message"), list(REFUSED.items()))
def test_refused_with_a_clear_message(db: Path, query: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        SQLSandbox(db).run(query)
    assert message in info.value.message
    assert "\n" not in info.value.message
    assert _count(db) == 250
    assert not Path("/tmp/stolen.csv").exists()


def test_the_engine_itself_refuses_what_the_type_check_would(db: Path) -> None:
    """Behind the statement check, the connection's own settings block the same things."""
    import duckdb

    conn = SQLSandbox(db).connect()
    try:
        settings_rows = conn.sql(
            "SELECT current_setting('enable_external_access'), "
            "current_setting('lock_configuration'), current_setting('autoload_known_extensions')"
        ).fetchall()
        assert settings_rows == [(False, True, False)]
        locked = "the configuration has been locked"
        no_files = "file system operations are disabled"
        read_only = "attached in read-only mode"
        for statement, error, text in [
            ("SET enable_external_access = true", duckdb.InvalidInputException, locked),
            ("SET memory_limit = '100GB'", duckdb.InvalidInputException, locked),
            ("SET lock_configuration = false", duckdb.InvalidInputException, locked),
            ("COPY events TO '/tmp/stolen.csv'", duckdb.PermissionException, no_files),
            ("ATTACH '/tmp/other.duckdb'", duckdb.PermissionException, no_files),
            ("LOAD httpfs", duckdb.PermissionException, "disabled through configuration"),
            (
                "INSERT INTO events SELECT 1, now(), 'x', '{}'",
                duckdb.InvalidInputException,
                read_only,
            ),
            ("DROP TABLE events", duckdb.InvalidInputException, read_only),
        ]:
            with pytest.raises(error, match=text):
                conn.execute(statement)
    finally:
        conn.close()
    assert _count(db) == 250


def test_time_limit_interrupts_the_query(db: Path) -> None:
    sandbox = SQLSandbox(db, limits=SandboxLimits(timeout=0.3, threads=1))
    started = time.monotonic()
    with pytest.raises(ValidationError, match=r"0\.3 s time limit"):
        sandbox.run("SELECT count(*) FROM range(1000000000000) a WHERE a % 7 = 3")
    assert time.monotonic() - started < 5
    # The file is free again afterwards.
    assert sandbox.run("SELECT count(*) FROM events").rows == ((250,),)


def test_memory_limit_is_enforced(db: Path) -> None:
    sandbox = SQLSandbox(db, limits=SandboxLimits(memory_limit="32MB", threads=1))
    with pytest.raises(ValidationError, match="32MB memory limit"):
        sandbox.run("SELECT list(range) FROM range(50000000)")
    assert sandbox.run("SELECT current_setting('memory_limit')").rows[0][0].endswith("MiB")


def test_missing_database_and_memory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseNotFoundError):
        SQLSandbox(tmp_path / "none.duckdb").run("SELECT 1")
    assert not (tmp_path / "none.duckdb").exists()
    with pytest.raises(ValidationError, match="database file"):
        SQLSandbox(":memory:")


def test_concurrent_sandboxes_on_one_file(db: Path) -> None:
    """Several read-only sandbox connections with the same settings coexist in a process."""
    sandbox = SQLSandbox(db)
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(sandbox.run("SELECT count(*) FROM events").rows[0][0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert results == [250] * 4


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_check_never_fails_with_anything_but_validation_error(text: str) -> None:
    import duckdb

    sandbox = SQLSandbox("/nonexistent/x.duckdb")
    try:
        sandbox.check(text)
    except ValidationError:
        return
    statements = duckdb.extract_statements(text)
    assert len(statements) == 1
    assert statements[0].type.name == "SELECT"


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.integers() | st.text(max_size=5) | st.none(), min_size=2, max_size=2)
    ),
    cap=st.integers(min_value=1, max_value=20),
)
def test_table_payload_caps_and_counts(rows: list[list[object]], cap: int) -> None:
    out = table(["a", "b"], rows, max_rows=cap)
    assert out["row_count"] == len(rows)
    assert out["returned"] == min(cap, len(rows))
    assert out["rows"] == rows[:cap]
    assert out.get("truncated", False) == (len(rows) > cap)
    assert list(out)[:2] == ["row_count", "returned"]  # the summary comes before the data


def test_json_values_are_compact_and_cut() -> None:
    long = "x" * 600
    assert json_value(long) == "x" * 500 + "…(+100 chars)"
    assert json_value(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05+00:00"
    assert json_value(float("nan")) == "nan"
    assert dumps({"a": [1, 2]}) == '{"a":[1,2]}'
