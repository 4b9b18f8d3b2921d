"""The dedup scan survives a day larger than its small memory pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixpanel_data._internal.services.fetch import ingest
from mixpanel_data._internal.services.fetch.ingest import StagedFile, scan_duplicates
from mixpanel_data.emulator.project import ProjectSpec, SyntheticProject


@pytest.fixture
def day_file(tmp_path: Path) -> Path:
    project = SyntheticProject(ProjectSpec(seed=11, users=400, days=2), cache_dir=tmp_path / "c")
    src = project.export_day_path(project.data_dates[-1])
    dest = tmp_path / "stage" / "day.jsonl"
    dest.parent.mkdir()
    dest.write_bytes(src.read_bytes())
    return dest


def _scan(path: Path) -> tuple[bool, list[tuple[object, ...]]]:
    import duckdb

    staged = scan_duplicates(
        StagedFile(window=None, path=path, size=path.stat().st_size, attempts=1),
        legacy_tz=None,
    )
    losers = []
    if staged.losers is not None and staged.losers.exists():
        losers = duckdb.execute(
            "SELECT * FROM read_parquet(?) ORDER BY ALL", [str(staged.losers)]
        ).fetchall()
        staged.losers.unlink()
    return staged.needs_fix, losers


def test_out_of_memory_falls_back_to_a_spilling_scan(
    day_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    expected = _scan(day_file)
    assert expected[1], "the emulator's day holds duplicates with older processing times"
    tiny = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "1MB"})
    tiny.execute("SET TimeZone = 'UTC'")
    with pytest.raises(duckdb.OutOfMemoryException):
        tiny.execute(
            "CREATE TEMP TABLE x AS " + ingest._select_duplicate_keys([day_file], legacy_tz=None)
        )
    monkeypatch.setattr(ingest, "_scan_conn", tiny)
    assert _scan(day_file) == expected
    assert not (day_file.parent / ".scan-spill").exists() or not any(
        (day_file.parent / ".scan-spill").iterdir()
    )


def test_a_scan_runs_beside_a_commit_and_a_spilling_one_waits_for_it(
    day_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ordinary scan (its own 128 MB pool) runs while the writer commits; a scan that
    outgrows that pool runs again in a large one, only once the commit ends, so no
    more than the writer's pool and the small one ever add up (bounded peak RSS)."""
    import threading

    import duckdb

    from mixpanel_data._internal.services.fetch.staging import WriterSession
    from mixpanel_data._internal.storage.engine import StorageEngine

    expected = _scan(day_file)
    engine = StorageEngine(tmp_path / "w.duckdb")
    session = WriterSession(engine)
    done: list[tuple[bool, list[tuple[object, ...]]]] = []
    try:
        with session.connection() as conn:
            conn.execute("SELECT 1")
            beside = threading.Thread(target=lambda: done.append(_scan(day_file)))
            beside.start()
            beside.join(timeout=120)
            assert not beside.is_alive(), "an ordinary scan finished during the commit"
            assert done == [expected]

            tiny = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "1MB"})
            monkeypatch.setattr(ingest, "_scan_conn", tiny)
            ran_out, spilling = threading.Event(), threading.Event()
            small, big = ingest._scan, ingest._big_scanner

            def scan(conn: object, *args: object, **kw: object) -> object:
                try:
                    return small(conn, *args, **kw)  # type: ignore[arg-type]
                except duckdb.OutOfMemoryException:
                    ran_out.set()
                    raise

            def big_scanner(*args: object, **kw: object) -> object:
                spilling.set()
                return big(*args, **kw)  # type: ignore[arg-type]

            monkeypatch.setattr(ingest, "_scan", scan)
            monkeypatch.setattr(ingest, "_big_scanner", big_scanner)
            waiting = threading.Thread(target=lambda: done.append(_scan(day_file)))
            waiting.start()
            assert ran_out.wait(timeout=120)
            assert not spilling.wait(timeout=2), "the spilling scan waits for the commit"
            assert len(done) == 1
        waiting.join(timeout=120)
        assert not waiting.is_alive()
        assert spilling.is_set()
        assert done == [expected, expected]
    finally:
        session.close()
        engine.close()
