"""`mp demo` end to end as a new user runs it: empty HOME, no account, a real process.

Every number in the printed tables is recomputed here from the emulator's own
export files, deduplicated in plain Python (contract §3.5: same event, distinct_id,
time and ``$insert_id`` is one event; the latest ``mp_processing_time_ms`` wins).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from mixpanel_data.cli.demo_sections import DAU_DAYS, FUNNEL_STEPS, DemoRun, demo_spec
from mixpanel_data.emulator.project import SyntheticProject

USERS, DAYS = 150, 10
MP = str(Path(sys.executable).with_name("mp"))  # the installed entry point, as users run it


def parse_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Read rich tables (title, ┃ header, ━ rule, │ rows) back into rows by title."""
    tables: dict[str, list[dict[str, str]]] = {}
    title: list[str] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            title, header = [], None
        elif "┃" in line:
            header = [c.strip() for c in line.split("┃")]
            tables[" ".join(title)] = []
        elif "━" in line:
            continue
        elif "│" in line and header is not None:
            cells = [c.strip() for c in line.split("│")]
            tables[" ".join(title)].append(dict(zip(header, cells, strict=True)))
        else:
            title.append(line.strip())
    return tables


def table(tables: dict[str, list[dict[str, str]]], starts: str) -> list[dict[str, str]]:
    found = [rows for name, rows in tables.items() if name.startswith(starts)]
    assert len(found) == 1, (starts, list(tables))
    return found[0]


def deduplicated_events(project: SyntheticProject) -> list[dict[str, Any]]:
    """The export's records, one per event (independent of the fetcher's SQL)."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for day in project.data_dates:
        for line in project.export_day_path(day).read_bytes().splitlines():
            record = orjson.loads(line)
            p = record["properties"]
            insert_id = p.get("$insert_id") or hashlib.sha256(line).hexdigest()
            key = (record["event"], p["distinct_id"], p["time"], insert_id)
            seen = best.get(key)
            if (
                seen is None
                or p["mp_processing_time_ms"] > seen["properties"]["mp_processing_time_ms"]
            ):
                best[key] = record
    return list(best.values())


def close_pct(printed: str, part: int, whole: int) -> bool:
    """A percentage printed with one decimal (rounding of exact halves may differ)."""
    return abs(float(printed) - 100.0 * part / whole) <= 0.05 + 1e-9


def money(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Revenue cells as Decimals (the table prints 10.50 as 10.5)."""
    return [{**r, "revenue": Decimal(r["revenue"])} for r in rows]


def run_demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    env["HOME"] = str(home)
    return subprocess.run(
        [MP, "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("empty-home")
    r = run_demo(home, "--users", str(USERS), "--days", str(DAYS))
    assert r.returncode == 0, r.stderr
    assert list(home.iterdir()) == []  # nothing written to HOME (no config, no ~/.mp/data)
    project = SyntheticProject(demo_spec(users=USERS, days=DAYS))
    return {"stdout": r.stdout, "stderr": r.stderr, "project": project}


@pytest.fixture(scope="module")
def expected(demo_output) -> dict[str, Any]:
    project: SyntheticProject = demo_output["project"]
    events = deduplicated_events(project)
    profiles = {p["$distinct_id"]: p["$properties"] for p in project.profiles()}
    return {"events": events, "profiles": profiles, "project": project}


def test_top_events(demo_output, expected) -> None:
    rows = table(parse_tables(demo_output["stdout"]), "Top events")
    events = expected["events"]
    counts = Counter(e["event"] for e in events)
    users: dict[str, set[str]] = defaultdict(set)
    for e in events:
        users[e["event"]].add(e["properties"]["distinct_id"])
    want = [
        {"event_name": n, "events": str(c), "users": str(len(users[n]))}
        for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    assert [{k: v for k, v in r.items() if k != "pct"} for r in rows] == want
    assert all(close_pct(r["pct"], counts[r["event_name"]], len(events)) for r in rows)
    assert f"Fetched {len(events):,} events" in demo_output["stderr"]


def test_daily_active_users_in_the_project_timezone(demo_output, expected) -> None:
    rows = table(parse_tables(demo_output["stdout"]), "Daily active users")
    project = expected["project"]
    tz = ZoneInfo(project.spec.timezone)
    run = DemoRun(from_date=project.data_dates[0], to_date=project.data_dates[-1], timezone=tz.key)
    days = run.full_local_days()[-DAU_DAYS:]
    users: dict[Any, set[str]] = defaultdict(set)
    counts: Counter[Any] = Counter()
    for e in expected["events"]:
        day = datetime.fromtimestamp(e["properties"]["time"], UTC).astimezone(tz).date()
        users[day].add(e["properties"]["distinct_id"])
        counts[day] += 1
    assert rows == [
        {"day": d.isoformat(), "users": str(len(users[d])), "events": str(counts[d])} for d in days
    ]


def _price(props: dict[str, Any]) -> Decimal:
    return Decimal(str(props["price"]))


def test_revenue_by_country_and_plan(demo_output, expected) -> None:
    tables = parse_tables(demo_output["stdout"])
    purchases = [e for e in expected["events"] if e["event"] == "Purchase"]
    by_country: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in purchases:
        by_country[e["properties"]["mp_country_code"]].append(e["properties"])
    want = [
        {
            "country": c,
            "purchases": str(len(ps)),
            "buyers": str(len({p["distinct_id"] for p in ps})),
            "revenue": sum((_price(p) for p in ps), Decimal("0.00")),
        }
        for c, ps in by_country.items()
    ]
    want.sort(key=lambda r: (-r["revenue"], r["country"]))
    assert money(table(tables, "Revenue by country")) == want

    by_plan: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in purchases:
        profile = expected["profiles"].get(e["properties"]["distinct_id"])
        plan = profile.get("plan", "(no profile)") if profile is not None else "(no profile)"
        by_plan[plan].append(e["properties"])
    want = [
        {
            "plan": plan,
            "buyers": str(len({p["distinct_id"] for p in ps})),
            "purchases": str(len(ps)),
            "revenue": sum((_price(p) for p in ps), Decimal("0.00")),
        }
        for plan, ps in by_plan.items()
    ]
    want.sort(key=lambda r: (-r["revenue"], r["plan"]))
    assert money(table(tables, "Revenue by plan")) == want


def test_purchase_funnel(demo_output, expected) -> None:
    rows = table(parse_tables(demo_output["stdout"]), "Purchase funnel")
    times: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for e in expected["events"]:
        times[e["event"]][e["properties"]["distinct_id"]].append(e["properties"]["time"])
    reached: dict[str, int] = {}
    for user, first in ((u, min(ts)) for u, ts in times[FUNNEL_STEPS[0]].items()):
        reached[user] = first
    counts = [len(reached)]
    for step in FUNNEL_STEPS[1:]:
        nxt = {}
        for user, after in reached.items():
            later = [t for t in times[step].get(user, []) if t >= after]
            if later:
                nxt[user] = min(later)
        reached = nxt
        counts.append(len(reached))
    assert [{k: v for k, v in r.items() if k != "pct_of_first"} for r in rows] == [
        {"step": str(i + 1), "event": s, "users": str(n)}
        for i, (s, n) in enumerate(zip(FUNNEL_STEPS, counts, strict=True))
    ]
    assert all(close_pct(r["pct_of_first"], int(r["users"]), counts[0]) for r in rows)
    assert counts[0] > counts[-1] > 0  # a real funnel: drop-off, and buyers


def test_keep_serves_until_interrupted(tmp_path: Path) -> None:
    """`--keep` prints export lines that work, then stops cleanly on Ctrl-C."""
    home = tmp_path / "home"  # made empty by the autouse clean_environ fixture
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    env["HOME"] = str(home)
    with subprocess.Popen(
        [
            MP,
            "-q",
            "demo",
            "--keep",
            "--users",
            "40",
            "--days",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C reaches the child even when this suite inherited SIGINT ignored (a
        # background job of a shell without job control); otherwise it waits forever.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        assert proc.stdout is not None
        try:
            db = _use_the_kept_demo(proc, env)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:  # an assertion failed before Ctrl-C: do not hang
                proc.kill()
    assert proc.returncode == 0, stderr
    assert not Path(db).exists()  # the demo's temporary database went with it
    assert re.search(r"Traceback", stderr) is None


def _use_the_kept_demo(proc: subprocess.Popen[str], env: dict[str, str]) -> str:
    """Read the running demo's export and hint lines, use both; its database path."""
    assert proc.stdout is not None
    export = ""
    for line in proc.stdout:
        if line.startswith("export "):
            export = line
            break
    assert export, "no export line"
    hint = next(line for line in proc.stdout if " sql " in line)
    assigned = dict(part.split("=", 1) for part in shlex.split(export)[1:])
    assert set(assigned) >= {"MP_BASE_URL", "MP_USERNAME", "MP_SECRET", "MP_PROJECT_ID"}
    db = shlex.split(hint.lstrip("# "))[2]
    # The printed credentials reach the running emulator, and the database stays.
    check = subprocess.run(
        [MP, "auth", "test"],
        capture_output=True,
        text=True,
        env={**env, **assigned},
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["project_id"] == assigned["MP_PROJECT_ID"]
    count = subprocess.run(
        [
            MP,
            "--db",
            db,
            "sql",
            "SELECT count(*) FROM events",
            "--scalar",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert int(count.stdout) > 0
    return db


def test_live_queries_agree_with_local_sql(demo_output, expected) -> None:
    tables = parse_tables(demo_output["stdout"])
    seg = table(tables, "Live segmentation")
    funnel = table(tables, "Live funnel")
    assert len(seg) == 7
    assert len(funnel) == 3
    assert all(r["agree"] == "true" for r in seg + funnel)
    # The live numbers are also right, not just equal to SQL: count Purchases per
    # project-timezone day straight from the deduplicated export.
    project: SyntheticProject = expected["project"]
    per_day: dict[str, int] = defaultdict(int)
    for e in expected["events"]:
        if e["event"] == "Purchase":
            local = datetime.fromtimestamp(e["properties"]["time"], tz=project.tz)
            per_day[local.date().isoformat()] += 1
    assert {r["day"]: int(r["live (Query API)"]) for r in seg} == {
        r["day"]: per_day[r["day"]] for r in seg
    }
    counts = [int(r["live (Query API)"]) for r in funnel]
    assert counts[0] >= counts[1] >= counts[2] > 0
