"""Who holds the database, and fairness between a long writer and waiting readers."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

__all__ = ["PID_IN_TEXT", "READER_GRACE", "ReaderQueue", "WriterClaim", "lock_holder_pid"]


def lock_holder_pid(path: Path) -> int | None:
    """Find the PID holding a lock on `path` from /proc/locks (Linux), else None."""
    try:
        st = path.stat()
        with open("/proc/locks", encoding="ascii") as fh:
            lines = fh.readlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) < 6:
            continue
        pid_s, dev_ino = parts[4], parts[5]
        try:
            inode = int(dev_ino.rsplit(":", 1)[1])
            pid = int(pid_s)
        except (ValueError, IndexError):
            continue
        if inode == st.st_ino and pid != os.getpid():
            return pid
    return None


# DuckDB's IOException carries no typed lock fields; its text names the holder
# ("Conflicting lock is held in <exe> (PID 123)"). Used only when /proc/locks is
# unavailable (non-Linux).
PID_IN_TEXT = re.compile(r"\(PID (\d+)\)")


# How long a writer holds back while readers wait for the file (seconds).
READER_GRACE = 2.0


class ReaderQueue:
    """Fairness between one writer and waiting readers, via ``<db>.readers``.

    A reader that finds the database locked holds a shared flock on the side
    file while it retries; before each (brief) open, a writer waits, up to a
    grace period, until no reader holds it. So a fetch committing windows back
    to back still lets `mp sql` in between.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(str(path) + ".readers")
        self._fd: int | None = None

    def enter(self) -> None:
        if self._fd is not None:
            return
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        self._fd = fd

    def leave(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def readers_waiting(self) -> bool:
        """True when a reader holds the side file (it is waiting for the database)."""
        if not self.path.exists():
            return False
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def let_readers_in(self, *, deadline: float) -> None:
        if not self.path.exists():
            return
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    return
                except OSError:
                    if time.monotonic() >= deadline:
                        return
                    time.sleep(0.005)
        finally:
            os.close(fd)


# How long a writer tries to take its claim (readers probe it for microseconds).
CLAIM_WAIT = 1.0


class WriterClaim:
    """A writer's claim on the database, via ``<db>.writer`` (an exclusive flock, our
    PID inside), held from before it opens the file until it has closed it.

    DuckDB lets a read-only open in whenever no writer has the file, so readers
    started back to back (each holding the file a moment) could keep a writer out
    for minutes, and every reader then waited for it too. A reader that finds the
    claim taken does not open the file: it waits as for a locked database. So a
    writer waits only for the reads under way, and a reader for one commit.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(str(path) + ".writer")
        self._fd: int | None = None

    def take(self) -> None:
        """Claim the database (best effort: without the side file, as before)."""
        if self._fd is not None:
            return
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return
        deadline = time.monotonic() + CLAIM_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:  # another writer claims it: DuckDB decides
                    os.close(fd)
                    return
                time.sleep(0.002)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def claimed(self) -> tuple[bool, int | None]:
        """Whether another process claims the database, and its PID if known."""
        if not self.path.exists():
            return False, None
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False, None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                pid = int(raw) if raw.isdigit() else None
                # Our own writer: DuckDB shares the file within a process.
                return pid != os.getpid(), pid
            return False, None
        finally:
            os.close(fd)  # releases the probe's shared lock
