"""The emulator's request log: every call, so tests can assert what a client sent.

Entries are recorded when a response starts and completed when its body closes
(bytes sent, duration); ``wait_for`` lets a test wait for that without sleeping.
Secrets never appear: the Authorization header is not kept and secret-like
parameters are dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest", "RequestLog"]


@dataclass(frozen=True)
class RecordedRequest:
    """One call the emulator answered."""

    id: int
    method: str
    path: str
    endpoint: str
    family: str
    params: dict[str, str]
    auth_ok: bool
    status: int
    bytes_sent: int
    duration_ms: float
    started_at: float
    faults: tuple[str, ...] = ()
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the control API's ``GET /_emulator/requests``)."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "family": self.family,
            "params": dict(self.params),
            "auth_ok": self.auth_ok,
            "status": self.status,
            "bytes_sent": self.bytes_sent,
            "duration_ms": self.duration_ms,
            "started_at": self.started_at,
            "faults": list(self.faults),
            "complete": self.complete,
        }


@dataclass
class _Entry:
    id: int
    method: str
    path: str
    endpoint: str
    family: str
    started_at: float
    params: dict[str, str] = field(default_factory=dict)
    auth_ok: bool = False
    status: int = 0
    bytes_sent: int = 0
    duration_ms: float = 0.0
    faults: tuple[str, ...] = ()
    complete: bool = False

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            id=self.id,
            method=self.method,
            path=self.path,
            endpoint=self.endpoint,
            family=self.family,
            params=dict(self.params),
            auth_ok=self.auth_ok,
            status=self.status,
            bytes_sent=self.bytes_sent,
            duration_ms=self.duration_ms,
            started_at=self.started_at,
            faults=self.faults,
            complete=self.complete,
        )


class RequestLog:
    """A bounded, thread-safe log of the latest calls (oldest dropped first)."""

    def __init__(self, *, maxlen: int = 10_000) -> None:
        self._entries: deque[_Entry] = deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self._next_id = 1

    def start(self, *, method: str, path: str, endpoint: str, family: str) -> _Entry:
        """Open an entry for a call that is being answered."""
        with self._cond:
            entry = _Entry(
                id=self._next_id,
                method=method,
                path=path,
                endpoint=endpoint,
                family=family,
                started_at=time.time(),
            )
            self._next_id += 1
            self._entries.append(entry)
            self._cond.notify_all()
            return entry

    def finish(self, entry: _Entry, *, duration: float) -> None:
        """Close an entry once its body is fully sent (or cut)."""
        with self._cond:
            entry.duration_ms = round(duration * 1000.0, 3)
            entry.complete = True
            self._cond.notify_all()

    def snapshot(self) -> list[RecordedRequest]:
        """Every recorded call, oldest first."""
        with self._cond:
            return [entry.freeze() for entry in self._entries]

    def clear(self) -> None:
        """Forget every recorded call."""
        with self._cond:
            self._entries.clear()

    def wait_for(
        self, predicate: Callable[[list[RecordedRequest]], bool], *, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Block until ``predicate(calls)`` holds (or the timeout passes); return the calls."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                calls = [entry.freeze() for entry in self._entries]
                remaining = deadline - time.monotonic()
                if predicate(calls) or remaining <= 0:
                    return calls
                self._cond.wait(remaining)
