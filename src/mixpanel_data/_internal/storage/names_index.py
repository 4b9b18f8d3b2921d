"""The names a shell's TAB offers (tables, event names), written when a database changes.

Completing ``mp inspect schema <TAB>`` must not import DuckDB (0.4 s alone), so whoever
writes a database leaves its table and event names in a small JSON file, keyed by the
file's size and mtime; the TAB (``cli/fast_completion.py``, which reads this format) only
reads that file. The format, shared by both sides:

    <db>.names.json   (beside the database, like its .wal; gone with a temporary one)
    {"key": "<st_mtime_ns>:<st_size>", "table": [...], "event": [...]}

A file written by another program (the duckdb shell) leaves the key stale; the TAB then
reads the database itself, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

__all__ = ["EVENT_LIMIT", "collect_names", "index_path", "stat_key", "write_names_index"]

EVENT_LIMIT = 5000  # distinct event names per table, enough for any shell menu


def index_path(db: Path) -> Path:
    """Where the names of database ``db`` are kept."""
    return db.with_name(db.name + ".names.json")


def stat_key(db: Path) -> str | None:
    """The database file's version as the index records it; None when it is missing."""
    try:
        st = db.stat()
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}"


def collect_names(conn: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """User tables (not ``_mp_*``) and the distinct event names of tables with events."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND NOT starts_with(table_name, '_mp_') ORDER BY 1"
        ).fetchall()
    ]
    with_events = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'main' "
            "AND column_name = 'event_name' AND NOT starts_with(table_name, '_mp_')"
        ).fetchall()
    ]
    events: set[str] = set()
    for table in with_events:
        quoted = '"' + table.replace('"', '""') + '"'
        rows = conn.execute(
            f"SELECT DISTINCT event_name FROM {quoted} WHERE event_name IS NOT NULL "  # noqa: S608
            f"LIMIT {EVENT_LIMIT}"
        ).fetchall()
        events.update(str(r[0]) for r in rows)
    return {"table": tables, "event": sorted(events)}


def write_names_index(db: Path) -> None:
    """Record ``db``'s names for completion; best effort (a TAB can still read the file)."""
    import duckdb

    before = stat_key(db)
    if before is None:
        return
    try:
        with duckdb.connect(str(db), read_only=True) as conn:
            names = collect_names(conn)
    except Exception:  # locked by another writer meanwhile, ...: that writer records it
        return
    if stat_key(db) != before:
        return  # changed while we read: the next writer's close records it
    target = index_path(db)
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-names-")
        with os.fdopen(fd, "w") as out:
            json.dump({"key": before, **names}, out)
        os.replace(tmp, target)
