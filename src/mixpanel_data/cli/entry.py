"""The `mp` console script: a shell's TAB is answered before anything heavy is imported."""

from __future__ import annotations

import os
import signal
import sys

import mixpanel_data


def main() -> None:
    """Run `mp`; ``_MP_COMPLETE=complete_<shell>`` (a TAB) takes the fast path.

    Until `mp`'s main() takes over, a Ctrl-C exits 130 with the one ``Interrupted.``
    line (the package installs that for the console script; ``python -m`` gets it here).
    """
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, mixpanel_data._interrupted_while_starting)
    if os.environ.get("_MP_COMPLETE", "").startswith("complete_"):
        from mixpanel_data.cli.fast_completion import respond

        code = respond(os.environ)
        if code is not None:
            sys.exit(code)
    from mixpanel_data.cli.main import main as run

    run()
