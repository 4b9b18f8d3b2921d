"""Results about the local database: SQL rows, tables, schemas, column statistics, Parquet exports.

Re-exported from ``mixpanel_data.types``; imports nothing of the package but other results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from mixpanel_data._internal.results.notebook import NotebookRepr


def _iso(value: Any) -> Any:
    """Dates and timestamps as ISO strings, everything else unchanged (JSON-ready)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@dataclass(frozen=True, repr=False)
class SQLRows(NotebookRepr):
    """A query's column names, DuckDB types and rows as plain Python values (no pandas).

    JSON columns hold their text, as DuckDB returns it; ``types`` tells which they are.
    """

    notebook_table: ClassVar[str | None] = "auto"

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """Return one dict per row, keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (timestamps as ISO strings)."""
        return {
            "columns": list(self.columns),
            "types": list(self.types),
            "rows": [[_iso(v) for v in row] for row in self.rows],
        }


@dataclass(frozen=True)
class ColumnInfo(NotebookRepr):
    """One column of a local table."""

    notebook_table: ClassVar[str | None] = None

    name: str
    type: str
    nullable: bool = True
    # For a typed property column (docs/typed-columns.md): the property it holds, the
    # share of rows that have a value, and how many values were not of its type.
    property: str | None = None
    share: float | None = None
    unfit: int | None = None
    nulled: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.property is not None:
            out |= {
                "property": self.property,
                "share": self.share,
                "unfit": self.unfit,
                "nulled": self.nulled,
            }
        return out


@dataclass(frozen=True)
class TableInfo(NotebookRepr):
    """A local table and what the metadata says about how it was fetched.

    ``kind`` is ``events``, ``profiles`` or ``other`` (a table made with SQL);
    ``complete`` and ``fetched_at`` are None for tables without fetch metadata.
    ``days`` are the project-timezone days (in ``timezone``) a fetched events table
    holds wholly, as ranges (``2024-11-01..2024-11-30``); None for other tables.
    """

    notebook_table: ClassVar[str | None] = None

    name: str
    kind: str
    row_count: int
    complete: bool | None = None
    fetched_at: datetime | None = None
    fetch_args: Mapping[str, Any] = field(default_factory=dict)
    days: str | None = None
    timezone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "row_count": self.row_count,
            "complete": self.complete,
            "fetched_at": _iso(self.fetched_at),
            "days": self.days,
            "timezone": self.timezone,
            "fetch_args": dict(self.fetch_args),
        }


@dataclass(frozen=True, repr=False)
class TableSchema(NotebookRepr):
    """The columns of one local table."""

    notebook_table: ClassVar[str | None] = "columns"

    name: str
    kind: str
    row_count: int
    columns: tuple[ColumnInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "row_count": self.row_count,
            "columns": [c.to_dict() for c in self.columns],
        }


@dataclass(frozen=True, repr=False)
class WorkspaceInfo(NotebookRepr):
    """The local database at a glance: where it is, how big, which tables."""

    notebook_table: ClassVar[str | None] = "tables"

    path: str
    size_bytes: int
    project_id: str | None
    duckdb_version: str
    tables: tuple[TableInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "project_id": self.project_id,
            "duckdb_version": self.duckdb_version,
            "tables": [t.to_dict() for t in self.tables],
        }


@dataclass(frozen=True)
class EventStats(NotebookRepr):
    """One event's share of an events table."""

    notebook_table: ClassVar[str | None] = None

    event_name: str
    count: int
    unique_users: int
    first_seen: datetime
    last_seen: datetime
    pct_of_total: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "event_name": self.event_name,
            "count": self.count,
            "unique_users": self.unique_users,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "pct_of_total": self.pct_of_total,
        }


@dataclass(frozen=True, repr=False)
class EventBreakdown(NotebookRepr):
    """Per-event counts of an events table, most frequent first."""

    notebook_table: ClassVar[str | None] = "events"

    table: str
    total_events: int
    total_users: int
    first_seen: datetime | None
    last_seen: datetime | None
    events: tuple[EventStats, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "table": self.table,
            "total_events": self.total_events,
            "total_users": self.total_users,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True)
class NumericStats(NotebookRepr):
    """Distribution of the values of a column that read as numbers."""

    notebook_table: ClassVar[str | None] = None

    count: int
    min: float
    max: float
    mean: float
    std: float | None
    p25: float
    p50: float
    p75: float
    sum: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "p25": self.p25,
            "p50": self.p50,
            "p75": self.p75,
            "sum": self.sum,
        }


@dataclass(frozen=True, repr=False)
class ColumnStats(NotebookRepr):
    """Statistics of one column or JSON path (``properties->>'$.price'``) of a table.

    ``numeric`` covers the values that read as numbers (``"19.99"`` counts too),
    so a property sent sometimes as a string still gets a distribution.
    """

    notebook_table: ClassVar[str | None] = "top_values"

    table: str
    expression: str
    type: str
    count: int
    null_count: int
    distinct_count: int
    min: Any
    max: Any
    top_values: tuple[tuple[Any, int], ...]
    numeric: NumericStats | None

    @property
    def null_pct(self) -> float:
        """Share of rows where the value is missing, in percent."""
        return 100.0 * self.null_count / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "table": self.table,
            "expression": self.expression,
            "type": self.type,
            "count": self.count,
            "null_count": self.null_count,
            "null_pct": round(self.null_pct, 4),
            "distinct_count": self.distinct_count,
            "min": _iso(self.min),
            "max": _iso(self.max),
            "top_values": [{"value": _iso(v), "count": c} for v, c in self.top_values],
            "numeric": self.numeric.to_dict() if self.numeric else None,
        }


# -- The Parquet lake (ws.export_parquet, mp export) ---------------------------------------


@dataclass(frozen=True)
class ParquetExport(NotebookRepr):
    """What ``ws.export_parquet`` wrote: a Hive-partitioned Parquet folder for other engines.

    ``partition_by`` is ``day``, ``month``, or None for unpartitioned tables (profiles);
    ``partitions`` are the folder values written (``2024-01-31`` in ``date=2024-01-31``).
    """

    notebook_table: ClassVar[str | None] = None

    table: str
    directory: str
    partition_by: str | None
    rows: int
    partitions: tuple[str, ...]
    files: tuple[str, ...]
    bytes: int
    file_format: str = "parquet"  # or "csv" (ws.export_csv)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "table": self.table,
            "directory": self.directory,
            "file_format": self.file_format,
            "partition_by": self.partition_by,
            "rows": self.rows,
            "partitions": list(self.partitions),
            "files": list(self.files),
            "bytes": self.bytes,
        }
