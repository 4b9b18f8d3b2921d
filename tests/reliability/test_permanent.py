"""Errors that retrying cannot fix surface at once; windows that fail for good are listed.

Non-retryable statuses (400, 401, 402, 403, 404, 412) must cost exactly one
request (checked in the emulator's request log) and raise the typed error with
the server's message. A window that fails after its retries leaves the others
committed, is listed in ``failed_ranges`` (JSON on stdout too), exits 6, and a
re-run fetches only that window.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixpanel_data._internal.http.client import RetryPolicy
from mixpanel_data.cli.main import main
from mixpanel_data.exceptions import (
    AuthenticationError,
    NotFoundError,
    PartialFetchError,
    QueryError,
)

from .conftest import Harness, clean_run, creds_for, export_statuses, table_counter

NO_RETRY_EXPECTED = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.01)


def test_400_bad_where_is_not_retried(harness: Harness, emu: Any) -> None:
    day = emu.project.data_dates[0]
    with pytest.raises(QueryError, match="invalid 'where' expression") as info:
        harness.fetcher(retry=NO_RETRY_EXPECTED).fetch_events(
            "events", from_date=day, to_date=day, where='properties["x" =='
        )
    assert info.value.details["status_code"] == 400
    assert export_statuses(emu) == [400]
    assert harness.slept == []
    assert not harness.db.exists() or "events" not in _tables(harness.db)


def test_bad_secret_is_not_retried(harness: Harness, emu: Any) -> None:
    day = emu.project.data_dates[0]
    fetcher = harness.fetcher(credentials=creds_for(emu, secret="wrong-secret"))
    # Export says so with a plain-text 400 (contract §4), the Query API with a 401.
    with pytest.raises(AuthenticationError, match="Unable to authenticate request"):
        fetcher.fetch_events("events", from_date=day, to_date=day)
    with pytest.raises(AuthenticationError, match="Unable to authenticate request") as info:
        fetcher.api.request("GET", "query", "events/names", params={"type": "general"})
    assert info.value.details["status_code"] == 401
    assert [(r.endpoint, r.status) for r in emu.requests()] == [
        ("export", 400),
        ("events/names", 401),
    ]
    assert harness.slept == []


def test_403_other_project_is_not_retried(harness: Harness, emu: Any) -> None:
    day = emu.project.data_dates[0]
    other = creds_for(emu, project_id="999")
    with pytest.raises(AuthenticationError, match="not a member of this project"):
        harness.fetcher(credentials=other).fetch_events("events", from_date=day, to_date=day)
    assert export_statuses(emu) == [403]


def test_412_jql_script_error_is_not_retried(harness: Harness, emu: Any) -> None:
    api = harness.fetcher().api
    with pytest.raises(QueryError, match="SyntaxError") as info:
        api.request("POST", "query", "jql", data={"script": "function main({"})
    assert info.value.details["status_code"] == 412
    assert [r.status for r in emu.requests() if r.endpoint == "jql"] == [412]
    assert api.retries == 0


def _answering(status: int, calls: list[str]) -> Callable[..., Iterable[bytes]]:
    """A WSGI app answering every call with `status` and Mixpanel's error envelope.

    The emulator never sends 402 (plan without API access) or a 404 on export,
    so this stand-in does; it counts the calls it gets.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        body = json.dumps({"request": environ["PATH_INFO"], "error": f"refused with {status}"})
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [body.encode()]

    return app


@pytest.mark.parametrize(("status", "error"), [(402, QueryError), (404, NotFoundError)])
def test_402_and_404_are_not_retried(
    harness: Harness, emu: Any, status: int, error: type[Exception]
) -> None:
    calls: list[str] = []
    transport = httpx.WSGITransport(app=_answering(status, calls))
    day = emu.project.data_dates[0]
    with pytest.raises(error, match=f"refused with {status}"):
        harness.fetcher(transport=transport).fetch_events("events", from_date=day, to_date=day)
    assert calls == ["/api/2.0/export"]
    assert harness.slept == []


def _tables(db: Path) -> list[str]:
    from mixpanel_data._internal.storage.engine import StorageEngine

    return [t.name for t in StorageEngine(db, read_only=True).list_tables()]


def _export_days(emu: Any) -> list[str]:
    return [r.params["from_date"] for r in emu.requests() if r.endpoint == "export"]


def test_partial_failure_keeps_the_rest_and_a_rerun_fetches_only_the_gap(
    harness: Harness, emu: Any, tmp_path: Path
) -> None:
    days: list[date] = emu.project.data_dates[10:13]
    # workers=1 asks for windows in date order: the first window gets all 4 failures.
    emu.faults.add("500", endpoint="export", count=4)
    with pytest.raises(PartialFetchError, match="1 of 3 windows failed after retries") as info:
        harness.fetcher().fetch_events("events", from_date=days[0], to_date=days[-1], workers=1)
    failed = info.value.failed_ranges
    assert [(f["from_date"], f["to_date"]) for f in failed] == [(str(days[0]), str(days[0]))]
    assert "server error 500" in failed[0]["error"]
    result = info.value.result
    assert result.failed_ranges == tuple(failed)
    assert result.to_dict()["failed_ranges"] == failed
    assert (result.windows_done, result.windows_total) == (2, 3)
    assert table_counter(harness.db) == clean_run(emu, tmp_path, days[1], days[-1])

    emu.clear_requests()
    again = harness.fetcher().fetch_events("events", from_date=days[0], to_date=days[-1], workers=1)
    assert _export_days(emu) == [str(days[0])]
    assert again.windows_resumed == 2
    assert again.failed_ranges == ()
    assert table_counter(harness.db) == clean_run(emu, tmp_path, days[0], days[-1])


@pytest.fixture
def cli_env(emu: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    db = tmp_path / "cli.duckdb"
    for name, value in {
        "MP_USERNAME": emu.username,
        "MP_SECRET": emu.secret,
        "MP_PROJECT_ID": str(emu.spec.project_id),
        "MP_BASE_URL": emu.base_url,
        "MP_TIMEZONE": "UTC",  # one export day per day, as the suite's credentials
        "MP_DB_PATH": str(db),
    }.items():
        monkeypatch.setenv(name, value)
    return db


def _mp(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_partial_failure_exits_6_with_json_and_reruns_only_the_gap(
    cli_env: Path, emu: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days: list[date] = emu.project.data_dates[20:23]
    argv = ["fetch", "events", "--from", str(days[0]), "--to", str(days[-1]), "--workers", "1"]
    # Retry-After: 0 keeps the default policy's 5 attempts instant; all land on window 1.
    emu.faults.add("429", endpoint="export", count=5, retry_after=0)
    code, out, err = _mp(capsys, *argv, "-f", "json")
    assert code == 6
    body = json.loads(out)
    assert [(r["from_date"], r["to_date"]) for r in body["failed_ranges"]] == [
        (str(days[0]), str(days[0]))
    ]
    assert "rate limit" in body["failed_ranges"][0]["error"]
    assert body["windows"] == {"done": 2, "total": 3}
    assert err.strip().splitlines()[-1].startswith("Error: 1 of 3 windows failed after retries")
    assert export_statuses(emu) == [429] * 5 + [200, 200]

    emu.clear_requests()
    code, out, _err = _mp(capsys, *argv)
    assert code == 0
    assert json.loads(out)["windows_resumed"] == 2
    assert _export_days(emu) == [str(days[0])]
    assert table_counter(cli_env) == clean_run(emu, tmp_path, days[0], days[-1])
