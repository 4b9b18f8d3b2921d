"""Data views (``workspace_id``) end to end: the client sends it, the emulator scopes by it.

Expected numbers come from the raw export (``project.iter_export_day``), deduplicated as
Mixpanel's query engine does and filtered by each view's documented event list
(``emulator/data_views.py``), never from the emulator's report code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data import AuthenticationError, ValidationError, Workspace
from mixpanel_data._internal.config import ConfigManager, Credentials
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator

COMMERCE = frozenset({"View Item", "Add To Cart", "Purchase"})
BROWSING = frozenset({"Page View", "Share Item"})
ALL_EVENTS = (
    "Sign Up",
    "Login",
    "View Item",
    "Search",
    "Add To Cart",
    "Purchase",
    "Page View",
    "Share Item",
)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator of its own, so the request log holds only this module's calls."""
    spec = ProjectSpec(seed=11, users=120, days=14)
    with Emulator(spec=spec, cache_dir=tmp_path_factory.mktemp("dv-cache"), threads=8) as e:
        yield e


def creds(emu: Emulator, workspace_id: int | None = None) -> Credentials:
    return Credentials(
        username=emu.username,
        secret=emu.secret,
        project_id=str(emu.spec.project_id),
        base_url=emu.base_url,
        timezone=emu.spec.timezone,
        workspace_id=None if workspace_id is None else str(workspace_id),
    )


def views(emu: Emulator) -> dict[str, int]:
    g = emu.project.workspace_id
    return {"all": g, "commerce": g + 1, "no_browsing": g + 2}


def keeps(view: str, event: str) -> bool:
    if view == "commerce":
        return event in COMMERCE
    if view == "no_browsing":
        return event not in BROWSING
    return True


def raw_counts(emu: Emulator, first: date, last: date) -> Counter[str]:
    """Events per name in [first, last] (project-timezone days), deduplicated."""
    tz = emu.project.tz
    seen: set[tuple[Any, ...]] = set()
    counts: Counter[str] = Counter()
    for day in emu.project.data_dates:
        for rec in emu.project.iter_export_day(day):
            p = rec["properties"]
            key = (rec["event"], p["distinct_id"], p["time"], p.get("$insert_id"))
            if p.get("$insert_id") is not None:
                if key in seen:
                    continue
                seen.add(key)
            if first <= datetime.fromtimestamp(p["time"], tz).date() <= last:
                counts[rec["event"]] += 1
    return counts


@pytest.fixture
def window(emu: Emulator) -> tuple[date, date]:
    end = emu.project.today - timedelta(days=1)
    return end - timedelta(days=6), end


@pytest.mark.parametrize("view", ["all", "commerce", "no_browsing"])
def test_reports_count_only_the_views_events(
    emu: Emulator, window: tuple[date, date], view: str
) -> None:
    first, last = window
    expected = raw_counts(emu, first, last)
    with Workspace(credentials=creds(emu, views(emu)[view])) as ws:
        counts = ws.event_counts(list(ALL_EVENTS), from_date=first, to_date=last)
        names = ws.events()
        jql = ws.jql(
            "function main() { return Events({from_date: params.a, to_date: params.b})"
            ".reduce(mixpanel.reducer.count()); }",
            params={"a": first.isoformat(), "b": last.isoformat()},
        )
    totals = {name: sum(points.values()) for name, points in counts.values.items()}
    assert totals == {e: (expected[e] if keeps(view, e) else 0) for e in ALL_EVENTS}
    assert sum(totals.values()) > 0
    assert names == sorted((e for e in ALL_EVENTS if keeps(view, e)), key=str.casefold)
    assert jql.raw == [sum(n for e, n in expected.items() if keeps(view, e))]


def test_a_funnel_whose_first_step_is_outside_the_view_converts_nobody(
    emu: Emulator, window: tuple[date, date]
) -> None:
    first, last = window
    # Saved funnel 7002 is Login -> Search -> View Item; the Commerce view has no Login.
    with Workspace(credentials=creds(emu)) as ws:
        everyone = ws.funnel(7002, from_date=first, to_date=last)
    with Workspace(credentials=creds(emu, views(emu)["commerce"])) as ws:
        scoped = ws.funnel(7002, from_date=first, to_date=last)
    assert everyone.steps[0].count > 0
    assert [s.count for s in scoped.steps] == [0, 0, 0]


def test_every_query_api_call_carries_workspace_id_and_export_does_not(
    emu: Emulator, window: tuple[date, date], tmp_path: Path
) -> None:
    first, last = window
    wid = views(emu)["no_browsing"]
    emu.clear_requests()
    with Workspace(credentials=creds(emu, wid), path=tmp_path / "dv.duckdb") as ws:
        ws.events()
        ws.properties("Purchase")
        ws.property_values("plan", event="Purchase")
        ws.top_events()
        ws.funnels()
        ws.cohorts()
        ws.bookmarks()
        user = ws.property_values("distinct_id", event="Purchase")[0]
        ws.segmentation("Purchase", from_date=first, to_date=last)
        ws.segmentation_numeric("Purchase", from_date=first, to_date=last, on="price")
        ws.segmentation_sum("Purchase", from_date=first, to_date=last, on="price")
        ws.funnel(7001, from_date=first, to_date=last)
        ws.retention(born_event="Sign Up", event="Login", from_date=first, to_date=last)
        ws.frequency(from_date=first, to_date=last)
        ws.event_counts(["Login"], from_date=first, to_date=last)
        ws.property_counts("Purchase", "plan", from_date=first, to_date=last)
        ws.activity_feed([user], from_date=first, to_date=last)
        ws.saved_report(5001)
        ws.jql(
            "function main() { return Events({from_date: '2020-01-01', to_date: '2020-01-01'}); }"
        )
        ws.fetch_events(from_date=last, to_date=last)
        ws.fetch_profiles()
    calls = emu.wait_for_requests(lambda rs: bool(rs) and all(r.complete for r in rs))
    query = [r for r in calls if r.family == "query"]
    assert {r.endpoint for r in query} >= {
        "events/names",
        "events/properties/top",
        "events/properties/values",
        "events/top",
        "funnels/list",
        "cohorts/list",
        "segmentation",
        "segmentation/numeric",
        "segmentation/sum",
        "funnels",
        "retention",
        "retention/addiction",
        "events",
        "events/properties",
        "stream/query",
        "insights",
        "jql",
        "engage",
    }
    assert {r.params.get("workspace_id") for r in query} == {str(wid)}
    # events/names first asks for the whole history and may get the plan's 403 (then retries).
    failed = [(r.endpoint, r.status) for r in calls if r.status != 200]
    assert set(failed) <= {("events/names", 403)}, failed
    # The export spec has no workspace_id; the App API (/me, bookmarks) is not the Query API.
    others = [r for r in calls if r.family != "query"]
    assert {r.family for r in others} == {"export", "app"}
    assert all("workspace_id" not in r.params for r in others)


def test_an_unknown_data_view_is_refused_with_one_clear_error(emu: Emulator) -> None:
    with Workspace(credentials=creds(emu, 4242)) as ws:
        with pytest.raises(AuthenticationError) as exc:
            ws.events()
        with pytest.raises(AuthenticationError) as tested:
            ws.test_credentials()
    assert exc.value.status_code == 403
    assert exc.value.server_message == "User is not a member of this workspace"
    assert "data view (workspace) 4242" in exc.value.message
    assert exc.value.exit_code == 2
    assert "data view (workspace) 4242 is not one this account sees" in tested.value.message


def test_auth_test_names_the_data_view(emu: Emulator) -> None:
    with Workspace(credentials=creds(emu, views(emu)["commerce"])) as ws:
        described = ws.test_credentials()
    assert described["workspace_id"] == str(views(emu)["commerce"])
    assert described["workspace_name"] == "Commerce"
    assert described["kind"] == "service_account"


def test_a_workspace_id_that_is_not_a_number_fails_before_any_call() -> None:
    with pytest.raises(ValidationError, match="invalid workspace id 'prod'"):
        Credentials(username="u", secret="s", project_id="1", workspace_id="prod")


def mp(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixpanel_data", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_config_env_and_flag_choose_the_data_view(
    emu: Emulator, window: tuple[date, date], tmp_path: Path
) -> None:
    """Config ``workspace_id``, ``MP_WORKSPACE_ID`` (env credentials) and ``--workspace-id``."""
    first, last = window
    expected = raw_counts(emu, first, last)
    config = tmp_path / "config.toml"
    base = {"MP_CONFIG_PATH": str(config), "MP_RATE_LIMIT_QUERY": "5c"}
    commerce, no_browsing = views(emu)["commerce"], views(emu)["no_browsing"]
    added = mp(
        "auth", "add", "shop", "-u", emu.username, "-p", str(emu.spec.project_id),
        "--base-url", emu.base_url, "--workspace-id", str(commerce), "--secret-stdin",
        env=base, stdin=emu.secret + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert ConfigManager(config).get_account("shop").workspace_id == str(commerce)
    assert json.loads(added.stdout)["workspace_id"] == str(commerce)
    range_args = ("--from", first.isoformat(), "--to", last.isoformat())
    count = ("query", "event-counts", "-e", "Page View", "-e", "Purchase", *range_args)

    def totals(proc: subprocess.CompletedProcess[str]) -> dict[str, float]:
        assert proc.returncode == 0, proc.stderr
        return {k: sum(v.values()) for k, v in json.loads(proc.stdout)["values"].items()}

    in_config = totals(mp(*count, env=base))
    assert in_config == {"Page View": 0, "Purchase": expected["Purchase"]}
    flag = totals(mp("--workspace-id", str(views(emu)["all"]), *count, env=base))
    assert flag == {"Page View": expected["Page View"], "Purchase": expected["Purchase"]}
    env_creds = {
        **base,
        "MP_CONFIG_PATH": str(tmp_path / "none.toml"),
        "MP_USERNAME": emu.username,
        "MP_SECRET": emu.secret,
        "MP_PROJECT_ID": str(emu.spec.project_id),
        "MP_BASE_URL": emu.base_url,
        "MP_WORKSPACE_ID": str(no_browsing),
    }
    from_env = mp(*count, "-e", "Login", env=env_creds)
    assert totals(from_env) == {
        "Page View": 0,
        "Purchase": expected["Purchase"],
        "Login": expected["Login"],
    }
    shown = mp("--workspace-id", str(no_browsing), "auth", "test", "shop", env=base)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["workspace_name"] == "Without browsing"
    refused = mp("--workspace-id", "4242", *count, env=base)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "data view (workspace) 4242" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = mp("--workspace-id", "view-1", *count, env=base)
    assert bad.returncode == 3
    assert bad.stderr.strip().startswith("Error: invalid workspace id 'view-1'")
