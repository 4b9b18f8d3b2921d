"""Shell completion: `mp --install-completion SHELL` and `mp --show-completion SHELL`.

HOME is a per-test temp dir (the autouse ``clean_environ`` fixture), so installs
write there; the bash test sources the installed script in a real bash.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mixpanel_data.cli.main import app

runner = CliRunner()

MARKERS = {
    "bash": "complete -o default -F _mp_completion mp",
    "zsh": "#compdef mp",
    "fish": "complete --command mp",
}


def _mp_bin() -> str:
    found = Path(sys.executable).with_name("mp")
    assert found.exists(), "the `mp` console script is not installed next to the interpreter"
    return str(found)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_the_shells_script(shell: str) -> None:
    result = runner.invoke(app, ["--show-completion", shell], prog_name="mp")
    assert result.exit_code == 0, result.output
    assert f"_MP_COMPLETE=complete_{shell}" in result.output
    assert MARKERS[shell] in result.output


def test_show_completion_from_the_real_entry_point() -> None:
    proc = subprocess.run(
        [_mp_bin(), "--show-completion", "bash"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "_MP_COMPLETE=complete_bash" in proc.stdout
    assert proc.stderr == ""


def test_install_bash_writes_script_and_sources_it_once(clean_environ: Path) -> None:
    home = clean_environ
    for _ in range(2):  # installing twice must not add a second `source` line
        result = runner.invoke(app, ["--install-completion", "bash"], prog_name="mp")
        assert result.exit_code == 0, result.output
    script = home / ".bash_completions" / "mp.sh"
    assert "bash completion installed in" in result.output
    assert str(script) in result.output
    assert "_MP_COMPLETE=complete_bash" in script.read_text()
    bashrc = (home / ".bashrc").read_text()
    assert bashrc.count(f"source '{script}'") == 1


def test_install_zsh_writes_zfunc_and_zshrc(clean_environ: Path) -> None:
    home = clean_environ
    result = runner.invoke(app, ["--install-completion", "zsh"], prog_name="mp")
    assert result.exit_code == 0, result.output
    script = home / ".zfunc" / "_mp"
    assert "#compdef mp" in script.read_text()
    assert "_MP_COMPLETE=complete_zsh" in script.read_text()
    zshrc = (home / ".zshrc").read_text()
    assert "fpath+=~/.zfunc" in zshrc
    assert "compinit" in zshrc


def test_install_fish_writes_completions_file(clean_environ: Path) -> None:
    home = clean_environ
    result = runner.invoke(app, ["--install-completion", "FISH"], prog_name="mp")
    assert result.exit_code == 0, result.output
    script = home / ".config" / "fish" / "completions" / "mp.fish"
    text = script.read_text()
    assert "complete --command mp" in text
    assert "_MP_COMPLETE=complete_fish" in text
    assert not (home / ".bashrc").exists()


def test_install_needs_a_shell_name(clean_environ: Path) -> None:
    proc = subprocess.run(
        [_mp_bin(), "--install-completion"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "--install-completion" in proc.stderr
    assert "requires an argument" in proc.stderr
    assert list(clean_environ.iterdir()) == []


def test_unknown_shell_is_a_usage_error(clean_environ: Path) -> None:
    proc = subprocess.run(
        [_mp_bin(), "--install-completion", "tcsh"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "tcsh" in proc.stderr
    assert "bash" in proc.stderr  # the valid choices are listed
    assert list(clean_environ.iterdir()) == []


def _top_level_commands() -> list[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.main.TyperGroup)
    return sorted(group.commands)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"_MP_COMPLETE": "complete_bash", "COMP_WORDS": "mp au", "COMP_CWORD": "1"}, "auth"),
        ({"_MP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "mp au"}, '"auth"'),
        (
            {
                "_MP_COMPLETE": "complete_fish",
                "_TYPER_COMPLETE_ARGS": "mp au",
                "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            },
            "auth\t",
        ),
    ],
)
def test_completion_protocol_answers_each_shell(env: dict[str, str], needle: str) -> None:
    # zsh and fish read Typer's _TYPER_COMPLETE_ARGS: this fails if Typer's classes
    # were not registered (`completion.enable()`).
    result = runner.invoke(app, [], env=env, prog_name="mp")
    assert result.exit_code == 0, result.output
    assert needle in result.output
    others = [c for c in _top_level_commands() if not c.startswith("au")]
    assert others, "expected other commands to exist"
    assert all(f"{c}\t" not in result.output for c in others)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_installed_bash_script_completes_in_a_real_bash(clean_environ: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(clean_environ),
        "PATH": f"{Path(_mp_bin()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    install = subprocess.run(
        [_mp_bin(), "--install-completion", "bash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert install.returncode == 0, install.stderr
    script = (
        'source ~/.bashrc; COMP_WORDS=(mp ""); COMP_CWORD=1; _mp_completion mp; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run(
        ["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    offered = sorted(line for line in proc.stdout.splitlines() if line)
    assert offered == _top_level_commands()


# -- the fast path (cli/entry.py -> cli/fast_completion.py) ------------------------------


def _tab(env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    full = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), **env}
    return subprocess.run(
        [_mp_bin()], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _bash(line: str) -> dict[str, str]:
    words = line.split(" ")
    return {"_MP_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}


@pytest.mark.parametrize(
    "env",
    [
        _bash("mp au"),
        _bash("mp inspect "),
        _bash("mp sql --f"),
        _bash("mp sql -f "),
        _bash("mp query segmentation Purchase --unit "),
        {"_MP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "mp fetch "},
        {"_MP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "mp inspect ta"},
        {
            "_MP_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_ARGS": "mp auth ",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        },
    ],
)
def test_fast_path_answers_as_typer_does(env: dict[str, str], clean_environ: Path) -> None:
    typer_answer = runner.invoke(app, [], env=env, prog_name="mp")
    assert typer_answer.exit_code == 0, typer_answer.output
    fast = _tab(env, clean_environ)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout.strip() == typer_answer.output.strip()
    # the first TAB read the tree shipped with the package: nothing was built
    assert not list((clean_environ / ".cache" / "mp").glob("tree-*.json"))


def test_the_shipped_tree_is_the_apps_tree() -> None:
    from mixpanel_data._version import __version__
    from mixpanel_data.cli import fast_completion

    shipped = json.loads(fast_completion.SHIPPED_TREE.read_text())
    assert shipped["version"] == __version__
    assert shipped["tree"] == fast_completion.build_tree(), "run scripts/gen_docs.py"


def test_without_a_shipped_tree_the_first_tab_builds_and_caches_one(
    clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixpanel_data.cli import fast_completion

    monkeypatch.setattr(fast_completion, "SHIPPED_TREE", clean_environ / "missing.json")
    env = {"HOME": str(clean_environ)}
    built = fast_completion._tree(env)
    assert built == fast_completion.build_tree()
    cached = list((clean_environ / ".cache" / "mp").glob("tree-*.json"))
    assert len(cached) == 1
    assert json.loads(cached[0].read_text()) == built
    assert fast_completion.complete(built, [], "au", env) == [
        ("auth", built["commands"]["auth"]["help"])
    ]


def test_fast_path_imports_neither_typer_nor_pydantic(clean_environ: Path) -> None:
    _tab(_bash("mp au"), clean_environ)  # build the cache first
    probe = (
        "import sys\n"
        "from mixpanel_data.cli import entry\n"
        "try:\n    entry.main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('typer', 'pydantic', 'duckdb', 'rich', 'httpx', 'pandas')"
        " if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    full = {"HOME": str(clean_environ), "PATH": os.environ.get("PATH", ""), **_bash("mp au")}
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=full, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "auth"
    assert "HEAVY []" in proc.stderr


def _project(home: Path) -> Path:
    """Two accounts in the config; the default one's database has two tables."""
    import duckdb

    (home / ".mp" / "data").mkdir(parents=True)
    (home / ".mp" / "config.toml").write_text(
        'default = "prod"\n'
        '[accounts.prod]\nusername = "u"\nsecret = "s"\nproject_id = "42"\nregion = "us"\n'
        '[accounts.staging]\nusername = "u"\nsecret = "s"\nproject_id = "43"\nregion = "eu"\n'
    )
    db = home / ".mp" / "data" / "42.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "CREATE TABLE events AS SELECT * FROM (VALUES ('Sign Up'), ('Purchase'), "
            "('Page View'), ('Purchase')) AS t(event_name)"
        )
        conn.execute("CREATE TABLE jan AS SELECT 'Login' AS event_name")
        conn.execute("CREATE TABLE _mp_tables AS SELECT 1 AS x")  # internal: never offered
        conn.execute("CREATE TABLE profiles AS SELECT 'u1' AS distinct_id")
    return db


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mp --account ", ["prod", "staging"]),
        ("mp -a s", ["staging"]),
        ("mp auth show ", ["prod", "staging"]),
        ("mp auth switch p", ["prod"]),
        ("mp inspect schema ", ["events", "jan", "profiles"]),
        ("mp inspect drop events j", ["jan"]),
        ("mp export e", ["events"]),
        ("mp fetch events ", ["events", "jan", "profiles"]),
        ("mp query segmentation ", ["Login", "Page View", "Purchase", "Sign Up"]),
        ("mp query segmentation P", ["Page View", "Purchase"]),
        ("mp inspect keys events --event S", ["Sign Up"]),
        ("mp query retention --born-event L", ["Login"]),
    ],
)
def test_completes_accounts_tables_and_events_from_local_files(
    line: str, expected: list[str], clean_environ: Path
) -> None:
    _project(clean_environ)
    proc = _tab(_bash(line), clean_environ)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected


def test_names_follow_db_and_account_and_a_changed_database(clean_environ: Path) -> None:
    import duckdb

    db = _project(clean_environ)
    other = clean_environ / "other.duckdb"
    with duckdb.connect(str(other)) as conn:
        conn.execute("CREATE TABLE mine AS SELECT 'X' AS event_name")
    assert _tab(_bash(f"mp --db {other} inspect schema "), clean_environ).stdout.split() == ["mine"]
    # staging's database does not exist: nothing to offer, and no error
    proc = _tab(_bash("mp -a staging inspect schema "), clean_environ)
    assert (proc.returncode, proc.stdout) == (0, "")
    # a new table shows on the next TAB (the name cache follows the file)
    assert "fresh" not in _tab(_bash("mp inspect schema "), clean_environ).stdout
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE fresh AS SELECT 1 AS n")
    assert "fresh" in _tab(_bash("mp inspect schema "), clean_environ).stdout.split()


def test_names_written_by_a_fetch_complete_without_duckdb(clean_environ: Path) -> None:
    """A Workspace that writes a database records its names on close; the next TAB,
    the first after install included (no cache of any kind), reads only that record."""
    from mixpanel_data._internal.storage.engine import StorageEngine

    db = clean_environ / "shop.duckdb"
    with StorageEngine.temporary(directory=clean_environ) as scratch, scratch.writer() as conn:
        conn.execute("CREATE TABLE t AS SELECT 'X' AS event_name")
    assert not list(clean_environ.glob("mp-*"))  # a temporary database: gone, no record
    with StorageEngine(db) as engine, engine.writer() as conn:
        conn.execute(
            "CREATE TABLE jan AS SELECT * FROM (VALUES ('Login'), ('Purchase')) t(event_name)"
        )
        conn.execute("CREATE TABLE profiles AS SELECT 'u1' AS distinct_id")
    assert json.loads((clean_environ / "shop.duckdb.names.json").read_text())["table"] == [
        "jan",
        "profiles",
    ]
    probe = (
        "import sys\n"
        "from mixpanel_data.cli import entry\n"
        "try:\n    entry.main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('duckdb', 'typer') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    for line, expected in [
        (f"mp --db {db} inspect schema ", "jan\nprofiles"),
        (f"mp --db {db} query segmentation ", "Login\nPurchase"),
        (f"mp --db {db} inspect keys jan --event P", "Purchase"),
    ]:
        full = {"HOME": str(clean_environ), "PATH": os.environ.get("PATH", ""), **_bash(line)}
        proc = subprocess.run(
            [sys.executable, "-c", probe], env=full, capture_output=True, text=True, timeout=120
        )
        assert proc.stdout.strip() == expected, proc.stderr
        assert "HEAVY []" in proc.stderr
    assert not list((clean_environ / ".cache" / "mp").glob("tree-*.json"))
