"""`mp inspect`: the local database's tables and the Mixpanel project's schema."""

from __future__ import annotations

from typing import Annotated

import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import emit
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt

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
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """List the most common values of a property, most common first.

    Example: mp inspect values -p plan -e Purchase -l 20
    """
    found = get_context(ctx).workspace().property_values(prop, event=event, limit=limit)
    emit(found, fmt=fmt, jq=jq, rows=[{"value": v} for v in found])


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
