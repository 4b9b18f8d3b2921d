"""Fetch benchmark: events/s, MB/s and peak RSS of `fetch_events` next to two ceilings.

Against the emulator on loopback, with the export days generated before timing:

1. download ceiling: the same export (one request, whole range) read to /dev/null;
2. parse ceiling: DuckDB's own ``read_json`` of the same JSONL from local disk
   into a fresh DuckDB file (columns ``event`` VARCHAR, ``properties`` JSON:
   auto-detection fails on the export's case-variant keys);
3. ours: ``FetcherService.fetch_events`` into a fresh DuckDB file (dedup included).

2 and 3 run in child processes, each peak RSS its own (``/usr/bin/time -f %M``).

    python benchmarks/fetch_benchmark.py                    # 1M events
    python benchmarks/fetch_benchmark.py --events 10000000  # memory stays flat?
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS_PER_USER_DAY = 3.09  # measured on the emulator's default spec


def count_lines(path: Path) -> int:
    """Newlines in a file, read in large blocks."""
    lines = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
    return lines


def _child(argv: list[str]) -> dict[str, float]:
    """Run this script in `--child` mode; return its JSON report plus peak RSS (MB).

    The peak is `/usr/bin/time`'s, not ``os.wait4``'s: a child's ``ru_maxrss`` starts
    from its parent's high-water mark, and this parent holds the emulator (1.2 GB after
    generating 10M events, reported as the fetch's peak before).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as peak:
        proc = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M",
                "-o",
                peak.name,
                sys.executable,
                __file__,
                "--child",
                *argv,
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"child {argv[0]} failed with exit code {proc.returncode}")
        kib = int(peak.read().strip().splitlines()[-1])
    report: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["rss_mb"] = kib / 1024
    return report


def child_main(args: list[str]) -> None:
    """`--child read_json FILE DB` or `--child fetch CREDS_JSON DB FROM TO WORKERS`."""
    kind = args[0]
    if kind == "read_json":
        import duckdb

        src, db = args[1], args[2]
        started = time.perf_counter()
        conn = duckdb.connect(db)
        conn.execute(
            "CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited', "
            "columns = {event: 'VARCHAR', properties: 'JSON'})",
            [src],
        )
        rows = conn.execute("SELECT count(*) FROM t").fetchone()
        conn.close()
        print(
            json.dumps({"seconds": time.perf_counter() - started, "rows": rows[0] if rows else 0})
        )
        return
    from pydantic import SecretStr

    from mixpanel_data._internal.config import Credentials
    from mixpanel_data._internal.http.client import MixpanelAPIClient
    from mixpanel_data._internal.http.rate_limit import BudgetSpec
    from mixpanel_data._internal.services.fetch.service import FetcherService
    from mixpanel_data._internal.storage.engine import StorageEngine

    creds = json.loads(args[1])
    credentials = Credentials(
        username=creds["username"],
        secret=SecretStr(creds["secret"]),
        project_id=creds["project_id"],
        base_url=creds["base_url"],
        timezone=creds.get("timezone"),
    )
    # The emulator runs without rate limits here; the client keeps only the concurrency cap.
    api = MixpanelAPIClient(credentials, budgets={"export": BudgetSpec(concurrent=100)})
    engine = StorageEngine(args[2])
    started = time.perf_counter()
    result = FetcherService(api, engine).fetch_events(
        "events", from_date=args[3], to_date=args[4], workers=int(args[5])
    )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": result.rows_inserted,
                "duplicates": result.duplicates_dropped,
                "bytes": result.bytes_downloaded,
            }
        )
    )


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="about how many events")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", default=None, help="keep generated days between runs")
    parser.add_argument(
        "--fetch-only", action="store_true", help="skip the read_json ceiling (memory checks)"
    )
    opts = parser.parse_args()

    import shutil

    import httpx

    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    users = max(1, round(opts.events / (opts.days * EVENTS_PER_USER_DAY)))
    spec = ProjectSpec(seed=opts.seed, users=users, days=opts.days)
    work = Path(tempfile.mkdtemp(prefix="mp-bench-"))
    cache = Path(opts.cache_dir) if opts.cache_dir else work / "cache"
    with Emulator(spec=spec, cache_dir=cache, threads=32) as emu:
        days = list(emu.project.data_dates)
        t0 = time.perf_counter()
        raw_bytes = sum(emu.project.export_day_path(day).stat().st_size for day in days)
        print(
            f"generated/cached {len(days)} days, {raw_bytes / 1e6:.0f} MB "
            f"in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        first, last = days[0].isoformat(), days[-1].isoformat()
        creds = dict(emu.credentials)
        creds["timezone"] = spec.timezone
        params = {"from_date": first, "to_date": last, "project_id": creds["project_id"]}
        auth = (creds["username"], creds["secret"])
        headers = {"Accept-Encoding": "identity"}

        # Ceiling 1: the download alone, to /dev/null.
        started = time.perf_counter()
        size = 0
        with (
            httpx.Client(auth=auth, timeout=600) as client,
            client.stream(
                "GET", f"{emu.base_url}/api/2.0/export", params=params, headers=headers
            ) as response,
            open(os.devnull, "wb") as sink,
        ):
            for chunk in response.iter_raw():
                sink.write(chunk)
                size += len(chunk)
        download_s = time.perf_counter() - started

        # The same JSONL on local disk, for DuckDB's own read_json.
        jsonl = work / "export.jsonl"
        with (
            httpx.Client(auth=auth, timeout=600) as client,
            client.stream(
                "GET", f"{emu.base_url}/api/2.0/export", params=params, headers=headers
            ) as response,
            open(jsonl, "wb") as fh,
        ):
            for chunk in response.iter_raw():
                fh.write(chunk)
        lines = count_lines(jsonl)

        # Each measured step starts with no dirty pages left by the previous one
        # (the saved JSONL, the ceiling's database): their writeback would be billed to it.
        os.sync()
        ours = _child(
            ["fetch", json.dumps(creds), str(work / "ours.duckdb"), first, last, str(opts.workers)]
        )
        if opts.fetch_only:
            print(f"fetch: {ours['seconds']:.2f} s, peak RSS {ours['rss_mb']:,.0f} MB")
            shutil.rmtree(work, ignore_errors=True)
            return
        os.sync()
        ceiling = _child(["read_json", str(jsonl), str(work / "ceiling.duckdb")])

    mb = size / 1e6
    rows = [
        ("download to /dev/null", download_s, lines, None),
        ("DuckDB read_json (local file)", ceiling["seconds"], lines, ceiling["rss_mb"]),
        ("mp fetch_events (dedup, loopback)", ours["seconds"], lines, ours["rss_mb"]),
    ]
    print(
        f"\n{lines:,} export lines, {mb:,.0f} MB of JSONL "
        f"({ours['rows']:,.0f} rows stored, {ours['duplicates']:,.0f} duplicates dropped)\n"
    )
    print("| step | seconds | events/s | MB/s | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds, n, rss in rows:
        rss_text = f"{rss:,.0f} MB" if rss is not None else "-"
        print(
            f"| {label} | {seconds:.2f} | {n / seconds:,.0f} | {mb / seconds:,.0f} | {rss_text} |"
        )
    ratio = ours["seconds"] / ceiling["seconds"]
    print(
        f"\nfetch / read_json time: {ratio:.2f}x (target <= 1.5x); "
        f"fetch events/s: {lines / ours['seconds']:,.0f} (target >= 150,000); "
        f"peak RSS {ours['rss_mb']:,.0f} MB (target < 500 MB)"
    )
    if not opts.cache_dir:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for name in ("export.jsonl", "ceiling.duckdb", "ours.duckdb", "ours.duckdb.readers"):
            (work / name).unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
