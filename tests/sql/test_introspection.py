"""Introspection results checked against the rows put in the database, computed in Python."""

from __future__ import annotations

import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpanel_data import Workspace
from mixpanel_data._internal.services.introspection import (
    IntrospectionService,
    parse_column_expr,
)
from mixpanel_data._internal.storage.engine import EVENTS_COLUMNS, StorageEngine, create_table_sql
from mixpanel_data.exceptions import (
    DatabaseNotFoundError,
    TableNotFoundError,
    ValidationError,
)


def test_tables_and_info(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        tables = {t.name: t for t in ws.tables()}
        info = ws.info()
    assert set(tables) == {"events", "profiles", "purchases"}
    assert (tables["events"].kind, tables["events"].row_count) == ("events", len(local_db.events))
    assert (tables["profiles"].kind, tables["profiles"].row_count) == (
        "profiles",
        len(local_db.profiles),
    )
    assert tables["events"].complete is True
    assert tables["events"].fetch_args == {"from_date": "2024-03-01", "to_date": "2024-03-14"}
    # A table made with SQL has no fetch metadata; its columns say it holds events.
    assert (tables["purchases"].kind, tables["purchases"].complete) == ("events", None)
    assert info.path == str(local_db.path)
    assert info.size_bytes == local_db.path.stat().st_size + (
        local_db.path.with_name(local_db.path.name + ".wal").stat().st_size
        if local_db.path.with_name(local_db.path.name + ".wal").exists()
        else 0
    )
    assert info.project_id == "4242"
    assert [t.name for t in info.tables] == ["events", "profiles", "purchases"]
    orjson.dumps(info.to_dict())


def test_table_schema(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        schema = ws.table_schema("events")
    assert [c.name for c in schema.columns] == [c for c, _ in EVENTS_COLUMNS]
    assert [c.type for c in schema.columns] == [
        "VARCHAR",
        "TIMESTAMP WITH TIME ZONE",
        "DATE",
        "VARCHAR",
        "VARCHAR",
        "JSON",
    ]
    assert (schema.kind, schema.row_count) == ("events", len(local_db.events))


def test_event_breakdown(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        result = ws.event_breakdown("events")
    events = local_db.events
    counts = Counter(e["event_name"] for e in events)
    assert result.total_events == len(events)
    assert result.total_users == len({e["distinct_id"] for e in events})
    assert result.first_seen == min(e["event_time"] for e in events)
    assert [s.event_name for s in result.events] == sorted(counts, key=lambda n: (-counts[n], n))
    for stats in result.events:
        mine = [e for e in events if e["event_name"] == stats.event_name]
        assert stats.count == len(mine)
        assert stats.unique_users == len({e["distinct_id"] for e in mine})
        assert stats.first_seen == min(e["event_time"] for e in mine)
        assert stats.last_seen == max(e["event_time"] for e in mine)
        assert stats.pct_of_total == pytest.approx(100 * len(mine) / len(events), abs=1e-4)
    assert sum(s.count for s in result.events) == len(events)


def test_event_breakdown_needs_an_events_table(local_db) -> None:
    with Workspace.open(local_db.path) as ws, pytest.raises(ValidationError, match="profiles"):
        ws.event_breakdown("profiles")


def test_property_keys(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        all_keys = ws.property_keys("events")
        purchase_keys = ws.property_keys("events", event="Purchase")
        profile_keys = ws.property_keys("profiles")
    assert all_keys == sorted({k for e in local_db.events for k in e["properties"]})
    assert "Plan" in all_keys
    assert "plan" in all_keys
    assert purchase_keys == sorted({k for e in local_db.purchases for k in e["properties"]})
    assert profile_keys == sorted({k for p in local_db.profiles for k in p["properties"]})


def _numbers(values: list[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out


def test_column_stats_of_a_json_path_with_numeric_strings(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        stats = ws.column_stats("events", "properties->>'$.price'")
        short = ws.column_stats("events", "$.price")
    prices = [e["properties"].get("price") for e in local_db.events]
    present = [p for p in prices if p is not None]
    assert any(isinstance(p, str) for p in present)  # the data has "19.99"-style prices
    assert stats == short.__class__(**{**short.__dict__, "expression": stats.expression})
    assert stats.count == len(local_db.events)
    assert stats.null_count == len(prices) - len(present)
    assert stats.null_pct == pytest.approx(100 * stats.null_count / stats.count)
    nums = _numbers(present)
    assert stats.numeric is not None
    assert stats.numeric.count == len(nums)
    assert stats.numeric.min == min(nums)
    assert stats.numeric.max == max(nums)
    assert stats.numeric.mean == pytest.approx(statistics.fmean(nums))
    assert stats.numeric.std == pytest.approx(statistics.stdev(nums))
    assert stats.numeric.p50 == pytest.approx(
        statistics.quantiles(nums, n=4, method="inclusive")[1]
    )
    assert Decimal(str(round(stats.numeric.sum, 2))) == sum(Decimal(str(p)) for p in present)


def test_column_stats_of_a_plain_column(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        stats = ws.column_stats("events", "event_name")
        nested = ws.column_stats("events", "properties->'$.cart.items'")
    counts = Counter(e["event_name"] for e in local_db.events)
    assert stats.type == "VARCHAR"
    assert stats.distinct_count == len(counts)
    assert (stats.min, stats.max) == (min(counts), max(counts))
    assert list(stats.top_values) == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert stats.numeric is None
    items = [e["properties"]["cart"]["items"] for e in local_db.events if "cart" in e["properties"]]
    assert nested.type == "JSON"
    assert nested.count - nested.null_count == len(items)
    assert nested.numeric is not None
    assert nested.numeric.sum == sum(items)


@pytest.mark.parametrize(
    "expr",
    [
        "x; DROP TABLE events",
        "properties->>'$.a'; DROP TABLE events --",
        "1 + 1",
        "properties->>'price'",
        "",
    ],
)
def test_column_stats_rejects_anything_but_a_column_or_path(local_db, expr: str) -> None:
    with Workspace.open(local_db.path) as ws:
        with pytest.raises(ValidationError):
            ws.column_stats("events", expr)
        assert ws.sql_scalar("SELECT count(*) FROM events") == len(local_db.events)


def test_column_stats_unknown_column(local_db) -> None:
    with Workspace.open(local_db.path) as ws, pytest.raises(ValidationError, match="nope"):
        ws.column_stats("events", "nope")


@given(text=st.text(max_size=60))
def test_parse_column_expr_accepts_or_raises_validation_error(text: str) -> None:
    try:
        parsed = parse_column_expr(text)
    except ValidationError:
        return
    # Whatever is accepted is a plain identifier plus, at most, a bound JSON path.
    assert parsed.column.isidentifier()
    assert parsed.column.isascii()
    assert parsed.op in (None, "->", "->>")
    assert parse_column_expr(str(parsed)) == parsed


@given(path=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20))
def test_quoted_paths_round_trip(path: str) -> None:
    expr = f"properties->>'${path.replace(chr(39), chr(39) * 2)}'"
    parsed = parse_column_expr(expr)
    assert parsed.path == "$" + path
    assert parse_column_expr(str(parsed)) == parsed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=8))
def test_property_keys_equal_the_union_of_keys(rows: list[dict[str, Any]]) -> None:
    with StorageEngine.memory() as engine:
        with engine.writer() as conn:
            conn.execute(create_table_sql("t", "profiles"))
            for i, props in enumerate(rows):
                conn.execute(
                    "INSERT INTO t VALUES (?, NULL, ?)", [str(i), orjson.dumps(props).decode()]
                )
        keys = IntrospectionService(engine).property_keys("t")
    assert keys == sorted({k for r in rows for k in r})


def test_sample_returns_distinct_rows_of_the_table(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        some = ws.sample("events", n=7)
        everything = ws.sample("profiles", n=1000)
    assert len(some) == 7
    known = {e["insert_id"] for e in local_db.events}
    assert set(some["insert_id"].dropna()) <= known
    assert sorted(everything["distinct_id"]) == sorted(p["distinct_id"] for p in local_db.profiles)


def test_summarize(local_db) -> None:
    with Workspace.open(local_db.path) as ws:
        df = ws.summarize("events")
    by_column = df.set_index("column_name")
    assert list(df["column_name"]) == [c for c, _ in EVENTS_COLUMNS]
    assert int(by_column.loc["event_name", "count"]) == len(local_db.events)
    nulls = sum(1 for e in local_db.events if e["insert_id"] is None)
    assert float(by_column.loc["insert_id", "null_percentage"]) == pytest.approx(
        100 * nulls / len(local_db.events), abs=0.01
    )


@pytest.mark.parametrize("call", ["table_schema", "sample", "summarize", "event_breakdown"])
def test_missing_and_invalid_tables(local_db, call: str) -> None:
    with Workspace.open(local_db.path) as ws:
        with pytest.raises(TableNotFoundError):
            getattr(ws, call)("nope")
        with pytest.raises(ValidationError):
            getattr(ws, call)("x; DROP TABLE events")
        assert ws.sql_scalar("SELECT count(*) FROM events") == len(local_db.events)


def test_drop_and_drop_all(local_db) -> None:
    with Workspace.open(local_db.path, read_only=False) as ws:
        with pytest.raises(TableNotFoundError):
            ws.drop("purchases", "nope")
        assert {t.name for t in ws.tables()} == {"events", "profiles", "purchases"}
        assert ws.drop("purchases") == ["purchases"]
        assert ws.drop_all(type="profiles") == ["profiles"]
        with pytest.raises(ValidationError):
            ws.drop_all(type="cohorts")
        assert [t.name for t in ws.tables()] == ["events"]
        assert ws.drop_all() == ["events"]
        assert ws.tables() == []
        # Metadata went with the tables.
        assert ws.sql_scalar("SELECT count(*) FROM _mp_tables") == 0


def test_read_only_workspace_on_missing_database(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "missing.duckdb") as ws:
        for call in (ws.tables, ws.info, lambda: ws.table_schema("events")):
            with pytest.raises(DatabaseNotFoundError):
                call()
    assert not (tmp_path / "missing.duckdb").exists()
