"""Ctrl-C while `mp` is still importing: exit 130 with the one ``Interrupted.`` line.

SIGINT is sent at random moments from the start of the package's import (seen on
the child's stderr: ``PYTHONPROFILEIMPORTTIME`` logs every import as it ends) to
the end of the command, so it lands in the imports before main(), in main()'s own
imports and in the command itself.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

from .mp_proc import MP

RUNS = int(os.environ.get("MP_TEST_STARTUP_INTERRUPTS", "16"))


def _run(db: Path, delay: float | None) -> tuple[int, list[str], str]:
    """`mp sql` on `db`; SIGINT `delay` s after its package began importing (None: no
    signal). Return the exit code, stderr without the import-time log, and stdout."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "MP_DB_PATH": str(db)}
    proc = subprocess.Popen(
        [MP, "sql", "--scalar", "SELECT count(*) FROM t"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stdout is not None
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "mixpanel_data" in line:
                started.set()
            lines.append(line.rstrip("\n"))
        started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(timeout=120), "mp never started importing"
    if delay is not None:
        # The random moment itself (a wait on the condition came first).
        threading.Event().wait(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    code = proc.wait(timeout=120)
    reader.join(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    return code, [line for line in lines if not line.startswith("import time:")], out


def test_ctrl_c_at_any_moment_of_start_up_exits_130_with_one_line(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "t.duckdb"
    conn = duckdb.connect(str(db))
    conn.execute("CREATE TABLE t AS SELECT range AS x FROM range(7)")
    conn.close()
    code, err, out = _run(db, None)  # undisturbed: how long a whole run takes here
    assert (code, err, out.strip()) == (0, [], "7")
    seed = random.randrange(1 << 20)
    rng = random.Random(seed)
    # Moments spread over a whole run (measured just now, on this machine).
    t0 = time.monotonic()
    _run(db, None)
    spread = time.monotonic() - t0
    interrupted = 0
    for i in range(RUNS):
        delay = rng.uniform(0, spread)
        code, err, out = _run(db, delay)
        where = f"seed {seed}, run {i}, SIGINT after {delay:.3f} s"
        if code == 0:  # the command had finished its work: a normal exit
            assert (err, out.strip()) == ([], "7"), where
            continue
        assert (code, err, out) == (130, ["Interrupted."], ""), where
        interrupted += 1
    assert interrupted >= RUNS // 4, f"seed {seed}: only {interrupted} of {RUNS} interrupted"
