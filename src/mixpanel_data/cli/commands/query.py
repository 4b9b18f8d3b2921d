"""`mp query`: live reports computed by Mixpanel (each call is one of 60 hourly queries)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import emit
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt
from mixpanel_data.exceptions import ValidationError

app = typer.Typer(
    help="Run live reports on Mixpanel: segmentation, funnels, retention and more.",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="First day, YYYY-MM-DD (inclusive; default: 29 days before --to)."),
]
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to", help="Last day, YYYY-MM-DD (inclusive; default: today in the project's timezone)."
    ),
]
DEFAULT_DAYS = 30  # without --from/--to: the last 30 days, today included, in project time
OnOpt = Annotated[
    str | None,
    typer.Option("--on", help='Split by a property name or an expression (properties["x"]).'),
]
NumericOnOpt = Annotated[str, typer.Option("--on", help="A numeric property name or expression.")]
WhereOpt = Annotated[
    str | None, typer.Option("--where", help='Filter expression, e.g. properties["plan"] == "pro".')
]
TypeOpt = Annotated[str, typer.Option("--type", "-t", help="general, unique or average.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-l", help="Top N segments.")]
EventArg = Annotated[str, typer.Argument(help="Event name.")]
OptFromOpt = Annotated[
    str | None,
    typer.Option(
        "--from", help="First day, YYYY-MM-DD (default: 29 days before --to; or --interval)."
    ),
]
OptToOpt = Annotated[
    str | None,
    typer.Option(
        "--to", help="Last day, YYYY-MM-DD (default: today in project time; or --interval)."
    ),
]
IntervalOpt = Annotated[
    int | None,
    typer.Option("--interval", help="The last N units up to now, instead of --from/--to."),
]
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


def _live_only(local: bool, **options: Any) -> dict[str, Any]:
    """Options only the live API computes (``--interval``): refused with ``--local``."""
    given = {k: v for k, v in options.items() if v is not None}
    if local and given:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise ValidationError(f"{flags} is not computed with --local; give --from/--to instead")
    return given


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
    from datetime import date, datetime, timedelta
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


@app.command()
def segmentation(
    ctx: typer.Context,
    event: EventArg,
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    on: OnOpt = None,
    where: WhereOpt = None,
    unit: Annotated[
        str | None,
        typer.Option("--unit", "-u", help="minute, hour, day (default) or month (no week)."),
    ] = None,
    type: TypeOpt = "general",
    limit: LimitOpt = None,
    interval: Annotated[
        int | None,
        typer.Option(
            "--interval", help="Days per bucket instead of --unit (type unique or average only)."
        ),
    ] = None,
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Count an event over time, optionally split by a property.

    Mixpanel's /segmentation has no weekly unit: use `mp query event-counts --unit week`.

    Example: mp query segmentation Purchase --from 2024-01-01 --to 2024-01-31 --on country -f table
    """
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).segmentation(
        event,
        from_date=from_date,
        to_date=to_date,
        on=on,
        where=where,
        unit=unit,
        type=type,
        limit=limit,
        **_live_only(local, interval=interval),
    )
    _emit(result, fmt, jq, chart)


HourDayOpt = Annotated[str, typer.Option("--unit", "-u", help="hour or day.")]


@app.command("segmentation-numeric")
def segmentation_numeric(
    ctx: typer.Context,
    event: EventArg,
    on: NumericOnOpt,
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    where: WhereOpt = None,
    unit: HourDayOpt = "day",
    type: TypeOpt = "general",
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Count an event in numeric buckets of a property (e.g. "10 - 20").

    Example: mp query segmentation-numeric Purchase --from 2024-01-01 --to 2024-01-07 --on price
    """
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).segmentation_numeric(
        event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit, type=type
    )
    _emit(result, fmt, jq, chart)


@app.command("segmentation-sum")
def segmentation_sum(
    ctx: typer.Context,
    event: EventArg,
    on: NumericOnOpt,
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    where: WhereOpt = None,
    unit: HourDayOpt = "day",
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Sum a numeric property per day (or hour).

    Example: mp query segmentation-sum Purchase --from 2024-01-01 --to 2024-01-31 --on price
    """
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).segmentation_sum(
        event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit
    )
    _emit(result, fmt, jq, chart)


@app.command("segmentation-average")
def segmentation_average(
    ctx: typer.Context,
    event: EventArg,
    on: NumericOnOpt,
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    where: WhereOpt = None,
    unit: HourDayOpt = "day",
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Average a numeric property per day (or hour).

    Example: mp query segmentation-average Purchase --from 2024-01-01 --to 2024-01-31 --on price
    """
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).segmentation_average(
        event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit
    )
    _emit(result, fmt, jq, chart)


@app.command()
def funnel(
    ctx: typer.Context,
    funnel_id: Annotated[
        int | None, typer.Argument(help="Saved funnel id (see `mp inspect funnels`).")
    ] = None,
    *,
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    length: Annotated[int | None, typer.Option("--length", help="Conversion window.")] = None,
    length_unit: Annotated[
        str | None, typer.Option("--length-unit", help="second, minute, hour or day.")
    ] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", help="Days per bucket (adds per-bucket rows).")
    ] = None,
    unit: Annotated[
        str | None, typer.Option("--unit", "-u", help="day, week or month buckets.")
    ] = None,
    on: OnOpt = None,
    where: WhereOpt = None,
    limit: LimitOpt = None,
    steps: Annotated[
        list[str] | None,
        typer.Option("--step", "-s", help="With --local: an ad-hoc funnel's step (repeatable)."),
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Conversion window as 7d, 12h, 30m or 90s.")
    ] = None,
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Compute a saved funnel; totals count each user once over the range.

    With --local, a saved funnel needs its window (--length/--window: Mixpanel's API does
    not return it) and -s A -s B runs an ad-hoc funnel (the Query API cannot).

    Example: mp query funnel 7509 --from 2024-01-01 --to 2024-01-31 -f table
    """
    if window is not None:
        length, length_unit = _window(window)
    if funnel_id is None and not (local and steps):
        raise ValidationError("give a saved funnel's id (mp inspect funnels), or --local -s A -s B")
    extra: dict[str, Any] = {}
    if steps:
        if not local:
            raise ValidationError("ad-hoc funnels (-s/--step) run only with --local")
        extra["steps"] = steps
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).funnel(
        funnel_id,
        from_date=from_date,
        to_date=to_date,
        length=length,
        length_unit=length_unit,
        **extra,
        interval=interval,
        unit=unit,
        on=on,
        where=where,
        limit=limit,
    )
    _emit(result, fmt, jq, chart)


def _window(text: str) -> tuple[int, str]:
    """``7d`` -> (7, "day"); the units the funnel's ``length_unit`` takes."""
    units = {"d": "day", "h": "hour", "m": "minute", "s": "second"}
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise ValidationError(f"--window {text!r}: write a number and a unit, e.g. 7d, 12h, 30m")
    return int(value[:-1]), units[value[-1]]


@app.command()
def retention(
    ctx: typer.Context,
    born_event: Annotated[str, typer.Option("--born-event", help="Event that starts a cohort.")],
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    event: Annotated[
        str | None, typer.Option("--event", "-e", help="Return event (default: any).")
    ] = None,
    retention_type: Annotated[
        str, typer.Option("--retention-type", help="birth or compounded.")
    ] = "birth",
    born_where: Annotated[
        str | None, typer.Option("--born-where", help="Filter on the born event.")
    ] = None,
    where: WhereOpt = None,
    interval: Annotated[
        int | None, typer.Option("--interval", help="Days per bucket (not with --unit).")
    ] = None,
    unit: Annotated[
        str | None, typer.Option("--unit", "-u", help="day, week or month (not with --interval).")
    ] = None,
    interval_count: Annotated[int, typer.Option("--interval-count", help="Number of buckets.")] = 1,
    unbounded: Annotated[
        bool, typer.Option("--unbounded", help="Count returns in this bucket or later.")
    ] = False,
    on: OnOpt = None,
    limit: LimitOpt = None,
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Compute birth or compounded retention by cohort day.

    Example: mp query retention --born-event Signup -e Login --from 2024-01-01 --to 2024-01-31
    """
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).retention(
        born_event=born_event,
        event=event,
        from_date=from_date,
        to_date=to_date,
        retention_type=retention_type,
        born_where=born_where,
        where=where,
        interval=interval,
        unit=unit,
        interval_count=interval_count,
        unbounded=unbounded,
        on=on,
        limit=limit,
    )
    _emit(result, fmt, jq, chart)


@app.command()
def frequency(
    ctx: typer.Context,
    from_date: FromOpt = None,
    to_date: ToOpt = None,
    unit: Annotated[str, typer.Option("--unit", "-u", help="day, week or month.")] = "day",
    addiction_unit: Annotated[str, typer.Option("--addiction-unit", help="hour or day.")] = "hour",
    event: Annotated[str | None, typer.Option("--event", "-e", help="Event (default: any).")] = (
        None
    ),
    where: WhereOpt = None,
    on: OnOpt = None,
    limit: LimitOpt = None,
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Count users by how many hours of each day (or days of each week) they were active.

    Example: mp query frequency -e Login --from 2024-01-01 --to 2024-01-07 -f table
    """
    from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).frequency(
        from_date=from_date,
        to_date=to_date,
        unit=unit,
        addiction_unit=addiction_unit,
        event=event,
        where=where,
        on=on,
        limit=limit,
    )
    _emit(result, fmt, jq, chart)


@app.command("event-counts")
def event_counts(
    ctx: typer.Context,
    events: Annotated[list[str], typer.Option("--event", "-e", help="Event name (repeatable).")],
    from_date: OptFromOpt = None,
    to_date: OptToOpt = None,
    type: TypeOpt = "general",
    unit: Annotated[str, typer.Option("--unit", "-u", help="minute, hour, day, week or month.")] = (
        "day"
    ),
    interval: IntervalOpt = None,
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Count several events over time in one query (give --from/--to or --interval).

    Example: mp query event-counts -e Login -e Purchase --from 2024-01-01 --to 2024-01-31
    """
    if interval is None:
        from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).event_counts(
        events,
        from_date=from_date,
        to_date=to_date,
        type=type,
        unit=unit,
        **_live_only(local, interval=interval),
    )
    _emit(result, fmt, jq, chart)


@app.command("property-counts")
def property_counts(
    ctx: typer.Context,
    event: Annotated[str, typer.Option("--event", "-e", help="Event name.")],
    prop: Annotated[str, typer.Option("--property", "-p", help="Property name.")],
    from_date: OptFromOpt = None,
    to_date: OptToOpt = None,
    type: TypeOpt = "general",
    unit: Annotated[str, typer.Option("--unit", "-u", help="minute, hour, day, week or month.")] = (
        "day"
    ),
    values: Annotated[
        list[str] | None, typer.Option("--value", help="Only this value (repeatable).")
    ] = None,
    limit: LimitOpt = None,
    interval: IntervalOpt = None,
    local: LocalOpt = False,
    table: TableOpt = "events",
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
    chart: ChartOpt = None,
) -> None:
    """Count an event per value of a property over time (give --from/--to or --interval).

    Example: mp query property-counts -e Purchase -p plan --from 2024-01-01 --to 2024-01-31
    """
    if interval is None:
        from_date, to_date = _dates(ctx, from_date, to_date)
    result = _engine(ctx, local, table).property_counts(
        event,
        prop,
        from_date=from_date,
        to_date=to_date,
        type=type,
        unit=unit,
        values=values or None,
        limit=limit,
        **_live_only(local, interval=interval),
    )
    _emit(result, fmt, jq, chart)


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
