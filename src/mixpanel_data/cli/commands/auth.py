"""`mp auth`: add, list, show, switch, remove and test Mixpanel accounts."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mixpanel_data.cli.context import get_context
from mixpanel_data.cli.formatters import emit, message
from mixpanel_data.cli.options import Format, FormatOpt, JqOpt
from mixpanel_data.exceptions import ValidationError

if TYPE_CHECKING:
    from types import ModuleType


def _auth_api() -> ModuleType:
    """The account API, imported on use (completion and `--help` need none of it)."""
    from mixpanel_data import auth

    return auth


app = typer.Typer(help="Manage Mixpanel accounts (~/.mp/config.toml).", no_args_is_help=True)


@app.command("list")
def list_(fmt: FormatOpt = Format.json, jq: JqOpt = None) -> None:
    """List configured accounts (secrets are never shown).

    Example: mp auth list -f table
    """
    accounts = [a.to_dict() for a in _auth_api().list_accounts()]
    emit(accounts, fmt=fmt, jq=jq)


def _read_secret(secret_stdin: bool) -> str:
    if secret_stdin:
        data = sys.stdin.read()
        # Exactly one trailing newline (from `printf 's\n'` or `echo`) is not part of the secret.
        if data.endswith("\r\n"):
            data = data[:-2]
        elif data.endswith("\n"):
            data = data[:-1]
        return data
    from_env = os.environ.get("MP_SECRET", "")
    if from_env.strip():
        return from_env.strip("\r\n")
    if not sys.stdin.isatty():
        raise ValidationError(
            "no secret given; pipe it with --secret-stdin, set MP_SECRET, or run in a terminal"
        )
    return str(typer.prompt("Secret", hide_input=True))


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name for the account, e.g. prod.")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project id.")],
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Service account username.")
    ] = None,
    region: Annotated[str, typer.Option("--region", "-r", help="us, eu or in.")] = "us",
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Custom API origin (proxy or emulator).")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Project timezone, e.g. Europe/Berlin.")
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
    workspace_id: Annotated[
        str | None,
        typer.Option("--workspace-id", help="Data view id sent on every Query API call."),
    ] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the secret from standard input.")
    ] = False,
    project_secret_stdin: Annotated[
        bool,
        typer.Option(
            "--project-secret-stdin",
            help="Read a legacy project secret (no username) from standard input.",
        ),
    ] = False,
    secret: Annotated[str | None, typer.Option("--secret", hidden=True)] = None,
    fmt: FormatOpt = Format.json,
) -> None:
    """Add an account; the secret comes from a hidden prompt, --secret-stdin or MP_SECRET.

    A project secret (legacy; service accounts are preferred) is read from standard
    input only, with --project-secret-stdin and no --username.

    Example: printf '%s\\n' "$SECRET" | mp auth add prod -u sa.x -p 123 -r eu --secret-stdin
    """
    if secret is not None:
        raise ValidationError(
            "--secret on the command line is refused (argv is visible to other users and "
            "shell history); use --secret-stdin, MP_SECRET or the prompt"
        )
    if project_secret_stdin:
        if secret_stdin or username:
            raise ValidationError(
                "--project-secret-stdin takes no --username or --secret-stdin; "
                "give either a project secret or a service account"
            )
        value, kind = _read_secret(True), "project_secret"
    else:
        if not username:
            raise ValidationError(
                "missing --username; give the service account's username, "
                "or use --project-secret-stdin for a project secret"
            )
        value, kind = _read_secret(secret_stdin), "service_account"
    info = _auth_api().add_account(
        name,
        username=username or "",
        secret=value,
        project_id=project,
        region=region,
        base_url=base_url,
        timezone=timezone,
        make_default=default,
        workspace_id=workspace_id,
        kind=kind,
    )
    message(f"Added account '{name}' to {_auth_api().config_path()}", quiet=get_context(ctx).quiet)
    emit(info.to_dict(), fmt=fmt)


@app.command()
def remove(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account to remove.")]
) -> None:
    """Remove an account.

    Example: mp auth remove staging
    """
    _auth_api().remove_account(name)
    message(f"Removed account '{name}'", quiet=get_context(ctx).quiet)


@app.command()
def switch(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account to make default.")]
) -> None:
    """Make an account the default.

    Example: mp auth switch prod
    """
    _auth_api().set_default(name)
    message(f"Default account is now '{name}'", quiet=get_context(ctx).quiet)


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Account (default: resolved one).")] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Show the resolved credentials with the secret masked.

    Example: mp auth show prod
    """
    state = get_context(ctx)
    shown = _auth_api().show_account(name or state.account, workspace_id=state.workspace_id)
    emit(shown, fmt=fmt, jq=jq)


@app.command()
def test(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Account (default: resolved one).")] = None,
    fmt: FormatOpt = Format.json,
    jq: JqOpt = None,
) -> None:
    """Check the credentials with Mixpanel and show the project's name and timezone.

    Example: mp auth test prod
    """
    state = get_context(ctx)
    tested = _auth_api().test_account(name or state.account, workspace_id=state.workspace_id)
    emit(tested, fmt=fmt, jq=jq)
