"""The README's config example, its variables table and its other blocks are true.

The TOML example is loaded by the library's own config loader and by `mp auth list`; the
legacy `mp auth add` line is run as written; every variable in the table is one `mp` reads
(recorded while `mp` runs against the emulator), and every `MP_*` variable it reads is in
the table; every other code block is either run by a test or says why not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.docs.readme_blocks import README, ROOT, Block, readme_blocks, tour_block

from mixpanel_data._internal.config import ConfigManager

MP = str(Path(sys.executable).with_name("mp"))


def _toml() -> Block:
    found = [b for b in readme_blocks() if b.lang == "toml"]
    assert len(found) == 1, "the README should have one config example"
    return found[0]


def _legacy_block() -> Block:
    found = [b for b in readme_blocks() if "--project-secret-stdin" in b.text and not b.lang]
    assert len(found) == 1
    return found[0]


def _tree_block() -> Block:
    found = [b for b in readme_blocks() if b.text.startswith("src/mixpanel_data/\n")]
    assert len(found) == 1
    return found[0]


def _uncommented(text: str) -> str:
    """The example with its commented-out optional settings switched on."""
    return re.sub(r"^# (\w+ = )", r"\1", text, flags=re.M)


def _accounts(path: Path) -> dict[str, Any]:
    return {a.name: a for a in ConfigManager(path=path, environ={}).list_accounts()}


@pytest.mark.parametrize("optional", [False, True], ids=["as-written", "optional-keys-on"])
def test_readme_config_example_loads_as_it_says(tmp_path: Path, optional: bool) -> None:
    text = _uncommented(_toml().text) if optional else _toml().text
    said = tomllib.loads(text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    manager = ConfigManager(path=path, environ={})
    accounts = _accounts(path)
    assert set(accounts) == set(said["accounts"]) == {"prod", "legacy"}
    assert manager.default_account() == said["default"] == "prod"
    for name, acc in said["accounts"].items():
        info = accounts[name]
        assert info.is_default == (name == said["default"])
        assert info.kind == acc.get("kind", "service_account")
        assert info.project_id == acc["project_id"]
        assert info.region == acc.get("region", "us")
        assert info.username == acc.get("username", "")
        assert info.base_url == acc.get("base_url")
        assert info.timezone == acc.get("timezone")
        assert info.workspace_id == acc.get("workspace_id")
        creds = manager.get_account(name)
        assert creds.secret.get_secret_value() == acc["secret"]
    # Workspace() with no account and no MP_* variables resolves the default account
    assert manager.resolve(None).account == "prod"
    if optional:
        assert said["accounts"]["prod"].keys() >= {"base_url", "timezone", "workspace_id"}
    # `mp auth list` reads it the same way
    env = {"HOME": str(tmp_path), "MP_CONFIG_PATH": str(path), "PATH": os.environ["PATH"]}
    proc = subprocess.run(
        [MP, "auth", "list", "-f", "json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    listed = {a["name"]: a for a in json.loads(proc.stdout)}
    assert listed == {n: a.to_dict() for n, a in accounts.items()}
    assert "…" not in proc.stdout  # secrets are not listed


def test_readme_legacy_auth_line_writes_the_example_account(tmp_path: Path) -> None:
    home = tmp_path / "legacy-home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": f"{Path(MP).parent}{os.pathsep}{os.environ['PATH']}",
        "PROJECT_SECRET": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    }
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", _legacy_block().text],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    written = home / ".mp" / "config.toml"
    example = tmp_path / "example.toml"
    example.write_text(_toml().text, encoding="utf-8")
    example.chmod(0o600)
    added, shown = _accounts(written)["legacy"], _accounts(example)["legacy"]
    assert added.kind == "project_secret"
    assert replace(added, is_default=False) == replace(shown, is_default=False)
    secret = ConfigManager(path=written, environ={}).get_account("legacy").secret
    assert secret.get_secret_value() == env["PROJECT_SECRET"]


def _variables_table() -> list[str]:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"\| variable \| meaning \|\n\|---\|---\|\n((?:\|.*\n)+)", text)
    assert found, "the README lost its variables table"
    names: list[str] = []
    for row in found.group(1).splitlines():
        first = row.split("|")[1]
        names += re.findall(r"`([A-Z_]+)`", first)
    return names


# Runs `mp` commands in-process with os.environ replaced by one that records each lookup.
_RECORDER = """
import json, os, sys

read = set()


class Recording(os._Environ):
    def __getitem__(self, key):
        read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        read.add(key)
        return super().__contains__(key)


env = os.environ
os.environ = Recording(env._data, env.encodekey, env.decodekey, env.encodevalue, env.decodevalue)
from mixpanel_data.cli.main import main

for argv, changes in json.loads(sys.argv[1]):
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        main(argv)
    except SystemExit as exc:
        print(argv, exc.code, file=sys.stderr)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    json.dump(sorted(read), out)
"""


def test_readme_variables_are_the_ones_mp_reads(tmp_path: Path, emulator: Any) -> None:
    documented = _variables_table()
    assert len(documented) == len(set(documented))
    day = emulator.project.data_dates[-2].isoformat()
    lake = tmp_path / "lake"
    runs = [
        (["-q", "fetch", "events", "--from", day, "--to", day], {}),
        (["sql", "SELECT event_name, count(*) FROM events GROUP BY 1", "-f", "table"], {}),
        (["-q", "export", "events", str(lake)], {}),
        (["auth", "list"], {}),
        # a legacy project secret instead of the service account
        (["auth", "test"], {"MP_USERNAME": None, "MP_SECRET": None, "MP_PROJECT_SECRET": "x"}),
    ]
    env = {
        "HOME": str(tmp_path),
        "PATH": os.environ["PATH"],
        "MP_BASE_URL": emulator.base_url,
        "MP_USERNAME": emulator.username,
        "MP_SECRET": emulator.secret,
        "MP_PROJECT_ID": str(emulator.spec.project_id),
        "MP_DB_PATH": str(tmp_path / "vars.duckdb"),
    }
    script = tmp_path / "recorder.py"
    script.write_text(_RECORDER, encoding="utf-8")
    out = tmp_path / "read.json"
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(runs), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exits = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert exits[:4] == [f"{argv} 0" for argv, _ in runs[:4]], proc.stderr[-3000:]
    read = set(json.loads(out.read_text(encoding="utf-8")))
    assert (lake / "events").is_dir()  # the export ran, so MP_LAKE_MODE had its chance
    unread = [name for name in documented if name not in read]
    assert not unread, f"the README documents variables mp never reads: {unread}"
    undocumented = sorted(n for n in read if n.startswith("MP_") and not n.startswith("MP_TEST_"))
    missing = [n for n in undocumented if n not in documented]
    assert not missing, f"mp reads variables the README's table lacks: {missing}"


def _tree_paths(text: str) -> list[Path]:
    lines = text.splitlines()
    root = ROOT / lines[0].strip().rstrip("/")
    stack: list[Path] = [root]
    out = [root]
    for line in lines[1:]:
        name_at = next(i for i, ch in enumerate(line) if ch not in "│├└─ ")
        depth = name_at // 4  # "├── " is four characters per level
        names = re.split(r"\s{2,}", line[name_at:])[0]
        del stack[depth:]
        for name in names.split(", "):
            path = stack[-1] / name.rstrip("/")
            out.append(path)
        stack.append(stack[-1] / names.split(", ")[-1].rstrip("/"))
    return out


def test_readme_file_tree_names_real_files() -> None:
    paths = _tree_paths(_tree_block().text)
    assert len(paths) > 10
    missing = [str(p.relative_to(ROOT)) for p in paths if not p.exists()]
    assert not missing, f"the README's file tree names what is not there: {missing}"


def test_every_readme_block_is_run_or_says_why_not() -> None:
    run_elsewhere = {tour_block().line, _toml().line, _legacy_block().line, _tree_block().line}
    unmarked: list[str] = []
    for block in readme_blocks():
        is_run = block.line in run_elsewhere or block.lang in ("python", "sql")
        if block.not_run is not None:
            assert len(block.not_run) > 15, f"README.md:{block.line}: say why it is not run"
            assert block.line not in run_elsewhere, f"README.md:{block.line} is run: unmark it"
        elif not is_run:
            unmarked.append(f"README.md:{block.line}: {block.text.splitlines()[0]}")
    assert not unmarked, "blocks no test runs; run them or mark `<!-- not run: why -->`:\n" + (
        "\n".join(unmarked)
    )
    marked = [b for b in readme_blocks() if b.not_run]
    assert len(marked) <= 6, "most README blocks should run as written"
