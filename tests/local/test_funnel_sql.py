"""The funnel computed in SQL equals the original walk in Python (tests/local/funnel_oracle.py)
on Hypothesis-made event lists full of edge cases, and the emulator's own funnel evaluator
on its project for step lists the live API cannot run (repeated steps, ad hoc)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import client_today, emulator_credentials
from tests.local.funnel_oracle import old_funnel

from mixpanel_data import Workspace
from mixpanel_data._internal.config import Credentials

ZONES = ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Auckland"]
START = date(2024, 1, 2)
BASE = datetime(2024, 1, 2, tzinfo=UTC)
HOUR = 3600


def write_table(db: Path, events: list[tuple[Any, ...]]) -> None:
    """An events table fetched (as the fetch records it) for 2023-12-20 .. 2024-01-31."""
    import duckdb

    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE events (event_name VARCHAR, event_time TIMESTAMPTZ, distinct_id VARCHAR, "
        "insert_id VARCHAR, properties JSON)"
    )
    if events:
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", events)
    con.execute(
        "CREATE TABLE _mp_windows (name VARCHAR, fetch_id VARCHAR, from_date DATE, to_date DATE, "
        "rows_inserted BIGINT, duplicates BIGINT, malformed BIGINT, committed_at TIMESTAMPTZ)"
    )
    con.execute(
        "INSERT INTO _mp_windows VALUES ('events', 'f', '2023-12-20', '2024-01-31', 0, 0, 0, now())"
    )
    con.close()


def local_funnel(db: Path, tz: str, steps: list[str], **params: Any) -> Any:
    creds = Credentials(username="u", secret="s", project_id="1", timezone=tz, source="test")
    with Workspace(credentials=creds, path=db) as ws:
        return ws.local.funnel(steps=steps, **params)


@st.composite
def funnel_params(draw: st.DrawFn, window: int) -> dict[str, Any]:
    bucketing = draw(
        st.sampled_from([{}, {"interval": 1}, {"interval": 2}, {"unit": "day"}, {"unit": "week"}])
    )
    return {
        "steps": draw(st.lists(st.sampled_from("ABC"), min_size=2, max_size=4)),
        "window": window,
        "end": START + timedelta(days=draw(st.integers(0, 2))),
        "on": draw(st.sampled_from([None, 'properties["seg"]'])),
        "where": draw(st.sampled_from([None, 'properties["keep"]'])),
        "limit": draw(st.sampled_from([None, 1, 2])),
        **bucketing,
    }


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    window = draw(st.sampled_from([1, 2, 3, 5, 60, 20 * HOUR, 86400, 2 * 86400]))
    # Dense clusters of events at day edges and one window after an entry, each event a
    # few seconds (or half seconds) off: equal times, exactly 2 s apart, window edges.
    anchors = [-20 * HOUR, -HOUR, 0, 13 * HOUR, 23 * HOUR, 30 * HOUR, 47 * HOUR]
    anchors += [a + window for a in anchors[1:4]]
    chosen = draw(st.lists(st.sampled_from(anchors), min_size=1, max_size=2, unique=True))
    event = st.tuples(
        st.sampled_from(["u1", "u2", None]),
        st.sampled_from("AAABBBCCD"),
        st.sampled_from(chosen),
        st.integers(-3, 3),
        st.sampled_from([0.0, 0.0, 0.5]),
        st.sampled_from(["x", "y", "z"]),
        st.booleans(),
    )
    raw = draw(st.lists(event, min_size=4, max_size=24))
    ids = draw(st.permutations(range(len(raw))))
    events = []
    for (user, name, anchor, delta, frac, seg, keep), n in zip(raw, ids, strict=True):
        when = BASE + timedelta(seconds=anchor + delta + frac)
        insert_id = None if n % 7 == 3 else f"i{n:02d}"  # some missing: they sort last
        props = orjson.dumps({"seg": seg, "keep": keep}).decode()
        events.append((name, when, user, insert_id, props))
    return {
        "events": events,
        "tz": draw(st.sampled_from(ZONES)),
        "funnels": draw(st.lists(funnel_params(window), min_size=3, max_size=3)),
    }


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(case=cases())
def test_sql_funnel_equals_the_python_walk(case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "f.duckdb"
        write_table(db, case["events"])
        creds = Credentials(
            username="u", secret="s", project_id="1", timezone=case["tz"], source="test"
        )
        with Workspace(credentials=creds, path=db) as ws:
            for f in case["funnels"]:
                params = {k: f.get(k) for k in ("on", "where", "limit", "interval", "unit")}
                result = ws.local.funnel(
                    steps=f["steps"],
                    from_date=START,
                    to_date=f["end"],
                    length=f["window"],
                    length_unit="second",
                    **params,
                )
                totals, buckets = old_funnel(
                    db,
                    f["steps"],
                    start=START,
                    end=f["end"],
                    window=float(f["window"]),
                    tz=case["tz"],
                    **{k: v for k, v in params.items() if v is not None},
                )
                assert result.raw == totals, f
                assert result.raw_buckets == buckets, f


def at(seconds: float) -> datetime:
    return BASE + timedelta(hours=10, seconds=seconds)


def test_repeated_steps_need_their_own_events(tmp_path: Path) -> None:
    """A -> B -> A: the entry's A cannot be the third step; a second A (even 2 s before B,
    within the grace period) can, and one A can serve one step only."""
    db = tmp_path / "r.duckdb"
    rows = [
        ("A", at(0), "once", "1", "{}"),
        ("B", at(10), "once", "2", "{}"),
        ("A", at(0), "twice", "3", "{}"),
        ("B", at(10), "twice", "4", "{}"),
        ("A", at(8), "twice", "5", "{}"),  # 2 s before B: within the grace period
        ("A", at(0), "late", "6", "{}"),
        ("B", at(10), "late", "7", "{}"),
        ("A", at(7.5), "late", "8", "{}"),  # 2.5 s before B: too early
    ]
    write_table(db, rows)
    r = local_funnel(db, "UTC", ["A", "B", "A"], from_date=START, to_date=START)
    assert [s.count for s in r.steps] == [3, 3, 1]
    assert [s.avg_time for s in r.steps] == [None, 10, -2]
    assert [s.avg_time_from_start for s in r.steps] == [None, 10, 8]


def test_grace_counts_from_the_entry_too(tmp_path: Path) -> None:
    """A step may come 2 s before the previous one, but never more than 2 s before the
    entry: A at 10 s, B at 8 s, C at 7 s converts A -> B only (C at 8 s converts)."""
    db = tmp_path / "g.duckdb"
    rows = [
        ("A", at(10), "u1", "1", "{}"),
        ("B", at(8), "u1", "2", "{}"),
        ("C", at(7), "u1", "3", "{}"),
        ("A", at(10), "u2", "4", "{}"),
        ("B", at(8), "u2", "5", "{}"),
        ("C", at(8), "u2", "6", "{}"),
    ]
    write_table(db, rows)
    r = local_funnel(db, "UTC", ["A", "B", "C"], from_date=START, to_date=START)
    assert [s.count for s in r.steps] == [2, 2, 1]


def test_window_edge_and_same_second_ties(tmp_path: Path) -> None:
    """A step exactly at the window's end converts; one later does not. Two entries at
    the same second: the one with the smaller insert_id is the entry (its segment counts)."""
    db = tmp_path / "w.duckdb"
    rows = [
        ("A", at(0), "edge", "1", '{"seg": "first"}'),
        ("B", at(60), "edge", "2", "{}"),
        ("A", at(0), "past", "3", '{"seg": "first"}'),
        ("B", at(60.5), "past", "4", "{}"),
        ("A", at(0), "tie", "z9", '{"seg": "later id"}'),
        ("A", at(0), "tie", "a1", '{"seg": "smaller id"}'),
    ]
    write_table(db, rows)
    r = local_funnel(
        db,
        "UTC",
        ["A", "B"],
        from_date=START,
        to_date=START,
        length=60,
        length_unit="second",
        on='properties["seg"]',
    )
    assert [s.count for s in r.steps] == [3, 1]
    assert {k: [s.count for s in v] for k, v in r.segments.items()} == {
        "first": [2, 1],
        "smaller id": [1, 0],
    }


# -- the emulator's own evaluator, for funnels the live API cannot run ----------------------

ADHOC = [
    ["View Item", "Add To Cart", "View Item"],
    ["Login", "Login", "Purchase"],
    ["Add To Cart", "Add To Cart", "Add To Cart"],
    ["Search", "View Item", "Search", "View Item"],
    ["Purchase", "View Item"],
]


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Any, str]]:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    zone, today = "America/New_York", date(2024, 6, 12)
    spec = ProjectSpec(seed=5, users=80, days=21, timezone=zone, today=today)
    tmp = tmp_path_factory.mktemp("funnel-sql")
    with Emulator(spec=spec, cache_dir=tmp / "cache", threads=8) as emu:
        ws = Workspace(credentials=emulator_credentials(emu), path=tmp / "db.duckdb")
        with client_today(today, zone):
            ws.fetch_events(from_date=today - timedelta(days=22), to_date=today)
        try:
            yield ws, emu.project, zone
        finally:
            ws.close()


@pytest.mark.parametrize("steps", ADHOC, ids="-".join)
@pytest.mark.parametrize("interval", [None, 3])
def test_adhoc_funnels_equal_the_emulators_evaluator(
    emulated: tuple[Workspace, Any, str], steps: list[str], interval: int | None
) -> None:
    from mixpanel_data.emulator.reports.buckets import day_buckets
    from mixpanel_data.emulator.reports.dataset import dataset_for
    from mixpanel_data.emulator.reports.funnels import analysis, compute_funnel, step_rows

    ws, project, _ = emulated
    first, last = date(2024, 5, 28), date(2024, 6, 10)
    window = 2 * 86400
    local = ws.local.funnel(steps=steps, from_date=first, to_date=last, length=2, interval=interval)
    days = (last - first).days + 1
    for size, body in ((days, local.raw), (interval, local.raw_buckets)):
        if size is None:
            assert body is None
            continue
        buckets = day_buckets(size, first, last)
        theirs = compute_funnel(
            dataset_for(project), steps, first=first, last=last, window=window, buckets=buckets
        )
        assert body["meta"]["dates"] == buckets.series
        for b, by_seg in theirs.items():
            assert body["data"][b]["steps"] == step_rows(by_seg[None], steps), b
            assert body["data"][b]["analysis"] == analysis(by_seg[None]), b
    assert local.steps[0].count > 0
