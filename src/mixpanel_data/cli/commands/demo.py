"""`mp demo`: the whole job end to end on a local emulator, without a Mixpanel account."""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mixpanel_data.cli.commands.emulator import require_extra
from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import message, render, write_stdout
from mixpanel_data.cli.options import Format

if TYPE_CHECKING:
    from mixpanel_data.emulator.server import Emulator
    from mixpanel_data.types import FetchProgress
    from mixpanel_data.workspace import Workspace


@contextlib.contextmanager
def _progress_bar(*, enabled: bool) -> Iterator[Callable[[FetchProgress], None] | None]:
    """A rich progress bar on stderr fed by fetch progress callbacks (None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.completed:>3.0f}/{task.total:.0f} windows"),
        TextColumn("{task.fields[rows]:>10,} rows  {task.fields[mb]:>7.1f} MB"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(p: FetchProgress) -> None:
        if p.table not in tasks:
            tasks[p.table] = progress.add_task(
                f"fetching {p.table}", total=max(p.windows_total, 1), rows=0, mb=0.0
            )
        progress.update(
            tasks[p.table],
            completed=p.windows_done,
            total=max(p.windows_total, 1),
            rows=p.rows,
            mb=p.bytes / 1e6,
        )

    with progress:
        yield update


def _print_section(title: str, rows: list[dict[str, Any]]) -> None:
    write_stdout("\n" + render(rows, fmt=Format.table, title=title))


def _export_lines(emu: Emulator, db: Path) -> str:
    creds = emu.credentials
    env = {
        "MP_BASE_URL": creds["base_url"],
        "MP_USERNAME": creds["username"],
        "MP_SECRET": creds["secret"],
        "MP_PROJECT_ID": creds["project_id"],
        "MP_TIMEZONE": emu.spec.timezone,
    }
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    example = shlex.quote("SELECT event_name, count(*) FROM events GROUP BY 1")
    lines = [
        f"export {assignments}",
        "# then, for example:",
        f"#   mp --db {shlex.quote(str(db))} sql {example} -f table",
        "#   mp inspect events",
    ]
    return "\n".join(lines) + "\n"


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the emulator running; print how to use it.")
    ] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=365, help="Days of events.")] = 30,
    users: Annotated[int, typer.Option("--users", min=1, max=100_000, help="Users.")] = 1000,
    start_date: Annotated[
        str | None,
        typer.Option("--start-date", help="First day of data, YYYY-MM-DD (default: --days ago)."),
    ] = None,
) -> None:
    """Fetch a month of a demo shop's events into DuckDB and query it, with no account needed.

    Example: mp demo --keep
    """
    require_extra("emulator", command="mp demo")
    from mixpanel_data.cli.demo_sections import DemoRun, demo_spec, sections
    from mixpanel_data.emulator.server import Emulator

    state = get_context(ctx)
    quiet = state.quiet
    bar = sys.stderr.isatty() and not quiet
    with contextlib.ExitStack() as stack:
        if state.db_path is not None:
            db = Path(state.db_path).expanduser()
        else:
            db = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-demo-"))) / (
                "demo.duckdb"
            )
        first = _first_day(start_date)
        emu = stack.enter_context(
            Emulator(spec=demo_spec(users=users, days=days, start_date=first))
        )
        message(f"Emulator serving a demo project at {emu.base_url}", quiet=quiet)
        ws = stack.enter_context(_demo_workspace(emu, db))
        dates = emu.project.data_dates
        run = DemoRun(from_date=dates[0], to_date=dates[-1], timezone=emu.spec.timezone)
        started = time.monotonic()
        with _progress_bar(enabled=bar) as progress:
            # The data's UTC days start in the project day before (west of UTC).
            events = ws.fetch_events(
                "events", from_date=run.from_date - timedelta(days=1), to_date=run.to_date,
                replace=True, progress=progress,
            )  # fmt: skip
            profiles = ws.fetch_profiles("profiles", replace=True, progress=progress)
        message(
            f"Fetched {events.table_rows:,} events ({events.duplicates_dropped:,} duplicates "
            f"dropped) and {profiles.table_rows:,} profiles in "
            f"{time.monotonic() - started:.1f} s into {db}",
            quiet=quiet,
        )
        for section in sections():
            rows = section.rows(ws, run)
            if rows:  # a very short demo range leaves some sections without data
                _print_section(section.title, rows)
        if not keep:
            message(
                "\nRun `mp demo --keep` to keep the emulator and the database, and query them.",
                quiet=quiet,
            )
        else:
            write_stdout("\n" + _export_lines(emu, db))
            message("Emulator running; press Ctrl-C to stop.", quiet=quiet)
            _wait_for_interrupt()
            message("Emulator stopped.", quiet=quiet)


def _first_day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        from mixpanel_data.exceptions import ValidationError

        raise ValidationError(f"invalid --start-date '{text}'; use YYYY-MM-DD") from None


@contextlib.contextmanager
def _demo_workspace(emu: Emulator, db: Path) -> Iterator[Workspace]:
    """A Workspace on the emulator; the contract's budgets do not apply to a local server."""
    from pydantic import SecretStr

    from mixpanel_data.types import Credentials
    from mixpanel_data.workspace import Workspace

    creds = Credentials(
        username=emu.username,
        secret=SecretStr(emu.secret),
        project_id=str(emu.spec.project_id),
        base_url=emu.base_url,
        timezone=emu.spec.timezone,
        source="demo",
    )
    with Workspace(credentials=creds, path=db, budgets={"export": "off", "query": "off"}) as ws:
        yield ws
