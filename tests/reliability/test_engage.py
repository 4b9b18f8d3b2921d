"""Engage paging under faults: expired sessions restart and dedupe; short sequences are reported."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator
from mixpanel_data.exceptions import APIError, QueryError

from .conftest import Harness


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Enough users for three engage pages (page_size 1000, contract §5)."""
    spec = ProjectSpec(seed=5, users=2400, days=1)
    with Emulator(spec=spec, cache_dir=tmp_path_factory.mktemp("paged")) as emu:
        yield emu


@pytest.fixture
def pem(paged: Any) -> Iterator[Any]:
    paged.faults.clear()
    paged.clear_requests()
    yield paged
    paged.faults.clear()


def stored(db: Path) -> dict[str, Any]:
    _cols, rows = StorageEngine(db, read_only=True).execute_rows(
        'SELECT distinct_id, properties FROM "profiles"'
    )
    assert len(rows) == len({r[0] for r in rows})  # deduplicated by distinct_id
    return {d: json.loads(p) for d, p in rows}


def expected(emu: Any) -> dict[str, Any]:
    return {p["$distinct_id"]: p["$properties"] for p in emu.project.profiles()}


def _pages(emu: Any) -> list[tuple[str, int]]:
    return [(r.params.get("page", "0"), r.status) for r in emu.requests() if r.endpoint == "engage"]


def test_expired_session_restarts_the_query_and_dedupes(pem: Any, tmp_path: Path) -> None:
    harness = Harness(emu=pem, db=tmp_path / "p.duckdb")
    pem.faults.add("session_expired", endpoint="engage", count=1)
    try:
        result = harness.fetcher().fetch_profiles("profiles")
    finally:
        harness.close()
    want = expected(pem)
    assert len(want) > 2000
    assert stored(harness.db) == want
    assert result.rows_inserted == len(want)
    # Page 1 found its session gone (400): the query restarted at page 0, read once more.
    assert _pages(pem) == [("0", 200), ("1", 400), ("0", 200), ("1", 200), ("2", 200)]
    assert any("restarting the profile query" in n for n in harness.notices)
    assert result.warnings == ()


def test_sessions_that_keep_expiring_fail_and_store_nothing(pem: Any, tmp_path: Path) -> None:
    harness = Harness(emu=pem, db=tmp_path / "p.duckdb")
    pem.faults.add("session_expired", endpoint="engage", count=3)
    try:
        with pytest.raises(APIError) as info:
            harness.fetcher().fetch_profiles("profiles")
    finally:
        harness.close()
    # Not the user's arguments (exit 3): a server-side failure, exit 1, that says so.
    assert not isinstance(info.value, QueryError)
    assert info.value.exit_code == 1
    assert "engage session expired 3 times" in info.value.message
    assert "nothing was stored; run the same command again" in info.value.message
    assert [s for _p, s in _pages(pem)].count(400) == 3
    assert not harness.db.exists() or not StorageEngine(harness.db, read_only=True).table_exists(
        "profiles"
    )


def _short_last_page(app: Callable[..., Iterable[bytes]], drop: int) -> Callable[..., Any]:
    """Wrap the emulator: the last engage page loses `drop` profiles, `total` unchanged.

    The emulator always pages consistently; this is the fault Mixpanel has been
    seen to produce (a sequence that ends before ``total``), injected at the wire.
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen["status"], seen["headers"] = status, headers
            return lambda _data: None

        body = b"".join(app(environ, capture))
        headers = [(k, v) for k, v in seen["headers"] if k.lower() != "content-length"]
        if environ["PATH_INFO"].endswith("/engage") and seen["status"].startswith("200"):
            reply = json.loads(body)
            if len(reply["results"]) < reply["page_size"]:
                reply["results"] = reply["results"][:-drop]
                body = json.dumps(reply).encode()
        start_response(seen["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return wrapped


def test_pages_ending_short_of_total_are_reported(pem: Any, tmp_path: Path) -> None:
    harness = Harness(emu=pem, db=tmp_path / "p.duckdb")
    transport = httpx.WSGITransport(app=_short_last_page(pem.app, drop=7))
    try:
        result = harness.fetcher(transport=transport).fetch_profiles("profiles")
    finally:
        harness.close()
    want = expected(pem)
    got = stored(harness.db)
    assert len(got) == len(want) - 7
    assert all(want[k] == v for k, v in got.items())
    (warning,) = result.warnings
    assert f"{len(want) - 7:,} distinct profiles of the {len(want):,} it announced" in warning
    assert result.to_dict()["warnings"] == [warning]
    assert harness.notices == [f"warning: {warning}"]


def _staged_lines(db: Path) -> int:
    return sum(
        f.read_bytes().count(b"\n")
        for d in db.parent.glob(".mp-staging-*")
        for f in d.glob("*.jsonl")
    )


def test_profile_pages_go_to_disk_as_they_arrive(
    pem: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat: when page N is asked for, pages 0..N-1 are already on disk.

    (Holding every page until the last one arrived made a fetch's memory grow by
    about 1.9 KB per profile.) Chunk files of one page each exercise the chunked
    upsert, whose result must equal a one-chunk fetch.
    """
    from mixpanel_data._internal.services.fetch import profiles

    monkeypatch.setattr(profiles, "PROFILE_CHUNK_BYTES", 1)
    db = tmp_path / "p.duckdb"
    on_disk: dict[int, int] = {}

    def watching(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"].endswith("/engage"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            import io
            from urllib.parse import parse_qs

            page = int(parse_qs(body.decode()).get("page", ["0"])[0])
            on_disk[page] = _staged_lines(db)
            environ["wsgi.input"] = io.BytesIO(body)
        return pem.app(environ, start_response)  # type: ignore[no-any-return]

    harness = Harness(emu=pem, db=db)
    try:
        result = harness.fetcher(transport=httpx.WSGITransport(app=watching)).fetch_profiles()
    finally:
        harness.close()
    want = expected(pem)
    assert on_disk == {0: 0, 1: 1000, 2: 2000}
    assert stored(db) == want
    assert result.rows_inserted == len(want) == result.table_rows
    assert (result.duplicates_dropped, result.malformed_lines) == (0, 0)


def _repeat_first_profile(app: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """Wrap the emulator: the last engage page repeats page 0's first profile, changed."""
    first: dict[str, Any] = {}

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen["status"], seen["headers"] = status, headers
            return lambda _data: None

        body = b"".join(app(environ, capture))
        headers = [(k, v) for k, v in seen["headers"] if k.lower() != "content-length"]
        if environ["PATH_INFO"].endswith("/engage") and seen["status"].startswith("200"):
            reply = json.loads(body)
            if reply["page"] == 0:
                first.update(reply["results"][0])
            elif len(reply["results"]) < reply["page_size"]:
                again = {**first, "$properties": {**first["$properties"], "plan": "again"}}
                reply["results"].append(again)
                body = json.dumps(reply).encode()
        start_response(seen["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return wrapped


@pytest.mark.parametrize("chunk_bytes", [1, 64 << 20])
def test_a_profile_repeated_in_a_later_chunk_counts_once(
    pem: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    """Chunked or not, a repeated distinct_id is one row (the later page wins), one duplicate."""
    from mixpanel_data._internal.services.fetch import profiles

    monkeypatch.setattr(profiles, "PROFILE_CHUNK_BYTES", chunk_bytes)
    harness = Harness(emu=pem, db=tmp_path / "p.duckdb")
    transport = httpx.WSGITransport(app=_repeat_first_profile(pem.app))
    try:
        result = harness.fetcher(transport=transport).fetch_profiles("profiles")
    finally:
        harness.close()
    want = expected(pem)
    got = stored(harness.db)
    assert set(got) == set(want)
    assert result.rows_inserted == len(want)
    assert result.duplicates_dropped == 1
    if chunk_bytes == 1:  # chunks are upserted in page order: the later copy wins
        (changed,) = [k for k, v in got.items() if v != want[k]]
        assert got[changed]["plan"] == "again"
