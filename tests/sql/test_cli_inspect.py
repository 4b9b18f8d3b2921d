"""`mp inspect` local commands: results checked through the library and independent Python."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections import Counter

import pytest

from mixpanel_data import Workspace


def test_info_tables_schema(local_db, run_mp) -> None:
    db = str(local_db.path)
    info = json.loads(run_mp("--db", db, "inspect", "info").stdout)
    assert (info["path"], info["project_id"]) == (db, "4242")
    assert [t["name"] for t in info["tables"]] == ["events", "profiles", "purchases"]
    tables = json.loads(run_mp("--db", db, "inspect", "tables").stdout)
    assert {t["name"]: t["row_count"] for t in tables} == {
        "events": len(local_db.events),
        "profiles": len(local_db.profiles),
        "purchases": len(local_db.purchases),
    }
    rows = list(
        csv.DictReader(io.StringIO(run_mp("--db", db, "inspect", "tables", "-f", "csv").stdout))
    )
    assert [(r["name"], r["kind"]) for r in rows] == [
        ("events", "events"),
        ("profiles", "profiles"),
        ("purchases", "events"),
    ]
    schema = json.loads(run_mp("--db", db, "inspect", "schema", "profiles").stdout)
    assert [(c["name"], c["type"]) for c in schema["columns"]] == [
        ("distinct_id", "VARCHAR"),
        ("last_seen", "TIMESTAMP WITH TIME ZONE"),
        ("properties", "JSON"),
    ]


def test_breakdown_keys_column(local_db, run_mp) -> None:
    db = str(local_db.path)
    breakdown = json.loads(run_mp("--db", db, "inspect", "breakdown", "events").stdout)
    counts = Counter(e["event_name"] for e in local_db.events)
    assert {e["event_name"]: e["count"] for e in breakdown["events"]} == dict(counts)
    table = run_mp("--db", db, "inspect", "breakdown", "events", "-f", "table").stdout
    assert all(name in table for name in counts)
    keys = run_mp("--db", db, "inspect", "keys", "events", "--event", "Add To Cart", "-f", "plain")
    expected = sorted(
        {k for e in local_db.events if e["event_name"] == "Add To Cart" for k in e["properties"]}
    )
    assert keys.stdout.splitlines() == expected
    stats = json.loads(
        run_mp("--db", db, "inspect", "column", "events", "$.mp_country_code").stdout
    )
    countries = Counter(e["properties"]["mp_country_code"] for e in local_db.events)
    assert {t["value"]: t["count"] for t in stats["top_values"]} == dict(countries)
    assert stats["distinct_count"] == len(countries)


def test_sample_and_summarize(local_db, run_mp) -> None:
    db = str(local_db.path)
    rows = json.loads(run_mp("--db", db, "inspect", "sample", "events", "-n", "3").stdout)
    assert len(rows) == 3
    assert {r["insert_id"] for r in rows} <= {e["insert_id"] for e in local_db.events}
    summary = json.loads(run_mp("--db", db, "inspect", "summarize", "profiles").stdout)
    assert [s["column_name"] for s in summary] == ["distinct_id", "last_seen", "properties"]
    assert {s["count"] for s in summary} == {len(local_db.profiles)}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["inspect", "schema", "x; DROP TABLE y"], 3),
        (["inspect", "schema", "nope"], 4),
        (["inspect", "sample", "events", "-n", "0"], 3),
        (["inspect", "column", "events", "x; DROP TABLE events"], 3),
        (["inspect", "keys", "profiles", "--event", "Login"], 3),
        (["inspect", "drop", "x; DROP TABLE y", "--yes"], 3),
        (["inspect", "drop", "nope", "--yes"], 4),
        (["inspect", "drop-all", "--type", "cohorts", "--yes"], 3),
    ],
)
def test_bad_names_and_missing_tables(local_db, run_mp, args, code) -> None:
    r = run_mp("--db", str(local_db.path), *args)
    assert r.exit_code == code
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") or r.stderr.startswith("Usage:")
    with Workspace.open(local_db.path) as ws:
        assert [t.name for t in ws.tables()] == ["events", "profiles", "purchases"]


@pytest.mark.parametrize("command", [["info"], ["tables"], ["schema", "events"]])
def test_missing_database_is_one_line_exit_4(tmp_path, run_mp, command) -> None:
    missing = tmp_path / "missing.duckdb"
    r = run_mp("--db", str(missing), "inspect", *command)
    assert r.exit_code == 4
    assert r.stderr.count("\n") == 1
    assert "does not exist" in r.stderr
    assert not missing.exists()


def test_drop_refuses_without_yes_when_stdin_is_not_a_terminal(local_db, run_mp) -> None:
    r = run_mp("--db", str(local_db.path), "inspect", "drop", "events", input="y\n")
    assert r.exit_code == 3
    assert "--yes" in r.stderr
    r = run_mp("--db", str(local_db.path), "inspect", "drop-all", input="y\n")
    assert r.exit_code == 3
    with Workspace.open(local_db.path) as ws:
        assert len(ws.tables()) == 3


def test_drop_and_drop_all_with_yes(local_db, run_mp) -> None:
    db = str(local_db.path)
    r = run_mp("--db", db, "inspect", "drop", "purchases", "events", "--yes")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {"dropped": ["purchases", "events"]}
    r = run_mp("--db", db, "inspect", "drop-all", "--type", "events", "--yes")
    assert json.loads(r.stdout) == {"dropped": []}
    with Workspace.open(local_db.path) as ws:
        assert [t.name for t in ws.tables()] == ["profiles"]


def _answer_on_a_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run `mp` with a pseudo-terminal as stdin and stderr; answer the prompt."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixpanel_data", *args],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=os.environ.copy(),
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                seen += os.read(leader, 1024)
        assert b"[y/N]" in seen, seen
        os.write(leader, answer.encode() + b"\n")
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    return proc.returncode, stdout.decode()


def test_drop_asks_on_a_terminal(local_db) -> None:
    db = str(local_db.path)
    code, stdout = _answer_on_a_terminal(["--db", db, "inspect", "drop", "purchases"], "n")
    assert (code, stdout) == (1, "")
    with Workspace.open(local_db.path) as ws:
        assert "purchases" in [t.name for t in ws.tables()]
    code, stdout = _answer_on_a_terminal(["--db", db, "inspect", "drop", "purchases"], "y")
    assert code == 0
    assert json.loads(stdout) == {"dropped": ["purchases"]}
    with Workspace.open(local_db.path) as ws:
        assert "purchases" not in [t.name for t in ws.tables()]
