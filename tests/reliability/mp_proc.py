"""Helpers for the crash, bad-input and security tests: `mp` as a subprocess on the emulator.

"Equal to a clean run" is checked literally: the same command run once, undisturbed,
into a fresh database, and every stored row compared (properties as canonical text).
Import the ``clean_rows`` fixture into a test module to use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

MP = str(Path(sys.executable).with_name("mp"))


def mp_env(emu: Any, db: Path, **extra: str) -> dict[str, str]:
    """A child environment pointing `mp` at the emulator and at `db`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_TEST_")}
    env.update(
        # Private home and config, and the suite's budgets (concurrency only), whatever
        # the fixture scope this is called from.
        HOME=str(db.parent),
        MP_CONFIG_PATH=str(db.parent / ".mp" / "config.toml"),
        MP_RATE_LIMIT_EXPORT="100c",
        MP_RATE_LIMIT_QUERY="5c",
        MP_USERNAME=emu.username,
        MP_SECRET=emu.secret,
        MP_PROJECT_ID=str(emu.spec.project_id),
        MP_BASE_URL=emu.base_url,
        MP_TIMEZONE="UTC",  # as the suite's credentials: one export day per day (conftest)
        MP_DB_PATH=str(db),
    )
    env.update(extra)
    return env


def fetch_argv(days: list[Any], *extra: str, table: str = "events") -> list[str]:
    """`mp -q fetch events TABLE --from first --to last ...extra`."""
    first, last = str(days[0]), str(days[-1])
    return [MP, "-q", "fetch", "events", table, "--from", first, "--to", last, *extra]


def run_mp(argv: list[str], env: Mapping[str, str], timeout: float = 120) -> Any:
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll until `predicate()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[Any]) -> None:
    """Make sure a child is gone (tests always clean up their subprocesses)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def table_rows(db: Path, table: str = "events") -> list[tuple[Any, ...]]:
    """Every stored row, sorted, with properties parsed back and re-serialised canonically."""
    import duckdb

    conn = duckdb.connect(str(db), read_only=True)
    try:
        cols = "event_name, distinct_id, epoch_us(event_time), insert_id, properties::VARCHAR"
        rows = conn.execute(f'SELECT {cols} FROM "{table}"').fetchall()  # noqa: S608
    finally:
        conn.close()
    out = [(e, d, t, i, json.dumps(json.loads(p), sort_keys=True)) for e, d, t, i, p in rows]
    return sorted(out, key=repr)


def sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def db_files(db: Path) -> dict[str, str | None]:
    """Checksums of the database and its WAL: 'nothing stored changed' means these are equal."""
    return {s: sha256(Path(str(db) + s)) for s in ("", ".wal")}


def staging_left(db: Path) -> list[Path]:
    return sorted(db.parent.glob(".mp-staging-*"))


_CLEAN: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}


@pytest.fixture
def clean_rows(emu: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """The rows an undisturbed `mp fetch events` of these days stores (cached per worker;
    ``extra``: more environment, e.g. another ``MP_TIMEZONE``)."""

    def get(days: list[Any], **extra: str) -> list[tuple[Any, ...]]:
        key = (emu.base_url, str(days[0]), str(days[-1]), *sorted(extra.items()))
        if key not in _CLEAN:
            db = tmp_path_factory.mktemp("clean") / "clean.duckdb"
            proc = run_mp(fetch_argv(days), mp_env(emu, db, **extra))
            assert proc.returncode == 0, proc.stderr
            _CLEAN[key] = table_rows(db)
            # Not near-empty. The shared emulator's data move daily (its today is the real
            # one): its first day held 84-125 export lines over the 40 todays tried, so a
            # higher floor failed on some dates.
            assert len(_CLEAN[key]) > 30
        return _CLEAN[key]

    return get
