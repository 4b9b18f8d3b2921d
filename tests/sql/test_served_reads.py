"""Readers answered by the fetch that holds the database (storage/served.py, issue 14).

A real fetch session (WriterSession) holds a real DuckDB file; `mp sql` runs as a
separate process, as a user runs it during `mp fetch`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data._internal.services.fetch.staging import WriterSession
from mixpanel_data._internal.services.sql import translate_duckdb_errors
from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data._internal.storage.locks import ReaderQueue
from mixpanel_data._internal.storage.served import (
    ReadServer,
    RemoteConnection,
    servable,
    served_connection,
)
from mixpanel_data.exceptions import TableNotFoundError, ValidationError

SERVED = "through the fetch that holds it"


def _duckdb() -> Any:
    import duckdb

    return duckdb


def mp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixpanel_data", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


@pytest.fixture
def held(local_db) -> Iterator[tuple[Path, WriterSession]]:
    """The database held for writing, as by a fetch between two commits."""
    session = WriterSession(StorageEngine(local_db.path))
    with session:
        with session.connection():
            pass
        yield local_db.path, session


def test_a_reader_is_answered_while_the_fetch_holds_the_file(held, local_db) -> None:
    db, _ = held
    out = mp("-v", "--db", str(db), "sql", "SELECT count(*) AS n FROM events", "-f", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": len(local_db.events)}]
    assert SERVED in out.stderr
    assert "waiting for" not in out.stderr


def test_a_served_reader_does_not_load_pyarrow_or_numpy(held, local_db) -> None:
    """Importing pyarrow (and numpy) to read the fetch's answer cost each `mp sql`
    0.18 s of CPU; readers every 0.5 s took that from the fetch on a 2-core machine
    (its wall time 1.16x that with the same readers reading another database)."""
    db, _ = held
    query = "SELECT 1 + count(*) FROM events"
    argv = [sys.executable, "-X", "importtime", "-m", "mixpanel_data", "-v", "--db", str(db)]
    out = subprocess.run(
        [*argv, "sql", "--scalar", query],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{len(local_db.events) + 1}\n"
    assert SERVED in out.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "nanoarrow" in imported  # the answer was read
    assert not {m for m in imported if m.split(".")[0] in ("pyarrow", "numpy", "pandas")}


def test_a_reader_sees_only_committed_rows(held, local_db) -> None:
    db, session = held
    with session.connection() as conn:
        conn.execute("BEGIN TRANSACTION")
        conn.execute("INSERT INTO events SELECT * FROM events")  # not committed yet
        out = mp("--db", str(db), "sql", "SELECT count(*) FROM events", "--scalar")
        assert (out.returncode, out.stdout) == (0, f"{len(local_db.events)}\n"), out.stderr
        conn.execute("COMMIT")
    out = mp("--db", str(db), "sql", "SELECT count(*) FROM events", "--scalar")
    assert (out.returncode, out.stdout) == (0, f"{2 * len(local_db.events)}\n"), out.stderr


def test_results_keep_their_types(held) -> None:
    """HUGEINT, JSON, TIMESTAMPTZ, lists, decimals and NULLs come back as DuckDB gives them."""
    db, _ = held
    query = (
        "SELECT sum(length(distinct_id))::HUGEINT AS h, any_value(properties) AS j, "
        "min(event_time) AS t, list(DISTINCT event_name ORDER BY event_name) AS names, "
        "CAST(1.25 AS DECIMAL(9, 2)) AS d, NULL::VARCHAR AS nothing FROM events"
    )
    remote = served_connection(db, lambda: pytest.fail("the fetch did not answer"))
    assert isinstance(remote, RemoteConnection)  # the fetch answered
    remote.execute("SET TimeZone = 'UTC'")
    got = remote.execute(query)
    types = [str(d[1]) for d in got.description]
    rows = got.fetchall()
    remote.close()
    held[1].release()  # the file is free: read it directly to compare
    with _duckdb().connect(str(db), read_only=True) as direct:
        direct.execute("SET TimeZone = 'UTC'")
        want = direct.execute(query)
        assert types == [str(d[1]) for d in want.description]
        assert rows == want.fetchall()


def test_errors_are_the_same_line_as_without_a_fetch(held) -> None:
    """The same line and exit code; a missing table's also says a fetch is writing (a
    table it creates appears at its first commit)."""
    db, session = held
    during = mp("--db", str(db), "sql", "SELECT * FROM nope")
    session.release()
    after = mp("--db", str(db), "sql", "SELECT * FROM nope")
    assert during.returncode == after.returncode == 4
    note = (
        " (a fetch is writing this database: a table it creates appears when its first "
        "window is committed, in a moment)"
    )
    assert note in during.stderr
    assert during.stderr.replace(note, "") == after.stderr
    assert len(during.stderr.strip().splitlines()) == 1
    assert "nope" in during.stderr
    assert "Traceback" not in during.stderr


class _CommitRightAfterTheFailure:
    """The fetch's lent cursor, where a commit creating the table lands just after the
    reader's statement failed on its absence (the race CI once lost: exit 3, not 4)."""

    def __init__(self, cur: Any, writer: Any, table: str) -> None:
        self._cur, self._writer, self._table = cur, writer, table

    def sql(self, query: str, params: Any = None) -> Any:
        try:
            return self._cur.sql(query, params=params)
        except _duckdb().CatalogException:
            self._writer.execute(f"CREATE TABLE IF NOT EXISTS {self._table} AS SELECT 42 AS x")
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def test_a_table_committed_just_after_a_read_failed_is_still_reported_missing(
    tmp_path: Path,
) -> None:
    import contextlib

    db = tmp_path / "racing.duckdb"
    writer = _duckdb().connect(str(db))
    cur = writer.cursor()

    @contextlib.contextmanager
    def lend() -> Iterator[Any]:
        yield _CommitRightAfterTheFailure(cur, writer, "fresh")

    server = ReadServer(db, lend)
    try:
        remote = served_connection(db, lambda: pytest.fail("the fetch did not answer"))
        assert isinstance(remote, RemoteConnection)
        query = "SELECT count(*) FROM fresh"
        with (
            pytest.raises(TableNotFoundError) as caught,
            translate_duckdb_errors(remote, query, read_only=True),
        ):
            remote.execute(query)
        assert caught.value.table == "fresh"
        assert "a fetch is writing this database" in str(caught.value)
        # The table is there now: the same read answers, and a missing function is
        # still a mistake in the SQL (exit 3), not a missing table.
        assert remote.execute(query).fetchall() == [(1,)]
        wrong = "SELECT nosuchfn(x) FROM fresh"
        with (
            pytest.raises(ValidationError, match="nosuchfn"),
            translate_duckdb_errors(remote, wrong, read_only=True),
        ):
            remote.execute(wrong)
        remote.close()
    finally:
        server.close()
        writer.close()


def test_a_long_read_does_not_hold_up_a_short_one(held, local_db) -> None:
    """Two readers are answered at once: a read blocked inside its query (a UDF waiting
    for this test) leaves the other reader's `mp sql` to be answered meanwhile."""
    import threading

    db, session = held
    entered, release = threading.Event(), threading.Event()

    def gate() -> int:
        entered.set()
        release.wait(120)
        return 7

    with session.connection() as conn:
        conn.create_function("gate", gate, [], "BIGINT")
    remote = served_connection(db, lambda: pytest.fail("the fetch did not answer"))
    assert isinstance(remote, RemoteConnection)
    long_read: dict[str, Any] = {}

    def read_long() -> None:
        long_read["rows"] = remote.execute("SELECT gate() AS g").fetchall()

    reader = threading.Thread(target=read_long)
    reader.start()
    try:
        assert entered.wait(60), "the long read never started"
        out = mp("-v", "--db", str(db), "sql", "SELECT count(*) FROM events", "--scalar")
        assert (out.returncode, out.stdout) == (0, f"{len(local_db.events)}\n"), out.stderr
        assert SERVED in out.stderr
        assert reader.is_alive()  # answered while the long read was still running
    finally:
        release.set()
        reader.join(60)
        remote.close()
    assert long_read["rows"] == [(7,)]


def test_statements_other_than_select_wait_for_the_file(held, local_db) -> None:
    """Not answered by the fetch: the reader waits, as before, until the file is free."""
    db, session = held
    with subprocess.Popen(
        [sys.executable, "-m", "mixpanel_data", "--db", str(db), "sql", "PRAGMA version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 60
        while not ReaderQueue(db).readers_waiting():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the reader never waited"
            time.sleep(0.05)
        session.release()  # what a fetch does when it sees a reader waiting
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert _duckdb().__version__.lstrip("v").split(".")[0] in out
    assert "waiting for" in err


def test_only_plain_selects_are_served() -> None:
    conn = _duckdb().connect()
    assert servable(conn, "SELECT 1")
    assert servable(conn, "WITH a AS (SELECT 1) SELECT * FROM a; FROM range(3)")
    for query in (
        "SELECT * FROM checkpoint()",
        "SELECT * FROM force_checkpoint()",
        "CHECKPOINT",
        "DELETE FROM t",
        "SELECT 1; DROP TABLE t",
        "COPY (SELECT 1) TO 'x.csv'",
        "ATTACH 'x.duckdb'",
        "SET memory_limit = '1GB'",
        "EXPLAIN ANALYZE DELETE FROM t",
        "SELECT (",
    ):
        assert not servable(conn, query), query


def test_the_advert_is_private_and_goes_with_the_fetch(local_db) -> None:
    session = WriterSession(StorageEngine(local_db.path))
    advert = Path(str(local_db.path) + ".serve")
    with session:
        with session.connection():
            pass
        assert stat.S_IMODE(advert.stat().st_mode) == 0o600
        socket_path = Path(advert.read_text().split("\n")[1])
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert not advert.exists()
    assert not socket_path.parent.exists()


def test_a_symlinked_advert_is_not_followed(local_db, tmp_path) -> None:
    session = WriterSession(StorageEngine(local_db.path))
    advert = Path(str(local_db.path) + ".serve")
    with session:
        with session.connection():
            pass
        real = tmp_path / "elsewhere"
        real.write_text(advert.read_text())
        advert.unlink()
        advert.symlink_to(real)
        assert served_connection(local_db.path, lambda: pytest.fail("not asked")) is None
