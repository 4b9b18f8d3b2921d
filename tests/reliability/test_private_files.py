"""Fetched data is as sensitive as the credentials: the database, its WAL, staging
files and the lake are private (0600 files, 0700 folders); a lake folder that is a
symbolic link is refused, so a write never deletes Parquet files outside the lake."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data.workspace import Workspace

from .mp_proc import MP, fetch_argv, mp_env, run_mp


def _modes(root: Path) -> dict[str, int]:
    found = {root.name: stat.S_IMODE(root.stat().st_mode)}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _private(modes: dict[str, int]) -> dict[str, str]:
    """The entries readable or writable by group or others (none expected)."""
    return {k: oct(v) for k, v in modes.items() if v & 0o077}


def test_cli_fetch_creates_private_data_dir_database_wal_and_lake(
    emulator: Any, tmp_path: Path
) -> None:
    home = tmp_path / "user"
    db = home / ".mp" / "data" / "p.duckdb"
    env = {**mp_env(emulator, db), "HOME": str(home)}
    day = emulator.project.data_dates[0]
    lake = tmp_path / "lake"
    proc = run_mp(fetch_argv([day], "--to-parquet", str(lake)), env)
    assert proc.returncode == 0, proc.stderr
    # Killed while the write connection checkpoints: its WAL stays on disk.
    crash = {**env, "MP_TEST_CRASH_AT": "checkpoint"}
    proc = run_mp(fetch_argv([emulator.project.data_dates[1]], table="second"), crash)
    assert proc.returncode == -9, proc.stderr
    modes = _modes(home)
    assert modes[".mp"] == 0o700
    assert modes[".mp/data"] == 0o700
    assert modes[".mp/data/p.duckdb"] == 0o600
    assert ".mp/data/p.duckdb.wal" in modes
    assert _private(modes) == {}
    lake_modes = _modes(lake)
    assert lake_modes["events/date=" + str(day) + "/data_0.parquet"] == 0o600
    assert _private(lake_modes) == {}


def test_library_creates_private_database_and_shared_lake_on_request(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import emulator_credentials

    db = tmp_path / "new" / "dir" / "lib.duckdb"
    day = emulator.project.data_dates[0]
    with Workspace(credentials=emulator_credentials(emulator), path=db) as ws:
        ws.fetch_events("events", from_date=day, to_date=day)
        ws.export_parquet("events", tmp_path / "private")
        monkeypatch.setenv("MP_LAKE_MODE", "shared")
        ws.export_parquet("events", tmp_path / "shared")
    assert _modes(tmp_path / "new")["new"] == 0o700
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert _private(_modes(tmp_path / "private")) == {}
    shared = _modes(tmp_path / "shared")
    assert shared[f"events/date={day}/data_0.parquet"] == 0o644
    assert shared[f"events/date={day}"] == 0o755


@pytest.mark.parametrize("link", ["table", "partition"])
def test_symlinked_lake_folder_is_refused_and_its_target_untouched(
    emulator: Any, tmp_path: Path, link: str
) -> None:
    db = tmp_path / "data.duckdb"
    env = mp_env(emulator, db)
    day = emulator.project.data_dates[0]
    proc = run_mp(fetch_argv([day]), env)
    assert proc.returncode == 0, proc.stderr
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "other.parquet").write_bytes(b"PAR1 not ours PAR1")
    lake = tmp_path / "lake"
    if link == "table":
        lake.mkdir()
        (lake / "events").symlink_to(elsewhere)
        argv = [MP, "-q", "export", "events", str(lake)]
    else:
        (lake / "again").mkdir(parents=True)
        (lake / "again" / f"date={day}").symlink_to(elsewhere)
        argv = fetch_argv([day], "--to-parquet", str(lake), table="again")
    proc = run_mp(argv, env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "is a symbolic link inside the lake" in lines[0]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["other.parquet"]
    assert (elsewhere / "other.parquet").read_bytes() == b"PAR1 not ours PAR1"
