"""SQLSandbox: run an agent's SQL on its own locked-down, read-only DuckDB connection.

An agent writes SQL we never see in advance, so the engine itself enforces the
rules, not a text filter: the connection is opened read-only with external
access (files, URLs, ATTACH, COPY, INSTALL/LOAD) and extension auto-loading
off, a memory and thread limit, and a locked configuration so ``SET`` cannot
lift any of it. A timer interrupts the query at the time limit, and only the
first ``max_rows`` rows are returned (the rest are counted, not kept).

The statement-type check in front of the engine exists for the message: an
agent told "only SELECT is allowed" fixes its query, one told "Catalog Error"
often retries the same thing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixpanel_data.exceptions import (
    DatabaseLockedError,
    DatabaseNotFoundError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    import duckdb

__all__ = ["SQLSandbox", "SandboxLimits", "SandboxResult"]

# Statement types an agent may run. DESCRIBE, SHOW, SUMMARIZE, WITH and FROM-first
# queries all parse as SELECT; everything else (SET, PRAGMA, CALL, COPY, ATTACH,
# LOAD, CREATE, INSERT, ...) is refused before it reaches the engine.
_ALLOWED = frozenset({"SELECT"})
_LOCK_RETRY_SECONDS = 5.0
# Lists are cut to this many items (plus one, so the answer layer sees that more
# existed) before they become Python objects: one LIST cell can hold millions.
LIST_ITEMS = 100
_CONFIGURE = threading.Lock()  # one thread at a time sets up a shared database instance


@dataclass(frozen=True)
class SandboxLimits:
    """How much one agent query may use: rows returned, seconds, memory and threads."""

    max_rows: int = 100
    timeout: float = 10.0
    memory_limit: str = "1GB"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValidationError("max_rows must be at least 1")
        if self.timeout <= 0:
            raise ValidationError("the SQL time limit must be positive (seconds)")
        if self.threads < 1:
            raise ValidationError("threads must be at least 1")


@dataclass(frozen=True)
class SandboxResult:
    """The first rows of a query's result, with the total row count and the time it took."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    total_rows: int
    elapsed_ms: float = field(compare=False)

    @property
    def truncated(self) -> bool:
        """True when the result had more rows than were returned."""
        return self.total_rows > len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain data (values as DuckDB gave them)."""
        return {
            "columns": list(self.columns),
            "types": list(self.types),
            "rows": [list(r) for r in self.rows],
            "total_rows": self.total_rows,
            "truncated": self.truncated,
            "elapsed_ms": self.elapsed_ms,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SQLSandbox:
    """Run one read-only SELECT at a time against a database file, within limits.

    Each query opens its own connection and closes it, so the database is never
    held open between an agent's calls (a fetch can commit in between).

    Example:
        sandbox = SQLSandbox("~/.mp/data/123.duckdb", limits=SandboxLimits(max_rows=50))
        result = sandbox.run("SELECT event_name, count(*) FROM events GROUP BY 1")
    """

    def __init__(self, path: str | Path, *, limits: SandboxLimits | None = None) -> None:
        if str(path) == ":memory:":
            raise ValidationError(
                "the SQL sandbox needs a database file, not :memory:; "
                "set MP_DB_PATH or --db to a file path"
            )
        self.path = Path(path).expanduser().absolute()
        self.limits = limits or SandboxLimits()

    def __repr__(self) -> str:
        return f"SQLSandbox({str(self.path)!r}, {self.limits!r})"

    # -- checks before the engine ---------------------------------------------------

    def check(self, query: str) -> None:
        """Refuse anything but one SELECT, with a message an agent can act on."""
        import duckdb

        if not isinstance(query, str) or not query.strip():
            raise ValidationError("empty SQL query; send one SELECT statement")
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            raise ValidationError(f"invalid SQL: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise ValidationError(
                f"send exactly one SQL statement (got {len(statements)}); "
                "split the work into separate queries"
            )
        kind = statements[0].type.name
        if kind not in _ALLOWED:
            raise ValidationError(
                f"refused: only read-only SELECT queries may run here (got {kind}); "
                "the agent SQL sandbox cannot change the database, its settings, "
                "files or extensions. Use the fetch tools to load data"
            )

    # -- the connection ---------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "enable_external_access": False,  # no files, URLs, ATTACH, COPY, INSTALL
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "memory_limit": self.limits.memory_limit,
            "threads": self.limits.threads,
        }

    def connect(self) -> duckdb.DuckDBPyConnection:
        """Open the locked-down read-only connection (caller closes it)."""
        import duckdb

        if not self.path.exists():
            raise DatabaseNotFoundError(str(self.path))
        deadline = time.monotonic() + _LOCK_RETRY_SECONDS
        while True:
            try:
                conn = duckdb.connect(str(self.path), read_only=True, config=self._config())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() and "PID" not in str(exc):
                    raise StorageError(
                        f"cannot open database {self.path}: {_first_line(exc)}",
                        path=str(self.path),
                    ) from None
                if time.monotonic() > deadline:
                    from mixpanel_data._internal.storage.engine import lock_holder_pid

                    raise DatabaseLockedError(
                        str(self.path), pid=lock_holder_pid(self.path)
                    ) from None
                time.sleep(0.05)
            except duckdb.Error as exc:
                raise StorageError(
                    f"cannot open database {self.path}: {_first_line(exc)}", path=str(self.path)
                ) from None
        try:
            self._lock_down(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _lock_down(conn: duckdb.DuckDBPyConnection) -> None:
        """Set UTC and lock the configuration, once per in-process database instance.

        ICU's TimeZone cannot be passed at connect with auto-loading off, so it is set
        here (GLOBAL: connections of one process share the instance) and the
        configuration is locked straight after, before any agent SQL runs.
        Timestamps then read in UTC, as with ws.sql.
        """
        with _CONFIGURE:
            locked = conn.sql("SELECT current_setting('lock_configuration')").fetchall()
            if not locked[0][0]:
                conn.execute("SET GLOBAL TimeZone = 'UTC'")
                conn.execute("SET lock_configuration = true")
            zone = conn.sql("SELECT current_setting('TimeZone')").fetchall()
        if zone[0][0] != "UTC":
            raise StorageError("the sandbox connection could not be set to UTC; retry")

    # -- running ------------------------------------------------------------------------

    def run(self, query: str, *, max_rows: int | None = None) -> SandboxResult:
        """Run one SELECT; return its first rows and its total row count.

        Raises ValidationError when the query is refused, breaks a limit or is wrong.
        """
        self.check(query)
        cap = self.limits.max_rows if max_rows is None else max_rows
        if cap < 1:
            raise ValidationError("max_rows must be at least 1")
        import pyarrow.compute  # noqa: F401  (`_shorten` uses it; imported outside the limit)

        started = time.monotonic()
        conn = self.connect()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            conn.interrupt()

        timer = threading.Timer(self.limits.timeout, stop)
        timer.daemon = True
        timer.start()
        deadline = time.monotonic() + self.limits.timeout
        try:
            relation = conn.sql(query)
            if relation is None:  # not a query after all; check() makes this unreachable
                raise ValidationError("refused: the statement returned no result")
            columns = tuple(relation.columns)
            types = tuple(str(t) for t in relation.types)
            kept: list[tuple[Any, ...]] = []
            total = 0
            for batch in relation.to_arrow_reader(2048):
                if len(kept) < cap:
                    # Column by column, so duplicate column names keep their own values.
                    head = batch.slice(0, cap - len(kept))
                    values = []
                    for i in range(head.num_columns):
                        values.append(_shorten(head.column(i)).to_pylist())
                        if time.monotonic() > deadline:  # the timer cannot stop Python
                            fired.set()
                            raise TimeoutError
                    kept.extend(zip(*values, strict=True))
                total += batch.num_rows
        except ValidationError:
            raise
        except Exception as exc:
            if fired.is_set():
                raise ValidationError(
                    f"query stopped at the {self.limits.timeout:g} s time limit; "
                    "add filters, aggregate, or query a smaller table"
                ) from None
            raise _translate(exc, memory_limit=self.limits.memory_limit) from None
        finally:
            timer.cancel()
            conn.close()
        elapsed = round((time.monotonic() - started) * 1000, 1)
        return SandboxResult(
            columns=columns, types=types, rows=tuple(kept), total_rows=total, elapsed_ms=elapsed
        )


def _shorten(array: Any) -> Any:
    """Cut every list in an Arrow array (nested in lists and structs too) to
    LIST_ITEMS + 1 items, so converting it to Python costs little whatever its size."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if len(array) == 0:
            return array
        lengths = pc.list_value_length(array)
        longest = pc.max(lengths).as_py() or 0
        cut = pc.list_slice(array, 0, LIST_ITEMS + 1) if longest > LIST_ITEMS + 1 else array
        values = _shorten(cut.flatten())
        offsets = pc.subtract(cut.offsets, cut.offsets[0])
        return type(cut).from_arrays(offsets, values, mask=cut.is_null())
    if pa.types.is_struct(kind):
        fields = [_shorten(array.field(i)) for i in range(kind.num_fields)]
        return pa.StructArray.from_arrays(fields, fields=list(kind), mask=array.is_null())
    return array


def _translate(exc: Exception, *, memory_limit: str) -> Exception:
    """Map a duckdb error to the library's, by type (contract: one exception tree)."""
    import duckdb

    if isinstance(exc, duckdb.PermissionException):
        return ValidationError(
            "refused: the agent SQL sandbox cannot read or write files, attach databases "
            f"or load extensions ({_first_line(exc)}); query the local tables instead"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ValidationError(
            f"query needs more than the {memory_limit} memory limit; "
            "aggregate, add filters or select fewer columns"
        )
    if isinstance(exc, duckdb.CatalogException):
        return ValidationError(
            f"invalid SQL: {_first_line(exc)}; list tables with the list_tables tool"
        )
    if isinstance(exc, duckdb.InvalidInputException):
        return ValidationError(f"refused: {_first_line(exc)}")
    if isinstance(exc, duckdb.Error):
        return ValidationError(f"invalid SQL: {_first_line(exc)}")
    return StorageError(f"the query failed: {_first_line(exc)}")
