"""`export_table`: Hive-partitioned zstd Parquet, each written partition replaced whole.

Files are read back with pyarrow (not DuckDB, which wrote them) and counts are
compared with the rows the test generated in Python.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpanel_data._internal.storage.engine import StorageEngine, create_table_sql
from mixpanel_data._internal.storage.lake import export_table
from mixpanel_data.exceptions import StorageError, TableNotFoundError, ValidationError


def _partition_counts(table_dir: Path, key: str) -> Counter[str]:
    import pyarrow.parquet as pq

    out: Counter[str] = Counter()
    for part in table_dir.iterdir():
        assert part.name.startswith(f"{key}="), part
        files = sorted(part.iterdir())
        assert [f.name for f in files] == ["data_0.parquet"]
        out[part.name.split("=", 1)[1]] += pq.ParquetFile(files[0]).metadata.num_rows
    return out


def test_events_partition_by_utc_day(local_data, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    with StorageEngine(local_data.path, read_only=True) as engine:
        result = export_table(engine, "events", lake)
    expected = local_data.per_partition()
    assert len(expected) >= 5  # the data spans several UTC days
    table_dir = lake / "events"
    assert result.directory == str(table_dir)
    assert result.partition_by == "day"
    assert result.rows == len(local_data.events)
    assert result.partitions == tuple(sorted(expected))
    assert _partition_counts(table_dir, "date") == expected
    assert sorted(result.files) == sorted(str(p) for p in table_dir.glob("*/*.parquet"))
    assert result.bytes == sum(Path(f).stat().st_size for f in result.files)
    meta = pq.ParquetFile(result.files[0])
    # Hive layout: the partition value lives in the folder name, not in the file.
    assert meta.schema_arrow.names == [
        "event_name",
        "event_time",
        "event_date",
        "distinct_id",
        "insert_id",
        "properties",
    ]
    assert str(meta.schema_arrow.field("event_time").type) == "timestamp[us, tz=UTC]"
    column = meta.metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"


def test_rows_round_trip_exactly(local_data, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "lake")
    table = pq.read_table(tmp_path / "lake" / "events")  # pyarrow's own hive discovery
    got = sorted(
        zip(
            table.column("insert_id").to_pylist(),
            table.column("event_time").to_pylist(),
            table.column("event_name").to_pylist(),
            [str(d) for d in table.column("date").to_pylist()],
            strict=True,
        )
    )
    want = sorted(
        (i, t.astimezone(UTC), n, t.astimezone(UTC).date().isoformat())
        for n, t, _, i, _ in local_data.events
    )
    assert got == want


def test_month_partitions(local_data, tmp_path: Path) -> None:
    with StorageEngine(local_data.path, read_only=True) as engine:
        result = export_table(engine, "events", tmp_path / "lake", partition_by="month")
    expected = local_data.per_partition("%Y-%m")
    assert set(expected) == {"2024-02", "2024-03"}
    assert result.partition_by == "month"
    assert result.partitions == ("2024-02", "2024-03")
    assert _partition_counts(tmp_path / "lake" / "events", "month") == expected


def test_profiles_are_one_unpartitioned_file(local_data, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with StorageEngine(local_data.path, read_only=True) as engine:
        result = export_table(engine, "profiles", tmp_path / "lake")
    assert result.partition_by is None
    assert result.partitions == ()
    assert result.rows == 50
    files = sorted((tmp_path / "lake" / "profiles").iterdir())
    assert [f.name for f in files] == ["data_0.parquet"]
    table = pq.read_table(files[0])
    assert sorted(table.column("distinct_id").to_pylist()) == sorted(
        d for d, _, _ in local_data.profiles
    )


def test_rerun_replaces_written_partitions_and_keeps_others(local_data, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    table_dir = lake / "events"
    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", lake)
    # Another shard's partition and a stale extra file in a partition we rewrite.
    foreign = table_dir / "date=2023-12-31"
    foreign.mkdir()
    first = table_dir / "date=2024-02-27" / "data_0.parquet"
    (foreign / "data_0.parquet").write_bytes(first.read_bytes())
    stale = table_dir / "date=2024-02-28" / "data_1.parquet"
    stale.write_bytes((table_dir / "date=2024-02-28" / "data_0.parquet").read_bytes())
    with StorageEngine(local_data.path) as engine:
        # Change the table: drop Feb 28's Login events.
        deleted = engine.execute_scalar(
            "SELECT count(*) FROM events WHERE event_name = 'Login' "
            "AND event_time >= TIMESTAMPTZ '2024-02-28 00:00:00+00' "
            "AND event_time < TIMESTAMPTZ '2024-02-29 00:00:00+00'"
        )
        assert deleted > 0
        engine.execute_scalar(
            "DELETE FROM events WHERE event_name = 'Login' "
            "AND event_time >= TIMESTAMPTZ '2024-02-28 00:00:00+00' "
            "AND event_time < TIMESTAMPTZ '2024-02-29 00:00:00+00'",
            write=True,
        )
        result = export_table(engine, "events", lake)
    counts = _partition_counts(table_dir, "date")
    expected = local_data.per_partition()
    expected["2024-02-28"] -= deleted
    assert result.rows == len(local_data.events) - deleted
    assert counts.pop("2023-12-31") == expected["2024-02-27"]  # untouched by this export
    assert counts == expected
    assert not stale.exists()
    assert not [p for p in lake.iterdir() if p.name.startswith(".")]  # staging removed


def test_mixed_layouts_are_refused(local_data, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", lake)
        before = sorted(p.relative_to(lake) for p in lake.rglob("*"))
        with pytest.raises(
            ValidationError, match=r"date=\.\.\. partitions.*month=\.\.\. partitions"
        ):
            export_table(engine, "events", lake, partition_by="month")
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before


@pytest.mark.parametrize(
    ("table", "kwargs", "error", "match"),
    [
        ("missing", {}, TableNotFoundError, "table 'missing' not found"),
        ("x; DROP TABLE y", {}, ValidationError, "invalid table name"),
        ("events", {"partition_by": "week"}, ValidationError, "use day or month"),
    ],
)
def test_bad_arguments(local_data, tmp_path: Path, table, kwargs, error, match) -> None:
    with (
        StorageEngine(local_data.path, read_only=True) as engine,
        pytest.raises(error, match=match),
    ):
        export_table(engine, table, tmp_path / "lake", **kwargs)
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").iterdir())


def test_directory_that_is_a_file_is_refused(local_data, tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    with (
        StorageEngine(local_data.path, read_only=True) as engine,
        pytest.raises(ValidationError, match="is a file"),
    ):
        export_table(engine, "events", target)


def test_unwritable_directory_is_a_storage_error(local_data, tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    (parent / "blocker").write_text("x")  # a file where a directory must go
    with (
        StorageEngine(local_data.path, read_only=True) as engine,
        pytest.raises(StorageError, match="cannot create"),
    ):
        export_table(engine, "events", parent / "blocker" / "lake")


def test_empty_events_table_writes_nothing(tmp_path: Path) -> None:
    with StorageEngine(tmp_path / "e.duckdb") as engine:
        engine.execute_scalar(create_table_sql("events", "events"), write=True)
        result = export_table(engine, "events", tmp_path / "lake")
    assert (result.rows, result.partitions, result.files) == (0, (), ())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stamps=st.lists(
        st.datetimes(
            min_value=datetime(2001, 1, 1),
            max_value=datetime(2037, 12, 31),
            timezones=st.timezones(),
        ),
        min_size=1,
        max_size=40,
    ),
    monthly=st.booleans(),
)
def test_partition_is_the_utc_day_of_event_time(stamps, monthly, tmp_path_factory) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    fmt = "%Y-%m" if monthly else "%Y-%m-%d"
    rows = [("e", t, "u", f"i{n}", "{}") for n, t in enumerate(stamps)]
    with StorageEngine.memory() as engine:
        with engine.writer() as conn:
            # A table made with SQL, without event_date: partitioned by event_time's UTC day.
            conn.execute(
                "CREATE TABLE events (event_name VARCHAR, event_time TIMESTAMPTZ, "
                "distinct_id VARCHAR, insert_id VARCHAR, properties JSON)"
            )
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
        export_table(engine, "events", tmp, partition_by="month" if monthly else "day")
    want = Counter(t.astimezone(UTC).strftime(fmt) for t in stamps)
    assert _partition_counts(tmp / "events", "month" if monthly else "date") == want


def test_both_lake_writers_give_one_schema_with_text_properties(local_data, tmp_path: Path) -> None:
    """`mp export` and `--to-parquet`'s day writer: same columns, types and nullability."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mixpanel_data._internal.storage.lake import ParquetDaySink

    with StorageEngine(local_data.path, read_only=True) as engine:
        export_table(engine, "events", tmp_path / "exported")
        with engine.reader() as conn:
            ParquetDaySink(tmp_path / "sunk").write_window(
                conn, "events", start=date(2024, 2, 27), end=date(2024, 3, 3)
            )
    schemas = {
        (root, p.parent.name): pq.read_schema(p)
        for root in ("exported", "sunk")
        for p in (tmp_path / root / "events").rglob("*.parquet")
    }
    assert len(schemas) == 5 + 6  # five days with events; the day writer adds an empty day
    first = next(iter(schemas.values()))
    assert all(s.equals(first) for s in schemas.values())
    assert first.field("properties").type == pa.string()  # text, not binary JSON
    assert all(f.nullable for f in first)  # the table's columns are nullable, so are the files
