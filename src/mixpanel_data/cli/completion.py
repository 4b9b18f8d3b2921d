"""Shell completion: `mp --install-completion SHELL` and `mp --show-completion SHELL`.

Typer's own options guess the shell from the parent process (shellingham), which is
wrong under `sudo`, in containers and in scripts; ours take the shell by name. The
completion itself is Typer's (the ``_MP_COMPLETE`` protocol), so the scripts and
the runtime side stay in step with the installed Typer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from typer._completion_classes import completion_init  # the only way to register them
from typer.completion import install_callback, show_callback

__all__ = ["InstallCompletionOpt", "Shell", "ShowCompletionOpt", "enable"]


class Shell(StrEnum):
    """Shells `mp` can complete in."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def enable() -> None:
    """Register Typer's completion classes (zsh and fish read Typer's own variables).

    Typer does this itself only when it adds its auto-detecting options, which `mp` replaces.
    """
    completion_init()


def _install(ctx: typer.Context, param: Any, value: Shell | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        install_callback(ctx, param, value.value)  # writes the file, prints where, exits 0


def _show(ctx: typer.Context, param: Any, value: Shell | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        show_callback(ctx, param, value.value)  # prints the script, exits 0


InstallCompletionOpt = Annotated[
    Shell | None,
    typer.Option(
        "--install-completion",
        metavar="SHELL",
        callback=_install,
        expose_value=False,
        is_eager=True,
        case_sensitive=False,
        help="Install tab completion for bash, zsh or fish, then exit.",
    ),
]
ShowCompletionOpt = Annotated[
    Shell | None,
    typer.Option(
        "--show-completion",
        metavar="SHELL",
        callback=_show,
        expose_value=False,
        is_eager=True,
        case_sensitive=False,
        help="Print the completion script for bash, zsh or fish, then exit.",
    ),
]
