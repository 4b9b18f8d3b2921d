"""Arrow and Polars results: the same values and types as the SQL layer, no pandas needed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from mixpanel_data import Workspace
from mixpanel_data._internal.services.frames import FrameService
from mixpanel_data._internal.services.sql import SQLService
from mixpanel_data._internal.storage.engine import StorageEngine
from mixpanel_data.exceptions import ConfigError, TableNotFoundError, ValidationError

CREATE = """
CREATE TABLE things AS SELECT
    'name_' || range AS name,
    range AS n,
    range / 4 AS ratio,
    range % 2 = 0 AS even,
    DATE '2024-01-01' + range::INTEGER AS day,
    TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(range * 90) AS seen_at,
    (range * 1.25)::DECIMAL(10, 2) AS price,
    ('{"k": ' || range || ', "s": "é"}')::JSON AS properties,
    CASE WHEN range % 3 = 0 THEN NULL ELSE range END AS maybe,
    [range, range + 1] AS pair
FROM range(50)
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "frames.duckdb"
    with StorageEngine(path) as engine, engine.writer() as conn:
        conn.execute(CREATE)
    return path


@pytest.fixture
def engine(db_path: Path):
    with StorageEngine(db_path, read_only=True) as eng:
        yield eng


def test_arrow_matches_sql_rows_values_and_types(engine: StorageEngine) -> None:
    import pyarrow as pa

    query = "SELECT * FROM things ORDER BY n"
    table = FrameService(engine).arrow(query)
    expected = SQLService(engine).rows(query)
    assert isinstance(table, pa.Table)
    assert tuple(table.column_names) == expected.columns
    assert table.num_rows == 50
    schema = table.schema
    assert schema.field("name").type == pa.string()
    assert schema.field("n").type == pa.int64()
    assert schema.field("ratio").type == pa.float64()
    assert schema.field("even").type == pa.bool_()
    assert schema.field("day").type == pa.date32()
    assert pa.types.is_timestamp(schema.field("seen_at").type)
    assert schema.field("seen_at").type.tz in ("UTC", "Etc/UTC")
    assert schema.field("price").type == pa.decimal128(10, 2)
    assert pa.types.is_list(schema.field("pair").type)
    # Every value equals what the SQL layer returns, row by row.
    for arrow_row, sql_row in zip(table.to_pylist(), expected.rows, strict=True):
        assert tuple(arrow_row.values()) == sql_row
    row7 = table.slice(7, 1).to_pylist()[0]
    assert row7["n"] == 7
    assert row7["ratio"] == 1.75
    assert row7["day"] == date(2024, 1, 8)
    assert row7["seen_at"] == datetime(2024, 1, 1, 0, 10, 30, tzinfo=UTC)
    assert row7["price"] == Decimal("8.75")
    assert row7["maybe"] == 7
    assert table.slice(6, 1).to_pylist()[0]["maybe"] is None
    assert row7["properties"] == '{"k": 7, "s": "é"}'
    assert row7["pair"] == [7, 8]


def test_arrow_binds_parameters(engine: StorageEngine) -> None:
    frames = FrameService(engine)
    positional = frames.arrow("SELECT n FROM things WHERE n < ? ORDER BY n", [3])
    named = frames.arrow("SELECT n FROM things WHERE n >= $low ORDER BY n", {"low": 48})
    assert positional.column("n").to_pylist() == [0, 1, 2]
    assert named.column("n").to_pylist() == [48, 49]


def test_arrow_errors_are_the_librarys(engine: StorageEngine) -> None:
    frames = FrameService(engine)
    with pytest.raises(TableNotFoundError):
        frames.arrow("SELECT * FROM missing_table")
    with pytest.raises(ValidationError, match="invalid SQL"):
        frames.arrow("SELEC 1")
    with pytest.raises(ValidationError, match="empty SQL"):
        frames.arrow("  ")
    with pytest.raises(ValidationError, match="read-only"):
        frames.arrow("CREATE TABLE x AS SELECT 1")


def test_arrow_runs_writes_on_a_read_write_database(db_path: Path) -> None:
    with StorageEngine(db_path) as engine:
        frames = FrameService(engine)
        assert frames.arrow("CREATE TABLE evens AS SELECT n FROM things WHERE even").num_rows <= 1
        assert frames.arrow("SELECT count(*) AS c FROM evens").column("c").to_pylist() == [25]


def test_polars_matches_arrow(engine: StorageEngine) -> None:
    import polars as pl

    frames = FrameService(engine)
    query = "SELECT name, n, ratio, even, day, seen_at, price, maybe FROM things ORDER BY n"
    frame = frames.polars(query)
    assert isinstance(frame, pl.DataFrame)
    assert frame.shape == (50, 8)
    assert frame.schema["n"] == pl.Int64
    assert frame.schema["name"] == pl.String
    assert frame.schema["even"] == pl.Boolean
    assert frame.schema["day"] == pl.Date
    assert isinstance(frame.schema["seen_at"], pl.Datetime)
    assert frame.to_dicts() == frames.arrow(query).to_pylist()
    assert frame["n"].sum() == sum(range(50))
    assert frame.filter(pl.col("maybe").is_null()).height == len(range(0, 50, 3))


def test_polars_missing_names_the_extra(
    engine: StorageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # makes `import polars` fail
    with pytest.raises(ConfigError) as info:
        FrameService(engine).polars("SELECT 1")
    assert "pip install 'mixpanel_data[polars]'" in info.value.message


def test_arrow_needs_no_pandas(db_path: Path) -> None:
    """In a fresh interpreter, an Arrow and a Polars result never import pandas."""
    code = (
        "import sys\n"
        "from mixpanel_data._internal.storage.engine import StorageEngine\n"
        "from mixpanel_data._internal.services.frames import FrameService\n"
        "e = StorageEngine(sys.argv[1], read_only=True)\n"
        "f = FrameService(e)\n"
        "t = f.arrow('SELECT n, seen_at FROM things')\n"
        "p = f.polars('SELECT n FROM things')\n"
        "print(t.num_rows, p.height, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["50", "50", "False"]


def test_workspace_methods(db_path: Path) -> None:
    with Workspace.open(db_path) as ws:
        table = ws.sql_arrow("SELECT n FROM things WHERE n < ?", [5])
        frame = ws.sql_polars("SELECT n FROM things WHERE n < $k", {"k": 5})
    assert sorted(table.column("n").to_pylist()) == [0, 1, 2, 3, 4]
    assert sorted(frame["n"].to_list()) == [0, 1, 2, 3, 4]
