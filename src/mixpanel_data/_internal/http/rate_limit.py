"""Client-side rate budgets, shared by every worker thread of a process.

Mixpanel counts requests per project (contract §3.3): the Query API allows 60
per hour and 5 at once; the Export API 60 per hour, 3 per second and 100 at
once. A ``RateBudget`` makes callers wait for a slot instead of tripping 429s,
and never sleeps when a slot is free.

Separate ``mp`` processes do not share budgets: each one spends its own. Two
fetches of one project at once can therefore draw 429s from Mixpanel; those
are retried after ``Retry-After`` (or a backoff), and one 429 holds back every
worker of the process (``penalize``), so the processes settle without losing
data. A shared on-disk budget would add a file lock to every request to serve
a rare case.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mixpanel_data.exceptions import ValidationError

__all__ = [
    "NOTICE_AFTER",
    "BudgetSpec",
    "RateBudget",
    "budget_for",
    "parse_budget_spec",
    "reset_budgets",
]


@dataclass(frozen=True)
class BudgetSpec:
    """Limits for one API family; ``None`` means unlimited."""

    per_second: int | None = None
    per_hour: int | None = None
    concurrent: int | None = None
    hour_seconds: float = 3600.0

    def describe(self) -> str:
        """Render the spec in the same form `parse_budget_spec` reads."""
        parts = []
        if self.per_second:
            parts.append(f"{self.per_second}/s")
        if self.per_hour:
            parts.append(f"{self.per_hour}/h")
        if self.concurrent:
            parts.append(f"{self.concurrent}c")
        return ",".join(parts) or "off"


# Contract §3.3.
DEFAULT_BUDGETS: dict[str, BudgetSpec] = {
    "export": BudgetSpec(per_second=3, per_hour=60, concurrent=100),
    "query": BudgetSpec(per_hour=60, concurrent=5),
    "app": BudgetSpec(concurrent=5),
}

_PART = re.compile(r"^(\d+)(/s|/h|c)\Z", re.ASCII)


def parse_budget_spec(text: str) -> BudgetSpec:
    """Parse ``"3/s,60/h,100c"`` (any subset) or ``"off"`` into a BudgetSpec."""
    text = text.strip().lower()
    if text in ("off", "none", ""):
        return BudgetSpec()
    values: dict[str, int] = {}
    for part in text.split(","):
        m = _PART.match(part.strip())
        if not m:
            raise ValidationError(
                f"invalid rate budget '{part.strip()}'; use forms like 3/s, 60/h, 5c or off"
            )
        key = {"/s": "per_second", "/h": "per_hour", "c": "concurrent"}[m.group(2)]
        values[key] = int(m.group(1))
    return BudgetSpec(**values)


# Waits at least this long (seconds) are announced (`RateBudget.slot`'s on_wait).
NOTICE_AFTER = 5.0


class RateBudget:
    """A sliding-window budget with a concurrency cap; thread-safe."""

    def __init__(
        self,
        spec: BudgetSpec,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.0,
    ) -> None:
        self.spec = spec
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._second: deque[float] = deque()
        self._hour: deque[float] = deque()
        self._running = 0
        self._not_before = 0.0
        self.waited_seconds = 0.0

    def _wait_time(self, now: float) -> float:
        spec = self.spec
        wait = max(0.0, self._not_before - now)
        while self._second and now - self._second[0] >= 1.0 + self.margin:
            self._second.popleft()
        while self._hour and now - self._hour[0] >= spec.hour_seconds + self.margin:
            self._hour.popleft()
        if spec.per_second and len(self._second) >= spec.per_second:
            wait = max(wait, 1.0 + self.margin - (now - self._second[0]))
        if spec.per_hour and len(self._hour) >= spec.per_hour:
            wait = max(wait, spec.hour_seconds + self.margin - (now - self._hour[0]))
        return wait

    def _reason(self, now: float) -> str:
        """Which limit a wait at `now` is for (for the message that announces it)."""
        if self._not_before > now:
            return "a rate-limit answer (429) from Mixpanel"
        if self.spec.per_hour and len(self._hour) >= self.spec.per_hour:
            return f"the hourly request budget ({self.spec.per_hour} requests an hour, all used)"
        return "the per-second request budget"

    @contextmanager
    def slot(self, on_wait: Callable[[float, str], None] | None = None) -> Iterator[None]:
        """Hold one request slot for the duration of a request.

        A wait of NOTICE_AFTER seconds or more is announced once through
        ``on_wait(seconds, reason)``, so a long pause never looks like a hang.
        """
        announced = False
        with self._cond:
            while True:
                if self.spec.concurrent and self._running >= self.spec.concurrent:
                    self._cond.wait(timeout=1.0)
                    continue
                now = self._clock()
                wait = self._wait_time(now)
                if wait <= 0:
                    break
                if on_wait is not None and not announced and wait >= NOTICE_AFTER:
                    announced = True
                    on_wait(wait, self._reason(now))
                self.waited_seconds += wait
                self._cond.release()
                try:
                    self._sleep(min(wait, 5.0))
                finally:
                    self._cond.acquire()
            now = self._clock()
            self._second.append(now)
            self._hour.append(now)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify()

    def penalize(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429)."""
        with self._cond:
            self._not_before = max(self._not_before, self._clock() + seconds)


# Mixpanel counts a request when it arrives, we when we send it: a request that
# opens a connection arrives a little later than one on a warm connection, so a
# window counted from our side alone can let a 4th request in within the server's
# second. This margin (per window, not per request) absorbs that skew.
SEND_MARGIN_SECONDS = 0.05

_registry: dict[tuple[str, str, str, BudgetSpec], RateBudget] = {}
_registry_lock = threading.Lock()


def budget_for(origin: str, project_id: str, family: str, spec: BudgetSpec) -> RateBudget:
    """Return the process-wide budget for one origin, project and API family."""
    key = (origin, project_id, family, spec)
    with _registry_lock:
        budget = _registry.get(key)
        if budget is None:
            budget = _registry[key] = RateBudget(spec, margin=SEND_MARGIN_SECONDS)
        return budget


def reset_budgets() -> None:
    """Forget every budget (for tests; a real process keeps them for its lifetime)."""
    with _registry_lock:
        _registry.clear()
