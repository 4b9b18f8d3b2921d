"""The README's command-line tour runs as written against `mp demo --keep`.

The block is taken from the README itself and run by bash with `set -e -o pipefail`,
in an empty HOME, with only the demo's printed `export` line (and a $SECRET for the
`mp auth add` line) in the environment.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MP = str(Path(sys.executable).with_name("mp"))


def _tour() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"### On the command line\n\n```\n(.*?)```", text, re.S)
    assert found, "the README lost its command-line tour"
    return found.group(1)


def _demo_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"`(mp demo --keep[^`]*)`", text)
    assert found
    return shlex.split(found.group(1))


@pytest.mark.skipif(shutil.which("jq") is None, reason="the tour pipes into jq")
def test_readme_tour_runs_as_written_against_the_demo(tmp_path: Path) -> None:
    home = tmp_path / "home"  # made empty by the autouse clean_environ fixture
    env = {"HOME": str(home), "PATH": f"{Path(MP).parent}{os.pathsep}{os.environ['PATH']}"}
    demo = [MP, "-q", *_demo_command()[1:], "--users", "150"]
    with subprocess.Popen(
        demo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            export = next(line for line in proc.stdout if line.startswith("export "))
            assigned = dict(w.split("=", 1) for w in shlex.split(export)[1:])
            assert assigned["MP_PROJECT_ID"] == "1000002"
            script = tmp_path / "tour.sh"
            script.write_text("set -e -o pipefail\n" + _tour())
            run = subprocess.run(
                ["bash", str(script)],
                env={**env, **assigned, "SECRET": "not-a-real-secret"},
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    # what the tour promises: October in the demo's own database, events and profiles
    import duckdb

    db = home / ".mp" / "data" / "1000002.duckdb"
    with duckdb.connect(str(db), read_only=True) as conn:
        days = conn.execute(
            "SELECT count(DISTINCT (event_time AT TIME ZONE 'UTC')::DATE) FROM events"
        ).fetchone()
        profiles = conn.execute("SELECT count(*) FROM profiles").fetchone()
    assert days == (31,)
    assert profiles is not None
    assert profiles[0] > 0
    # the last line of the tour streams Oct 30-31 through jq: one quoted event name per line
    streamed = run.stdout.splitlines()[-50:]
    assert all(line.startswith('"') and line.endswith('"') for line in streamed)
