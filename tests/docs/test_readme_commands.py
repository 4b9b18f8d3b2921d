"""The README's command-line tour, then its Python blocks, run as written against `mp demo --keep`.

The tour is taken from the README itself and run by bash with `set -e -o pipefail`,
in an empty HOME, with only the demo's printed `export` line (and a $SECRET for the
`mp auth add` line) in the environment; each ```python block then runs in its own
interpreter in the HOME and environment the tour left, as a reader following the README would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.docs.readme_blocks import README, readme_blocks, tour_block

MP = str(Path(sys.executable).with_name("mp"))


def _tour() -> str:
    block = tour_block()
    assert not block.lang, "the README lost its tour"
    assert block.text.startswith("printf"), "the README lost its tour"
    return block.text


def _demo_command() -> list[str]:
    text = README.read_text()
    found = re.search(r"`(mp demo --keep[^`]*)`", text)
    assert found
    return shlex.split(found.group(1))


@dataclass(frozen=True)
class Tour:
    """The demo's environment, the HOME the tour ran in, and how the tour went."""

    home: Path
    env: dict[str, str]
    run: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    """`mp demo --keep` running, the tour run once in an empty HOME; the demo stays up."""
    if shutil.which("jq") is None:
        pytest.skip("the tour pipes into jq")
    tmp = tmp_path_factory.mktemp("readme")
    home = tmp / "home"
    home.mkdir()
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
            script = tmp / "tour.sh"
            script.write_text("set -e -o pipefail\n" + _tour())
            run = subprocess.run(
                ["bash", str(script)],
                env={**env, **assigned, "SECRET": "not-a-real-secret"},
                capture_output=True,
                text=True,
                timeout=600,
            )
            yield Tour(home=home, env={**env, **assigned}, run=run)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)


def test_readme_tour_runs_as_written_against_the_demo(tour: Tour) -> None:
    run, home = tour.run, tour.home
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


# Runs one README block in a fresh interpreter, then writes what its names hold as JSON.
_DRIVER = """
import json, sys

source = open(sys.argv[1], encoding="utf-8").read()
names = {"__name__": "__main__"}
exec(compile(source, sys.argv[2], "exec"), names)


def summary(value):
    import pandas, pyarrow

    if hasattr(value, "df") and not isinstance(value, pandas.DataFrame):
        value = value.df
    if isinstance(value, pandas.DataFrame):
        return {"columns": list(value.columns), "records": value.to_dict("records")}
    if isinstance(value, pyarrow.Table):
        return {"num_rows": value.num_rows, "columns": value.column_names}
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return type(value).__name__


facts = {k: summary(v) for k, v in names.items() if not k.startswith("__") and k != "mp"}
with open(sys.argv[3], "w", encoding="utf-8") as out:
    json.dump(facts, out, default=str)
"""


def _python_blocks() -> list[tuple[int, str]]:
    return [(b.line, b.text) for b in readme_blocks() if b.lang == "python" and not b.not_run]


def test_readme_python_runs_as_written_after_the_tour(tour: Tour) -> None:
    """Each ```python block, in its own interpreter, in the HOME and environment the tour
    left (the demo's `export` line, the `prod` account it added)."""
    import duckdb

    blocks = _python_blocks()
    assert blocks, "the README lost its Python example"
    driver = tour.home.parent / "driver.py"
    driver.write_text(_DRIVER, encoding="utf-8")
    facts: list[dict[str, object]] = []
    outputs: list[str] = []
    for line, text in blocks:
        source = tour.home.parent / f"readme_{line}.py"
        source.write_text(text, encoding="utf-8")
        dump = tour.home.parent / f"readme_{line}.json"
        proc = subprocess.run(
            [sys.executable, str(driver), str(source), f"README.md:{line}", str(dump)],
            env=tour.env,
            cwd=tour.home,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"README.md:{line}\n{proc.stderr[-3000:]}"
        facts.append(json.loads(dump.read_text(encoding="utf-8")))
        outputs.append(proc.stdout)

    # what the (first) block computes, against the database it wrote, read directly
    got, out = facts[0], outputs[0].splitlines()
    db = tour.home / ".mp" / "data" / "1000002.duckdb"
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM events").fetchone()
        per_event = conn.execute("SELECT event_name, count(*) FROM events GROUP BY 1").fetchall()
        buyers = conn.execute(
            "SELECT count(DISTINCT distinct_id) FROM events WHERE event_name = 'Purchase'"
        ).fetchone()
        countries = conn.execute(
            "SELECT DISTINCT properties->>'$.mp_country_code' FROM events"
            " WHERE event_name = 'Purchase'"
        ).fetchall()
    assert rows is not None
    assert buyers is not None
    result = got["result"]
    assert isinstance(result, dict)
    assert result["rows_inserted"] == rows[0] > 0  # replace=True: the tour's rows, fetched anew
    assert out[0] == f"{result['rows_inserted']} {result['duplicates_dropped']}"
    df = got["df"]
    assert isinstance(df, dict)
    assert {(r["event_name"], r["n"]) for r in df["records"]} == set(per_event)
    assert [r["n"] for r in df["records"]] == sorted((n for _, n in per_event), reverse=True)
    assert got["users"] == buyers[0] > 0
    table = got["table"]
    assert isinstance(table, dict)
    assert table["num_rows"] == min(1000, rows[0])
    assert "event_name" in table["columns"]
    seg = got["seg"]
    assert isinstance(seg, dict)
    assert seg["records"]
    assert {r["segment"] for r in seg["records"]} <= {c for (c,) in countries}
    assert sum(r["value"] for r in seg["records"]) > 0
    event = got["event"]
    assert isinstance(event, dict)
    assert event["event_name"] in {name for name, _ in per_event}
    # the read-only Workspace.open lists the tour's tables
    assert "events" in outputs[0]
    assert "profiles" in outputs[0]


def test_readme_tour_auth_add_writes_the_config_example(tour: Tour) -> None:
    """The tour's `mp auth add prod` writes the account the Configuration example shows."""
    from dataclasses import replace

    from mixpanel_data._internal.config import ConfigManager

    example = tour.home.parent / "example.toml"
    example.write_text(next(b.text for b in readme_blocks() if b.lang == "toml"))
    example.chmod(0o600)
    written = tour.home / ".mp" / "config.toml"
    added = {a.name: a for a in ConfigManager(path=written, environ={}).list_accounts()}
    shown = {a.name: a for a in ConfigManager(path=example, environ={}).list_accounts()}
    assert replace(added["prod"], is_default=True) == shown["prod"]
    secret = ConfigManager(path=written, environ={}).get_account("prod").secret
    assert secret.get_secret_value() == "not-a-real-secret"


def test_readme_sql_runs_as_written_on_the_tours_table(tour: Tour) -> None:
    """Each statement of each ```sql block runs through `mp sql` on the table the tour
    fetched, and reading the typed columns gives what the `properties` JSON gives."""
    import duckdb

    blocks = [b for b in readme_blocks() if b.lang == "sql" and b.not_run is None]
    assert blocks, "the README lost its SQL example"
    db = tour.home / ".mp" / "data" / "1000002.duckdb"
    for block in blocks:
        for statement in (s.strip() for s in block.text.split(";")):
            if not statement or statement.startswith("--"):
                continue
            proc = subprocess.run(
                [MP, "sql", statement, "-f", "json"],
                env=tour.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, f"README.md:{block.line}: {statement}\n{proc.stderr}"
            rows = json.loads(proc.stdout)
            assert rows, f"README.md:{block.line}: {statement} returned no rows"
    with duckdb.connect(str(db), read_only=True) as conn:
        typed = conn.execute("SELECT mp_country_code, count(*) FROM events GROUP BY 1").fetchall()
        via_json = conn.execute(
            "SELECT properties->>'$.mp_country_code', count(*) FROM events GROUP BY 1"
        ).fetchall()
    assert sorted(typed, key=repr) == sorted(via_json, key=repr)
