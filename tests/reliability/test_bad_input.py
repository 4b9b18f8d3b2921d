"""Bad input: one clear `Error:` line on stderr, the documented exit code, no traceback,
and nothing stored changes (database and WAL checksums compared before and after)."""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data.cli.main import main
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator

from .mp_proc import MP, clean_rows, db_files, fetch_argv, mp_env, run_mp, table_rows

__all__ = ["clean_rows"]  # the fixture, imported for pytest


@pytest.fixture(scope="module")
def fetched(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A database holding one fetched day, and the environment that made it (shared:
    every test asserts it unchanged)."""
    db = tmp_path_factory.mktemp("bad-input") / "data.duckdb"
    env = mp_env(emulator, db)
    day = emulator.project.data_dates[0]
    proc = run_mp(fetch_argv([day]), env)
    assert proc.returncode == 0, proc.stderr
    return db, env


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _future() -> str:
    return str(date.today() + timedelta(days=3))


# (argv after `mp`, environment overrides, exit code, text the line must contain)
CASES: list[tuple[list[str], dict[str, str], int, str]] = [
    (["fetch", "events", "t", "--from", "2024-02-30", "--to", "2024-03-01"], {}, 3, "2024-02-30"),
    (["fetch", "events", "t", "--from", "2024-13-01", "--to", "2024-12-01"], {}, 3, "--from"),
    (["fetch", "events", "t", "--from", "2024-03-02", "--to", "2024-03-01"], {}, 3, "after --to"),
    (["fetch", "events", "t", "--from", "2024-03-01", "--to", "{future}"], {}, 3, "after today"),
    (["fetch", "events", "t", "--from", "1999-12-31", "--to", "2000-01-02"], {}, 3, "before 2000"),
    (["fetch", "events", "a;DROP TABLE events", "--from", "{d}", "--to", "{d}"], {}, 3, "table"),
    (["fetch", "events", "_mp_tables", "--from", "{d}", "--to", "{d}"], {}, 3, "table name"),
    (["fetch", "events", "x" * 200, "--from", "{d}", "--to", "{d}"], {}, 3, "table name"),
    (["fetch", "events", "t", "--from", "{d}", "--to", "{d}"], {"MP_REGION": "mars"}, 3, "mars"),
    (
        ["fetch", "events", "t", "--from", "{d}", "--to", "{d}"],
        {"MP_PROJECT_ID": "12ab"},
        3,
        "project id",
    ),
    (
        ["fetch", "events", "t", "--from", "{d}", "--to", "{d}"],
        {"MP_SECRET": "wrong:secret@%"},
        2,
        "",
    ),
    (["fetch", "events", "--from", "{d}", "--to", "{d}"], {}, 1, "already exists"),
    (["sql", "SELECT * FROM nope"], {}, 4, "nope"),
    (["sql", "CREATE TABLE x(a int)"], {}, 3, "read-only"),
    (["sql", "DROP TABLE events"], {}, 3, "read-only"),
    (["sql", "INSERT INTO events SELECT * FROM events"], {}, 3, "read-only"),
    (["sql", "SELEC 1"], {}, 3, "syntax"),
    (["--db", "{tmp}", "sql", "SELECT 1"], {}, 1, "is a directory"),
    (["--db", "{notdb}", "sql", "SELECT 1"], {}, 1, "not a DuckDB database"),
    (["--db", "{missing}", "sql", "SELECT 1"], {}, 4, "does not exist"),
]


@pytest.mark.parametrize(("argv", "env_extra", "code", "needle"), CASES)
def test_bad_input_one_line_right_code_nothing_changes(
    emu: Any,
    fetched: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env_extra: dict[str, str],
    code: int,
    needle: str,
) -> None:
    db, env = fetched
    notdb = tmp_path / "notes.txt"
    notdb.write_text("this is not a database, it is a long enough text file\n")
    values = {
        "d": str(emu.project.data_dates[1]),
        "future": _future(),
        "tmp": str(tmp_path),
        "notdb": str(notdb),
        "missing": str(tmp_path / "missing.duckdb"),
    }
    before = db_files(db), notdb.read_bytes()
    for key, value in {**env, **env_extra}.items():
        if key.startswith("MP_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:  # in-process: the same main() as `mp`
        main([a.format(**values) for a in argv])
    out, err = capsys.readouterr()
    assert exit_info.value.code == code, err
    assert out == ""
    assert needle in _one_line(err)
    assert (db_files(db), notdb.read_bytes()) == before
    assert not (tmp_path / "missing.duckdb").exists()


def test_where_with_quotes_and_backslashes_reaches_the_server_intact(
    emu: Any, fetched: tuple[Path, dict[str, str]]
) -> None:
    _db, env = fetched
    where = 'properties["$browser"] == "Chr\\"ome\\\\" or properties["x\'y"] == "a\\\\b"'
    day = str(emu.project.data_dates[2])
    emu.clear_requests()
    proc = run_mp(fetch_argv([day], "--where", where, table="quoted"), env)
    assert proc.returncode == 0, proc.stderr
    sent = [r.params.get("where") for r in emu.requests() if r.endpoint == "export"]
    assert sent == [where]


def test_five_year_range_is_allowed_within_half_the_hourly_export_budget(
    emu: Any, fetched: tuple[Path, dict[str, str]], clean_rows: Any
) -> None:
    # Decision: allowed. Windows widen so the whole fetch needs at most 30 export
    # requests (half of the 60/hour budget, contract §3.3); no warning is needed.
    _db, env = fetched
    days = emu.project.data_dates
    start = emu.project.today - timedelta(days=5 * 365)
    emu.clear_requests()
    proc = run_mp(fetch_argv([start, emu.project.today], table="five"), env)
    assert proc.returncode == 0, proc.stderr
    exports = [r for r in emu.requests() if r.endpoint == "export"]
    assert 1 <= len(exports) <= 30
    whole = run_mp(fetch_argv([days[0], days[-1]], table="whole"), env)
    assert whole.returncode == 0, whole.stderr
    assert table_rows(_db, "five") == table_rows(_db, "whole")


def test_a_range_past_the_projects_today_says_the_timezone_is_ahead(tmp_path: Path) -> None:
    """Mixpanel refuses a to_date after the project's today (contract §3.4), which a
    client configured with a timezone ahead of the project's asks for every day: one
    line naming the configured zone and the fix, exit 3 (a request Mixpanel rejected)."""
    spec = ProjectSpec(seed=11, users=20, days=3, today=date(2026, 11, 1))
    with Emulator(spec=spec, threads=8) as server:
        env = mp_env(server, tmp_path / "t.duckdb")  # MP_TIMEZONE=UTC; today is later
        proc = run_mp(fetch_argv([date(2026, 11, 1), date(2026, 11, 2)]), env)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "to_date cannot be later than today" in lines[0]
    assert "configured timezone (UTC)" in lines[0]
    assert "set the account's timezone to the project's" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("secret", ["p:a@s%s/w+d", "tail-newline"])
def test_secrets_with_special_characters_work_end_to_end(tmp_path: Path, secret: str) -> None:
    spec = ProjectSpec(seed=11, users=20, days=3)
    real = secret if secret != "tail-newline" else "s3cr3t%40:x"
    with Emulator(spec=spec, secret=real, threads=8) as server:
        db = tmp_path / "s.duckdb"
        given = real + "\n" if secret == "tail-newline" else real  # as `echo $S > file` gives
        env = mp_env(server, db, MP_SECRET=given)
        day = server.project.data_dates[0]
        proc = run_mp(fetch_argv([day], "--keep-duplicates"), env)
        assert proc.returncode == 0, proc.stderr
        lines = server.project.export_day_path(day).read_bytes().splitlines()
        assert len(table_rows(db)) == len([x for x in lines if x.strip()])
        assert all(r.auth_ok for r in server.requests())


def test_output_to_a_closed_pipe_is_quiet(fetched: tuple[Path, dict[str, str]]) -> None:
    db, env = fetched
    before = db_files(db)
    # `mp sql ... | head -1`: the reader goes away after one line.
    proc = subprocess.Popen(
        [MP, "sql", "-f", "csv", "SELECT range AS n FROM range(50000)"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert first == b"n\n"
    assert proc.returncode == 0
    assert err == ""
    assert db_files(db) == before


def test_symlinked_and_unreadable_config_are_refused(
    fetched: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    db, env = fetched
    env = {k: v for k, v in env.items() if k not in ("MP_USERNAME", "MP_SECRET")}
    real = tmp_path / "real.toml"
    real.write_text('[accounts.a]\nusername = "u"\nsecret = "s"\nproject_id = "1"\n')
    real.chmod(0o600)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    before = db_files(db)
    proc = run_mp([MP, "auth", "list"], {**env, "MP_CONFIG_PATH": str(link)})
    assert proc.returncode == 1
    assert "symbolic link" in _one_line(proc.stderr)
    garbage = tmp_path / "bad.toml"
    garbage.write_bytes(b"\xff\xfe[accounts\n")
    garbage.chmod(0o600)
    proc = run_mp([MP, "auth", "list"], {**env, "MP_CONFIG_PATH": str(garbage)})
    assert proc.returncode == 1
    assert "not valid TOML" in _one_line(proc.stderr)
    unreadable = tmp_path / "locked.toml"
    unreadable.write_text(real.read_text())
    unreadable.chmod(0o000)
    if os.geteuid() == 0:
        pytest.skip(
            "root reads files whatever their mode; see test_unreadable_config_gives_one_line"
        )
    proc = run_mp([MP, "auth", "list"], {**env, "MP_CONFIG_PATH": str(unreadable)})
    assert proc.returncode == 1, proc.stderr
    assert "cannot read config file" in _one_line(proc.stderr)
    assert db_files(db) == before


def test_unreadable_config_gives_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The suite runs as root here, which reads any file: the refusal is the one thing
    # simulated (read_bytes of that one path raises EACCES as it would for a user).
    config = tmp_path / "locked.toml"
    config.write_text('[accounts.a]\nusername = "u"\nsecret = "s"\nproject_id = "1"\n')
    config.chmod(0o600)
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == config:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setenv("MP_CONFIG_PATH", str(config))
    with pytest.raises(SystemExit) as exit_info:
        main(["auth", "list"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert out == ""
    line = _one_line(err)
    assert f"cannot read config file {config}: Permission denied" in line


def test_an_unexpected_error_is_one_line_and_its_traceback_only_with_v(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bug is simulated (nothing real raises RuntimeError on purpose).
    from mixpanel_data.cli.commands import sql as sql_command

    def broken(query: str | None, file: str | None) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(sql_command, "read_query", broken)
    for argv, traceback in ((["sql", "SELECT 1"], False), (["-v", "sql", "SELECT 1"], True)):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        out, err = capsys.readouterr()
        assert exit_info.value.code == 1
        assert out == ""
        assert err.strip().splitlines()[-1] == (
            "Error: unexpected RuntimeError: boom; run with -v for details and report it"
        )
        assert ("Traceback" in err) is traceback
