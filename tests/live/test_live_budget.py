"""The Query API budget (5 concurrent) and 429 handling, seen from the emulator's side."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import RateLimitError, Workspace
from mixpanel_data._internal.http.client import MixpanelAPIClient, RetryPolicy
from mixpanel_data._internal.services.live_query import LiveQueryService


def _dates(emu: Any) -> dict[str, Any]:
    end = emu.project.today - timedelta(days=1)
    return {"from_date": end - timedelta(days=2), "to_date": end}


def _segmentation_calls(emu: Any, since: float) -> list[Any]:
    return [r for r in emu.requests() if r.endpoint == "segmentation" and r.started_at >= since]


def test_a_burst_of_ten_never_has_more_than_five_in_flight(emulator: Any) -> None:
    # Each call is held 0.3 s at the emulator, so unpaced calls would all overlap.
    emulator.faults.add("hang", endpoint="segmentation", count=10, seconds=0.3)
    since = time.time()
    try:
        with Workspace(credentials=emulator_credentials(emulator)) as ws:
            with ThreadPoolExecutor(max_workers=10) as pool:
                results = list(
                    pool.map(lambda _: ws.segmentation("Login", **_dates(emulator)), range(10))
                )
            assert ws.api.retries == 0
    finally:
        emulator.faults.clear()
    assert len({r.total for r in results}) == 1
    calls = _segmentation_calls(emulator, since)
    assert len(calls) == 10
    assert {c.status for c in calls} == {200}
    # In flight at each start: calls that started earlier and had not finished. A 20 ms
    # tolerance absorbs the server closing a body just after the client moved on.
    spans = [(c.started_at, c.started_at + c.duration_ms / 1000 - 0.02) for c in calls]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert 3 <= overlap <= 5


def test_429_with_retry_after_is_honoured(emulator: Any) -> None:
    emulator.faults.add("429", endpoint="segmentation", count=1, retry_after=1)
    since = time.time()
    try:
        with Workspace(credentials=emulator_credentials(emulator)) as ws:
            r = ws.segmentation("Login", **_dates(emulator))
            assert ws.api.retries == 1
    finally:
        emulator.faults.clear()
    first, second = _segmentation_calls(emulator, since)
    assert (first.status, second.status) == (429, 200)
    assert second.started_at - first.started_at >= 0.95
    assert r.total > 0


def test_429_without_retry_after_backs_off_then_raises(emulator: Any) -> None:
    emulator.faults.add("429", endpoint="segmentation", count=5)
    since = time.time()
    policy = RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1.0)
    try:
        with (
            MixpanelAPIClient(emulator_credentials(emulator), retry=policy) as api,
            pytest.raises(RateLimitError) as exc,
        ):
            LiveQueryService(api).segmentation("Login", **_dates(emulator))
    finally:
        emulator.faults.clear()
    calls = _segmentation_calls(emulator, since)
    assert [c.status for c in calls] == [429, 429, 429]
    gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.1  # uniform(0.1, 0.2): exponential backoff with jitter
    assert gaps[1] >= 0.2  # uniform(0.2, 0.4)
    assert exc.value.retry_after is None
    assert exc.value.exit_code == 5
    assert "rate limit" in exc.value.message.lower()


def test_exhausted_retry_after_is_reported(emulator: Any) -> None:
    emulator.faults.add("429", endpoint="segmentation", count=5, retry_after=1)
    policy = RetryPolicy(max_attempts=1)
    try:
        with (
            MixpanelAPIClient(emulator_credentials(emulator), retry=policy) as api,
            pytest.raises(RateLimitError) as exc,
        ):
            LiveQueryService(api).segmentation("Login", **_dates(emulator))
    finally:
        emulator.faults.clear()
    assert exc.value.retry_after == 1.0
    assert "retry after 1s" in exc.value.message
