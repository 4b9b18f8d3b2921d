"""CLI conventions (issue 15): help, tables, headers, messages, and fetches that find nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import Workspace
from mixpanel_data.cli.formatters import render
from mixpanel_data.cli.main import main
from mixpanel_data.cli.options import Format
from mixpanel_data.exceptions import TableExistsError

MP = str(Path(sys.executable).with_name("mp"))


@pytest.fixture
def mp(emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `mp ARGS` in-process against the emulator; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("MP_USERNAME", emulator.username)
    monkeypatch.setenv("MP_SECRET", emulator.secret)
    monkeypatch.setenv("MP_PROJECT_ID", str(emulator.spec.project_id))
    monkeypatch.setenv("MP_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MP_TIMEZONE", emulator.spec.timezone)

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    return run


@pytest.mark.parametrize("args", [[], ["auth"], ["inspect"]])
def test_bare_command_prints_help_to_stdout_and_exits_0(args: list[str]) -> None:
    proc = subprocess.run([MP, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"Usage: mp {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")
    assert proc.stderr == ""


def test_numbers_are_right_aligned_and_text_left() -> None:
    rows = [{"name": "a", "n": 5}, {"name": "bbbbbb", "n": 12345}]
    lines = render(rows, fmt=Format.table).splitlines()
    body = [line for line in lines if "a " in line or "bbbbbb" in line]
    assert body[0].rstrip().endswith("    5")  # right-aligned under "n"
    assert body[0].index("a") < body[1].index("12345")  # text starts at the left
    assert body[0].rstrip().index("5") == body[1].rstrip().index("12345") + 4


def test_sql_count_star_header_reads_as_written(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    with Workspace.open(db, read_only=False) as ws:
        ws.sql("CREATE TABLE t AS SELECT range AS x FROM range(3)")
    proc = subprocess.run(
        [MP, "--db", str(db), "sql", "SELECT count(*), count(*) AS n FROM t", "-f", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["count(*),n", "3,3"]


def test_inspect_column_sorts_numeric_json_as_numbers(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    with Workspace.open(db, read_only=False) as ws:
        ws.sql(
            "CREATE TABLE events AS SELECT * FROM (VALUES ('{\"price\": 991.45}'::JSON), "
            "('{\"price\": 1005.16}'::JSON), ('{\"price\": 5}'::JSON)) AS t(properties)"
        )
        stats = ws.column_stats("events", "properties->'$.price'")
    assert (stats.min, stats.max) == (5, 1005.16)


def test_table_exists_error_fits_its_caller(mp: Any, emulator: Any) -> None:
    day = emulator.project.data_dates[-2].isoformat()
    with Workspace(credentials=emulator_credentials(emulator)) as ws:
        ws.fetch_events("events", from_date=day, to_date=day)
        with pytest.raises(TableExistsError) as caught:
            ws.fetch_events("events", from_date=day, to_date=day)
        assert "append=True" in str(caught.value)
        assert "--append" not in str(caught.value)
    code, _, err = mp("fetch", "events", "--from", day, "--to", day)
    assert code == 1
    assert "use --append to add to it, --replace to rebuild it" in err
    assert "append=True" not in err


def test_sample_takes_n_positionally_and_repr_names_the_database(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    with Workspace.open(db, read_only=False) as ws:
        ws.sql("CREATE TABLE t AS SELECT range AS x FROM range(10)")
        assert len(ws.sample("t", 2)) == 2
        assert repr(ws) == f"Workspace(project_id=None, path={str(db)!r})"


def test_repr_of_a_default_workspace_shows_the_resolved_path(
    emulator: Any, clean_environ: Path
) -> None:
    ws = Workspace(credentials=emulator_credentials(emulator))
    expected = clean_environ / ".mp" / "data" / f"{emulator.spec.project_id}.duckdb"
    assert repr(ws) == f"Workspace(project_id='{emulator.spec.project_id}', path='{expected}')"
    ws.close()


def test_fetch_of_an_unknown_event_warns_and_names_the_events(mp: Any) -> None:
    code, out, err = mp(
        "fetch", "events", "empty1", "--from", "2000-01-03", "--to", "2000-01-03",
        "--event", "No Such Event",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["table_rows"] == 0
    assert "warning: the fetch stored 0 rows for 2000-01-03..2000-01-03" in err
    assert "the project has no event named No Such Event (it has: " in err


def test_fetch_of_an_empty_range_names_the_range_with_data(mp: Any, emulator: Any) -> None:
    code, out, err = mp("fetch", "events", "empty2", "--from", "2000-01-03", "--to", "2000-01-04")
    assert code == 0, err
    assert json.loads(out)["table_rows"] == 0
    # the days with any of the project's first 10 events, in project time, per the raw data
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(emulator.spec.timezone)
    with Workspace(credentials=emulator_credentials(emulator)) as ws:
        top = set(ws.events()[:10])
    today = emulator.project.today
    days = sorted(
        {
            datetime.fromtimestamp(r["properties"]["time"], tz=tz).date()
            for day in emulator.project.data_dates
            for r in emulator.project.iter_export_day(day)
            if r["event"] in top
        }
    )
    days = [d for d in days if today - timedelta(days=89) <= d <= today]
    assert f"the project has data from {days[0]} to {days[-1]} (last 90 days" in err
    assert "fetch within that range" in err


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_sql_output_writes_the_file_by_extension(tmp_path: Path, suffix: str) -> None:
    import duckdb

    db = tmp_path / "t.duckdb"
    with Workspace.open(db, read_only=False) as ws:
        ws.sql("CREATE TABLE t AS SELECT range AS x, 'v' || range AS label FROM range(25)")
    out = tmp_path / f"out{suffix}"
    proc = subprocess.run(
        [MP, "--db", str(db), "sql", "SELECT * FROM t WHERE x % 2 = 0 ORDER BY x;", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == f"wrote 13 rows to {out}\n"
    if suffix == ".json":
        back = [(r["x"], r["label"]) for r in json.loads(out.read_text())]
    elif suffix == ".jsonl":
        back = [(r["x"], r["label"]) for r in map(json.loads, out.read_text().splitlines())]
    else:
        back = duckdb.sql(f"SELECT x, label FROM '{out}' ORDER BY x").fetchall()  # noqa: S608
    assert back == [(x, f"v{x}") for x in range(0, 25, 2)]


def test_sql_output_with_an_unknown_extension_says_which_work(tmp_path: Path) -> None:
    proc = subprocess.run(
        [MP, "--db", str(tmp_path / "t.duckdb"), "sql", "SELECT 1", "-o", str(tmp_path / "x.xls")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert "cannot tell the format of --output" in proc.stderr
    assert ".csv, .parquet, .json, .jsonl" in proc.stderr
    assert not (tmp_path / "x.xls").exists()


def test_live_queries_default_to_the_last_30_days_in_project_time(mp: Any, emulator: Any) -> None:
    from zoneinfo import ZoneInfo

    today = datetime.now(tz=ZoneInfo(emulator.spec.timezone)).date()
    start = today - timedelta(days=29)
    with Workspace(credentials=emulator_credentials(emulator)) as ws:
        expected = ws.segmentation("Login", from_date=start.isoformat(), to_date=today.isoformat())
        funnel_id = ws.funnels()[0].funnel_id
        funnel = ws.funnel(funnel_id, from_date=start.isoformat(), to_date=today.isoformat())
    code, out, err = mp("query", "segmentation", "Login")
    assert (code, err) == (0, "")
    assert json.loads(out) == json.loads(json.dumps(expected.to_dict()))
    assert json.loads(out)["from_date"] == start.isoformat()
    code, out, err = mp("query", "funnel", str(funnel_id), "--to", today.isoformat())
    assert (code, err) == (0, "")
    assert json.loads(out)["steps"] == json.loads(json.dumps(funnel.to_dict()))["steps"]
    code, out, _ = mp("query", "segmentation", "--help")
    text = " ".join(out.split())  # help wraps lines
    assert "default: today in the project's timezone" in text
    assert "default: 29 days before --to" in text


def test_inspect_values_counts_come_from_the_last_30_days(mp: Any, emulator: Any) -> None:
    from zoneinfo import ZoneInfo

    today = datetime.now(tz=ZoneInfo(emulator.spec.timezone)).date()
    start = (today - timedelta(days=29)).isoformat()
    with Workspace(credentials=emulator_credentials(emulator)) as ws:
        values = ws.property_values("mp_country_code", event="Purchase", limit=5)
        counts = ws.property_counts(
            "Purchase", "mp_country_code", from_date=start, to_date=today.isoformat(), limit=5
        )
    expected = [
        {"value": v, "count": int(sum(counts.values.get(str(v), {}).values()))} for v in values
    ]
    args = ["inspect", "values", "-p", "mp_country_code", "-e", "Purchase", "-l", "5"]
    code, out, err = mp(*args, "--counts")
    assert (code, err) == (0, "")
    assert json.loads(out) == expected
    assert sum(r["count"] for r in expected) > 0
    code, out, _ = mp(*args)  # without --counts: the values, as before
    assert json.loads(out) == list(values)
    code, _, err = mp("inspect", "values", "-p", "mp_country_code", "--counts")
    assert code == 3
    assert "--counts needs --event" in err
