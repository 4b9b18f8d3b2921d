"""Commands that change or remove a table, run while a fetch writes it: never silent loss.

A drop, drop-all or export during a fetch is refused naming the fetch's PID, and a
fetch whose table was dropped behind its back (raw SQL) fails instead of marking
the range complete.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data.exceptions import StorageError
from mixpanel_data.workspace import Workspace

from .conftest import creds_for
from .mp_proc import MP, clean_rows, fetch_argv, mp_env, run_mp, stop, table_rows, wait_for

__all__ = ["clean_rows"]  # the fixture, imported for pytest

DAYS = slice(0, 6)


def _windows_committed(db: Path) -> int:
    if not db.exists():
        return 0
    engine = StorageEngine(db, read_only=True, on_wait=None)
    if not engine.table_exists("_mp_windows"):
        return 0
    _c, rows = engine.execute_rows("SELECT count(*) FROM _mp_windows WHERE name = 'events'")
    return int(rows[0][0])


def test_drop_and_export_during_a_fetch_are_refused_and_the_fetch_completes(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "busy.duckdb"
    env = mp_env(emu, db)
    emu.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=30_000)
    fetch = subprocess.Popen(
        fetch_argv(days, "--workers", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _windows_committed(db) >= 1, what="the first window committed")
        for argv, action in [
            ([MP, "inspect", "drop", "events", "--yes"], "drop table 'events'"),
            ([MP, "inspect", "drop-all", "--yes"], "drop every table"),
            ([MP, "export", "events", str(tmp_path / "lake")], "export table 'events'"),
        ]:
            refused = run_mp(argv, env)
            assert fetch.poll() is None  # refused while the fetch was still running
            assert refused.returncode == 1, (argv, refused.stderr)
            assert refused.stderr.strip().splitlines() == [
                f"Error: cannot {action}: a fetch (process {fetch.pid}) is writing database "
                f"{db}; wait for it to finish (or stop it) and run the command again"
            ]
        emu.faults.clear()
        _out, err = fetch.communicate(timeout=300)
    finally:
        stop(fetch)
        emu.faults.clear()
    assert fetch.returncode == 0, err
    assert table_rows(db) == clean_rows(days)
    assert not (tmp_path / "lake" / "events").exists()
    # Afterwards the same commands work.
    assert run_mp([MP, "export", "events", str(tmp_path / "lake")], env).returncode == 0
    assert run_mp([MP, "inspect", "drop", "events", "--yes"], env).returncode == 0


def test_a_table_dropped_behind_a_fetch_fails_it_instead_of_marking_it_complete(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = emu.project.data_dates[DAYS]
    db = tmp_path / "dropped.duckdb"
    dropped = []

    emu.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=300_000)
    with Workspace(credentials=creds_for(emu), path=db) as ws:

        def progress(p: Any) -> None:
            # Raw SQL, as another tool (or `mp sql`) would: no fetch lock involved.
            if 0 < p.windows_done < p.windows_total and not dropped:
                ws.sql("DROP TABLE events")
                dropped.append(p.windows_done)

        with pytest.raises(StorageError) as info:
            ws.fetch_events(
                "events",
                from_date=days[0],
                to_date=days[-1],
                workers=1,
                progress=progress,
            )
        assert len(dropped) == 1
        assert "table 'events' was dropped or changed by another command" in str(info.value)
        meta = ws.storage.table_metadata("events")
        assert meta is None or not meta["complete"]
    emu.faults.clear()
    # The same command again fetches the whole range afresh.
    env = mp_env(emu, db)
    rerun = run_mp(fetch_argv(days), env)
    assert rerun.returncode == 0, rerun.stderr
    assert table_rows(db) == clean_rows(days)
