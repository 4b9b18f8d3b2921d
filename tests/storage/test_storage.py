"""StorageEngine on real DuckDB files: paths, modes, locks, names, metadata."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mixpanel_data._internal.storage import engine as sm
from mixpanel_data._internal.storage.engine import (
    StorageEngine,
    default_db_path,
    quote_ident,
    resolve_db_path,
    validate_table_name,
)
from mixpanel_data.exceptions import (
    DatabaseLockedError,
    DatabaseNotFoundError,
    StorageError,
    TableNotFoundError,
    ValidationError,
)
from mixpanel_data.workspace import Workspace


def test_path_resolution_order(tmp_path: Path, clean_environ: Path) -> None:
    assert resolve_db_path(None, project_id="42", environ={}) == default_db_path("42")
    assert default_db_path("42") == clean_environ / ".mp" / "data" / "42.duckdb"
    env = {"MP_DB_PATH": str(tmp_path / "env.duckdb")}
    assert resolve_db_path(None, project_id="42", environ=env) == tmp_path / "env.duckdb"
    assert resolve_db_path(tmp_path / "x.duckdb", project_id="42", environ=env) == (
        tmp_path / "x.duckdb"
    )
    assert resolve_db_path(":memory:", project_id=None, environ=env) == ":memory:"
    with pytest.raises(ValidationError, match="--db"):
        resolve_db_path(None, project_id=None, environ={})


def test_read_only_never_creates_a_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.duckdb"
    with Workspace.open(path, read_only=True) as ws, pytest.raises(DatabaseNotFoundError):
        ws.storage.execute_scalar("SELECT 1")
    assert not path.exists()


def test_directory_or_foreign_file_is_a_clear_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        StorageEngine(tmp_path)
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("these are not the bytes of a database\n" * 10)
    with pytest.raises(StorageError, match="not a DuckDB database"):
        StorageEngine(foreign).execute_scalar("SELECT 1")


def test_a_writer_in_another_process_gives_locked_error_with_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    StorageEngine(path).execute_scalar("CREATE TABLE t AS SELECT 1 AS a", write=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys; c=duckdb.connect({str(path)!r}); print('ready', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        notices: list[str] = []
        engine = StorageEngine(path, read_only=True, lock_timeout=0.3, on_wait=notices.append)
        with pytest.raises(DatabaseLockedError) as info:
            engine.execute_scalar("SELECT count(*) FROM t")
        assert info.value.pid == holder.pid
        assert f"process {holder.pid}" in info.value.message
        assert notices
        assert str(holder.pid) in notices[0]
    finally:
        holder.communicate("")
    assert StorageEngine(path, read_only=True).execute_scalar("SELECT count(*) FROM t") == 1


@given(st.text(max_size=40))
@example("events\n")  # a final newline passed "$" once; found by this test in a suite run
def test_table_names_are_letters_digits_underscores(name: str) -> None:
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]{0,127}", name) is not None
    if ok:
        assert validate_table_name(name) == name
    else:
        with pytest.raises(ValidationError):
            validate_table_name(name)


@pytest.mark.parametrize("bad", ["x; DROP TABLE y", "_mp_tables", "", "a-b", 'a"b', "é"])
def test_bad_table_names(bad: str) -> None:
    with pytest.raises(ValidationError, match="invalid table name"):
        validate_table_name(bad)


def test_quote_ident_escapes_quotes() -> None:
    assert quote_ident('a"b') == '"a""b"'


def test_metadata_is_hidden_and_dropped_with_the_table(tmp_path: Path) -> None:
    engine = StorageEngine(tmp_path / "m.duckdb")
    with engine.writer() as conn:
        sm.ensure_meta(conn)
        conn.execute(sm.create_table_sql("ev", "events"))
        conn.execute("CREATE TABLE mine AS SELECT 1 AS x")
    with engine.writer() as conn:
        from datetime import UTC, date, datetime

        sm.write_meta(
            conn,
            name="ev",
            kind="events",
            project_id="1",
            fetch_args={"a": 1},
            fetch_id="f",
            windows_done=1,
            windows_total=2,
            from_date=date(2024, 1, 1),
            to_date=date(2024, 1, 2),
            complete=False,
            fetched_at=datetime.now(UTC),
        )
    tables = {t.name: t for t in engine.list_tables()}
    assert set(tables) == {"ev", "mine"}
    assert tables["ev"].kind == "events"
    assert tables["ev"].complete is False
    assert tables["ev"].fetch_args == {"a": 1}
    assert tables["mine"].kind == "other"
    engine.drop_table("ev")
    assert engine.table_metadata("ev") is None
    with pytest.raises(TableNotFoundError):
        engine.drop_table("ev")
    _cols, rows = engine.execute_rows(
        "SELECT column_name, data_type FROM "
        "information_schema.columns WHERE table_name = '_mp_tables'"
    )
    assert ("complete", "BOOLEAN") in rows


def test_events_table_schema(tmp_path: Path) -> None:
    engine = StorageEngine(tmp_path / "s.duckdb")
    engine.execute_scalar(sm.create_table_sql("ev", "events"), write=True)
    engine.execute_scalar(sm.create_table_sql("pr", "profiles"), write=True)
    _c, rows = engine.execute_rows(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_name IN ('ev', 'pr') ORDER BY table_name, ordinal_position"
    )
    assert rows == [
        ("ev", "event_name", "VARCHAR"),
        ("ev", "event_time", "TIMESTAMP WITH TIME ZONE"),
        ("ev", "event_date", "DATE"),
        ("ev", "distinct_id", "VARCHAR"),
        ("ev", "insert_id", "VARCHAR"),
        ("ev", "properties", "JSON"),
        ("pr", "distinct_id", "VARCHAR"),
        ("pr", "last_seen", "TIMESTAMP WITH TIME ZONE"),
        ("pr", "properties", "JSON"),
    ]


def test_ephemeral_and_memory_workspaces_leave_nothing(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from mixpanel_data._internal.config import Credentials

    creds = Credentials(username="u", secret=SecretStr("s"), project_id="1")
    ws = Workspace.ephemeral(credentials=creds)
    ws.storage.execute_scalar("CREATE TABLE t AS SELECT 42 AS x", write=True)
    path = ws.storage.path
    assert path is not None
    assert path.exists()
    ws.close()
    assert not path.exists()
    assert not Path(str(path) + ".wal").exists()
    assert not path.parent.exists()
    with Workspace.memory(credentials=creds) as mem:
        mem.storage.execute_scalar("CREATE TABLE t AS SELECT 42 AS x", write=True)
        assert mem.storage.execute_scalar("SELECT x FROM t") == 42
        assert mem.storage.path is None


def test_read_only_engine_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    StorageEngine(path).execute_scalar("CREATE TABLE t AS SELECT 1 AS a", write=True)
    with pytest.raises(StorageError, match="read-only"):
        StorageEngine(path, read_only=True).execute_scalar("DROP TABLE t", write=True)


def test_a_claiming_writer_keeps_new_readers_out_until_it_is_done(tmp_path: Path) -> None:
    """A writer about to open the file claims it (``<db>.writer``): readers started
    back to back can no longer keep it out, and each waits for the writer instead."""
    path = tmp_path / "claimed.duckdb"
    StorageEngine(path).execute_scalar("CREATE TABLE t AS SELECT 1 AS a", write=True)
    # Another process claims the database (as a writer does before it opens it) but
    # has not opened it yet: DuckDB alone would let the reader in.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from mixpanel_data._internal.storage.locks import WriterClaim; "
            f"c = WriterClaim(Path({str(path)!r})); c.take(); print('ready', flush=True); "
            "sys.stdin.read(); c.release()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        notices: list[str] = []
        engine = StorageEngine(path, read_only=True, lock_timeout=2, on_wait=notices.append)
        with pytest.raises(DatabaseLockedError) as info:
            engine.execute_scalar("SELECT count(*) FROM t")
        assert info.value.pid == holder.pid
        assert notices == [f"waiting for process {holder.pid} to release {path} ..."]
    finally:
        holder.communicate("")
    # Released: readers get in again; the claim is never the writer's own obstacle.
    assert StorageEngine(path, read_only=True).execute_scalar("SELECT count(*) FROM t") == 1
    writer = StorageEngine(path)
    with writer.writer() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
        # A read inside the writer (the same connection) is not kept out by its claim.
        assert writer.execute_scalar("SELECT count(*) FROM t") == 2
    assert StorageEngine(path, read_only=True).execute_scalar("SELECT sum(a) FROM t") == 3


@pytest.mark.parametrize("stem", ["events", "memory"])
def test_a_writer_appends_small_row_groups_and_spills_beside_the_file(
    tmp_path: Path, stem: str
) -> None:
    """Writers attach the file with WRITE_ROW_GROUP rows per row group (the fetch's
    inserts compress them as they fill); the file stays the default database, named
    as DuckDB names it (a reserved name gets another), and spills go to ``<db>.tmp``,
    not the working directory."""
    db = tmp_path / f"{stem}.duckdb"
    engine = sm.StorageEngine(db)
    with engine.connection(write=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")
        name = conn.execute("SELECT current_database()").fetchone()
        spill = conn.execute("SELECT current_setting('temp_directory')").fetchone()
        conn.execute("CHECKPOINT")
        groups = conn.execute(
            "SELECT row_group_id, max(count) FROM pragma_storage_info('t') GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert name == (stem if stem != "memory" else "mp_data",)
    assert spill == (f"{db}.tmp",)
    sizes = [n for _, n in groups]
    assert sizes == [sm.WRITE_ROW_GROUP] * 3 + [100000 - 3 * sm.WRITE_ROW_GROUP]
    reader = sm.StorageEngine(db, read_only=True)
    assert reader.execute_scalar("SELECT sum(x) FROM t") == sum(range(100000))
