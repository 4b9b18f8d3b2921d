"""fetch_profiles: engage paging (contract §5), upsert on distinct_id, filters, streaming."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data._internal.http.client import RetryPolicy
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator
from mixpanel_data.exceptions import TableExistsError
from mixpanel_data.workspace import Workspace

from .conftest import creds_for


def stored_profiles(ws: Workspace, table: str = "profiles") -> dict[str, dict[str, Any]]:
    sql = "SELECT distinct_id, properties FROM "
    _c, rows = ws.storage.execute_rows(sql + f'"{table}"')
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))  # one row per distinct_id
    return {d: json.loads(p) for d, p in rows}


def expected_profiles(emu: Any) -> dict[str, dict[str, Any]]:
    return {p["$distinct_id"]: p["$properties"] for p in emu.project.profiles()}


@pytest.fixture(scope="module")
def big_emulator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Enough users for three engage pages."""
    spec = ProjectSpec(seed=5, users=2600, days=2)
    with Emulator(spec=spec, cache_dir=tmp_path_factory.mktemp("big")) as emu:
        yield emu


def test_paging_returns_every_profile_exactly_once(big_emulator: Any, tmp_path: Path) -> None:
    expected = expected_profiles(big_emulator)
    assert len(expected) > 2000
    big_emulator.clear_requests()
    with Workspace(credentials=creds_for(big_emulator), path=tmp_path / "p.duckdb") as ws:
        result = ws.fetch_profiles("profiles")
        assert stored_profiles(ws) == expected
    assert result.rows_inserted == len(expected)
    engage = [r for r in big_emulator.requests() if r.path.endswith("/engage")]
    assert len(engage) == math.ceil(len(expected) / 1000)
    assert result.windows_done == len(engage)


def test_expired_session_restarts_from_page_zero(big_emulator: Any, tmp_path: Path) -> None:
    big_emulator.faults.add("session_expired", endpoint="engage", count=1)
    try:
        with Workspace(credentials=creds_for(big_emulator), path=tmp_path / "p.duckdb") as ws:
            ws.api.retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
            ws.fetch_profiles("profiles")
            assert stored_profiles(ws) == expected_profiles(big_emulator)
    finally:
        big_emulator.faults.clear()


def test_where_and_upsert_on_distinct_id(ws: Workspace, emulator: Any) -> None:
    expected = expected_profiles(emulator)
    pro = {d: p for d, p in expected.items() if p.get("plan") == "pro"}
    assert 0 < len(pro) < len(expected)
    ws.fetch_profiles("profiles", where='properties["plan"] == "pro"')
    assert stored_profiles(ws) == pro
    with pytest.raises(TableExistsError):
        ws.fetch_profiles("profiles")
    result = ws.fetch_profiles("profiles", append=True)
    assert stored_profiles(ws) == expected
    assert result.rows_inserted == len(expected) - len(pro)
    replaced = ws.fetch_profiles("profiles", replace=True, where='properties["plan"] == "pro"')
    assert stored_profiles(ws) == pro
    assert replaced.table_rows == len(pro)


def test_last_seen_and_distinct_ids(ws: Workspace, emulator: Any) -> None:
    expected = expected_profiles(emulator)
    some = sorted(expected)[:3]
    ws.fetch_profiles("few", distinct_ids=some)
    assert stored_profiles(ws, "few") == {d: expected[d] for d in some}
    _c, rows = ws.storage.execute_rows(
        "SELECT distinct_id, strftime(last_seen, '%Y-%m-%dT%H:%M:%S') FROM few"
    )
    assert dict(rows) == {d: expected[d].get("$last_seen") for d in some}


def test_stream_profiles_raw_and_rows(ws: Workspace, emulator: Any) -> None:
    raw = list(ws.stream_profiles(raw=True))
    assert {r["$distinct_id"]: r["$properties"] for r in raw} == expected_profiles(emulator)
    rows = list(ws.stream_profiles())
    assert {r["distinct_id"] for r in rows} == set(expected_profiles(emulator))
    assert not ws.storage.exists()


def test_bad_behaviors_json_is_rejected(ws: Workspace) -> None:
    from mixpanel_data.exceptions import ValidationError

    with pytest.raises(ValidationError, match="--behaviors must be JSON"):
        ws.fetch_profiles("p", behaviors="[not json")
    with pytest.raises(ValidationError, match="not both"):
        ws.fetch_profiles("p", cohort_id=1, behaviors="[]")


def test_update_is_refused_with_the_reason_and_the_way_out(
    cli_env: Path, emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Engage can filter only on profile properties; `$last_seen` misses `$ignore_time`
    updates and deletions, so `--update` would leave stale profiles silently."""
    from mixpanel_data.cli.main import main

    with pytest.raises(SystemExit) as first:
        main(["-q", "fetch", "profiles"])
    assert first.value.code in (0, None)
    capsys.readouterr()
    before = stored_profiles(Workspace.open(cli_env))
    assert before == expected_profiles(emulator)
    with pytest.raises(SystemExit) as refused:
        main(["fetch", "profiles", "--update"])
    out, err = capsys.readouterr()
    assert refused.value.code == 3
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "$ignore_time" in lines[0]
    assert "--replace" in lines[0]
    assert stored_profiles(Workspace.open(cli_env)) == before
