"""Property tests: date windows partition a range; the JSONL splitter survives any chunking."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixpanel_data._internal.http.jsonl import is_terminated_early, iter_lines
from mixpanel_data._internal.services.fetch.windows import (
    auto_window_days,
    parse_date,
    split_windows,
    validate_range,
)
from mixpanel_data.exceptions import ValidationError


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1)),
    length=st.integers(min_value=0, max_value=800),
    size=st.integers(min_value=1, max_value=40),
)
def test_windows_partition_the_range_exactly(start: date, length: int, size: int) -> None:
    end = start + timedelta(days=length)
    windows = split_windows(start, end, days=size)
    assert windows[0].start == start
    assert windows[-1].end == end
    for left, right in itertools.pairwise(windows):
        assert right.start == left.end + timedelta(days=1)
    assert all(1 <= w.days <= size for w in windows)
    assert sum(w.days for w in windows) == length + 1


@given(st.integers(min_value=1, max_value=5000))
def test_auto_windows_stay_within_half_the_hourly_budget(days: int) -> None:
    assert (
        len(
            split_windows(
                date(2020, 1, 1),
                date(2020, 1, 1) + timedelta(days=days - 1),
                days=auto_window_days(days),
            )
        )
        <= 30
    )


line = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))


@given(
    lines=st.lists(line, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    trailing=st.booleans(),
)
def test_splitter_reassembles_any_chunking(
    lines: list[bytes], cuts: list[int], trailing: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing else b"")
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert b"".join(chunks) == data
    assert list(iter_lines(chunks)) == [x for x in lines if x.strip()]


def test_terminated_early_marker() -> None:
    assert is_terminated_early(b'{"event":"A","prope terminated early')
    assert not is_terminated_early(b'{"event":"terminated early"}')


@pytest.mark.parametrize("bad", ["2024-02-30", "2024-13-01", "yesterday", "2024-1-5", ""])
def test_dates_must_be_real_iso_dates(bad: str) -> None:
    with pytest.raises(ValidationError, match="invalid --from date"):
        parse_date(bad, option="--from date")


def test_range_checks() -> None:
    today = date(2024, 6, 1)
    assert validate_range("2024-05-01", "2024-06-01", today=today) == (
        date(2024, 5, 1),
        date(2024, 6, 1),
    )
    with pytest.raises(ValidationError, match="after --to"):
        validate_range("2024-05-02", "2024-05-01", today=today)
    with pytest.raises(ValidationError, match="after today"):
        validate_range("2024-05-01", "2024-06-02", today=today)
