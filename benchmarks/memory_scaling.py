"""Memory scaling: peak RSS of `mp fetch events` at N and 10·N events (target: within 1.2×).

Each size gets its own `mp emulator serve` project (same spec, more users) and a fresh
DuckDB file; the fetch runs as a user runs it, its peak RSS its own (harness.py). The
10M-event project is 8 GB of JSONL: its days are kept under ``--cache-dir``.

    python benchmarks/memory_scaling.py --cache-dir /var/tmp/mp-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import START, env, mp_fetch, serve, stop, users_for


def _measure(events: int, *, days: int, workers: int, cache: Path) -> dict[str, float]:
    root = cache / f"fetch-{events}x{days}"
    work = root / "scaling"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    emu, creds = serve(users_for(events, days), days + 1, root / "days")
    try:
        os.sync()
        last = START + timedelta(days=days - 1)
        run = mp_fetch(
            work / "scaling.duckdb", START, last, env(creds, work), "--workers", str(workers)
        )
    finally:
        stop(emu)
        shutil.rmtree(work, ignore_errors=True)
    result = json.loads(run.stdout)
    return {
        "rows": result["rows_inserted"],
        "mb": result["bytes_downloaded"] / 1e6,
        "seconds": run.seconds,
        "rss_mb": run.rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="the smaller size")
    parser.add_argument("--factor", type=int, default=10, help="the larger size is N times it")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--cache-dir", default=os.environ.get("MP_BENCH_CACHE", "/var/tmp/mp-bench")
    )
    opts = parser.parse_args()

    rows = []
    for events in (opts.events, opts.events * opts.factor):
        print(f"fetching about {events:,} events ...", file=sys.stderr)
        measured = _measure(
            events, days=opts.days, workers=opts.workers, cache=Path(opts.cache_dir)
        )
        rows.append((events, measured))

    print("\n| events | rows stored | JSONL | seconds | events/s | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for events, r in rows:
        print(
            f"| {events:,} | {r['rows']:,.0f} | {r['mb']:,.0f} MB | {r['seconds']:.1f} "
            f"| {r['rows'] / r['seconds']:,.0f} | {r['rss_mb']:,.0f} MB |"
        )
    ratio = rows[1][1]["rss_mb"] / rows[0][1]["rss_mb"]
    print(f"\npeak RSS at {opts.factor}x the events: {ratio:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
