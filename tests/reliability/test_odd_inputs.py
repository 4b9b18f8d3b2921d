"""Odd inputs that used to end in "unexpected … report it" or hang: each now gives one
`Error:` line naming the problem and the fix, a documented exit code, and leaves the
database (and its WAL) byte for byte as it was."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .mp_proc import MP, db_files, fetch_argv, mp_env, run_mp


@pytest.fixture(scope="module")
def fetched(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A database holding one fetched day, and the environment that made it."""
    db = tmp_path_factory.mktemp("odd-input") / "data.duckdb"
    env = mp_env(emulator, db)
    proc = run_mp(fetch_argv([emulator.project.data_dates[0]]), env)
    assert proc.returncode == 0, proc.stderr
    return db, env


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    assert "unexpected" not in lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def _bytes(raw: bytes) -> str:
    """Text as Python hands non-UTF-8 argv/environment bytes to a program."""
    return raw.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("flag", "needle"),
    [("--where", "--where"), ("-e", "-e"), ("--events", "--events"), ("--db", "--db")],
)
def test_non_utf8_argument_is_one_line_exit_3(
    emulator: Any, fetched: tuple[Path, dict[str, str]], flag: str, needle: str
) -> None:
    db, env = fetched
    day = str(emulator.project.data_dates[1])
    value = _bytes(b'properties["x"] == "\xff\xfe"') if flag == "--where" else _bytes(b"a\xffb")
    before = db_files(db)
    if flag == "--db":
        argv = [MP, "--db", str(db.parent / _bytes(b"d\xff.duckdb")), "-q", "fetch", "events"]
        argv += ["--from", day, "--to", day]
    else:
        argv = fetch_argv([day], flag, value, table="odd")
    proc = run_mp(argv, env)
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert f"the value of {needle} contains bytes that are not UTF-8" in line
    assert proc.stdout == ""
    assert db_files(db) == before
    assert not [p for p in db.parent.iterdir() if p.name.startswith(_bytes(b"d\xff"))]


def test_non_utf8_secret_in_the_environment_is_one_line_exit_3(
    emulator: Any, fetched: tuple[Path, dict[str, str]]
) -> None:
    db, env = fetched
    day = str(emulator.project.data_dates[1])
    before = db_files(db)
    proc = run_mp(fetch_argv([day], table="odd"), {**env, "MP_SECRET": _bytes(b"s3\xffcret")})
    assert proc.returncode == 3, proc.stderr
    assert "MP_SECRET contains bytes that are not UTF-8" in _one_line(proc.stderr)
    assert db_files(db) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["sql", "SELECT 1"],
        ["inspect", "tables"],
        ["-q", "fetch", "events", "t", "--from", "{d}", "--to", "{d}"],
    ],
)
def test_fifo_as_database_is_refused_not_waited_on(
    emulator: Any, fetched: tuple[Path, dict[str, str]], tmp_path: Path, argv: list[str]
) -> None:
    db, env = fetched
    fifo = tmp_path / "pipe.duckdb"
    os.mkfifo(fifo)
    day = str(emulator.project.data_dates[1])
    before = db_files(db)
    # Before the fix DuckDB opened the FIFO and blocked until this timeout.
    proc = run_mp([MP, "--db", str(fifo), *(a.format(d=day) for a in argv)], env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"{fifo} is not a regular file" in _one_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["pipe.duckdb"]
    assert db_files(db) == before


def test_fifo_as_config_file_is_refused(
    fetched: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    db, env = fetched
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    before = db_files(db)
    proc = run_mp([MP, "auth", "list"], {**env, "MP_CONFIG_PATH": str(fifo)}, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"config path {fifo} is not a regular file" in _one_line(proc.stderr)
    assert db_files(db) == before


def test_six_thousand_event_names_are_refused_before_any_request(
    emulator: Any, fetched: tuple[Path, dict[str, str]]
) -> None:
    # Decision: refuse, not split (every extra request spends the 60/hour export budget).
    db, env = fetched
    day = str(emulator.project.data_dates[1])
    names = ",".join(f"Viewed Page {i}" for i in range(6000))
    emulator.clear_requests()
    before = db_files(db)
    proc = run_mp(fetch_argv([day], "--events", names, table="many"), env)
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert "the event filter lists 6,000 names" in line
    assert "pass fewer --events/-e names" in line
    assert [r for r in emulator.requests() if r.endpoint == "export"] == []
    assert db_files(db) == before
    # A list that fits is sent whole, in one request per window.
    fits = ",".join(f"Viewed Page {i}" for i in range(1500))
    proc = run_mp(fetch_argv([day], "--events", fits, table="fits"), env)
    assert proc.returncode == 0, proc.stderr
    sent = [r.params.get("event") for r in emulator.requests() if r.endpoint == "export"]
    assert len(sent) == 1
    assert sent[0] is not None
    assert sent[0].count('"') == 3000


def _address_space(limit: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@pytest.mark.parametrize("kind", ["events", "profiles"])
def test_small_address_space_is_refused_with_the_memory_needed(
    emulator: Any, fetched: tuple[Path, dict[str, str]], kind: str
) -> None:
    # Under `ulimit -v 800000` a fetch died in DuckDB (C++ abort, exit 134, or an
    # "unexpected TransactionException"); now it is refused before any work.
    db, env = fetched
    day = str(emulator.project.data_dates[1])
    argv = fetch_argv([day], table="small") if kind == "events" else [MP, "-q", "fetch", kind]
    before = db_files(db)
    proc = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_address_space(800_000 * 1024),
    )
    assert proc.returncode == 1, proc.stderr
    line = _one_line(proc.stderr)
    assert "a fetch needs about 1,536 MB of address space" in line
    assert "limited to 781 MB (ulimit -v)" in line
    assert db_files(db) == before
