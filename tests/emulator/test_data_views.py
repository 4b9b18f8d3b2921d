"""The emulator's data views at the HTTP level: listing, refusals, and what ignores them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx


def _get(emu: Any, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{emu.base_url}{path}",
        params={"project_id": emu.spec.project_id, **params},
        auth=(emu.username, emu.secret),
        timeout=60,
    )


def test_me_lists_the_global_view_and_two_filtered_ones(emulator: Any) -> None:
    g = emulator.project.workspace_id
    me = httpx.get(f"{emulator.base_url}/api/app/me", auth=(emulator.username, emulator.secret))
    workspaces = me.json()["results"]["workspaces"]
    assert sorted(workspaces) == [str(g), str(g + 1), str(g + 2)]
    assert [workspaces[str(i)]["name"] for i in (g, g + 1, g + 2)] == [
        "All Project Data",
        "Commerce",
        "Without browsing",
    ]
    assert [workspaces[str(i)]["is_global"] for i in (g, g + 1, g + 2)] == [True, False, False]
    assert {w["project_id"] for w in workspaces.values()} == {int(emulator.spec.project_id)}


def test_unknown_and_malformed_workspace_ids_get_mixpanels_envelope(emulator: Any) -> None:
    unknown = _get(emulator, "/api/query/events/top", type="general", workspace_id="77")
    assert unknown.status_code == 403
    assert unknown.json()["error"] == "User is not a member of this workspace"
    assert "workspace_id=77" in unknown.json()["request"]
    malformed = _get(emulator, "/api/2.0/engage", workspace_id="abc")
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "Error in workspace_id: expected an integer, got 'abc'"


def test_export_ignores_workspace_id_and_engage_profiles_are_not_filtered(emulator: Any) -> None:
    day = emulator.project.data_dates[-2].isoformat()
    g = emulator.project.workspace_id
    plain = _get(emulator, "/api/2.0/export", from_date=day, to_date=day)
    in_view = _get(emulator, "/api/2.0/export", from_date=day, to_date=day, workspace_id=g + 1)
    assert plain.status_code == in_view.status_code == 200
    assert plain.content == in_view.content
    assert b'"event":"Page View"' in in_view.content
    profiles = _get(emulator, "/api/query/engage", workspace_id=g + 1).json()
    assert profiles["total"] == len(emulator.project.profiles())


def test_the_global_view_answers_as_the_project(emulator: Any) -> None:
    last = emulator.project.today - timedelta(days=1)
    first = (last - timedelta(days=3)).isoformat()
    params = {"event": '["Page View"]', "type": "general", "unit": "day"}
    params.update(from_date=first, to_date=last.isoformat())
    g = emulator.project.workspace_id
    everyone = _get(emulator, "/api/query/events", **params).json()
    global_view = _get(emulator, "/api/query/events", workspace_id=g, **params).json()
    commerce = _get(emulator, "/api/query/events", workspace_id=g + 1, **params).json()
    assert everyone == global_view
    assert sum(everyone["data"]["values"]["Page View"].values()) > 0
    assert commerce["data"]["values"]["Page View"] == {}
