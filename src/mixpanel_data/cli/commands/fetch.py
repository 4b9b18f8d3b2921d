"""`mp fetch events|profiles`: copy Mixpanel data into the local database, or stream it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import check_output, emit, message, silence_stdout
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt

if TYPE_CHECKING:
    from mixpanel_data.types import FetchProgress

app = typer.Typer(
    help="Fetch events and profiles into the local DuckDB database (or stream them).",
    no_args_is_help=True,
)

_STDOUT_BATCH = 1 << 20


@contextmanager
def progress_bar(
    *, enabled: bool, label: str, waiting: str = "waiting for the first export window…"
) -> Iterator[Callable[[FetchProgress], None] | None]:
    """A rich progress bar on stderr (only on a terminal, never with --quiet).

    Until the first window (or page) is committed it says what it waits for: the
    first download from a cold project can take several seconds.
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} windows"),
        TextColumn(
            "{task.fields[rows]:,} rows  {task.fields[mb]:.1f} MB  {task.fields[rate]:,.0f}/s"
        ),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None, rows=0, mb=0.0, rate=0.0, status=waiting)
        first: list[int] = []

        def update(p: FetchProgress) -> None:
            if not first:
                first.append(p.windows_done)  # windows already committed (a resume)
            started = p.windows_done > first[0] or p.rows > 0
            bar.update(
                task,
                completed=p.windows_done,
                total=p.windows_total or None,
                rows=p.rows,
                mb=p.bytes / 1e6,
                rate=p.rows_per_second,
                status="" if started else waiting,
            )

        yield update


def _write_lines(lines: Iterator[bytes]) -> None:
    """Write JSONL to stdout in large batches; a reader that went away ends it with 0."""
    out = sys.stdout.buffer
    batch: list[bytes] = []
    size = 0
    try:
        for line in lines:
            batch.append(line)
            size += len(line) + 1
            if size >= _STDOUT_BATCH:
                out.write(b"\n".join(batch) + b"\n")
                batch, size = [], 0
        if batch:
            out.write(b"\n".join(batch) + b"\n")
        out.flush()
    except BrokenPipeError:
        # `mp fetch events --stdout | head -1`: click would exit 1 on EPIPE.
        silence_stdout()
        raise typer.Exit(0) from None


@contextmanager
def _partial_result_on_stdout(*, fmt: Format, jq: str | None) -> Iterator[None]:
    """On a partial failure, still print what was committed (with ``failed_ranges``).

    The error line goes to stderr and the exit code is 6 (via `main`); stdout
    carries the result so scripts see which ranges to retry.
    """
    from mixpanel_data.exceptions import PartialFetchError

    try:
        yield
    except PartialFetchError as exc:
        if exc.result is not None:
            emit(exc.result, fmt=fmt, jq=jq)
        raise


def _json_line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


@app.command("events")
def events(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Table name.")] = "events",
    from_date: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (inclusive).")
    ] = None,
    to_date: Annotated[
        str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", "-e", help="Only this event (repeat for more; names may have commas)."
        ),
    ] = None,
    events_csv: Annotated[
        str | None, typer.Option("--events", help="Only these events, comma-separated.")
    ] = None,
    where: Annotated[
        str | None, typer.Option("--where", help="Mixpanel filter expression.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most N events (<= 100000), one request.")
    ] = None,
    append: Annotated[bool, typer.Option("--append", help="Add to an existing table.")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Rebuild the table; swapped in only on success.")
    ] = False,
    keep_duplicates: Annotated[
        bool, typer.Option("--keep-duplicates", help="Store raw rows, no deduplication.")
    ] = False,
    update: Annotated[
        bool,
        typer.Option("--update", help="Refetch from the table's last day minus 5 days to today."),
    ] = False,
    lookback: Annotated[
        int, typer.Option("--lookback-days", help="Look-back for --update (late events).")
    ] = 5,
    legacy_time: Annotated[
        bool,
        typer.Option("--legacy-time", help="Project created before 2023: times are local."),
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Windows downloaded at once (default 4).")
    ] = None,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Write JSONL rows to stdout instead of storing.")
    ] = False,
    raw: Annotated[bool, typer.Option("--raw", help="With --stdout: the API's records.")] = False,
    to_parquet: Annotated[
        str | None,
        typer.Option(
            "--to-parquet",
            metavar="DIR",
            help="Also write each fetched day to DIR/<table>/date=YYYY-MM-DD/ (Parquet).",
        ),
    ] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Fetch events into a local table, deduplicated, resumable after a crash.

    Example: mp fetch events jan --from 2024-01-01 --to 2024-01-31 -e Login -e "Sign Up"
    """
    check_output(fmt=fmt, jq=jq)
    state = get_context(ctx)
    names = list(event or [])
    if events_csv:
        names += [n.strip() for n in events_csv.split(",") if n.strip()]
    if stdout:
        from mixpanel_data.exceptions import ValidationError

        if from_date is None or to_date is None:
            raise ValidationError("--stdout needs --from and --to")
        if to_parquet is not None:
            raise ValidationError(
                "--stdout and --to-parquet cannot be combined; stream with --stdout, "
                "or store (and write the lake) without it"
            )
        ws = state.workspace(read_only=True)
        if raw:
            lines = ws.stream_export_lines(
                from_date=from_date, to_date=to_date, events=names or None, where=where, limit=limit
            )
        else:
            rows = ws.stream_events(
                from_date=from_date,
                to_date=to_date,
                events=names or None,
                where=where,
                limit=limit,
                legacy_time=legacy_time,
            )
            lines = (_json_line(r) for r in rows)
        _write_lines(lines)
        return
    ws = state.workspace()
    with (
        _partial_result_on_stdout(fmt=fmt, jq=jq),
        progress_bar(enabled=not state.quiet, label=f"events → {name}") as bar,
    ):
        if update:
            result = ws.update_events(
                name, lookback_days=lookback, workers=workers, progress=bar, to_parquet=to_parquet
            )
        else:
            from mixpanel_data.exceptions import ValidationError

            if from_date is None or to_date is None:
                raise ValidationError("give --from and --to (YYYY-MM-DD), or use --update")
            result = ws.fetch_events(
                name,
                from_date=from_date,
                to_date=to_date,
                events=names or None,
                where=where,
                limit=limit,
                append=append,
                replace=replace,
                keep_duplicates=keep_duplicates,
                legacy_time=legacy_time,
                workers=workers,
                progress=bar,
                to_parquet=to_parquet,
            )
    if result.rows_inserted == 0 and result.table_rows == 0 and not state.quiet:
        message(_nothing_stored(ws, result, names=names or []))
    emit(result, fmt=fmt, jq=jq)


def _nothing_stored(ws: Any, result: Any, *, names: list[str]) -> str:
    """Why a fetch stored no rows, and where the project's data is (two small API calls:
    the event names, and one daily count of a few of them over the last 90 days)."""
    from datetime import date, datetime, timedelta
    from zoneinfo import ZoneInfo

    from mixpanel_data.exceptions import MixpanelDataError

    asked = f"{result.from_date}..{result.to_date}" if getattr(result, "from_date", None) else ""
    head = f"warning: the fetch stored 0 rows{' for ' + asked if asked else ''}"
    try:
        known = list(ws.events())
        unknown = [n for n in names if n not in set(known)]
        if unknown:
            sample = ", ".join(known[:8]) + (", …" if len(known) > 8 else "")
            return f"{head}; the project has no event named {', '.join(unknown)} (it has: {sample})"
        if not known:
            return f"{head}; the project has no events at all"
        zone = ZoneInfo(ws.credentials.timezone) if ws.credentials.timezone else None
        today: date = datetime.now(tz=zone).date()
        counts = ws.event_counts(
            (names or known)[:10], from_date=today - timedelta(days=89), to_date=today
        )
        days = sorted(d for per in counts.values.values() for d, v in per.items() if v)
    except MixpanelDataError:
        return f"{head}; the table is empty (check the dates and --event names)"
    if not days:
        return f"{head}; Mixpanel has none of these events in the last 90 days either"
    return (
        f"{head}; the project has data from {days[0]} to {days[-1]} (last 90 days checked, "
        f"project time): fetch within that range"
    )


@app.command("profiles")
def profiles(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Table name.")] = "profiles",
    where: Annotated[str | None, typer.Option("--where", help="Profile filter expression.")] = None,
    cohort: Annotated[
        str | None, typer.Option("--cohort", help="Only this cohort's members.")
    ] = None,
    output_properties: Annotated[
        str | None,
        typer.Option("--output-properties", help="Only these properties, comma-separated."),
    ] = None,
    distinct_id: Annotated[
        list[str] | None, typer.Option("--distinct-id", help="Only this profile (repeatable).")
    ] = None,
    distinct_ids: Annotated[
        str | None, typer.Option("--distinct-ids", help="Only these profiles, comma-separated.")
    ] = None,
    group_id: Annotated[
        str | None, typer.Option("--group-id", help="Group profiles of this data group.")
    ] = None,
    behaviors: Annotated[
        str | None, typer.Option("--behaviors", help="Event-based selector, as JSON.")
    ] = None,
    as_of_timestamp: Annotated[
        int | None, typer.Option("--as-of-timestamp", help="Epoch seconds (with --behaviors).")
    ] = None,
    include_all_users: Annotated[
        bool | None,
        typer.Option(
            "--include-all-users/--only-with-profiles",
            help="With --cohort: include members without a profile (Mixpanel's default).",
        ),
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Upsert into an existing table.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Rebuild the table; swapped in only on success.")
    ] = False,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Refused: Engage cannot tell which profiles changed (see the note below).",
        ),
    ] = False,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Write JSONL rows to stdout instead of storing.")
    ] = False,
    raw: Annotated[bool, typer.Option("--raw", help="With --stdout: the API's records.")] = False,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Fetch user or group profiles into a local table, upserting on distinct_id.

    There is no --update for profiles: the Engage API filters only on profile
    properties, and the one that dates a change, $last_seen, is not moved by updates
    sent with $ignore_time (server-side syncs and imports) and never lists deleted
    profiles; refresh with --replace.

    Example: mp fetch profiles paying --where 'properties["plan"] == "pro"'
    """
    if update:
        from mixpanel_data.exceptions import ValidationError

        raise ValidationError(
            "--update is not available for profiles: the Engage API cannot select changed "
            "profiles ($last_seen misses updates sent with $ignore_time, and deletions); "
            "refresh them all with --replace"
        )
    check_output(fmt=fmt, jq=jq)
    state = get_context(ctx)
    ids = list(distinct_id or [])
    if distinct_ids:
        ids += [i.strip() for i in distinct_ids.split(",") if i.strip()]
    filters: dict[str, Any] = {
        "where": where,
        "cohort_id": cohort,
        "output_properties": [p.strip() for p in output_properties.split(",") if p.strip()]
        if output_properties
        else None,
        "distinct_ids": ids or None,
        "group_id": group_id,
        "behaviors": behaviors,
        "as_of_timestamp": as_of_timestamp,
        "include_all_users": include_all_users,
    }
    if stdout:
        rows = state.workspace(read_only=True).stream_profiles(raw=raw, **filters)
        _write_lines(_json_line(r) for r in rows)
        return
    ws = state.workspace()
    with progress_bar(
        enabled=not state.quiet,
        label=f"profiles → {name}",
        waiting="waiting for the first engage page…",
    ) as bar:
        result = ws.fetch_profiles(name, append=append, replace=replace, progress=bar, **filters)
    if result.malformed_lines:
        message(f"{result.malformed_lines} malformed profile records skipped", quiet=state.quiet)
    emit(result, fmt=fmt, jq=jq)
