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


def test_a_scan_waits_while_the_writer_commits(day_file: Path, tmp_path: Path) -> None:
    """Scans and commits never overlap, so their memory never adds up (flat peak RSS)."""
    import threading

    from mixpanel_data._internal.services.fetch.staging import WriterSession
    from mixpanel_data._internal.storage.engine import StorageEngine

    engine = StorageEngine(tmp_path / "w.duckdb")
    session = WriterSession(engine)
    done: list[tuple[bool, list[tuple[object, ...]]]] = []
    scanner = threading.Thread(target=lambda: done.append(_scan(day_file)))
    try:
        with session.connection() as conn:
            conn.execute("SELECT 1")
            scanner.start()
            scanner.join(timeout=0.5)  # a scan of this day alone takes milliseconds
            assert scanner.is_alive()
            assert not done
        scanner.join(timeout=60)
        assert not scanner.is_alive()
        assert len(done) == 1
        assert done[0][1], "the scan ran once the commit ended, and found the losers"
    finally:
        session.close()
        engine.close()
