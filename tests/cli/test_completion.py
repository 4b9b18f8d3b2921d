"""Shell completion: `mp --install-completion SHELL` and `mp --show-completion SHELL`.

HOME is a per-test temp dir (the autouse ``clean_environ`` fixture), so installs
write there; the bash test sources the installed script in a real bash.
"""

from __future__ import annotations

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
