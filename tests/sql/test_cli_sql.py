"""`mp sql` in every output format, in-process and as real processes, alone and side by side."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from mixpanel_data._internal.storage.locks import ReaderQueue

QUERY = (
    "SELECT event_name, count(*) AS n, min(event_time) AS first_seen "
    "FROM events GROUP BY 1 ORDER BY n DESC, event_name"
)


def expected_counts(local_db) -> list[tuple[str, int]]:
    counts = Counter(e["event_name"] for e in local_db.events)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def first_seen(local_db, name: str) -> str:
    return min(e["event_time"] for e in local_db.events if e["event_name"] == name).isoformat()


def test_json_is_a_list_of_row_objects_with_iso_times(local_db, run_mp) -> None:
    r = run_mp("--db", str(local_db.path), "sql", QUERY)
    assert (r.exit_code, r.stderr) == (0, "")
    rows = json.loads(r.stdout)
    assert [(row["event_name"], row["n"]) for row in rows] == expected_counts(local_db)
    assert rows[0]["first_seen"] == first_seen(local_db, rows[0]["event_name"])


def test_json_columns_are_nested_values(local_db, run_mp) -> None:
    r = run_mp(
        "--db",
        str(local_db.path),
        "sql",
        "SELECT properties FROM events WHERE event_name = 'Purchase' ORDER BY event_time",
        "-f",
        "jsonl",
    )
    assert r.exit_code == 0
    got = [json.loads(line)["properties"] for line in r.stdout.splitlines()]
    expected = sorted(local_db.purchases, key=lambda e: e["event_time"])
    assert got == [e["properties"] for e in expected]


def test_csv_table_and_plain(local_db, run_mp) -> None:
    db = str(local_db.path)
    expected = expected_counts(local_db)
    r = run_mp("--db", db, "sql", QUERY, "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(row["event_name"], int(row["n"])) for row in rows] == expected
    assert rows[0]["first_seen"] == first_seen(local_db, expected[0][0])
    r = run_mp("--db", db, "sql", QUERY, "-f", "plain")
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert [(name, int(n)) for name, n, _ in lines] == expected
    r = run_mp("--db", db, "sql", QUERY, "-f", "table")
    assert r.exit_code == 0
    header, *body = [line for line in r.stdout.splitlines() if line.strip()]
    assert "event_name" in header
    assert "first_seen" in header
    for name, n in expected:
        assert any(name in line and f" {n} " in f" {line} " for line in body), name


def test_empty_result_keeps_the_header(local_db, run_mp) -> None:
    db = str(local_db.path)
    q = "SELECT event_name, distinct_id FROM events WHERE false"
    assert run_mp("--db", db, "sql", q, "-f", "csv").stdout == "event_name,distinct_id\n"
    assert json.loads(run_mp("--db", db, "sql", q).stdout) == []
    table = run_mp("--db", db, "sql", q, "-f", "table").stdout
    assert "event_name" in table
    assert "distinct_id" in table


def test_duplicate_column_names_keep_every_value(local_db, run_mp) -> None:
    r = run_mp("--db", str(local_db.path), "sql", "SELECT 1 AS a, 2 AS a")
    assert json.loads(r.stdout) == [{"a": 1, "a_2": 2}]


def test_scalar_file_stdin_and_jq(local_db, run_mp, tmp_path: Path) -> None:
    db = str(local_db.path)
    n = len(local_db.events)
    assert run_mp("--db", db, "sql", "SELECT count(*) FROM events", "--scalar").stdout == f"{n}\n"
    sql_file = tmp_path / "q.sql"
    sql_file.write_text("SELECT count(*) AS n FROM profiles;\n")
    r = run_mp("--db", db, "sql", "--file", str(sql_file), "--scalar", "-f", "plain")
    assert r.stdout == f"{len(local_db.profiles)}\n"
    r = run_mp("--db", db, "sql", "-", "--scalar", input="SELECT count(*) FROM purchases")
    assert r.stdout == f"{len(local_db.purchases)}\n"
    r = run_mp("--db", db, "sql", QUERY, "--jq", ".[0].event_name", "-f", "json")
    assert json.loads(r.stdout) == expected_counts(local_db)[0][0]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["sql", "SELECT * FROM evnets"], 4, "table 'evnets' not found"),
        (["sql", "SELEC 1"], 3, "syntax error"),
        (["sql", "DROP TABLE events"], 3, "read-only"),
        (["sql"], 3, "no SQL given"),
        (["sql", "SELECT 1", "--file", "q.sql"], 3, "not both"),
        (["sql", "--file", "/nonexistent/q.sql"], 3, "cannot read --file"),
    ],
)
def test_errors_are_one_line_with_exit_code(local_db, run_mp, args, code, fragment) -> None:
    r = run_mp("--db", str(local_db.path), *args)
    assert r.exit_code == code
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("Error: ")
    assert fragment in r.stderr
    # Nothing changed.
    check = run_mp("--db", str(local_db.path), "sql", "SELECT count(*) FROM events", "--scalar")
    assert check.stdout == f"{len(local_db.events)}\n"


def test_missing_database_is_exit_4_and_creates_nothing(tmp_path: Path, run_mp) -> None:
    missing = tmp_path / "missing.duckdb"
    r = run_mp("--db", str(missing), "sql", "SELECT 1")
    assert r.exit_code == 4
    assert (
        r.stderr
        == f"Error: database {missing} does not exist; fetch data first with `mp fetch events`\n"
    )
    assert not missing.exists()


def mp_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mixpanel_data", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def test_every_format_as_a_real_process(local_db) -> None:
    """Started together: they also show that several read-only `mp sql` run at once."""
    db = str(local_db.path)
    procs = {
        fmt: mp_process("--db", db, "sql", QUERY, "-f", fmt)
        for fmt in ("json", "jsonl", "csv", "table", "plain")
    }
    out = {}
    for fmt, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert (proc.returncode, stderr) == (0, ""), fmt
        out[fmt] = stdout
    expected = expected_counts(local_db)
    assert [(r["event_name"], r["n"]) for r in json.loads(out["json"])] == expected
    jsonl = [json.loads(line) for line in out["jsonl"].splitlines()]
    assert [(r["event_name"], r["n"]) for r in jsonl] == expected
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [(r["event_name"], int(r["n"])) for r in rows] == expected
    assert [tuple(line.split("\t")[:2]) for line in out["plain"].splitlines()] == [
        (name, str(n)) for name, n in expected
    ]
    assert all(name in out["table"] for name, _ in expected)
    assert "\x1b[" not in out["table"]  # no colour codes when stdout is a pipe


HOLD_WRITE_LOCK = textwrap.dedent(
    """
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])
    conn.execute("INSERT INTO events SELECT * FROM events LIMIT 0")
    print("locked", flush=True)
    sys.stdin.readline()          # hold the lock until told to let go
    conn.close()
    """
)


def test_readers_wait_for_a_writer_briefly_holding_the_lock(local_db) -> None:
    """A writer (like a fetch committing a window) holds the file; two `mp sql` wait, then read."""
    db = str(local_db.path)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        # -q: it waits like the others, saying nothing (started first, so the readers'
        # side file is held by it alone until it is seen waiting).
        quiet = mp_process("-q", "--db", db, "sql", "SELECT count(*) FROM events", "--scalar")
        side = ReaderQueue(Path(db))
        deadline = time.monotonic() + 60
        while not side.readers_waiting() and quiet.poll() is None:
            assert time.monotonic() < deadline, "the quiet reader never waited"
            time.sleep(0.05)
        readers = [
            mp_process("--db", db, "sql", "SELECT count(*) FROM events", "--scalar"),
            mp_process("--db", db, "sql", "SELECT count(*) FROM profiles", "--scalar"),
        ]
        # Release the lock only once both readers say they are waiting (no fixed sleep).
        waiting = []
        for proc in readers:
            assert proc.stderr is not None
            waiting.append(proc.stderr.readline())
        assert all(f"waiting for process {holder.pid}" in line for line in waiting), waiting
        holder.communicate("\n", timeout=60)
    results = []
    for proc in readers:
        with proc:
            results.append(proc.communicate(timeout=60))
    assert [p.returncode for p in readers] == [0, 0]
    assert [out for out, _ in results] == [
        f"{len(local_db.events)}\n",
        f"{len(local_db.profiles)}\n",
    ]
    with quiet:
        assert quiet.communicate(timeout=60) == (f"{len(local_db.events)}\n", "")
    assert quiet.returncode == 0
