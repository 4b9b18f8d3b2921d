"""JQL scripts from Mixpanel's JQL guide run in the emulator: the ``_`` global and builtins.

Expected values come from the raw export over HTTP, computed with plain Python. The
scripts are the guide's examples (docs/reports/apps/jql.mdx in mixpanel/docs), with
dates and event names changed to the emulator's project.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator

TODAY = date(2026, 3, 20)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    spec = ProjectSpec(seed=5, users=60, days=12, today=TODAY)
    with Emulator(spec=spec, cache_dir=Path(tmp_path_factory.mktemp("jql-cache"))) as e:
        yield e


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, auth=(emu.username, emu.secret), timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def dates(emu: Emulator) -> tuple[str, str]:
    today: date = emu.project.today
    return (today - timedelta(days=6)).isoformat(), (today - timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def events(emu: Emulator, client: httpx.Client, dates: tuple[str, str]) -> list[dict[str, Any]]:
    """The export's events whose project-timezone day is in the dates (JQL's days).

    Export dates are UTC days for this (post-2023) project, so a day either side is fetched.
    """
    tz = ZoneInfo(emu.spec.timezone)
    first, last = date.fromisoformat(dates[0]), date.fromisoformat(dates[1])
    response = client.get(
        "/api/2.0/export",
        params={
            "project_id": emu.spec.project_id,
            "from_date": (first - timedelta(days=1)).isoformat(),
            "to_date": (last + timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 200
    rows = [orjson.loads(line) for line in response.content.splitlines() if line.strip()]
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        p = r["properties"]
        key = (r["event"], p["distinct_id"], p["time"], p.get("$insert_id"))
        if key in seen:
            continue
        seen.add(key)
        if not first <= datetime.fromtimestamp(p["time"], tz).date() <= last:
            continue
        out.append({"name": r["event"], "user": str(p["distinct_id"]), "time": p["time"]})
    assert len(out) > 50
    return out


def run(emu: Emulator, client: httpx.Client, script: str, params: dict[str, Any]) -> Any:
    response = client.post(
        "/api/query/jql",
        params={"project_id": emu.spec.project_id},
        data={"script": script, "params": json.dumps(params)},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_guide_underscore_map_builds_event_selectors(emu, client, dates, events):
    # The guide: "pass multiple events as a list in a params object using _.map".
    script = """
    function main() {
      return Events({
        from_date: params.start_date,
        to_date: params.end_date,
        event_selectors: _.map(params.events, event => ({event: event}))
      }).groupBy(["name"], mixpanel.reducer.count());
    }
    """
    wanted = ["Purchase", "Sign Up"]
    got = run(emu, client, script, {"start_date": dates[0], "end_date": dates[1], "events": wanted})
    counts = Counter(e["name"] for e in events if e["name"] in wanted)
    assert got == [{"key": [n], "value": counts[n]} for n in sorted(counts)]
    assert sum(counts.values()) > 0


def test_more_underscore_functions_work_on_results(emu, client, dates, events):
    script = """
    function main() {
      return Events({from_date: params.from, to_date: params.to})
        .groupBy(["name"], mixpanel.reducer.count())
        .map(function (row) { return _.pick({name: row.key[0], n: row.value, x: 1}, "name", "n"); })
        .reduce(function (accs, rows) {
          return {
            names: _.sortBy(_.pluck(rows, "name"), _.identity),
            biggest: _.max(rows, function (r) { return r.n; }).name,
            total: _.reduce(rows, function (s, r) { return s + r.n; }, 0),
            uniq: _.uniq([1, 1, 2]).length,
          };
        });
    }
    """
    got = run(emu, client, script, {"from": dates[0], "to": dates[1]})
    counts = Counter(e["name"] for e in events)
    assert got == [
        {
            "names": sorted(counts),
            "biggest": max(sorted(counts), key=lambda n: counts[n]),
            "total": len(events),
            "uniq": 2,
        }
    ]


def test_mixpanel_users_script_with_underscore_no_longer_412(emu, client, dates):
    # mixpanel-utils' query_jql_events wraps scripts that call _.each / _.keys.
    script = """
    function main() {
      var out = [];
      _.each(_.keys({a: 1, b: 2}), function (k) { out.push(k); });
      return out;
    }
    """
    assert run(emu, client, script, {}) == ["a", "b"]


def test_guide_numeric_percentiles_of_events_per_user(emu, client, dates, events):
    script = """
    function main() {
      return Events({from_date: params.from, to_date: params.to})
        .groupByUser(mixpanel.reducer.count())
        .reduce(mixpanel.reducer.numeric_percentiles('value', [10, 25, 50, 75, 90]))
        .flatten();
    }
    """
    got = run(emu, client, script, {"from": dates[0], "to": dates[1]})
    per_user = sorted(Counter(e["user"] for e in events).values())
    expected = statistics.quantiles(per_user, n=100, method="inclusive")
    want = [
        {"percentile": p, "value": pytest.approx(expected[p - 1])} for p in (10, 25, 50, 75, 90)
    ]
    assert got == want


def test_guide_slice_counts_unique_users_per_key(emu, client, dates, events):
    script = """
    function main() {
      return Events({from_date: params.from, to_date: params.to})
        .groupByUser(["name"], mixpanel.reducer.null())
        .groupBy([mixpanel.slice("key", 1)], mixpanel.reducer.count());
    }
    """
    got = run(emu, client, script, {"from": dates[0], "to": dates[1]})
    users: dict[str, set[str]] = defaultdict(set)
    for e in events:
        users[e["name"]].add(e["user"])
    assert got == [{"key": [n], "value": len(users[n])} for n in sorted(users)]


def test_guide_daily_time_buckets_and_bucket_size(emu, client, dates, events):
    script = """
    function main() {
      return [
        Events({from_date: params.from, to_date: params.to})
          .groupBy([mixpanel.numeric_bucket('time', mixpanel.daily_time_buckets)],
                   mixpanel.reducer.count()),
        Events({from_date: params.from, to_date: params.to})
          .groupBy([mixpanel.numeric_bucket('time', {bucket_size: 86400 * 1000})],
                   mixpanel.reducer.count())
      ].map(function (c) { return c.toArray(); });
    }
    """
    calendar, regular = run(emu, client, script, {"from": dates[0], "to": dates[1]})
    days = Counter(
        int(datetime.fromtimestamp(e["time"], UTC).replace(hour=0, minute=0, second=0).timestamp())
        * 1000
        for e in events
    )
    want = [{"key": [k], "value": days[k]} for k in sorted(days)]
    assert calendar == want
    assert regular == want


def test_guide_numeric_bucket_with_boundaries_and_to_number(emu, client, dates):
    script = """
    function main() {
      var rows = [{n: "3"}, {n: 7}, {n: "x"}, {n: 40}, {n: 75}];
      return {
        buckets: rows.map(mixpanel.numeric_bucket(mixpanel.to_number("n"), [0, 5, 18, 30, 60])),
        numbers: rows.map(mixpanel.to_number("n")),
      };
    }
    """
    got = run(emu, client, script, {})
    assert got == [{"buckets": [0, 5, None, 30, 60], "numbers": [3, 7, None, 40, 75]}]


def test_guide_top_min_by_and_multiple_keys(emu, client, dates, events):
    script = """
    function main() {
      var byName = Events({from_date: params.from, to_date: params.to})
        .groupBy(["name"], mixpanel.reducer.count());
      var top = byName.reduce(mixpanel.reducer.top(2)).toArray()[0];
      var first = Events({from_date: params.from, to_date: params.to})
        .reduce(mixpanel.reducer.min_by("time")).toArray()[0];
      var tags = People().map(function () { return {tags: ["a", "b"], one: ["a", "b"]}; })
        .groupBy([mixpanel.multiple_keys(["tags"]), "one"], mixpanel.reducer.count());
      return {top: top, first: first.time, tags: tags.toArray()};
    }
    """
    got = run(emu, client, script, {"from": dates[0], "to": dates[1]})[0]
    counts = Counter(e["name"] for e in events)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:2]
    assert [row["value"] for row in got["top"]] == [n for _, n in ranked]
    assert got["first"] == min(e["time"] for e in events) * 1000
    people = len(emu.project.profiles())
    assert got["tags"] == [
        {"key": ["a", ["a", "b"]], "value": people},
        {"key": ["b", ["a", "b"]], "value": people},
    ]


def test_group_by_user_hands_the_previous_state_starting_undefined(emu, client, dates, events):
    # The guide's groupByUser example: a reducer (state, events) whose state starts undefined.
    script = """
    function main() {
      return Events({from_date: params.from, to_date: params.to})
        .groupByUser(function (first, events) {
          if (first === undefined) { first = events[0].time; }
          return first;
        });
    }
    """
    got = run(emu, client, script, {"from": dates[0], "to": dates[1]})
    first: dict[str, int] = {}
    for e in sorted(events, key=lambda e: e["time"]):
        first.setdefault(e["user"], e["time"] * 1000)
    assert {row["key"][0]: row["value"] for row in got} == first


# -- mixpanel-utils, a third-party client whose JQL helpers use _.each ------------------


@pytest.fixture(scope="module")
def mputils(emu: Emulator) -> Any:
    from mixpanel_utils import MixpanelUtils

    client = MixpanelUtils(
        emu.secret,
        service_account_username=emu.username,
        project_id=emu.spec.project_id,
        pool_size=1,
        max_retries=1,
    )
    client.formatted_api = f"{emu.base_url}/api"  # its https://mixpanel.com/api, on loopback
    return client


def test_mixpanel_utils_query_jql_events(emu, mputils, dates, events, client):
    rows = mputils.query_jql_events(
        dates[0], dates[1], event_selectors={"event": "Purchase"}, output_properties=["price"]
    )
    assert isinstance(rows, list)
    got = sorted((r["properties"]["distinct_id"], round(r["properties"]["time"])) for r in rows)
    expected = sorted((e["user"], e["time"]) for e in events if e["name"] == "Purchase")
    assert got == expected
    assert expected
    assert all(
        r["event"] == "Purchase" and set(r["properties"]) <= {"distinct_id", "time", "price"}
        for r in rows
    )
    sent = [r for r in emu.requests() if r.endpoint == "jql"]
    assert "_.each" in sent[-1].params["script"]


def test_mixpanel_utils_query_jql_people_with_a_selector(emu, mputils):
    rows = mputils.query_jql_people(
        user_selectors='properties["plan"] == "pro"', output_properties=["plan", "$email"]
    )
    expected = {
        str(p["$distinct_id"]): {k: p["$properties"].get(k) for k in ("plan", "$email")}
        for p in emu.project.profiles()
        if p["$properties"].get("plan") == "pro"
    }
    got = {
        r["$distinct_id"]: {k: r["$properties"].get(k) for k in ("plan", "$email")} for r in rows
    }
    assert got == expected
    assert 0 < len(expected) < len(emu.project.profiles())


def test_guide_apply_group_limits_keeps_the_top_per_group(emu, client, dates, events):
    script = """
    function main() {
      return Events({from_date: params.from, to_date: params.to})
        .groupBy(["name", "distinct_id"], mixpanel.reducer.count())
        .sortDesc('value')
        .applyGroupLimits([3, 2], 5);
    }
    """
    got = run(emu, client, script, {"from": dates[0], "to": dates[1]})
    counts = Counter((e["name"], e["user"]) for e in events)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    assert len(got) == 5
    names = list(dict.fromkeys(row["key"][0] for row in got))
    assert len(names) <= 3
    for name in names:
        rows = [row for row in got if row["key"][0] == name]
        assert len(rows) <= 2
        best = sorted((n for (ev, _u), n in counts.items() if ev == name), reverse=True)
        assert [row["value"] for row in rows] == best[: len(rows)]
    assert got[0]["value"] == ranked[0][1]
