"""The `mp` console script: a shell's TAB and an MCP client's ``initialize`` are answered
before anything heavy is imported."""

from __future__ import annotations

import os
import sys

# global options that take a value (the rest of `mp`'s global options are flags)
_VALUED = frozenset({"--account", "-a", "--db", "--workspace-id"})


def _command(argv: list[str]) -> str | None:
    """The command word of ``mp [global options] COMMAND ...``."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def main() -> None:
    """Run `mp`; ``_MP_COMPLETE=complete_<shell>`` (a TAB) takes the fast path, and so does
    the handshake of `mp mcp` (``mcp/fast_start.py``)."""
    if os.environ.get("_MP_COMPLETE", "").startswith("complete_"):
        from mixpanel_data.cli.fast_completion import respond

        code = respond(os.environ)
        if code is not None:
            sys.exit(code)
    args = sys.argv[1:]
    if _command(args) == "mcp" and not {"--help", "-h", "--version"} & set(args):
        from mixpanel_data.mcp.fast_start import begin

        begin()
    from mixpanel_data.cli.main import main as run

    run()
