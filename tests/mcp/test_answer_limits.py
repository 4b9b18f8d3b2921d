"""run_sql answers stay small whatever the query returns: LIST cells are cut before
they become Python objects, long values are shortened with a note, and an answer
stops adding rows at ANSWER_BYTES and says so (one query once returned 194 MB)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mixpanel_data import Workspace
from mixpanel_data._internal.services.sandbox import SandboxLimits
from mixpanel_data.mcp.payloads import ANSWER_BYTES, LIST_ITEMS
from mixpanel_data.mcp.server import MixpanelTools

from .test_tools import call


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.duckdb"
    with Workspace.open(path, read_only=False) as ws:
        ws.sql(
            "CREATE TABLE big AS SELECT range AS n, 'label-' || range AS label FROM range(3000000)"
        )
    return path


def test_a_list_of_millions_is_cut_to_a_small_answer(big: Path) -> None:
    tools = MixpanelTools(
        workspace_factory=lambda: Workspace.open(big), limits=SandboxLimits(timeout=30)
    )
    is_error, text = call(
        tools,
        "run_sql",
        {"query": "SELECT list(n ORDER BY n) AS l, list(label ORDER BY n) FROM big"},
    )
    assert not is_error, text
    answer = orjson.loads(text)
    assert len(text) < 20_000
    assert answer["row_count"] == 1
    cell = answer["rows"][0][0]
    assert cell[:LIST_ITEMS] == list(range(LIST_ITEMS))
    assert cell[LIST_ITEMS] == f"…(list cut at {LIST_ITEMS} items)"
    assert len(cell) == LIST_ITEMS + 1
    assert answer["rows"][0][1][:2] == ["label-0", "label-1"]


def test_many_wide_rows_stop_at_the_byte_cap_with_a_note(big: Path) -> None:
    # The building cap (ANSWER_BYTES) shows with the answer cap set above it; the default
    # answer cap (16 kB, `mp mcp --max-bytes`) is tested in test_tools.py.
    tools = MixpanelTools(
        workspace_factory=lambda: Workspace.open(big), max_bytes=10 * ANSWER_BYTES
    )
    query = "SELECT n, repeat('x', 2000) AS s, range(0, 300) AS r FROM big ORDER BY n LIMIT 1000"
    is_error, text = call(tools, "run_sql", {"query": query, "max_rows": 1000})
    assert not is_error, text
    answer = orjson.loads(text)
    assert len(text) <= ANSWER_BYTES + 2_000
    assert answer["row_count"] == 1000
    assert answer["truncated"] is True
    shown = answer["returned"]
    assert 50 < shown < 1000
    assert answer["note"].startswith(
        f"showing the first {shown} of 1000 rows (answer capped at {ANSWER_BYTES:,} bytes)"
    )
    assert [row[0] for row in answer["rows"]] == list(range(shown))
    assert answer["rows"][0][1] == "x" * 500 + "…(+1500 chars)"
    assert len(answer["rows"][0][2]) == LIST_ITEMS + 1
