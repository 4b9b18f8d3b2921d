"""`mp inspect`: the local database's tables and the Mixpanel project's schema."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import emit, message
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt
from mixpanel_data.exceptions import ValidationError

app = typer.Typer(help="Inspect the local database and the project's schema.", no_args_is_help=True)

# -- the project's schema, live from Mixpanel (discovery) --------------------------------

EventOpt = Annotated[str, typer.Option("--event", "-e", help="Event name.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-l", help="At most N results.")]


@app.command()
def events(ctx: typer.Context, fmt: FormatOpt = Format.json, jq: JqOpt = None) -> None:
    """List every event name in the project's history, sorted.

    Example: mp inspect events -f plain
    """
    names = get_context(ctx).workspace().events()
    emit(names, fmt=fmt, jq=jq, rows=[{"event": n} for n in names])


@app.command()
def properties(
    ctx: typer.Context, event: EventOpt, fmt: FormatOpt = Format.json, jq: JqOpt = None
) -> None:
    """List the property names seen on an event, sorted.

    Example: mp inspect properties -e Purchase
    """
    names = get_context(ctx).workspace().properties(event)
    emit(names, fmt=fmt, jq=jq, rows=[{"property": n} for n in names])


@app.command()
def values(
    ctx: typer.Context,
    prop: Annotated[str, typer.Option("--property", "-p", help="Property name.")],
    event: Annotated[str | None, typer.Option("--event", "-e", help="Only this event.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most N values.")] = 100,
    counts: Annotated[
        bool,
        typer.Option(
            "--counts",
            help="With --event: how often each value came with it in the last 30 days "
            "(one Query API call).",
        ),
    ] = False,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """List the most common values of a property, most common first.

    Example: mp inspect values -p plan -e Purchase -l 20 --counts
    """
    ws = get_context(ctx).workspace()
    if counts and event is None:
        raise ValidationError(
            "--counts needs --event: Mixpanel counts a property's values per event"
        )
    found = ws.property_values(prop, event=event, limit=limit)
    if not counts or event is None:
        emit(found, fmt=fmt, jq=jq, rows=[{"value": v} for v in found])
        return
    # /events/properties/values lists values without counts (contract §6.4); the counts
    # are /events/properties' (§6.6), summed over the last 30 days.
    from mixpanel_data.cli.commands.query import _dates

    start, end = _dates(ctx, None, None)
    result = ws.property_counts(event, prop, from_date=start, to_date=end, limit=limit)
    totals = {str(k): int(sum(per.values())) for k, per in result.values.items()}
    rows = [{"value": v, "count": totals.get(str(v), 0)} for v in found]
    emit(rows, fmt=fmt, jq=jq, rows=rows)


@app.command()
def funnels(ctx: typer.Context, fmt: FormatOpt = Format.json, jq: JqOpt = None) -> None:
    """List the project's saved funnels (ids for `mp query funnel`).

    Example: mp inspect funnels -f table
    """
    emit([f.to_dict() for f in get_context(ctx).workspace().funnels()], fmt=fmt, jq=jq)


@app.command()
def cohorts(ctx: typer.Context, fmt: FormatOpt = Format.json, jq: JqOpt = None) -> None:
    """List the project's saved cohorts with their sizes.

    Example: mp inspect cohorts -f table
    """
    emit([c.to_dict() for c in get_context(ctx).workspace().cohorts()], fmt=fmt, jq=jq)


@app.command("top-events")
def top_events(
    ctx: typer.Context,
    type: Annotated[str, typer.Option("--type", "-t", help="general, unique or average.")] = (
        "general"
    ),
    limit: LimitOpt = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """List today's top events with the change since yesterday (never cached).

    Example: mp inspect top-events -t unique -l 10
    """
    found = get_context(ctx).workspace().top_events(type=type, limit=limit)
    emit([e.to_dict() for e in found], fmt=fmt, jq=jq)


@app.command()
def bookmarks(
    ctx: typer.Context,
    type: Annotated[
        str | None,
        typer.Option(
            "--type", "-t", help="insights, funnels, retention, flows or launch-analysis."
        ),
    ] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """List saved reports (ids for `mp query saved-report` and `mp query flows`).

    Example: mp inspect bookmarks -t insights -f table
    """
    emit([b.to_dict() for b in get_context(ctx).workspace().bookmarks(type)], fmt=fmt, jq=jq)


# -- the local database (no credentials needed) -------------------------------------

TableArg = Annotated[str, typer.Argument(help="Table name, e.g. events.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _local(ctx: typer.Context, *, write: bool = False) -> Any:
    """The Workspace on the local database only (read-only unless `write`)."""
    return get_context(ctx).workspace(read_only=not write, credentials=False)


@app.command()
def info(ctx: typer.Context, fmt: FormatOpt = Format.json, jq: JqOpt = None) -> None:
    """Show the local database: path, size, project and tables.

    Example: mp inspect info
    """
    result = _local(ctx).info()
    row = {**result.to_dict(), "tables": ", ".join(t.name for t in result.tables)}
    emit(result, fmt=fmt, jq=jq, rows=[row])


@app.command()
def tables(ctx: typer.Context, fmt: FormatOpt = Format.json, jq: JqOpt = None) -> None:
    """List local tables with their kind, row count and fetch status.

    Example: mp inspect tables -f table
    """
    result = _local(ctx).tables()
    rows = [{k: v for k, v in t.to_dict().items() if k != "fetch_args"} for t in result]
    emit(result, fmt=fmt, jq=jq, rows=rows)


@app.command()
def schema(
    ctx: typer.Context, table: TableArg, fmt: FormatOpt = Format.json, jq: JqOpt = None
) -> None:
    """Show a table's columns and types.

    Example: mp inspect schema events -f table
    """
    result = _local(ctx).table_schema(table)
    emit(result, fmt=fmt, jq=jq, rows=[c.to_dict() for c in result.columns])


@app.command()
def sample(
    ctx: typer.Context,
    table: TableArg,
    n: Annotated[int, typer.Option("--rows", "-n", min=1, help="Number of rows.")] = 10,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Show random rows of a table.

    Example: mp inspect sample events -n 5 -f table
    """
    emit(_local(ctx).sample(table, n=n), fmt=fmt, jq=jq)


@app.command()
def summarize(
    ctx: typer.Context, table: TableArg, fmt: FormatOpt = Format.json, jq: JqOpt = None
) -> None:
    """Summarize every column of a table (DuckDB SUMMARIZE: min, max, nulls, quartiles).

    Example: mp inspect summarize events -f table
    """
    emit(_local(ctx).summarize(table), fmt=fmt, jq=jq)


@app.command()
def breakdown(
    ctx: typer.Context, table: TableArg, fmt: FormatOpt = Format.json, jq: JqOpt = None
) -> None:
    """Count events, unique users and first/last seen per event of an events table.

    Example: mp inspect breakdown events -f table
    """
    result = _local(ctx).event_breakdown(table)
    emit(result, fmt=fmt, jq=jq, rows=[e.to_dict() for e in result.events])


@app.command()
def keys(
    ctx: typer.Context,
    table: TableArg,
    event: Annotated[
        str | None, typer.Option("--event", "-e", help="Only this event's properties.")
    ] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """List the property keys found in a table's JSON properties.

    Example: mp inspect keys events --event Purchase
    """
    result = _local(ctx).property_keys(table, event=event)
    emit(result, fmt=fmt, jq=jq, rows=[{"key": k} for k in result])


@app.command()
def column(
    ctx: typer.Context,
    table: TableArg,
    expr: Annotated[
        str, typer.Argument(help="A column, or a JSON path: properties->>'$.price' or $.price.")
    ],
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Show statistics of a column or JSON property: nulls, distinct, top values, numbers.

    Example: mp inspect column events '$.price'
    """
    result = _local(ctx).column_stats(table, expr)
    data = result.to_dict()
    rows = [{"stat": k, "value": v} for k, v in data.items() if k not in ("top_values", "numeric")]
    rows += [{"stat": f"numeric.{k}", "value": v} for k, v in (data["numeric"] or {}).items()]
    rows += [{"stat": f"top: {t['value']}", "value": t["count"]} for t in data["top_values"]]
    emit(result, fmt=fmt, jq=jq, rows=rows)


def _confirm(question: str, *, yes: bool) -> None:
    """Ask on a terminal; refuse without --yes when nobody can answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError("refusing to drop without --yes (standard input is not a terminal)")
    # Prompt on stderr and read stdin ourselves: click's confirm echoes a space to stdout.
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        message("Nothing dropped.")
        raise typer.Exit(1)


@app.command()
def drop(
    ctx: typer.Context,
    table: Annotated[list[str], typer.Argument(help="Tables to drop.")],
    yes: YesOpt = False,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Drop tables and their fetch metadata (asks first unless --yes).

    Example: mp inspect drop events_old --yes
    """
    state = get_context(ctx)
    _confirm(f"Drop {', '.join(table)} from the local database?", yes=yes)
    dropped = _local(ctx, write=True).drop(*table)
    message(f"Dropped {len(dropped)} table(s).", quiet=state.quiet)
    emit({"dropped": dropped}, fmt=fmt, jq=jq, rows=[{"dropped": n} for n in dropped])


@app.command("drop-all")
def drop_all(
    ctx: typer.Context,
    type: Annotated[
        str | None, typer.Option("--type", "-t", help="Only tables of this kind: events|profiles.")
    ] = None,
    yes: YesOpt = False,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Drop every local table, or every table of one kind (asks first unless --yes).

    Example: mp inspect drop-all --type profiles --yes
    """
    state = get_context(ctx)
    what = f"every {type} table" if type else "every table"
    _confirm(f"Drop {what} from the local database?", yes=yes)
    dropped = _local(ctx, write=True).drop_all(type=type)
    message(f"Dropped {len(dropped)} table(s).", quiet=state.quiet)
    emit({"dropped": dropped}, fmt=fmt, jq=jq, rows=[{"dropped": n} for n in dropped])
