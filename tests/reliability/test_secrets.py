"""Secrets never leak: the fault suite's commands run with `mp -v`, and every byte of
stdout, stderr and the database (and its WAL) is searched for the secret in each form
it could take (raw, URL-encoded, inside the Basic auth token). Plus config file modes."""

from __future__ import annotations

import base64
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from wsgiref.simple_server import make_server

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mixpanel_data._internal.config import Credentials
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator
from mixpanel_data.exceptions import MixpanelDataError
from mixpanel_data.workspace import Workspace

from .body_server import _Quiet, _Server
from .mp_proc import MP, fetch_argv, mp_env, run_mp

SECRET = "Zq9:s3cr@t%2F/pw+word"
USER = "svc.leak-check"


def forms(secret: str, user: str = USER) -> list[bytes]:
    """Every shape the secret could leak in."""
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return [s.encode() for s in {secret, quote(secret, safe=""), quote_plus(secret), basic}]


def assert_clean(blobs: Iterable[bytes | str], secret: str = SECRET) -> None:
    for blob in blobs:
        data = blob.encode() if isinstance(blob, str) else blob
        for form in forms(secret):
            assert form not in data, f"secret leaked as {form!r}"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with Emulator(
        spec=ProjectSpec(seed=5, users=40, days=4), username=USER, secret=SECRET, threads=16
    ) as emu:
        yield emu


def _outputs(procs: Iterable[Any]) -> list[str]:
    return [text for p in procs for text in (p.stdout, p.stderr)]


def test_fault_suite_commands_never_show_the_secret(server: Any, tmp_path: Path) -> None:
    db = tmp_path / "leak.duckdb"
    env = mp_env(server, db)
    days = server.project.data_dates
    server.faults.clear()
    for kind in ("500", "502", "429", "reset", "terminated_early", "malformed_line"):
        server.faults.add(kind, endpoint="export", count=1)
    procs = [run_mp([MP, "-v", *fetch_argv(days)[1:]], env)]
    server.faults.clear()
    procs += [
        run_mp([MP, "-v", "sql", "SELECT * FROM _mp_tables"], env),
        run_mp([MP, "-v", "auth", "show"], env),
        run_mp(
            [
                MP,
                "-v",
                "query",
                "segmentation",
                "Login",
                "--from",
                str(days[0]),
                "--to",
                str(days[-1]),
            ],
            env,
        ),
        # A wrong secret: it is the one that must not show.
        run_mp(
            [MP, "-v", *fetch_argv(days, table="denied")[1:]], {**env, "MP_SECRET": SECRET + "x"}
        ),
    ]
    codes = [p.returncode for p in procs]
    assert codes[0] == 0, procs[0].stderr
    assert "HTTP Request" in procs[0].stderr  # -v really logged every request
    assert codes[1] == 0
    assert codes[4] == 2  # authentication
    assert "Traceback" in procs[4].stderr  # -v really printed the chained details
    assert_clean(_outputs(procs))
    assert_clean(_outputs(procs[4:]), secret=SECRET + "x")
    assert_clean([db.read_bytes()] + [p.read_bytes() for p in db.parent.glob("leak.duckdb*")])


def _echo_server(status: str) -> tuple[Any, str]:
    """A hostile proxy: its error body echoes our Authorization header and query string."""

    def app(environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        decoded = base64.b64decode(auth.split(" ", 1)[-1]).decode() if auth else ""
        body = f'{{"error": "bad request {auth} {decoded} {environ.get("QUERY_STRING")}"}}'
        start(status, [("Content-Type", "application/json")])
        return [body.encode()]

    httpd = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}"


@pytest.mark.parametrize("status", ["400 Bad Request", "500 Internal Server Error"])
def test_error_bodies_echoing_credentials_are_redacted(tmp_path: Path, status: str) -> None:
    httpd, url = _echo_server(status)
    try:
        env = mp_env_for(url, tmp_path / "e.duckdb")
        argv = [MP, "-v", "fetch", "events", "--from", "2024-01-01", "--to", "2024-01-01"]
        # The CLI (with its real, default retries) only for the 400, which is not retried.
        proc = run_mp(argv, env) if status.startswith("400") else None
        creds = Credentials(
            username=USER, secret=SecretStr(SECRET), project_id="77", base_url=url, timezone="UTC"
        )
        with Workspace(credentials=creds, path=tmp_path / "lib.duckdb") as ws:
            ws.api.retry = type(ws.api.retry)(max_attempts=1, base_delay=0.0, max_delay=0.0)
            with pytest.raises(MixpanelDataError) as info:
                ws.fetch_events("t", from_date="2024-01-01", to_date="2024-01-01")
            texts = [
                str(info.value),
                repr(info.value),
                str(info.value.to_dict()),
                repr(ws),
                repr(ws.api),
                repr(creds),
                str(creds),
            ]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "bad request" in str(info.value)  # the server's message is shown, redacted
    assert "***" in str(info.value)
    assert_clean(texts)
    if proc is not None:
        assert proc.returncode == 3
        assert "bad request" in proc.stderr
        assert_clean([proc.stdout, proc.stderr])


def mp_env_for(url: str, db: Path) -> dict[str, str]:
    class _Emu:
        username = USER
        secret = SECRET
        base_url = url

        class spec:  # duck-typed like Emulator.spec
            project_id = 77
            timezone = "UTC"

    return mp_env(_Emu, db)


def test_config_is_private_atomic_and_tightened(tmp_path: Path) -> None:
    home = tmp_path / "private-home"
    home.mkdir()
    config = home / "conf" / "config.toml"
    env = {**os.environ, "HOME": str(home), "MP_CONFIG_PATH": str(config)}
    env = {k: v for k, v in env.items() if k not in ("MP_USERNAME", "MP_SECRET")}
    argv = [MP, "auth", "add", "prod", "-u", USER, "-p", "123", "--secret-stdin"]
    import subprocess

    added = subprocess.run(
        argv, input=SECRET + "\n", env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert SECRET in config.read_text()  # stored as given, trailing newline dropped
    assert f'"{SECRET}\\n"' not in config.read_text()
    assert list(config.parent.glob(".config.*.tmp")) == []  # atomic: no temp file left
    refused = subprocess.run(
        [*argv[:-1], "--secret", SECRET],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 3
    assert "refused" in refused.stderr
    assert_clean([refused.stderr, refused.stdout])
    config.chmod(0o644)
    listed = subprocess.run(
        [MP, "auth", "list"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert "tightened to 0600" in listed.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert_clean([listed.stdout, listed.stderr, added.stdout, added.stderr])


def _escaped_forms(user: str, secret: str) -> list[str]:
    """Each encoding a hostile body may carry, built independently of the client."""
    import html
    import json

    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    out = []
    for text in (secret, token):
        url = quote(text, safe="")
        out += [text, url, url.lower(), quote_plus(text).lower(), html.escape(text)]
        out += [json.dumps(text)[1:-1], json.dumps(text).replace("/", "\\/")[1:-1]]
    return out


def _client(user: str, secret: str) -> Any:
    from mixpanel_data._internal.http.client import MixpanelAPIClient

    creds = Credentials(username=user, secret=SecretStr(secret), project_id="1", timezone="UTC")
    return MixpanelAPIClient(creds)


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
        min_size=8,
        max_size=40,
    ),
    which=st.integers(min_value=0, max_value=13),
)
def test_redaction_removes_every_encoding_of_random_secrets(secret: str, which: int) -> None:
    api = _client(USER, secret)
    try:
        form = _escaped_forms(USER, secret)[which]
        text = api.redact(f'{{"error": "echo <{form}> done"}}')
    finally:
        api.close()
    assert form not in text
    assert form.lower() not in text.lower()
    assert "echo <" in text
    assert "> done" in text


def test_error_body_with_escaped_credentials_is_redacted(tmp_path: Path) -> None:
    # A proxy that echoes the Basic token URL-encoded in lower case and the secret
    # HTML-escaped, in a plain-text body (used to be printed verbatim).
    import html

    def app(environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "").split(" ", 1)[-1]
        secret = base64.b64decode(auth).decode().split(":", 1)[-1]
        body = f"denied token={quote(auth, safe='').lower()} pw={html.escape(secret)}"
        start("400 Bad Request", [("Content-Type", "text/plain")])
        return [body.encode()]

    httpd = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    secret = 'Zq9<s3"cr&t>=='
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        env = {**mp_env_for(url, tmp_path / "e.duckdb"), "MP_SECRET": secret}
        proc = run_mp(
            [MP, "-v", "fetch", "events", "--from", "2024-01-01", "--to", "2024-01-01"], env
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 3, proc.stderr
    assert "denied token=*** pw=***" in proc.stderr
    for form in _escaped_forms(USER, secret):
        assert form not in proc.stderr + proc.stdout
