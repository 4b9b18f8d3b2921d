"""Live reports against the emulator over loopback, checked against the raw export.

Expected numbers are computed here in plain Python from ``project.iter_export_day``
(deduplicated on (event, distinct_id, time, $insert_id) as Mixpanel's query engine
does, bucketed by project-timezone day), never with the emulator's report code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import NotFoundError, ValidationError, Workspace


@dataclass(frozen=True)
class Ev:
    name: str
    user: str
    ts: int
    day: date
    props: dict[str, Any]


_EVENTS: dict[int, list[Ev]] = {}


def raw_events(emu: Any) -> list[Ev]:
    """Every event of the export, deduplicated, with its project-timezone day."""
    key = id(emu)
    if key not in _EVENTS:
        tz = emu.project.tz
        seen: set[tuple[Any, ...]] = set()
        out = []
        for day in emu.project.data_dates:
            for rec in emu.project.iter_export_day(day):
                p = rec["properties"]
                if p.get("$insert_id") is not None:
                    ident = (rec["event"], p["distinct_id"], p["time"], p["$insert_id"])
                    if ident in seen:
                        continue
                    seen.add(ident)
                local = datetime.fromtimestamp(p["time"], tz).date()
                out.append(Ev(rec["event"], p["distinct_id"], p["time"], local, p))
        out.sort(key=lambda e: e.ts)
        _EVENTS[key] = out
    return _EVENTS[key]


def days(start: date, end: date) -> Iterator[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


@pytest.fixture
def ws(emulator: Any) -> Iterator[Workspace]:
    with Workspace(credentials=emulator_credentials(emulator)) as w:
        yield w


@pytest.fixture
def window(emulator: Any) -> tuple[date, date]:
    end = emulator.project.today - timedelta(days=1)
    return end - timedelta(days=13), end


def seg_value(props: dict[str, Any], name: str) -> str:
    value = props.get(name)
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- segmentation ------------------------------------------------------------------------


def test_segmentation_plain_unique_segmented_and_filtered(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    start, end = window
    events = [e for e in raw_events(emulator) if start <= e.day <= end and e.name == "Login"]
    expected = Counter(e.day.isoformat() for e in events)

    r = ws.segmentation("Login", from_date=start, to_date=end)
    assert r.series == tuple(d.isoformat() for d in days(start, end))
    assert r.values == {"Login": {d: expected.get(d, 0) for d in r.series}}
    assert r.total == len(events) > 0

    u = ws.segmentation("Login", from_date=start, to_date=end, type="unique")
    users: dict[str, set[str]] = defaultdict(set)
    for e in events:
        users[e.day.isoformat()].add(e.user)
    assert u.values["Login"] == {d: len(users[d]) for d in u.series}

    by_browser = ws.segmentation("Login", from_date=start, to_date=end, on="$browser")
    want: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        want[seg_value(e.props, "$browser")][e.day.isoformat()] += 1
    assert set(by_browser.values) == set(want)
    for segment, points in by_browser.values.items():
        assert points == {d: want[segment].get(d, 0) for d in by_browser.series}
    assert len(by_browser.df) == len(want) * 14

    chrome = ws.segmentation(
        "Login", from_date=start, to_date=end, where='properties["$browser"] == "Chrome"'
    )
    assert chrome.total == want["Chrome"].total() > 0


def test_event_counts_and_sum(emulator: Any, ws: Workspace, window: tuple[date, date]) -> None:
    start, end = window
    events = [e for e in raw_events(emulator) if start <= e.day <= end]
    r = ws.event_counts(["Login", "Purchase"], from_date=start, to_date=end)
    for name in ("Login", "Purchase"):
        counts = Counter(e.day.isoformat() for e in events if e.name == name)
        assert r.values[name] == {d: counts.get(d, 0) for d in r.series}

    s = ws.segmentation_sum("Purchase", from_date=start, to_date=end, on="price")
    sums: dict[str, float] = defaultdict(float)
    for e in events:
        if e.name == "Purchase":
            price = e.props.get("price")
            # Non-numbers (incl. numbers sent as strings) count as 0 (contract §9.3, §3.6).
            if isinstance(price, int | float) and not isinstance(price, bool):
                sums[e.day.isoformat()] += price
    assert set(s.results) == {d.isoformat() for d in days(start, end)}
    for d, total in s.results.items():
        assert total == pytest.approx(sums.get(d, 0.0), rel=1e-6, abs=1e-6)


# -- funnels ------------------------------------------------------------------------

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def expected_funnel(
    emu: Any,
    funnel: dict[str, Any],
    start: date,
    end: date,
    *,
    where: Any = None,
    on: str | None = None,
) -> dict[str, list[int]]:
    """Whole range as one bucket: enter at the first step-1 event in range, then steps in order."""
    window = funnel["length"] * _UNITS[funnel["length_unit"]]
    steps = funnel["steps"]
    by_user: dict[str, list[Ev]] = defaultdict(list)
    for e in raw_events(emu):
        if e.name in steps and (where is None or where(e)):
            by_user[e.user].append(e)
    out: dict[str, list[int]] = defaultdict(lambda: [0] * len(steps))
    for evs in by_user.values():
        entry = next((e for e in evs if e.name == steps[0] and start <= e.day <= end), None)
        if entry is None:
            continue
        reached, last = 1, entry.ts
        for step in steps[1:]:
            nxt = next(
                # Mixpanel's two-second grace period for simultaneous steps (funnels-faq.mdx)
                (e for e in evs if e.name == step and last - 2 <= e.ts <= entry.ts + window),
                None,
            )
            if nxt is None:
                break
            reached, last = reached + 1, nxt.ts
        keys = ["$overall"] + ([seg_value(entry.props, on)] if on else [])
        for key in keys:
            for i in range(reached):
                out[key][i] += 1
    return dict(out)


def test_funnel_totals_count_each_user_once(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    start, end = window
    funnel = emulator.project.funnels()[0]
    r = ws.funnel(funnel["funnel_id"], from_date=start, to_date=end)
    expected = expected_funnel(emulator, funnel, start, end)["$overall"]
    assert [s.count for s in r.steps] == expected
    assert expected[0] > 0
    assert [s.event for s in r.steps] == funnel["steps"]
    assert r.conversion_rate == pytest.approx(expected[-1] / expected[0])
    # Adding per-day cohorts would count returning users several times.
    daily = ws.funnel(funnel["funnel_id"], from_date=start, to_date=end, unit="day")
    per_day_first = sum(seg["$overall"][0].count for seg in daily.buckets.values())
    assert per_day_first >= r.steps[0].count
    assert [s.count for s in daily.steps] == expected


def test_funnel_segmented_and_filtered(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    start, end = window
    funnel = emulator.project.funnels()[0]
    seg = ws.funnel(funnel["funnel_id"], from_date=start, to_date=end, on="$browser")
    expected = expected_funnel(emulator, funnel, start, end, on="$browser")
    assert [s.count for s in seg.steps] == expected["$overall"]
    assert {k: [s.count for s in v] for k, v in seg.segments.items()} == {
        k: v for k, v in expected.items() if k != "$overall"
    }
    flt = ws.funnel(
        funnel["funnel_id"],
        from_date=start,
        to_date=end,
        where='properties["$os"] == "iOS"',
    )
    want = expected_funnel(
        emulator, funnel, start, end, where=lambda e: e.props.get("$os") == "iOS"
    )
    assert [s.count for s in flt.steps] == want["$overall"]


def test_unknown_funnel_is_not_found(ws: Workspace, window: tuple[date, date]) -> None:
    with pytest.raises(NotFoundError, match="funnel 987654") as exc:
        ws.funnel(987654, from_date=window[0], to_date=window[1])
    assert exc.value.exit_code == 4


# -- retention ------------------------------------------------------------------------


def expected_retention(
    emu: Any, start: date, end: date, born: str, ret: str, buckets: int, *, where: Any = None
) -> dict[str, tuple[int, list[int]]]:
    """Birth retention by day: born at the first-ever born event, returns by 24 h intervals."""
    first: dict[str, Ev] = {}
    returns: dict[str, list[int]] = defaultdict(list)
    for e in raw_events(emu):
        if e.name == born and e.user not in first:
            first[e.user] = e
        if e.name == ret and (where is None or where(e)):
            returns[e.user].append(e.ts)
    cohorts: dict[str, tuple[int, list[int]]] = {}
    members: dict[str, list[Ev]] = defaultdict(list)
    for _user, ev in first.items():
        if start <= ev.day <= end:
            members[ev.day.isoformat()].append(ev)
    for day, evs in members.items():
        counts = [0] * buckets
        for ev in evs:
            hit = set()
            for ts in returns[ev.user]:
                if ts == ev.ts and ret == born:
                    continue
                i = (ts - ev.ts) // 86400
                if ts >= ev.ts and i < buckets:
                    hit.add(i)
            for i in hit:
                counts[i] += 1
        cohorts[day] = (len(evs), counts)
    return cohorts


def test_retention_birth_plain_and_filtered(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    start, end = window
    r = ws.retention(
        born_event="Sign Up", event="Login", from_date=start, to_date=end, interval_count=5
    )
    assert r.cohorts
    n = len(r.cohorts[0].counts)
    expected = expected_retention(emulator, start, end, "Sign Up", "Login", n)
    got = {c.date: (c.size, list(c.counts)) for c in r.cohorts if c.size}
    assert got == {d: v for d, v in expected.items() if v[0]}
    flt = ws.retention(
        born_event="Sign Up",
        event="Login",
        from_date=start,
        to_date=end,
        interval_count=5,
        where='properties["$os"] == "iOS"',
    )
    want = expected_retention(
        emulator, start, end, "Sign Up", "Login", n, where=lambda e: e.props.get("$os") == "iOS"
    )
    assert {c.date: (c.size, list(c.counts)) for c in flt.cohorts if c.size} == {
        d: v for d, v in want.items() if v[0]
    }


def test_retention_unit_and_interval_never_sent(ws: Workspace, emulator: Any) -> None:
    before = len(emulator.requests())
    with pytest.raises(ValidationError):
        ws.retention(
            born_event="Sign Up",
            from_date="2024-01-01",
            to_date="2024-01-02",
            unit="day",
            interval=2,
        )
    assert len(emulator.requests()) == before


# -- discovery ------------------------------------------------------------------------


def test_discovery_lists_match_the_project(emulator: Any, ws: Workspace) -> None:
    names = {e.name for e in raw_events(emulator)}
    assert set(ws.events()) == names
    assert ws.events() == sorted(names, key=lambda n: (n.casefold(), n))
    assert {(f.funnel_id, f.name) for f in ws.funnels()} == {
        (f["funnel_id"], f["name"]) for f in emulator.project.funnels()
    }
    assert {(c.id, c.count) for c in ws.cohorts()} == {
        (c["id"], c["count"]) for c in emulator.project.cohorts()
    }
    assert {b.id for b in ws.bookmarks()} == {b["id"] for b in emulator.project.bookmarks()}
    props = set(ws.properties("Purchase"))
    assert "price" in props
    before = len(emulator.requests())
    ws.events()
    ws.funnels()
    assert len(emulator.requests()) == before  # cached


def test_activity_feed_matches_the_export(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    start, end = window
    user = next(e.user for e in raw_events(emulator) if start <= e.day <= end)
    r = ws.activity_feed([user], from_date=start, to_date=end)
    want = sorted(
        (e.ts, e.name) for e in raw_events(emulator) if e.user == user and start <= e.day <= end
    )
    assert sorted((e.time, e.event) for e in r.events) == want
    assert {e.distinct_id for e in r.events} == {user}


# -- JQL (legacy) -------------------------------------------------------------------------------


def test_jql_group_by_matches_the_export(
    emulator: Any, ws: Workspace, window: tuple[date, date]
) -> None:
    start, end = window
    script = """
    function main() {
      return Events({from_date: params.from, to_date: params.to})
        .filter(function(e) { return e.name == "Login"; })
        .groupBy(["properties.$browser"], mixpanel.reducer.count());
    }
    """
    r = ws.jql(script, params={"from": start.isoformat(), "to": end.isoformat()})
    got = {row["key_1"]: row["value"] for row in r.rows}
    want = Counter(
        e.props.get("$browser")
        for e in raw_events(emulator)
        if e.name == "Login" and start <= e.day <= end
    )
    assert got == dict(want)


def test_jql_script_error_is_a_query_error(ws: Workspace) -> None:
    from mixpanel_data import QueryError

    with pytest.raises(QueryError, match="UserVisiblePreconditionFailedError") as exc:
        ws.jql("function main() { return nope(); }")
    assert exc.value.status_code == 412
