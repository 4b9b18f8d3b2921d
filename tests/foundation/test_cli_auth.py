"""`mp auth` as a new user runs it: a real subprocess against a temp config home."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixpanel_data._internal.config import ConfigManager

SECRET = "s3cr3t"
MP_MODULE = (sys.executable, "-m", "mixpanel_data")


def mp(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixpanel_data", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "empty" / "config.toml"
    monkeypatch.setenv("MP_CONFIG_PATH", str(path))
    return path


def test_add_list_show_switch_remove(config_path: Path) -> None:
    r = mp(
        "auth",
        "add",
        "prod",
        "--username",
        "sa.x",
        "--project",
        "123",
        "--region",
        "EU",
        "--secret-stdin",
        stdin=f"{SECRET}\n",
    )
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700
    assert ConfigManager(config_path).get_account("prod").secret.get_secret_value() == SECRET
    assert ConfigManager(config_path).get_account("prod").region == "eu"

    listed = mp("auth", "list", "-f", "json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert rows == [
        {
            "name": "prod",
            "kind": "service_account",
            "username": "sa.x",
            "project_id": "123",
            "region": "eu",
            "is_default": True,
            "base_url": None,
            "timezone": None,
            "workspace_id": None,
        }
    ]
    assert SECRET not in listed.stdout + listed.stderr

    shown = mp("auth", "show", "prod")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["secret"] == "****"
    assert SECRET not in shown.stdout + shown.stderr

    assert (
        mp(
            "auth", "add", "dev", "-u", "sa.y", "-p", "7", "--secret-stdin", stdin="x" * 20
        ).returncode
        == 0
    )
    assert mp("auth", "switch", "dev").returncode == 0
    assert ConfigManager(config_path).default_account() == "dev"

    dup = mp("auth", "add", "prod", "-u", "sa.z", "-p", "1", "--secret-stdin", stdin="zzzzzz")
    assert dup.returncode == 1
    assert dup.stderr.strip() == (
        "Error: account 'prod' already exists; remove it first with `mp auth remove prod` "
        "or choose another name"
    )

    assert mp("auth", "remove", "prod").returncode == 0
    assert [a.name for a in ConfigManager(config_path).list_accounts()] == ["dev"]
    missing = mp("auth", "remove", "prod")
    assert missing.returncode == 4
    assert "account 'prod' not found" in missing.stderr


def test_secret_on_command_line_is_refused(config_path: Path) -> None:
    r = mp("auth", "add", "prod", "-u", "sa.x", "-p", "1", "--secret", "hunter2")
    assert r.returncode == 3
    assert "--secret on the command line is refused" in r.stderr
    assert not config_path.exists()
    assert "Traceback" not in r.stderr


def test_no_secret_and_no_terminal(config_path: Path) -> None:
    r = mp("auth", "add", "prod", "-u", "sa.x", "-p", "1", stdin="")
    assert r.returncode == 3
    assert "no secret given" in r.stderr


def test_symlinked_config_is_one_clear_line(config_path: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.toml"
    real.write_text(
        f'default = "p"\n[accounts.p]\nusername = "u"\nsecret = "{SECRET}"\nproject_id = "1"\n'
    )
    config_path.parent.mkdir(mode=0o700)
    config_path.symlink_to(real)
    r = mp("auth", "list")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "symbolic link" in lines[0]
    assert SECRET not in r.stdout + r.stderr


def test_invalid_toml_is_one_clear_line(config_path: Path) -> None:
    config_path.parent.mkdir(mode=0o700)
    config_path.write_text(f'[accounts.p]\nsecret = "{SECRET}"\nusername = = 3\n')
    os.chmod(config_path, 0o600)
    r = mp("auth", "show")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert "is not valid TOML" in r.stderr
    assert "line 3" in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_unknown_region_is_exit_3(config_path: Path) -> None:
    r = mp("auth", "add", "p", "-u", "u", "-p", "1", "-r", "asia", "--secret-stdin", stdin="abcdef")
    assert r.returncode == 3
    assert r.stderr.strip() == "Error: unknown region 'asia'; use one of: us, eu, in"
    assert not config_path.exists()


def test_env_credentials_shown_masked(config_path: Path) -> None:
    r = mp("auth", "show", env={"MP_USERNAME": "env.u", "MP_SECRET": SECRET, "MP_PROJECT_ID": "55"})
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert (shown["source"], shown["project_id"], shown["username"]) == ("env", "55", "env.u")
    assert SECRET not in r.stdout


def test_no_credentials_at_all(config_path: Path) -> None:
    r = mp("auth", "show")
    assert r.returncode == 1
    assert "no Mixpanel credentials found; add an account with `mp auth add NAME`" in r.stderr


def wait_reading_stdin(pid: int) -> None:
    """Block until process `pid` sits in read(0, ...) (Linux /proc), i.e. past its imports."""
    syscall = Path(f"/proc/{pid}/syscall")
    for _ in range(6000):
        try:
            fields = syscall.read_text().split()
        except OSError:
            fields = []
        if fields[:2] == ["0", "0x0"]:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never read its stdin")


def test_twelve_concurrent_auth_adds_keep_every_account(config_path: Path) -> None:
    # Twelve writers released at once: every account saved, none crashes.
    procs = [
        subprocess.Popen(
            [
                *MP_MODULE,
                "auth",
                "add",
                f"acc{i}",
                "-u",
                f"sa.{i}",
                "-p",
                str(100 + i),
                "--secret-stdin",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(12)
    ]
    for p in procs:  # all twelve wait at the secret prompt: then release them at once
        wait_reading_stdin(p.pid)
    for i, p in enumerate(procs):
        assert p.stdin is not None
        p.stdin.write(f"secret-{i}\n")
        p.stdin.close()
    for p in procs:
        assert p.stderr is not None
        with p.stderr:
            err = p.stderr.read()
        assert p.wait(timeout=120) == 0, err
        assert "unexpected" not in err
    saved = ConfigManager(config_path).list_accounts()
    assert sorted(a.name for a in saved) == sorted(f"acc{i}" for i in range(12))
    for i in range(12):
        creds = ConfigManager(config_path).get_account(f"acc{i}")
        assert (creds.username, creds.project_id) == (f"sa.{i}", str(100 + i))
        assert creds.secret.get_secret_value() == f"secret-{i}"
    assert sum(a.is_default for a in saved) == 1
    assert not [p for p in config_path.parent.iterdir() if p.name.endswith(".tmp")]
