"""A documented test seam: make the process die at a named phase of a fetch.

``MP_TEST_CRASH_AT=<phase>[:<n>[:<signal>]]`` sends ``<signal>`` (``KILL`` by
default, or ``INT``) to this process the ``n``-th time (default 1st) the phase is
reached. Phases:

- ``commit``: inside a window's transaction, rows written, before COMMIT.
- ``lake``: Parquet files staged in the lake root (``mp export``, ``--to-parquet``),
  before they are renamed into their partitions.
- ``checkpoint``: as a write connection closes (DuckDB checkpoints then); the
  signal is sent from a helper thread a moment later, so it lands mid-checkpoint.

Unset (always, outside tests) it does nothing but read one environment variable.
The crash tests in ``tests/reliability/`` use it to kill ``mp fetch`` at moments
that polling cannot hit reliably.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["ENV", "crash_point"]

ENV = "MP_TEST_CRASH_AT"
_seen: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(phase: str) -> None:
    """Die here if ``MP_TEST_CRASH_AT`` names this phase (and this occurrence)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    parts = spec.split(":")
    if parts[0] != phase:
        return
    nth = int(parts[1]) if len(parts) > 1 and parts[1] else 1
    sig = signal.SIGINT if len(parts) > 2 and parts[2].upper() == "INT" else signal.SIGKILL
    with _lock:
        _seen[phase] = _seen.get(phase, 0) + 1
        if _seen[phase] != nth:
            return
    if phase == "checkpoint":
        timer = threading.Timer(0.002, os.kill, (os.getpid(), sig))
        timer.daemon = True
        timer.start()
        return
    os.kill(os.getpid(), sig)
    if sig == signal.SIGINT:
        return  # KeyboardInterrupt is raised in the main thread at its next instruction
