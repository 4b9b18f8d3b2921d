"""`mp sql`: run SQL on the local database, read-only, in any output format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import emit, message, render, write_stdout
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    from mixpanel_data.types import SQLRows


def read_query(query: str | None, file: str | None) -> str:
    """The SQL from the argument, ``--file F`` or standard input (``-``)."""
    if query is not None and file is not None:
        raise ValidationError("give the SQL as an argument or with --file, not both")
    source = file if file is not None else query
    if source is None:
        raise ValidationError(
            "no SQL given; pass it as an argument, with --file F, or '-' for standard input"
        )
    if source == "-":
        text = sys.stdin.read()
    elif file is not None:
        try:
            text = Path(file).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read --file {file}: {exc.strerror or exc}") from None
    else:
        text = source
    if not text.strip():
        raise ValidationError("the SQL is empty; pass a statement such as 'SELECT 1'")
    return text


_FILE_FORMATS = {
    ".csv": "FORMAT CSV, HEADER true",
    ".parquet": "FORMAT PARQUET, COMPRESSION ZSTD",
    ".json": "FORMAT JSON, ARRAY true",
    ".jsonl": "FORMAT JSON",
    ".ndjson": "FORMAT JSON",
}


def _copy_statement(query: str, output: str) -> str:
    """``COPY (query) TO 'file' (format by extension)``: DuckDB writes it, streaming."""
    suffix = Path(output).suffix.lower()
    if suffix not in _FILE_FORMATS:
        raise ValidationError(
            f"cannot tell the format of --output {output}; end it in {', '.join(_FILE_FORMATS)}"
        )
    body = query.strip().rstrip(";").strip()
    path = str(Path(output).expanduser()).replace("'", "''")
    return f"COPY ({body}) TO '{path}' ({_FILE_FORMATS[suffix]})"


def _unique(columns: tuple[str, ...]) -> list[str]:
    """Column names made unique (``SELECT 1 AS a, 2 AS a``), so no value is lost.

    DuckDB names an unaliased ``count(*)`` ``count_star()``; it is shown as the user wrote it.
    """
    seen: dict[str, int] = {}
    out = []
    for raw in columns:
        name = "count(*)" if raw == "count_star()" else raw
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count + 1}")
    return out


def _nested(text: str) -> Any:
    """Parse a JSON value; text strict JSON cannot hold (NaN, Infinity, which DuckDB's
    JSON type accepts) stays as its raw text, so nothing is lost or made up."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _records(result: SQLRows) -> list[dict[str, Any]]:
    """Row objects; JSON columns become nested values rather than quoted text."""
    columns = _unique(result.columns)
    is_json = [t == "JSON" for t in result.types]
    records = []
    for row in result.rows:
        records.append(
            {
                c: _nested(v) if j and isinstance(v, str) else v
                for c, j, v in zip(columns, is_json, row, strict=True)
            }
        )
    return records


def sql(
    ctx: typer.Context,
    query: Annotated[
        str | None, typer.Argument(help="The SQL, or '-' to read it from standard input.")
    ] = None,
    file: Annotated[
        str | None, typer.Option("--file", help="Read the SQL from a file ('-' for stdin).")
    ] = None,
    scalar: Annotated[
        bool, typer.Option("--scalar", help="Print only the first value of the first row.")
    ] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the result to a file instead: .csv, .parquet, .json or .jsonl "
            "(by extension; DuckDB streams it, so any size fits).",
        ),
    ] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Run SQL on the local database (read-only, so several can run during a fetch).

    Example: mp sql "SELECT event_name, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC" -f table
    """
    text = read_query(query, file)
    ws = get_context(ctx).workspace(read_only=True, credentials=False)
    if output is not None:
        rows = ws.sql_scalar(_copy_statement(text, output))
        message(f"wrote {rows:,} rows to {output}", quiet=get_context(ctx).quiet)
        return
    if scalar:
        emit(ws.sql_scalar(text), fmt=fmt, jq=jq)
        return
    result = ws.sql_rows(text)
    records = _records(result)
    if not records and fmt in (Format.csv, Format.table) and jq is None:
        # No rows: still show the header, so scripts and eyes see the columns.
        # (rendered from one blank row, then cut: csv keeps line 1, a table its 2 header lines)
        blank = dict.fromkeys(_unique(result.columns))
        lines = render([blank], fmt=fmt).splitlines(keepends=True)
        write_stdout("".join(lines[: 1 if fmt == Format.csv else 2]))
        return
    emit(records, fmt=fmt, jq=jq)
