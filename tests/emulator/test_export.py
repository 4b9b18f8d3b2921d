"""The emulated Raw Export API (contract §4), called with raw httpx over real HTTP."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from typing import Any

import httpx
import pytest

PLAIN = {"Accept-Encoding": "identity"}


def _export(emu: Any, *, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    query = {"project_id": emu.spec.project_id, **params}
    return httpx.get(
        f"{emu.base_url}/api/2.0/export",
        params=query,
        auth=(emu.username, emu.secret),
        headers=headers if headers is not None else PLAIN,
        timeout=60,
    )


def _range(emu: Any, first: int = 10, last: int = 14) -> dict[str, str]:
    days = emu.project.data_dates
    return {"from_date": str(days[first]), "to_date": str(days[last])}


@pytest.fixture(scope="module")
def unfiltered(emulator: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """Days 10-14 unfiltered: the raw body and every record parsed with the stdlib."""
    response = _export(emulator, **_range(emulator))
    assert response.status_code == 200
    body = response.content
    return body, [json.loads(line) for line in body.decode("utf-8").splitlines()]


def test_unfiltered_export_is_jsonl_with_trailing_newline_and_the_hard_cases(emulator, unfiltered):
    body, records = unfiltered
    response = _export(emulator, **_range(emulator))
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-encoding" not in response.headers
    assert body.endswith(b"\n")
    assert not body.endswith(b"\n\n")
    assert len(records) == body.count(b"\n") > 1000
    for record in records:
        assert set(record) == {"event", "properties"}
        props = record["properties"]
        assert isinstance(props["time"], int)
        assert "distinct_id" in props
        assert "$distinct_id" not in props  # export has no "$" on distinct_id (contract §4)

    # The hard cases real exports contain (issue 3), found independently here.
    with_id = [r for r in records if "$insert_id" in r["properties"]]
    assert len(with_id) < len(records)  # events without $insert_id
    keys = Counter(
        (
            r["event"],
            r["properties"]["distinct_id"],
            r["properties"]["time"],
            r["properties"]["$insert_id"],
        )
        for r in with_id
    )
    duplicates = [k for k, n in keys.items() if n > 1]
    assert duplicates  # exact duplicates of the dedup 4-tuple...
    dup_times = [
        r["properties"]["mp_processing_time_ms"]
        for r in with_id
        if (
            r["event"],
            r["properties"]["distinct_id"],
            r["properties"]["time"],
            r["properties"]["$insert_id"],
        )
        == duplicates[0]
    ]
    assert len(set(dup_times)) == len(dup_times)  # ...with a different processing time
    events_by_insert_id: dict[str, set[str]] = {}
    for r in with_id:
        events_by_insert_id.setdefault(r["properties"]["$insert_id"], set()).add(r["event"])
    assert any(len(names) > 1 for names in events_by_insert_id.values())  # shared $insert_id
    assert any(
        len({k.lower() for k in r["properties"]}) < len(r["properties"]) for r in records
    )  # keys differing only by case
    assert any(
        isinstance(v, str) and len(v) > 10_000 for r in records for v in r["properties"].values()
    )  # very long strings
    assert any(
        isinstance(v, str) and any(ord(c) > 0x2000 for c in v)
        for r in records
        for v in r["properties"].values()
    )  # unicode beyond Latin
    assert any(isinstance(r["properties"].get("price"), str) for r in records)  # numbers as strings
    seconds_of_day = {r["properties"]["time"] % 86_400 for r in records}
    assert {0, 86_399} <= seconds_of_day  # events at 00:00:00 and 23:59:59 (UTC days)


def test_the_same_call_twice_gives_identical_bytes_plain_and_gzip(emulator, unfiltered):
    body, _ = unfiltered
    assert _export(emulator, **_range(emulator)).content == body
    zipped = [
        httpx.get(
            f"{emulator.base_url}/api/2.0/export",
            params={"project_id": emulator.spec.project_id, **_range(emulator)},
            auth=(emulator.username, emulator.secret),
            headers={"Accept-Encoding": "gzip"},
        )
        for _ in range(2)
    ]
    for response in zipped:
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == body  # httpx decoded the gzip
    raw = []
    for _ in range(2):
        with httpx.stream(
            "GET",
            f"{emulator.base_url}/api/2.0/export",
            params={"project_id": emulator.spec.project_id, **_range(emulator)},
            auth=(emulator.username, emulator.secret),
            headers={"Accept-Encoding": "gzip"},
        ) as response:
            raw.append(b"".join(response.iter_raw()))
    assert raw[0] == raw[1]
    assert gzip.decompress(raw[0]) == body
    assert len(raw[0]) < len(body) / 3


def test_in_process_wsgi_transport_gives_the_same_bytes(emulator, unfiltered):
    body, _ = unfiltered
    with httpx.Client(transport=httpx.WSGITransport(app=emulator.app), base_url="http://mp") as c:
        response = c.get(
            "/api/2.0/export",
            params={"project_id": emulator.spec.project_id, **_range(emulator)},
            auth=(emulator.username, emulator.secret),
        )
    assert response.status_code == 200
    assert response.content == body


def test_small_bodies_are_not_gzipped(emulator, unfiltered):
    _, records = unfiltered
    response = _export(emulator, headers={"Accept-Encoding": "gzip"}, limit=1, **_range(emulator))
    assert "content-encoding" not in response.headers
    assert len(response.content) <= 1400 or records[0]  # one record is usually under 1400 bytes
    assert json.loads(response.content) == records[0]


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


WHERE_CASES = [
    (
        'properties["price"] > 20',
        lambda p: _numeric(p.get("price")) and p["price"] > 20,
    ),
    (
        'properties["$browser"] == "Chrome" and properties["$os"] != "Windows"',
        lambda p: p.get("$browser") == "Chrome" and p.get("$os") != "Windows",
    ),
    (
        'not defined(properties["$insert_id"])',
        lambda p: "$insert_id" not in p or p["$insert_id"] is None,
    ),
    (
        'properties["$browser"] in ["Safari", "Firefox"] or properties["quantity"] >= 3',
        lambda p: (
            p.get("$browser") in ("Safari", "Firefox")
            or (_numeric(p.get("quantity")) and p["quantity"] >= 3)
        ),
    ),
]


@pytest.mark.parametrize(("where", "expected"), WHERE_CASES, ids=[c[0] for c in WHERE_CASES])
def test_where_returns_exactly_the_matching_subset(emulator, unfiltered, where, expected):
    body, records = unfiltered
    lines = body.splitlines(keepends=True)
    want = b"".join(
        line for line, r in zip(lines, records, strict=True) if expected(r["properties"])
    )
    response = _export(emulator, where=where, **_range(emulator))
    assert response.status_code == 200
    assert response.content == want
    assert 0 < response.content.count(b"\n") < len(records)


def test_event_filter_returns_exactly_those_events(emulator, unfiltered):
    body, records = unfiltered
    lines = body.splitlines(keepends=True)
    names = ["Purchase", "Sign Up"]
    want = b"".join(line for line, r in zip(lines, records, strict=True) if r["event"] in names)
    response = _export(emulator, event=json.dumps(names), **_range(emulator))
    assert response.content == want
    assert {json.loads(x)["event"] for x in response.content.splitlines()} == set(names)


def test_event_where_and_limit_combine(emulator, unfiltered):
    body, records = unfiltered
    lines = body.splitlines(keepends=True)
    matching = [
        line
        for line, r in zip(lines, records, strict=True)
        if r["event"] == "View Item"
        and _numeric(r["properties"].get("price"))
        and r["properties"]["price"] < 50
    ]
    response = _export(
        emulator,
        event='["View Item"]',
        where='properties["price"] < 50',
        limit=7,
        **_range(emulator),
    )
    assert response.content == b"".join(matching[:7])
    assert _export(emulator, limit=100_000, **_range(emulator)).content == body


def test_time_in_ms_gives_integer_milliseconds_within_the_same_second(emulator, unfiltered):
    _, records = unfiltered
    response = _export(emulator, time_in_ms="true", limit=500, **_range(emulator))
    got = [json.loads(line) for line in response.content.splitlines()]
    assert len(got) == 500
    for before, after in zip(records[:500], got, strict=True):
        ms = after["properties"]["time"]
        assert isinstance(ms, int)
        assert ms // 1000 == before["properties"]["time"]
        assert {**after["properties"], "time": 0} == {**before["properties"], "time": 0}


def test_empty_range_gives_an_empty_body(emulator):
    first = emulator.project.data_dates[0]
    before = first - dt.timedelta(days=10)
    response = _export(emulator, from_date=str(before), to_date=str(first - dt.timedelta(days=5)))
    assert response.status_code == 200
    assert response.content == b""


def _error(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["request", "error"]
    assert body["request"].startswith("/api/2.0/export?")
    return str(body["error"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from_date": "2024-01-01"}, "'to_date' is a required parameter"),
        ({"from_date": "2024-13-01", "to_date": "2024-01-02"}, "Error in from_date: invalid date"),
        ({"from_date": "1999-12-31", "to_date": "2024-01-02"}, "bad year"),
        ({"from_date": "2024-01-05", "to_date": "2024-01-02"}, "from_date cannot be later"),
        ({"from_date": "2024-01-01", "to_date": "2024-01-02", "limit": "100001"}, "limit"),
        ({"from_date": "2024-01-01", "to_date": "2024-01-02", "limit": "ten"}, "limit"),
        ({"from_date": "2024-01-01", "to_date": "2024-01-02", "event": "Login"}, "JSON array"),
        (
            {"from_date": "2024-01-01", "to_date": "2024-01-02", "where": 'properties["x" =='},
            "where",
        ),
    ],
)
def test_bad_parameters_give_the_400_envelope(emulator, params, message):
    response = _export(emulator, **params)
    assert response.status_code == 400
    assert message in _error(response)


def test_to_date_after_today_in_the_project_timezone_is_refused(emulator):
    today = emulator.project.today_now()
    ok = _export(emulator, from_date=str(today), to_date=str(today))
    assert ok.status_code == 200
    response = _export(emulator, from_date=str(today), to_date=str(today + dt.timedelta(days=1)))
    assert response.status_code == 400
    assert _error(response) == "to_date cannot be later than today"


def test_today_moves_at_midnight_in_the_project_timezone(emulator, monkeypatch):
    """A long-running emulator's today is the clock's, as Mixpanel's is: a suite that runs
    past midnight in the project timezone may ask for the new day (its start's today was
    fixed before, and a client with the right clock got a 400)."""
    from mixpanel_data.emulator import project as project_module

    started = emulator.project.today
    tomorrow = started + dt.timedelta(days=1)
    zone = emulator.project.tz
    after_midnight = dt.datetime.combine(tomorrow, dt.time(0, 5), zone)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return after_midnight.astimezone(tz)

    monkeypatch.setattr(project_module, "datetime", Clock)
    assert emulator.project.today_now() == tomorrow
    assert emulator.project.today == started  # its data days stay those of its start
    ok = _export(emulator, from_date=str(tomorrow), to_date=str(tomorrow))
    assert ok.status_code == 200
    assert ok.content == b""  # no events yet on the new day
    late = _export(emulator, from_date=str(tomorrow), to_date=str(tomorrow + dt.timedelta(days=1)))
    assert late.status_code == 400
    assert _error(late) == "to_date cannot be later than today"


def test_event_as_repeated_keys_is_refused(emulator):
    url = httpx.URL(f"{emulator.base_url}/api/2.0/export").copy_with(
        query=(
            f"project_id={emulator.spec.project_id}&from_date=2024-01-01&to_date=2024-01-02"
            "&event=Login&event=Purchase"
        ).encode()
    )
    response = httpx.get(url, auth=(emulator.username, emulator.secret))
    assert response.status_code == 400
    assert "JSON array" in _error(response)
