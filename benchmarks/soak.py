"""Soak: a 1M-event fetch with faults in about a tenth of the windows equals a clean fetch.

Against the emulator on loopback: one clean fetch, then the same fetch with
faults drawn at random (seeded) for about one export call in ten (5xx, HTML
502, 429 with Retry-After, resets mid-stream, ``terminated early``, a last line
that does not parse, and cut gzip bodies). Prints wall times, retries, the
faults that fired, and whether the two tables are equal, by a checksum query
over each and an EXCEPT ALL both ways.

    python benchmarks/soak.py                        # 1M events, 60 one-day windows
    python benchmarks/soak.py --events 100000 --cache-dir /tmp/soak-cache
"""

# SQL here is built from fixed fragments (no user input).
# ruff: noqa: S608

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

EVENTS_PER_USER_DAY = 3.09  # measured on the emulator's default spec (fetch_benchmark.py)

# Each is drawn per export call; together about one call in ten fails.
FAULTS = (
    "export:500:prob=0.02;"
    "export:502:prob=0.01;"
    "export:429:prob=0.01:retry_after=1;"
    "export:reset:prob=0.02:after_bytes=300000;"
    "export:terminated_early:prob=0.015:after_bytes=200000;"
    "export:malformed_line:prob=0.01:after_bytes=1000000000000;"
    "export:truncated_gzip:prob=0.015"
)

CHECKSUM = (
    "SELECT count(*), sum(hash(event_name, distinct_id, event_time, insert_id, "
    "properties::VARCHAR)::HUGEINT), bit_xor(hash(event_name, distinct_id, event_time, "
    "insert_id, properties::VARCHAR)) FROM {db}.events"
)


def fetch(emu: Any, db: Path, *, first: str, last: str, workers: int, gzip: bool) -> Any:
    """Fetch first..last into `db` with fast but real retries; return the FetchResult."""
    from pydantic import SecretStr

    from mixpanel_data._internal.config import Credentials
    from mixpanel_data._internal.http.client import MixpanelAPIClient, RetryPolicy
    from mixpanel_data._internal.http.rate_limit import BudgetSpec
    from mixpanel_data._internal.services.fetch.service import FetcherService
    from mixpanel_data._internal.storage.engine import StorageEngine

    creds = Credentials(
        username=emu.username,
        secret=SecretStr(emu.secret),
        project_id=str(emu.spec.project_id),
        base_url=emu.base_url,
        timezone=emu.spec.timezone,
    )
    retry = RetryPolicy(max_attempts=6, max_total_seconds=120, base_delay=0.05, max_delay=1.0)
    with MixpanelAPIClient(
        creds, retry=retry, budgets={"export": BudgetSpec(concurrent=100)}
    ) as api:
        service = FetcherService(
            api, StorageEngine(db), timezone=emu.spec.timezone, notice=_stderr, gzip=gzip
        )
        return service.fetch_events(
            "events", from_date=first, to_date=last, workers=workers, window_days=1
        )


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def compare(clean: Path, soaked: Path) -> tuple[tuple[Any, ...], tuple[Any, ...], int, int]:
    """Checksums of both tables and the rows each has that the other lacks."""
    import duckdb

    conn = duckdb.connect()
    conn.execute(f"ATTACH '{clean}' AS clean (READ_ONLY)")
    conn.execute(f"ATTACH '{soaked}' AS soak (READ_ONLY)")
    a = conn.execute(CHECKSUM.format(db="clean")).fetchone()
    b = conn.execute(CHECKSUM.format(db="soak")).fetchone()
    cols = "event_name, distinct_id, event_time, insert_id, properties::VARCHAR"
    only_clean = conn.execute(
        f"SELECT count(*) FROM (SELECT {cols} FROM clean.events "
        f"EXCEPT ALL SELECT {cols} FROM soak.events)"
    ).fetchone()
    only_soak = conn.execute(
        f"SELECT count(*) FROM (SELECT {cols} FROM soak.events "
        f"EXCEPT ALL SELECT {cols} FROM clean.events)"
    ).fetchone()
    conn.close()
    assert a is not None
    assert b is not None
    assert only_clean is not None
    assert only_soak is not None
    return tuple(a), tuple(b), int(only_clean[0]), int(only_soak[0])


def main() -> None:
    """Run the soak and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="about how many events")
    parser.add_argument("--days", type=int, default=60, help="one window per day")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-seed", type=int, default=1)
    parser.add_argument("--no-gzip", action="store_true", help="identity bodies (no gzip faults)")
    parser.add_argument("--cache-dir", default=None, help="keep generated days between runs")
    opts = parser.parse_args()

    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    users = max(1, round(opts.events / (opts.days * EVENTS_PER_USER_DAY)))
    spec = ProjectSpec(seed=opts.seed, users=users, days=opts.days)
    work = Path(tempfile.mkdtemp(prefix="mp-soak-"))
    cache = Path(opts.cache_dir) if opts.cache_dir else work / "cache"
    gzip = not opts.no_gzip
    try:
        with Emulator(spec=spec, cache_dir=cache, threads=32, fault_seed=opts.fault_seed) as emu:
            days = list(emu.project.data_dates)
            t0 = time.perf_counter()
            raw = sum(emu.project.export_day_path(d).stat().st_size for d in days)
            print(
                f"{len(days)} days, {raw / 1e6:,.0f} MB of JSONL ready in "
                f"{time.perf_counter() - t0:.1f}s",
                file=sys.stderr,
            )
            first, last = days[0].isoformat(), days[-1].isoformat()

            started = time.perf_counter()
            clean = fetch(
                emu, work / "clean.duckdb", first=first, last=last, workers=opts.workers, gzip=gzip
            )
            clean_s = time.perf_counter() - started

            emu.clear_requests()
            emu.faults.add_spec(FAULTS)
            started = time.perf_counter()
            soaked = fetch(
                emu, work / "soak.duckdb", first=first, last=last, workers=opts.workers, gzip=gzip
            )
            soak_s = time.perf_counter() - started
            calls = [r for r in emu.requests() if r.endpoint == "export"]
            fired = Counter(f for r in calls for f in r.faults)
            faulted_windows = {r.params.get("from_date") for r in calls if r.faults}

        a, b, only_clean, only_soak = compare(work / "clean.duckdb", work / "soak.duckdb")
        equal = a == b and only_clean == only_soak == 0
        print(
            f"\nwindows: {soaked.windows_total} ({len(faulted_windows)} hit by faults), "
            f"export calls: {len(calls)}, gzip: {gzip}"
        )
        print(f"faults fired: {dict(sorted(fired.items()))}")
        print(
            f"clean fetch: {clean_s:.1f}s, {clean.rows_inserted:,} rows "
            f"({clean.duplicates_dropped:,} duplicates dropped)"
        )
        print(
            f"soak fetch:  {soak_s:.1f}s, {soaked.rows_inserted:,} rows, "
            f"retries {soaked.retries}, malformed lines stored 0 / counted "
            f"{soaked.malformed_lines}, failed windows {len(soaked.failed_ranges)}"
        )
        print(f"checksum clean: {a}\nchecksum soak:  {b}")
        print(f"rows only in clean: {only_clean}, only in soak: {only_soak}")
        print(f"tables equal: {equal}")
        if not equal:
            raise SystemExit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the databases (and the cache, unless kept)


if __name__ == "__main__":
    main()
