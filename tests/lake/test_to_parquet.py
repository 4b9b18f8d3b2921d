"""`mp fetch events --to-parquet DIR`: each fetched day lands in its partition, idempotently.

Fetched from the emulator over loopback; the lake is read with Dask and compared
with DuckDB (the fetched table) and with the lake `mp export` writes.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
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


@pytest.fixture
def account(emulator: Any) -> list[str]:
    """Global options that point `mp` at the emulator (an account in the temp config)."""
    creds = emulator_credentials(emulator)
    from mixpanel_data import auth

    auth.add_account(
        "emu",
        username=creds.username,
        secret=creds.secret.get_secret_value(),
        project_id=creds.project_id,
        base_url=creds.base_url,
        timezone=creds.timezone,
        make_default=True,
    )
    return ["--account", "emu"]


def _days(emulator: Any, n: int) -> list[date]:
    last = sorted(emulator.project.data_dates)[-2]
    return [last - timedelta(days=k) for k in range(n - 1, -1, -1)]


def _dask(table_dir: Path) -> tuple[int, Counter[tuple[str, str]]]:
    import dask.dataframe as dd

    frame = dd.read_parquet(str(table_dir))
    grouped = frame.groupby(["date", "event_name"], observed=True).size().compute()
    total = int(frame.shape[0].compute())
    return total, Counter({(str(d), str(n)): int(c) for (d, n), c in grouped.items() if c})


def _duckdb(db: Path) -> Counter[tuple[str, str]]:
    with Workspace.open(db) as ws:
        rows = ws.sql_rows(
            "SELECT strftime(event_date, '%Y-%m-%d'), event_name, count(*) FROM events GROUP BY ALL"
        )
    return Counter({(d, n): int(c) for d, n, c in rows.rows})


def test_to_parquet_lake_matches_duckdb_and_mp_export(account, emulator, tmp_path: Path) -> None:
    days = _days(emulator, 4)
    db, lake = tmp_path / "a.duckdb", tmp_path / "lake"
    ran = _mp(
        *account, "--db", str(db), "fetch", "events",
        "--from", str(days[0]), "--to", str(days[-1]), "--to-parquet", str(lake),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.stderr
    fetched = orjson.loads(ran.stdout)
    in_duckdb = _duckdb(db)
    assert sum(in_duckdb.values()) == fetched["table_rows"] > 0
    parts = sorted(p.name for p in (lake / "events").iterdir())
    assert parts == [f"date={d}" for d in days]
    assert _dask(lake / "events") == (sum(in_duckdb.values()), in_duckdb)
    exported = _mp("--db", str(db), "export", "events", str(tmp_path / "exported"))
    assert exported.exit_code == 0, exported.stderr
    assert _dask(tmp_path / "exported" / "events") == _dask(lake / "events")


def test_rerunning_a_day_replaces_exactly_that_partition(account, emulator, tmp_path) -> None:
    days = _days(emulator, 3)
    lake = tmp_path / "lake"
    first = _mp(
        *account, "--db", ":memory:", "fetch", "events",
        "--from", str(days[0]), "--to", str(days[-1]), "--to-parquet", str(lake),
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    total, before = _dask(lake / "events")
    middle = lake / "events" / f"date={days[1]}" / "data_0.parquet"
    other = lake / "events" / f"date={days[0]}" / "data_0.parquet"
    other_bytes = other.read_bytes()
    # The same day again, from another shard (a fresh database): nothing is duplicated.
    again = _mp(
        *account, "--db", ":memory:", "fetch", "events",
        "--from", str(days[1]), "--to", str(days[1]), "--to-parquet", str(lake),
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert _dask(lake / "events") == (total, before)
    # A narrower fetch of that day replaces its partition, and only that one.
    narrow = _mp(
        *account, "--db", ":memory:", "fetch", "events",
        "--from", str(days[1]), "--to", str(days[1]), "-e", "Purchase",
        "--to-parquet", str(lake),
    )  # fmt: skip
    assert narrow.exit_code == 0, narrow.stderr
    _, after = _dask(lake / "events")
    expected = Counter(
        {k: v for k, v in before.items() if k[0] != str(days[1]) or k[1] == "Purchase"}
    )
    assert after == expected
    assert expected[(str(days[1]), "Purchase")] > 0
    assert other.read_bytes() == other_bytes
    assert sorted(p.name for p in middle.parent.iterdir()) == ["data_0.parquet"]


def test_to_parquet_refuses_a_month_lake_before_fetching(account, emulator, tmp_path) -> None:
    days = _days(emulator, 1)
    lake = tmp_path / "lake"
    (lake / "events" / "month=2024-01").mkdir(parents=True)
    (lake / "events" / "month=2024-01" / "data_0.parquet").write_bytes(b"PAR1")
    before = max((r.id for r in emulator.requests()), default=-1)
    ran = _mp(
        *account, "--db", str(tmp_path / "x.duckdb"), "fetch", "events",
        "--from", str(days[0]), "--to", str(days[0]), "--to-parquet", str(lake),
    )  # fmt: skip
    assert ran.exit_code == 3
    assert "month=... partitions" in ran.stderr
    assert not [r for r in emulator.requests() if r.id > before and r.family == "export"]


def test_a_killed_fetch_leaves_exactly_its_committed_days_and_resumes(
    account, emulator, tmp_path: Path
) -> None:
    import os
    import subprocess

    days = _days(emulator, 4)
    db, lake = tmp_path / "k.duckdb", tmp_path / "lake"
    argv = [
        str(Path(sys.executable).with_name("mp")), *account, "--db", str(db), "fetch", "events",
        "--from", str(days[0]), "--to", str(days[-1]), "--to-parquet", str(lake), "--workers", "1",
    ]  # fmt: skip
    # Slow downloads (~1.5 s a day) so windows commit one by one; then SIGKILL inside
    # the second window's transaction, before its COMMIT (the fetcher's crash seam).
    emulator.faults.add("slow", endpoint="export", prob=1.0, bytes_per_second=600_000)
    try:
        env = {**os.environ, "MP_TEST_CRASH_AT": "commit:2"}
        killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    finally:
        emulator.faults.clear()
    assert killed.returncode == -9, killed.stderr
    with Workspace.open(db) as ws:
        done = ws.sql_rows("SELECT from_date, to_date FROM _mp_windows").rows
    committed = {str(s + timedelta(days=k)) for s, e in done for k in range((e - s).days + 1)}
    assert 0 < len(committed) < len(days)
    in_lake = {p.name.removeprefix("date=") for p in (lake / "events").iterdir()}
    assert in_lake == committed  # a day is in the lake exactly when its window committed
    resumed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    in_duckdb = _duckdb(db)
    assert {d for d, _ in in_duckdb} == {str(d) for d in days}
    assert _dask(lake / "events") == (sum(in_duckdb.values()), in_duckdb)


def test_update_keeps_the_lake_current(account, emulator, tmp_path: Path) -> None:
    days = _days(emulator, 2)
    db, lake = tmp_path / "u.duckdb", tmp_path / "lake"
    base = [*account, "--db", str(db), "fetch", "events"]
    first = _mp(*base, "--from", str(days[0]), "--to", str(days[1]), "--to-parquet", str(lake))
    assert first.exit_code == 0, first.stderr
    update = _mp(*base, "--update", "--lookback-days", "1", "--to-parquet", str(lake))
    assert update.exit_code == 0, update.stderr
    # The update refetched from the last day minus the look-back (days[0]) to today.
    today = emulator.project.today
    parts = sorted(p.name.removeprefix("date=") for p in (lake / "events").iterdir())
    assert parts == [str(days[0] + timedelta(days=k)) for k in range((today - days[0]).days + 1)]
    in_duckdb = _duckdb(db)
    assert _dask(lake / "events") == (sum(in_duckdb.values()), in_duckdb)


def test_stdout_and_to_parquet_are_refused_together(tmp_path) -> None:
    from mixpanel_data.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(
            [
                "fetch",
                "events",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-01",
                "--stdout",
                "--to-parquet",
                str(tmp_path / "lake"),
            ]
        )
    assert done.value.code == 3
    assert not (tmp_path / "lake").exists()


def test_replace_with_to_parquet_rewrites_table_and_lake(account, emulator, tmp_path) -> None:
    days = _days(emulator, 3)
    db, lake = tmp_path / "r.duckdb", tmp_path / "lake"
    base = (*account, "--db", str(db), "fetch", "events", "--to-parquet", str(lake))
    first = _mp(*base, "--from", str(days[0]), "--to", str(days[-1]))
    assert first.exit_code == 0, first.stderr
    replaced = _mp(*base, "--from", str(days[1]), "--to", str(days[-1]), "--replace")
    assert replaced.exit_code == 0, replaced.stderr
    assert orjson.loads(replaced.stdout)["mode"] == "replace"
    in_duckdb = _duckdb(db)
    assert {d for d, _ in in_duckdb} == {str(d) for d in days[1:]}
    # The replaced days' partitions hold exactly the new table's rows.
    _, counts = _dask(lake / "events")
    kept = Counter({k: v for k, v in counts.items() if k[0] != str(days[0])})
    assert kept == in_duckdb


def _engines_read(table_dir: Path) -> int:
    """Rows as DuckDB (a glob over the whole lake) and Polars (the table folder) see them."""
    import duckdb
    import polars as pl

    glob = str(table_dir.parent / "**" / "*.parquet")
    ((in_duckdb,),) = duckdb.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchall()
    in_polars = pl.scan_parquet(str(table_dir)).select(pl.len()).collect().item()
    assert in_duckdb == in_polars
    return int(in_polars)


@pytest.mark.parametrize("command", ["export", "to-parquet"])
def test_a_killed_lake_write_leaves_nothing_engines_read_and_is_swept(
    account, emulator, tmp_path: Path, command: str
) -> None:
    import os
    import subprocess

    days = _days(emulator, 3)
    db, lake = tmp_path / "k.duckdb", tmp_path / "lake"
    fetch = [*account, "--db", str(db), "fetch", "events", "--from", str(days[0])]
    ran = _mp(*fetch, "--to", str(days[1]), "--to-parquet", str(lake))
    assert ran.exit_code == 0, ran.stderr
    before = _engines_read(lake / "events")
    if command == "export":
        argv = ["--db", str(db), "export", "events", str(lake)]
    else:
        argv = [*fetch, "--to", str(days[2]), "--append", "--to-parquet", str(lake)]
    env = {**os.environ, "MP_TEST_CRASH_AT": "lake"}
    killed = subprocess.run(
        [sys.executable, "-m", "mixpanel_data", *argv], env=env, capture_output=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    staged = list(lake.glob(".mp-staging-*"))
    assert staged  # what the killed writer left
    assert all(p.is_dir() for p in staged)
    assert not list((lake / "events").rglob("*.tmp"))  # none inside the table folder
    assert _engines_read(lake / "events") == before  # engines read the lake regardless
    again = _mp(*argv)
    assert again.exit_code == 0, again.stderr
    assert not list(lake.glob(".mp-staging-*"))  # the dead writer's staging was swept
    assert _engines_read(lake / "events") == _mp_table_rows(db)


def _mp_table_rows(db: Path) -> int:
    with Workspace.open(db) as ws:
        return int(ws.sql_scalar("SELECT count(*) FROM events"))
