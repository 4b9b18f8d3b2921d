"""Ctrl-C on a terminal at random moments of a fetch: always exit 130 with one
``Interrupted.`` line, never a C++ abort or a transaction error, and the re-run
resumes to a table equal to a clean run.

The fetch runs on a real pseudo-terminal and ^C is typed into it, so the terminal
driver sends SIGINT to the process group as a user's keyboard would.
``MP_TEST_INTERRUPTS`` sets how many (default 12; 50 for the full trial).
"""

from __future__ import annotations

import fcntl
import os
import random
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

from .mp_proc import clean_rows, fetch_argv, mp_env, run_mp, stop, table_rows, wait_for

__all__ = ["clean_rows"]  # the fixture, imported for pytest

BAD = ("Traceback", "terminate called", "FATAL", "unexpected", "Error:", "Aborted")


def _take_terminal() -> None:  # runs in the child after setsid(): the pty becomes its tty
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _fetch_and_press_ctrl_c(argv: list[str], env: dict[str, str], db: Path, delay: float) -> Any:
    """Run `argv` on a pty; `delay` s after the fetch holds its lock, type ^C. Return
    (exit code, everything the terminal showed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=_take_terminal,  # makes the pty the controlling terminal
    )
    os.close(slave)
    shown = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    lock = Path(str(db) + ".fetch")
    try:
        wait_for(
            lambda: (
                proc.poll() is not None or (lock.exists() and lock.read_text() == str(proc.pid))
            ),
            what="the fetch started",
        )
        time.sleep(delay)  # the random moment itself, not a wait for a condition
        if proc.poll() is None:
            os.write(master, b"\x03")
        proc.wait(timeout=120)
    finally:
        stop(proc)
        reader.join(timeout=30)
        os.close(master)
    text = shown.decode("utf-8", "replace").replace("\r\n", "\n")
    return proc.returncode, text.replace("^C", "")  # the terminal echoes the key


def test_ctrl_c_at_random_moments_always_exits_130_and_the_rerun_resumes(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[:30]
    expected = clean_rows(days)
    # How long the whole fetch takes here: the moments are spread over it.
    timing_db = tmp_path / "timing.duckdb"
    began = time.monotonic()
    assert run_mp(fetch_argv(days, "--workers", "1"), mp_env(emu, timing_db)).returncode == 0
    span = time.monotonic() - began
    n = int(os.environ.get("MP_TEST_INTERRUPTS", "12"))
    seed = int(os.environ.get("MP_TEST_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    tally: dict[str, int] = {}
    for i in range(n):
        db = tmp_path / f"int{i}.duckdb"
        env = mp_env(emu, db)
        delay = rng.uniform(0.0, 0.7 * span)  # the fetch alone is shorter than the command
        code, shown = _fetch_and_press_ctrl_c(fetch_argv(days, "--workers", "1"), env, db, delay)
        where = f"run {i} (seed {seed}, ^C {delay:.2f} s after the lock): {shown!r}"
        assert not any(b in shown for b in BAD), where
        if code == 0:  # the fetch had finished before the key reached it
            tally["finished first"] = tally.get("finished first", 0) + 1
        else:
            assert code == 130, where
            lines = [x for x in shown.strip().split("\n") if x.strip()]
            assert lines[-1] == "Interrupted.", where
            assert shown.count("Interrupted.") == 1, where
            tally["interrupted"] = tally.get("interrupted", 0) + 1
        rerun = run_mp(fetch_argv(days), env)
        if rerun.returncode == 1:  # interrupted after its last commit: nothing left to do
            assert "already exists and is complete" in rerun.stderr, where
        else:
            assert rerun.returncode == 0, (where, rerun.stderr)
        assert table_rows(db) == expected, where
    print(f"Ctrl-C tally over {n} runs (seed {seed}, fetch {span:.1f} s): {tally}")
    assert tally.get("interrupted", 0) >= n // 3  # presses mostly landed inside the fetch
