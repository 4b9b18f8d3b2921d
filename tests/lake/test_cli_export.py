"""`mp export` end to end: fetched from the emulator, written as a lake, read by Dask.

The CLI runs through CliRunner; results are checked through pyarrow, Dask and the
library, never through the command's own output alone.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.conftest import emulator_credentials
from typer.testing import CliRunner

from mixpanel_data import Workspace
from mixpanel_data.cli.main import main

pytestmark = pytest.mark.filterwarnings(
    "ignore::pandas.errors.Pandas4Warning"
)  # dask vs pandas 3.1


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str


def _mp(*args: str) -> Ran:
    """Run `mp` in-process through its real entry point (the one error handler included)."""
    code: Any = 0
    with CliRunner().isolation() as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush()
        sys.stderr.flush()
        return Ran(int(code or 0), out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture(scope="module")
def fetched(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Five days of the emulator's events fetched into a DuckDB file (once per module)."""
    db = tmp_path_factory.mktemp("lake-cli") / "emu.duckdb"
    dates = sorted(emulator.project.data_dates)
    first = dates[-6]
    with Workspace(credentials=emulator_credentials(emulator), path=db) as ws:
        result = ws.fetch_events(
            "events", from_date=first, to_date=first + timedelta(days=4), workers=2
        )
    assert result.rows_inserted > 0
    return db, result


def _duckdb_per_day(db: Path) -> Counter[tuple[str, str]]:
    with Workspace.open(db) as ws:
        rows = ws.sql_rows(
            "SELECT strftime(event_date, '%Y-%m-%d'), event_name, count(*) FROM events GROUP BY ALL"
        )
    return Counter({(d, n): int(c) for d, n, c in rows.rows})


def _dask_per_day(table_dir: Path) -> tuple[int, Counter[tuple[str, str]]]:
    import dask.dataframe as dd

    frame = dd.read_parquet(str(table_dir))
    grouped = frame.groupby(["date", "event_name"], observed=True).size().compute()
    total = int(frame.shape[0].compute())
    return total, Counter({(str(d), str(n)): int(c) for (d, n), c in grouped.items() if c})


def test_mp_export_events_is_read_by_dask_like_duckdb(fetched, tmp_path: Path) -> None:
    db, _ = fetched
    lake = tmp_path / "lake"
    result = _mp("--db", str(db), "export", "events", str(lake))
    assert result.exit_code == 0, result.stderr
    payload = orjson.loads(result.stdout)
    in_duckdb = _duckdb_per_day(db)
    days = sorted({d for d, _ in in_duckdb})
    assert len(days) == 5  # project days (event_date), the fetched range
    assert payload["rows"] == sum(in_duckdb.values())
    assert payload["partitions"] == days
    assert payload["partition_by"] == "day"
    assert f"wrote {payload['rows']} rows of events" in result.stderr
    total, in_dask = _dask_per_day(lake / "events")
    assert total == sum(in_duckdb.values())
    assert in_dask == in_duckdb
    # Re-running replaces every partition: same files, same counts, no duplicates.
    again = _mp("--quiet", "--db", str(db), "export", "events", str(lake))
    assert again.exit_code == 0, again.stderr
    assert again.stderr == ""
    assert _dask_per_day(lake / "events") == (total, in_duckdb)
    assert sorted(p.name for p in (lake / "events").iterdir()) == [f"date={d}" for d in days]


def test_mp_export_profiles_as_csv(local_data, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    result = _mp("--db", str(local_data.path), "export", "profiles", str(lake), "-f", "csv")
    assert result.exit_code == 0, result.stderr
    files = list((lake / "profiles").iterdir())
    assert [f.name for f in files] == ["data_0.parquet"]
    assert pq.read_table(files[0]).num_rows == len(local_data.profiles)
    assert result.stdout.splitlines() == ["partition,file", f",{files[0]}"]
    assert "(one file)" in result.stderr


def test_mp_export_by_month(fetched, tmp_path: Path) -> None:
    db, _ = fetched
    lake = tmp_path / "lake"
    monthly = _mp("--db", str(db), "export", "events", str(lake), "--partition-by", "MONTH")
    assert monthly.exit_code == 0, monthly.stderr
    months = sorted({d[:7] for d, _ in _duckdb_per_day(db)})
    assert orjson.loads(monthly.stdout)["partitions"] == months
    assert sorted(p.name for p in (lake / "events").iterdir()) == [f"month={m}" for m in months]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["export", "nope", "LAKE"], 4, "table 'nope' not found"),
        (["export", "x; DROP TABLE y", "LAKE"], 3, "invalid table name"),
        (["export", "events", "LAKE", "--partition-by", "week"], 3, "week"),
    ],
)
def test_mp_export_errors(local_data, tmp_path: Path, args, code, needle) -> None:
    lake = tmp_path / "lake"
    argv = [a.replace("LAKE", str(lake)) for a in args]
    result = _mp("--db", str(local_data.path), *argv)
    assert result.exit_code == code, result.stderr
    assert needle in result.stderr
    assert result.stdout == ""
    assert not lake.exists() or not any(lake.iterdir())


def test_mp_export_missing_database(tmp_path: Path) -> None:
    result = _mp("--db", str(tmp_path / "none.duckdb"), "export", "events", str(tmp_path / "l"))
    assert result.exit_code == 4
    assert "does not exist" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_export_file_format_csv_writes_the_table_as_csv_partitions(
    fetched: tuple[Path, Any], tmp_path: Path
) -> None:
    """`mp export --file-format csv`: a header row, one file per project day, the same rows as
    the table (read back with the stdlib csv module), next to the Parquet lake."""
    import csv

    import duckdb

    db, _ = fetched
    lake = tmp_path / "lake"
    parquet = _mp("--db", str(db), "export", "events", str(lake))
    assert parquet.exit_code == 0, parquet.stderr
    ran = _mp("--db", str(db), "export", "events", str(lake), "--file-format", "csv")
    assert ran.exit_code == 0, ran.stderr
    assert "as CSV" in ran.stderr
    out = orjson.loads(ran.stdout)
    assert out["file_format"] == "csv"
    assert all(f.endswith("/data_0.csv") for f in out["files"])
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        per_day = dict(
            conn.execute(
                "SELECT strftime(event_date, '%Y-%m-%d'), count(*) FROM events GROUP BY 1"
            ).fetchall()
        )
        insert_ids = {r[0] for r in conn.execute("SELECT insert_id FROM events").fetchall()}
        columns = [r[0] for r in conn.execute("DESCRIBE events").fetchall()]
    seen: dict[str, int] = {}
    read_ids = set()
    for name in out["files"]:
        day = Path(name).parent.name.removeprefix("date=")
        with open(name, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == columns
        seen[day] = len(rows)
        read_ids.update(r["insert_id"] for r in rows)
        orjson.loads(rows[0]["properties"])  # JSON as text
    assert seen == per_day
    assert read_ids == insert_ids
    assert out["rows"] == sum(per_day.values())
    # the Parquet files of the same partitions are still there, untouched
    assert len(list((lake / "events").glob("date=*/data_0.parquet"))) == len(per_day)
    with Workspace.open(db) as ws:
        again = ws.export_csv("events", lake)
    assert again.files == tuple(out["files"])
    bad = _mp("--db", str(db), "export", "events", str(lake), "--file-format", "xlsx")
    assert bad.exit_code == 3
    assert "xlsx" in bad.stderr
