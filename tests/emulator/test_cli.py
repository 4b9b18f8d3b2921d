"""`mp emulator serve`, run as a user would: a subprocess that prints one JSON line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mixpanel_data.cli.commands.emulator import app
from mixpanel_data.exceptions import ValidationError

SERVE = [
    sys.executable,
    "-c",
    "from mixpanel_data.cli.commands.emulator import app; app()",
    "serve",
]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """Start `serve` in a subprocess and read its JSON line."""
    process = subprocess.Popen(
        [
            *SERVE,
            "--port",
            "0",
            "--seed",
            "7",
            "--users",
            "40",
            "--days",
            "3",
            "--timezone",
            "Europe/Berlin",
            "--project-id",
            "777",
            "--faults",
            "engage:503:count=1",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the server is up
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_serve_prints_credentials_then_serves_until_ctrl_c(serve):
    process, creds = serve
    assert set(creds) == {"base_url", "username", "secret", "project_id"}
    assert creds["project_id"] == "777"
    assert creds["base_url"].startswith("http://127.0.0.1:")
    auth = (creds["username"], creds["secret"])

    me = httpx.get(f"{creds['base_url']}/api/app/me", auth=auth).json()
    assert me["results"]["projects"]["777"]["timezone"] == "Europe/Berlin"
    engage = f"{creds['base_url']}/api/2.0/engage"
    assert httpx.get(engage, params={"project_id": "777"}, auth=auth).status_code == 503
    assert httpx.get(engage, params={"project_id": "777"}, auth=auth).status_code == 200
    # curl -u user:secret '<base_url>/api/2.0/export?project_id=..&from_date=..&to_date=..'
    export = httpx.get(
        f"{creds['base_url']}/api/2.0/export",
        params={"project_id": "777", "from_date": "2000-01-01", "to_date": "2000-01-02"},
        auth=auth,
    )
    assert (export.status_code, export.content) == (200, b"")

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0
    assert out == ""  # the JSON line was the only stdout
    assert "Mixpanel emulator on http://127.0.0.1:" in err
    assert "Traceback" not in err


def test_serve_stops_cleanly_on_sigterm(serve):
    process, creds = serve
    assert httpx.get(f"{creds['base_url']}/_emulator/health").json()["project_id"] == "777"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=15)
    assert process.returncode == 0


def test_serve_help_documents_the_options_and_fault_grammar():
    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in (
        "--port",
        "--seed",
        "--users",
        "--days",
        "--start-date",
        "--timezone",
        "--project-id",
        "--events-per-user-per-day",
        "--faults",
        "--rate-limit",
        "--hour-seconds",
        "--legacy-time-shift",
    ):
        assert option in result.output
    assert "terminated_early" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start-date", "yesterday"], "--start-date"),
        (["--faults", "export:teapot"], "unknown fault kind"),
    ],
)
def test_serve_rejects_bad_options_before_binding(args, message, tmp_path):
    result = CliRunner().invoke(app, ["serve", "--cache-dir", str(tmp_path), *args])
    assert isinstance(result.exception, ValidationError)
    assert message in str(result.exception)


def test_serve_env_prints_an_export_line_a_shell_can_use(tmp_path: Path) -> None:
    import shlex

    process = subprocess.Popen(
        [*SERVE, "--env", "--port", "0", "--users", "20", "--days", "2", "--timezone",
         "Europe/Berlin", "--project-id", "778", "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        words = shlex.split(line)
        assert words[0] == "export"
        values = dict(w.split("=", 1) for w in words[1:])
        assert set(values) == {
            "MP_BASE_URL", "MP_USERNAME", "MP_SECRET", "MP_PROJECT_ID", "MP_TIMEZONE"
        }  # fmt: skip
        assert values["MP_PROJECT_ID"] == "778"
        assert values["MP_TIMEZONE"] == "Europe/Berlin"
        # the values reach the emulator: a shell that evaluated the line can call it
        me = httpx.get(
            f"{values['MP_BASE_URL']}/api/app/me",
            auth=(values["MP_USERNAME"], values["MP_SECRET"]),
            timeout=30,
        )
        assert me.status_code == 200
        assert "778" in me.json()["results"]["projects"]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)  # closes the pipes


def test_serve_replaces_a_cache_dir_filled_for_another_spec(tmp_path: Path) -> None:
    """--cache-dir filled by other --users: served days are this spec's, and it says so."""
    from mixpanel_data.emulator.project import ProjectSpec, SyntheticProject

    cache = tmp_path / "cache"
    spec = ProjectSpec(seed=7, users=40, days=3, timezone="Europe/Berlin", project_id="777")
    other = SyntheticProject(
        ProjectSpec(seed=7, users=41, days=3, timezone="Europe/Berlin"), cache_dir=cache
    )
    day = other.data_dates[-1]
    stale = other.export_day_path(day).read_bytes()
    expected = SyntheticProject(spec, cache_dir=tmp_path / "ref").export_day_path(day).read_bytes()
    assert stale != expected
    argv = [*SERVE, "--port", "0", "--seed", "7", "--users", "40", "--days", "3"]
    argv += ["--timezone", "Europe/Berlin", "--project-id", "777", "--cache-dir", str(cache)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        creds = json.loads(process.stdout.readline())
        note = process.stderr.readline()
        assert note.startswith(f"note: {cache} held days of another project spec")
        reply = httpx.get(
            f"{creds['base_url']}/api/2.0/export",
            params={"from_date": str(day), "to_date": str(day), "project_id": "777"},
            auth=(creds["username"], creds["secret"]),
            headers={"Accept-Encoding": "identity"},
            timeout=60,
        )
        assert reply.status_code == 200
        assert reply.content == expected
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # also closes the pipes
