"""The `mp` shell: version, help, usage errors, closed pipes, formats."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from mixpanel_data import __version__
from mixpanel_data.cli.formatters import render
from mixpanel_data.cli.options import Format
from mixpanel_data.exceptions import ValidationError


def mp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixpanel_data", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_version() -> None:
    r = mp("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"mp {__version__}")


def test_help_lists_groups_and_is_fast_to_import() -> None:
    r = mp("--help")
    assert r.returncode == 0
    assert "auth" in r.stdout
    # Heavy modules stay unloaded for --help.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mixpanel_data.cli.main import app; "
            "print(sorted(m for m in ('duckdb','pandas','pyarrow') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "[]"


def test_usage_error_is_exit_3_without_traceback() -> None:
    r = mp("auth", "add")
    assert r.returncode == 3
    assert "Traceback" not in r.stderr
    r = mp("--no-such-option")
    assert r.returncode == 3


def test_closed_stdout_exits_quietly() -> None:
    env = {**os.environ, "MP_USERNAME": "u", "MP_SECRET": "s" * 10, "MP_PROJECT_ID": "1"}
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mixpanel_data",
            "auth",
            "show",
            "-f",
            "jsonl",
            "--jq",
            "range(300000)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert producer.stdout is not None
    head = subprocess.run(["head", "-c", "1"], stdin=producer.stdout, capture_output=True)
    producer.stdout.close()
    _, err = producer.communicate(timeout=60)
    assert head.stdout == b"0"
    assert producer.returncode == 0
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


ROWS = [{"a": 1, "b": {"x": [1, 2]}}, {"a": 2, "c": "only-here", "d": None}]


def test_csv_uses_union_of_keys() -> None:
    text = render(ROWS, fmt=Format.csv)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed == [
        ["a", "b", "c", "d"],
        ["1", '{"x":[1,2]}', "", ""],
        ["2", "", "only-here", ""],
    ]


def test_json_jsonl_plain_and_jq() -> None:
    assert json.loads(render(ROWS, fmt=Format.json)) == ROWS
    assert [json.loads(line) for line in render(ROWS, fmt=Format.jsonl).splitlines()] == ROWS
    # jsonl: --jq runs on each record, as `jq -c` over a JSONL file would
    assert render(ROWS, fmt=Format.jsonl, jq=".a") == "1\n2\n"
    assert render(ROWS, fmt=Format.jsonl, jq="select(.a > 1) | .a") == "2\n"
    # json: on the whole document
    assert render(ROWS, fmt=Format.json, jq=".[].a") == "1\n2\n"
    assert json.loads(render(ROWS, fmt=Format.json, jq="map(.a)")) == [1, 2]
    assert render(["x", "y"], fmt=Format.plain) == "x\ny\n"
    assert render({"k": 1}, fmt=Format.plain) == "k\t1\n"


def test_table_has_all_columns() -> None:
    text = render(ROWS, fmt=Format.table)
    for col in ("a", "b", "c", "d", "only-here"):
        assert col in text


def test_jq_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="invalid --jq expression"):
        render(ROWS, fmt=Format.json, jq=".[")
    with pytest.raises(ValidationError, match="only with --format json or jsonl"):
        render(ROWS, fmt=Format.csv, jq=".")
