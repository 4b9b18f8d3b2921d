"""Readers during a fetch: how long `mp sql` waits while `mp fetch events` commits.

Against the emulator on loopback (about 1M events over 30 days by default), for each
commit batch bound (``staging.BATCH_BYTES``) given:

1. the fetch alone (`mp -q fetch events`, a child process), its wall time;
2. the same fetch with readers (`SELECT count(*) FROM events` through the same
   StorageEngine open-and-retry `mp sql` uses, in this process) back to back for the
   whole fetch; each reader's wait is its wall time less the fastest such read of the
   finished database.

    python benchmarks/reader_wait.py                                   # 128 MB (ours)
    python benchmarks/reader_wait.py --batch-mb 2048 128               # before vs now
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EVENTS_PER_USER_DAY = 3.09  # measured on the emulator's default spec
# `mp` with a given commit batch bound (a benchmark knob, not an option of mp).
FETCH_WITH_BATCH = (
    "import sys; from mixpanel_data._internal.services.fetch import staging; "
    "staging.BATCH_BYTES = int(sys.argv[1]); "
    "from mixpanel_data.cli.main import main; main(sys.argv[2:])"
)


def _read(env: dict[str, str]) -> tuple[float, bool]:
    """One `mp sql`-style read (the same StorageEngine open and retry), timed.

    In this process, not a child: a child's start-up on a busy machine would
    swamp the wait being measured.
    """
    from mixpanel_data._internal.storage.engine import StorageEngine
    from mixpanel_data.exceptions import MixpanelDataError

    db = Path(env["MP_DB_PATH"])
    if not db.exists():
        time.sleep(0.05)
        return 0.0, False
    started = time.perf_counter()
    try:
        engine = StorageEngine(db, read_only=True, on_wait=None)
        engine.execute_scalar("SELECT count(*) FROM events")
    except MixpanelDataError:  # before the first commit there is no table yet
        time.sleep(0.05)
        return 0.0, False
    return time.perf_counter() - started, True


def _fetch(batch: int, env: dict[str, str], first: str, last: str, readers: bool) -> Any:
    db = Path(env["MP_DB_PATH"])
    for suffix in ("", ".wal"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    os.sync()
    argv = ["-q", "fetch", "events", "--from", first, "--to", last]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", FETCH_WITH_BATCH, str(batch), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    waits: list[float] = []
    while readers and proc.poll() is None:
        seconds, ok = _read(env)
        if ok:  # before the first commit there is no table yet
            waits.append(seconds)
    if proc.wait() != 0:
        raise SystemExit(f"fetch failed with exit code {proc.returncode}")
    return time.perf_counter() - started, waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch-mb", type=int, nargs="+", default=[128])
    parser.add_argument("--cache-dir", default=None, help="keep generated days between runs")
    opts = parser.parse_args()

    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    users = max(1, round(opts.events / (opts.days * EVENTS_PER_USER_DAY)))
    spec = ProjectSpec(seed=7, users=users, days=opts.days)
    work = Path(tempfile.mkdtemp(prefix="mp-readers-"))
    cache = Path(opts.cache_dir) if opts.cache_dir else work / "cache"
    with Emulator(spec=spec, cache_dir=cache, threads=32) as emu:
        days = list(emu.project.data_dates)
        for day in days:
            emu.project.export_day_path(day)  # generate before timing
        env = {
            **os.environ,
            "HOME": str(work),
            "MP_CONFIG_PATH": str(work / "config.toml"),
            "MP_USERNAME": emu.username,
            "MP_SECRET": emu.secret,
            "MP_PROJECT_ID": str(spec.project_id),
            "MP_BASE_URL": emu.base_url,
            "MP_TIMEZONE": spec.timezone,
            "MP_DB_PATH": str(work / "readers.duckdb"),
            "MP_RATE_LIMIT_EXPORT": "100c",
        }
        first, last = str(days[0]), str(days[-1])
        print("| commit batch | fetch alone | fetch with readers | readers | max wait |")
        print("|---:|---:|---:|---:|---:|")
        for mb in opts.batch_mb:
            alone, _ = _fetch(mb << 20, env, first, last, readers=False)
            busy, times = _fetch(mb << 20, env, first, last, readers=True)
            base = min(_read(env)[0] for _ in range(5))
            worst = max(times) - base if times else 0.0
            print(
                f"| {mb} MB | {alone:.2f} s | {busy:.2f} s | {len(times)} | {worst:.2f} s |",
                flush=True,
            )
    if not opts.cache_dir:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
