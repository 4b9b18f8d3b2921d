"""A distributed engine (Dask on a local cluster) reads the lake with the same counts as DuckDB.

Every computation here runs on ``dask.distributed``: a real scheduler and two worker
processes over loopback (the ``dask_client`` fixture), as a user's cluster would.

Both writers are covered: `export_table` (`mp export`) and the per-day sink behind
`mp fetch events --to-parquet`; re-writing a day replaces it without duplicates.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data._internal.storage.lake import ParquetDaySink, export_table

# dask 2026.8 calls a pandas API that pandas 3.1 deprecates; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
    pytest.mark.usefixtures("dask_client"),
]

DUCKDB_PER_DAY = """
    SELECT strftime(timezone('UTC', event_time), '%Y-%m-%d') AS day, event_name, count(*)
    FROM events GROUP BY ALL
"""


def _dask_per_day(table_dir: Path) -> Counter[tuple[str, str]]:
    import dask.dataframe as dd

    frame = dd.read_parquet(str(table_dir))  # hive folders become a `date` column
    grouped = frame.groupby(["date", "event_name"], observed=True).size().compute()
    return Counter({(str(d), str(n)): int(c) for (d, n), c in grouped.items() if c})


def _dask_rows(table_dir: Path) -> int:
    import dask.dataframe as dd

    return int(dd.read_parquet(str(table_dir)).shape[0].compute())


def _duckdb_per_day(engine: StorageEngine) -> Counter[tuple[str, str]]:
    _, rows = engine.execute_rows(DUCKDB_PER_DAY)
    return Counter({(d, n): int(c) for d, n, c in rows})


def test_dask_reads_the_exported_lake(local_data, tmp_path: Path) -> None:
    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "lake")
        in_duckdb = _duckdb_per_day(engine)
    assert in_duckdb == local_data.per_day()  # DuckDB agrees with the generated rows
    table_dir = tmp_path / "lake" / "events"
    assert _dask_rows(table_dir) == len(local_data.events)
    assert _dask_per_day(table_dir) == in_duckdb


def test_dask_cluster_counts_users_and_days_like_duckdb(
    local_data, tmp_path: Path, dask_client
) -> None:
    import dask.dataframe as dd

    assert len(dask_client.scheduler_info()["workers"]) == 2  # worker processes, not threads
    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "lake")
        _, [(rows, users)] = engine.execute_rows(
            "SELECT count(*), count(DISTINCT distinct_id) FROM events"
        )
        in_duckdb = _duckdb_per_day(engine)
    frame = dd.read_parquet(str(tmp_path / "lake" / "events"))
    assert int(frame.shape[0].compute()) == rows == len(local_data.events)
    assert int(frame["distinct_id"].nunique().compute()) == users
    assert _dask_per_day(tmp_path / "lake" / "events") == in_duckdb


def _write_days(engine: StorageEngine, sink: ParquetDaySink, days: list[date], where: str = ""):
    with engine.reader() as conn:
        for day in days:
            query = "SELECT * FROM events WHERE event_time >= ?::TIMESTAMPTZ "
            query += "AND event_time < ?::TIMESTAMPTZ " + where
            sink.write_day(
                conn,
                query,
                day=day,
                params=[f"{day} 00:00:00+00", f"{day + timedelta(days=1)} 00:00:00+00"],
            )


def test_day_sink_lake_matches_duckdb_and_rerun_replaces_a_day(local_data, tmp_path) -> None:
    days = [date(2024, 2, 27) + timedelta(days=n) for n in range(6)]
    sink = ParquetDaySink(tmp_path / "lake", table="events")
    table_dir = tmp_path / "lake" / "events"
    with StorageEngine(local_data.path, read_only=True) as engine:
        in_duckdb = _duckdb_per_day(engine)
        _write_days(engine, sink, days)
        assert _dask_per_day(table_dir) == in_duckdb
        # Re-running the whole shard is idempotent...
        _write_days(engine, sink, days)
        assert _dask_rows(table_dir) == len(local_data.events)
        # ...and re-running one day with different data replaces exactly that day.
        _write_days(engine, sink, [days[1]], where="AND event_name = 'Purchase'")
    expected = Counter(
        {k: v for k, v in in_duckdb.items() if k[0] != days[1].isoformat() or k[1] == "Purchase"}
    )
    assert _dask_per_day(table_dir) == expected
    files = sorted(p.relative_to(table_dir).as_posix() for p in table_dir.rglob("*"))
    # One file per day, the empty last day included (it says "fetched, no events").
    assert [f for f in files if f.endswith(".parquet")] == [
        f"date={d}/data_0.parquet" for d in days
    ]
    assert not [f for f in files if f.endswith(".tmp")]


def test_sink_and_export_write_the_same_lake(local_data, tmp_path: Path) -> None:
    days = sorted({date.fromisoformat(d) for d, _ in local_data.per_day()})
    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "exported")
        _write_days(engine, ParquetDaySink(tmp_path / "sunk", table="events"), days)

    def listing(root: Path) -> list[tuple[str, int]]:
        import pyarrow.parquet as pq

        return sorted(
            (p.relative_to(root).as_posix(), pq.ParquetFile(p).metadata.num_rows)
            for p in root.rglob("*.parquet")
        )

    assert listing(tmp_path / "exported") == listing(tmp_path / "sunk")


def test_sink_refuses_a_month_partitioned_folder(local_data, tmp_path: Path) -> None:
    from mixpanel_data.exceptions import ValidationError

    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "lake", partition_by="month")
    with pytest.raises(ValidationError, match=r"month=\.\.\. partitions"):
        ParquetDaySink(tmp_path / "lake", table="events")


def test_write_window_utc_days_equal_export_table(local_data, tmp_path: Path) -> None:
    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "exported")
        sink = ParquetDaySink(tmp_path / "windows", table="events")
        with engine.reader() as conn:
            written = sink.write_window(
                conn, "events", start=date(2024, 2, 27), end=date(2024, 3, 2)
            )
    assert [rows for _, rows in written] == [
        local_data.per_partition()[d]
        for d in ("2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02")
    ]
    assert _dask_per_day(tmp_path / "windows" / "events") == _dask_per_day(
        tmp_path / "exported" / "events"
    )


def test_write_window_legacy_zone_uses_project_days(local_data, tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    zone = "America/Los_Angeles"
    want = Counter(
        (t.astimezone(ZoneInfo(zone)).date().isoformat(), n) for n, t, *_ in local_data.events
    )
    days = sorted({date.fromisoformat(d) for d, _ in want})
    assert days[0] < date(2024, 2, 27)  # LA's first day starts before the first UTC day
    sink = ParquetDaySink(tmp_path / "lake", table="events")
    with StorageEngine(local_data.path, read_only=True) as engine, engine.reader() as conn:
        sink.write_window(conn, "events", start=days[0], end=days[-1], zone=zone)
    assert _dask_per_day(tmp_path / "lake" / "events") == want
