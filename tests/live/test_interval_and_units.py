"""``interval`` instead of dates (/events, /events/properties), ``interval`` as bucket width
(/segmentation), and /segmentation's unit list without ``week``, against the emulator.

What the spec says (``openapi/query.openapi.yaml`` in mixpanel/docs):

- ``components.parameters.interval`` (used by /events and /events/properties): "The
  number of units to return data for ... 1 will return data for the current unit ...
  Specify either interval or from_date and to_date."
- /segmentation's ``interval``: "Optional parameter in lieu of 'unit' when 'type' is not
  'general'. Determines the number of days your results are bucketed into"; its
  ``from_date``/``to_date`` are ``required: true`` and its ``unit`` enum is minute, hour,
  day, month.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import ValidationError, Workspace
from mixpanel_data.cli.main import main


@pytest.fixture
def ws(emulator: Any) -> Iterator[Workspace]:
    with Workspace(credentials=emulator_credentials(emulator)) as w:
        yield w


def calls_to(emulator: Any, endpoint: str) -> list[Any]:
    return [
        r
        for r in emulator.wait_for_requests(lambda rs: all(r.complete for r in rs))
        if r.endpoint == endpoint
    ]


def test_event_counts_over_the_last_n_days_match_the_same_dates(
    ws: Workspace, emulator: Any
) -> None:
    today = emulator.project.today
    emulator.clear_requests()
    recent = ws.event_counts(["Login", "Purchase"], interval=5, unit="day")
    [sent] = calls_to(emulator, "events")
    assert sent.params["interval"] == "5"
    assert "from_date" not in sent.params
    assert "to_date" not in sent.params
    first = today - timedelta(days=4)
    dated = ws.event_counts(["Login", "Purchase"], from_date=first, to_date=today)
    assert recent.series == tuple((first + timedelta(days=i)).isoformat() for i in range(5))
    assert recent.values == dated.values
    assert sum(recent.values["Login"].values()) > 0
    assert (recent.from_date, recent.to_date) == (first.isoformat(), today.isoformat())
    assert recent.to_dict()["interval"] == 5
    assert "interval" not in dated.to_dict()


def test_property_counts_take_an_interval_too(ws: Workspace, emulator: Any) -> None:
    today = emulator.project.today
    recent = ws.property_counts("Purchase", "plan", interval=3, unit="day")
    dated = ws.property_counts(
        "Purchase", "plan", from_date=today - timedelta(days=2), to_date=today
    )
    assert recent.values == dated.values
    assert recent.values
    assert recent.interval == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 3, "from_date": "2024-01-01", "to_date": "2024-01-02"}, "not both"),
        ({}, "give from_date and to_date, or interval"),
        ({"from_date": "2024-01-01"}, "give from_date and to_date, or interval"),
        ({"interval": 0}, "invalid interval '0'"),
    ],
)
def test_event_counts_range_mistakes_fail_before_any_call(
    ws: Workspace, emulator: Any, kwargs: dict[str, Any], message: str
) -> None:
    emulator.clear_requests()
    with pytest.raises(ValidationError, match=message):
        ws.event_counts(["Login"], **kwargs)
    assert calls_to(emulator, "events") == []


def _unique_per_bucket(emulator: Any, event: str, first: date, last: date, width: int) -> dict:
    tz = emulator.project.tz
    users: dict[str, set[str]] = {}
    for day in emulator.project.data_dates:
        for rec in emulator.project.iter_export_day(day):
            if rec["event"] != event:
                continue
            local = datetime.fromtimestamp(rec["properties"]["time"], tz).date()
            if first <= local <= last:
                start = first + timedelta(days=(local - first).days // width * width)
                users.setdefault(start.isoformat(), set()).add(rec["properties"]["distinct_id"])
    return {k: len(v) for k, v in users.items()}


def test_segmentation_interval_buckets_by_days_for_unique_counts(
    ws: Workspace, emulator: Any
) -> None:
    last = emulator.project.today - timedelta(days=1)
    first = last - timedelta(days=8)
    emulator.clear_requests()
    result = ws.segmentation("Purchase", from_date=first, to_date=last, interval=3, type="unique")
    [sent] = calls_to(emulator, "segmentation")
    assert sent.params["interval"] == "3"
    assert "unit" not in sent.params
    assert (sent.params["from_date"], sent.params["to_date"]) == (
        first.isoformat(),
        last.isoformat(),
    )
    expected = _unique_per_bucket(emulator, "Purchase", first, last, 3)
    assert result.series == tuple((first + timedelta(days=3 * i)).isoformat() for i in range(3))
    assert result.values == {"Purchase": {d: expected.get(d, 0) for d in result.series}}
    assert sum(expected.values()) > 0
    assert result.to_dict()["interval"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unit": "week"}, "unit 'week' is not offered by Mixpanel's /segmentation"),
        ({"unit": "WEEK"}, "unit 'week' is not offered"),
        ({"interval": 7}, "only for type unique or average"),
        ({"interval": 7, "type": "unique", "unit": "day"}, "either unit or interval"),
        ({"unit": "quarter"}, "use one of: minute, hour, day, month"),
    ],
)
def test_segmentation_refuses_what_the_spec_does_not_offer(
    ws: Workspace, emulator: Any, kwargs: dict[str, Any], message: str
) -> None:
    emulator.clear_requests()
    with pytest.raises(ValidationError, match=message):
        ws.segmentation("Login", from_date="2024-01-01", to_date="2024-01-07", **kwargs)
    assert calls_to(emulator, "segmentation") == []


def test_weekly_counts_go_through_events_which_documents_week(ws: Workspace, emulator: Any) -> None:
    last = emulator.project.today - timedelta(days=1)
    first = last - timedelta(days=20)
    emulator.clear_requests()
    weekly = ws.event_counts(["Login"], from_date=first, to_date=last, unit="week")
    daily = ws.segmentation("Login", from_date=first, to_date=last, unit="day")
    assert [r.params["unit"] for r in calls_to(emulator, "events")] == ["week"]
    assert [r.params["unit"] for r in calls_to(emulator, "segmentation")] == ["day"]
    assert sum(weekly.values["Login"].values()) == daily.total
    assert len(weekly.series) in (3, 4)


def _mp(emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str) -> Any:
    monkeypatch.setenv("MP_USERNAME", emulator.username)
    monkeypatch.setenv("MP_SECRET", emulator.secret)
    monkeypatch.setenv("MP_PROJECT_ID", str(emulator.spec.project_id))
    monkeypatch.setenv("MP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MP_TIMEZONE", emulator.spec.timezone)
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_cli_interval_and_week_refusal(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    code, out, err = _mp(
        emulator, monkeypatch, capsys, "query", "event-counts", "-e", "Login", "--interval", "3"
    )
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["interval"] == 3
    assert len(body["series"]) == 3
    assert body["to_date"] == emulator.project.today.isoformat()
    code, out, err = _mp(
        emulator, monkeypatch, capsys,
        "query", "segmentation", "Login", "--from", "2024-01-01", "--to", "2024-01-07",
        "--unit", "week",
    )  # fmt: skip
    assert (code, out) == (3, "")
    assert err.count("\n") == 1
    assert err.startswith("Error: unit 'week' is not offered by Mixpanel's /segmentation")
    assert "mp query event-counts --unit week" in err
