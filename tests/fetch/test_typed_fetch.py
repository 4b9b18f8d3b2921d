"""Typed property columns after real fetches from the emulator (docs/typed-columns.md).

The oracle is plain Python over the emulator's export files, deduplicated by hand
(conftest): what each column must hold, and how many values did not fit.
"""

# SQL in these tests is built from fixed column names.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data.workspace import Workspace

from .conftest import dedup, project_records
from .test_cli_fetch import run_main


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_column(kind: str, v: Any) -> Any:
    """A JSON value as the column of `kind` holds it (the rules of the doc)."""
    if v is None:
        return None
    if kind == "VARCHAR":
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    if kind == "DOUBLE":
        return float(v) if not isinstance(v, bool) else None
    if kind == "BIGINT":
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    if kind == "BOOLEAN":
        return v if isinstance(v, bool) else None
    raise AssertionError(kind)


def test_typed_columns_hold_what_the_export_says(ws: Workspace, emulator: Any) -> None:
    days = emulator.project.data_dates[1:5]
    ws.fetch_events(from_date=str(days[0]), to_date=str(days[-1]))
    kept = list(dedup(project_records(emulator, days[0], days[-1])))
    schema = {c.name: c for c in ws.table_schema("events").columns}
    for name, kind in [
        ("mp_country_code", "VARCHAR"),
        ("$os", "VARCHAR"),
        ("plan", "VARCHAR"),
        ("price", "DOUBLE"),
        ("in_stock", "BOOLEAN"),
        ("$screen_width", "BIGINT"),
    ]:
        assert schema[name].type == kind
        want = Counter(_as_column(kind, r["properties"].get(name)) for r in kept)
        rows = ws.sql_rows(f"SELECT {_q(name)}, count(*) FROM events GROUP BY 1").rows
        got = Counter(dict(rows))
        assert got == want, name
        # The JSON path gives the same groups (for strings: the same text).
        if kind == "VARCHAR":
            via_json = ws.sql_rows(
                f"SELECT properties->>'$.\"{name}\"', count(*) FROM events GROUP BY 1"
            ).rows
            assert Counter(dict(via_json)) == want
    # Prices sent as strings are converted and counted; none is lost.
    strings = sum(isinstance(r["properties"].get("price"), str) for r in kept)
    assert strings > 0
    assert schema["price"].unfit == strings
    assert schema["price"].nulled == 0
    priced = sum(r["properties"].get("price") is not None for r in kept)
    assert schema["price"].share == round(priced / len(kept), 4)
    # Case twins: "plan" (common) has the column, "Plan" (rare) stays in properties.
    assert "Plan" not in {c.property for c in schema.values()}
    assert any("Plan" in r["properties"] for r in kept)


def test_mp_inspect_schema_shows_share_and_unfit(
    cli_env: Path, emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    day = emulator.project.data_dates[1]
    code, _out, _err = run_main(
        capsys, "-q", "fetch", "events", "--from", str(day), "--to", str(day)
    )
    assert code == 0
    code, out, _err = run_main(capsys, "inspect", "schema", "events", "-f", "json")
    assert code == 0
    columns = {c["name"]: c for c in json.loads(out)["columns"]}
    kept = dedup(project_records(emulator, day, day))
    strings = sum(isinstance(r["properties"].get("price"), str) for r in kept)
    assert columns["price"]["type"] == "DOUBLE"
    assert columns["price"]["unfit"] == strings
    assert columns["mp_country_code"]["share"] == 1.0
    assert "property" not in columns["event_name"]  # core columns have no property


def test_profiles_get_typed_columns(ws: Workspace, emulator: Any) -> None:
    ws.fetch_profiles()
    schema = {c.name: c for c in ws.table_schema("profiles").columns}
    assert schema["$email"].type == "VARCHAR"
    assert schema["$created"].type == "TIMESTAMP WITH TIME ZONE"
    mismatched = ws.sql_scalar(
        'SELECT count(*) FROM profiles WHERE "$email" IS DISTINCT FROM properties->>\'$."$email"\''
    )
    assert mismatched == 0
    assert ws.sql_scalar('SELECT count("$email") FROM profiles') == schema["$email"].share * (
        ws.sql_scalar("SELECT count(*) FROM profiles")
    )
