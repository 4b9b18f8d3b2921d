"""Rate budgets: shared by a process's workers, never a 429, never sleeping beyond need.

Against an emulator that enforces Mixpanel's limits (contract §3.3), with the
hour scaled down, the client's request start times show it waited exactly as
long as the budget requires (plus the small send margin) and no longer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data._internal.http.rate_limit import SEND_MARGIN_SECONDS, BudgetSpec
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator

from .conftest import Harness, table_counter

# Thread start-up, a connection and a small commit on a busy 2-core machine (seen: 0.36 s
# at load 20). Over a second, as every wall-clock bound here; still well under the paced
# gaps (a second per export request, a two-second scaled hour) the tests tell apart.
SLACK = 1.1


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An emulator enforcing the real budgets, with a 2-second "hour"."""
    spec = ProjectSpec(seed=11, users=30, days=10)
    cache = tmp_path_factory.mktemp("limited")
    with Emulator(spec=spec, cache_dir=cache, rate_limit=True, hour_seconds=2.0) as emu:
        yield emu


def test_export_per_second_budget_no_429_no_oversleep(limited: Any, tmp_path: Path) -> None:
    days = limited.project.data_dates[:7]
    harness = Harness(emu=limited, db=tmp_path / "b.duckdb")
    limited.clear_requests()
    budgets = {"export": BudgetSpec(per_second=3, per_hour=60, concurrent=100)}
    try:
        result = harness.fetcher(budgets=budgets).fetch_events(
            "events", from_date=days[0], to_date=days[-1], workers=4, window_days=1
        )
    finally:
        harness.close()
    calls = sorted((r for r in limited.requests() if r.endpoint == "export"), key=_start)
    assert [r.status for r in calls] == [200] * 7
    assert result.retries == 0
    assert harness.slept == []
    starts = [_start(r) for r in calls]
    # 3 per second: call i+3 waits for call i to be a second (plus margin) old, no longer.
    for a, b in zip(starts, starts[3:], strict=False):
        assert 1.0 <= b - a <= 1.0 + SEND_MARGIN_SECONDS + SLACK
    assert starts[-1] - starts[0] <= 2 * (1.0 + SEND_MARGIN_SECONDS) + SLACK
    # Workers do not wait for each other beyond the budget: the first three go at once.
    assert starts[2] - starts[0] <= SLACK
    assert sum(table_counter(harness.db).values()) == result.rows_inserted > 0


def test_query_hour_budget_waits_for_the_scaled_hour_only(limited: Any, tmp_path: Path) -> None:
    harness = Harness(emu=limited, db=tmp_path / "q.duckdb")
    spec = BudgetSpec(per_hour=60, concurrent=5, hour_seconds=2.0)
    api = harness.fetcher(budgets={"query": spec}).api
    limited.clear_requests()
    try:
        names = [api.request("GET", "query", "events/names", params={"type": "general"})]
        names += [
            api.request("GET", "query", "events/names", params={"type": "general"})
            for _ in range(64)
        ]
    finally:
        harness.close()
    calls = sorted((r for r in limited.requests() if r.endpoint == "events/names"), key=_start)
    assert [r.status for r in calls] == [200] * 65
    assert all(n == names[0] for n in names)
    assert api.retries == 0
    starts = [_start(r) for r in calls]
    # The 61st call waits for the first to leave the 2-second "hour", and no longer.
    assert 2.0 <= starts[60] - starts[0] <= 2.0 + SEND_MARGIN_SECONDS + SLACK
    assert max(b - a for a, b in itertools.pairwise(starts[:60])) <= SLACK


def _start(request: Any) -> float:
    return float(request.started_at)


def test_clients_of_one_process_share_one_budget_per_project_and_family(
    limited: Any, tmp_path: Path
) -> None:
    harness = Harness(emu=limited, db=tmp_path / "s.duckdb")
    try:
        first, second = harness.fetcher().api, harness.fetcher().api
        assert first is not second
        assert first.budget("export") is second.budget("export")
        assert first.budget("query") is second.budget("query")
        assert first.budget("export") is not first.budget("query")
    finally:
        harness.close()


def test_a_long_budget_wait_says_what_for_and_until_when(
    limited: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engage retries used up the hourly budget and the fetch then waited minutes silently."""
    import re

    from mixpanel_data._internal.http import rate_limit

    # The scaled "hour" is 4 s: announce any wait (how long it is depends on the load).
    monkeypatch.setattr(rate_limit, "NOTICE_AFTER", 0.01)
    harness = Harness(emu=limited, db=tmp_path / "w.duckdb")
    api = harness.fetcher(budgets={"query": BudgetSpec(per_hour=2, hour_seconds=4.0)}).api
    notes: list[str] = []
    api.on_wait = notes.append
    try:
        for _ in range(3):
            api.request("GET", "query", "events/names", params={"type": "general"})
    finally:
        harness.close()
    (note,) = notes
    assert re.fullmatch(
        r"waiting [0-4] s for the hourly request budget \(2 requests an hour, all used\) "
        r"of the query API; continuing at \d\d:\d\d:\d\d \S+",
        note,
    ), note
