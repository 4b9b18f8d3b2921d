"""Project-secret accounts (legacy Basic ``<secret>:``): storage, env, CLI and redaction.

Runs `mp` as a subprocess against an emulator over loopback; the emulator accepts a
project secret as the Basic user name with an empty password (contract §2).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from wsgiref.simple_server import make_server

import httpx
import pytest
from tests.reliability.body_server import _Quiet, _Server

from mixpanel_data import Workspace
from mixpanel_data._internal.config import ConfigManager, Credentials
from mixpanel_data._internal.http.client import MixpanelAPIClient
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator
from mixpanel_data.exceptions import ConfigError, MixpanelDataError

PROJECT_SECRET = "Pr0j-s3cr@t%2F/legacy+key"


def forms(secret: str) -> list[str]:
    """Every shape a project secret could leak in, the Basic token ``secret:`` included."""
    token = base64.b64encode(f"{secret}:".encode()).decode()
    return [secret, quote(secret, safe=""), quote_plus(secret), token]


def assert_clean(texts: Iterable[str], secret: str = PROJECT_SECRET) -> None:
    for text in texts:
        for form in forms(secret):
            assert form not in text, f"secret leaked as {form!r}"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    spec = ProjectSpec(seed=3, users=60, days=6)
    cache = tmp_path_factory.mktemp("ps-cache")
    with Emulator(spec=spec, cache_dir=cache, project_secret=PROJECT_SECRET, threads=8) as e:
        yield e


def mp(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixpanel_data", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_add_list_show_test_and_query_with_a_project_secret(emu: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "config.toml"
    env = {"MP_CONFIG_PATH": str(config), "MP_RATE_LIMIT_QUERY": "5c"}
    pid = str(emu.spec.project_id)
    added = mp(
        "auth", "add", "legacy", "--project-secret-stdin", "-p", pid, "--base-url", emu.base_url,
        env=env, stdin=PROJECT_SECRET + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    entry = tomllib.loads(config.read_text())["accounts"]["legacy"]
    assert entry == {
        "kind": "project_secret",
        "secret": PROJECT_SECRET,
        "project_id": pid,
        "region": "us",
        "base_url": emu.base_url,
    }
    creds = ConfigManager(config).get_account("legacy")
    assert (creds.kind, creds.username, creds.basic_auth) == (
        "project_secret",
        "",
        (PROJECT_SECRET, ""),
    )

    listed = mp("auth", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["kind"], row["username"]) == ("legacy", "project_secret", "")
    shown = mp("auth", "show", "legacy", env=env)
    assert json.loads(shown.stdout)["kind"] == "project_secret"
    assert json.loads(shown.stdout)["secret"] == "********ey"
    tested = mp("auth", "test", "legacy", env=env)
    assert tested.returncode == 0, tested.stderr
    assert json.loads(tested.stdout) == {
        "ok": True,
        "account": "legacy",
        "kind": "project_secret",
        "project_id": pid,
        "region": "us",
        "workspace_id": None,
    }

    end = emu.project.today - timedelta(days=1)
    first = end - timedelta(days=3)
    emu.clear_requests()
    counted = mp(
        "-v", "query", "event-counts", "-e", "Login", "-e", "Purchase",
        "--from", first.isoformat(), "--to", end.isoformat(), env=env,
    )  # fmt: skip
    assert counted.returncode == 0, counted.stderr
    service_account = Credentials(
        username=emu.username, secret=emu.secret, project_id=pid, base_url=emu.base_url
    )
    with Workspace(credentials=service_account) as ws:
        reference = ws.event_counts(["Login", "Purchase"], from_date=first, to_date=end)
    assert json.loads(counted.stdout)["values"] == reference.values
    assert sum(reference.values["Login"].values()) > 0
    legacy_calls = [r for r in emu.requests() if r.endpoint == "events"]
    assert legacy_calls
    assert all(r.auth_ok for r in legacy_calls)

    wrong = mp(
        "query", "event-counts", "-e", "Login", "--from", first.isoformat(),
        "--to", end.isoformat(),
        env={
            **env,
            "MP_CONFIG_PATH": str(tmp_path / "none.toml"),
            "MP_PROJECT_SECRET": PROJECT_SECRET + "x",
            "MP_PROJECT_ID": pid,
            "MP_BASE_URL": emu.base_url,
        },
    )  # fmt: skip
    assert wrong.returncode == 2
    assert wrong.stderr.count("\n") == 1
    assert "Mixpanel refused the credentials (401" in wrong.stderr
    outputs = [p.stdout + p.stderr for p in (added, listed, shown, tested, counted, wrong)]
    assert_clean(outputs)
    assert_clean([wrong.stdout + wrong.stderr], secret=PROJECT_SECRET + "x")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("--project-secret-stdin", "-u", "sa.x"),
            "abc",
            "--project-secret-stdin takes no --username",
        ),
        (("--project-secret-stdin", "--secret-stdin"), "abc", "takes no --username or --secret"),
        (
            ("--project-secret-stdin",),
            "\n",
            "secret is empty; provide it at the prompt or via --project-secret-stdin",
        ),
        ((), "abc", "missing --username"),
        (("--project-secret-stdin", "--secret", PROJECT_SECRET), "", "--secret on the command"),
        (("--project-secret-stdin",), "ab:cd\n", "a project secret cannot contain ':'"),
    ],
)
def test_bad_project_secret_additions_are_one_line_exit_3(
    tmp_path: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    config = tmp_path / "config.toml"
    r = mp(
        "auth", "add", "legacy", "-p", "12", *args, env={"MP_CONFIG_PATH": str(config)}, stdin=stdin
    )
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not config.exists()


def test_environment_precedence_service_account_first() -> None:
    legacy = {"MP_PROJECT_SECRET": PROJECT_SECRET, "MP_PROJECT_ID": "9", "MP_WORKSPACE_ID": "44"}
    creds = ConfigManager(Path("/nonexistent/config.toml"), environ=legacy).resolve()
    assert (creds.kind, creds.username, creds.source, creds.workspace_id) == (
        "project_secret",
        "",
        "env",
        "44",
    )
    both = {**legacy, "MP_USERNAME": "sa.y", "MP_SECRET": "sa-secret"}
    creds = ConfigManager(Path("/nonexistent/config.toml"), environ=both).resolve()
    assert (creds.kind, creds.username, creds.basic_auth) == (
        "service_account",
        "sa.y",
        ("sa.y", "sa-secret"),
    )
    with pytest.raises(ConfigError, match="no Mixpanel credentials found"):
        ConfigManager(
            Path("/nonexistent/config.toml"), environ={"MP_PROJECT_SECRET": PROJECT_SECRET}
        ).resolve()


def _echo_server() -> tuple[Any, str]:
    """A hostile proxy: its 400 body echoes the Authorization header, decoded too."""

    def app(environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        decoded = base64.b64decode(auth.split(" ", 1)[-1]).decode() if auth else ""
        body = f'{{"error": "bad request {auth} {decoded} {environ.get("QUERY_STRING")}"}}'
        start("400 Bad Request", [("Content-Type", "application/json")])
        return [body.encode()]

    httpd = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}"


def test_an_error_body_echoing_the_project_secret_token_is_redacted() -> None:
    httpd, url = _echo_server()
    creds = Credentials(
        username="ignored",
        secret=PROJECT_SECRET,
        project_id="77",
        base_url=url,
        kind="project_secret",
    )
    try:
        with MixpanelAPIClient(creds) as api:
            with pytest.raises(MixpanelDataError) as info:
                api.request("GET", "query", "events/names", params={"type": "general"})
            texts = [
                str(info.value),
                repr(info.value),
                str(info.value.to_dict()),
                repr(api),
                repr(creds),
                str(creds),
                str(creds.to_dict()),
            ]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert creds.username == ""
    assert "bad request Basic ***" in str(info.value)
    assert_clean(texts)


def refusing_me(emu: Emulator, refused: list[str]) -> Any:
    """The emulator's app, answering ``/api/app/me`` with 401 for a project secret as
    Mixpanel does (a service-account call); each refusal is noted in `refused`."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        auth = environ.get("HTTP_AUTHORIZATION", "").split(" ", 1)[-1]
        if environ["PATH_INFO"] == "/api/app/me" and base64.b64decode(auth).endswith(b":"):
            refused.append(environ["PATH_INFO"])
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"status": "error", "error": "Unable to authenticate request"}']
        return emu.app(environ, start_response)

    return app


def test_fetch_with_a_project_secret_survives_me_refusing_it(emu: Emulator, tmp_path: Path) -> None:
    """``/api/app/me`` is a service-account call: a 401 there must not stop a fetch."""
    refused: list[str] = []
    me_refuses_project_secrets = refusing_me(emu, refused)
    pid = str(emu.spec.project_id)
    day = emu.project.data_dates[-2]
    legacy = Credentials(
        username="",
        secret=PROJECT_SECRET,
        project_id=pid,
        base_url="http://mp",
        kind="project_secret",
    )
    transport = httpx.WSGITransport(app=me_refuses_project_secrets)
    with Workspace(credentials=legacy, path=tmp_path / "ps.duckdb", transport=transport) as ws:
        got = ws.fetch_events(from_date=day, to_date=day)
    # The timezone stays unknown, so the day is a UTC day: as with the timezone UTC.
    service_account = Credentials(
        username=emu.username,
        secret=emu.secret,
        project_id=pid,
        base_url=emu.base_url,
        timezone="UTC",
    )
    with Workspace(credentials=service_account, path=tmp_path / "sa.duckdb") as ws:
        want = ws.fetch_events(from_date=day, to_date=day)
    assert refused == ["/api/app/me"]
    assert got.table_rows == want.table_rows
    assert got.table_rows > 0


def test_update_without_a_timezone_ends_at_the_earliest_today(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a timezone (a project secret: no ``/api/app/me``), `--update` ends on the
    earliest today on Earth: the latest (Kiritimati, UTC+14) was a day past the
    project's today for most hours, and Mixpanel refuses those (contract §3.4)."""
    from datetime import UTC, date, datetime

    from mixpanel_data._internal.services.fetch import service, windows

    today = date(2026, 11, 20)
    spec = ProjectSpec(seed=3, users=40, days=5, today=today)  # Los Angeles
    # 12:00 UTC: 04:00 in Los Angeles and at UTC-12 still `today`, at UTC+14 the next day.
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert windows.project_today(None, now=noon) == today + timedelta(days=1)
    assert windows.project_today(None, now=noon, earliest=True) == today

    def pinned(tz: str | None, *, now: Any = None, earliest: bool = False) -> date:
        return windows.project_today(tz, now=noon, earliest=earliest)

    monkeypatch.setattr(service, "project_today", pinned)
    with Emulator(
        spec=spec, cache_dir=tmp_path / "cache", project_secret=PROJECT_SECRET, threads=4
    ) as emu:
        creds = Credentials(
            username="",
            secret=PROJECT_SECRET,
            project_id=str(spec.project_id),
            base_url="http://mp",
            kind="project_secret",
        )
        refused: list[str] = []
        transport = httpx.WSGITransport(app=refusing_me(emu, refused))
        with Workspace(credentials=creds, path=tmp_path / "ps.duckdb", transport=transport) as ws:
            first = ws.fetch_events(
                from_date=today - timedelta(days=3), to_date=today - timedelta(days=2)
            )
            updated = ws.update_events(lookback_days=1)
            rows = int(ws.sql("SELECT count(*) AS n FROM events")["n"][0])
    assert refused == ["/api/app/me"] * 2  # once a fetch: the timezone stays unknown
    assert first.table_rows > 0
    assert (updated.from_date, updated.to_date) == (today - timedelta(days=3), today)
    assert updated.table_rows > first.table_rows
    assert rows == updated.table_rows
