"""Resources: a damaged WAL, two writers, a full disk. Each ends equal to a clean run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .mp_proc import (
    MP,
    clean_rows,
    db_files,
    fetch_argv,
    mp_env,
    run_mp,
    staging_left,
    stop,
    table_rows,
    wait_for,
)

__all__ = ["clean_rows"]  # the fixture, imported for pytest

DAYS = slice(0, 6)

# Commits one row with a WAL that stays (no checkpoint), then dies before closing.
_LEAVE_WAL = """
import os, signal, sys, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("SET checkpoint_threshold = '4GB'")
conn.execute("CREATE TABLE scratch AS SELECT range AS a FROM range(1000)")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_damaged_wal_is_named_and_recovered_on_request(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "wal.duckdb"
    env = mp_env(emu, db)
    killed = run_mp(fetch_argv(days, "--workers", "1"), {**env, "MP_TEST_CRASH_AT": "commit:4"})
    assert killed.returncode == -9
    subprocess.run([sys.executable, "-c", _LEAVE_WAL, str(db)], check=False, timeout=60)
    wal = Path(str(db) + ".wal")
    assert wal.stat().st_size > 100
    with open(wal, "r+b") as fh:  # garbage where DuckDB's next record length is
        fh.seek(10)
        fh.write(b"\xff" * 64)
    before = db_files(db)
    for argv in ([MP, "sql", "SELECT 1"], fetch_argv(days), fetch_argv(days)):
        proc = run_mp(argv, env)
        assert proc.returncode == 1  # the same plain answer every time: no crash loop
        line = _one_error_line(proc.stderr)
        assert str(wal) in line
        assert "mp --recover" in line
        assert db_files(db) == before  # nothing touched until the user asks
    recovered = run_mp([MP, "--recover", *fetch_argv(days)[1:]], env)
    assert recovered.returncode == 0, recovered.stderr
    aside = list(tmp_path.glob("wal.duckdb.wal.corrupt-*"))
    assert len(aside) == 1
    assert "moved the damaged write-ahead log aside" in recovered.stderr
    assert table_rows(db) == clean_rows(days)


def test_second_writer_is_refused_naming_the_pid_and_readers_keep_working(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "two.duckdb"
    env = mp_env(emu, db)
    emu.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=150_000)
    first = subprocess.Popen(
        fetch_argv(days, "--workers", "2"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        holder = Path(str(db) + ".fetch")
        wait_for(lambda: holder.exists() and holder.read_text() == str(first.pid), what="lock")
        second = run_mp(fetch_argv(days, table="other"), env)
        assert second.returncode == 1
        line = _one_error_line(second.stderr)
        assert f"locked by process {first.pid}" in line
        wait_for(db.exists, what="the database")
        # Readers are answered at once, the lock never refuses them: before the first
        # commit the table is not there yet (exit 4, saying a fetch is writing it; exit 3
        # when the commit lands between the query and the check of what is missing).
        read = [MP, "sql", "--scalar", "SELECT count(*) >= 0 FROM _mp_tables"]
        early: list[subprocess.CompletedProcess[str]] = []

        def committed() -> bool:
            reader = run_mp(read, env)
            if reader.returncode != 0:
                early.append(reader)
            return reader.returncode == 0 and reader.stdout.strip() == "true"

        wait_for(committed, what="a reader that sees the first commit")
        assert first.poll() is None  # the reader ran while the writer was still fetching
        for reader in early:  # the table was not there yet; never refused by the lock
            line = _one_error_line(reader.stderr)
            assert reader.returncode in (3, 4), reader.stderr  # 3: committed mid-error
            assert "_mp_tables" in line
            assert "locked" not in line
    finally:
        stop(first)
        emu.faults.clear()
    rerun = run_mp(fetch_argv(days), env)
    assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)
    missing = run_mp([MP, "sql", "SELECT count(*) FROM other"], env)
    assert missing.returncode == 4  # the refused writer stored nothing (table not found)
    assert "other" in _one_error_line(missing.stderr)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MB tmpfs, unmounted even if the test fails; skipped only if mounting is refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# Free space left: the disk fills while creating the database, while staging a
# download, or while DuckDB commits (its failed ROLLBACK must not hide the cause).
@pytest.mark.parametrize("left", [300_000, 1_200_000, 2_000_000])
def test_disk_full_rolls_back_names_the_path_and_a_rerun_completes(
    emu: Any, small_disk: Path, clean_rows: Any, left: int
) -> None:
    days = emu.project.data_dates[DAYS]
    db = small_disk / "full.duckdb"
    env = mp_env(emu, db)
    ballast = small_disk / "ballast"
    free = os.statvfs(small_disk)
    with open(ballast, "wb") as fh:  # less than the fetch needs
        fh.write(b"\0" * (free.f_bavail * free.f_frsize - left))
    proc = run_mp(fetch_argv(days, "--workers", "1"), env)
    assert proc.returncode == 1, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "no space left" in line.lower()
    assert str(small_disk) in line
    assert "Traceback" not in proc.stderr
    assert staging_left(db) == []
    if db.exists():  # what was committed before the disk filled is intact and consistent
        check = run_mp([MP, "sql", "--scalar", "SELECT count(*) FROM duckdb_tables()"], env)
        assert check.returncode == 0, check.stderr
    ballast.unlink()
    rerun = run_mp(fetch_argv(days), env)
    assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)


def _lake_days(lake: Path) -> set[str]:
    return {p.parent.name.removeprefix("date=") for p in (lake / "events").glob("date=*/*.parquet")}


def _committed_days(db: Path) -> set[str]:
    if not db.exists():
        return set()
    import duckdb

    conn = duckdb.connect(str(db), read_only=True)
    try:
        if not conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_mp_windows'"
        ).fetchone()[0]:
            return set()
        rows = conn.execute(
            "SELECT DISTINCT CAST(from_date + INTERVAL (d) DAY AS DATE) FROM _mp_windows, "
            "range(0, 400) t(d) WHERE from_date + INTERVAL (d) DAY <= to_date"
        ).fetchall()
    finally:
        conn.close()
    return {str(r[0]) for r in rows}


# The lake on its own (full) disk, the database elsewhere: free space for a few days.
@pytest.mark.parametrize("left", [60_000, 110_000])
def test_lake_disk_full_keeps_lake_days_to_committed_windows_and_names_the_lake(
    emu: Any, tmp_path: Path, small_disk: Path, clean_rows: Any, left: int
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "db" / "lake.duckdb"
    db.parent.mkdir()
    lake = small_disk / "lake"
    env = mp_env(emu, db)
    ballast = small_disk / "ballast"
    free = os.statvfs(small_disk)
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * (free.f_bavail * free.f_frsize - left))
    argv = fetch_argv(days, "--workers", "1", "--to-parquet", str(lake))
    proc = run_mp(argv, env)
    assert proc.returncode == 1, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "no space left" in line.lower()
    assert str(lake) in line
    assert str(db) not in line
    # Every day in the lake belongs to a committed window (and every committed one is there).
    assert _lake_days(lake) == _committed_days(db)
    assert _committed_days(db) != {str(d) for d in days}
    assert not list(lake.glob(".mp-staging-*"))
    ballast.unlink()
    rerun = run_mp(argv, env)
    assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)
    assert _lake_days(lake) == {str(d) for d in days}
