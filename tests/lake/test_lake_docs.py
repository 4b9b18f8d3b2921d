"""docs/lake.md's reading examples run as written, and give the local table's answers.

A lake of January 2024 is fetched from the emulator and written by `mp export`'s writer.
Each ``<!-- lake-example: ENGINE; expect: SQL -->`` block in docs/lake.md is executed in
a folder holding ``lake/``; its ``result`` rows must equal ``SQL`` run on the local table.
Dask's examples run on a ``dask.distributed`` local cluster (worker processes); Spark's
only in ``make test-spark`` (marker ``spark``: pyspark and Java).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import Workspace

DOC = Path(__file__).resolve().parents[2] / "docs" / "lake.md"
_EXAMPLE = re.compile(
    r"<!-- lake-example: (?P<engine>\w+); expect: (?P<sql>.+?) -->\n```python\n(?P<code>.*?)```",
    re.S,
)

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@dataclass(frozen=True)
class Example:
    engine: str
    sql: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.sql[:40]}"


def examples(engine: str) -> list[Example]:
    found = [Example(m["engine"], m["sql"], m["code"]) for m in _EXAMPLE.finditer(DOC.read_text())]
    return [e for e in found if e.engine == engine]


@dataclass(frozen=True)
class Lake:
    root: Path  # holds lake/events/date=.../data_0.parquet
    db: Path


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    root = tmp_path_factory.mktemp("lake-docs")
    jan = date(2024, 1, 1)
    spec = ProjectSpec(seed=5, users=60, days=31, start_date=jan, today=date(2024, 3, 1))
    with Emulator(spec=spec, cache_dir=root / "cache") as emu:
        budgets: dict[str, Any] = {"export": "off", "query": "off"}
        creds = emulator_credentials(emu)
        with Workspace(credentials=creds, path=root / "jan.duckdb", budgets=budgets) as ws:
            ws.fetch_events(from_date="2024-01-01", to_date="2024-01-31")
            ws.export_parquet("events", root / "lake")
    return Lake(root=root, db=root / "jan.duckdb")


def _rows(rows: Any) -> list[tuple[str, ...]]:
    return sorted(tuple(str(v) for v in row) for row in rows)


def _check(example: Example, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lake.root)
    scope: dict[str, Any] = {}
    exec(compile(example.code, str(DOC), "exec"), scope)  # noqa: S102 (our own docs)
    with Workspace.open(lake.db) as ws:
        expected = _rows(ws.sql_rows(example.sql).rows)
    assert expected, f"the expectation of {example.id} selects nothing; pick other dates"
    assert _rows(scope["result"]) == expected


def test_the_docs_have_an_example_for_each_engine() -> None:
    for engine in ("duckdb", "polars", "dask", "spark"):
        assert examples(engine), engine


@pytest.mark.parametrize("example", examples("duckdb"), ids=lambda e: e.id)
def test_duckdb_examples(example: Example, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _check(example, lake, monkeypatch)


@pytest.mark.parametrize("example", examples("polars"), ids=lambda e: e.id)
def test_polars_examples(example: Example, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _check(example, lake, monkeypatch)


@pytest.mark.parametrize("example", examples("dask"), ids=lambda e: e.id)
def test_dask_examples_on_a_local_cluster(
    example: Example, lake: Lake, dask_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _check(example, lake, monkeypatch)


@pytest.mark.spark
@pytest.mark.parametrize("example", examples("spark"), ids=lambda e: e.id)
def test_spark_examples(example: Example, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _check(example, lake, monkeypatch)


def test_polars_reads_properties_as_text(lake: Lake) -> None:
    import polars as pl

    frame = pl.scan_parquet(str(lake.root / "lake/events/**/*.parquet"), hive_partitioning=True)
    assert frame.collect_schema()["properties"] == pl.String
    prices = (
        frame.filter(pl.col("event_name") == "Purchase")
        .select(pl.col("properties").str.json_path_match("$.price").cast(pl.Float64).sum())
        .collect()
        .item()
    )
    with Workspace.open(lake.db) as ws:
        local = ws.sql_scalar(
            "SELECT sum((properties->>'$.price')::DOUBLE) FROM events WHERE event_name = 'Purchase'"
        )
    assert local > 0
    assert prices == pytest.approx(local)
