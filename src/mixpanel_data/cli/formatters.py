"""Turn results into output: json, jsonl, table, csv or plain, optionally through jq.

stdout carries only data; everything else goes to stderr.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from mixpanel_data.cli.options import Format
from mixpanel_data.exceptions import ValidationError


def to_jsonable(value: Any) -> Any:
    """Convert results (objects with `to_dict`, DataFrames, dates, Decimals) to JSON data."""
    if hasattr(value, "to_dict") and callable(value.to_dict) and not _is_dataframe(value):
        return to_jsonable(value.to_dict())
    if _is_dataframe(value):
        return [to_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return to_jsonable(value.item())
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_dict")


def _dumps(data: Any, *, pretty: bool) -> str:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(data, option=option | orjson.OPT_NON_STR_KEYS).decode()


def apply_jq(data: Any, expression: str) -> list[Any]:
    """Run a jq program over JSON data and return every output value."""
    return _apply_each([data], expression)


def _apply_each(items: Sequence[Any], expression: str) -> list[Any]:
    """Run one compiled jq program over each item in turn (JSONL: per record, like `jq -c`)."""
    import jq

    try:
        program = jq.compile(expression)
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ValidationError(f"invalid --jq expression: {first}") from None
    out: list[Any] = []
    try:
        for item in items:
            out.extend(program.input_value(item).all())
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "error"
        raise ValidationError(f"--jq failed: {first}") from None
    return out


def check_output(*, fmt: Format, jq: str | None) -> None:
    """Refuse a bad --format/--jq pair before a command does any work (or stores anything)."""
    if jq is None:
        return
    if fmt not in (Format.json, Format.jsonl):
        raise ValidationError("--jq works only with --format json or jsonl")
    import jq as jqlib

    try:
        jqlib.compile(jq)
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ValidationError(f"invalid --jq expression: {first}") from None


def _rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [r if isinstance(r, dict) else {"value": r} for r in data]
    if isinstance(data, dict):
        return [data]
    return [{"value": data}]


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Union of keys in first-seen order (not just the first row's keys)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _dumps(value, pretty=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(
    data: Any,
    *,
    fmt: Format = Format.json,
    jq: str | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
) -> str:
    """Render data as text.

    ``rows`` (tidy rows) replace ``data`` for jsonl/table/csv/plain, so those four show the
    same records; json keeps the typed result. ``--jq`` runs on the whole document in json
    and on each record in jsonl (as ``jq -c`` over a JSONL file would).
    """
    if jq is not None and fmt not in (Format.json, Format.jsonl):
        raise ValidationError("--jq works only with --format json or jsonl")
    payload = to_jsonable(data)
    if fmt == Format.jsonl:
        if rows is not None:
            items = to_jsonable(list(rows))
        else:
            items = payload if isinstance(payload, list) else [payload]
        if jq is not None:
            items = _apply_each(items, jq)
        return "".join(_dumps(item, pretty=False) + "\n" for item in items)
    if jq is not None:
        check_output(fmt=fmt, jq=jq)
        results = apply_jq(payload, jq)
        if len(results) != 1:
            return "".join(_dumps(r, pretty=False) + "\n" for r in results)
        return _dumps(results[0], pretty=True) + "\n"
    if fmt == Format.json:
        return _dumps(payload, pretty=True) + "\n"
    table_rows = _rows(to_jsonable(list(rows))) if rows is not None else _rows(payload)
    if fmt == Format.csv:
        buf = io.StringIO()
        columns = _columns(table_rows)
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in table_rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        return buf.getvalue()
    if fmt == Format.plain:
        if isinstance(payload, dict) and rows is None:
            return "".join(f"{k}\t{_cell(v)}\n" for k, v in payload.items())
        columns = _columns(table_rows)
        if columns == ["value"]:
            return "".join(_cell(r.get("value")) + "\n" for r in table_rows)
        return "".join("\t".join(_cell(r.get(c)) for c in columns) + "\n" for r in table_rows)
    return _render_table(table_rows, title=title)


def _render_table(rows: list[dict[str, Any]], *, title: str | None) -> str:
    from rich.console import Console
    from rich.table import Table

    columns = _columns(rows)
    table = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        numeric = _is_numeric_column(rows, col)
        table.add_column(col, overflow="fold", justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    buf = io.StringIO()
    width = 200 if not sys.stdout.isatty() else None
    console = Console(file=buf, width=width, force_terminal=sys.stdout.isatty())
    console.print(table)
    return buf.getvalue()


def _is_numeric_column(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """A column is numeric when every value it has is a number (booleans are not)."""
    values = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def emit(
    data: Any,
    *,
    fmt: Format = Format.json,
    jq: str | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
) -> None:
    """Write rendered data to stdout (the only thing commands write there)."""
    text = render(data, fmt=fmt, jq=jq, rows=rows, title=title)
    write_stdout(text)


def write_stdout(text: str) -> None:
    """Write to stdout; a reader that went away (`| head -1`) ends the command quietly."""
    import typer

    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(0) from None


def silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so nothing more fails on it."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def message(text: str, *, quiet: bool = False) -> None:
    """Write a human message to stderr (never stdout)."""
    if not quiet:
        print(text, file=sys.stderr)
