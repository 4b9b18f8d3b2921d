"""Memory scaling: peak RSS of `fetch_events` at N and 10·N events (target: within 1.2×).

Each size gets its own emulator project (same spec, more users) and a fresh
DuckDB file; the fetch runs in a child process so its peak RSS is its own.
The 10M-event project is 8 GB of JSONL: keep it with ``--cache-dir``.

    python benchmarks/memory_scaling.py --cache-dir /var/tmp/mp-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from fetch_benchmark import EVENTS_PER_USER_DAY, _child, count_lines


def _measure(events: int, *, days: int, workers: int, cache: Path) -> dict[str, float]:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    users = max(1, round(events / (days * EVENTS_PER_USER_DAY)))
    spec = ProjectSpec(seed=7, users=users, days=days)
    work = Path(tempfile.mkdtemp(prefix="mp-scaling-"))
    try:
        with Emulator(spec=spec, cache_dir=cache, threads=32) as emu:
            dates = list(emu.project.data_dates)
            size = lines = 0
            for day in dates:
                path = emu.project.export_day_path(day)
                size += path.stat().st_size
                lines += count_lines(path)
            creds = dict(emu.credentials)
            creds["timezone"] = spec.timezone
            os.sync()
            report = _child(
                [
                    "fetch",
                    json.dumps(creds),
                    str(work / "scaling.duckdb"),
                    dates[0].isoformat(),
                    dates[-1].isoformat(),
                    str(workers),
                ]
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"lines": lines, "mb": size / 1e6, **report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="the smaller size")
    parser.add_argument("--factor", type=int, default=10, help="the larger size is N times it")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cache-dir", default=None, help="keep generated days between runs")
    opts = parser.parse_args()

    root = Path(opts.cache_dir) if opts.cache_dir else Path(tempfile.mkdtemp(prefix="mp-cache-"))
    rows = []
    for events in (opts.events, opts.events * opts.factor):
        print(f"fetching about {events:,} events ...", file=sys.stderr)
        cache = root / f"{events}-events"
        rows.append((events, _measure(events, days=opts.days, workers=opts.workers, cache=cache)))
    if not opts.cache_dir:
        shutil.rmtree(root, ignore_errors=True)

    print("\n| events | export lines | JSONL | seconds | events/s | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for events, r in rows:
        print(
            f"| {events:,} | {r['lines']:,.0f} | {r['mb']:,.0f} MB | {r['seconds']:.1f} "
            f"| {r['lines'] / r['seconds']:,.0f} | {r['rss_mb']:,.0f} MB |"
        )
    ratio = rows[1][1]["rss_mb"] / rows[0][1]["rss_mb"]
    print(f"\npeak RSS at {opts.factor}x the events: {ratio:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
