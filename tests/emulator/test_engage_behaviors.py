"""Engage ``behaviors`` + ``as_of_timestamp`` (contract §5): HTTP, Workspace and `mp` CLI.

The expected selection is computed from the raw export over HTTP with plain Python:
a profile matches a behavior when it has events of the selected names whose (true
UTC) time falls in the window (as_of - window, as_of].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixpanel_data._internal.config import Credentials
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator
from mixpanel_data.workspace import Workspace

TODAY = date(2026, 3, 20)
MP = str(Path(sys.executable).with_name("mp"))
PURCHASED = [{"name": "bought", "window": "5d", "event_selectors": [{"event": "Purchase"}]}]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    spec = ProjectSpec(seed=3, users=2000, days=8, today=TODAY)
    with Emulator(spec=spec, cache_dir=Path(tmp_path_factory.mktemp("behaviors"))) as e:
        yield e


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, auth=(emu.username, emu.secret), timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def exported(emu: Emulator, client: httpx.Client) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(event, distinct_id, time, properties) of every exported event, deduplicated."""
    days = emu.project.data_dates
    response = client.get(
        "/api/2.0/export",
        params={
            "project_id": emu.spec.project_id,
            "from_date": days[0].isoformat(),
            "to_date": TODAY.isoformat(),
        },
    )
    assert response.status_code == 200
    seen, out = set(), []
    for line in response.content.splitlines():
        if line.strip():
            r = orjson.loads(line)
            p = r["properties"]
            key = (r["event"], p["distinct_id"], p["time"], p.get("$insert_id"))
            if key not in seen:
                seen.add(key)
                out.append((r["event"], str(p["distinct_id"]), int(p["time"]), p))
    return out


@pytest.fixture(scope="module")
def as_of(exported: list[tuple[str, str, int, dict[str, Any]]]) -> int:
    """Two days before the last event, so the window cuts the data on both sides."""
    return max(t for _, _, t, _ in exported) - 2 * 86400


def counted(exported, as_of: int, seconds: int, event: str | None = None, keep=None) -> Counter:
    return Counter(
        user
        for name, user, t, props in exported
        if as_of - seconds < t <= as_of
        and (event is None or name == event)
        and (keep is None or keep(props))
    )


def engage(client: httpx.Client, **data: Any) -> httpx.Response:
    return client.post("/api/query/engage", params={"project_id": "1000001"}, data=data)


def profile_ids(emu: Emulator) -> set[str]:
    return {str(p["$distinct_id"]) for p in emu.project.profiles()}


def test_behaviors_select_profiles_with_events_in_the_window(emu, client, exported, as_of):
    response = engage(client, behaviors=json.dumps(PURCHASED), as_of_timestamp=as_of)
    assert response.status_code == 200, response.text
    body = response.json()
    got = {str(p["$distinct_id"]) for p in body["results"]}
    expected = set(counted(exported, as_of, 5 * 86400, "Purchase")) & profile_ids(emu)
    assert got == expected
    assert body["total"] == len(expected)
    assert 0 < len(expected) < len(profile_ids(emu))
    # The window matters: a one-day window selects a strict subset.
    narrow = [{**PURCHASED[0], "window": "1d"}]
    small = engage(client, behaviors=json.dumps(narrow), as_of_timestamp=as_of).json()
    small_ids = {str(p["$distinct_id"]) for p in small["results"]}
    assert small_ids == set(counted(exported, as_of, 86400, "Purchase")) & profile_ids(emu)
    assert small_ids < got


def test_where_reads_behavior_counts_and_selectors_filter_events(emu, client, exported, as_of):
    behaviors = [
        {
            "name": "big",
            "window": "1w",
            "event_selectors": [{"event": "Purchase", "selector": 'properties["quantity"] >= 2'}],
        },
        {"name": "views", "window": "72h", "event_selectors": [{"event": "Page View"}]},
    ]
    where = 'behaviors["big"] >= 1 and behaviors["views"] > 2'
    response = engage(client, behaviors=json.dumps(behaviors), as_of_timestamp=as_of, where=where)
    assert response.status_code == 200, response.text
    got = {str(p["$distinct_id"]) for p in response.json()["results"]}
    big = counted(
        exported,
        as_of,
        7 * 86400,
        "Purchase",
        lambda p: isinstance(p.get("quantity"), int) and p["quantity"] >= 2,
    )
    views = counted(exported, as_of, 72 * 3600, "Page View")
    expected = {u for u in profile_ids(emu) if big[u] >= 1 and views[u] > 2}
    assert got == expected
    assert expected


def test_paging_a_behaviors_query_needs_as_of_timestamp(emu, client, exported):
    names = sorted({name for name, _, _, _ in exported})
    selectors = [{"event": n} for n in names]
    everything = [{"name": "any", "window": "30d", "event_selectors": selectors}]
    first = engage(client, behaviors=json.dumps(everything)).json()
    assert first["total"] > 1000  # more than one page
    again = engage(client, behaviors=json.dumps(everything), session_id=first["session_id"], page=1)
    assert again.status_code == 400
    assert again.json()["error"] == "request for page in uncached query for params"
    stamp = max(t for _, _, t, _ in exported) + 1
    first = engage(client, behaviors=json.dumps(everything), as_of_timestamp=stamp).json()
    page1 = engage(
        client,
        behaviors=json.dumps(everything),
        as_of_timestamp=stamp,
        session_id=first["session_id"],
        page=1,
    )
    assert page1.status_code == 200, page1.text
    ids = [p["$distinct_id"] for p in first["results"] + page1.json()["results"]]
    assert len(ids) == len(set(ids)) == first["total"]
    active = {u for _, u, t, _ in exported if stamp - 30 * 86400 < t <= stamp}
    assert set(map(str, ids)) == active & profile_ids(emu)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"behaviors": "not json"}, "behaviors must be a JSON array"),
        ({"behaviors": json.dumps([{"name": "x", "window": "soon"}])}, "window must be like"),
        ({"behaviors": json.dumps([{"window": "3d"}])}, "needs a name"),
        ({"behaviors": json.dumps([{"name": "x", "window": "3d"}])}, "needs event_selectors"),
        (
            {"behaviors": json.dumps(PURCHASED), "filter_by_cohort": '{"id": 1}'},
            "mutually exclusive",
        ),
        ({"behaviors": json.dumps(PURCHASED), "as_of_timestamp": "noon"}, "as_of_timestamp"),
    ],
)
def test_bad_behaviors_are_400_envelopes(client, data, fragment):
    response = engage(client, **data)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["request", "error"]
    assert fragment in body["error"]


def _creds(emu: Emulator) -> Credentials:
    from pydantic import SecretStr

    return Credentials(
        username=emu.username,
        secret=SecretStr(emu.secret),
        project_id=str(emu.spec.project_id),
        base_url=emu.base_url,
        timezone=emu.spec.timezone,
    )


def test_workspace_fetch_profiles_with_behaviors(emu, exported, as_of, tmp_path):
    expected = set(counted(exported, as_of, 5 * 86400, "Purchase")) & profile_ids(emu)
    with Workspace(credentials=_creds(emu), path=tmp_path / "b.duckdb") as ws:
        result = ws.fetch_profiles("buyers", behaviors=PURCHASED, as_of_timestamp=as_of)
        _cols, rows = ws.storage.execute_rows('SELECT distinct_id FROM "buyers"')
    assert {r[0] for r in rows} == expected
    assert result.rows_inserted == len(expected)
    sent = [r for r in emu.requests() if r.path.endswith("/engage") and "behaviors" in r.params]
    assert sent
    assert json.loads(sent[-1].params["behaviors"]) == PURCHASED
    assert sent[-1].params["as_of_timestamp"] == str(as_of)


def test_cli_fetch_profiles_with_behaviors_end_to_end(emu, exported, as_of, tmp_path):
    expected = set(counted(exported, as_of, 5 * 86400, "Purchase")) & profile_ids(emu)
    env = {
        **os.environ,
        "MP_BASE_URL": emu.base_url,
        "MP_USERNAME": emu.username,
        "MP_SECRET": emu.secret,
        "MP_PROJECT_ID": str(emu.spec.project_id),
        "MP_TIMEZONE": emu.spec.timezone,
    }
    args = ["fetch", "profiles", "--behaviors", json.dumps(PURCHASED)]
    args += ["--as-of-timestamp", str(as_of), "--stdout"]
    proc = subprocess.run(
        [MP, "-q", "--db", str(tmp_path / "cli.duckdb"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {str(r["distinct_id"]) for r in rows} == expected
    assert len(rows) == len(expected)
