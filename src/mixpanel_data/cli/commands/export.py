"""`mp export`: write a local table as Hive-partitioned Parquet (the lake other engines read)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import check_output, emit, message
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt


class PartitionBy(StrEnum):
    """Partition folders for events: one per UTC day or month of event_time."""

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
            help="Events: one folder per UTC day (date=) or month (month=) of event_time.",
        ),
    ] = PartitionBy.day,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Write a table as zstd Parquet in Hive partitions, replacing the partitions it writes.

    Example: mp export events ./lake --partition-by day
    """
    check_output(fmt=fmt, jq=jq)
    state = get_context(ctx)
    ws = state.workspace(read_only=True, credentials=False)
    result = ws.export_parquet(table, directory, partition_by=partition_by.value)
    where = f"{len(result.partitions)} partitions" if result.partition_by else "one file"
    message(
        f"wrote {result.rows} rows of {result.table} to {result.directory} ({where})",
        quiet=state.quiet,
    )
    rows = [{"partition": _partition_of(f), "file": f} for f in result.files]
    emit(result, fmt=fmt, jq=jq, rows=rows)


def _partition_of(path: str) -> str:
    parent = path.replace("\\", "/").rsplit("/", 2)
    return parent[-2] if len(parent) == 3 and "=" in parent[-2] else ""
