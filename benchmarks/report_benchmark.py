"""Local report benchmark: each `ws.local` report next to hand-written DuckDB SQL (the ceiling).

`mp emulator serve` runs in another process; `mp fetch events` loads about N events
from it into a DuckDB file (kept, with the emulator's day files, under the cache
directory: ``--cache-dir`` or ``$MP_BENCH_CACHE``). Then, untimed, a typed copy of the
same rows is built (``ceiling``: one typed column per property the reports read), and
each report is timed, interleaved with its ceiling: the same numbers written by hand in
SQL over the typed columns. The script checks that both give the same numbers, then
prints medians of wall and CPU time and their ratios.

    python benchmarks/report_benchmark.py               # 1M events
    python benchmarks/report_benchmark.py --ten-million # 10M events (8 GB of JSONL)

Targets (issue 13): each report within 1.5x its ceiling and under 1 s at 1M events.
"""

# The SQL below is built from dates and constants only.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import EVENTS_PER_USER_DAY, MP, START, TZ
from harness import env as _env
from harness import serve as _serve


def fetch(events: int, days: int, cache: Path) -> tuple[Path, dict[str, str]]:
    """The fetched database for about ``events`` events (made once, then reused)."""
    users = max(1, round(events / (days * EVENTS_PER_USER_DAY)))
    root = cache / f"report-{events}"
    root.mkdir(parents=True, exist_ok=True)
    db = root / "events.duckdb"
    ready = root / "fetched.json"
    if db.exists() and ready.exists():
        return db, json.loads(ready.read_text())
    db.unlink(missing_ok=True)
    emu, creds = _serve(users, days, root / "days")
    try:
        last = START + timedelta(days=days - 1)
        print(f"fetching about {events:,} events with mp fetch ...", file=sys.stderr)
        proc = subprocess.run(
            [
                *MP,
                "-q",
                "--db",
                str(db),
                "fetch",
                "events",
                "--from",
                str(START),
                "--to",
                str(last),
            ],
            env=_env(creds, root),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"mp fetch failed ({proc.returncode}): {proc.stderr.strip()}")
    finally:
        emu.kill()
        emu.wait(timeout=60)
    ready.write_text(json.dumps(creds))
    return db, creds


CEILING = """
CREATE OR REPLACE TABLE ceiling AS
SELECT event_name, event_time, distinct_id, insert_id,
       epoch(event_time) AS ts,
       CAST(event_time AT TIME ZONE '{tz}' AS DATE) AS day,
       hour(event_time AT TIME ZONE '{tz}') AS hr,
       properties->>'$.category' AS category,
       TRY_CAST(properties->>'$.price' AS DOUBLE) AS price,
       properties->>'$."$browser"' AS browser
FROM events
"""


def ceilings(first: date, last: date) -> dict[str, str]:
    """Each report's numbers, hand-written over the typed copy."""
    rng = f"day BETWEEN DATE '{first}' AND DATE '{last}'"
    window = 7 * 86400
    return {
        "segmentation --on": (
            "SELECT coalesce(category, 'undefined'), strftime(day, '%Y-%m-%d'), count(*) "
            f"FROM ceiling WHERE event_name = 'View Item' AND {rng} GROUP BY ALL"
        ),
        "event-counts unique": (
            "SELECT event_name, strftime(day, '%Y-%m-%d'), count(DISTINCT distinct_id) "
            f"FROM ceiling WHERE event_name IN ('Login', 'Purchase', 'View Item') AND {rng} "
            "GROUP BY ALL"
        ),
        "funnel (3 steps, 7d)": f"""
            WITH s1 AS (SELECT distinct_id u, min(ts) t1 FROM ceiling
                        WHERE event_name = 'View Item' AND {rng} GROUP BY 1),
            s2 AS (SELECT u, t1, min(ts) t2 FROM s1 JOIN ceiling c ON c.distinct_id = u
                   AND c.event_name = 'Add To Cart' AND c.ts BETWEEN t1 - 2 AND t1 + {window}
                   GROUP BY ALL),
            s3 AS (SELECT u, min(ts) t3 FROM s2 JOIN ceiling c ON c.distinct_id = u
                   AND c.event_name = 'Purchase' AND c.ts BETWEEN t2 - 2 AND t1 + {window}
                   GROUP BY ALL)
            SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2),
                   (SELECT count(*) FROM s3)""",
        "retention (birth, 7 days)": f"""
            WITH born AS (SELECT distinct_id u, min(ts) t0, arg_min(day, ts) d FROM ceiling
                          WHERE event_name = 'View Item' AND day <= DATE '{last}' GROUP BY 1),
            cohort AS (SELECT * FROM born WHERE d >= DATE '{first}')
            SELECT strftime(d, '%Y-%m-%d'), floor((c.ts - t0) / 86400)::INT i,
                   count(DISTINCT u)
            FROM cohort JOIN ceiling c ON c.distinct_id = u AND c.event_name = 'Purchase'
                 AND c.ts > t0 AND c.ts < t0 + 8 * 86400 AND c.day >= DATE '{first}'
            GROUP BY ALL""",
        "frequency (hours a day)": f"""
            WITH active AS (SELECT day, distinct_id, count(DISTINCT hr) n FROM ceiling
                            WHERE event_name = 'Login' AND {rng} GROUP BY ALL)
            SELECT strftime(day, '%Y-%m-%d'), k, count(*) FROM active, range(1, 25) r(k)
            WHERE n >= k GROUP BY ALL""",
    }


def locals_(ws: Any, first: date, last: date) -> dict[str, Callable[[], Any]]:
    """The same reports through the local engine."""
    d = {"from_date": first, "to_date": last}
    local = ws.local
    return {
        "segmentation --on": lambda: local.segmentation("View Item", on="category", **d),
        "event-counts unique": lambda: local.event_counts(
            ["Login", "Purchase", "View Item"], type="unique", **d
        ),
        "funnel (3 steps, 7d)": lambda: local.funnel(
            steps=["View Item", "Add To Cart", "Purchase"], length=7, **d
        ),
        "retention (birth, 7 days)": lambda: local.retention(
            born_event="View Item", event="Purchase", interval_count=7, **d
        ),
        "frequency (hours a day)": lambda: local.frequency(event="Login", **d),
    }


def as_numbers(name: str, result: Any) -> set[tuple[Any, ...]]:
    """A local result as the ceiling's rows (non-zero cells only)."""
    if name in ("segmentation --on", "event-counts unique"):
        return {(k, b, v) for k, row in result.values.items() for b, v in row.items() if v}
    if name.startswith("funnel"):
        return {tuple(s.count for s in result.steps)}
    if name.startswith("retention"):
        return {(c.date, i, n) for c in result.cohorts for i, n in enumerate(c.counts) if n}
    return {(b, k + 1, n) for b, row in result.data.items() for k, n in enumerate(row) if n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ten-million", action="store_true", help="10M events instead")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument(
        "--cache-dir", default=os.environ.get("MP_BENCH_CACHE", "/var/tmp/mp-bench")
    )
    opts = parser.parse_args()
    events = 10_000_000 if opts.ten_million else opts.events
    db, creds = fetch(events, opts.days, Path(opts.cache_dir))
    os.environ.update({k: v for k, v in _env(creds, db.parent).items() if k.startswith("MP_")})

    import duckdb

    from mixpanel_data import Workspace

    conn = duckdb.connect(str(db))
    conn.execute(CEILING.format(tz=TZ))
    rows = conn.execute("SELECT count(*) FROM events").fetchone()
    conn.close()
    first = START + timedelta(days=1)  # whole project days (export days are UTC)
    last = START + timedelta(days=opts.days - 2)
    sql = ceilings(first, last)
    timings: dict[str, dict[str, list[float]]] = {}
    with Workspace(path=db, read_only=True) as ws:
        reports = locals_(ws, first, last)
        for name, run in reports.items():
            mine = as_numbers(name, run())
            theirs = {tuple(r) for r in ws.sql_rows(sql[name]).rows}
            theirs = {r for r in theirs if r[-1]} if not name.startswith("funnel") else theirs
            if mine != theirs:
                diff = sorted(mine ^ theirs)[:5]
                raise SystemExit(f"{name}: local and ceiling disagree, e.g. {diff}")
            t = timings.setdefault(name, {"wall": [], "cpu": [], "cwall": [], "ccpu": []})
            for _ in range(opts.runs):  # interleaved: the machine's load hits both alike
                for key, fn in (("", run), ("c", lambda q=sql[name]: ws.sql_rows(q))):
                    w, c = time.perf_counter(), time.process_time()
                    fn()
                    t[key + "wall"].append(time.perf_counter() - w)
                    t[key + "cpu"].append(time.process_time() - c)
    n = rows[0] if rows else 0
    print(f"\n{n:,} events, {(last - first).days + 1} days, median of {opts.runs} runs\n")
    print("| report | local s | ceiling s | wall ratio | CPU ratio | < 1 s | <= 1.5x |")
    print("|---|---:|---:|---:|---:|:-:|:-:|")
    for name, t in timings.items():
        wall, cwall = statistics.median(t["wall"]), statistics.median(t["cwall"])
        cpu, ccpu = statistics.median(t["cpu"]), statistics.median(t["ccpu"])
        ratio = wall / cwall if cwall else float("inf")
        print(
            f"| {name} | {wall:.3f} | {cwall:.3f} | {ratio:.1f}x "
            f"| {cpu / ccpu if ccpu else float('inf'):.1f}x "
            f"| {'yes' if wall < 1 else 'no'} | {'yes' if ratio <= 1.5 else 'no'} |"
        )


if __name__ == "__main__":
    main()
