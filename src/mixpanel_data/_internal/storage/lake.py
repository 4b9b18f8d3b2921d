"""The Parquet lake: local tables written as Hive-partitioned Parquet for other engines.

Layout (what Spark, Dask, Trino/Athena and BigQuery expect)::

    DIR/<table>/date=2024-01-31/data_0.parquet     # events, --partition-by day
    DIR/<table>/month=2024-01/data_0.parquet       # events, --partition-by month
    DIR/<table>/data_0.parquet                     # profiles and tables without event_time

Events are partitioned by their project-timezone day (or month): ``event_date``, the
day Mixpanel's reports count them on (tables fetched before that column existed, and
tables made with SQL that lack it, by the UTC day of ``event_time``). The partition
column lives in the folder name only, never inside the files (Hive convention);
the files carry ``event_date`` like the table.
Profiles are a snapshot, not a time series, so they are written unpartitioned.

Writes replace partitions, never append to them: every partition a write produces
replaces exactly that partition's older files (other partitions are left alone), so
re-running an export or a day of ``mp fetch events --to-parquet`` never duplicates
rows. Files are written under a temporary name and renamed into place; a partition
normally holds one file, so readers see the old file or the new one, never both.

Work in progress lives in ``DIR/.mp-staging-<pid>-...`` folders whose files end in
``.tmp``: outside every table folder (Polars and Dask read every file under the
folder they are given) and never matching ``DIR/**/*.parquet`` (DuckDB, Spark). A
folder left by a killed process is removed by the next write to that lake.
"""

# SQL here is built from validated, always-quoted identifiers and escaped literals.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time as clock
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from mixpanel_data._internal.crashpoints import crash_point
from mixpanel_data._internal.storage.engine import quote_ident, sql_literal, validate_table_name
from mixpanel_data._internal.storage.safety import disk_full_error, is_disk_full
from mixpanel_data.exceptions import StorageError, TableNotFoundError, ValidationError

if TYPE_CHECKING:
    import duckdb

    from mixpanel_data._internal.results.tables import ParquetExport
    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["PARTITION_KEYS", "LakeBatch", "ParquetDaySink", "PartitionBy", "export_table"]

PartitionBy = Literal["day", "month"]

# Partition folder key and strftime format for each --partition-by value.
PARTITION_KEYS: dict[str, tuple[str, str]] = {
    "day": ("date", "%Y-%m-%d"),
    "month": ("month", "%Y-%m"),
}
# The column whose UTC day places an event in its partition, unless it has DAY_COLUMN.
TIME_COLUMN = "event_time"
DAY_COLUMN = "event_date"
DATA_FILE = "data_0.parquet"
# Hive's name for rows whose partition value is NULL (Spark and Trino read it as NULL).
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_STAGING_PREFIX = ".mp-staging-"
_STAGED = ".tmp"  # staged files never end in .parquet, so no glob of the lake picks them
# Staging left by an older version carries no PID: removed once it is this old (s).
_LEGACY_STALE_AFTER = 3600.0
_PARTITION_DIR = re.compile(r"^(date|month)=")
_SOURCE_TABLE = re.compile(r"^[A-Za-z0-9_]{1,128}\Z")


def _check_partition_by(partition_by: str) -> str:
    if partition_by not in PARTITION_KEYS:
        raise ValidationError(
            f"invalid partitioning {partition_by!r}; use day or month",
            partition_by=str(partition_by),
        )
    return partition_by


def _table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_catalog = current_database() "
        "AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _lake_columns(columns: Sequence[tuple[str, str]]) -> str:
    """The select list of a lake file: JSON columns as UTF-8 text, so every engine reads a string.

    Parquet's JSON logical type reaches Polars (and some Arrow readers) as binary.
    """
    return ", ".join(
        f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}"
        if t.upper() == "JSON"
        else quote_ident(c)
        for c, t in columns
    )


def _partition_expr(column_type: str, fmt: str, *, day_column: bool = False) -> str:
    col = quote_ident(TIME_COLUMN)
    upper = column_type.upper()
    if day_column:  # the project-timezone day
        value = f"strftime({quote_ident(DAY_COLUMN)}, {sql_literal(fmt)})"
    elif "WITH TIME ZONE" in upper:
        value = f"strftime(timezone('UTC', {col}), {sql_literal(fmt)})"
    elif upper.startswith(("TIMESTAMP", "DATE")):
        value = f"strftime({col}, {sql_literal(fmt)})"  # naive times are taken as UTC
    else:
        raise ValidationError(
            f"column {TIME_COLUMN} has type {column_type}, not a timestamp; "
            "cast it in a new table (CREATE TABLE ... AS SELECT) before exporting",
        )
    return f"coalesce({value}, {sql_literal(NULL_PARTITION)})"


def _layout_of(table_dir: Path) -> str | None:
    """Return the partition key already used in `table_dir` ("" = unpartitioned, None = empty)."""
    if not table_dir.is_dir():
        return None
    keys = {m.group(1) for p in table_dir.iterdir() if (m := _PARTITION_DIR.match(p.name))}
    if len(keys) > 1:
        return ",".join(sorted(keys))
    if keys:
        return keys.pop()
    if any(p.suffix in (".parquet", ".csv") for p in table_dir.iterdir()):
        return ""
    return None


def lake_modes() -> tuple[int, int]:
    """(folder mode, file mode) of what the lake writes: private (0700/0600) like the
    database, as the data is as sensitive as the credentials; ``MP_LAKE_MODE=shared``
    makes it readable by others (0755/0644)."""
    mode = os.environ.get("MP_LAKE_MODE", "").strip().lower()
    if mode == "shared":
        return 0o755, 0o644
    if mode in ("", "private"):
        return 0o700, 0o600
    raise ValidationError(f"MP_LAKE_MODE must be 'private' or 'shared', got {mode!r}")


def _refuse_symlinks(*paths: Path) -> None:
    """A symlinked table or partition folder would let a write replace (and delete)
    Parquet files outside the lake: refuse it, as the config file does."""
    for path in paths:
        if path.is_symlink():
            raise StorageError(
                f"refusing to write under {path}: it is a symbolic link inside the lake; "
                "replace it with a real folder",
                path=str(path),
            )


def _check_layout(table_dir: Path, key: str) -> None:
    """Refuse to mix layouts in one table folder (engines could not read it back)."""
    _refuse_symlinks(table_dir)
    found = _layout_of(table_dir)
    if found is None or found == key:
        return

    def describe(k: str) -> str:
        return f"{k}=... partitions" if k else "unpartitioned files"

    have, want = describe(found), describe(key)
    raise ValidationError(
        f"{table_dir} already holds {have} and this would write {want}; "
        "write to another directory or delete that folder first",
        path=str(table_dir),
    )


# What a table's files can be: zstd Parquet (the lake), or CSV with a header row.
FILE_FORMATS = {"parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER true"}


def _check_file_format(file_format: str) -> str:
    if file_format not in FILE_FORMATS:
        raise ValidationError(
            f"invalid file format {file_format!r}; use parquet or csv", file_format=file_format
        )
    return file_format


def _replace_files(source_dir: Path, target_dir: Path, ext: str = "parquet") -> list[Path]:
    """Move every staged file of `source_dir` into `target_dir`, replacing its old files
    of the same format (a CSV export leaves the Parquet files alone, and back)."""
    _refuse_symlinks(target_dir.parent, target_dir)
    _mkdir(target_dir)
    moved = []
    for staged in sorted(source_dir.glob(f"*{_STAGED}")):
        final = target_dir / f"{staged.name.removesuffix(_STAGED)}.{ext}"
        os.chmod(staged, lake_modes()[1])
        os.replace(staged, final)  # atomic on one filesystem: readers see old or new
        moved.append(final)
    keep = {p.name for p in moved}
    for old in target_dir.glob(f"*.{ext}"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return moved


def _copy(conn: duckdb.DuckDBPyConnection, sql: str, params: Any, *, target: Path) -> int:
    """Run one COPY ... TO; disk errors become StorageError (translated by type, once)."""
    import duckdb

    try:
        row = conn.execute(sql, params).fetchone()
    except duckdb.IOException as exc:
        if is_disk_full(exc):  # name the lake's disk, not the database's
            raise disk_full_error(str(target), exc) from None
        raise StorageError(
            f"cannot write Parquet under {target}: {exc}; check the directory and free space",
            path=str(target),
        ) from None
    return int(row[0]) if row else 0


def _mkdir(path: Path) -> None:
    """Create `path` and missing parents with the lake's folder mode."""
    folder_mode = lake_modes()[0]
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        for folder in reversed(missing):
            folder.mkdir(exist_ok=True)
            os.chmod(folder, folder_mode)
    except OSError as exc:
        raise StorageError(
            f"cannot create {path}: {exc.strerror}; choose another directory", path=str(path)
        ) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(root: Path) -> None:
    """Remove staging left in the lake root by processes that died (kill -9).

    Also the ``.data_0.parquet.*.tmp`` files older versions wrote inside partitions.
    """
    if not root.is_dir():
        return
    now = clock.time()
    with contextlib.suppress(OSError):
        for entry in root.glob(f"{_STAGING_PREFIX}*"):
            pid = entry.name[len(_STAGING_PREFIX) :].split("-", 1)[0]
            if pid.isdigit():
                if _pid_alive(int(pid)):
                    continue
            elif now - entry.lstat().st_mtime < _LEGACY_STALE_AFTER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        for old in root.glob(f"*/*=*/.{DATA_FILE}.*{_STAGED}"):
            if now - old.lstat().st_mtime >= _LEGACY_STALE_AFTER:
                old.unlink(missing_ok=True)


def _new_staging(root: Path, table: str) -> Path:
    """A fresh staging folder in the lake root (same filesystem: renames are atomic)."""
    _mkdir(root)
    clean_stale_staging(root)
    return root / f"{_STAGING_PREFIX}{os.getpid()}-{table}-{uuid.uuid4().hex}"


def export_table(
    storage: StorageEngine,
    table: str,
    directory: str | Path,
    *,
    partition_by: str = "day",
    file_format: str = "parquet",
) -> ParquetExport:
    """Write a local table to ``directory/<table>/`` as zstd Parquet (or CSV), partition
    by partition.

    Tables with an ``event_time`` column are partitioned by ``event_date`` (the
    project-timezone day) or, without it, the UTC day of ``event_time``, or by month;
    others (profiles) are written as one unpartitioned file.
    """
    from mixpanel_data._internal.results.tables import ParquetExport

    validate_table_name(table)
    ext = _check_file_format(file_format)
    key, fmt = PARTITION_KEYS[_check_partition_by(partition_by)]
    root = Path(directory).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise ValidationError(f"{root} is a file; give a directory for the Parquet lake")
    table_dir = root / table
    with storage.reader() as conn:
        columns = _table_columns(conn, table)
        if not columns:
            raise TableNotFoundError(table)
        partitioned = TIME_COLUMN in columns
        if partitioned and key in columns:
            raise ValidationError(
                f"table {table} has a column named {key}, which is also the partition folder "
                "key; rename it in a new table before exporting",
                table=table,
            )
        _check_layout(table_dir, key if partitioned else "")
        staging = _new_staging(root, table)
        try:
            if partitioned:
                by_day = columns.get(DAY_COLUMN, "").upper() == "DATE"
                expr = _partition_expr(columns[TIME_COLUMN], fmt, day_column=by_day)
                select = _lake_columns(list(columns.items()))
                query = f"SELECT {select}, {expr} AS {quote_ident(key)} FROM {quote_ident(table)}"
                options = (
                    f"{FILE_FORMATS[ext]}, PARTITION_BY ({quote_ident(key)}), "
                    f"FILE_EXTENSION '{_STAGED[1:]}'"
                )
                target = staging
            else:
                query = f"SELECT {_lake_columns(list(columns.items()))} FROM {quote_ident(table)}"
                options = FILE_FORMATS[ext]
                staging.mkdir(parents=True)
                target = staging / f"{DATA_FILE.removesuffix('.parquet')}{_STAGED}"
            copy = f"COPY ({query}) TO {sql_literal(str(target))} ({options})"
            rows = _copy(conn, copy, None, target=table_dir)
            crash_point("lake")
            files, partitions = _publish(staging, table_dir, partitioned=partitioned, ext=ext)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ParquetExport(
        table=table,
        directory=str(table_dir),
        partition_by=partition_by if partitioned else None,
        rows=rows,
        partitions=tuple(partitions),
        files=tuple(str(f) for f in files),
        bytes=sum(f.stat().st_size for f in files),
        file_format=ext,
    )


def _publish(
    staging: Path, table_dir: Path, *, partitioned: bool, ext: str
) -> tuple[list[Path], list[str]]:
    """Move staged output into the table folder, one partition at a time."""
    if not partitioned:
        return _replace_files(staging, table_dir, ext), []
    files: list[Path] = []
    partitions: list[str] = []
    if not staging.is_dir():  # nothing written: an empty table has no partitions
        return files, partitions
    for part in sorted(p for p in staging.iterdir() if p.is_dir()):
        files.extend(_replace_files(part, table_dir / part.name, ext))
        partitions.append(part.name.split("=", 1)[1])
    return files, partitions


class LakeBatch:
    """Days written into the lake for one database commit, undoable until it commits.

    Every day is first written to the staging folder (a full disk fails here, with
    nothing in the lake changed); then the days are renamed into their partitions,
    the files they replace kept aside as hard links. `undo()` (the commit failed)
    puts the old files back; `finish()` (it committed) drops them. So the lake holds
    a day only when its window's commit succeeded (a kill between the renames and
    the commit leaves days the re-run fetches and rewrites).
    """

    def __init__(self, root: Path, table: str) -> None:
        self._root = root
        self._staging = _new_staging(root, table)
        self._staged: list[tuple[Path, Path]] = []  # (staged file, partition folder)
        self._moved: list[tuple[Path, Path | None]] = []  # (final file, kept old file)
        self.written: list[tuple[Path, int]] = []  # (file, rows) per day, once published

    def stage(self, conn: duckdb.DuckDBPyConnection, query: str, params: Any, *, part: Path) -> int:
        """Write `query`'s rows as the next file for partition `part`; return the rows.

        Written through PARTITION_BY, as `mp export` writes, so both writers give one
        schema: DuckDB's single-file writer marks a column NOT NULL whenever a file
        happens to hold no nulls in it, its partitioned writer never does.
        """
        _mkdir(self._staging)
        n = len(self._staged)
        tmp = self._staging / f"{n}{_STAGED}"
        folder = self._staging / f"part-{n}"
        key = quote_ident("_mp_part")
        copy = (
            f"COPY (SELECT *, 0 AS {key} FROM ({query})) TO {sql_literal(str(folder))} "
            f"(FORMAT parquet, PARTITION_BY ({key}), COMPRESSION zstd, "
            f"FILE_EXTENSION '{_STAGED[1:]}')"
        )
        rows = _copy(conn, copy, params, target=part)
        written = sorted(folder.rglob(f"*{_STAGED}"))
        if len(written) == 1:
            os.replace(written[0], tmp)
        else:  # no rows (an explicit empty day), or split files: one plain file instead
            single = f"COPY ({query}) TO {sql_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
            _copy(conn, single, params, target=part)
        shutil.rmtree(folder, ignore_errors=True)
        self._staged.append((tmp, part))
        return rows

    def publish(self) -> list[Path]:
        """Rename every staged day into its partition (old files kept for `undo`)."""
        out = []
        crash_point("lake")
        try:
            for k, (tmp, part) in enumerate(self._staged):
                _refuse_symlinks(part.parent, part)
                _mkdir(part)
                os.chmod(tmp, lake_modes()[1])
                final = part / DATA_FILE
                kept: Path | None = None
                if final.exists():
                    kept = self._staging / f"old-{k}{_STAGED}"
                    os.link(final, kept)
                os.replace(tmp, final)
                self._moved.append((final, kept))
                out.append(final)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(str(self._root), exc) from None
            raise StorageError(
                f"cannot write Parquet under {self._root}: {exc.strerror}; check the directory",
                path=str(self._root),
            ) from None
        return out

    def undo(self) -> None:
        """The database commit failed: put the lake back as it was."""
        for final, kept in reversed(self._moved):
            with contextlib.suppress(OSError):
                if kept is not None:
                    os.replace(kept, final)
                else:
                    final.unlink(missing_ok=True)
                    final.parent.rmdir()  # only if empty
        self._moved.clear()
        self._cleanup()

    def finish(self) -> None:
        """The database committed: drop the old files and any other file of those days."""
        for final, _kept in self._moved:
            for old in final.parent.glob("*.parquet"):
                if old.name != DATA_FILE:
                    old.unlink(missing_ok=True)
        self._moved.clear()
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


class ParquetDaySink:
    """Write each fetched day straight into its ``date=YYYY-MM-DD`` partition.

    Used by ``mp fetch events --to-parquet DIR``: each project day a committed window
    holds events of is written whole from the table, replacing exactly that day's
    partition (staged file, then rename, then the partition's older files removed),
    so each shard of a backfill is idempotent.

    Example:
        sink = ParquetDaySink("lake", table="events")
        sink.write_day(conn, "SELECT * FROM staged", day=date(2024, 1, 31))
    """

    def __init__(self, directory: str | Path, *, table: str = "events") -> None:
        validate_table_name(table)
        self.table = table
        self.table_dir = Path(directory).expanduser().absolute() / table
        if self.table_dir.parent.exists() and not self.table_dir.parent.is_dir():
            raise ValidationError(f"{self.table_dir.parent} is a file; give a directory")
        _check_layout(self.table_dir, "date")
        clean_stale_staging(self.table_dir.parent)

    def partition_dir(self, day: date) -> Path:
        """The folder that holds `day`."""
        return self.table_dir / f"date={day.isoformat()}"

    def write_day(
        self,
        conn: duckdb.DuckDBPyConnection,
        query: str,
        *,
        day: date,
        params: Sequence[Any] | None = None,
    ) -> tuple[Path, int]:
        """Write the rows of `query` as `day`'s partition, replacing it; return (file, rows).

        `query` must select the table's columns without a ``date`` column.
        """
        part = self.partition_dir(day)
        _refuse_symlinks(part.parent, part)
        batch = LakeBatch(self.table_dir.parent, self.table)
        try:
            rows = batch.stage(conn, query, params, part=part)
            (final,) = batch.publish()
        except BaseException:
            batch.undo()
            raise
        batch.finish()
        return final, rows

    def write_window(
        self,
        conn: duckdb.DuckDBPyConnection,
        table: str,
        *,
        start: date,
        end: date,
        zone: str | None = None,
    ) -> list[tuple[Path, int]]:
        """Write each day of ``start..end`` in `zone` (UTC if None) from events `table`
        into its partition: the fetcher passes the project timezone, so a partition
        is one project day, as ``event_date`` and Mixpanel's reports count it.
        """
        batch = self.write_windows(conn, table, [DateSpan(start, end)], zone=zone)
        batch.finish()
        return batch.written

    def write_windows(
        self,
        conn: duckdb.DuckDBPyConnection,
        table: str,
        windows: Sequence[Any],
        *,
        zone: str | None = None,
    ) -> LakeBatch:
        """Stage and publish each day of `windows` (objects with ``start`` and ``end``).

        The fetcher calls this inside the windows' transaction, then `finish()` after
        COMMIT or `undo()` if the commit fails. `table` may be the fetch's hidden
        build table (``--replace``), so only its shape is checked (it is quoted).
        """
        if not _SOURCE_TABLE.match(table):
            raise ValidationError(f"invalid source table name {table!r}")
        tz = ZoneInfo(zone or "UTC")
        columns = list(_table_columns(conn, table).items())
        cols = _lake_columns(columns)
        query = (
            f"SELECT {cols} FROM {quote_ident(table)} "
            "WHERE event_time >= ? AND event_time < ? ORDER BY event_time, insert_id"
        )
        days: list[date] = []
        for w in windows:
            day = w.start
            while day <= w.end:
                days.append(day)
                day += timedelta(days=1)
        batch = LakeBatch(self.table_dir.parent, self.table)
        try:
            counts = []
            for day in days:
                after = day + timedelta(days=1)
                bounds = [datetime.combine(d, time(), tzinfo=tz) for d in (day, after)]
                counts.append(batch.stage(conn, query, bounds, part=self.partition_dir(day)))
            batch.written = list(zip(batch.publish(), counts, strict=True))
        except BaseException:
            batch.undo()
            raise
        return batch


@dataclass(frozen=True)
class DateSpan:
    """A ``start..end`` pair of days (what `write_windows` reads from a window)."""

    start: date
    end: date
