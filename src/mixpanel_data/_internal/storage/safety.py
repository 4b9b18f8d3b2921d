"""What the storage engine does when the machine misbehaves: a damaged WAL, a full
disk, a second writer. Kept apart from ``storage.py`` so that stays about data."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mixpanel_data._internal.storage.locks import lock_holder_pid
from mixpanel_data.exceptions import DatabaseLockedError, StorageError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "FETCH_ADDRESS_SPACE",
    "check_address_space",
    "cleanup",
    "close_quietly",
    "disk_full_error",
    "fetch_lock",
    "is_bad_wal",
    "is_disk_full",
    "private_mkdir",
    "remove_unborn",
    "rollback_quietly",
    "set_aside_wal",
    "set_wal_recovery",
]

# Set by `mp --recover`: a write-ahead log DuckDB cannot replay is moved aside.
_recover_wal = False


def set_wal_recovery(enabled: bool) -> None:
    """Move an unreplayable WAL aside on open (``mp --recover``) instead of failing."""
    global _recover_wal
    _recover_wal = enabled


def is_bad_wal(exc: Exception) -> bool:
    """DuckDB's error for a WAL it cannot replay (checked against duckdb 1.x/2.x text)."""
    return "replaying wal" in str(exc).lower()


def is_disk_full(exc: BaseException | None) -> bool:
    """True for a full disk, also when a later error (a failed ROLLBACK) hides it."""
    for _ in range(4):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "no space left" in text or "file too large" in text or "disk quota" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def rollback_quietly(conn: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after a failure without ever raising over it.

    A failed COMMIT has already ended the transaction (ROLLBACK then fails with
    "no transaction is active") and an invalidated database refuses everything:
    either error would replace the one the user needs to see.
    """
    with contextlib.suppress(Exception):
        conn.execute("ROLLBACK")


def close_quietly(conn: duckdb.DuckDBPyConnection) -> None:
    """Close a connection while another error is on its way out (never hides it)."""
    with contextlib.suppress(Exception):
        conn.close()


@contextlib.contextmanager
def cleanup(conn: duckdb.DuckDBPyConnection, *statements: str) -> Iterator[None]:
    """Run `statements` (drop scratch tables, reset settings) after the block.

    After a failed statement DuckDB refuses every other one until ROLLBACK
    ("Current transaction is aborted"), so when the block failed the cleanup is
    best effort and its own errors never replace the block's (the ROLLBACK that
    follows drops scratch tables anyway). After a success it runs normally.
    """
    try:
        yield
    except BaseException:
        for statement in statements:
            with contextlib.suppress(Exception):
                conn.execute(statement)
        raise
    for statement in statements:
        conn.execute(statement)


def disk_full_error(where: str, exc: BaseException) -> StorageError:
    """One line naming the file (or folder) being written."""
    filename = getattr(exc, "filename", None)
    if isinstance(filename, str) and filename:
        where = filename
    return StorageError(
        f"no space left on the disk while writing {where}; the current window was "
        "rolled back; free some space and run the same command again (it resumes)",
        path=where,
    )


def set_aside_wal(db: Path, notice: Callable[[str], None] | None) -> None:
    """A WAL DuckDB cannot replay: move it aside if asked (``--recover``), else say how.

    Never retried silently: every open would fail the same way (no crash loop).
    """
    wal = Path(str(db) + ".wal")
    if not _recover_wal:
        raise StorageError(
            f"database {db} cannot be opened: its write-ahead log {wal} is damaged "
            "and cannot be replayed (a crash mid-write?); run the same command with "
            "`mp --recover ...` to move the log aside and continue from the last "
            "checkpoint (a fetch then refetches the windows the log held)",
            path=str(db),
            wal=str(wal),
        )
    aside = Path(f"{wal}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.replace(wal, aside)
    except OSError as exc:
        raise StorageError(
            f"cannot move the damaged write-ahead log {wal} aside: {exc.strerror}; "
            "move it away by hand and run the command again",
            path=str(wal),
        ) from None
    if notice is not None:
        notice(
            f"moved the damaged write-ahead log aside to {aside}; "
            "continuing from the database's last checkpoint"
        )


def remove_unborn(db: Path) -> None:
    """Remove a database file DuckDB failed to create (e.g. disk full): every later
    open would otherwise call it "not a valid DuckDB database"."""
    for suffix in ("", ".wal"):
        with contextlib.suppress(OSError):
            Path(str(db) + suffix).unlink()


def private_mkdir(path: Path) -> None:
    """Create `path` and its missing parents 0700: fetched data (user ids, emails,
    purchases) is as sensitive as the credentials. Existing folders are left alone."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)  # whatever the umask


# Measured with `ulimit -v` on the 2-core CI machine: a one-day fetch needs 1.4 GB of
# address space (DuckDB reserves per-thread arenas besides its ingest pools); below
# that it fails mid-commit or aborts in C++ (exit 134).
FETCH_ADDRESS_SPACE = 1536 << 20


def check_address_space(needed: int = FETCH_ADDRESS_SPACE) -> None:
    """Refuse a fetch up front when the process's address-space limit is too small."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise StorageError(
            f"a fetch needs about {needed >> 20:,} MB of address space but this process "
            f"is limited to {soft >> 20:,} MB (ulimit -v); raise the limit "
            "(e.g. `ulimit -v unlimited`) and run again"
        )


@contextlib.contextmanager
def fetch_lock(db: Path, *, action: str | None = None) -> Iterator[None]:
    """Hold ``<db>.fetch`` (flock, our PID inside) for a whole fetch.

    Two fetches interleaving commits into one table could commit a window twice;
    the second is refused at once with DatabaseLockedError naming the holder.
    Readers are not affected. A full disk while staging (staging lives next to
    the database) is reported naming that folder. Commands that drop or export
    tables take it too (`action` names them in the refusal), so they never run
    under a fetch.
    """
    import fcntl

    private_mkdir(db.parent)
    side = Path(str(db) + ".fetch")
    while True:
        try:
            fd = os.open(side, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if action and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                yield  # a folder we cannot write to: no fetch can be writing there either
                return
            raise StorageError(
                f"cannot create {side}: {exc.strerror}; check the folder's permissions",
                path=str(side),
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            pid = int(raw) if raw.isdigit() else lock_holder_pid(side)
            raise DatabaseLockedError(str(db), pid=pid, action=action) from None
        try:
            same = os.stat(side).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)  # its holder removed the file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full_error(str(db.parent), exc) from None
        except BaseException:
            # A fetch that failed before there was a database (a directory, a file
            # that is not DuckDB, an unwritable place): leave no lock file behind.
            if not _is_duckdb_file(db):
                with contextlib.suppress(OSError):
                    side.unlink()
            raise
    finally:
        os.close(fd)  # releases the flock


def _is_duckdb_file(db: Path) -> bool:
    """True when `db` is a regular file starting with DuckDB's header (magic at byte 8)."""
    try:
        if not stat.S_ISREG(os.stat(db).st_mode):  # never open a FIFO (it would block)
            return False
        with open(db, "rb") as fh:
            return fh.read(12)[8:12] == b"DUCK"
    except OSError:
        return False
