"""`mp fetch events --update` and an overlapping `--append` over a stored table.

Tried as a user would (the `mp` command against the emulator): after either, the
table holds exactly the rows of one clean fetch of the whole range, every column
compared. A merge that runs out of memory is one clear line naming the setting
to raise, exit 1, and the table is as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .mp_proc import clean_rows, fetch_argv, mp_env, run_mp, table_rows

__all__ = ["clean_rows"]  # the fixture, imported for pytest

MP_ARGS = slice(0, 2)  # `mp -q`


def test_update_and_overlapping_append_equal_a_clean_fetch(
    emu: Any, tmp_path: Path, clean_rows: Any
) -> None:
    days = list(emu.project.data_dates)
    db = tmp_path / "inc.duckdb"
    # The project's own timezone, not the suite's UTC: `--update` runs through today,
    # and from midnight UTC until midnight in Los Angeles UTC's today is a day past the
    # project's, which Mixpanel refuses (contract §3.4; this failed 8 hours a day).
    zone = {"MP_TIMEZONE": emu.spec.timezone}
    env = mp_env(emu, db, **zone)
    full = run_mp(fetch_argv(days), env, timeout=300)
    assert full.returncode == 0, full.stderr
    expected = clean_rows(days, **zone)
    assert table_rows(db) == expected

    update = run_mp([*fetch_argv(days)[MP_ARGS], "fetch", "events", "--update"], env, timeout=300)
    assert update.returncode == 0, update.stderr
    assert '"mode": "update"' in update.stdout
    assert table_rows(db) == expected

    tail = days[-10:]
    append = run_mp(fetch_argv(tail, "--append"), env, timeout=300)
    assert append.returncode == 0, append.stderr
    assert table_rows(db) == expected


def test_a_merge_out_of_memory_is_one_line_naming_the_setting(emu: Any, tmp_path: Path) -> None:
    days = list(emu.project.data_dates)[-8:]
    db = tmp_path / "oom.duckdb"
    env = mp_env(emu, db)
    assert run_mp(fetch_argv(days), env, timeout=300).returncode == 0
    before = table_rows(db)

    tiny = {**env, "MP_FETCH_MEMORY_LIMIT": "2MB"}
    proc = run_mp([*fetch_argv(days)[MP_ARGS], "fetch", "events", "--update"], tiny, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: DuckDB ran out of memory while committing the days ")
    assert "(writer memory limit 2MB)" in lines[0]
    assert "MP_FETCH_MEMORY_LIMIT=1GB" in lines[0]
    assert "report it" not in proc.stderr
    assert table_rows(db) == before  # the window was rolled back

    bad = run_mp(
        [*fetch_argv(days)[MP_ARGS], "fetch", "events", "--update"],
        {**env, "MP_FETCH_MEMORY_LIMIT": "lots"},
    )
    assert bad.returncode == 3
    assert bad.stderr.strip() == (
        "Error: MP_FETCH_MEMORY_LIMIT='lots' is not a memory size; use e.g. 512MB or 2GB"
    )
