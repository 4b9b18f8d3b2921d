"""The `mp` entry point: global options, command groups, and the one error handler."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Annotated

import typer

import mixpanel_data
from mixpanel_data._version import __version__
from mixpanel_data.cli import completion
from mixpanel_data.cli.commands import auth, demo, emulator, fetch, inspect, mcp, query, sql
from mixpanel_data.cli.commands import export as export_cmd
from mixpanel_data.cli.context import CliContext
from mixpanel_data.exceptions import MixpanelDataError

EXIT_INVALID_ARGS = 3
EXIT_INTERRUPTED = 130
_OUT_OF_MEMORY = (
    "Error: out of memory; a fetch needs about 1.5 GB (more with many cores): free memory "
    "or raise the limit (ulimit -v), then run the same command again"
)

app = typer.Typer(
    name="mp",
    help="Fast, reliable, local access to Mixpanel data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Replaced by --install-completion/--show-completion SHELL (cli/completion.py).
    add_completion=False,
)
completion.enable()

# Command groups: one module each, joined here.
app.add_typer(auth.app, name="auth")
app.add_typer(emulator.app, name="emulator")
app.add_typer(fetch.app, name="fetch")
app.add_typer(inspect.app, name="inspect")
app.add_typer(query.app, name="query")
app.command("sql")(sql.sql)
app.command("demo")(demo.demo)
app.command("mcp")(mcp.mcp)
app.command("export")(export_cmd.export)


def _version(value: bool) -> None:
    if value:
        print(f"mp {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    account: Annotated[
        str | None,
        typer.Option("--account", "-a", help="Account name from ~/.mp/config.toml."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Local DuckDB file (default ~/.mp/data/<project>.duckdb)."),
    ] = None,
    workspace_id: Annotated[
        str | None,
        typer.Option(
            "--workspace-id",
            help="Data view id for every Query API call (overrides the account's workspace_id).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks on stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    recover: Annotated[
        bool,
        typer.Option(
            "--recover",
            help="Move a damaged DuckDB write-ahead log aside and continue from the last "
            "checkpoint.",
        ),
    ] = False,
    install_completion: completion.InstallCompletionOpt = None,
    show_completion: completion.ShowCompletionOpt = None,
) -> None:
    """Fast, reliable, local access to Mixpanel data.

    Example: mp fetch events --from 2024-01-01 --to 2024-01-31
    """
    if recover:
        from mixpanel_data.workspace import Workspace

        Workspace.set_wal_recovery(True)
    state = CliContext(
        account=account, quiet=quiet, verbose=verbose, db_path=db, workspace_id=workspace_id
    )
    ctx.obj = state
    ctx.call_on_close(state.close)
    if verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s")
        # httpx logs request URLs only; credentials travel in headers it does not log.
        logging.getLogger("httpcore").setLevel(logging.INFO)


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so interpreter exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _not_utf8(argv: list[str], environ: Mapping[str, str]) -> str | None:
    """Name the first argument or MP_* variable holding bytes that are not UTF-8.

    Python passes such bytes on as lone surrogates, which every layer below (JSON,
    HTTP, DuckDB paths) rejects in its own way; one check up front gives one line.
    """

    def bad(text: str) -> bool:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    for i, arg in enumerate(argv):
        if bad(arg):
            name = arg.split("=", 1)[0] if arg.startswith("--") and "=" in arg else None
            if name is None and i > 0 and argv[i - 1].startswith("-"):
                name = argv[i - 1]
            what = f"the value of {name}" if name and not bad(name) else f"argument {i + 1}"
            return f"{what} contains bytes that are not UTF-8; pass it as UTF-8 text"
    for key in sorted(environ):
        if key.startswith("MP_") and bad(environ[key]):
            return f"{key} contains bytes that are not UTF-8; set it to UTF-8 text"
    return None


def main(argv: list[str] | None = None) -> None:
    """Run `mp`, mapping every failure to one stderr line and a documented exit code."""
    verbose = "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv)
    # Everything `mp` writes (database, WAL, spill and staging files, exports) is
    # as sensitive as the credentials: private unless the umask is stricter already.
    os.umask(os.umask(0o077) | 0o077)
    problem = _not_utf8(list(sys.argv[1:] if argv is None else argv), os.environ)
    if problem is not None:
        print(f"Error: {problem}", file=sys.stderr)
        sys.exit(EXIT_INVALID_ARGS)
    code = 0
    try:
        # From here a Ctrl-C is a KeyboardInterrupt, handled below (until now, while
        # importing, the handler of the `mp` script exited 130 at once).
        if signal.getsignal(signal.SIGINT) is mixpanel_data._interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        result = app(args=argv, standalone_mode=False, prog_name="mp")
        # Typer returns the exit code of typer.Exit (130 for Ctrl-C) in this mode.
        code = result if isinstance(result, int) else 0
        if code == EXIT_INTERRUPTED:
            print("Interrupted.", file=sys.stderr)
    except MixpanelDataError as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"Error: {exc.cli_message}", file=sys.stderr)
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("Interrupted.", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and getattr(exc, "ctx", None) is not None:
            # `mp` or `mp auth` alone: help is what was asked for (stdout, exit 0, as gh does).
            # (matched by name: Typer raises its vendored click's class, not click's.)
            try:
                sys.stdout.write(exc.ctx.get_help() + "\n")  # type: ignore[attr-defined]
            except BrokenPipeError:
                _silence_stdout()
            code = 0
        else:
            # Usage errors: click's exit 2 would collide with ours (2 = authentication).
            show = getattr(exc, "show", None)
            if callable(show):
                show(file=sys.stderr)
            else:
                print(f"Error: {exc.format_message()}", file=sys.stderr)
            code = EXIT_INVALID_ARGS if exc.exit_code == 2 else exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except OSError as exc:
        # A file the OS refused (full disk, permissions): one line naming it.
        if verbose:
            traceback.print_exc(file=sys.stderr)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"Error: {exc.strerror or exc}{where}", file=sys.stderr)
        code = 1
    except MemoryError:
        print(_OUT_OF_MEMORY, file=sys.stderr)
        code = 1
    except Exception as exc:
        if type(exc).__name__ == "OutOfMemoryException":  # duckdb's, matched by name
            if verbose:
                traceback.print_exc(file=sys.stderr)
            print(_OUT_OF_MEMORY, file=sys.stderr)
            sys.exit(1)
        # A bug: still one line (the traceback with -v), never a wall of text.
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(
            f"Error: unexpected {type(exc).__name__}: {exc}; run with -v for details and report it",
            file=sys.stderr,
        )
        code = 1
    finally:
        if argv is None:  # the command is over: a late Ctrl-C must not cut the exit short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        workspace = sys.modules.get("mixpanel_data.workspace")
        if workspace is not None:  # loaded only by commands that used one
            workspace.Workspace.set_wal_recovery(False)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    if code == EXIT_INTERRUPTED and argv is None and threading.active_count() > 1:
        # A worker thread still inside DuckDB would abort the interpreter's exit
        # ("terminate called ..."): the work is rolled back already, so leave now.
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
