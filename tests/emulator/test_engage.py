"""The emulated Engage API (contract §5): filters, cohorts, and session paging."""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator

KEY_ORDER = ["results", "page", "session_id", "page_size", "total", "status", "computed_at"]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """More than 2000 profiles, so paging has three pages."""
    spec = ProjectSpec(seed=11, users=2600, days=3)
    cache = tmp_path_factory.mktemp("engage-cache")
    with Emulator(spec=spec, cache_dir=cache, threads=32) as emu:
        yield emu


@pytest.fixture(scope="module")
def client(big: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=big.base_url, auth=(big.username, big.secret), timeout=30) as c:
        yield c


def _engage(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.post("/api/query/engage", params={"project_id": "1000001"}, data=params)


def _all_profiles(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    first = _engage(client, **params).json()
    results = list(first["results"])
    page = first
    while len(page["results"]) == page["page_size"]:
        page = _engage(
            client, **params, session_id=first["session_id"], page=page["page"] + 1
        ).json()
        results.extend(page["results"])
    return results, first["total"]


def test_paging_returns_every_profile_exactly_once_and_total_matches(big, client):
    first = _engage(client)
    assert first.status_code == 200
    body = first.json()
    assert list(body) == KEY_ORDER
    assert re.fullmatch(r"\d{13}-[0-9a-f]{32}", body["session_id"])
    assert (body["page"], body["page_size"], body["status"]) == (0, 1000, "ok")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", body["computed_at"])

    pages = [body]
    while len(pages[-1]["results"]) == 1000:
        nxt = _engage(client, session_id=body["session_id"], page=len(pages)).json()
        assert list(nxt) == [k for k in KEY_ORDER if k != "total"]  # total on page 0 only
        assert nxt["session_id"] == body["session_id"]
        pages.append(nxt)
    ids = [p["$distinct_id"] for page in pages for p in page["results"]]
    assert len(pages) == 3
    assert len(ids) == len(set(ids)) == body["total"]
    assert set(ids) == {p["$distinct_id"] for p in big.project.profiles()}
    for profile in pages[1]["results"]:
        assert set(profile) == {"$distinct_id", "$properties"}


def test_pages_can_be_fetched_in_parallel_with_the_shared_session(big, client):
    first = _engage(client).json()
    pages = range(1, -(-first["total"] // 1000))
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        bodies = list(
            pool.map(
                lambda n: _engage(client, session_id=first["session_id"], page=n).json(), pages
            )
        )
    ids = [p["$distinct_id"] for b in [first, *bodies] for p in b["results"]]
    assert len(ids) == len(set(ids)) == first["total"]


def test_a_page_after_zero_needs_a_live_session(big, client):
    for params in ({"page": 1}, {"page": 1, "session_id": "1700000000000-" + "0" * 32}):
        response = _engage(client, **params)
        assert response.status_code == 400
        body = response.json()
        assert list(body) == ["request", "error"]
        assert body["request"] == "/api/query/engage?project_id=1000001"
        assert "uncached query" in body["error"]


def test_sessions_expire_after_their_ttl(tmp_path):
    with Emulator(spec=ProjectSpec(users=20, days=1), cache_dir=tmp_path, session_ttl=0.0) as emu:
        auth = (emu.username, emu.secret)
        url = f"{emu.base_url}/api/2.0/engage"
        first = httpx.get(url, params={"project_id": "1000001"}, auth=auth).json()
        again = httpx.get(
            url,
            params={"project_id": "1000001", "page": 1, "session_id": first["session_id"]},
            auth=auth,
        )
        assert again.status_code == 400


def test_get_form_json_and_mixed_bodies_give_the_same_answer(big, client):
    where = 'properties["plan"] == "pro"'
    form = client.post("/api/query/engage", params={"project_id": "1000001"}, data={"where": where})
    get = client.get("/api/2.0/engage", params={"project_id": "1000001", "where": where})
    as_json = client.post(
        "/api/query/engage", params={"project_id": "1000001"}, json={"where": where}
    )
    mixed = client.post(
        "/api/query/engage", params={"project_id": "1000001", "page": 0}, data={"where": where}
    )
    results = [r.json()["results"] for r in (form, get, as_json, mixed)]
    assert results[0] == results[1] == results[2] == results[3]
    assert 0 < len(results[0]) < len(big.project.profiles())


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('properties["plan"] == "pro"', lambda p: p.get("plan") == "pro"),
        (
            'properties["age"] > 40 and properties["$country_code"] != "US"',
            lambda p: _numeric(p.get("age")) and p["age"] > 40 and p.get("$country_code") != "US",
        ),
        ('properties["is_verified"] == true', lambda p: p.get("is_verified") is True),
    ],
)
def test_where_returns_exactly_the_matching_profiles(big, client, where, expected):
    everyone, _ = _all_profiles(client)
    want = [p for p in everyone if expected(p["$properties"])]
    got, total = _all_profiles(client, where=where)
    assert got == want
    assert total == len(want) > 0


def test_output_properties_and_distinct_ids(big, client):
    everyone, _ = _all_profiles(client)
    chosen = [p["$distinct_id"] for p in everyone[5:9]]
    body = _engage(
        client, distinct_ids=json.dumps(chosen), output_properties='["$email", "plan"]'
    ).json()
    assert [p["$distinct_id"] for p in body["results"]] == chosen
    for got, full in zip(body["results"], everyone[5:9], strict=True):
        wanted = {k: v for k, v in full["$properties"].items() if k in ("$email", "plan")}
        assert got["$properties"] == wanted
    one = _engage(client, distinct_id=chosen[0]).json()
    assert one["results"] == [everyone[5]]
    assert one["total"] == 1


def test_filter_by_cohort_includes_members_without_profiles_by_default(big, client):
    everyone, _ = _all_profiles(client)
    profiled = {p["$distinct_id"] for p in everyone}
    anonymous = next(c for c in big.project.cohorts() if c["name"] == "Anonymous visitors")
    members = big.project.cohort_members(anonymous["id"])
    missing = members - profiled
    assert missing  # this cohort holds people who never got a profile

    got, total = _all_profiles(client, filter_by_cohort=json.dumps({"id": anonymous["id"]}))
    assert {p["$distinct_id"] for p in got} == set(members)
    assert total == len(members)
    assert all(p["$properties"] == {} for p in got if p["$distinct_id"] in missing)

    only, only_total = _all_profiles(
        client,
        filter_by_cohort=json.dumps({"id": anonymous["id"]}),
        include_all_users="false",
    )
    assert {p["$distinct_id"] for p in only} == members & profiled
    assert only_total == len(members & profiled)


def test_filter_by_cohort_on_a_profile_property_matches_an_independent_filter(big, client):
    everyone, _ = _all_profiles(client)
    pro = next(c for c in big.project.cohorts() if c["name"] == "Pro plan users")
    got, _ = _all_profiles(client, filter_by_cohort=json.dumps({"id": str(pro["id"])}))
    assert {p["$distinct_id"] for p in got} == {
        p["$distinct_id"] for p in everyone if p["$properties"].get("plan") == "pro"
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"distinct_ids": "a,b"}, "distinct_ids must be a JSON array"),
        ({"filter_by_cohort": "12"}, "filter_by_cohort"),
        ({"filter_by_cohort": '{"id": 999999}'}, "cohort 999999 does not exist"),
        ({"where": 'properties["plan" =='}, "invalid 'where'"),
        ({"page": "x"}, "page must be an integer"),
    ],
)
def test_bad_parameters_give_the_400_envelope(client, params, message):
    response = _engage(client, **params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_group_profiles_are_empty_in_the_synthetic_project(client):
    body = _engage(client, data_group_id="-1405123841946871899").json()
    assert (body["results"], body["total"]) == ([], 0)
