"""Incremental fetch at scale: `mp fetch events --update` next to a fresh fetch of its days.

For each size (1M and 10M events by default), in one run, through the `mp` command
against `mp emulator serve` running in another process:

1. a full fetch of the 30 days into an empty database;
2. ``mp fetch events --update`` on that table (re-fetches the last days and merges),
   alternating with a fresh fetch of the same days into an empty database (what the
   update should cost: target update <= 1.3x this), ``--repeat`` times; medians;
3. the same for ``mp fetch events --append --from <10 days ago>`` on that table.

After every update and append the table must hold exactly the rows of the clean
full fetch of 1 (compared by count and an order-independent hash of every column). Each ``mp``
runs under ``/usr/bin/time -f %M``, so its peak RSS is its own (target < 500 MB);
the emulator's memory is not counted. Generated days are kept in
``$MP_BENCH_CACHE`` (default /var/tmp/mp-bench); the 10M project is 8 GB of JSONL.

    python benchmarks/update_benchmark.py              # 1M and 10M
    python benchmarks/update_benchmark.py --sizes 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from harness import EVENTS_PER_USER_DAY, read_export

MP = str(Path(sys.executable).with_name("mp"))
DAYS = 30


def _serve(users: int, cache: Path, log: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start `mp emulator serve` in its own process; return it and its credentials line."""
    argv = [MP, "emulator", "serve", "--seed", "7", "--users", str(users), "--days", str(DAYS)]
    argv += ["--cache-dir", str(cache)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"mp emulator serve failed; see {log}")
    return proc, json.loads(line)


def _warm(creds: dict[str, str], first: str, last: str) -> None:
    """Have the emulator generate (or find cached) every day before anything is timed."""
    read_export(creds, dt.date.fromisoformat(first), dt.date.fromisoformat(last))


def _mp(env: dict[str, str], db: Path, *args: str) -> dict[str, Any]:
    """Run one `mp` command under /usr/bin/time; its seconds, peak RSS and JSON output."""
    os.sync()  # no step pays for the previous one's writeback
    rss_file = db.with_suffix(".rss")
    argv = ["/usr/bin/time", "-o", str(rss_file), "-f", "%M", MP, "-q", "--db", str(db), *args]
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"`mp {' '.join(args)}` failed ({proc.returncode}): {proc.stderr}")
    out = json.loads(proc.stdout)
    rss_kb = int(rss_file.read_text().split()[-1])
    return {"seconds": seconds, "rss_mb": rss_kb / 1024, "out": out}


def _fingerprint(db: Path) -> tuple[int, int]:
    """Row count and an order-independent hash of every stored column."""
    import duckdb

    conn = duckdb.connect(str(db), read_only=True)
    try:
        row = conn.execute(
            "SELECT count(*), sum(hash(event_name, event_time, distinct_id, insert_id, "
            "properties::VARCHAR)::HUGEINT) FROM events"
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return int(row[0]), int(row[1] or 0)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time, with the largest peak RSS of all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "rss_mb": max(r["rss_mb"] for r in runs)}


def _remove_db(db: Path) -> None:
    db.with_suffix(".rss").unlink(missing_ok=True)
    for suffix in ("", ".wal", ".readers", ".fetch"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def _measure(events: int, *, root: Path, repeat: int) -> dict[str, Any]:
    users = max(1, round(events / (DAYS * EVENTS_PER_USER_DAY)))
    work = Path(tempfile.mkdtemp(prefix="mp-update-bench-"))
    proc, creds = _serve(users, root / f"{events}-events", work / "emulator.log")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
        env.update(
            HOME=str(work),
            MP_CONFIG_PATH=str(work / "config.toml"),
            MP_BASE_URL=creds["base_url"],
            MP_USERNAME=creds["username"],
            MP_SECRET=creds["secret"],
            MP_PROJECT_ID=creds["project_id"],
            MP_RATE_LIMIT_EXPORT="100c",  # the emulator runs without Mixpanel's budgets
        )
        # The emulator's project ends yesterday (project time) and starts DAYS before.
        today = dt.datetime.now(ZoneInfo("America/Los_Angeles")).date()  # the default zone
        first = (today - dt.timedelta(days=DAYS)).isoformat()
        last = (today - dt.timedelta(days=1)).isoformat()
        started = time.perf_counter()
        _warm(creds, first, last)
        print(f"  days ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)

        full_db = work / "full.duckdb"
        full = _mp(env, full_db, "fetch", "events", "--from", first, "--to", last)
        clean = _fingerprint(full_db)
        print(
            f"  full fetch: {full['seconds']:.1f} s ({full['rss_mb']:.0f} MB), {clean[0]:,} rows",
            file=sys.stderr,
        )
        span = ("", "")
        # Updates and fresh fetches alternate; the medians are compared (a shared
        # machine's speed drifts from minute to minute).
        updates, freshes, exact = [], [], True
        for i in range(repeat):
            updates.append(_mp(env, full_db, "fetch", "events", "--update"))
            exact = exact and _fingerprint(full_db) == clean
            print(f"  rows equal the clean fetch: {exact}", file=sys.stderr)
            span = (updates[-1]["out"]["from_date"], updates[-1]["out"]["to_date"])
            fresh_db = work / f"fresh{i}.duckdb"
            freshes.append(
                _mp(env, fresh_db, "fetch", "events", "--from", span[0], "--to", span[1])
            )
            _remove_db(fresh_db)
            print(
                f"  --update {span[0]}..{span[1]}: {updates[-1]['seconds']:.1f} s "
                f"({updates[-1]['rss_mb']:.0f} MB); fresh fetch of those days: "
                f"{freshes[-1]['seconds']:.1f} s ({freshes[-1]['rss_mb']:.0f} MB)",
                file=sys.stderr,
            )
        update, fresh = _median(updates), _median(freshes)
        after_update = clean if exact else (0, 0)
        append_from = (today - dt.timedelta(days=10)).isoformat()
        appends, append_freshes = [], []
        for i in range(repeat):
            appends.append(
                _mp(
                    env, full_db, "fetch", "events", "--append", "--from", append_from, "--to", last
                )
            )
            exact = exact and _fingerprint(full_db) == clean
            fresh_db = work / f"fresh10-{i}.duckdb"
            append_freshes.append(
                _mp(env, fresh_db, "fetch", "events", "--from", append_from, "--to", last)
            )
            _remove_db(fresh_db)
            print(
                f"  --append --from {append_from}: {appends[-1]['seconds']:.1f} s "
                f"({appends[-1]['rss_mb']:.0f} MB); fresh fetch of those days: "
                f"{append_freshes[-1]['seconds']:.1f} s ({append_freshes[-1]['rss_mb']:.0f} MB)",
                file=sys.stderr,
            )
        append, append_fresh = _median(appends), _median(append_freshes)
        after_append = clean if exact else (0, 0)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": clean[0],
        "full": full,
        "update": update,
        "fresh": fresh,
        "span": span,
        "append": append,
        "append_fresh": append_fresh,
        "append_span": (append_from, last),
        "update_exact": after_update == clean,
        "append_exact": after_append == clean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("MP_BENCH_CACHE", "/var/tmp/mp-bench"),
        help="keep generated days between runs (default $MP_BENCH_CACHE or /var/tmp/mp-bench)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="updates and fresh fetches, alternating (median)"
    )
    opts = parser.parse_args()
    root = Path(opts.cache_dir)
    results = []
    for events in (int(s) for s in opts.sizes.split(",")):
        print(f"about {events:,} events ...", file=sys.stderr)
        results.append((events, _measure(events, root=root, repeat=opts.repeat)))

    print(
        "\n| events | rows | full fetch (30 days) | step | days | seconds | fresh fetch of "
        "those days | ratio | peak RSS (step) | rows equal a clean fetch |"
    )
    print("|---:|---:|---:|---|---|---:|---:|---:|---:|---|")
    ok = True
    for events, r in results:
        for label, step, fresh, span, exact in (
            ("`--update`", r["update"], r["fresh"], r["span"], r["update_exact"]),
            (
                "`--append --from`",
                r["append"],
                r["append_fresh"],
                r["append_span"],
                r["append_exact"],
            ),
        ):
            ratio = step["seconds"] / fresh["seconds"]
            rss = max(step["rss_mb"], fresh["rss_mb"], r["full"]["rss_mb"])
            ok = ok and exact and rss < 500 and (label != "`--update`" or ratio <= 1.3)
            print(
                f"| {events:,} | {r['rows']:,} | {r['full']['seconds']:.1f} s, "
                f"{r['full']['rss_mb']:,.0f} MB | {label} | {span[0]}..{span[1]} "
                f"| {step['seconds']:.1f} | {fresh['seconds']:.1f} | {ratio:.2f}x "
                f"| {step['rss_mb']:,.0f} MB | {'yes' if exact else 'NO'} |"
            )
    print(
        "\ntargets: --update <= 1.3x the fresh fetch of its days, peak RSS < 500 MB, "
        f"rows exactly those of a clean fetch: {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
