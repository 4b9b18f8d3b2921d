"""JQL scripts run for real over the emulator's events; results vs the raw export."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest


def jql(query, script, params=None):
    data = {"script": script}
    if params is not None:
        data["params"] = json.dumps(params)
    return query("jql", method="POST", **data)


def test_group_by_name_counts_events(query, raw, window):
    first, last = window
    response = jql(
        query,
        "function main() {\n"
        "  return Events({from_date: params.from, to_date: params.to})\n"
        "    .groupBy(['name'], mixpanel.reducer.count());\n"
        "}",
        {"from": first.isoformat(), "to": last.isoformat()},
    )
    assert response.status_code == 200, response.text
    counts = Counter(r.name for r in raw if first <= r.day <= last)
    assert response.json() == [{"key": [n], "value": counts[n]} for n in sorted(counts)]


def test_selectors_filter_map_and_group_by_user(query, raw, window):
    first, last = window
    script = """
    function main() {
      return Events({
        from_date: params.from_date,
        to_date: params.to_date,
        event_selectors: [{event: "Purchase", selector: 'properties["quantity"] >= 2'}]
      })
      .filter(function (e) { return typeof e.properties.price === "number"; })
      .groupByUser(mixpanel.reducer.sum("properties.price"))
      .map(function (row) { return {user: row.key[0], spent: row.value}; });
    }
    """
    response = jql(query, script, {"from_date": first.isoformat(), "to_date": last.isoformat()})
    assert response.status_code == 200, response.text
    spent: dict[str, float] = defaultdict(float)
    for r in raw:
        p, q = r.props.get("price"), r.props.get("quantity")
        in_range = r.name == "Purchase" and first <= r.day <= last
        if in_range and isinstance(q, int) and q >= 2 and isinstance(p, float | int):
            spent[r.user] += p
    got = {row["user"]: row["spent"] for row in response.json()}
    assert got == {u: pytest.approx(v) for u, v in spent.items()}
    assert len(got) >= 1


def test_reduce_with_several_reducers_and_people(query, raw, window, emulator):
    first = window[0]
    script = """
    function main() {
      var day = Events({from_date: params.day, to_date: params.day})
        .reduce([mixpanel.reducer.count(),
                 mixpanel.reducer.numeric_summary("properties.quantity")]);
      var pros = People().filter(function (u) { return u.properties.plan === "pro"; })
        .reduce(mixpanel.reducer.count());
      return [day.toArray()[0], pros.toArray()[0]];
    }
    """
    response = jql(query, script, {"day": first.isoformat()})
    assert response.status_code == 200, response.text
    (count, summary), pros = response.json()
    events = [r for r in raw if r.day == first]
    quantities = [
        r.props["quantity"]
        for r in events
        if isinstance(r.props.get("quantity"), int) and not isinstance(r.props["quantity"], bool)
    ]
    assert count == len(events)
    assert summary["count"] == len(quantities)
    assert summary["sum"] == sum(quantities)
    assert pros == sum(
        1 for p in emulator.project.profiles() if p["$properties"].get("plan") == "pro"
    )


def test_script_error_is_412_uncaught_exception(query, window):
    first = window[0].isoformat()
    response = jql(
        query,
        "function main() {\n"
        "  return Events({from_date: params.d, to_date: params.d})\n"
        "    .map(function (e) { return e.properties.no_such_thing.x; });\n"
        "}",
        {"d": first},
    )
    assert response.status_code == 412
    body = response.json()
    assert list(body) == ["request", "error"]
    assert body["error"].startswith(
        "UserVisiblePreconditionFailedError: Uncaught exception TypeError:"
    )
    assert "Stack trace:" in body["error"]
    assert body["request"].startswith("/api/query/jql?")


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        ("function main( {", "SyntaxError"),
        ("var x = 1;", "ReferenceError: main is not defined"),
        ("function main() { return Events({}); }", "Events() needs from_date and to_date"),
        (
            "function main() { return Events({from_date: '1999-01-01', to_date: '2020-01-01'}); }",
            "bad year",
        ),
        ("function main() { throw new Error('custom failure'); }", "Error: custom failure"),
    ],
)
def test_more_script_errors_are_412(query, script, fragment):
    response = jql(query, script)
    assert response.status_code == 412
    assert fragment in response.json()["error"]


def test_runaway_script_is_stopped(query, monkeypatch):
    from mixpanel_data.emulator.reports import jql as runtime

    monkeypatch.setattr(runtime, "TIME_LIMIT_SECONDS", 0.5)
    response = jql(query, "function main() { while (true) {} }")
    assert response.status_code == 412
    assert "time limit" in response.json()["error"]


def test_missing_script_and_bad_params_are_400(query):
    assert query("jql", method="POST").status_code == 400
    response = query("jql", method="POST", script="function main(){return [1]}", params="{nope")
    assert response.status_code == 400
    assert "Error in params" in response.json()["error"]
