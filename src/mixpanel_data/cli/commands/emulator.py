"""`mp emulator serve`: a local Mixpanel API for offline pipelines, tests and demos."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import typer

from mixpanel_data.exceptions import MixpanelDataError, ValidationError

# The top-level modules each optional extra brings (pyproject.toml, issue 15): a core
# `pip install mixpanel_data` has none of them, so these commands check before importing.
EXTRA_MODULES = {"emulator": ("cheroot", "quickjs", "numpy"), "mcp": ("mcp",)}

FAULTS_HELP = (
    "Inject failures: ENDPOINT:KIND[:key=value...] joined by ';'. "
    "KIND is 429, 500, 502, 503, 504, reset, terminated_early, truncated_gzip, slow, "
    "malformed_line, hang or session_expired; keys are count, prob, retry_after, "
    "retry_after_form, after_bytes, bytes_per_second, seconds. "
    "E.g. 'export:429:count=2:retry_after=1;engage:session_expired:count=1'."
)

app = typer.Typer(help="Run a local Mixpanel API emulator.", no_args_is_help=True)


def require_extra(extra: str, *, command: str) -> None:
    """Fail in one line (exit 1) naming the extra to install, instead of an ImportError."""
    missing = [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MixpanelDataError(
            f"`{command}` needs the {extra} extra ({', '.join(missing)} not installed); "
            f"install it with: pip install 'mixpanel_data[{extra}]'"
        )


@app.callback()
def _group() -> None:
    """Run a local Mixpanel API emulator (export, engage, query, app APIs)."""


def _export_line(creds: dict[str, str], *, timezone: str) -> str:
    """``export MP_BASE_URL=... MP_TIMEZONE=...``, quoted for a POSIX shell."""
    import shlex

    values = {
        "MP_BASE_URL": creds["base_url"],
        "MP_USERNAME": creds["username"],
        "MP_SECRET": creds["secret"],
        "MP_PROJECT_ID": creds["project_id"],
        "MP_TIMEZONE": timezone,
    }
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items()) + "\n"


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic project.")] = 7,
    users: Annotated[int, typer.Option(help="Number of users.")] = 500,
    days: Annotated[int, typer.Option(help="Days of events.")] = 30,
    start_date: Annotated[
        str | None, typer.Option(help="First day of data, YYYY-MM-DD (default: days ago).")
    ] = None,
    timezone: Annotated[str, typer.Option(help="Project timezone.")] = "America/Los_Angeles",
    project_id: Annotated[str, typer.Option(help="Project id.")] = "1000001",
    events_per_user_per_day: Annotated[
        float, typer.Option(help="Average events per active user per day.")
    ] = 3.0,
    faults: Annotated[str | None, typer.Option(help=FAULTS_HELP)] = None,
    rate_limit: Annotated[
        bool, typer.Option("--rate-limit", help="Enforce Mixpanel's rate limits.")
    ] = False,
    hour_seconds: Annotated[
        float, typer.Option(help="Length of the rate-limit 'hour' in seconds.")
    ] = 3600.0,
    retry_after: Annotated[
        bool, typer.Option("--retry-after", help="Send Retry-After on rate-limit 429s.")
    ] = False,
    legacy_time_shift: Annotated[
        bool,
        typer.Option(
            "--legacy-time-shift", help="Behave like a pre-2023 project (project-time exports)."
        ),
    ] = False,
    username: Annotated[str | None, typer.Option(help="Service account username.")] = None,
    secret: Annotated[str | None, typer.Option(help="Service account secret.")] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where generated day files are cached (days of another spec there are replaced)."
        ),
    ] = None,
    env: Annotated[
        bool,
        typer.Option("--env", help="Print `export MP_...=...` for a shell instead of JSON."),
    ] = False,
) -> None:
    """Serve a synthetic Mixpanel project until Ctrl-C; prints one JSON line of credentials
    (or, with --env, one `export MP_...` line to paste into a shell: eval "$(...)").

    Example: mp emulator serve --seed 7 --days 30 --faults 'export:429:count=1'
    """
    import json
    import signal
    import threading

    require_extra("emulator", command="mp emulator serve")
    from mixpanel_data.emulator.faults import FaultSpecError
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import DEFAULT_SECRET, DEFAULT_USERNAME, Emulator

    first_day: dt.date | None = None
    if start_date:
        try:
            first_day = dt.date.fromisoformat(start_date)
        except ValueError:
            raise ValidationError(f"invalid --start-date '{start_date}'; use YYYY-MM-DD") from None
    spec = ProjectSpec(
        seed=seed,
        users=users,
        days=days,
        start_date=first_day,
        timezone=timezone,
        project_id=project_id,
        events_per_user_per_day=events_per_user_per_day,
        legacy_time_shift=legacy_time_shift,
    )
    try:
        emulator = Emulator(
            spec=spec,
            port=port,
            username=username or DEFAULT_USERNAME,
            secret=secret or DEFAULT_SECRET,
            faults=faults,
            rate_limit=rate_limit,
            hour_seconds=hour_seconds,
            retry_after=retry_after,
            cache_dir=cache_dir,
        )
    except FaultSpecError as exc:
        raise ValidationError(str(exc)) from None
    if emulator.project.cache_regenerated:
        print(
            f"note: {cache_dir} held days of another project spec; they were removed "
            "and are generated again for this one",
            file=sys.stderr,
            flush=True,
        )
    stop = threading.Event()
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if on_main else None
    emulator.start()
    try:
        creds = emulator.credentials
        line = {k: creds[k] for k in ("base_url", "username", "secret", "project_id")}
        if env:
            sys.stdout.write(_export_line(line, timezone=spec.timezone))
        else:
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        print(
            f"Mixpanel emulator on {emulator.base_url} (project {spec.project_id}, "
            f"{spec.users} users, {spec.days} days); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if on_main:
            signal.signal(signal.SIGTERM, previous)
        print("Mixpanel emulator stopped", file=sys.stderr, flush=True)
