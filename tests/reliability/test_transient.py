"""Transient failures are retried (backoff, Retry-After) until the table equals a clean run.

Each test injects one failure mode through the emulator over loopback HTTP and
ends by comparing the table with a clean run of the same days.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mixpanel_data._internal.http.client import RetryPolicy

from .conftest import Harness, clean_run, export_statuses, table_counter


def _days(emu: Any, n: int = 2) -> tuple[Any, Any]:
    days = emu.project.data_dates
    return days[4], days[4 + n - 1]


@pytest.mark.parametrize("status", ["429", "500", "502", "503", "504"])
def test_status_faults_are_retried_with_backoff(
    harness: Harness, emu: Any, tmp_path: Path, status: str
) -> None:
    start, end = _days(emu)
    clean = clean_run(emu, tmp_path, start, end)
    emu.clear_requests()
    emu.faults.add(status, endpoint="export", count=2)
    result = harness.fetcher().fetch_events("events", from_date=start, to_date=end, workers=1)
    assert table_counter(harness.db) == clean
    assert export_statuses(emu) == [int(status), int(status), 200, 200]
    assert result.retries == 2
    # Exponential backoff with jitter: attempt n waits in [cap/2, cap], cap = 0.01 * 2**(n-1).
    assert len(harness.slept) == 2
    assert 0.005 <= harness.slept[0] <= 0.01
    assert 0.01 <= harness.slept[1] <= 0.02


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_429_retry_after_is_honoured(harness: Harness, emu: Any, tmp_path: Path, form: str) -> None:
    start, end = _days(emu, 1)
    clean = clean_run(emu, tmp_path, start, end)
    emu.clear_requests()
    emu.faults.add("429", endpoint="export", count=1, retry_after=2, retry_after_form=form)
    result = harness.fetcher().fetch_events("events", from_date=start, to_date=end, workers=1)
    assert table_counter(harness.db) == clean
    assert export_statuses(emu) == [429, 200]
    assert result.retries == 1
    # The server's wait, not our backoff (an HTTP-date has one-second resolution).
    (waited,) = harness.slept
    # (formatted from the server's clock, read ms later by ours).
    assert (0.9 if form == "date" else 2.0) <= waited <= 2.0


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("reset", {"after_bytes": 0}),  # connection reset before any body
        ("reset", {"after_bytes": 7777}),  # the stream stops mid-record
        ("terminated_early", {"after_bytes": 5000}),  # a 200 ending in `terminated early`
        ("malformed_line", {"after_bytes": 10**9}),  # a 200 whose last line does not parse
    ],
)
def test_cut_and_corrupt_bodies_refetch_the_window(
    harness: Harness, emu: Any, tmp_path: Path, kind: str, options: dict[str, Any]
) -> None:
    start, end = _days(emu)
    clean = clean_run(emu, tmp_path, start, end)
    emu.clear_requests()
    emu.faults.add(kind, endpoint="export", count=1, **options)
    result = harness.fetcher().fetch_events("events", from_date=start, to_date=end, workers=1)
    assert table_counter(harness.db) == clean
    assert result.retries == 1
    assert result.malformed_lines == 0  # the bad tail was fetched again, not stored
    assert len(export_statuses(emu)) == 3
    assert [f for r in emu.requests() for f in r.faults] == [kind]


def test_truncated_gzip_stream_is_refetched(harness: Harness, emu: Any, tmp_path: Path) -> None:
    start, end = _days(emu, 1)
    clean = clean_run(emu, tmp_path, start, end)
    emu.clear_requests()
    # Cut just before the gzip trailer: every record is there, the stream is still incomplete.
    emu.faults.add("truncated_gzip", endpoint="export", count=1)
    result = harness.fetcher(gzip=True).fetch_events(
        "events", from_date=start, to_date=end, workers=1
    )
    assert table_counter(harness.db) == clean
    assert result.retries == 1
    assert [f for r in emu.requests() for f in r.faults] == ["truncated_gzip"]
    assert len(export_statuses(emu)) == 2


def test_read_timeout_is_retried(harness: Harness, emu: Any, tmp_path: Path) -> None:
    start, end = _days(emu, 1)
    clean = clean_run(emu, tmp_path, start, end)
    emu.clear_requests()
    emu.faults.add("hang", endpoint="export", count=1, seconds=1.0)
    quick = httpx.Timeout(connect=5.0, read=0.3, write=5.0, pool=5.0)
    result = harness.fetcher(timeouts={"export": quick}).fetch_events(
        "events", from_date=start, to_date=end, workers=1
    )
    assert table_counter(harness.db) == clean
    assert result.retries == 1
    assert len(export_statuses(emu)) == 2


def test_mid_file_malformed_line_is_counted_and_reported(
    harness: Harness, emu: Any, tmp_path: Path
) -> None:
    start, end = _days(emu, 1)
    clean = clean_run(emu, tmp_path, start, end)
    emu.faults.add("malformed_line", endpoint="export", count=1, after_bytes=3000)
    result = harness.fetcher().fetch_events("events", from_date=start, to_date=end, workers=1)
    assert table_counter(harness.db) == clean  # every real record, nothing else
    assert result.malformed_lines == 1
    assert result.retries == 0
    assert result.warnings == ("1 malformed export line(s) were not stored (counted, not JSON)",)
    assert harness.notices[-1].startswith("warning: 1 malformed export line(s)")


def test_retries_are_bounded_in_attempts(harness: Harness, emu: Any) -> None:
    start, end = _days(emu, 1)
    emu.faults.add("503", endpoint="export", count=50)
    policy = RetryPolicy(max_attempts=3, max_total_seconds=30, base_delay=0.01, max_delay=0.01)
    from mixpanel_data.exceptions import PartialFetchError

    with pytest.raises(PartialFetchError) as info:
        harness.fetcher(retry=policy).fetch_events(
            "events", from_date=start, to_date=end, workers=1
        )
    assert export_statuses(emu) == [503, 503, 503]
    assert info.value.failed_ranges[0]["from_date"] == start.isoformat()


def test_retries_are_bounded_in_total_time(harness: Harness, emu: Any) -> None:
    start, end = _days(emu, 1)
    # Retry-After 40 s would pass the 30 s total: give up at once instead of sleeping.
    emu.faults.add("429", endpoint="export", count=5, retry_after=40)
    policy = RetryPolicy(max_attempts=10, max_total_seconds=30, base_delay=0.01, max_delay=0.01)
    from mixpanel_data.exceptions import PartialFetchError

    with pytest.raises(PartialFetchError, match="rate limit"):
        harness.fetcher(retry=policy).fetch_events(
            "events", from_date=start, to_date=end, workers=1
        )
    assert export_statuses(emu) == [429]
    assert harness.slept == []
