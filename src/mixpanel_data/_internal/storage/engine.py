"""StorageEngine: the local DuckDB database, opened briefly and shared safely.

DuckDB lets one process open a file for writing, and a writer shuts out every
other process, readers included. So the engine never holds the file open for
long: each call opens a connection, does its work and closes it. A fetch
downloads and stages each window elsewhere and opens the database only to
commit it (one short transaction); readers (`mp sql`) open read-only between
commits. Both sides retry on the lock for a bounded time (``lock_timeout``).

How to read (for the SQL layer)::

    engine = StorageEngine(path, read_only=True)
    with engine.reader() as conn:          # a short read-only duckdb connection
        conn.execute("SELECT count(*) FROM events").fetchone()
    engine.execute_rows("SELECT * FROM events WHERE event_name = ?", ["Login"])

Do not keep a connection across user-visible waits; open one per query. For
``:memory:`` the engine keeps one connection for its lifetime (nothing to share).

Metadata lives in two tables the engine owns (``meta_tables.py``; names start with
``_mp_``, so user tables never collide: user names may not start with ``_``):

- ``_mp_tables``: one row per table: kind, project, exact fetch arguments,
  row count, day windows done/total, date range, fetched_at, complete flag.
- ``_mp_windows``: one row per committed window of a fetch (resume uses it).
"""

# SQL here is built from validated, always-quoted identifiers; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mixpanel_data._internal.crashpoints import crash_point
from mixpanel_data._internal.storage.interrupts import as_keyboard_interrupt, deferred_interrupts
from mixpanel_data._internal.storage.locks import (
    PID_IN_TEXT,
    READER_GRACE,
    ReaderQueue,
    WriterClaim,
    lock_holder_pid,
)
from mixpanel_data._internal.storage.meta_tables import EVENTS_COLUMNS as EVENTS_COLUMNS
from mixpanel_data._internal.storage.meta_tables import INTERNAL_PREFIX as INTERNAL_PREFIX
from mixpanel_data._internal.storage.meta_tables import META_TABLE as META_TABLE
from mixpanel_data._internal.storage.meta_tables import PROFILES_COLUMNS as PROFILES_COLUMNS
from mixpanel_data._internal.storage.meta_tables import WINDOWS_TABLE as WINDOWS_TABLE
from mixpanel_data._internal.storage.meta_tables import _all_meta as _all_meta
from mixpanel_data._internal.storage.meta_tables import _table_exists as _table_exists
from mixpanel_data._internal.storage.meta_tables import committed_windows as committed_windows
from mixpanel_data._internal.storage.meta_tables import create_table_sql as create_table_sql
from mixpanel_data._internal.storage.meta_tables import ensure_meta as ensure_meta
from mixpanel_data._internal.storage.meta_tables import forget_columns as forget_columns
from mixpanel_data._internal.storage.meta_tables import quote_ident as quote_ident
from mixpanel_data._internal.storage.meta_tables import record_window as record_window
from mixpanel_data._internal.storage.meta_tables import rename_meta as rename_meta
from mixpanel_data._internal.storage.meta_tables import sql_literal as sql_literal
from mixpanel_data._internal.storage.meta_tables import window_rows as window_rows
from mixpanel_data._internal.storage.meta_tables import write_meta as write_meta
from mixpanel_data._internal.storage.names_index import write_names_index
from mixpanel_data._internal.storage.safety import (
    close_quietly,
    disk_full_error,
    fetch_lock,
    is_bad_wal,
    is_disk_full,
    private_mkdir,
    remove_unborn,
    rollback_quietly,
    set_aside_wal,
)
from mixpanel_data._internal.storage.served import served_connection
from mixpanel_data.exceptions import (
    DatabaseLockedError,
    DatabaseNotFoundError,
    StorageError,
    TableNotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from mixpanel_data._internal.results.tables import TableInfo

__all__ = [
    "EVENTS_COLUMNS",
    "META_TABLE",
    "PROFILES_COLUMNS",
    "WINDOWS_TABLE",
    "StorageEngine",
    "default_db_path",
    "lock_holder_pid",
    "private_mkdir",
    "quote_ident",
    "resolve_db_path",
    "validate_table_name",
]

MEMORY = ":memory:"
_log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,127}\Z")  # \Z: "$" allows a final newline
_DUCKDB_MAGIC = b"DUCK"


def validate_table_name(name: str) -> str:
    """Return `name` if it is a valid table name, else raise ValidationError.

    Letters, digits and underscores; no leading underscore (reserved for ``_mp_*``).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"invalid table name {name!r}; use letters, digits and underscores "
            "(not starting with an underscore), e.g. events_jan",
            table=str(name),
        )
    return name


def default_db_path(project_id: str) -> Path:
    """Return ``~/.mp/data/<project_id>.duckdb``."""
    return Path("~/.mp/data").expanduser() / f"{project_id}.duckdb"


def resolve_db_path(
    path: str | Path | None,
    *,
    project_id: str | None,
    environ: Mapping[str, str] | None = None,
) -> str | Path:
    """Pick the database: explicit `path` (``--db``), then ``MP_DB_PATH``, then the default.

    ``":memory:"`` passes through unchanged.
    """
    env = os.environ if environ is None else environ
    if path is not None and str(path) == MEMORY:
        return MEMORY
    if path is not None:
        return Path(path).expanduser()
    raw = env.get("MP_DB_PATH", "").strip()
    if raw:
        return MEMORY if raw == MEMORY else Path(raw).expanduser()
    if project_id is None:
        raise ValidationError(
            "no database given; pass --db PATH (or set MP_DB_PATH), "
            "or configure an account with `mp auth add`"
        )
    return default_db_path(project_id)


def _held(conn: duckdb.DuckDBPyConnection, name: str, args: Mapping[str, Any]) -> str:
    """The project days an events table holds wholly, as ranges (storage/days.py)."""
    from zoneinfo import ZoneInfo

    from mixpanel_data._internal.storage.days import day_ranges, held_days

    try:
        zone = ZoneInfo(str(args.get("timezone") or "UTC"))
    except (ValueError, KeyError):
        zone = ZoneInfo("UTC")
    rows = window_rows(conn, name)
    return day_ranges(held_days(rows, zone=zone, legacy=bool(args.get("legacy_time"))))


def _stderr_notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# Rows per row group of what a writer appends (DuckDB's default is 122,880). A commit's
# insert compresses each full row group on the thread that filled it; with the default
# the rows of a day's window mostly sat in partial groups, compressed one after another
# when the insert ended (and spilled from the 256 MB pool meanwhile). 1M events: a
# fetch of 12.6-13.4 s instead of 17.8-18.0 s; queries unchanged (query_benchmark.py).
WRITE_ROW_GROUP = 32768


def open_database(path: Path, *, write: bool) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the file at `path`; a writer's appends get row groups of
    WRITE_ROW_GROUP rows (an ATTACH option only, so the file is attached to an empty
    in-memory database and made the default; it spills to ``<path>.tmp`` as a file
    database's connection does)."""
    import duckdb

    if not write:
        return duckdb.connect(str(path), read_only=True)
    alias = path.stem if path.stem.lower() not in _RESERVED_CATALOGS else "mp_data"
    conn = duckdb.connect(":memory:", config={"temp_directory": f"{path}.tmp"})
    try:
        conn.execute(
            f"ATTACH {sql_literal(str(path))} AS {quote_ident(alias)} "
            f"(ROW_GROUP_SIZE {WRITE_ROW_GROUP})"
        )
        conn.execute(f"USE {quote_ident(alias)}")
    except BaseException:
        close_quietly(conn)
        raise
    return conn


_RESERVED_CATALOGS = frozenset({"memory", "system", "temp", "main"})


class StorageEngine:
    """Open the local DuckDB database in short connections; own its schema and metadata.

    Example:
        engine = StorageEngine("~/.mp/data/123.duckdb", read_only=True)
        columns, rows = engine.execute_rows("SELECT count(*) FROM events")
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        ephemeral: bool = False,
        lock_timeout: float = 60.0,
        memory_limit: str | None = None,
        on_wait: Callable[[str], None] | None = _stderr_notice,
        announce_waits: bool = True,
    ) -> None:
        self.is_memory = str(path) == MEMORY
        self.path: Path | None = None if self.is_memory else Path(path).expanduser().absolute()
        self.read_only = read_only
        self.ephemeral = ephemeral
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self._on_wait = on_wait
        self._announce_waits = announce_waits  # the lock-wait note (other notes always)
        self._lock = threading.RLock()
        self._active: duckdb.DuckDBPyConnection | None = None
        self._active_write = False
        self._depth = 0
        self._memory_conn: duckdb.DuckDBPyConnection | None = None
        self._closed = False
        self._fetch_depth = 0
        self._wrote = False  # a write connection closed: record the names for completion
        self._claim: WriterClaim | None = None
        if self.path is not None:
            self._check_path(self.path)

    @classmethod
    def memory(cls) -> StorageEngine:
        """An in-memory database, gone on close."""
        return cls(MEMORY)

    @classmethod
    def temporary(cls, *, directory: str | Path | None = None) -> StorageEngine:
        """A temporary database file, removed with its WAL on close."""
        fd, name = tempfile.mkstemp(prefix="mp-", suffix=".duckdb", dir=directory)
        os.close(fd)
        os.unlink(name)  # DuckDB must create the file itself
        return cls(name, ephemeral=True)

    @property
    def display_path(self) -> str:
        """The path as users see it (``:memory:`` for in-memory databases)."""
        return MEMORY if self.path is None else str(self.path)

    def exists(self) -> bool:
        """Return True if the database exists (always for ``:memory:``)."""
        return self.path is None or self.path.exists()

    # -- connections ---------------------------------------------------------------

    def _check_path(self, path: Path) -> None:
        if path.is_dir():
            raise StorageError(
                f"{path} is a directory, not a DuckDB database; give a file path with --db",
                path=str(path),
            )
        if path.exists() and not path.is_file():
            # A FIFO or device: DuckDB would block on it forever.
            raise StorageError(
                f"{path} is not a regular file (a FIFO, socket or device), not a DuckDB "
                "database; give a file path with --db",
                path=str(path),
            )
        if path.is_file() and path.stat().st_size >= 12:
            with open(path, "rb") as fh:
                header = fh.read(12)
            if header[8:12] != _DUCKDB_MAGIC:
                raise StorageError(
                    f"{path} is not a DuckDB database; give another --db path",
                    path=str(path),
                )

    def _open(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        if "duckdb" not in sys.modules:
            # Ctrl-C held while the C extension initialises: a KeyboardInterrupt raised
            # inside its module init aborts the process (exit -6, "Critical error").
            with deferred_interrupts():
                import duckdb
        import duckdb

        if self.path is None:
            if self._memory_conn is None:
                self._memory_conn = duckdb.connect(MEMORY)
                self._configure(self._memory_conn)
            return self._memory_conn
        self._check_path(self.path)
        if not self.path.exists():
            if not write:
                raise DatabaseNotFoundError(str(self.path))
            private_mkdir(self.path.parent)
        claim = WriterClaim(self.path)
        waiting = ReaderQueue(self.path)
        deadline = time.monotonic() + self.lock_timeout
        if write:
            waiting.let_readers_in(deadline=min(deadline, time.monotonic() + READER_GRACE))
            claim.take()  # from here on new readers wait, so the reads under way end
        try:
            conn = self._connect(write=write, claim=claim, waiting=waiting, deadline=deadline)
        except BaseException:
            claim.release()
            if write and not self.path.exists():  # no database came of it: no side file
                with contextlib.suppress(OSError):
                    claim.path.unlink()
            raise
        if write:
            self._claim = claim  # released once the connection is closed
        return conn

    def _connect(
        self,
        *,
        write: bool,
        claim: WriterClaim,
        waiting: ReaderQueue,
        deadline: float,
        serve: bool = True,
    ) -> duckdb.DuckDBPyConnection:
        import duckdb

        assert self.path is not None
        path = self.path
        started = time.monotonic()
        delay = 0.01
        announced = False

        def served() -> duckdb.DuckDBPyConnection | None:
            """The fetch holding the file answers SELECTs itself (storage/served.py)."""
            if write or not serve:
                return None

            def open_local() -> duckdb.DuckDBPyConnection:
                limit = time.monotonic() + self.lock_timeout
                return self._connect(
                    write=False, claim=claim, waiting=waiting, deadline=limit, serve=False
                )

            remote = served_connection(path, open_local)
            if remote is None:
                return None
            waiting.leave()
            _log.debug("reading %s through the fetch that holds it", path)
            conn = cast("duckdb.DuckDBPyConnection", remote)
            self._configure(conn)
            return conn

        def wait(pid: int | None) -> None:
            nonlocal announced, delay
            if not write:
                waiting.enter()
            if time.monotonic() + delay > deadline:
                waiting.leave()
                raise DatabaseLockedError(str(self.path), pid=pid) from None
            if not announced and self._on_wait is not None and self._announce_waits:
                holder = f"process {pid}" if pid is not None else "another process"
                self._on_wait(f"waiting for {holder} to release {self.path} ...")
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

        while True:
            if not write:
                claimed, holder = claim.claimed()  # a writer opens (or has) the file
                if claimed:
                    remote = served()
                    if remote is not None:
                        return remote
                    wait(holder)
                    continue
            creating = write and not self.path.exists()
            try:
                conn = open_database(self.path, write=write)
            except duckdb.IOException as exc:
                if creating:
                    remove_unborn(self.path)
                if is_disk_full(exc):
                    raise self._disk_full(exc) from None
                if is_bad_wal(exc):
                    waiting.leave()
                    set_aside_wal(self.path, self._on_wait)
                    continue
                pid = self._locked_by(exc)
                if pid is False:
                    raise StorageError(
                        f"cannot open database {self.path}: {exc}; check the path and permissions",
                        path=str(self.path),
                    ) from None
                remote = served()
                if remote is not None:
                    return remote
                wait(pid if isinstance(pid, int) else None)
                continue
            waiting.leave()
            if announced:
                _log.debug(
                    "opened %s %s after waiting %.3f s for the lock",
                    self.path,
                    "read-write" if write else "read-only",
                    time.monotonic() - started,
                )
            if creating:
                with contextlib.suppress(OSError):
                    os.chmod(self.path, 0o600)
            self._configure(conn)
            return conn

    def _disk_full(self, exc: BaseException) -> StorageError:
        return disk_full_error(self.display_path, exc)

    @contextlib.contextmanager
    def exclusive_fetch(self, *, action: str | None = None) -> Iterator[None]:
        """Hold the database's fetch lock for a whole fetch (``db_safety.fetch_lock``):
        a second writer fails at once, naming this PID. Re-entrant within one engine.
        Drops and exports hold it too (`action` says what was refused)."""
        if self.path is None or self._fetch_depth:
            self._fetch_depth += 1
            try:
                yield
            finally:
                self._fetch_depth -= 1
            return
        with fetch_lock(self.path, action=action):
            self._fetch_depth = 1
            try:
                yield
            finally:
                self._fetch_depth = 0

    def _locked_by(self, exc: Exception) -> int | bool | None:
        """Return the holder's PID (or None if unknown) for a lock error, False otherwise."""
        assert self.path is not None
        pid = lock_holder_pid(self.path)
        if pid is not None:
            return pid
        match = PID_IN_TEXT.search(str(exc))
        if match:
            return int(match.group(1))
        return None if "lock" in str(exc).lower() else False

    def _configure(self, conn: duckdb.DuckDBPyConnection) -> None:
        # Timestamps come back in UTC whatever the machine's zone (event_time is UTC).
        conn.execute("SET TimeZone = 'UTC'")
        if self.memory_limit:
            conn.execute(f"SET memory_limit = '{self.memory_limit}'")

    @contextlib.contextmanager
    def connection(self, *, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a short-lived connection; nested calls in one thread share it."""
        if self._closed:
            raise StorageError("the database was closed; open a new Workspace")
        if write and self.read_only:
            raise StorageError(
                f"database {self.display_path} is open read-only; "
                "open the Workspace with read_only=False to change it"
            )
        with self._lock:
            if self._active is not None:
                if write and not self._active_write:
                    raise StorageError("cannot write inside a read-only connection")
                self._depth += 1
                try:
                    yield self._active
                except Exception as exc:
                    if is_disk_full(exc) and not isinstance(exc, StorageError):
                        raise self._disk_full(exc) from None
                    raise
                finally:
                    self._depth -= 1
                return
            # A read of a fresh read-write database creates it instead of failing.
            if not write and not self.read_only and self.path is not None:
                write = not self.path.exists()
            with as_keyboard_interrupt():  # a Ctrl-C in the connection's set-up statements
                conn = self._open(write=write)
            self._active, self._active_write, self._depth = conn, write, 1
            try:
                yield conn
            except BaseException as exc:
                self._active, self._depth = None, 0
                if self.path is not None:
                    close_quietly(conn)  # a failing close must not replace this error
                    self._release_claim()
                # A StorageError already names its file (e.g. the lake's full disk).
                if (
                    isinstance(exc, Exception)
                    and is_disk_full(exc)
                    and not isinstance(exc, StorageError)
                ):
                    raise self._disk_full(exc) from None
                raise
            self._active, self._depth = None, 0
            if self.path is not None:
                if write:
                    crash_point("checkpoint")
                try:
                    self._close_quietly(conn)
                    self._wrote = self._wrote or write
                finally:
                    self._release_claim()

    def _release_claim(self) -> None:
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.release()

    def _close_quietly(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Close (DuckDB checkpoints a writer here); a full disk is reported, not raised raw."""
        try:
            conn.close()
        except Exception as exc:
            if is_disk_full(exc):
                raise self._disk_full(exc) from None
            raise

    def readers_waiting(self) -> bool:
        """True when another process (using this engine) waits to read the database.

        A long writer checks this between commits and closes its connection so
        the reader gets in (see ``ReaderQueue``).
        """
        return self.path is not None and ReaderQueue(self.path).readers_waiting()

    def reader(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A short read-only connection (read-write for ``:memory:``)."""
        return self.connection(write=False)

    def writer(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A short read-write connection; keep the work inside it brief."""
        return self.connection(write=True)

    def close(self) -> None:
        """Close the engine; an ephemeral database is deleted with its WAL."""
        if self._closed:
            return
        self._closed = True
        if self._wrote and not self.ephemeral and self.path is not None:
            write_names_index(self.path)
        if self._memory_conn is not None:
            self._memory_conn.close()
            self._memory_conn = None
        if self.ephemeral and self.path is not None:
            for suffix in ("", ".wal", ".tmp", ".readers", ".writer", ".fetch", ".names.json"):
                target = Path(str(self.path) + suffix)
                if target.is_dir():
                    import shutil

                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)

    def __enter__(self) -> StorageEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"StorageEngine({self.display_path!r}, {mode})"

    # -- query primitives ----------------------------------------------------------

    def execute_df(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        write: bool = False,
    ) -> pd.DataFrame:
        """Run one statement and return a pandas DataFrame."""
        with self.connection(write=write) as conn:
            return conn.execute(sql, params).df()

    def execute_scalar(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        write: bool = False,
    ) -> Any:
        """Run one statement and return the first column of the first row (None if no rows)."""
        with self.connection(write=write) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def execute_rows(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        write: bool = False,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement and return ``(column names, rows)``."""
        with self.connection(write=write) as conn:
            cursor = conn.execute(sql, params)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        return columns, rows

    # -- tables and metadata -------------------------------------------------------

    def table_exists(self, name: str) -> bool:
        """Return True if a table (user or internal) named `name` exists."""
        if not self.exists():
            return False
        with self.reader() as conn:
            return _table_exists(conn, name)

    def list_tables(self) -> list[TableInfo]:
        """Describe every user table (internal ``_mp_*`` tables are hidden), by name."""
        from mixpanel_data._internal.results.tables import TableInfo

        if not self.exists():
            return []
        with self.reader() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'main' AND table_catalog = current_database() "
                    "ORDER BY table_name"
                ).fetchall()
            ]
            meta = _all_meta(conn)
            out = []
            for name in names:
                if name.startswith("_"):
                    continue
                count = conn.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()
                m = meta.get(name)
                days = zone = None
                if m and m["kind"] == "events":
                    days = _held(conn, name, m["fetch_args"])
                    zone = m["fetch_args"].get("timezone") or "UTC"
                out.append(
                    TableInfo(
                        name=name,
                        kind=m["kind"] if m else "other",
                        row_count=int(count[0]) if count else 0,
                        complete=m["complete"] if m else None,
                        fetched_at=m["fetched_at"] if m else None,
                        fetch_args=m["fetch_args"] if m else {},
                        days=days,
                        timezone=zone,
                    )
                )
        return out

    def table_metadata(self, name: str) -> dict[str, Any] | None:
        """Return the fetch metadata of `name` (None for tables made with SQL or missing)."""
        if not self.exists():
            return None
        with self.reader() as conn:
            return _all_meta(conn, name).get(name)

    def drop_table(self, name: str) -> None:
        """Drop a table and its metadata; raise TableNotFoundError if it is missing."""
        validate_table_name(name)
        with self.exclusive_fetch(action=f"drop table '{name}'"), self.writer() as conn:
            if not _table_exists(conn, name):
                raise TableNotFoundError(name)
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(f"DROP TABLE {quote_ident(name)}")
                if _table_exists(conn, META_TABLE):
                    conn.execute(f"DELETE FROM {META_TABLE} WHERE name = ?", [name])
                    conn.execute(f"DELETE FROM {WINDOWS_TABLE} WHERE name = ?", [name])
                forget_columns(conn, name)
                conn.execute("COMMIT")
            except BaseException:
                rollback_quietly(conn)
                raise
