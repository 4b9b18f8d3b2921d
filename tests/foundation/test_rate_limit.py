"""RateBudget: callers wait for a slot instead of tripping 429s, and never otherwise."""

from __future__ import annotations

import threading

import pytest

from mixpanel_data import ValidationError
from mixpanel_data._internal.http.rate_limit import BudgetSpec, RateBudget, parse_budget_spec


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_parse_budget_spec() -> None:
    assert parse_budget_spec("3/s,60/h,100c") == BudgetSpec(3, 60, 100)
    assert parse_budget_spec(" 5c ") == BudgetSpec(concurrent=5)
    assert parse_budget_spec("off") == BudgetSpec()
    assert BudgetSpec(3, 60, 100).describe() == "3/s,60/h,100c"
    with pytest.raises(ValidationError, match="invalid rate budget '3/m'"):
        parse_budget_spec("3/m")


def test_no_sleep_while_under_budget() -> None:
    clock = FakeClock()
    budget = RateBudget(BudgetSpec(per_second=3, per_hour=60), clock=clock, sleep=clock.sleep)
    for _ in range(3):
        with budget.slot():
            pass
    assert clock.slept == []


def test_per_second_budget_spaces_requests() -> None:
    clock = FakeClock()
    budget = RateBudget(BudgetSpec(per_second=3), clock=clock, sleep=clock.sleep)
    for _ in range(7):
        with budget.slot():
            pass
    # 7 requests at 3/s need two waits of one second each.
    assert sum(clock.slept) == pytest.approx(2.0)


def test_hourly_budget_waits_for_the_oldest_to_expire() -> None:
    clock = FakeClock()
    spec = BudgetSpec(per_hour=60, hour_seconds=3600)
    budget = RateBudget(spec, clock=clock, sleep=clock.sleep)
    for i in range(60):
        clock.now = 1000.0 + i
        with budget.slot():
            pass
    with budget.slot():
        pass
    # The 61st may start once the first (t=1000) is an hour old.
    assert clock.now == pytest.approx(4600.0)


def test_penalize_holds_callers_back() -> None:
    clock = FakeClock()
    budget = RateBudget(BudgetSpec(), clock=clock, sleep=clock.sleep)
    budget.penalize(12)
    with budget.slot():
        pass
    assert sum(clock.slept) == pytest.approx(12)


def test_concurrency_cap_is_never_exceeded() -> None:
    budget = RateBudget(BudgetSpec(concurrent=3))
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        nonlocal running, peak
        with budget.slot():
            with lock:
                running += 1
                peak = max(peak, running)
            release.wait(0.05)
            with lock:
                running -= 1

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


def test_a_long_wait_is_announced_once_naming_its_limit() -> None:
    """An exhausted hourly budget waited minutes saying nothing."""
    clock = FakeClock()
    budget = RateBudget(BudgetSpec(per_hour=2, hour_seconds=600.0), clock=clock, sleep=clock.sleep)
    notes: list[tuple[float, str]] = []
    for _ in range(2):
        with budget.slot(lambda s, r: notes.append((s, r))):
            pass
    assert notes == []  # no wait, no word
    with budget.slot(lambda s, r: notes.append((s, r))):
        pass
    assert notes == [(600.0, "the hourly request budget (2 requests an hour, all used)")]
    assert sum(clock.slept) == pytest.approx(600.0)


def test_a_short_wait_is_not_announced() -> None:
    clock = FakeClock()
    budget = RateBudget(BudgetSpec(per_second=1), clock=clock, sleep=clock.sleep)
    notes: list[tuple[float, str]] = []
    for _ in range(3):
        with budget.slot(lambda s, r: notes.append((s, r))):
            pass
    assert clock.slept == [1.0, 1.0]
    assert notes == []
