"""Result and progress types of fetches (re-exported from ``mixpanel_data.types``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from mixpanel_data._internal.results.notebook import NotebookRepr

__all__ = ["FetchProgress", "FetchResult"]


@dataclass(frozen=True)
class FetchProgress(NotebookRepr):
    """A snapshot of a running fetch, passed to ``progress=`` callbacks.

    ``rows`` counts committed rows; ``bytes`` counts downloaded bytes.
    """

    notebook_table: ClassVar[str | None] = None

    table: str
    kind: str
    windows_done: int
    windows_total: int
    rows: int
    bytes: int
    elapsed_seconds: float

    @property
    def rows_per_second(self) -> float:
        """Committed rows per second so far."""
        return self.rows / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left, estimated from the windows done so far (None before the first)."""
        if self.windows_done == 0 or self.windows_total == 0:
            return None
        per_window = self.elapsed_seconds / self.windows_done
        return per_window * (self.windows_total - self.windows_done)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "table": self.table,
            "kind": self.kind,
            "windows_done": self.windows_done,
            "windows_total": self.windows_total,
            "rows": self.rows,
            "bytes": self.bytes,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


@dataclass(frozen=True)
class FetchResult(NotebookRepr):
    """What a fetch stored: rows, what it dropped and why, and how long it took.

    ``windows_resumed`` counts windows a previous, interrupted run had already
    committed; ``rows_inserted`` counts only this run's new rows. ``failed_ranges``
    lists windows that failed after retries (``{"from_date", "to_date", "error"}``;
    re-running the same fetch fetches only those); ``warnings`` says what else
    went wrong without stopping the fetch (malformed lines, short engage pages).
    """

    notebook_table: ClassVar[str | None] = None

    table: str
    kind: str
    rows_inserted: int
    duplicates_dropped: int
    malformed_lines: int
    windows_done: int
    windows_total: int
    duration_seconds: float
    from_date: date | None
    to_date: date | None
    bytes_downloaded: int = 0
    windows_resumed: int = 0
    retries: int = 0
    table_rows: int = 0
    mode: str = "create"
    failed_ranges: tuple[dict[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "table": self.table,
            "kind": self.kind,
            "mode": self.mode,
            "rows_inserted": self.rows_inserted,
            "duplicates_dropped": self.duplicates_dropped,
            "malformed_lines": self.malformed_lines,
            "windows": {"done": self.windows_done, "total": self.windows_total},
            "windows_resumed": self.windows_resumed,
            "table_rows": self.table_rows,
            "duration_seconds": round(self.duration_seconds, 3),
            "from_date": self.from_date.isoformat() if self.from_date else None,
            "to_date": self.to_date.isoformat() if self.to_date else None,
            "bytes_downloaded": self.bytes_downloaded,
            "retries": self.retries,
            "failed_ranges": [dict(r) for r in self.failed_ranges],
            "warnings": list(self.warnings),
        }
