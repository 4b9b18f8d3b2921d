"""Option types shared by every data command (defined once, used everywhere)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Format(StrEnum):
    """Output formats for data commands."""

    json = "json"
    jsonl = "jsonl"
    table = "table"
    csv = "csv"
    plain = "plain"


FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        help="Output format: json, jsonl, table, csv or plain.",
        case_sensitive=False,
    ),
]
JqOpt = Annotated[
    str | None,
    typer.Option("--jq", help="Filter JSON output with a jq expression (json/jsonl only)."),
]
