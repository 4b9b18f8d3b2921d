"""Fetch benchmark: `mp fetch events` next to DuckDB's own `read_json` of the same export.

As a user runs it: `mp emulator serve` in another process, then interleaved pairs of

1. ours: `mp fetch events --from A --to B` into a fresh DuckDB file (dedup, typed
   columns, project days: everything a fetch does);
2. the ceiling: DuckDB's ``read_json`` loading the same export days from a local file
   into a fresh DuckDB file (columns ``event`` VARCHAR and ``properties`` JSON).

Each is a child process, timed from outside with its own peak RSS (harness.py). The
export is first downloaded once to that local file, which is the download's own
ceiling. The table shows medians; the ratio is of the medians.

    python benchmarks/fetch_benchmark.py                     # 1M events, 3 pairs
    python benchmarks/fetch_benchmark.py --events 10000000   # 8 GB of JSONL
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import (
    START,
    count_lines,
    env,
    export_span,
    mp_fetch,
    read_json,
    save_export,
    serve,
    stop,
    users_for,
)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="about how many events")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="interleaved fetch/read_json pairs")
    parser.add_argument(
        "--cache-dir", default=os.environ.get("MP_BENCH_CACHE", "/var/tmp/mp-bench")
    )
    opts = parser.parse_args()
    first, last = START, START + timedelta(days=opts.days - 1)
    root = Path(opts.cache_dir) / f"fetch-{opts.events}x{opts.days}"
    work = root / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"generating or reading about {opts.events:,} events ...", file=sys.stderr)
    emu, creds = serve(users_for(opts.events, opts.days), opts.days + 1, root / "days")
    try:
        environ = env(creds, work)
        jsonl = work / "export.jsonl"
        started = time.perf_counter()
        size = save_export(creds, *export_span(first, last), jsonl)
        download_s = time.perf_counter() - started
        lines = count_lines(jsonl)
        fetches, ceilings = [], []
        result: dict[str, int] = {}
        for i in range(opts.runs):
            # Each step starts with no dirty pages of the one before (their writeback
            # would be billed to it).
            os.sync()
            ours = mp_fetch(
                work / f"ours-{i}.duckdb", first, last, environ, "--workers", str(opts.workers)
            )
            result = json.loads(ours.stdout)
            fetches.append(ours)
            (work / f"ours-{i}.duckdb").unlink()
            os.sync()
            ceilings.append(read_json(jsonl, work / f"ceiling-{i}.duckdb", environ))
            (work / f"ceiling-{i}.duckdb").unlink()
    finally:
        stop(emu)
    shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    fetch_s = statistics.median(t.seconds for t in fetches)
    read_s = statistics.median(t.seconds for t in ceilings)
    fetch_rss = max(t.rss_mb for t in fetches)
    rows = [
        ("download to a local file (one request)", download_s, None),
        ("DuckDB read_json of that file", read_s, max(t.rss_mb for t in ceilings)),
        ("mp fetch events (dedup, typed columns)", fetch_s, fetch_rss),
    ]
    print(
        f"\n{lines:,} export lines, {mb:,.0f} MB of JSONL, project days {first}..{last} "
        f"({result.get('rows_inserted', 0):,} rows stored, "
        f"{result.get('duplicates_dropped', 0):,} duplicates dropped); "
        f"medians of {opts.runs} interleaved runs\n"
    )
    print("| step | seconds | events/s | MB/s | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds, rss in rows:
        rss_text = f"{rss:,.0f} MB" if rss is not None else "-"
        print(
            f"| {label} | {seconds:.2f} | {lines / seconds:,.0f} | {mb / seconds:,.0f} "
            f"| {rss_text} |"
        )
    spread = ", ".join(
        f"{f.seconds / c.seconds:.2f}x" for f, c in zip(fetches, ceilings, strict=True)
    )
    print(
        f"\nfetch / read_json: {fetch_s / read_s:.2f}x (pairs: {spread}; issue 12's target "
        f"<= 1.0x, open above 1.3x); peak RSS {fetch_rss:,.0f} MB (target < 500 MB)"
    )


if __name__ == "__main__":
    main()
