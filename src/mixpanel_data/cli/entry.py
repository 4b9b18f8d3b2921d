"""The `mp` console script: a shell's TAB is answered before anything heavy is imported."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run `mp`; ``_MP_COMPLETE=complete_<shell>`` (a TAB) takes the fast path."""
    if os.environ.get("_MP_COMPLETE", "").startswith("complete_"):
        from mixpanel_data.cli.fast_completion import respond

        code = respond(os.environ)
        if code is not None:
            sys.exit(code)
    from mixpanel_data.cli.main import main as run

    run()
