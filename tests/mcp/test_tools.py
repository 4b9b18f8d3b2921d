"""The tools in-process (the SDK's in-memory client): argument errors, crashes, fallbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpanel_data import Workspace
from mixpanel_data._internal.services.sandbox import SandboxLimits
from mixpanel_data.exceptions import ConfigError
from mixpanel_data.mcp.server import MixpanelTools, build_server


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "tools.duckdb"
    with Workspace.open(path, read_only=False) as ws:
        ws.sql("CREATE TABLE things AS SELECT range AS n, 'x' || range AS label FROM range(30)")
    return path


def call(tools: MixpanelTools, name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    from mcp import Client

    async def main() -> tuple[bool, str]:
        with anyio.fail_after(60):
            async with Client(build_server(tools)) as client:
                result = await client.call_tool(name, arguments)
        return bool(result.is_error), "".join(getattr(c, "text", "") for c in result.content)

    return anyio.run(main)


def test_bad_arguments_are_reported_on_one_line(db: Path) -> None:
    tools = MixpanelTools(workspace_factory=lambda: Workspace.open(db))
    is_error, text = call(tools, "run_sql", {"query": "SELECT 1", "max_rows": 5000})
    assert is_error
    assert text == (
        "Error executing tool run_sql: ValidationError: invalid arguments: "
        "max_rows: Input should be less than or equal to 1000"
    )
    is_error, text = call(tools, "run_sql", {})
    assert is_error
    assert text.endswith("invalid arguments: query: Field required")


def test_a_crash_reveals_nothing_but_the_tool_name(db: Path) -> None:
    def broken() -> Workspace:
        raise RuntimeError("password=hunter2 in a message we never show")

    is_error, text = call(MixpanelTools(workspace_factory=broken), "list_tables", {})
    assert is_error
    assert text == "Error executing tool list_tables"


def test_local_tools_fall_back_without_credentials(db: Path) -> None:
    def no_account() -> Workspace:
        raise ConfigError("no Mixpanel credentials found; add an account with `mp auth add NAME`")

    tools = MixpanelTools(
        workspace_factory=no_account,
        local_factory=lambda: Workspace.open(db),
        limits=SandboxLimits(max_rows=7),
    )
    is_error, text = call(tools, "run_sql", {"query": "SELECT n FROM things ORDER BY n"})
    assert not is_error
    answer = orjson.loads(text)
    assert answer["row_count"] == 30
    assert answer["rows"] == [[i] for i in range(7)]
    assert answer["note"].startswith("showing the first 7 of 30 rows")
    is_error, text = call(tools, "list_cohorts", {})
    assert is_error
    assert text == (
        "Error executing tool list_cohorts: ConfigError: no Mixpanel credentials found; "
        "add an account with `mp auth add NAME`"
    )


def test_describe_table_shows_schema_and_sample(db: Path) -> None:
    tools = MixpanelTools(workspace_factory=lambda: Workspace.open(db))
    is_error, text = call(tools, "describe_table", {"name": "things", "sample_rows": 2})
    assert not is_error
    answer = orjson.loads(text)
    assert answer["row_count"] == 30
    assert [(c["name"], c["type"]) for c in answer["columns"]] == [
        ("n", "BIGINT"),
        ("label", "VARCHAR"),
    ]
    assert answer["sample"]["columns"] == ["n", "label"]
    assert len(answer["sample"]["rows"]) == 2
    is_error, text = call(tools, "describe_table", {"name": "missing"})
    assert is_error
    assert "TableNotFoundError: table 'missing' not found" in text


def test_max_bytes_is_configurable_and_cuts_whole_rows(db: Path) -> None:
    tools = MixpanelTools(
        workspace_factory=lambda: Workspace.open(db),
        limits=SandboxLimits(max_rows=30),
        max_bytes=1_000,
    )
    query = "SELECT n, repeat('y', 40) AS pad FROM things ORDER BY n"
    is_error, text = call(tools, "run_sql", {"query": query})
    assert not is_error, text
    answer = orjson.loads(text)
    assert len(text.encode()) <= 1_000
    kept = answer["returned"]
    assert answer["rows"] == [[i, "y" * 40] for i in range(kept)]
    assert 0 < kept < 30
    assert answer["row_count"] == 30
    assert answer["byte_cap"] == 1_000
    assert answer["note"].startswith(f"showing the first {kept} of 30 rows: cut to stay under")
    # one more row would not have fitted
    bigger = dict(answer, rows=[[i, "y" * 40] for i in range(kept + 1)], returned=kept + 1)
    assert len(orjson.dumps(bigger)) > 1_000
    # a small answer is untouched
    is_error, text = call(tools, "run_sql", {"query": "SELECT 1 AS one"})
    assert "byte_cap" not in orjson.loads(text)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.text(max_size=60), min_size=1, max_size=3), max_size=40),
    max_bytes=st.integers(min_value=200, max_value=3_000),
)
def test_cap_bytes_keeps_the_longest_prefix_that_fits(
    rows: list[list[str]], max_bytes: int
) -> None:
    from mixpanel_data.mcp.payloads import cap_bytes, dumps

    payload = {"row_count": len(rows), "returned": len(rows), "columns": ["a"], "rows": rows}
    out = cap_bytes(payload, max_bytes=max_bytes)
    size = len(dumps(out).encode())
    if len(dumps(payload).encode()) <= max_bytes:
        assert out == payload
        return
    kept = out["returned"]
    assert out["rows"] == rows[:kept]
    assert out["truncated"] is True
    if kept:
        assert size <= max_bytes
    if kept < len(rows):  # maximal: one more row would not fit
        assert len(dumps({**out, "rows": rows[: kept + 1], "returned": kept + 1}).encode()) > (
            max_bytes
        ) or kept + 1 > len(rows)
