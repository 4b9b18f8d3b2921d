"""`mp query`: live reports computed by Mixpanel (each call is one of 60 hourly queries)."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import emit
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt
from mixpanel_data.exceptions import ValidationError
from mixpanel_data.types import SPECS, FunnelQuery, QuerySpec

app = typer.Typer(
    help="Run live reports on Mixpanel: segmentation, funnels, retention and more.",
    no_args_is_help=True,
)

DEFAULT_DAYS = 30  # without --from/--to: the last 30 days, today included, in project time
LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Compute from the fetched events table instead (no query spent; exit 7 "
        "names days not fetched).",
    ),
]
TableOpt = Annotated[str, typer.Option("--table", help="With --local: the events table to read.")]


def _engine(ctx: typer.Context, local: bool, table: str) -> Any:
    """The Workspace (live reports) or, with ``--local``, its local engine over ``table``."""
    ws = get_context(ctx).workspace()
    if local:
        return ws.local.using(table)
    if table != "events":
        raise ValidationError("--table only applies with --local")
    return ws


def _chart_path(value: Path | None) -> Path | None:
    """Check ``--chart`` before the query is spent: a writable .png/.svg/.pdf, matplotlib there."""
    if value is None:
        return None
    if value.suffix.lower() not in {".png", ".svg", ".pdf"}:
        raise ValidationError(f"--chart {value}: use a .png, .svg or .pdf file name")
    folder = value.expanduser().absolute().parent
    if not folder.is_dir():
        raise ValidationError(f"--chart {value}: folder {folder} does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from mixpanel_data.exceptions import ConfigError

        raise ConfigError(
            "--chart needs matplotlib; install it with pip install 'mixpanel_data[charts]'"
        ) from None
    return value


ChartOpt = Annotated[
    Path | None,
    typer.Option(
        "--chart",
        help="Also draw the report to this .png/.svg/.pdf file (needs the charts extra).",
        callback=_chart_path,
    ),
]


def _dates(ctx: typer.Context, from_date: str | None, to_date: str | None) -> tuple[str, str]:
    """--from/--to, defaulting to the last 30 days in the project's timezone."""
    if from_date is not None and to_date is not None:
        return from_date, to_date
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if to_date is None:
        ws = get_context(ctx).workspace()
        name = ws.credentials.timezone or ws.test_credentials().get("timezone")  # /api/app/me
        try:
            zone = ZoneInfo(name) if name else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        to_date = datetime.now(tz=zone).date().isoformat()
    if from_date is None:
        try:
            last = date.fromisoformat(to_date)
        except ValueError:
            raise ValidationError(
                f"invalid --to date '{to_date}'; use a real date as YYYY-MM-DD, e.g. 2024-01-31"
            ) from None
        from_date = (last - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    return from_date, to_date


def _emit(result: Any, fmt: Format, jq: str | None, chart: Path | None = None) -> None:
    """JSON formats print the typed result; table, csv and plain print its tidy rows."""
    emit(result, fmt=fmt, jq=jq, rows=result.rows)
    if chart is not None:
        from mixpanel_data.types import save_chart

        save_chart(result.plot(), chart)


def _cli_type(hint: Any) -> Any:
    """A spec field's type as `mp` reads it: dates as text, sequences as repeated options."""
    args = typing.get_args(hint)
    if date in args:
        return str | None
    if typing.get_origin(hint) is Sequence or any(typing.get_origin(a) is Sequence for a in args):
        return list[str] | None if type(None) in args else list[str]
    return hint


def _window(text: str) -> tuple[int, str]:
    """``7d`` -> (7, "day"); the units the funnel's ``length_unit`` takes."""
    units = {"d": "day", "h": "hour", "m": "minute", "s": "second"}
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise ValidationError(f"--window {text!r}: write a number and a unit, e.g. 7d, 12h, 30m")
    return int(value[:-1]), units[value[-1]]


_ANNOTATED: Any = Annotated  # built at import time from the spec's fields
WindowOpt = Annotated[
    str | None,
    typer.Option("--window", help="Conversion window as 7d, 12h, 30m or 90s (sets --length)."),
]
_COMMON: tuple[tuple[str, Any, Any], ...] = (
    ("local", LocalOpt, False),
    ("table", TableOpt, "events"),
    ("fmt", FormatOpt, Format.json),
    ("jq", JqOpt, None),
    ("chart", ChartOpt, None),
)


def _report_command(spec: type[QuerySpec[Any]]) -> None:
    """Register `mp query <spec.command>`: one option per spec field, run on either engine.

    The options, their defaults and help come from the spec's fields, so the CLI cannot
    drift from the Python call; the dates default to the last 30 days in project time.
    """
    hints = typing.get_type_hints(spec)
    specs = [f for f in fields(spec) if f.metadata.get("cli", True)]
    dates_optional = any(f.name == "from_date" and f.default is None for f in specs)
    kind = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("ctx", kind, annotation=typer.Context)]
    for f in specs:
        meta = f.metadata
        help_text = str(meta["cli_help"])
        info = typer.Option(*meta["flags"], help=help_text) if meta["flags"] else None
        if info is None:
            info = typer.Argument(help=help_text)
        default: Any = f.default
        if f.name in ("from_date", "to_date"):
            default = None
        elif default is MISSING:
            default = inspect.Parameter.empty
        elif isinstance(default, (list, tuple)):
            default = None
        annotation = _ANNOTATED[_cli_type(hints[f.name]), info]
        params.append(inspect.Parameter(f.name, kind, default=default, annotation=annotation))
    if spec is FunnelQuery:
        params.append(inspect.Parameter("window", kind, default=None, annotation=WindowOpt))
    params += [inspect.Parameter(n, kind, default=d, annotation=a) for n, a, d in _COMMON]

    def command(**kw: Any) -> None:
        ctx: typer.Context = kw.pop("ctx")
        local, table, fmt, jq, chart = (kw.pop(n) for n, _, _ in _COMMON)
        window = kw.pop("window", None)
        if window is not None:
            kw["length"], kw["length_unit"] = _window(window)
        for name, value in kw.items():
            if isinstance(value, list) and not value:
                kw[name] = None  # a repeatable option given no times
        if not (dates_optional and kw.get("interval") is not None):
            kw["from_date"], kw["to_date"] = _dates(ctx, kw["from_date"], kw["to_date"])
        _emit(_engine(ctx, local, table).run(spec(**kw)), fmt, jq, chart)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = spec.cli_doc
    command.__name__ = spec.report
    app.command(spec.command)(command)


for _spec in SPECS:
    _report_command(_spec)


@app.command("activity-feed")
def activity_feed(
    ctx: typer.Context,
    distinct_ids: Annotated[list[str], typer.Argument(help="One or more distinct_ids.")],
    from_date: Annotated[
        str | None, typer.Option("--from", help="First day (default: 364 days ago).")
    ] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="Last day (default: today).")] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Show users' recent events, oldest first.

    Example: mp query activity-feed user-42 --from 2024-01-01 --to 2024-01-31 -f table
    """
    result = (
        get_context(ctx)
        .workspace()
        .activity_feed(distinct_ids, from_date=from_date, to_date=to_date)
    )
    _emit(result, fmt, jq)


@app.command("saved-report")
def saved_report(
    ctx: typer.Context,
    bookmark_id: Annotated[int, typer.Argument(help="Bookmark id (see `mp inspect bookmarks`).")],
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Compute a saved Insights, funnel or retention report.

    Example: mp query saved-report 123456 -f table
    """
    _emit(get_context(ctx).workspace().saved_report(bookmark_id), fmt, jq)


@app.command()
def flows(
    ctx: typer.Context,
    bookmark_id: Annotated[int, typer.Argument(help="Flows bookmark id.")],
    query_type: Annotated[
        str, typer.Option("--query-type", help="flows_sankey, flows_top_paths or flows.")
    ] = "flows_sankey",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Compute a saved Flows report.

    Example: mp query flows 123456 -f table
    """
    _emit(get_context(ctx).workspace().flows(bookmark_id, query_type=query_type), fmt, jq)


@app.command()
def jql(
    ctx: typer.Context,
    file: Annotated[
        str | None, typer.Argument(help="Script file, or '-' for standard input.")
    ] = None,
    script: Annotated[str | None, typer.Option("--script", help="The script text.")] = None,
    params: Annotated[
        str | None, typer.Option("--params", help='JSON object exposed as `params`, e.g. {"d":1}.')
    ] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Run a JQL script (legacy: Mixpanel keeps JQL in maintenance mode).

    Example: mp query jql script.js --params '{"from": "2024-01-01"}'
    """
    text = _read_script(file, script)
    parsed: Any = None
    if params is not None:
        try:
            parsed = orjson.loads(params)
        except orjson.JSONDecodeError:
            raise ValidationError("--params must be a JSON object, e.g. '{\"days\": 7}'") from None
        if not isinstance(parsed, dict):
            raise ValidationError("--params must be a JSON object, e.g. '{\"days\": 7}'")
    _emit(get_context(ctx).workspace().jql(text, params=parsed), fmt, jq)


def _read_script(file: str | None, script: str | None) -> str:
    if (file is None) == (script is None):
        raise ValidationError("give the JQL script as a file (or '-') or with --script, not both")
    if script is not None:
        return script
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(str(file)).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc.strerror or exc}") from None
