"""`mp inspect` (discovery) and `mp query` against the emulator, in every output format."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import Workspace
from mixpanel_data.cli.main import main


@pytest.fixture
def mp(emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `mp ARGS` in-process against the emulator; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("MP_USERNAME", emulator.username)
    monkeypatch.setenv("MP_SECRET", emulator.secret)
    monkeypatch.setenv("MP_PROJECT_ID", str(emulator.spec.project_id))
    monkeypatch.setenv("MP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MP_TIMEZONE", emulator.spec.timezone)

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    return run


@pytest.fixture
def ws(emulator: Any) -> Any:
    with Workspace(credentials=emulator_credentials(emulator)) as w:
        yield w


@pytest.fixture
def dates(emulator: Any) -> list[str]:
    end = emulator.project.today - timedelta(days=1)
    return ["--from", (end - timedelta(days=6)).isoformat(), "--to", end.isoformat()]


def test_inspect_events_in_every_format(mp: Any, ws: Any) -> None:
    names = ws.events()
    code, out, err = mp("inspect", "events")
    assert (code, json.loads(out), err) == (0, names, "")
    # jsonl: the csv/table rows, one object per line
    jsonl = mp("inspect", "events", "-f", "jsonl")[1].splitlines()
    assert [json.loads(line) for line in jsonl] == [{"event": n} for n in names]
    assert mp("inspect", "events", "-f", "plain")[1].splitlines() == names
    rows = list(csv.DictReader(io.StringIO(mp("inspect", "events", "-f", "csv")[1])))
    assert [r["event"] for r in rows] == names
    table = mp("inspect", "events", "-f", "table")[1]
    assert all(n in table for n in names)
    assert mp("inspect", "events", "--jq", "length")[1].strip() == str(len(names))


def test_inspect_schema_and_saved_objects(mp: Any, ws: Any, emulator: Any) -> None:
    code, out, _ = mp("inspect", "properties", "-e", "Purchase")
    assert (code, json.loads(out)) == (0, ws.properties("Purchase"))
    code, out, _ = mp("inspect", "values", "-p", "$browser", "-e", "Login", "-l", "3")
    assert (code, json.loads(out)) == (0, ws.property_values("$browser", event="Login", limit=3))
    code, out, _ = mp("inspect", "funnels", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(int(r["funnel_id"]), r["name"]) for r in rows} == {
        (f["funnel_id"], f["name"]) for f in emulator.project.funnels()
    }
    code, out, _ = mp("inspect", "cohorts", "-f", "jsonl")
    assert {json.loads(line)["id"] for line in out.splitlines()} == {
        c["id"] for c in emulator.project.cohorts()
    }
    code, out, _ = mp("inspect", "bookmarks", "-t", "funnels")
    assert {b["id"] for b in json.loads(out)} == {
        b["id"] for b in emulator.project.bookmarks() if b["type"] == "funnels"
    }
    code, out, _ = mp("inspect", "top-events", "-t", "unique", "-l", "3", "-f", "table")
    assert code == 0
    assert "percent_change" in out


def test_query_segmentation_in_every_format(mp: Any, ws: Any, dates: list[str]) -> None:
    result = ws.segmentation("Login", from_date=dates[1], to_date=dates[3], on="$browser")
    args = ["query", "segmentation", "Login", *dates, "--on", "$browser"]
    code, out, err = mp(*args)
    assert (code, err) == (0, "")
    assert json.loads(out) == json.loads(json.dumps(result.to_dict()))
    rows = list(csv.DictReader(io.StringIO(mp(*args, "-f", "csv")[1])))
    assert len(rows) == len(result.rows)
    assert sum(int(r["value"]) for r in rows) == result.total
    plain = mp(*args, "-f", "plain")[1].splitlines()
    assert len(plain) == len(result.rows)
    # jsonl: the same records as csv, one per line, and --jq runs on each of them
    jsonl = [json.loads(line) for line in mp(*args, "-f", "jsonl")[1].splitlines()]
    assert jsonl == json.loads(json.dumps(result.rows))
    assert [str(r["value"]) for r in jsonl] == [r["value"] for r in rows]
    code, out, err = mp(*args, "-f", "jsonl", "--jq", ".value")
    assert (code, err) == (0, "")
    assert [float(v) for v in out.splitlines()] == [float(r["value"]) for r in result.rows]
    table = mp(*args, "-f", "table")[1]
    assert "segment" in table
    assert dates[1] in table


def test_query_reports_match_the_library(mp: Any, ws: Any, emulator: Any, dates: list[str]) -> None:
    start, end = dates[1], dates[3]
    funnel_id = emulator.project.funnels()[0]["funnel_id"]
    cases: list[tuple[list[str], Any]] = [
        (
            ["funnel", str(funnel_id), *dates],
            ws.funnel(funnel_id, from_date=start, to_date=end),
        ),
        (
            [
                "retention",
                "--born-event",
                "Sign Up",
                "-e",
                "Login",
                *dates,
                "--interval-count",
                "3",
            ],
            ws.retention(
                born_event="Sign Up", event="Login", from_date=start, to_date=end, interval_count=3
            ),
        ),
        (
            ["frequency", "-e", "Login", *dates],
            ws.frequency(from_date=start, to_date=end, event="Login"),
        ),
        (
            ["event-counts", "-e", "Login", "-e", "Purchase", *dates, "-t", "unique"],
            ws.event_counts(["Login", "Purchase"], from_date=start, to_date=end, type="unique"),
        ),
        (
            ["property-counts", "-e", "Login", "-p", "$os", *dates],
            ws.property_counts("Login", "$os", from_date=start, to_date=end),
        ),
        (
            ["segmentation-sum", "Purchase", *dates, "--on", "price"],
            ws.segmentation_sum("Purchase", from_date=start, to_date=end, on="price"),
        ),
        (
            ["segmentation-average", "Purchase", *dates, "--on", "price"],
            ws.segmentation_average("Purchase", from_date=start, to_date=end, on="price"),
        ),
        (
            ["segmentation-numeric", "Purchase", *dates, "--on", "price"],
            ws.segmentation_numeric("Purchase", from_date=start, to_date=end, on="price"),
        ),
    ]
    for args, expected in cases:
        code, out, err = mp("query", *args)
        assert (code, err) == (0, ""), args
        got, want = json.loads(out), json.loads(json.dumps(expected.to_dict()))
        got.pop("computed_at", None)  # sum answers carry the time they were computed
        want.pop("computed_at", None)
        assert got == want, args
        code, out, _ = mp("query", *args, "-f", "csv")
        assert len(list(csv.DictReader(io.StringIO(out)))) == len(expected.rows), args


def test_query_activity_feed_and_saved_reports(mp: Any, ws: Any, emulator: Any) -> None:
    user = emulator.project.profiles()[0]["$distinct_id"]
    code, out, _ = mp("query", "activity-feed", user, "-f", "jsonl")
    assert code == 0
    # jsonl: one event per line (the table's rows), not one nested document
    events = [json.loads(line) for line in out.splitlines()]
    assert events
    assert {e["distinct_id"] for e in events} == {user}
    code, out, _ = mp("query", "activity-feed", user)
    assert json.loads(out)["distinct_ids"] == [user]
    assert len(json.loads(out)["events"]) == len(events)
    by_type = {b["type"]: b["id"] for b in emulator.project.bookmarks()}
    code, out, err = mp("query", "saved-report", str(by_type["insights"]), "-f", "table")
    assert (code, err) == (0, "")
    assert "metric" in out
    code, out, err = mp("query", "flows", str(by_type["flows"]))
    assert (code, err) == (0, "")
    assert json.loads(out)["nodes"]


@pytest.mark.parametrize(
    ("args", "with_dates", "exit_code", "needle"),
    [
        (["segmentation", "Login", "--unit", "fortnight"], True, 3, "invalid unit"),
        (
            ["segmentation", "Login", "--from", "2024-02-30", "--to", "2024-03-01"],
            False,
            3,
            "from_date",
        ),
        (
            ["segmentation", "Login", "--from", "2024-03-05", "--to", "2024-03-01"],
            False,
            3,
            "after",
        ),
        (["funnel", "987654"], True, 4, "funnel 987654"),
        (
            ["retention", "--born-event", "a", "--unit", "day", "--interval", "2"],
            True,
            3,
            "not both",
        ),
    ],
)
def test_bad_arguments_give_one_clear_line(
    mp: Any, dates: list[str], args: list[str], with_dates: bool, exit_code: int, needle: str
) -> None:
    code, out, err = mp("query", *args, *(dates if with_dates else []))
    assert code == exit_code
    assert out == ""
    assert needle in err
    assert err.startswith("Error: ")
    assert len(err.strip().splitlines()) == 1


def test_usage_errors_exit_3(mp: Any, dates: list[str]) -> None:
    code, out, err = mp("query", "funnel", "abc", *dates)
    assert (code, out) == (3, "")
    assert "valid integer" in err
    assert "Traceback" not in err
    # --from/--to may be omitted (the last 30 days), but a bad --to is still a usage error
    code, _, err = mp("query", "segmentation", "Login", "--to", "2024-13-01")
    assert code == 3
    assert "invalid --to date '2024-13-01'" in err
