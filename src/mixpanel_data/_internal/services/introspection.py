"""IntrospectionService: what is in the local database, answered by DuckDB.

Behind ``ws.info()``, ``ws.tables()``, ``ws.table_schema()``, ``ws.sample()``,
``ws.summarize()``, ``ws.event_breakdown()``, ``ws.property_keys()``,
``ws.column_stats()``, ``ws.drop()`` and ``ws.drop_all()`` (and `mp inspect`).
Every query is one aggregate pushed down to DuckDB; table names are validated
and quoted, values and JSON paths travel as bound parameters.
"""

# SQL here is built from validated, always-quoted identifiers; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixpanel_data._internal.results.notebook import ResultList
from mixpanel_data._internal.results.tables import (
    ColumnInfo,
    ColumnStats,
    EventBreakdown,
    EventStats,
    NumericStats,
    TableInfo,
    TableSchema,
    WorkspaceInfo,
)
from mixpanel_data._internal.services.sql import translate_duckdb_errors
from mixpanel_data._internal.storage.engine import quote_ident, validate_table_name
from mixpanel_data._internal.storage.meta_tables import column_catalog
from mixpanel_data.exceptions import (
    DatabaseNotFoundError,
    TableNotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["ColumnExpr", "IntrospectionService", "parse_column_expr"]

TABLE_KINDS = ("events", "profiles")
TOP_VALUES = 10

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_COLUMN_EXPR = re.compile(
    rf"""^\s*(?P<column>{_IDENT})\s*
        (?:(?P<op>->>|->)\s*'(?P<path>(?:[^']|'')*)')?\s*$""",
    re.VERBOSE,
)
_SHORTHAND = re.compile(r"^\s*(?P<path>\$\S.*?)\s*$")


@dataclass(frozen=True)
class ColumnExpr:
    """A column, or a JSON path into one: ``price``, ``properties->>'$.price'``.

    ``op`` is ``->>`` (the value as text) or ``->`` (as JSON), None for a plain column.
    """

    column: str
    op: str | None = None
    path: str | None = None

    def sql(self) -> str:
        """The SQL text; the path is the one bound parameter (``?``) when there is one."""
        if self.op is None:
            return quote_ident(self.column)
        return f"({quote_ident(self.column)} {self.op} ?)"

    def params(self) -> list[Any]:
        """Bound parameters for `sql()`."""
        return [] if self.path is None else [self.path]

    def __str__(self) -> str:
        if self.op is None or self.path is None:
            return self.column
        return f"{self.column}{self.op}'{self.path.replace(chr(39), chr(39) * 2)}'"


def parse_column_expr(text: str) -> ColumnExpr:
    """Parse a column or JSON path expression, or raise ValidationError.

    Accepted: ``column``, ``column->>'$.a.b'``, ``column->'$.a'`` and the
    shorthand ``$.a.b`` for ``properties->>'$.a.b'``. A JSON path starts with ``$``.
    """
    shorthand = _SHORTHAND.match(text)
    if shorthand:
        return ColumnExpr(column="properties", op="->>", path=shorthand["path"])
    match = _COLUMN_EXPR.match(text)
    if match is None:
        raise ValidationError(
            f"invalid column expression {text!r}; use a column name or a JSON path "
            "such as properties->>'$.price' (or $.price)"
        )
    if match["op"] is None:
        return ColumnExpr(column=match["column"])
    path = match["path"].replace("''", "'")
    if not path.startswith("$"):
        raise ValidationError(
            f"invalid JSON path {path!r} in {text!r}; a path starts with $, e.g. '$.price'"
        )
    return ColumnExpr(column=match["column"], op=match["op"], path=path)


def _number(value: float) -> int | float:
    """A whole float as an int (JSON ``5`` reads back as ``5``, not ``5.0``)."""
    return int(value) if value.is_integer() else value


def _kind_of(columns: Sequence[ColumnInfo]) -> str:
    names = {c.name for c in columns}
    if {"event_name", "event_time", "distinct_id", "properties"} <= names:
        return "events"
    if {"distinct_id", "properties"} <= names:
        return "profiles"
    return "other"


class IntrospectionService:
    """Describe and tidy the local database of one StorageEngine.

    Example:
        IntrospectionService(storage).event_breakdown("events").events[0].event_name
    """

    def __init__(self, storage: StorageEngine, *, project_id: str | None = None) -> None:
        self._storage = storage
        self._project_id = project_id

    # -- plumbing ------------------------------------------------------------------

    def _exists(self) -> bool:
        """False for a read-write database not created yet; raises for a read-only one."""
        if self._storage.exists():
            return True
        if self._storage.read_only:
            raise DatabaseNotFoundError(self._storage.display_path)
        return False

    @contextlib.contextmanager
    def _reader(self, query: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
        self._exists()
        with (
            self._storage.reader() as conn,
            translate_duckdb_errors(conn, query, read_only=self._storage.read_only),
        ):
            yield conn

    def _columns(self, conn: duckdb.DuckDBPyConnection, name: str) -> list[ColumnInfo]:
        """The table's columns, or TableNotFoundError (names are validated first)."""
        validate_table_name(name)
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() "
            "AND table_name = ? ORDER BY ordinal_position",
            [name],
        ).fetchall()
        if not rows:
            raise TableNotFoundError(name)
        return [ColumnInfo(name=r[0], type=r[1], nullable=r[2] == "YES") for r in rows]

    def _require_kind(self, conn: duckdb.DuckDBPyConnection, name: str, *kinds: str) -> str:
        kind = self._kind(conn, name)
        if kind not in kinds:
            raise ValidationError(
                f"table '{name}' is a {kind} table; this needs a "
                f"{' or '.join(kinds)} table (see `mp inspect tables`)",
                table=name,
            )
        return kind

    def _kind(self, conn: duckdb.DuckDBPyConnection, name: str) -> str:
        columns = self._columns(conn, name)
        meta = self._storage.table_metadata(name)
        return str(meta["kind"]) if meta else _kind_of(columns)

    # -- whole database ------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        """Every user table with its row count and fetch metadata, by name.

        A table made with SQL has no fetch metadata; its kind comes from its columns,
        so an events-shaped ``CREATE TABLE purchases AS ...`` is an events table too.
        """
        from dataclasses import replace

        if not self._exists():
            return ResultList()
        tables = self._storage.list_tables()
        if all(t.kind != "other" for t in tables):
            return ResultList(tables)
        with self._reader() as conn:
            columns: dict[str, list[ColumnInfo]] = {}
            for table, column in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_catalog = current_database()"
            ).fetchall():
                columns.setdefault(table, []).append(ColumnInfo(name=column, type=""))
        return ResultList(
            replace(t, kind=_kind_of(columns.get(t.name, []))) if t.kind == "other" else t
            for t in tables
        )

    def info(self) -> WorkspaceInfo:
        """Path, size on disk, project and tables of the database."""
        import duckdb

        path = self._storage.path
        size = 0
        if path is not None:
            for suffix in ("", ".wal"):
                with contextlib.suppress(OSError):
                    size += (path.parent / (path.name + suffix)).stat().st_size
        tables = tuple(self.tables())
        project = self._project_id
        if project is None:
            for table in tables:
                meta = self._storage.table_metadata(table.name)
                if meta and meta.get("project_id"):
                    project = str(meta["project_id"])
                    break
        return WorkspaceInfo(
            path=self._storage.display_path,
            size_bytes=size,
            project_id=project,
            duckdb_version=duckdb.__version__,
            tables=tables,
        )

    # -- one table -----------------------------------------------------------------

    def table_schema(self, name: str) -> TableSchema:
        """The table's columns, kind and row count; typed property columns also say
        which property they hold, the share of rows that have it and how many values
        did not fit their type (docs/typed-columns.md)."""
        from dataclasses import replace

        with self._reader() as conn:
            columns = self._columns(conn, name)
            count = conn.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()
            catalog = {c[1].lower(): c for c in column_catalog(conn, name)}
        rows = int(count[0]) if count else 0
        for i, col in enumerate(columns):
            typed = catalog.get(col.name.lower())
            if typed is not None:
                prop, _name, _type, present, unfit, nulled = typed
                columns[i] = replace(
                    col,
                    property=prop,
                    share=round(present / rows, 4) if rows else 0.0,
                    unfit=unfit,
                    nulled=nulled,
                )
        meta = self._storage.table_metadata(name)
        return TableSchema(
            name=name,
            kind=str(meta["kind"]) if meta else _kind_of(columns),
            row_count=rows,
            columns=tuple(columns),
        )

    def sample(self, name: str, n: int = 10) -> pd.DataFrame:
        """A uniform random sample of `n` rows (all rows if the table is smaller);
        ``ws.sample("events", 5)`` reads like ``df.sample(5)``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValidationError(f"invalid sample size {n!r}; give a positive number of rows")
        with self._reader() as conn:
            self._columns(conn, name)
            return conn.execute(
                f"SELECT * FROM {quote_ident(name)} USING SAMPLE reservoir({int(n)} ROWS)"
            ).df()

    def summarize(self, name: str) -> pd.DataFrame:
        """DuckDB's SUMMARIZE: per column min, max, approx unique, avg, quartiles, nulls."""
        with self._reader() as conn:
            self._columns(conn, name)
            return conn.execute(f"SUMMARIZE SELECT * FROM {quote_ident(name)}").df()

    def event_breakdown(self, name: str) -> EventBreakdown:
        """Per event: count, unique users, first and last seen; most frequent first."""
        table = quote_ident(name)
        with self._reader() as conn:
            self._require_kind(conn, name, "events")
            total = conn.execute(
                f"SELECT count(*), count(DISTINCT distinct_id), min(event_time), "
                f"max(event_time) FROM {table}"
            ).fetchone()
            rows = conn.execute(
                f"SELECT event_name, count(*) AS n, count(DISTINCT distinct_id), "
                f"min(event_time), max(event_time) FROM {table} "
                f"GROUP BY event_name ORDER BY n DESC, event_name"
            ).fetchall()
        assert total is not None
        total_events = int(total[0])
        return EventBreakdown(
            table=name,
            total_events=total_events,
            total_users=int(total[1]),
            first_seen=total[2],
            last_seen=total[3],
            events=tuple(
                EventStats(
                    event_name=r[0],
                    count=int(r[1]),
                    unique_users=int(r[2]),
                    first_seen=r[3],
                    last_seen=r[4],
                    pct_of_total=round(100.0 * int(r[1]) / total_events, 4),
                )
                for r in rows
            ),
        )

    def property_keys(self, name: str, *, event: str | None = None) -> list[str]:
        """The distinct top-level keys of `properties`, sorted (optionally for one event)."""
        table = quote_ident(name)
        with self._reader() as conn:
            kind = self._require_kind(conn, name, *TABLE_KINDS)
            if event is not None and kind != "events":
                raise ValidationError(
                    f"--event filters events; table '{name}' holds {kind}", table=name
                )
            where, params = ("WHERE event_name = ?", [event]) if event is not None else ("", [])
            rows = conn.execute(
                f"SELECT DISTINCT unnest(json_keys(properties)) AS key FROM {table} "
                f"{where} ORDER BY key",
                params,
            ).fetchall()
        return [r[0] for r in rows]

    def column_stats(self, name: str, expr: str, *, top: int = TOP_VALUES) -> ColumnStats:
        """Count, nulls, distinct, min/max, top values and a numeric summary of one expression.

        `expr` is a column name or a JSON path into one (``properties->>'$.price'``,
        shorthand ``$.price``). Values that read as numbers get the numeric summary,
        so a property sometimes sent as a string (``"19.99"``) is still counted.
        """
        parsed = parse_column_expr(expr)
        table = quote_ident(name)
        with self._reader() as conn:
            columns = {c.name: c for c in self._columns(conn, name)}
            column = columns.get(parsed.column)
            if column is None:
                raise ValidationError(
                    f"column '{parsed.column}' is not in table '{name}' "
                    f"(columns: {', '.join(columns)})",
                    table=name,
                )
            if parsed.op is not None and column.type not in ("JSON", "VARCHAR"):
                raise ValidationError(
                    f"column '{parsed.column}' is {column.type}; JSON paths need a JSON column"
                )
            value = parsed.sql()
            base = f"SELECT {value} AS v FROM {table}"
            params = parsed.params()
            sql_type = conn.execute(f"SELECT typeof({value}) FROM {table} LIMIT 1", params)
            type_row = sql_type.fetchone()
            value_type = str(type_row[0]) if type_row else column.type
            agg = conn.execute(
                f"WITH s AS ({base}) SELECT count(*), count(v), count(DISTINCT v), "
                f"min(v), max(v) FROM s",
                params,
            ).fetchone()
            tops = conn.execute(
                f"WITH s AS ({base}) SELECT v, count(*) AS n FROM s WHERE v IS NOT NULL "
                f"GROUP BY v ORDER BY n DESC, v LIMIT ?",
                [*params, int(top)],
            ).fetchall()
            numeric = self._numeric(conn, base, params, value_type)
        assert agg is not None
        count, non_null = int(agg[0]), int(agg[1])
        low, high = agg[3], agg[4]
        if value_type == "JSON" and numeric is not None and numeric.count == non_null:
            # All values are numbers: JSON's min/max would compare their text ('991' > '1005').
            low, high = _number(numeric.min), _number(numeric.max)
        return ColumnStats(
            table=name,
            expression=str(parsed),
            type=value_type,
            count=count,
            null_count=count - non_null,
            distinct_count=int(agg[2]),
            min=low,
            max=high,
            top_values=tuple((r[0], int(r[1])) for r in tops),
            numeric=numeric,
        )

    def _numeric(
        self,
        conn: duckdb.DuckDBPyConnection,
        base: str,
        params: list[Any],
        value_type: str,
    ) -> NumericStats | None:
        if value_type in ("BOOLEAN",) or value_type.startswith(("TIMESTAMP", "DATE", "TIME")):
            return None
        # JSON values are read as their text first, so '"19.99"' and '19.99' both count.
        text = "json_extract_string(v, '$')" if value_type == "JSON" else "v"
        row = conn.execute(
            f"WITH s AS ({base}), x AS (SELECT TRY_CAST({text} AS DOUBLE) AS x FROM s) "
            f"SELECT count(x), min(x), max(x), avg(x), stddev_samp(x), "
            f"quantile_cont(x, 0.25), quantile_cont(x, 0.5), quantile_cont(x, 0.75), sum(x) "
            f"FROM x",
            params,
        ).fetchone()
        if row is None or not row[0]:
            return None
        return NumericStats(
            count=int(row[0]),
            min=float(row[1]),
            max=float(row[2]),
            mean=float(row[3]),
            std=None if row[4] is None else float(row[4]),
            p25=float(row[5]),
            p50=float(row[6]),
            p75=float(row[7]),
            sum=float(row[8]),
        )

    # -- dropping ------------------------------------------------------------------

    def drop(self, *names: str) -> list[str]:
        """Drop tables (with their metadata); all are checked before any is dropped."""
        if not names:
            raise ValidationError("name at least one table to drop")
        for name in names:
            validate_table_name(name)
        if not self._storage.exists():
            raise DatabaseNotFoundError(self._storage.display_path)
        listed = ", ".join(f"'{n}'" for n in dict.fromkeys(names))
        action = f"drop table {listed}" if len(set(names)) == 1 else f"drop tables {listed}"
        # A fetch writing the database would re-create a dropped table and mark it complete.
        with self._storage.exclusive_fetch(action=action):
            for name in names:
                if not self._storage.table_exists(name):
                    raise TableNotFoundError(name)
            dropped: list[str] = []
            for name in dict.fromkeys(names):
                self._storage.drop_table(name)
                dropped.append(name)
        return dropped

    def drop_all(self, *, type: str | None = None) -> list[str]:
        """Drop every user table, or only those of one kind (``events`` or ``profiles``)."""
        if type is not None and type not in TABLE_KINDS:
            raise ValidationError(
                f"invalid table type {type!r}; use one of: {', '.join(TABLE_KINDS)}"
            )
        if not self._storage.exists():
            raise DatabaseNotFoundError(self._storage.display_path)
        action = "drop every table" if type is None else f"drop every {type} table"
        with self._storage.exclusive_fetch(action=action):
            names = [t.name for t in self.tables() if type is None or t.kind == type]
            for name in names:
                self._storage.drop_table(name)
        return names
