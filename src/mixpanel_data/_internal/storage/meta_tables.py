"""The engine's own tables, ``_mp_tables`` and ``_mp_windows``, and the shapes of
fetched tables. Helpers run inside a connection the caller holds (one window's
transaction); ``storage.py`` re-exports them."""

# SQL here is built from validated, always-quoted identifiers; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson

from mixpanel_data._internal.crashpoints import crash_point

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "COLUMNS_TABLE",
    "COLUMN_DAYS_TABLE",
    "EVENTS_COLUMNS",
    "INTERNAL_PREFIX",
    "META_TABLE",
    "PROFILES_COLUMNS",
    "WINDOWS_TABLE",
    "column_catalog",
    "committed_windows",
    "create_table_sql",
    "ensure_meta",
    "forget_columns",
    "has_window_days",
    "quote_ident",
    "record_window",
    "rename_meta",
    "sql_literal",
    "window_rows",
    "write_meta",
]

META_TABLE = "_mp_tables"
WINDOWS_TABLE = "_mp_windows"
# Typed property columns (services/fetch/columns.py): one row per column (and per
# sampled property without one), and exact value counts per column and day.
COLUMNS_TABLE = "_mp_columns"
COLUMN_DAYS_TABLE = "_mp_column_days"
INTERNAL_PREFIX = "_mp_"

# The schemas: every remaining property stays in `properties`, losslessly.
EVENTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_name", "VARCHAR"),
    ("event_time", "TIMESTAMPTZ"),
    ("event_date", "DATE"),  # the event's day in the project timezone (storage/days.py)
    ("distinct_id", "VARCHAR"),
    ("insert_id", "VARCHAR"),
    ("properties", "JSON"),
)
PROFILES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("distinct_id", "VARCHAR"),
    ("last_seen", "TIMESTAMPTZ"),
    ("properties", "JSON"),
)

_META_DDL = f"""
CREATE TABLE IF NOT EXISTS {META_TABLE} (
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    project_id VARCHAR,
    fetch_args JSON,
    fetch_id VARCHAR,
    row_count BIGINT,
    windows_done INTEGER,
    windows_total INTEGER,
    from_date DATE,
    to_date DATE,
    fetched_at TIMESTAMPTZ,
    complete BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS {WINDOWS_TABLE} (
    name VARCHAR NOT NULL,
    fetch_id VARCHAR NOT NULL,
    from_date DATE NOT NULL,
    to_date DATE NOT NULL,
    rows_inserted BIGINT,
    duplicates BIGINT,
    malformed BIGINT,
    committed_at TIMESTAMPTZ,
    first_day DATE,
    last_day DATE
);
"""
# The project days a window kept (storage/days.py); NULL in databases made before them.
_WINDOW_DAYS = ("first_day", "last_day")

_COLUMNS_DDL = f"""
CREATE TABLE IF NOT EXISTS {COLUMNS_TABLE} (
    table_name VARCHAR NOT NULL,
    property VARCHAR NOT NULL,
    column_name VARCHAR,
    type VARCHAR,
    position INTEGER,
    estimated DOUBLE
);
CREATE TABLE IF NOT EXISTS {COLUMN_DAYS_TABLE} (
    table_name VARCHAR NOT NULL,
    property VARCHAR NOT NULL,
    day DATE,
    nonnull BIGINT,
    nulled BIGINT,
    u_bool BIGINT,
    u_int BIGINT,
    u_float BIGINT,
    u_str BIGINT,
    u_list BIGINT,
    u_obj BIGINT
);
"""


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB SQL (always done, even for valid names)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    """Quote a string as a SQL literal (for statements and table functions that take
    no parameters)."""
    return "'" + text.replace("'", "''") + "'"


# -- helpers shared with the ingest path (called inside one open connection) --------


def _table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_catalog = current_database() AND table_name = ?",
        [name],
    ).fetchone()
    return bool(row and row[0])


def ensure_meta(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the metadata tables if they are missing."""
    if not _table_exists(conn, META_TABLE) or not _table_exists(conn, WINDOWS_TABLE):
        conn.execute(_META_DDL)
    elif not has_window_days(conn):
        for column in _WINDOW_DAYS:  # a database made before project days
            conn.execute(f"ALTER TABLE {WINDOWS_TABLE} ADD COLUMN IF NOT EXISTS {column} DATE")
    if not _table_exists(conn, COLUMNS_TABLE) or not _table_exists(conn, COLUMN_DAYS_TABLE):
        conn.execute(_COLUMNS_DDL)


def has_window_days(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``_mp_windows`` records the project days each window kept."""
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_catalog = current_database() AND table_name = ? AND column_name = ?",
        [WINDOWS_TABLE, _WINDOW_DAYS[1]],
    ).fetchone()
    return bool(row and row[0])


def window_rows(
    conn: duckdb.DuckDBPyConnection, name: str
) -> list[tuple[date, date, date | None, date | None]]:
    """(export from, export to, first kept day, last kept day) of `name`'s windows."""
    if not _table_exists(conn, WINDOWS_TABLE):
        return []
    days = ", ".join(_WINDOW_DAYS) if has_window_days(conn) else "NULL, NULL"
    rows = conn.execute(
        f"SELECT from_date, to_date, {days} FROM {WINDOWS_TABLE} WHERE name = ?", [name]
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def create_table_sql(name: str, kind: str) -> str:
    """Return the CREATE TABLE statement for an events or profiles table."""
    columns = EVENTS_COLUMNS if kind == "events" else PROFILES_COLUMNS
    # JSON payloads compress ~4x better with zstd than with DuckDB's default string
    # codecs, and writing them is ~40% cheaper: the commit is the fetch's bottleneck.
    body = ", ".join(
        f"{quote_ident(c)} {t}" + (" USING COMPRESSION zstd" if t == "JSON" else "")
        for c, t in columns
    )
    return f"CREATE TABLE {quote_ident(name)} ({body})"


def _all_meta(
    conn: duckdb.DuckDBPyConnection, name: str | None = None
) -> dict[str, dict[str, Any]]:
    if not _table_exists(conn, META_TABLE):
        return {}
    sql = (
        f"SELECT name, kind, project_id, fetch_args, fetch_id, row_count, windows_done, "
        f"windows_total, from_date, to_date, fetched_at, complete FROM {META_TABLE}"
    )
    params: list[Any] = []
    if name is not None:
        sql += " WHERE name = ?"
        params.append(name)
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(sql, params).fetchall():
        out[row[0]] = {
            "name": row[0],
            "kind": row[1],
            "project_id": row[2],
            "fetch_args": orjson.loads(row[3]) if row[3] else {},
            "fetch_id": row[4],
            "row_count": row[5],
            "windows_done": row[6],
            "windows_total": row[7],
            "from_date": row[8],
            "to_date": row[9],
            "fetched_at": row[10],
            "complete": bool(row[11]),
        }
    return out


def write_meta(
    conn: duckdb.DuckDBPyConnection,
    *,
    name: str,
    kind: str,
    project_id: str | None,
    fetch_args: Mapping[str, Any],
    fetch_id: str,
    windows_done: int,
    windows_total: int,
    from_date: date | None,
    to_date: date | None,
    complete: bool,
    fetched_at: datetime,
) -> None:
    """Replace the metadata row of `name` (call inside the window's transaction)."""
    count = conn.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()
    conn.execute(f"DELETE FROM {META_TABLE} WHERE name = ?", [name])
    conn.execute(
        f"INSERT INTO {META_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            name,
            kind,
            project_id,
            orjson.dumps(dict(fetch_args)).decode(),
            fetch_id,
            int(count[0]) if count else 0,
            windows_done,
            windows_total,
            from_date,
            to_date,
            fetched_at,
            complete,
        ],
    )


def record_window(
    conn: duckdb.DuckDBPyConnection,
    *,
    name: str,
    fetch_id: str,
    from_date: date,
    to_date: date,
    rows_inserted: int | None,
    duplicates: int | None,
    malformed: int | None,
    committed_at: datetime,
    first_day: date | None = None,
    last_day: date | None = None,
) -> None:
    """Record one committed window of a fetch (inside the window's transaction).

    ``from_date..to_date`` are export days; ``first_day..last_day`` the project
    days whose events the window kept.
    """
    crash_point("commit")
    conn.execute(
        f"INSERT INTO {WINDOWS_TABLE} (name, fetch_id, from_date, to_date, rows_inserted, "
        "duplicates, malformed, committed_at, first_day, last_day) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            name,
            fetch_id,
            from_date,
            to_date,
            rows_inserted,
            duplicates,
            malformed,
            committed_at,
            first_day,
            last_day,
        ],
    )


def committed_windows(
    conn: duckdb.DuckDBPyConnection, *, name: str, fetch_id: str
) -> dict[date, tuple[int, int, int]]:
    """Return ``{window start: (rows, duplicates, malformed)}`` already committed by a fetch."""
    if not _table_exists(conn, WINDOWS_TABLE):
        return {}
    rows = conn.execute(
        f"SELECT from_date, rows_inserted, duplicates, malformed FROM {WINDOWS_TABLE} "
        "WHERE name = ? AND fetch_id = ?",
        [name, fetch_id],
    ).fetchall()
    return {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows}


def rename_meta(conn: duckdb.DuckDBPyConnection, *, old: str, new: str) -> None:
    """Move metadata from `old` to `new`, dropping what `new` had (the replace swap)."""
    conn.execute(f"DELETE FROM {META_TABLE} WHERE name = ?", [new])
    conn.execute(f"DELETE FROM {WINDOWS_TABLE} WHERE name = ?", [new])
    conn.execute(f"UPDATE {META_TABLE} SET name = ? WHERE name = ?", [new, old])
    conn.execute(f"UPDATE {WINDOWS_TABLE} SET name = ? WHERE name = ?", [new, old])
    if _table_exists(conn, COLUMNS_TABLE):
        for meta in (COLUMNS_TABLE, COLUMN_DAYS_TABLE):
            conn.execute(f"DELETE FROM {meta} WHERE table_name = ?", [new])
            conn.execute(f"UPDATE {meta} SET table_name = ? WHERE table_name = ?", [new, old])


def column_catalog(
    conn: duckdb.DuckDBPyConnection, table: str
) -> list[tuple[str, str, str, int, int, int]]:
    """(property, column, type, present, unfit, nulled) of each typed column of `table`,
    in column order: ``present`` values, how many were not of the column's JSON type,
    and how many of those the column could not hold (NULL there, kept in properties)."""
    if not _table_exists(conn, COLUMNS_TABLE):
        return []
    unfit = " + ".join(f"d.u_{f}" for f in ("bool", "int", "float", "str", "list", "obj"))
    rows = conn.execute(
        f"""SELECT c.property, c.column_name, c.type,
                   coalesce(sum(d.nonnull + d.nulled), 0), coalesce(sum({unfit}), 0),
                   coalesce(sum(d.nulled), 0)
            FROM {COLUMNS_TABLE} c LEFT JOIN {COLUMN_DAYS_TABLE} d
              ON d.table_name = c.table_name AND d.property = c.property
            WHERE c.table_name = ? AND c.column_name IS NOT NULL
            GROUP BY c.property, c.column_name, c.type, c.position ORDER BY c.position""",
        [table],
    ).fetchall()
    return [(str(p), str(c), str(t), int(n), int(u), int(x)) for p, c, t, n, u, x in rows]


def forget_columns(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Remove a dropped table's typed-column catalog."""
    if _table_exists(conn, COLUMNS_TABLE):
        for meta in (COLUMNS_TABLE, COLUMN_DAYS_TABLE):
            conn.execute(f"DELETE FROM {meta} WHERE table_name = ?", [name])
