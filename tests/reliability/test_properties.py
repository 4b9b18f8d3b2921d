"""Hypothesis properties of the network path.

- date windows partition a range exactly (here as sets of days, for explicit
  and automatic window sizes; tests/storage/test_windows_and_lines.py checks
  the order and sizes);
- the JSONL splitter reassembles any chunking of any byte stream, and the
  gunzip in front of it rejects every strict prefix of a gzip body;
- committing windows is idempotent and order-independent: any order, with
  repeats, gives the table a clean in-order fetch gives.

The expression parser's never-crash property lives in
tests/emulator/test_expressions.py (not repeated here).
"""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpanel_data._internal.http.client import iter_body
from mixpanel_data._internal.http.jsonl import iter_lines
from mixpanel_data._internal.services.fetch.ingest import (
    StagedFile,
    commit_events,
    download_window,
    scan_duplicates,
)
from mixpanel_data._internal.services.fetch.service import _overlaps
from mixpanel_data._internal.services.fetch.windows import auto_window_days, split_windows
from mixpanel_data._internal.storage import engine as storage_mod
from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data.exceptions import NetworkError

from .conftest import Harness, table_counter

# -- windows ---------------------------------------------------------------------------


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31)),
    length=st.integers(min_value=0, max_value=2000),
    size=st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
)
def test_windows_cover_every_day_once(start: date, length: int, size: int | None) -> None:
    end = start + timedelta(days=length)
    days = size or auto_window_days(length + 1)
    windows = split_windows(start, end, days=days)
    covered = [w.start + timedelta(days=i) for w in windows for i in range(w.days)]
    assert len(covered) == len(set(covered))  # no day twice
    assert set(covered) == {start + timedelta(days=i) for i in range(length + 1)}  # no gap
    if size is None:
        assert len(windows) <= 30  # half the export hour's budget (contract §3.3)


# -- splitting and gunzip -----------------------------------------------------------------


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_splitter_reassembles_any_chunking_of_any_bytes(data: bytes, cuts: list[int]) -> None:
    chunks = _chunks(data, cuts)
    assert b"".join(chunks) == data
    assert list(iter_lines(chunks)) == [x for x in data.split(b"\n") if x.strip()]


class _Chunked(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


def _gzip_response(chunks: list[bytes]) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"Content-Encoding": "gzip"},
        stream=_Chunked(chunks),
        request=httpx.Request("GET", "http://127.0.0.1/api/2.0/export"),
    )


jsonl = st.lists(
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=3),
    max_size=30,
).map(lambda rows: b"".join(httpx.Response(200, json=r).content + b"\n" for r in rows))


@given(body=jsonl, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_gunzip_then_split_reassembles_any_chunking(body: bytes, cuts: list[int]) -> None:
    packed = gzip.compress(body)
    lines = list(iter_lines(iter_body(_gzip_response(_chunks(packed, cuts)), 7)))
    assert lines == [x for x in body.split(b"\n") if x.strip()]


@given(body=jsonl, data=st.data())
def test_every_strict_prefix_of_a_gzip_body_is_rejected(body: bytes, data: Any) -> None:
    packed = gzip.compress(body)
    cut = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    with pytest.raises(NetworkError, match="gzip body"):
        list(iter_body(_gzip_response([packed[:cut]])))


# -- commit order and repeats -----------------------------------------------------------


@pytest.fixture(scope="module")
def staged_days(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> list[StagedFile]:
    """Four days of the shared emulator's export, downloaded and scanned once."""
    emulator.faults.clear()
    folder = tmp_path_factory.mktemp("staged")
    harness = Harness(emu=emulator, db=folder / "unused.duckdb")
    api = harness.fetcher().api
    out = []
    days = emulator.project.data_dates
    try:
        for window in split_windows(days[6], days[9], days=1):
            dest = folder / f"{window.start}.jsonl"
            staged = download_window(api, window, {}, dest, gzip=False)
            out.append(scan_duplicates(staged, legacy_tz=None))
    finally:
        harness.close()
    return out


def _commit_in_order(db: Path, order: list[StagedFile]) -> None:
    engine = StorageEngine(db)
    for staged in order:
        with engine.writer() as conn:
            conn.execute("BEGIN TRANSACTION")
            conn.execute(
                storage_mod.create_table_sql("events", "events").replace(
                    "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1
                )
            )
            commit_events(
                conn,
                table="events",
                staged=[staged],
                dedup=True,
                merge=_overlaps(conn, "events", staged.window),
                legacy_tz=None,
            )
            conn.execute("COMMIT")


@pytest.fixture(scope="module")
def in_order(staged_days: list[StagedFile], tmp_path_factory: pytest.TempPathFactory) -> Counter:
    db = tmp_path_factory.mktemp("ordered") / "in-order.duckdb"
    _commit_in_order(db, staged_days)
    return table_counter(db)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_commits_in_any_order_with_repeats_give_the_same_table(
    staged_days: list[StagedFile], in_order: Counter, data: Any
) -> None:
    order = data.draw(st.permutations(staged_days))
    repeats = data.draw(st.lists(st.sampled_from(staged_days), max_size=2))
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "any-order.duckdb"
        _commit_in_order(db, [*order, *repeats])
        assert table_counter(db) == in_order
    assert len(staged_days) == 4
    assert sum(in_order.values()) > 0


def test_the_download_counts_each_bodys_newlines(staged_days: list[StagedFile]) -> None:
    """The typed columns' estimate of a batch's rows reads the count the download took
    (reading every staged file again to count cost the writer ~0.9 s per 1M events)."""
    for staged in staged_days:
        assert staged.newlines == staged.path.read_bytes().count(b"\n") > 0
