"""SQLService: run the user's SQL on the local database, with bound parameters.

Each query opens a short connection through the StorageEngine (read-only when
the Workspace is), so several readers run at once and a fetch is blocked for
no longer than one query. DuckDB errors are translated here, once, by type:
a query naming a missing table becomes ``TableNotFoundError`` (exit 4), any
other mistake in the SQL a ``ValidationError`` (exit 3), the rest a ``StorageError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mixpanel_data._internal.results.tables import SQLRows
from mixpanel_data._internal.storage.interrupts import as_keyboard_interrupt
from mixpanel_data._internal.storage.served import missing_tables
from mixpanel_data.exceptions import StorageError, TableNotFoundError, ValidationError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["Params", "SQLService", "translate_duckdb_errors"]

Params = Sequence[Any] | Mapping[str, Any] | None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def translate_duckdb_errors(
    conn: duckdb.DuckDBPyConnection, query: str, *, read_only: bool
) -> Iterator[None]:
    """Turn duckdb's exceptions into the library's, by type (never by message text,
    but for the interruption the binding reports as a RuntimeError)."""
    import duckdb

    try:
        with as_keyboard_interrupt():  # a Ctrl-C inside the statement
            yield
    except duckdb.CatalogException as exc:
        # A read the fetch answered carries what its snapshot lacked: a commit may
        # have created the table since (else exit 3, "invalid SQL", mid-fetch).
        missing = missing_tables(conn, query, failure=exc)
        if len(missing) == 1:
            from mixpanel_data._internal.storage.served import RemoteConnection

            served = isinstance(conn, RemoteConnection) and conn.served  # a fetch holds it
            raise TableNotFoundError(missing[0], fetch_running=served) from None
        raise ValidationError(
            f"invalid SQL: {_first_line(exc)}; list tables with `mp inspect tables`"
        ) from None
    except (duckdb.InvalidInputException, duckdb.TransactionException) as exc:
        hint = (
            "; the database is open read-only (`mp sql` only reads: "
            "change tables from Python with Workspace(read_only=False))"
            if read_only
            else ""
        )
        raise ValidationError(f"invalid SQL: {_first_line(exc)}{hint}") from None
    except (duckdb.ProgrammingError, duckdb.DataError) as exc:
        # Parser, binder, conversion and type errors: the query itself is wrong.
        raise ValidationError(f"invalid SQL: {_first_line(exc)}") from None
    except duckdb.Error as exc:
        raise StorageError(f"the query failed: {_first_line(exc)}") from None


# Statements that only read: they run on a read-only connection, so they never
# take the write lock (readers run side by side with each other and with a fetch).
_READ_ONLY_STATEMENTS = frozenset(
    {"SELECT", "EXPLAIN", "PRAGMA", "CALL", "SET", "VARIABLE_SET", "RELATION"}
)


def _writes(query: str) -> bool:
    """True if any statement of the query may change the database (DuckDB parses it)."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        return False  # the read path reports the syntax error
    return any(s.type.name not in _READ_ONLY_STATEMENTS for s in statements)


def _check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("empty SQL query; pass a statement such as 'SELECT 1'")
    return query


class SQLService:
    """Run SQL against one StorageEngine.

    Example:
        SQLService(storage).rows("SELECT count(*) FROM events WHERE event_name = ?", ["Login"])
    """

    def __init__(self, storage: StorageEngine) -> None:
        self._storage = storage

    @contextlib.contextmanager
    def _cursor(self, query: str, params: Params) -> Iterator[duckdb.DuckDBPyConnection]:
        _check_query(query)
        write = not self._storage.read_only and _writes(query)
        with self._storage.connection(write=write) as conn, self._translated(conn, query):
            yield conn.execute(query, params)

    def _translated(
        self, conn: duckdb.DuckDBPyConnection, query: str
    ) -> contextlib.AbstractContextManager[None]:
        return translate_duckdb_errors(conn, query, read_only=self._storage.read_only)

    def df(self, query: str, params: Params = None) -> pd.DataFrame:
        """Return the result as a pandas DataFrame."""
        with self._cursor(query, params) as cur:
            return cur.df()

    def scalar(self, query: str, params: Params = None) -> Any:
        """Return the first column of the first row (None when there are no rows)."""
        with self._cursor(query, params) as cur:
            row = cur.fetchone()
        return None if row is None else row[0]

    def rows(self, query: str, params: Params = None) -> SQLRows:
        """Return column names, DuckDB types and rows as Python values."""
        with self._cursor(query, params) as cur:
            description = cur.description or []
            rows = cur.fetchall()
        return SQLRows(
            columns=tuple(d[0] for d in description),
            types=tuple(str(d[1]) for d in description),
            rows=tuple(tuple(r) for r in rows),
        )
