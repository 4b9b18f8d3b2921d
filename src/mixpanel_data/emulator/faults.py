"""Fault injection: make the emulator fail the way Mixpanel (and the proxies in front of it) do.

Each fault is scoped to an endpoint and fires for the next ``count`` matching calls, or
with probability ``prob`` per call (a seeded RNG, so runs are repeatable). Faults come
from ``--faults``, from Python (``emu.faults.add("429", endpoint="export", count=2)``) or
from the HTTP control API on the emulator's own origin (``POST /_emulator/faults``).

Spec grammar (``--faults``)::

    SPEC     := FAULT (";" FAULT)*
    FAULT    := ENDPOINT ":" KIND (":" KEY "=" VALUE)*
    ENDPOINT := "*" | "export" | "query" | "app" | "engage" | "me" | <a query endpoint>
    KIND     := 429 | 500 | 502 | 503 | 504 | reset | terminated_early | truncated_gzip
              | slow | malformed_line | hang | session_expired
    KEY      := count | prob | retry_after | retry_after_form | after_bytes
              | bytes_per_second | seconds

    e.g.  export:429:count=2:retry_after=1;export:reset:after_bytes=100000:prob=0.1;
          engage:session_expired:count=1

``export``, ``query`` and ``app`` also name whole API families (``query`` covers engage).
Without ``count`` or ``prob`` a fault fires once; with only ``prob`` it never runs out.

Kinds:

- ``429``: the real rate-limit body ``{"request", "error": "Query rate limit exceeded for
  project_id: …"}``, with ``Retry-After`` when ``retry_after`` is set
  (``retry_after_form=seconds|date``; the header's presence is unconfirmed, contract §3.3).
- ``500``/``503``: the JSON error envelope; ``502``/``504``: an HTML page, as proxies send.
- ``reset``: the connection is cut (TCP RST) after ``after_bytes`` body bytes (default 0);
  the client gets at most that many bytes and then a transport error.
- ``terminated_early``: HTTP 200 whose body stops mid-record after ``after_bytes``
  (default 1000) and ends with the line ``terminated early`` (contract §4).
- ``truncated_gzip``: a gzip body cut after ``after_bytes`` compressed bytes (default: just
  before the gzip trailer) while the HTTP message itself ends cleanly.
- ``slow``: the body trickles at ``bytes_per_second`` (default 10000).
- ``malformed_line``: a line that is not JSON is inserted at the first line boundary at or
  after ``after_bytes`` (default: after the first line).
- ``hang``: nothing is sent for ``seconds`` (default 30), then the request proceeds.
- ``session_expired``: an engage page > 0 finds its ``session_id`` gone.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import httpx


class FaultSpecError(ValueError):
    """A fault spec the emulator cannot apply (the CLI shows it as a usage error)."""


__all__ = [
    "BODY_KINDS",
    "FAULT_KINDS",
    "STATUS_KINDS",
    "Fault",
    "FaultSpecError",
    "Faults",
    "StreamReset",
    "parse_fault_spec",
]

STATUS_KINDS: frozenset[str] = frozenset({"429", "500", "502", "503", "504"})
BODY_KINDS: frozenset[str] = frozenset({"reset", "slow"})
EXPORT_KINDS: frozenset[str] = frozenset({"terminated_early", "malformed_line"})
FAULT_KINDS: frozenset[str] = (
    STATUS_KINDS
    | BODY_KINDS
    | EXPORT_KINDS
    | frozenset({"truncated_gzip", "hang", "session_expired"})
)

_INT_KEYS = {"count", "after_bytes"}
_FLOAT_KEYS = {"prob", "retry_after", "bytes_per_second", "seconds"}
_KEYS = _INT_KEYS | _FLOAT_KEYS | {"retry_after_form"}


class StreamReset(httpx.ReadError):
    """Raised inside a response body to cut the connection.

    Over real HTTP the server turns it into a TCP reset; mounted in-process with
    ``httpx.WSGITransport`` it reaches the client as the transport error it is.
    """


@dataclass(frozen=True)
class Fault:
    """One injected failure, scoped to an endpoint (or family, or ``*``)."""

    kind: str
    endpoint: str = "*"
    count: int | None = None
    prob: float | None = None
    retry_after: float | None = None
    retry_after_form: str = "seconds"
    after_bytes: int | None = None
    bytes_per_second: float | None = None
    seconds: float | None = None
    id: int = 0
    remaining: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(
                f"unknown fault kind '{self.kind}'; use one of: {', '.join(sorted(FAULT_KINDS))}"
            )
        if not self.endpoint.strip():
            raise FaultSpecError("a fault needs an endpoint ('*' for every endpoint)")
        if self.count is not None and self.count < 1:
            raise FaultSpecError(f"fault count must be at least 1, got {self.count}")
        if self.prob is not None and not 0.0 <= self.prob <= 1.0:
            raise FaultSpecError(f"fault prob must be between 0 and 1, got {self.prob}")
        if self.retry_after_form not in ("seconds", "date"):
            raise FaultSpecError("retry_after_form must be 'seconds' or 'date'")
        for name in ("after_bytes", "bytes_per_second", "seconds", "retry_after"):
            value = getattr(self, name)
            if value is not None and (value < 0 or not math.isfinite(value)):
                raise FaultSpecError(f"fault {name} must be a finite number >= 0, got {value}")
        if self.bytes_per_second is not None and self.bytes_per_second <= 0:
            raise FaultSpecError("fault bytes_per_second must be > 0")

    def matches(self, endpoint: str, family: str) -> bool:
        """Whether this fault applies to a call of ``endpoint`` in API ``family``."""
        return self.endpoint in ("*", endpoint, family)

    def to_dict(self) -> dict[str, Any]:
        """Describe the fault as JSON-ready data (the control API lists these)."""
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "count": self.count,
            "prob": self.prob,
            "remaining": self.remaining,
            "retry_after": self.retry_after,
            "retry_after_form": self.retry_after_form,
            "after_bytes": self.after_bytes,
            "bytes_per_second": self.bytes_per_second,
            "seconds": self.seconds,
        }


def parse_fault_spec(text: str) -> list[Fault]:
    """Parse a ``--faults`` spec (grammar in the module docstring) into faults."""
    faults: list[Fault] = []
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        pieces = [p.strip() for p in part.split(":")]
        if len(pieces) < 2:
            raise FaultSpecError(
                f"bad fault '{part}'; write ENDPOINT:KIND[:key=value...], e.g. export:429:count=2"
            )
        options: dict[str, Any] = {}
        for item in pieces[2:]:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in _KEYS:
                raise FaultSpecError(
                    f"bad fault option '{item}' in '{part}'; keys are: {', '.join(sorted(_KEYS))}"
                )
            options[key] = _convert(key, value.strip(), part)
        faults.append(Fault(kind=pieces[1], endpoint=pieces[0], **options))
    return faults


def _convert(key: str, value: str, part: str) -> Any:
    if key == "retry_after_form":
        return value
    try:
        return int(value) if key in _INT_KEYS else float(value)
    except ValueError:
        msg = f"fault option {key} needs a number, got '{value}' in '{part}'"
        raise FaultSpecError(msg) from None


class Faults:
    """The active faults of one emulator; thread-safe and deterministic for a given seed."""

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._active: list[Fault] = []
        self._next_id = 1
        self._rng = random.Random(seed)

    def add(self, kind: str | Fault, *, endpoint: str = "*", **options: Any) -> Fault:
        """Activate a fault, e.g. ``faults.add("429", endpoint="export", count=2)``."""
        fault = kind if isinstance(kind, Fault) else Fault(kind=kind, endpoint=endpoint, **options)
        with self._lock:
            remaining = fault.count if fault.count is not None else (None if fault.prob else 1)
            fault = replace(fault, id=self._next_id, remaining=remaining)
            self._next_id += 1
            self._active.append(fault)
        return fault

    def add_spec(self, spec: str) -> list[Fault]:
        """Activate every fault of a ``--faults`` spec string."""
        return [self.add(fault) for fault in parse_fault_spec(spec)]

    def clear(self) -> None:
        """Remove every active fault."""
        with self._lock:
            self._active.clear()

    def active(self) -> list[Fault]:
        """The faults still active, with their remaining counts."""
        with self._lock:
            return list(self._active)

    def draw(self, endpoint: str, family: str, kinds: Collection[str]) -> list[Fault]:
        """Return (and use up) the faults that fire for one call.

        Only faults whose kind is in ``kinds`` (those that make sense for this
        request) are considered, so e.g. a gzip fault waits for a gzip response.
        """
        fired: list[Fault] = []
        with self._lock:
            keep: list[Fault] = []
            for fault in self._active:
                if fault.kind in kinds and fault.matches(endpoint, family):
                    if fault.prob is None or self._rng.random() < fault.prob:
                        fired.append(fault)
                        if fault.remaining is not None:
                            fault = replace(fault, remaining=fault.remaining - 1)
                    if fault.remaining == 0:
                        continue
                keep.append(fault)
            self._active = keep
        return fired
