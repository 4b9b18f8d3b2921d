"""Ctrl-C held back while DuckDB works, honoured at the next safe point.

A KeyboardInterrupt raised inside a DuckDB call interrupts the statement and can
leave the transaction aborted; the ROLLBACK that follows then fails ("cannot
rollback - no transaction is active") and the user sees a crash instead of
``Interrupted.``. Inside ``deferred_interrupts()`` a SIGINT only sets a flag;
leaving the outermost block raises the KeyboardInterrupt, after the commit (or
rollback) is done and the connection is closed.

Only the main thread receives signals, so elsewhere the block is a no-op.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["as_keyboard_interrupt", "deferred_interrupts", "interrupt_pending"]

_depth = 0
_pending = False


def _hold(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True


def interrupt_pending() -> bool:
    """True when a Ctrl-C arrived inside the current block (it will be raised on leaving)."""
    return _pending


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT for the block (nestable); raise KeyboardInterrupt after it if one came."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = None
    if _depth == 0:
        current = signal.getsignal(signal.SIGINT)
        if current is not signal.default_int_handler:
            yield  # SIGINT ignored or handled by the embedding program: leave it alone
            return
        previous = signal.signal(signal.SIGINT, _hold)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            signal.signal(signal.SIGINT, previous)
            if _pending:
                _pending = False
                raise KeyboardInterrupt


@contextlib.contextmanager
def as_keyboard_interrupt() -> Iterator[None]:
    """DuckDB's forms of a Ctrl-C that landed inside a statement, as the
    KeyboardInterrupt it was (so `mp` exits 130 with ``Interrupted.``):
    ``InterruptException``, and the binding's plain RuntimeError of fixed text when it
    lands while rows are fetched (no class of its own to match)."""
    try:
        yield
    except Exception as exc:
        # duckdb is looked up, not imported here: its first import must run with Ctrl-C
        # held (storage/engine.py), and the block may be what imports it.
        duckdb = sys.modules.get("duckdb")
        interrupted = duckdb is not None and isinstance(exc, duckdb.InterruptException)
        if interrupted or (type(exc) is RuntimeError and str(exc) == "Query interrupted"):
            raise KeyboardInterrupt from None
        raise
