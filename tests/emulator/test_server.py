"""The emulator server: routing, auth as Mixpanel does it, recording, limits, lifecycle."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from typing import Any

import httpx
import pytest

from mixpanel_data.emulator.limits import Budget, RateLimiter
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.routing import QUERY_ROUTES, ApiRequest, EmulatorError
from mixpanel_data.emulator.server import Emulator


def _day(emu: Any, index: int = -1) -> str:
    return str(emu.project.data_dates[index])


def _export_params(emu: Any, **extra: Any) -> dict[str, Any]:
    return {
        "project_id": emu.spec.project_id,
        "from_date": _day(emu),
        "to_date": _day(emu),
        **extra,
    }


# -- lifecycle ----------------------------------------------------------------------------


def test_emulator_binds_loopback_and_exposes_credentials(emulator):
    creds = emulator.credentials
    assert set(creds) == {"base_url", "username", "secret", "project_id"}
    assert creds["base_url"] == emulator.base_url
    assert creds["base_url"].startswith("http://127.0.0.1:")
    assert int(creds["base_url"].rsplit(":", 1)[1]) == emulator.port > 0
    assert creds["project_id"] == "1000001"
    assert creds["username"].endswith(".mp-service-account")


def test_stop_cuts_a_stream_in_flight_and_returns_promptly(tmp_path):
    emu = Emulator(
        spec=ProjectSpec(users=50, days=2),
        cache_dir=tmp_path,
        faults="export:slow:bytes_per_second=2000",
    )
    emu.start()
    received = 0
    with httpx.stream(
        "GET",
        f"{emu.base_url}/api/2.0/export",
        params=_export_params(emu),
        auth=(emu.username, emu.secret),
        headers={"Accept-Encoding": "identity"},
    ) as response:
        assert response.status_code == 200
        started = time.monotonic()

        def consume() -> None:
            nonlocal received
            for chunk in response.iter_raw():
                received += len(chunk)
                if received >= 200:
                    emu.stop()

        with pytest.raises(httpx.TransportError):
            consume()
        assert time.monotonic() - started < 5
    assert received < 2000 * 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{emu.base_url}/api/app/me", timeout=2)


def test_many_concurrent_exports_are_served_at_once(emulator):
    auth = (emulator.username, emulator.secret)

    def fetch(_: int) -> int:
        response = httpx.get(
            f"{emulator.base_url}/api/2.0/export",
            params=_export_params(emulator, limit=5),
            auth=auth,
            timeout=30,
        )
        return response.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(fetch, range(40)))
    assert statuses == [200] * 40


# -- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/query/no-such-report", "/api/2.0/no-such-report", "/api/query/export", "/nope"]
)
def test_unknown_endpoints_are_400_invalid_api_endpoint(emulator, path):
    response = httpx.get(
        f"{emulator.base_url}{path}",
        params={"project_id": emulator.spec.project_id},
        auth=(emulator.username, emulator.secret),
    )
    assert response.status_code == 400
    assert response.json() == {
        "request": f"{path}?project_id={emulator.spec.project_id}",
        "error": "Invalid API endpoint",
    }


def test_query_routes_dispatch_under_both_prefixes(emulator, monkeypatch):
    seen: list[ApiRequest] = []

    def echo(request: ApiRequest) -> Any:
        seen.append(request)
        if request.params.get("fail") == "plain":
            raise EmulatorError(418, "plain failure", plain_text=True)
        if request.params.get("fail"):
            raise EmulatorError(412, "script error")
        return {"endpoint": request.endpoint, "params": dict(request.params)}

    monkeypatch.setitem(QUERY_ROUTES, "test/echo", echo)
    auth = (emulator.username, emulator.secret)
    for prefix in ("/api/query/", "/api/2.0/"):
        response = httpx.get(
            f"{emulator.base_url}{prefix}test/echo",
            params={"project_id": emulator.spec.project_id, "event": '["A"]'},
            auth=auth,
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "endpoint": "test/echo",
            "params": {"project_id": emulator.spec.project_id, "event": '["A"]'},
        }
    assert seen[0].project is emulator.project
    assert seen[0].request_line == "/api/query/test/echo?project_id=1000001&event=%5B%22A%22%5D"

    # POST form and JSON bodies merge with the query string; JSON values arrive JSON-encoded.
    response = httpx.post(
        f"{emulator.base_url}/api/query/test/echo?project_id=1000001",
        json={"ids": [1, 2], "flag": True, "name": "x"},
        auth=auth,
    )
    assert response.json()["params"] == {
        "project_id": "1000001",
        "ids": "[1,2]",
        "flag": "true",
        "name": "x",
    }
    failed = httpx.get(
        f"{emulator.base_url}/api/2.0/test/echo",
        params={"project_id": "1000001", "fail": "1"},
        auth=auth,
    )
    assert failed.status_code == 412
    assert failed.json() == {
        "request": "/api/2.0/test/echo?project_id=1000001&fail=1",
        "error": "script error",
    }
    plain = httpx.get(
        f"{emulator.base_url}/api/2.0/test/echo",
        params={"project_id": "1000001", "fail": "plain"},
        auth=auth,
    )
    assert (plain.status_code, plain.text) == (418, "plain failure")
    assert plain.headers["content-type"].startswith("text/plain")


# -- auth (contract §2) -------------------------------------------------------------------


def test_bad_password_on_export_is_the_plain_text_400(emulator):
    response = httpx.get(
        f"{emulator.base_url}/api/2.0/export",
        params=_export_params(emulator),
        auth=(emulator.username, "wrong"),
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Unable to authenticate request\n"
    no_auth = httpx.get(f"{emulator.base_url}/api/2.0/export", params=_export_params(emulator))
    assert (no_auth.status_code, no_auth.text) == (400, "Unable to authenticate request\n")


def test_bad_password_on_the_query_host_is_a_401_envelope(emulator):
    response = httpx.get(
        f"{emulator.base_url}/api/query/engage",
        params={"project_id": emulator.spec.project_id},
        auth=("someone.abc123.mp-service-account", emulator.secret),
    )
    assert response.status_code == 401
    assert response.json() == {
        "request": f"/api/query/engage?project_id={emulator.spec.project_id}",
        "error": "Unable to authenticate request",
    }
    assert response.headers["www-authenticate"].startswith("Basic")


def test_bad_password_on_the_app_api_uses_the_app_error_shape(emulator):
    response = httpx.get(f"{emulator.base_url}/api/app/me", auth=("x", "y"))
    assert response.status_code == 401
    assert response.json() == {"status": "error", "error": "Unable to authenticate request"}


@pytest.mark.parametrize("path", ["/api/2.0/export", "/api/query/engage", "/api/2.0/engage"])
def test_a_project_the_account_cannot_see_is_403(emulator, path):
    params = {**_export_params(emulator), "project_id": "42"}
    response = httpx.get(
        f"{emulator.base_url}{path}", params=params, auth=(emulator.username, emulator.secret)
    )
    assert response.status_code == 403
    body = response.json()
    assert list(body) == ["request", "error"]
    assert body["error"] == "User is not a member of this project"
    assert body["request"].startswith(f"{path}?")


def test_service_account_without_project_id_is_refused(emulator):
    response = httpx.get(
        f"{emulator.base_url}/api/query/engage", auth=(emulator.username, emulator.secret)
    )
    assert response.status_code == 400
    assert "project_id" in response.json()["error"]


def test_legacy_project_secret_with_empty_password_needs_no_project_id(emulator):
    params = _export_params(emulator, limit=3)
    del params["project_id"]
    for secret in (emulator.project_secret, emulator.secret):
        response = httpx.get(
            f"{emulator.base_url}/api/2.0/export", params=params, auth=(secret, "")
        )
        assert response.status_code == 200
        assert response.content.count(b"\n") == 3
    engage = httpx.get(f"{emulator.base_url}/api/2.0/engage", auth=(emulator.project_secret, ""))
    assert engage.status_code == 200
    assert engage.json()["total"] == len(emulator.project.profiles())


def test_plain_text_basic_credentials_are_accepted(emulator):
    header = f"Basic {emulator.username}:{emulator.secret}"
    response = httpx.get(f"{emulator.base_url}/api/app/me", headers={"Authorization": header})
    assert response.status_code == 200
    encoded = base64.b64encode(f"{emulator.username}:wrong".encode()).decode()
    refused = httpx.get(
        f"{emulator.base_url}/api/app/me", headers={"Authorization": f"Basic {encoded}"}
    )
    assert refused.status_code == 401


def test_me_lists_the_project_with_timezone_and_domain(emulator):
    response = httpx.get(
        f"{emulator.base_url}/api/app/me", auth=(emulator.username, emulator.secret)
    )
    body = response.json()
    assert list(body) == ["status", "results"]
    assert body["status"] == "ok"
    results = body["results"]
    assert results["user_email"] == f"{emulator.username}@mixpanel.org"
    project = results["projects"][emulator.spec.project_id]
    assert project["timezone"] == emulator.spec.timezone
    assert project["domain"]


def test_bookmarks_are_listed_without_internal_fields(emulator):
    pid = emulator.spec.project_id
    url = f"{emulator.base_url}/api/app/projects/{pid}/bookmarks"
    response = httpx.get(url, params={"v": 2}, auth=(emulator.username, emulator.secret))
    rows = response.json()["results"]
    assert [r["id"] for r in rows] == [b["id"] for b in emulator.project.bookmarks()]
    # v2 rows carry the saved query (``params``, Mixpanel's bookmark JSON): the emulator
    # has it for its saved funnels; the other rows' report settings stay internal.
    saved = {f["funnel_id"]: f for f in emulator.project.funnels()}
    for r in rows:
        if r["id"] in saved:
            assert r["params"] == emulator.project.funnel_bookmark_params(saved[r["id"]])
            behavior = r["params"]["sections"]["show"][0]["behavior"]
            assert behavior["conversionWindowDuration"] == saved[r["id"]]["length"]
            assert len(behavior["behaviors"]) == len(saved[r["id"]]["steps"])
        else:
            assert "params" not in r
    assert {r["id"] for r in rows if "params" in r} == set(saved)
    funnels = httpx.get(
        url, params={"v": 2, "type": "funnels"}, auth=(emulator.username, emulator.secret)
    ).json()["results"]
    assert funnels
    assert {r["type"] for r in funnels} == {"funnels"}
    other = httpx.get(
        f"{emulator.base_url}/api/app/projects/99/bookmarks",
        auth=(emulator.username, emulator.secret),
    )
    assert other.status_code == 403


# -- recording ----------------------------------------------------------------------------


def test_every_request_is_recorded_without_the_secret(emulator):
    emulator.clear_requests()
    good = httpx.get(
        f"{emulator.base_url}/api/2.0/export",
        params=_export_params(emulator, limit=2),
        auth=(emulator.username, emulator.secret),
        headers={"Accept-Encoding": "identity"},
    )
    bad = httpx.get(
        f"{emulator.base_url}/api/query/engage",
        params={"project_id": emulator.spec.project_id, "api_secret": "leak"},
        auth=(emulator.username, "nope"),
    )
    calls = emulator.wait_for_requests(lambda c: len(c) == 2 and all(x.complete for x in c))
    first, second = calls
    assert (first.method, first.path, first.endpoint, first.family) == (
        "GET",
        "/api/2.0/export",
        "export",
        "export",
    )
    assert first.params == {k: str(v) for k, v in _export_params(emulator, limit=2).items()}
    assert (first.auth_ok, first.status, first.bytes_sent) == (True, 200, len(good.content))
    assert first.duration_ms >= 0
    assert (second.auth_ok, second.status, second.bytes_sent) == (False, 401, len(bad.content))
    assert "api_secret" not in second.params
    dumped = json.dumps([c.to_dict() for c in calls])
    assert emulator.secret not in dumped
    assert "leak" not in dumped

    listed = httpx.get(f"{emulator.base_url}/_emulator/requests").json()["requests"]
    assert [r["id"] for r in listed] == [first.id, second.id]
    assert httpx.delete(f"{emulator.base_url}/_emulator/requests").status_code == 200
    assert emulator.requests() == []


# -- rate limits (contract §3.3) ----------------------------------------------------------


def test_rate_limiter_budgets_with_a_fake_clock():
    now = [0.0]
    limiter = RateLimiter(
        hour_seconds=100.0,
        budgets={"export": Budget(hourly=5, concurrent=2, per_second=3), "query": Budget(4, 5)},
        clock=lambda: now[0],
    )
    assert limiter.acquire("export", "1") is None
    assert limiter.acquire("export", "1") is None
    refused = limiter.acquire("export", "1")  # 2 running: the concurrency cap
    assert refused is not None
    assert "2/2 queries running concurrently and 3/5 queries running in the last hour" in (
        refused.message
    )
    limiter.release("export", "1")
    assert limiter.acquire("export", "1") is None  # third this second: allowed
    limiter.release("export", "1")
    limiter.release("export", "1")
    refused = limiter.acquire("export", "1")  # fourth in the same second
    assert refused is not None
    assert refused.retry_after == 1
    now[0] = 1.5
    assert limiter.acquire("export", "1") is None
    assert limiter.acquire("export", "1") is None
    limiter.release("export", "1")
    limiter.release("export", "1")
    now[0] = 3.0
    refused = limiter.acquire("export", "1")  # 5 in the last "hour" of 100 s
    assert refused is not None
    assert refused.retry_after == 97  # the oldest call leaves the window at t=100
    assert limiter.acquire("export", "2") is None  # per project
    now[0] = 100.5
    assert limiter.acquire("export", "1") is None
    assert limiter.acquire("app", "1") is None  # the App API has no budget here


def test_rate_limit_429_has_the_real_body_over_http(tmp_path):
    spec = ProjectSpec(users=30, days=2)
    with Emulator(spec=spec, cache_dir=tmp_path, rate_limit=True, retry_after=True) as emu:
        auth = (emu.username, emu.secret)
        emu.project.export_day_path(emu.project.data_dates[-1])  # generated before the clock runs
        statuses = []
        for _ in range(4):
            response = httpx.get(
                f"{emu.base_url}/api/2.0/export", params=_export_params(emu, limit=1), auth=auth
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429]  # 3 per second
        body = response.json()
        assert list(body) == ["request", "error"]
        assert body["error"].startswith(
            f"Query rate limit exceeded for project_id: {spec.project_id}. "
        )
        assert "100 queries running concurrently" in body["error"]
        assert int(response.headers["retry-after"]) >= 1
        with httpx.Client(base_url=emu.base_url, auth=auth) as client:
            query = {"project_id": spec.project_id}
            for _ in range(60):
                assert client.get("/api/query/engage", params=query).status_code == 200
            over = client.get("/api/query/engage", params=query)
        assert over.status_code == 429
        assert (
            "0/5 queries running concurrently and 61/60 queries running in the last hour"
            in (over.json()["error"])
        )
        me = httpx.get(f"{emu.base_url}/api/app/me", auth=auth)
        assert me.status_code == 200


# -- our own client against the emulator ----------------------------------------------------


def test_our_client_reaches_the_emulator_through_the_fixture_credentials(emulator, emulator_creds):
    from mixpanel_data._internal.http.client import MixpanelAPIClient
    from mixpanel_data.exceptions import AuthenticationError

    assert emulator_creds.base_url == emulator.base_url
    waits: list[float] = []
    with MixpanelAPIClient(emulator_creds, sleep=waits.append) as client:
        me = client.me()
        assert me["projects"][emulator.spec.project_id]["timezone"] == emulator.spec.timezone
        emulator.faults.add("429", endpoint="engage", count=1, retry_after=2)
        try:
            body = client.request("GET", "query", "engage")
        finally:
            emulator.faults.clear()
        assert body["total"] == len(emulator.project.profiles())
        assert waits == [2.0]  # the client honoured the emulator's Retry-After
    bad = type(emulator_creds)(
        username=emulator.username,
        secret="wrong",
        project_id=emulator.spec.project_id,
        base_url=emulator.base_url,
    )
    with MixpanelAPIClient(bad) as client, pytest.raises(AuthenticationError):
        client.request("GET", "query", "engage")
