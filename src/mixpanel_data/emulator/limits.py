"""Mixpanel's documented rate limits, enforced per project when ``rate_limit=True``.

Budgets (contract §3.3): export 60 queries/hour, 3/second, 100 concurrent; the
Query API (engage pages included) 60/hour and 5 concurrent. ``hour_seconds``
shrinks the hour so tests can exhaust and refill a budget quickly; the per-second
window is never scaled. A refused call gets the real 429 body and does not count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mixpanel_data.emulator.responses import rate_limit_message

__all__ = ["BUDGETS", "Budget", "RateLimiter", "Refusal"]


@dataclass(frozen=True)
class Budget:
    """One family's limits."""

    hourly: int
    concurrent: int
    per_second: int | None = None


BUDGETS: dict[str, Budget] = {
    "export": Budget(hourly=60, concurrent=100, per_second=3),
    "query": Budget(hourly=60, concurrent=5),
}


@dataclass(frozen=True)
class Refusal:
    """Why a call was refused: the 429 message and the seconds until it could pass."""

    message: str
    retry_after: float


class _State:
    def __init__(self) -> None:
        self.starts: deque[float] = deque()
        self.running = 0


class RateLimiter:
    """Count calls per (family, project) and refuse those over budget."""

    def __init__(
        self,
        *,
        hour_seconds: float = 3600.0,
        budgets: dict[str, Budget] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hour_seconds = hour_seconds
        self.budgets = dict(BUDGETS if budgets is None else budgets)
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], _State] = {}

    def acquire(self, family: str, project_id: str) -> Refusal | None:
        """Start a call: None if it may run (call ``release`` when it ends), else a Refusal."""
        budget = self.budgets.get(family)
        if budget is None:
            return None
        now = self._clock()
        with self._lock:
            state = self._states.setdefault((family, project_id), _State())
            while state.starts and state.starts[0] <= now - self.hour_seconds:
                state.starts.popleft()
            waits: list[float] = []
            if len(state.starts) >= budget.hourly:
                waits.append(state.starts[-budget.hourly] + self.hour_seconds - now)
            if budget.per_second is not None:
                recent = [t for t in state.starts if t > now - 1.0]
                if len(recent) >= budget.per_second:
                    waits.append(recent[-budget.per_second] + 1.0 - now)
            if state.running >= budget.concurrent:
                waits.append(1.0)  # unknowable: when a running query ends
            if waits:
                message = rate_limit_message(
                    project_id,
                    running=state.running,
                    concurrent=budget.concurrent,
                    last_hour=len(state.starts) + 1,
                    hourly=budget.hourly,
                )
                return Refusal(message=message, retry_after=max(1.0, math.ceil(max(waits))))
            state.starts.append(now)
            state.running += 1
            return None

    def release(self, family: str, project_id: str) -> None:
        """End a call started with a successful ``acquire``."""
        with self._lock:
            state = self._states.get((family, project_id))
            if state is not None and state.running > 0:
                state.running -= 1

    def reset(self) -> None:
        """Forget every count (the control API's ``DELETE /_emulator/limits``)."""
        with self._lock:
            self._states.clear()
