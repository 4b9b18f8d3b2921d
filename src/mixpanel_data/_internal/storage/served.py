"""Reads answered by the fetch that holds the database (issue 14: readers wait < 2 s).

DuckDB lets one process open a file for writing and none other meanwhile, so a reader
(`mp sql`) used to wait until the fetch closed the file, and every close checkpoints
(about a second of CPU per close at 1M events, `benchmarks/reader_wait.py`). Instead
the fetch answers reads itself: it listens on a Unix socket (in a private 0700 folder,
named in ``<db>.serve``, 0600) and runs each read on its own cursor of the open
database, which sees what was committed (DuckDB's MVCC), concurrently with the commit
under way. A reader that finds the file held sends its ``SELECT`` there and gets the
rows as an Arrow stream, loaded into a private in-memory DuckDB connection, so its
caller sees an ordinary DuckDB result.

Only plain ``SELECT`` statements (and not ``checkpoint()``) are served; anything else,
and any trouble reaching the fetch, falls back to waiting for the file as before. The
server accepts only connections from its own user (``SO_PEERCRED``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ReadServer",
    "RemoteConnection",
    "missing_tables",
    "servable",
    "served_connection",
]

_T = TypeVar("_T")
_OK, _ERROR, _DECLINED = b"R", b"E", b"D"
# A reader gives up on the fetch (and waits for the file) when it does not answer.
CONNECT_TIMEOUT = 5.0
_HEADER = struct.Struct("!I")
_PREFIX = "mp-serve-"
_MAX_REQUEST = 64 << 20


def _advert(db: Path) -> Path:
    return Path(str(db) + ".serve")


def servable(conn: duckdb.DuckDBPyConnection, query: str) -> bool:
    """True for statements the fetch may run for a reader: plain SELECTs only."""
    import duckdb

    if "checkpoint" in query.lower():  # checkpoint()/force_checkpoint() are SELECTs
        return False
    try:
        statements = conn.extract_statements(query)
    except duckdb.Error:
        return False
    return bool(statements) and all(s.type == duckdb.StatementType.SELECT for s in statements)


_SEEN_MISSING = "missing_tables"  # on a served read's catalog error: what its snapshot lacked


def missing_tables(
    conn: duckdb.DuckDBPyConnection, query: str, *, failure: BaseException | None = None
) -> list[str]:
    """Tables ``query`` names that ``conn``'s catalog lacks (DuckDB parses the query).

    After a catalog error (``failure``) on a served read, the fetch's answer: the tables
    the snapshot of the failed statement lacked, so one committed since still counts."""
    import duckdb

    seen = getattr(failure, _SEEN_MISSING, None)
    if seen is not None:
        return list(seen)

    try:
        named = duckdb.get_table_names(query)
    except duckdb.Error:
        return []
    existing = {
        r[0].lower()
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables UNION ALL "
            "SELECT view_name FROM duckdb_views()"
        ).fetchall()
    }
    return sorted(n for n in named if n.lower() not in existing)


def _send(sock: socket.socket, kind: bytes, body: bytes) -> None:
    sock.sendall(kind + _HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the fetch closed the connection")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class ReadServer:
    """Answers readers' SELECTs on cursors the writer lends (``cursor()``), or declines
    while the writer has the file closed. Up to ``readers`` at once, a thread each (a
    long query does not hold up a short one); the rest wait their turn."""

    def __init__(
        self,
        db: Path,
        cursor: Callable[[], contextlib.AbstractContextManager[Any]],
        *,
        readers: int = 1,
    ):
        self._db = db
        self._cursor = cursor
        self._slots = threading.BoundedSemaphore(readers)
        self._handlers: set[threading.Thread] = set()
        self._handlers_lock = threading.Lock()
        _clean_stale(db)
        self._dir = Path(tempfile.mkdtemp(prefix=_PREFIX))  # 0700 by mkdtemp
        self._path = self._dir / "s"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(str(self._path))
            os.chmod(self._path, 0o600)
            self._sock.listen(16)
            advert = _advert(db)
            tmp = advert.with_name(advert.name + f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n{self._path}\n")
            os.replace(tmp, advert)
        except OSError:
            self._sock.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="mp-read-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop answering (readers then wait for the file) and remove the socket."""
        advert = _advert(self._db)
        with contextlib.suppress(OSError):
            if advert.read_text().split("\n")[0] == str(os.getpid()):
                advert.unlink()
        self._stop.set()
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake,  # ends accept()
        ):
            wake.connect(str(self._path))
        self._thread.join(timeout=30)
        with self._handlers_lock:
            handlers = list(self._handlers)
        for handler in handlers:  # the reads under way end first
            handler.join(timeout=30)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._slots.acquire()  # a free slot first: the rest wait in the backlog
            try:
                client, _ = self._sock.accept()
            except OSError:
                self._slots.release()
                return
            if self._stop.is_set():
                client.close()
                self._slots.release()
                return
            handler = threading.Thread(
                target=self._handle, args=(client,), name="mp-read", daemon=True
            )
            with self._handlers_lock:
                self._handlers.add(handler)
            handler.start()

    def _handle(self, client: socket.socket) -> None:
        try:
            with client, contextlib.suppress(Exception):  # a reader that went away
                self._answer(client)
        finally:
            with self._handlers_lock:
                self._handlers.discard(threading.current_thread())
            self._slots.release()

    def _answer(self, client: socket.socket) -> None:
        creds = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            return
        client.settimeout(CONNECT_TIMEOUT)
        (size,) = _HEADER.unpack(_recv_exact(client, _HEADER.size))
        if size > _MAX_REQUEST:
            return
        request = orjson.loads(_recv_exact(client, size))
        client.settimeout(None)
        with self._cursor() as cur:
            if cur is None or not servable(cur, request["sql"]):
                _send(client, _DECLINED, b"")
                return
            self._run(client, cur, request["sql"], request.get("params"))

    @staticmethod
    def _run(client: socket.socket, cur: Any, sql: str, params: Any) -> None:
        import duckdb
        import pyarrow as pa

        # One read transaction: a catalog error is explained from the snapshot the
        # statement saw, not from a catalog a commit may have changed since.
        cur.execute("BEGIN TRANSACTION")
        try:
            try:
                relation = cur.sql(sql, params=params or None)
                if relation is None:
                    raise duckdb.InvalidInputException("the statement returned no result")
                # DuckDB 2 names it to_arrow_reader, 1.x fetch_arrow_reader.
                reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
                batches = reader(1 << 16)
            except duckdb.Error as exc:
                body: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
                if isinstance(exc, duckdb.CatalogException):
                    with contextlib.suppress(duckdb.Error):  # else the reader looks itself
                        body["missing"] = missing_tables(cur, sql)
                _send(client, _ERROR, orjson.dumps(body))
                return
            client.sendall(_OK)
            with client.makefile("wb") as out, pa.ipc.new_stream(out, batches.schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")


def _clean_stale(db: Path) -> None:
    """Remove the advert and socket folder of a fetch that died (kill -9) on ``db``."""
    advert = _advert(db)
    try:
        pid_text, path, *_ = advert.read_text().split("\n")
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
        return  # alive (a second fetch is refused by the fetch lock before it gets here)
    except ProcessLookupError:
        pass
    except PermissionError:
        return
    folder = Path(path).parent
    if folder.name.startswith(_PREFIX) and folder.parent == Path(tempfile.gettempdir()):
        with contextlib.suppress(OSError):
            if folder.stat().st_uid == os.getuid() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        advert.unlink()


def _server_path(db: Path) -> str | None:
    """The socket the fetch holding ``db`` answers on, if it advertises one we trust."""
    advert = _advert(db)
    try:
        fd = os.open(advert, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        lines = f.read(4096).split("\n")
    return lines[1] if len(lines) > 1 and lines[1] else None


class _Declined(Exception):
    """The fetch did not run the statement (not a SELECT, or its file is closed)."""


def _ask(path: str, sql: str, params: Any, load: Callable[[Any], _T]) -> _T:
    """``load`` over the rows of ``sql`` from the fetch at ``path`` (an Arrow stream).

    The stream is read with nanoarrow: importing pyarrow (and numpy) cost each reader
    process 0.18 s of CPU, which readers every 0.5 s took from a fetch on 2 cores."""
    import duckdb
    import nanoarrow as na
    import nanoarrow.ipc as na_ipc

    body = orjson.dumps({"sql": sql, "params": params})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(path)
            sock.sendall(_HEADER.pack(len(body)) + body)
            sock.settimeout(None)  # the query takes what it takes, as a local one would
            kind = _recv_exact(sock, 1)
        except OSError as exc:
            raise _Declined() from exc
        if kind == _DECLINED:
            raise _Declined()
        if kind == _ERROR:
            (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
            error = orjson.loads(_recv_exact(sock, size))
            if error["type"] == "OutOfMemoryException":  # the fetch's pool: wait, run it here
                raise _Declined()
            failure = getattr(duckdb, error["type"], duckdb.Error)(error["message"])
            if "missing" in error:
                vars(failure)[_SEEN_MISSING] = error["missing"]
            raise failure
        try:
            with sock.makefile("rb") as stream:
                return load(na.ArrayStream(na_ipc.InputStream.from_readable(stream)))
        except (OSError, duckdb.Error, ValueError, RuntimeError) as exc:
            raise _Declined() from exc  # cut mid-way: run it here instead


class RemoteConnection:
    """A read-only stand-in for a DuckDB connection while a fetch holds the file.

    SELECTs go to the fetch; their rows come back in a private in-memory connection
    (so ``execute(...).fetchall()``, ``description`` and Arrow results work as usual).
    Settings apply to that connection. Anything else, or a fetch that stops answering,
    switches to a real read-only connection (``open_local``: waiting for the file)."""

    def __init__(self, path: str, open_local: Callable[[], duckdb.DuckDBPyConnection]):
        import duckdb

        self._path: str | None = path
        self._open_local = open_local
        self._local: duckdb.DuckDBPyConnection | None = None
        self._mem = duckdb.connect(":memory:")
        self._mem.execute("SET arrow_lossless_conversion = true")

    @property
    def served(self) -> bool:
        """True while the fetch answers (no local connection was opened instead)."""
        return self._local is None

    def _real(self) -> duckdb.DuckDBPyConnection:
        if self._local is None:
            self._path = None
            self._local = self._open_local()
        return self._local

    def _fetched(self, query: str, params: Any) -> duckdb.DuckDBPyConnection | None:
        """A cursor holding the rows of ``query`` from the fetch, or None to run it here."""
        if self._path is None or not servable(self._mem, query):
            return None
        if params is not None and not isinstance(params, list | tuple):
            return None
        try:
            values = list(params) if params is not None else None
            return _ask(self._path, query, values, self._load)
        except _Declined:
            self._path = None
            return None
        except TypeError:  # a parameter JSON cannot carry
            return None

    def execute(self, query: str, parameters: Any = None) -> Any:
        if self._local is None:
            kind = self._statement_kind(query)
            if kind == "set":
                return self._mem.execute(query, parameters)
            cur = self._fetched(query, parameters) if kind == "select" else None
            if cur is not None:
                return cur.execute("SELECT * FROM __mp_served")
        return self._real().execute(query, parameters)

    def sql(self, query: str, params: Any = None) -> Any:
        if self._local is None:
            cur = self._fetched(query, params)
            if cur is not None:
                return cur.sql("SELECT * FROM __mp_served")
        return self._real().sql(query, params=params)

    def _load(self, stream: Any) -> duckdb.DuckDBPyConnection:
        """The rows, read whole into a temporary table of a cursor of their own (it
        goes with the result); in order, as the fetch sent them."""
        cur = self._mem.cursor()
        cur.register("__mp_stream", stream)
        try:
            cur.execute("CREATE TEMP TABLE __mp_served AS SELECT * FROM __mp_stream")
        finally:
            cur.unregister("__mp_stream")
        return cur

    def _statement_kind(self, query: str) -> str:
        import duckdb

        try:
            kinds = {s.type for s in self._mem.extract_statements(query)}
        except duckdb.Error:
            return "other"
        if kinds == {duckdb.StatementType.SET}:
            return "set"
        return "select" if kinds == {duckdb.StatementType.SELECT} else "other"

    def interrupt(self) -> None:
        if self._local is not None:
            self._local.interrupt()

    def close(self) -> None:
        self._mem.close()
        if self._local is not None:
            self._local.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


def served_connection(
    db: Path, open_local: Callable[[], duckdb.DuckDBPyConnection]
) -> RemoteConnection | None:
    """A connection answered by the fetch holding ``db``, or None when none answers."""
    path = _server_path(db)
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(CONNECT_TIMEOUT)
            probe.connect(path)
    except OSError:
        return None
    return RemoteConnection(path, open_local)
