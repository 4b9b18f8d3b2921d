"""`mp fetch` as users run it: bad inputs, --stdout, kill -9 and resume, reads during a fetch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.mp_proc import wait_for

from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data.cli.main import main
from mixpanel_data.exceptions import DatabaseLockedError
from mixpanel_data.workspace import Workspace

from .conftest import (
    creds_for,
    dedup,
    expected_counter,
    project_records,
    raw_records,
    table_counter,
)

MP = str(Path(sys.executable).with_name("mp"))


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def snapshot(db: Path) -> Any:
    engine = StorageEngine(db, read_only=True)
    tables = {t.name: t.row_count for t in engine.list_tables()}
    meta = {name: engine.table_metadata(name) for name in tables}
    return tables, meta


@pytest.fixture
def fetched_db(cli_env: Path, emulator: Any, capsys: pytest.CaptureFixture[str]) -> Path:
    day = emulator.project.data_dates[0]
    code, out, _err = run_main(
        capsys, "-q", "fetch", "events", "--from", str(day), "--to", str(day)
    )
    assert code == 0
    assert json.loads(out)["rows_inserted"] > 0
    return cli_env


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--from", "2024-02-30", "--to", "2024-03-01"], 3, "invalid --from date"),
        (["--from", "{d1}", "--to", "{d0}"], 3, "after --to"),
        (["--from", "{d0}", "--to", "2999-01-01"], 3, "after today"),
        (["x; DROP TABLE y", "--from", "{d0}", "--to", "{d0}"], 3, "invalid table name"),
        (["--from", "{d0}", "--to", "{d0}", "--limit", "200000"], 3, "--limit"),
        (["other", "--from", "{d0}", "--to", "{d0}", "--where", 'properties["a" =='], 3, ""),
        (["--from", "{d0}", "--to", "{d0}"], 1, "--append"),
        (["--from", "{d0}", "--to", "{d0}", "--append", "--replace"], 3, "not both"),
    ],
)
def test_bad_inputs_give_one_line_and_change_nothing(
    fetched_db: Path,
    emulator: Any,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    needle: str,
) -> None:
    days = emulator.project.data_dates
    before = snapshot(fetched_db)
    argv = [a.format(d0=days[0], d1=days[1]) for a in args]
    got, out, err = run_main(capsys, "fetch", "events", *argv)
    assert got == code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert needle in lines[0]
    assert snapshot(fetched_db) == before


def test_stdout_raw_emits_exactly_the_export(cli_env: Path, emulator: Any) -> None:
    days = emulator.project.data_dates[:2]
    proc = subprocess.run(
        [MP, "fetch", "events", "--from", str(days[0]), "--to", str(days[1]), "--stdout", "--raw"],
        capture_output=True,
        check=True,
    )
    expected = b"".join(emulator.project.export_day_path(d).read_bytes() for d in days)
    assert proc.stdout == expected
    assert not cli_env.exists()  # streaming stores nothing


def test_stdout_rows_have_the_table_columns(
    cli_env: Path, emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    day = emulator.project.data_dates[4]
    code, out, _err = run_main(
        capsys, "fetch", "events", "--from", str(day), "--to", str(day), "--stdout"
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    raw = raw_records(emulator, [day])
    assert len(rows) == len(raw)
    assert set(rows[0]) == {"event_name", "event_time", "distinct_id", "insert_id", "properties"}
    assert [r["properties"] for r in rows] == [r["properties"] for r in raw]


def _fetch_cmd(db: Path, days: list[Any], *extra: str) -> list[str]:
    return [
        MP,
        "-q",
        "--db",
        str(db),
        "fetch",
        "events",
        "--from",
        str(days[0]),
        "--to",
        str(days[-1]),
        *extra,
    ]


def test_kill_9_mid_fetch_then_rerun_equals_a_clean_run(
    cli_env: Path, emulator: Any, tmp_path: Path
) -> None:
    days = emulator.project.data_dates[:8]
    db = tmp_path / "killed.duckdb"
    emulator.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=250_000)
    proc = subprocess.Popen(
        _fetch_cmd(db, days, "--workers", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def some_windows_committed() -> bool:
        try:
            meta = (
                StorageEngine(db, read_only=True, lock_timeout=0.5).table_metadata("events")
                if db.exists()
                else None
            )
        except DatabaseLockedError:  # the fetch is committing: look again
            return False
        return bool(meta and 2 <= meta["windows_done"] < len(days))

    try:
        wait_for(some_windows_committed, what="some windows committed")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        emulator.faults.clear()
    partial = StorageEngine(db, read_only=True).table_metadata("events")
    assert partial is not None
    assert partial["complete"] is False
    rerun = subprocess.run(_fetch_cmd(db, days), capture_output=True, text=True, check=True)
    result = json.loads(rerun.stdout)
    assert result["windows_resumed"] >= 2
    with Workspace(credentials=creds_for(emulator), path=db) as ws:
        assert table_counter(ws) == expected_counter(
            dedup(project_records(emulator, days[0], days[-1]))
        )
        meta = ws.storage.table_metadata("events")
        assert meta is not None
        assert meta["complete"] is True


def test_mp_sql_reads_committed_windows_while_a_fetch_runs(
    cli_env: Path, emulator: Any, tmp_path: Path
) -> None:
    days = emulator.project.data_dates[:6]
    db = tmp_path / "shared.duckdb"
    emulator.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=200_000)
    proc = subprocess.Popen(
        _fetch_cmd(db, days, "--workers", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counts: list[int] = []
    try:
        while proc.poll() is None:
            read = subprocess.run(
                [MP, "--db", str(db), "sql", "--scalar", "SELECT count(*) FROM events"],
                capture_output=True,
                text=True,
            )
            if read.returncode == 0:
                counts.append(int(read.stdout.strip()))
            else:  # before the first commit there is no database or table yet
                assert "not" in read.stderr
    finally:
        emulator.faults.clear()
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    final = json.loads(stdout)["table_rows"]
    during = [c for c in counts if 0 < c < final]
    assert len(set(during)) >= 2, counts  # readers saw the table grow, window by window
    assert counts == sorted(counts)
