"""The staging area of a fetch: windows downloaded ahead, and the writer's session.

Worker threads download export windows into files in a staging folder next to
the database and find each window's dedup losers there (``scan_duplicates``),
so the main database is opened only to commit. The writer takes the staged
windows in date order, several at once when they arrive together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mixpanel_data._internal.crashpoints import crash_point
from mixpanel_data._internal.services.fetch.columns import sample_file
from mixpanel_data._internal.services.fetch.ingest import (
    HEAVY_STEP,
    StagedFile,
    checkpoint_memory_limit,
    checkpoint_out_of_memory_error,
    download_window,
    is_out_of_memory,
    scan_duplicates,
    writer_memory_limit,
)
from mixpanel_data._internal.services.fetch.windows import DateWindow
from mixpanel_data._internal.storage.engine import quote_ident
from mixpanel_data._internal.storage.interrupts import deferred_interrupts
from mixpanel_data._internal.storage.served import ReadServer
from mixpanel_data.exceptions import MixpanelDataError, Retryable

if TYPE_CHECKING:
    import duckdb

    from mixpanel_data._internal.http.client import MixpanelAPIClient
    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["WriterSession", "clean_stale_staging", "download_ahead", "is_loopback"]

# Windows ready together are committed together, up to this many bytes of JSONL
# (plus the window that crosses it), and up to about COMMIT_SECONDS of work at the
# rate the commits so far ran. The first one waits for no window past FIRST_BATCH_BYTES
# (plus its window) but those already downloading with it, so a new table shows its
# first rows soon. Fewer,
# larger commits are cheaper, but a reader (`mp sql`) waits for the commit under
# way (benchmarks/reader_wait.py; 2 GB batches made it wait 8.5 s, and a typed
# insert of 128 MB takes several seconds). A window is never split: one day larger
# than the bound is one commit. The insert streams: memory does not grow with it.
BATCH_BYTES = 128 << 20
# Off (0) by default: on the 2-core machine a 1 s bound cost 1.38x the fetch's CPU
# time (1M events, benchmarks/reader_wait.py), far over the 5% allowed.
COMMIT_SECONDS = 0.0
FIRST_BATCH_BYTES = 16 << 20
# Downloaded windows wait for the next one up to COMMIT_DELAY seconds to share its
# commit, and never longer than MAX_COMMIT_LATENCY in all (readers see data by then).
COMMIT_DELAY = 0.5
MAX_COMMIT_LATENCY = 10.0
# Windows downloaded ahead of the writer (at most `workers` at once).
LOOKAHEAD_WINDOWS = 64
# A commit's write-ahead log over this is checkpointed right after it (DuckDB's own
# default threshold, which it applies inside COMMIT).
FOLD_BYTES = 16 << 20
# A reader's SELECT waits this long for the writer to reopen a file it closed (s).
LEND_WAIT = 1.0
# Readers' SELECTs answered at once (one per core here; more wait their turn).
READERS = 2
# After a stop (Ctrl-C, an error), how long to wait for worker threads to finish (s).
WORKER_EXIT_WAIT = 15.0


class _Cancelled(Exception):
    """A download was told to stop (another window failed, or Ctrl-C)."""


def is_loopback(base_url: str | None) -> bool:
    """True for 127.0.0.1/localhost: there gzip only costs CPU (the emulator)."""
    if not base_url:
        return False
    host = urlsplit(base_url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def clean_stale_staging(directory: Path) -> None:
    """Remove staging folders left by processes that died (kill -9)."""
    with contextlib.suppress(OSError):
        for entry in directory.glob(".mp-staging-*"):
            try:
                pid = int(entry.name.split("-")[2])
            except (IndexError, ValueError):
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(entry, ignore_errors=True)
            except PermissionError:
                continue


class WriterSession:
    """The fetch's write connection, held across commits, and the readers it answers.

    Holding it avoids reopening the file per commit. Readers' SELECTs are answered
    on a cursor of it (storage/served.py); it is closed only for a reader that needs
    the file itself (it waits for one commit), or, when it cannot serve, while a
    download is awaited.
    """

    def __init__(self, storage: StorageEngine, *, serve: bool = True) -> None:
        self._storage = storage
        self._stack: contextlib.ExitStack | None = None
        self._conn: duckdb.DuckDBPyConnection | None = None
        # Readers' SELECTs run on this cursor of the held connection (storage/served.py),
        # so they need not wait for it to close; the mutex keeps a close out meanwhile.
        self._serve = serve and storage.path is not None
        self._server: ReadServer | None = None
        # The readers' cursors: idle ones, and how many are lent (READERS at most).
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._lending = False  # False while the file is closed, or being closed
        self._lent = 0
        self._mutex = threading.Condition(threading.RLock())
        self._ending = False  # the last close: readers need not wait for a reopen
        self._folding = True  # checkpoint after commits (`_fold`)

    def _can_lend(self) -> bool:
        return self._lending and bool(self._idle)

    @contextlib.contextmanager
    def _lend(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A readers' cursor, lent for one read (a close waits until all are back). While
        the file is closed (a reader that needed the file itself is in), wait a moment
        for the next commit to reopen it; None after that (the reader waits for the file)."""
        with self._mutex:
            self._mutex.wait_for(lambda: self._can_lend() or self._ending, LEND_WAIT)
            if not self._can_lend():
                yield None
                return
            reader = self._idle.pop()
            self._lent += 1
        try:
            yield reader
        finally:
            with self._mutex:
                self._lent -= 1
                self._idle.append(reader)
                self._mutex.notify_all()

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The held connection, for one commit (a heavy step: only an ordinary dedup scan,
        in its own small pool, runs meanwhile)."""
        with HEAVY_STEP:
            if self._stack is None:
                stack = contextlib.ExitStack()
                conn = stack.enter_context(self._storage.writer())
                if not self._storage.is_memory:  # that connection is the user's for good
                    conn.execute(f"SET memory_limit = '{writer_memory_limit()}'")
                    # No checkpoint inside COMMIT (running out of memory there is fatal
                    # to the database): `_fold` checkpoints after each commit instead.
                    conn.execute("SET checkpoint_threshold = '4GB'")
                    # No merging of the commits' partial row groups at checkpoints: it
                    # rewrote (recompressed) about a window's rows per commit, 1.7 s of
                    # every 6 at 600k events; the smaller groups cost queries nothing.
                    conn.execute("SET max_vacuum_tasks = 0")
                    conn.execute("SET preserve_insertion_order = false")
                with self._mutex:
                    self._stack, self._conn = stack, conn
                    if self._serve:
                        self._open_reader(conn)
                        self._mutex.notify_all()
            with self._storage.writer() as conn:  # nested: reuses the held connection
                yield conn
            self._fold(conn)

    def _fold(self, conn: duckdb.DuckDBPyConnection) -> None:
        """After a commit, fold a log over FOLD_BYTES into the file, while the next
        windows download. Left to one checkpoint at the close, the inserts' log was
        rewritten there alone: 1M events took 35-36 s instead of 29-30 s. Best effort:
        a checkpoint that fails here is tried again at the close, which reports it."""
        path = self._storage.path
        if not self._folding or path is None:  # None: an in-memory database
            return
        try:
            if os.stat(f"{path}.wal").st_size < FOLD_BYTES:
                return
        except OSError:
            return
        import duckdb

        try:
            conn.execute("CHECKPOINT")
        except duckdb.Error:
            self._folding = False  # e.g. out of memory: the close's checkpoint says so

    def _open_reader(self, conn: duckdb.DuckDBPyConnection) -> None:
        """A cursor for readers' SELECTs, and the server that runs them (started once)."""
        import duckdb

        try:
            rows = conn.execute("SELECT current_database()").fetchall()  # no open result
            database = quote_ident(str(rows[0][0]) if rows else "main")
            cursors = [conn.cursor() for _ in range(READERS)]
            for cur in cursors:
                # A cursor starts in the instance's default database, not the file the
                # writer attached (storage/engine.py `open_database`).
                cur.execute(f"USE {database}")
                cur.execute("SET TimeZone = 'UTC'")
                cur.execute("SET arrow_lossless_conversion = true")
        except duckdb.Error:
            return  # readers wait for the file, as without the server
        self._idle, self._lending = cursors, True
        if self._server is None and self._storage.path is not None:
            try:
                self._server = ReadServer(self._storage.path, self._lend, readers=READERS)
            except OSError:
                self._serve = False

    def idle(self) -> None:
        """Waiting for a download: close the file for readers, unless they are answered
        here (closing checkpoints, about a second of CPU at 1M events)."""
        if self._server is None:
            self.release()

    def release(self, *, failing: bool = False) -> None:
        """Close the held connection (it checkpoints); ``failing``: never raise over an error."""
        with deferred_interrupts():  # closing checkpoints: never cut by Ctrl-C
            self._release(failing=failing)

    def _close_reader(self) -> None:
        """Stop lending the readers' cursors (the SELECTs under way end first); they must
        be closed before the connection is, or the file would stay open."""
        with self._mutex:
            self._lending = False
            self._mutex.wait_for(lambda: self._lent == 0)
            for cur in self._idle:
                with contextlib.suppress(Exception):
                    cur.close()
            self._idle = []

    def _release(self, *, failing: bool) -> None:
        if self._stack is None:
            self._close_reader()
            return
        stack, conn = self._stack, self._conn
        self._stack, self._conn = None, None
        try:
            with HEAVY_STEP:  # closing checkpoints: a heavy step too
                if conn is not None and not self._storage.is_memory:
                    import duckdb

                    # Shrinking the pool drops the blocks the inserts left cached, so
                    # the checkpoint of a large table does not come on top of them.
                    limit = checkpoint_memory_limit()
                    with contextlib.suppress(duckdb.Error):
                        conn.execute(f"SET memory_limit = '{limit}'")
                    if not failing:  # readers are still answered meanwhile
                        self._checkpoint(conn, stack, limit)
                self._close_reader()
                if failing:
                    with contextlib.suppress(Exception):
                        stack.close()
                else:
                    stack.close()
        finally:
            self._close_reader()

    def _checkpoint(
        self, conn: duckdb.DuckDBPyConnection, stack: contextlib.ExitStack, limit: str
    ) -> None:
        """Checkpoint before closing: a close that cannot checkpoint says nothing (the
        log stays behind), and one that runs out of memory must say how to fix it."""
        crash_point("checkpoint")  # the crash tests' kill before the log is folded in
        try:
            conn.execute("CHECKPOINT")
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self._close_reader()
            with contextlib.suppress(Exception):
                stack.close()
            raise checkpoint_out_of_memory_error(self._storage.display_path, limit) from exc

    def _stop_serving(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def _end(self) -> None:
        with self._mutex:
            self._ending = True
            self._mutex.notify_all()

    def close(self) -> None:
        self._end()
        try:
            self.release()
        finally:
            self._stop_serving()

    def __enter__(self) -> WriterSession:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._end()
        try:
            self.release(failing=exc is not None)
        finally:
            self._stop_serving()


def download_ahead(
    api: MixpanelAPIClient,
    storage: StorageEngine,
    todo: list[DateWindow],
    params: Mapping[str, Any],
    *,
    staging: Path,
    workers: int,
    add_bytes: Callable[[int], None],
    scan: bool = True,
    legacy_tz: str | None = None,
    on_block: Callable[[], None] | None = None,
    gzip: bool | None = None,
) -> Iterator[list[StagedFile] | tuple[DateWindow, MixpanelDataError]]:
    """Download windows ahead on worker threads; yield them in date order.

    Consecutive windows already downloaded are yielded together (up to
    BATCH_BYTES), to be committed in one transaction.

    A window whose retryable failures ran out is yielded as ``(window, error)``;
    any other error stops everything and is raised. ``gzip`` None asks for
    gzip except on loopback.
    """
    if not todo:
        return
    stop = threading.Event()
    lock = threading.Lock()
    if gzip is None:
        gzip = not is_loopback(api.credentials.base_url)
    jobs: queue.Queue[tuple[DateWindow, Future[StagedFile]] | None] = queue.Queue()

    def on_bytes(n: int) -> None:
        if stop.is_set():
            raise _Cancelled()
        with lock:
            add_bytes(n)

    def worker() -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            window, future = job
            if stop.is_set() or not future.set_running_or_notify_cancel():
                continue
            dest = staging / f"{window.start.isoformat()}.jsonl"
            try:
                staged = download_window(api, window, params, dest, gzip=gzip, on_bytes=on_bytes)
                if scan:
                    staged = scan_duplicates(staged, legacy_tz=legacy_tz)
                if staged.size:  # the typed columns' sample, while the writer commits
                    sample = sample_file(staged.path, kind="events", newlines=staged.newlines)
                    staged = dataclasses.replace(staged, sample=sample)
                future.set_result(staged)
            except BaseException as exc:
                future.set_exception(exc)

    threads = [
        threading.Thread(target=worker, name=f"mp-fetch-{i}", daemon=True)
        for i in range(min(workers, len(todo)))
    ]
    for t in threads:
        t.start()
    pending: list[tuple[DateWindow, Future[StagedFile]]] = []
    feed = iter(todo)
    ahead = max(workers + 1, LOOKAHEAD_WINDOWS)  # bounds the staged files on disk

    def fill() -> None:
        while len(pending) < ahead:
            window = next(feed, None)
            if window is None:
                return
            future: Future[StagedFile] = Future()
            pending.append((window, future))
            jobs.put((window, future))

    rate: float | None = None  # bytes of JSONL committed per second, so far

    def bound() -> int:
        if rate is None:  # the first commit: small, so a new table shows rows soon
            return min(BATCH_BYTES, FIRST_BATCH_BYTES)
        if COMMIT_SECONDS <= 0:
            return BATCH_BYTES
        return max(1, min(BATCH_BYTES, int(rate * COMMIT_SECONDS)))

    try:
        fill()
        while pending:
            window, future = pending.pop(0)
            if not future.done() and on_block is not None:
                on_block()  # e.g. close the database while waiting, for readers
            try:
                staged = future.result()
            except Exception as exc:
                if isinstance(exc, MixpanelDataError) and isinstance(exc, Retryable):
                    fill()
                    yield (window, exc)
                    continue
                raise
            batch = [staged]
            size = staged.size
            first_ready = last_ready = time.monotonic()
            fill()
            limit = bound()
            # Past FIRST_BATCH_BYTES the first commit still takes the windows that were
            # downloading (or done) when its first was ready, up to BATCH_BYTES: a short
            # fetch's windows start together, and each commit costs its own recount and
            # checkpoint (a one-day fetch committed its two export days one after the
            # other: 3.05 s instead of 2.55 s, median of 4).
            cap, started = limit, set()
            if rate is None:
                cap = max(limit, BATCH_BYTES)
                started = {id(f) for _w, f in pending if f.running() or f.done()}
            while pending and size < cap:
                if storage.readers_waiting():
                    break  # a reader waits: it gets in after this (smaller) commit
                nxt = pending[0][1]
                past = size >= limit  # only the first commit gets past its bound
                if past and id(nxt) not in started:
                    break
                if not nxt.done():
                    # While windows keep arriving, gather them into one commit:
                    # every commit costs a checkpoint that rewrites recent row
                    # groups, so one large commit is much cheaper than several.
                    # A started window past the bound is waited for without the delay.
                    now = time.monotonic()
                    left = MAX_COMMIT_LATENCY - (now - first_ready)
                    if not past:
                        left = min(left, COMMIT_DELAY - (now - last_ready))
                    if left <= 0:
                        break
                    if on_block is not None:
                        on_block()
                    wait_futures([nxt], timeout=min(left, 0.1))
                    continue
                if nxt.cancelled() or nxt.exception() is not None:
                    break
                pending.pop(0)
                batch.append(nxt.result())
                size += batch[-1].size
                last_ready = time.monotonic()
                fill()
            began = time.monotonic()
            yield batch  # the caller commits it meanwhile
            took = time.monotonic() - began
            if took > 0.05 and size > 0:  # a commit long enough to say how fast they run
                now_rate = size / took
                rate = now_rate if rate is None else (rate + now_rate) / 2
    finally:
        stop.set()
        for _window, future in pending:
            future.cancel()
        for _ in threads:
            jobs.put(None)
        # Wait for the workers (a cancelled download stops at its next chunk): a
        # thread still inside DuckDB when the interpreter exits aborts the process.
        deadline = time.monotonic() + WORKER_EXIT_WAIT
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        shutil.rmtree(staging, ignore_errors=True)
