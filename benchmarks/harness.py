"""What the benchmarks share: `mp emulator serve` in another process, `mp` as a user
runs it, the export on local disk, and DuckDB's own ``read_json`` as the ceiling.

Every timed step is a child process timed from outside, its peak RSS taken by
``/usr/bin/time -f %M`` (``ru_maxrss`` from ``os.wait4`` would start from this
parent's own high-water mark).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO

EVENTS_PER_USER_DAY = 3.09  # measured on the emulator's default spec
START = date(2024, 3, 1)  # fixed, so cached days and databases stay valid
TZ = "America/Los_Angeles"
MP = [sys.executable, "-m", "mixpanel_data"]

# DuckDB loading the export from a local file: the fetch's ceiling. Auto-detection
# fails on the export's case-variant keys, so the two top-level fields are given.
READ_JSON = (
    'import duckdb, sys; c = duckdb.connect(sys.argv[2]); c.execute("CREATE TABLE t AS '
    "SELECT * FROM read_json(?, format = 'newline_delimited', columns = "
    "{event: 'VARCHAR', properties: 'JSON'})\", [sys.argv[1]]); c.close()"
)


def users_for(events: int, days: int) -> int:
    """The emulator's ``--users`` for about `events` events over `days` days."""
    return max(1, round(events / (days * EVENTS_PER_USER_DAY)))


def serve(
    users: int, days: int, cache: Path, *, log: Path | None = None
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start `mp emulator serve` (days from START, in TZ); return it and its credentials."""
    proc = subprocess.Popen(
        [
            *MP,
            "emulator",
            "serve",
            "--users",
            str(users),
            "--days",
            str(days),
            "--start-date",
            START.isoformat(),
            "--timezone",
            TZ,
            "--cache-dir",
            str(cache),
        ],
        stdout=subprocess.PIPE,
        stderr=open(log, "w") if log is not None else subprocess.DEVNULL,  # noqa: SIM115
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the emulator did not start")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=60)


def env(creds: dict[str, str], home: Path) -> dict[str, str]:
    """The environment of an `mp` user of the emulator's project, with its own HOME."""
    return {
        **os.environ,
        "HOME": str(home),
        "MP_CONFIG_PATH": str(home / "config.toml"),
        "MP_USERNAME": creds["username"],
        "MP_SECRET": creds["secret"],
        "MP_PROJECT_ID": creds["project_id"],
        "MP_BASE_URL": creds["base_url"],
        "MP_TIMEZONE": TZ,
        "MP_RATE_LIMIT_QUERY": "5c",  # the emulator runs without limits
    }


@dataclass(frozen=True)
class Timed:
    seconds: float
    rss_mb: float
    stdout: str


def timed(argv: list[str], environ: dict[str, str]) -> Timed:
    """Run `argv` as a child; its wall time, its own peak RSS and its stdout."""
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:6]} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return Timed(seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024, proc.stdout)


def mp_fetch(db: Path, first: date, last: date, environ: dict[str, str], *extra: str) -> Timed:
    """`mp -q --db DB fetch events --from FIRST --to LAST`, timed (stdout: its JSON result)."""
    argv = [*MP, "-q", "--db", str(db), "fetch", "events", "--from", str(first), "--to", str(last)]
    return timed([*argv, *extra], environ)


def read_json(jsonl: Path, db: Path, environ: dict[str, str]) -> Timed:
    """DuckDB's own load of `jsonl` into a fresh file `db`, timed the same way."""
    return timed([sys.executable, "-c", READ_JSON, str(jsonl), str(db)], environ)


def export_span(first: date, last: date) -> tuple[date, date]:
    """The export (UTC) days a fetch of project days first..last reads: TZ is west of
    UTC, so a project day ends on the next UTC day."""
    return first, last + timedelta(days=1)


def read_export(
    creds: dict[str, str], first: date, last: date, sink: IO[bytes] | None = None
) -> int:
    """Stream export days first..last (UTC) into `sink`, or nowhere; the bytes read."""
    import httpx

    size = 0
    params = {"from_date": str(first), "to_date": str(last), "project_id": creds["project_id"]}
    with (
        httpx.Client(auth=(creds["username"], creds["secret"]), timeout=3600) as client,
        client.stream(
            "GET",
            f"{creds['base_url']}/api/2.0/export",
            params=params,
            headers={"Accept-Encoding": "identity"},
        ) as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_raw(1 << 20):
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
    return size


def save_export(creds: dict[str, str], first: date, last: date, path: Path) -> int:
    """Download export days first..last (UTC) to `path` once; return its size in bytes."""
    if not path.exists():
        partial = path.with_suffix(".part")
        with open(partial, "wb") as fh:
            read_export(creds, first, last, fh)
        partial.replace(path)
    return path.stat().st_size


def count_lines(path: Path) -> int:
    """Newlines in a file, read in large blocks."""
    lines = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
    return lines
