"""`mp fetch` odd corners a user hit: output options checked first, closed pipes, lock files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

MP = str(Path(sys.executable).with_name("mp"))


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("kind", "extra", "needle"),
    [
        ("events", ["-f", "table", "--jq", ".rows_inserted"], "--jq works only with --format"),
        ("events", ["--jq", ".["], "invalid --jq expression"),
        ("profiles", ["-f", "csv", "--jq", ".table"], "--jq works only with --format"),
    ],
)
def test_output_options_are_checked_before_anything_is_fetched(
    cli_env: Path, emulator: Any, kind: str, extra: list[str], needle: str
) -> None:
    """Refused after the fetch, the table was stored and a re-run said it exists."""
    emulator.clear_requests()
    day = str(emulator.project.data_dates[0])
    dates = ["--from", day, "--to", day] if kind == "events" else []
    proc = subprocess.run(
        [MP, "-q", "fetch", kind, *dates, *extra], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert needle in _one_error_line(proc.stderr)
    assert not cli_env.exists()  # nothing stored
    assert emulator.requests() == []  # nothing asked of the API


def test_stdout_into_a_closed_pipe_exits_0_quietly(cli_env: Path, emulator: Any) -> None:
    """`mp fetch events --stdout | head -1` exited 1 (click's EPIPE handling)."""
    days = emulator.project.data_dates
    proc = subprocess.Popen(
        [MP, "fetch", "events", "--from", str(days[0]), "--to", str(days[-1]), "--stdout"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=120)
    assert first.startswith(b'{"event_name":')
    assert (proc.returncode, err) == (0, "")
    assert not cli_env.exists()


def test_a_failed_fetch_on_a_bad_db_path_leaves_no_lock_file(
    cli_env: Path, emulator: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = folder / "notes.txt"
    bad.write_text("not a database\n")
    day = str(emulator.project.data_dates[0])
    proc = subprocess.run(
        [MP, "-q", "--db", str(bad), "fetch", "events", "--from", day, "--to", day],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "DuckDB database" in _one_error_line(proc.stderr)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert bad.read_text() == "not a database\n"


def _some_windows_committed(db: Path, total: int) -> bool:
    from mixpanel_data._internal.storage.engine import StorageEngine
    from mixpanel_data.exceptions import DatabaseLockedError

    if not db.exists():
        return False
    engine = StorageEngine(db, read_only=True, lock_timeout=0.5, on_wait=None)
    try:
        meta = engine.table_metadata("events")
    except DatabaseLockedError:  # mid-commit: look again
        return False
    return bool(meta and 2 <= meta["windows_done"] < total)


def test_quiet_resume_prints_nothing(cli_env: Path, emulator: Any, tmp_path: Path) -> None:
    """`-q` still printed `resuming: N of M windows already committed`."""
    import os
    import signal

    from tests.reliability.mp_proc import wait_for

    days = [str(d) for d in emulator.project.data_dates[:6]]
    db = tmp_path / "resumed.duckdb"
    argv = [MP, "-q", "--db", str(db), "fetch", "events", "--from", days[0], "--to", days[-1]]
    emulator.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=250_000)
    proc = subprocess.Popen([*argv, "--workers", "1"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _some_windows_committed(db, len(days)), what="some windows committed")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        emulator.faults.clear()
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr == ""
    assert '"windows_resumed":' in rerun.stdout


def test_progress_bar_says_what_it_waits_for_at_the_start(
    cli_env: Path, emulator: Any, tmp_path: Path
) -> None:
    """On a terminal the bar sat at 0 windows for seconds with no word of why."""
    import os
    import pty
    import select

    day = str(emulator.project.data_dates[0])
    db = tmp_path / "tty.duckdb"
    emulator.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=200_000)
    parent, child = pty.openpty()
    try:
        proc = subprocess.Popen(
            [MP, "--db", str(db), "fetch", "events", "--from", day, "--to", day],
            stdout=subprocess.DEVNULL,
            stderr=child,
            env={**os.environ, "COLUMNS": "200", "TERM": "xterm"},
        )
        os.close(child)
        seen = b""
        while True:
            ready, _, _ = select.select([parent], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(parent, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=300)
    finally:
        emulator.faults.clear()
        os.close(parent)
    assert proc.returncode == 0
    assert b"waiting for the first export window" in seen
