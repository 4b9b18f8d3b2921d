"""`mp export`: write a local table as Hive-partitioned Parquet (the lake other engines read)
or CSV."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import check_output, emit, message
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt


class FileFormat(StrEnum):
    """What the files are: zstd Parquet, or CSV with a header row."""

    parquet = "parquet"
    csv = "csv"


class PartitionBy(StrEnum):
    """Partition folders for events: one per project day or month (event_date)."""

    day = "day"
    month = "month"


def export(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="Local table to write, e.g. events.")],
    directory: Annotated[
        str, typer.Argument(help="Lake directory; files go under DIRECTORY/TABLE/.")
    ],
    partition_by: Annotated[
        PartitionBy,
        typer.Option(
            "--partition-by",
            case_sensitive=False,
            help="Events: one folder per project day (date=) or month (month=) of event_date.",
        ),
    ] = PartitionBy.day,
    file_format: Annotated[
        FileFormat,
        typer.Option(
            "--file-format",
            "-F",
            case_sensitive=False,
            help="parquet (zstd) or csv (a header row; JSON as text; times in UTC).",
        ),
    ] = FileFormat.parquet,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Write a table as zstd Parquet (or CSV) in Hive partitions, replacing the
    partitions it writes.

    --file-format csv writes DIRECTORY/TABLE/date=YYYY-MM-DD/data_0.csv (profiles:
    DIRECTORY/TABLE/data_0.csv): comma-separated, a header row of column names, JSON
    properties as text, timestamps as UTC. -f/--format is how the summary of what was
    written prints, as for every command.

    Example: mp export events ./lake --partition-by day --file-format csv
    """
    check_output(fmt=fmt, jq=jq)
    state = get_context(ctx)
    ws = state.workspace(read_only=True, credentials=False)
    write = ws.export_csv if file_format is FileFormat.csv else ws.export_parquet
    result = write(table, directory, partition_by=partition_by.value)
    where = f"{len(result.partitions)} partitions" if result.partition_by else "one file"
    kind = "CSV" if file_format is FileFormat.csv else "Parquet"
    message(
        f"wrote {result.rows} rows of {result.table} to {result.directory} as {kind} ({where})",
        quiet=state.quiet,
    )
    rows = [{"partition": _partition_of(f), "file": f} for f in result.files]
    emit(result, fmt=fmt, jq=jq, rows=rows)


def _partition_of(path: str) -> str:
    parent = path.replace("\\", "/").rsplit("/", 2)
    return parent[-2] if len(parent) == 3 and "=" in parent[-2] else ""
