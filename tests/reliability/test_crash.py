"""kill -9 and Ctrl-C at any moment of `mp fetch`: the database opens, a re-run equals a clean run.

Moments polling can hit (downloading) are found by watching the staging folder;
moments it cannot (inside a window's transaction, mid-checkpoint) use the
documented seam ``MP_TEST_CRASH_AT`` (``mixpanel_data/_internal/crashpoints.py``).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data._internal.storage.engine import StorageEngine

from .mp_proc import (
    clean_rows,
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


def _downloading(db: Path) -> bool:
    return any(f.stat().st_size > 0 for d in staging_left(db) for f in d.glob("*.jsonl"))


def _consistent(db: Path) -> int:
    """The killed database opens; its metadata agrees with its window log. Returns windows.

    A fetch whose every window committed before the kill is complete (-1 is returned).
    """
    if not db.exists():
        return 0
    engine = StorageEngine(db, read_only=True, lock_timeout=5)
    meta = engine.table_metadata("events")
    if meta is None:
        return 0
    _cols, rows = engine.execute_rows("SELECT count(*) FROM _mp_windows WHERE name = 'events'")
    assert rows[0][0] == meta["windows_done"]
    assert meta["complete"] is (meta["windows_done"] == meta["windows_total"])
    return -1 if meta["complete"] else int(meta["windows_done"])


@pytest.mark.parametrize("moment", ["download", "commit:2", "commit:4", "checkpoint:1"])
def test_kill_9_then_rerun_equals_a_clean_run(
    emu: Any, tmp_path: Path, clean_rows: Any, moment: str
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "db" / "killed.duckdb"
    db.parent.mkdir()
    env = mp_env(emu, db)
    if moment == "download":
        emu.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=100_000)
        proc = subprocess.Popen(
            fetch_argv(days, "--workers", "2"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _downloading(db), what="a window half downloaded")
        finally:
            stop(proc)
            emu.faults.clear()
    else:
        proc = subprocess.Popen(
            fetch_argv(days, "--workers", "1"),
            env={**env, "MP_TEST_CRASH_AT": moment},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=120)
        finally:
            stop(proc)
        assert proc.returncode == -signal.SIGKILL
    done = _consistent(db)
    rerun = run_mp(fetch_argv(days), env)
    if done == -1:  # killed while checkpointing after the last commit: already complete
        assert rerun.returncode == 1
        assert "already exists" in rerun.stderr
    else:
        assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)
    assert staging_left(db) == []  # the dead process's staging folder was swept


def test_ctrl_c_inside_a_commit_finishes_that_commit_then_exits_130(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "int.duckdb"
    env = mp_env(emu, db)
    # SIGINT while the 3rd commit's rows are written, before its COMMIT: the key is
    # held until the commit is done and the database closed, then honoured.
    proc = run_mp(fetch_argv(days, "--workers", "1"), {**env, "MP_TEST_CRASH_AT": "commit:3:INT"})
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines()[-1] == "Interrupted."
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert staging_left(db) == []
    done = _consistent(db)
    assert done == -1 or done >= 3  # the interrupted commit is recorded
    # The rows stored are exactly those of the windows recorded: nothing half-written.
    engine = StorageEngine(db, read_only=True)
    _c, rows = engine.execute_rows(
        "SELECT (SELECT count(*) FROM events), coalesce(sum(rows_inserted), 0), "
        "count(*) FILTER (rows_inserted IS NULL) FROM _mp_windows"
    )
    stored, recorded, batched = rows[0]
    if batched == 0:  # windows committed alone carry their row counts
        assert stored == recorded
    rerun = run_mp(fetch_argv(days), env)
    if done == -1:  # the 3rd commit was the last
        assert rerun.returncode == 1
        assert "already exists and is complete" in rerun.stderr
    else:
        assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)


@pytest.mark.parametrize("moment", ["commit:1:INT", "checkpoint:1:INT"])
def test_ctrl_c_after_the_last_commit_says_the_table_is_complete(
    emu: Any, tmp_path: Path, clean_rows: Any, moment: str
) -> None:
    days = emu.project.data_dates[0:1]  # one window: its commit is the last
    db = tmp_path / "late.duckdb"
    env = mp_env(emu, db)
    proc = run_mp(fetch_argv(days, "--workers", "1"), {**env, "MP_TEST_CRASH_AT": moment})
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "note: the interrupt came after the last window was committed: table 'events' is "
        f"complete ({days[0]}..{days[0]})",
        "Interrupted.",
    ]
    assert _consistent(db) == -1
    rerun = run_mp(fetch_argv(days), env)
    assert rerun.returncode == 1
    assert rerun.stderr.strip() == (
        "Error: table 'events' already exists and is complete: this same fetch "
        f"({days[0]}..{days[0]}) committed every window; nothing to fetch; use --append "
        "to add to it, --replace to rebuild it, or --update to bring it up to today"
    )
    assert table_rows(db) == clean_rows(days)


def test_ctrl_c_while_downloading_exits_130_and_leaves_no_files(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "int.duckdb"
    env = mp_env(emu, db)
    emu.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=100_000)
    proc = subprocess.Popen(
        fetch_argv(days, "--workers", "2"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _downloading(db), what="a window half downloaded")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
        emu.faults.clear()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["Interrupted."]
    assert out == ""
    assert staging_left(db) == []
    _consistent(db)
    rerun = run_mp(fetch_argv(days), env)
    assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)


def test_ctrl_c_on_a_terminal_clears_the_progress_bar(emu: Any, tmp_path: Path) -> None:
    import os
    import pty
    import select

    days = emu.project.data_dates[DAYS]
    db = tmp_path / "tty.duckdb"
    env = mp_env(emu, db, TERM="xterm", COLUMNS="120")
    emu.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=100_000)
    master, slave = pty.openpty()
    argv = fetch_argv(days)
    argv.remove("-q")  # the bar shows only without --quiet, on a terminal
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""

    def read(timeout: float) -> bool:
        nonlocal seen
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            return False
        seen += chunk
        return bool(chunk)

    try:
        wait_for(lambda: read(0.05) and b"windows" in seen, what="the progress bar")
        proc.send_signal(signal.SIGINT)
        while read(10):
            pass
        proc.wait(timeout=30)
    finally:
        stop(proc)
        os.close(master)
        emu.faults.clear()
    assert proc.returncode == 130
    assert b"\x1b[?25h" in seen  # the cursor is shown again
    tail = seen.rsplit(b"\x1b[2K", 1)[1]  # after the bar's line is erased
    assert tail == b"Interrupted.\r\n"
    assert staging_left(db) == []
