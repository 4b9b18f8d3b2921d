"""Readers during a fetch: how long `mp sql` waits while `mp fetch events` commits.

Through the `mp` command against `mp emulator serve` in another process (about 1M
events over 30 days by default), for each commit bound given (``MB/S``:
``staging.BATCH_BYTES`` in MB and ``staging.COMMIT_SECONDS``, 0 for no time bound),
``--repeat`` rounds, the bounds interleaved within a round (their order
alternating from round to round, since a shared machine's speed drifts):

1. the fetch alone (`mp -q fetch events`, a child process): wall time and CPU time
   (user + sys of the child and its threads, from ``os.wait4``), which a busy machine
   disturbs far less than wall time;
2. the same fetch while an `mp -v sql "SELECT count(*) FROM events"` starts every
   ``--interval`` seconds (each its own process; at most two at once, a tick is
   skipped otherwise). A reader's wait is what it logs itself (-v: "opened ...
   after waiting S s for the lock"; 0 if the file was free); its wall time less
   the median of the same `mp sql` on the finished database right after is given
   too (that also counts the CPU the fetch and the machine take from it).
   Readers that started before the first commit (no table yet) are not counted.

The batch bound is set in the `mp` child by a one-line wrapper (a benchmark knob, not
an option of mp). A reader the fetch answers itself (storage/served.py) says so in its
-v log; it never waits for the lock, so its wall time over its quiet run is its wait.
Targets (issue 14): every reader's wall time over its quiet run < 2 s; the fetch's CPU
time with readers <= 1.05x the same fetch alone.

    python benchmarks/reader_wait.py                                    # 128/0 (ours)
    python benchmarks/reader_wait.py --bound 2048/0 128/0 --repeat 3    # batch sizes
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import EVENTS_PER_USER_DAY
from update_benchmark import _serve, _warm

# `mp` with a given commit batch bound: the console script's own entry point.
FETCH_WITH_BATCH = (
    "import sys; from mixpanel_data._internal.services.fetch import staging; "
    "mb, s = sys.argv[1].split('/'); staging.BATCH_BYTES = int(mb) << 20; "
    "staging.COMMIT_SECONDS = float(s); sys.argv = ['mp', *sys.argv[2:]]; "
    "from mixpanel_data.cli.entry import main; main()"
)
MP = str(Path(sys.executable).with_name("mp"))
QUERY = "SELECT count(*) FROM events"
READERS_AT_ONCE = 2
LOCK_WAIT = re.compile(r"read-only after waiting ([0-9.]+) s for the lock")


@dataclass
class Run:
    """One fetch: its times and (with readers) every counted reader's wall time."""

    mb: str
    wall: float
    cpu: float
    with_readers: bool
    control: bool = False  # the readers read another database (their load only)
    readers: list[float] = field(default_factory=list)
    locks: list[float] = field(default_factory=list)  # each reader's wait for the lock
    early: int = 0  # readers before the first commit (not counted)
    served: int = 0  # readers the fetch answered itself (their -v log says so)
    base: float = 0.0  # median `mp sql` on the finished database

    @property
    def waits(self) -> list[float]:
        return [max(0.0, r - self.base) for r in self.readers]


def _remove_db(db: Path) -> None:
    for suffix in ("", ".wal", ".readers", ".fetch", ".tmp"):
        target = Path(str(db) + suffix)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def _sql(env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [MP, "-v", "sql", "--scalar", QUERY], env=env, capture_output=True, text=True
    )
    return time.perf_counter() - started, proc.returncode, proc.stderr


def _lock_wait(stderr: str) -> float:
    """The reader's own wait for the database (its -v log), 0 if it found it free."""
    match = LOCK_WAIT.search(stderr)
    return float(match.group(1)) if match else 0.0


def _fetch(
    mb: str,
    env: dict[str, str],
    span: tuple[str, str],
    *,
    readers: bool,
    interval: float,
    control: Path | None = None,
) -> Run:
    db = Path(env["MP_DB_PATH"])
    _remove_db(db)
    os.sync()  # no run pays for the previous one's writeback
    argv = ["-q", "fetch", "events", "--from", span[0], "--to", span[1]]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", FETCH_WITH_BATCH, mb, *argv],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    results: list[tuple[float, int, str]] = []
    threads: list[threading.Thread] = []
    # The control readers run the same `mp sql` on a finished copy: the machine's load
    # they add is the same, but the fetch does nothing for them.
    reader_env = env if control is None else {**env, "MP_DB_PATH": str(control)}
    done = threading.Event()

    def launch() -> None:
        tick = time.perf_counter()
        while not done.is_set():
            # At most READERS_AT_ONCE: on a busy machine a pile of `mp` start-ups
            # would measure the load they add, not the fetch.
            if sum(t.is_alive() for t in threads) < READERS_AT_ONCE:
                t = threading.Thread(target=lambda: results.append(_sql(reader_env)))
                t.start()
                threads.append(t)
            tick += interval
            done.wait(max(0.0, tick - time.perf_counter()))

    launcher = threading.Thread(target=launch)
    if readers:
        launcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    if readers:
        launcher.join()
    for t in threads:
        t.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"fetch failed with exit code {os.waitstatus_to_exitcode(status)}")
    run = Run(mb, wall, usage.ru_utime + usage.ru_stime, readers, control is not None)
    if readers:
        for seconds, code, err in results:
            if code != 0:  # no database or table yet
                run.early += 1
                continue
            run.readers.append(seconds)
            run.locks.append(_lock_wait(err))
            run.served += "through the fetch that holds it" in err
        base = [_sql(reader_env) for _ in range(5)]
        if any(code != 0 for _, code, _ in base):
            raise SystemExit(f"mp sql failed on the finished database: {base[0][2]}")
        run.base = statistics.median(s for s, _, _ in base)
    return run


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--bound", nargs="+", default=["128/0"], help="MB/seconds per commit")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between readers")
    parser.add_argument(
        "--control",
        action="store_true",
        help="also run the readers against another database (the load they add, alone)",
    )
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("MP_BENCH_CACHE", "/var/tmp/mp-bench"),
        help="keep generated days between runs (default $MP_BENCH_CACHE or /var/tmp/mp-bench)",
    )
    opts = parser.parse_args()

    users = max(1, round(opts.events / (opts.days * EVENTS_PER_USER_DAY)))
    work = Path(tempfile.mkdtemp(prefix="mp-readers-"))
    cache = Path(opts.cache_dir) / f"{opts.events}-events"
    import update_benchmark

    update_benchmark.DAYS = opts.days
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the emulator too
    serve, creds = _serve(users, cache, work / "emulator.log")
    runs: list[Run] = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
        env.update(
            HOME=str(work),
            MP_CONFIG_PATH=str(work / "config.toml"),
            MP_BASE_URL=creds["base_url"],
            MP_USERNAME=creds["username"],
            MP_SECRET=creds["secret"],
            MP_PROJECT_ID=creds["project_id"],
            MP_DB_PATH=str(work / "readers.duckdb"),
            MP_RATE_LIMIT_EXPORT="100c",  # the emulator runs without Mixpanel's budgets
        )
        import datetime as dt
        from zoneinfo import ZoneInfo

        today = dt.datetime.now(ZoneInfo("America/Los_Angeles")).date()  # the default zone
        span = (
            (today - dt.timedelta(days=opts.days)).isoformat(),
            (today - dt.timedelta(days=1)).isoformat(),
        )
        _warm(creds, *span)
        control = work / "control.duckdb" if opts.control else None
        kinds = [(False, None), (True, None)] + ([(True, control)] if control else [])
        for round_ in range(opts.repeat):
            order = opts.bound if round_ % 2 == 0 else opts.bound[::-1]
            for mb in order:
                for readers, other in kinds:
                    run = _fetch(
                        mb, env, span, readers=readers, interval=opts.interval, control=other
                    )
                    runs.append(run)
                    if control is not None and not control.exists():
                        shutil.copyfile(env["MP_DB_PATH"], control)
                    detail = (
                        f", {len(run.readers)} readers ({sum(w > 0 for w in run.locks)} "
                        f"waited), max lock wait {max(run.locks, default=0):.2f} s, max wall "
                        f"over base {max(run.waits, default=0):.2f} s (base {run.base:.2f} s)"
                        if readers
                        else ""
                    )
                    print(
                        f"  round {round_ + 1} {mb} "
                        f"{'alone' if not readers else 'control' if other else 'with readers'}: "
                        f"{run.wall:.1f} s wall, {run.cpu:.1f} s CPU{detail}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    def med(mb: str, readers: bool, attr: str) -> float:
        return statistics.median(
            getattr(r, attr)
            for r in runs
            if r.mb == mb and r.with_readers == readers and not r.control
        )

    def control_of(mb: str, attr: str) -> float | None:
        values = [getattr(r, attr) for r in runs if r.mb == mb and r.control]
        return statistics.median(values) if values else None

    ref = opts.bound[0]
    print(
        f"\n{opts.repeat} rounds, medians; a reader every {opts.interval} s; CPU = user + sys "
        f"of the `mp fetch` process; ratios against the {ref} bound of the same run\n"
    )
    print(
        "| commit batch | fetch alone: wall / CPU | CPU ratio | fetch with readers: wall / CPU "
        "| CPU ratio | with readers / alone CPU | readers (waited, served) | lock wait p95 / max "
        "| reader wall over base p95 / max |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mb in opts.bound:
        mine = [r for r in runs if r.mb == mb and not r.control]
        waits = [w for r in mine for w in r.waits]
        locks = [w for r in mine for w in r.locks]
        print(
            f"| {mb} | {med(mb, False, 'wall'):.1f} s / {med(mb, False, 'cpu'):.1f} s "
            f"| {med(mb, False, 'cpu') / med(ref, False, 'cpu'):.3f}x "
            f"| {med(mb, True, 'wall'):.1f} s / {med(mb, True, 'cpu'):.1f} s "
            f"| {med(mb, True, 'cpu') / med(ref, True, 'cpu'):.3f}x "
            f"| {med(mb, True, 'cpu') / med(mb, False, 'cpu'):.3f}x "
            f"| {len(locks)} ({sum(w > 0 for w in locks)}, {sum(r.served for r in mine)}) "
            f"| {_p95(locks):.2f} / {max(locks, default=0):.2f} s "
            f"| {_p95(waits):.2f} / {max(waits, default=0):.2f} s |"
        )
    for mb in opts.bound:
        other, other_wall = control_of(mb, "cpu"), control_of(mb, "wall")
        if other is not None and other_wall is not None:
            # Per round, the wall of the fetch with readers over the control run next to it.
            rounds = [r for r in runs if r.mb == mb and r.with_readers]
            pairs = [
                a.wall / b.wall
                for a, b in zip(rounds[::2], rounds[1::2], strict=False)
                if not a.control and b.control
            ]
            print(
                f"\n{mb}: fetch with control readers (same `mp sql`, another database) "
                f"{other_wall:.1f} s wall / {other:.1f} s CPU; with readers / with control "
                f"readers: CPU {med(mb, True, 'cpu') / other:.3f}x, wall "
                f"{med(mb, True, 'wall') / other_wall:.3f}x (per round "
                f"{', '.join(f'{x:.3f}x' for x in pairs)}); control / alone CPU "
                f"{other / med(mb, False, 'cpu'):.3f}x"
            )
    print(json.dumps({"load": os.getloadavg()}), file=sys.stderr)


if __name__ == "__main__":
    main()
