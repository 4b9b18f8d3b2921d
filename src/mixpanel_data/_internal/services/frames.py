"""FrameService: SQL results as Arrow tables and Polars DataFrames, no pandas round trip.

DuckDB hands its result to Arrow column by column (``to_arrow_table``), and
Polars reads that Arrow memory without copying; going through pandas would
convert every value twice. Connections, read-only rules and error translation
are the same as ``SQLService``'s (one short connection per query).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixpanel_data._internal.results.notebook import import_polars
from mixpanel_data._internal.services.sql import Params, translate_duckdb_errors
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["FrameService"]

# Statement types that never change the database (they may run on a read-only connection).
_READS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "SET", "VARIABLE_SET", "RELATION"})


def _needs_write(query: str) -> bool:
    import duckdb

    try:
        return any(s.type.name not in _READS for s in duckdb.extract_statements(query))
    except duckdb.Error:
        return False  # running it reports the syntax error


class FrameService:
    """Run SQL on one StorageEngine and return columnar results.

    Example:
        FrameService(storage).arrow("SELECT event_name, count(*) FROM events GROUP BY 1")
    """

    def __init__(self, storage: StorageEngine) -> None:
        self._storage = storage

    def arrow(self, query: str, params: Params = None) -> pa.Table:
        """Return the result as a ``pyarrow.Table`` (an empty one for statements without rows)."""
        import pyarrow as pa

        if not isinstance(query, str) or not query.strip():
            raise ValidationError("empty SQL query; pass a statement such as 'SELECT 1'")
        write = not self._storage.read_only and _needs_write(query)
        read_only = self._storage.read_only
        with (
            self._storage.connection(write=write) as conn,
            translate_duckdb_errors(conn, query, read_only=read_only),
        ):
            relation = conn.sql(query, params=params)
            if relation is None:
                return pa.table({})
            table: pa.Table = relation.to_arrow_table()
            return table

    def polars(self, query: str, params: Params = None) -> pl.DataFrame:
        """Return the result as a Polars DataFrame (needs the ``polars`` extra)."""
        polars = import_polars()
        frame: pl.DataFrame = polars.from_arrow(self.arrow(query, params))
        return frame
