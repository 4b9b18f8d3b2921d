"""MixpanelAPIClient: URLs per region and family, auth, parameters, error translation."""

from __future__ import annotations

import base64
import email.utils
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from mixpanel_data import (
    APIError,
    AuthenticationError,
    NetworkError,
    NotFoundError,
    QueryError,
    RateLimitError,
    Retryable,
    ServerError,
)
from mixpanel_data._internal.config import Credentials
from mixpanel_data._internal.http.client import (
    USER_AGENT,
    MixpanelAPIClient,
    RetryPolicy,
    build_url,
    encode_params,
    parse_retry_after,
)
from mixpanel_data._internal.http.rate_limit import BudgetSpec

SECRET = "sekret:with@odd%chars"
NO_BUDGET = {f: BudgetSpec() for f in ("query", "export", "app")}


def creds(region: str = "us", base_url: str | None = None) -> Credentials:
    return Credentials(
        username="sa.abc123.mp-service-account",
        secret=SecretStr(SECRET),
        project_id="4242",
        region=region,
        base_url=base_url,
    )


@pytest.mark.parametrize(
    ("region", "family", "endpoint", "expected"),
    [
        ("us", "query", "segmentation", "https://mixpanel.com/api/query/segmentation"),
        ("eu", "query", "engage", "https://eu.mixpanel.com/api/query/engage"),
        ("in", "query", "funnels/list", "https://in.mixpanel.com/api/query/funnels/list"),
        ("us", "export", "export", "https://data.mixpanel.com/api/2.0/export"),
        ("eu", "export", "export", "https://data-eu.mixpanel.com/api/2.0/export"),
        ("in", "export", "export", "https://data-in.mixpanel.com/api/2.0/export"),
        ("us", "app", "me", "https://mixpanel.com/api/app/me"),
        ("eu", "app", "me", "https://eu.mixpanel.com/api/app/me"),
        ("in", "app", "me", "https://in.mixpanel.com/api/app/me"),
    ],
)
def test_build_url_per_region_and_family(
    region: str, family: Any, endpoint: str, expected: str
) -> None:
    assert build_url(creds(region), family, endpoint) == expected


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("query", "http://127.0.0.1:8080/api/query/events/names"),
        ("export", "http://127.0.0.1:8080/api/2.0/export"),
        ("app", "http://127.0.0.1:8080/api/app/me"),
    ],
)
def test_base_url_replaces_every_origin(family: Any, expected: str) -> None:
    endpoint = {"query": "events/names", "export": "export", "app": "me"}[family]
    assert build_url(creds("eu", "http://127.0.0.1:8080/"), family, endpoint) == expected


def test_encode_params_json_encodes_arrays_and_objects() -> None:
    assert encode_params(
        {"event": ["A", "B,C"], "filter": {"id": 1}, "flag": True, "n": 3, "skip": None}
    ) == {"event": '["A","B,C"]', "filter": '{"id":1}', "flag": "true", "n": "3"}


class Recorder:
    """An httpx transport answering from a function, remembering requests."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def client_for(
    answer: Callable[[httpx.Request], httpx.Response], **kw: Any
) -> tuple[MixpanelAPIClient, Recorder]:
    rec = Recorder(answer)
    sleeps: list[float] = []
    client = MixpanelAPIClient(
        creds(),
        transport=httpx.MockTransport(rec),
        budgets=NO_BUDGET,
        sleep=sleeps.append,
        **kw,
    )
    client.sleeps = sleeps
    return client, rec


def test_request_sends_auth_project_and_user_agent() -> None:
    client, rec = client_for(lambda r: httpx.Response(200, json=["A", "B"]))
    assert client.request("GET", "query", "events/names", params={"type": "general"}) == [
        "A",
        "B",
    ]
    req = rec.requests[0]
    expected = base64.b64encode(f"sa.abc123.mp-service-account:{SECRET}".encode()).decode()
    assert req.headers["Authorization"] == f"Basic {expected}"
    assert req.headers["User-Agent"] == USER_AGENT
    qs = parse_qs(urlsplit(str(req.url)).query)
    assert qs == {"type": ["general"], "project_id": ["4242"]}


def test_app_me_is_not_project_scoped() -> None:
    body = {"status": "ok", "results": {"projects": {"4242": {"name": "P"}}}}
    client, rec = client_for(lambda r: httpx.Response(200, json=body))
    assert client.me()["projects"]["4242"]["name"] == "P"
    assert "project_id" not in str(rec.requests[0].url)


def _raise(status: int, **kw: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda r: httpx.Response(status, **kw)


@pytest.mark.parametrize(
    ("family", "status", "kw", "exc", "exit_code", "server_text"),
    [
        (
            "export",
            400,
            {"text": "Unable to authenticate request\n", "headers": {"content-type": "text/plain"}},
            AuthenticationError,
            2,
            "Unable to authenticate request",
        ),
        (
            "query",
            401,
            {"json": {"request": "/api/query/engage", "error": "Invalid credentials"}},
            AuthenticationError,
            2,
            "Invalid credentials",
        ),
        (
            "query",
            403,
            {"json": {"request": "/api/query/x", "error": "User is not a member of this project"}},
            AuthenticationError,
            2,
            "User is not a member of this project",
        ),
        (
            "query",
            403,
            {"json": {"request": "/x", "error": "Date range exceeds 365 days into the past"}},
            QueryError,
            3,
            "Date range exceeds 365 days into the past",
        ),
        (
            "query",
            412,
            {"json": {"request": "/api/query/jql", "error": "UserVisiblePreconditionFailedError"}},
            QueryError,
            3,
            "UserVisiblePreconditionFailedError",
        ),
        (
            "query",
            400,
            {"json": {"request": "/api/2.0/nope", "error": "Invalid API endpoint"}},
            QueryError,
            3,
            "Invalid API endpoint",
        ),
        (
            "export",
            400,
            {"text": "to_date cannot be later than today"},
            QueryError,
            3,
            "to_date cannot be later than today",
        ),
        (
            "query",
            402,
            {"json": {"request": None, "error": "Payment required"}},
            QueryError,
            3,
            "Payment required",
        ),
        (
            "query",
            404,
            {"json": {"request": "/x", "error": "Not found"}},
            NotFoundError,
            4,
            "Not found",
        ),
        (
            "app",
            200,
            {"json": {"status": "error", "error": "bad bookmark"}},
            QueryError,
            3,
            "bad bookmark",
        ),
        (
            "query",
            502,
            {"text": "<html><body><h1>502 Bad Gateway</h1></body></html>"},
            ServerError,
            1,
            "HTTP 502 (HTML error page)",
        ),
        (
            "query",
            500,
            {"json": {"request": "/x", "error": "Timeout Error."}},
            ServerError,
            1,
            "Timeout Error.",
        ),
    ],
)
def test_error_translation(
    family: Any,
    status: int,
    kw: dict[str, Any],
    exc: type[APIError],
    exit_code: int,
    server_text: str,
) -> None:
    client, _ = client_for(_raise(status, **kw), retry=RetryPolicy(max_attempts=1))
    endpoint = "export" if family == "export" else "me" if family == "app" else "engage"
    with pytest.raises(exc) as err:
        client.request("GET", family, endpoint, project_scoped=family != "app")
    e = err.value
    assert type(e) is exc
    assert e.exit_code == exit_code
    assert e.server_message == server_text
    assert e.status_code == status
    assert e.method == "GET"
    assert e.endpoint is not None
    assert endpoint in e.endpoint
    assert e.request_summary is not None
    assert e.request_summary.startswith("GET ")
    assert SECRET not in str(e.to_dict())
    assert e.to_dict()["type"] == exc.__name__


def test_rate_limit_carries_retry_after_and_is_retryable() -> None:
    body = {"request": "/api/query/funnels", "error": "Query rate limit exceeded for project_id: 1"}
    client, rec = client_for(
        _raise(429, json=body, headers={"Retry-After": "7"}), retry=RetryPolicy(max_attempts=1)
    )
    with pytest.raises(RateLimitError) as err:
        client.request("GET", "query", "funnels")
    assert err.value.retry_after == 7.0
    assert err.value.exit_code == 5
    assert isinstance(err.value, Retryable)
    assert "retry after 7s" in err.value.message
    assert len(rec.requests) == 1


def test_429_then_success_honours_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(
                429, json={"request": "/x", "error": "rate"}, headers={"Retry-After": "3"}
            ),
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(200, json={"ok": 1}),
        ]
    )
    client, rec = client_for(lambda r: next(answers))
    assert client.request("GET", "query", "segmentation") == {"ok": 1}
    assert len(rec.requests) == 3
    assert client.sleeps[0] == 3.0
    assert 0 < client.sleeps[1] <= 2.0  # backoff for attempt 2
    assert client.retries == 2


def test_retries_are_bounded() -> None:
    client, rec = client_for(_raise(500, text="boom"), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ServerError):
        client.request("GET", "query", "segmentation")
    assert len(rec.requests) == 3


def test_client_errors_are_not_retried() -> None:
    client, rec = client_for(_raise(400, json={"request": "/x", "error": "bad unit"}))
    with pytest.raises(QueryError, match="bad unit"):
        client.request("GET", "query", "segmentation")
    assert len(rec.requests) == 1


def test_transport_errors_become_network_errors() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client, rec = client_for(boom, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(NetworkError, match="ConnectError") as err:
        client.request("GET", "query", "segmentation")
    assert isinstance(err.value, Retryable)
    assert len(rec.requests) == 2


def test_non_json_success_body_is_an_api_error() -> None:
    client, _ = client_for(_raise(200, text="<html>proxy login</html>"))
    with pytest.raises(APIError, match="not JSON"):
        client.request("GET", "query", "segmentation")


def test_stream_raises_before_yielding_on_error() -> None:
    client, _ = client_for(
        _raise(400, text="Unable to authenticate request\n"), retry=RetryPolicy(max_attempts=1)
    )
    with pytest.raises(AuthenticationError), client.stream("GET", "export", "export"):
        pytest.fail("must not yield")


def test_stream_yields_body_bytes() -> None:
    body = b'{"event":"A","properties":{"time":1}}\n'
    client, rec = client_for(_raise(200, content=body))
    with client.stream("GET", "export", "export", params={"from_date": "2024-01-01"}) as resp:
        assert resp.read() == body
    assert "project_id=4242" in str(rec.requests[0].url)


def test_secret_is_redacted_from_server_echoes() -> None:
    client, _ = client_for(
        _raise(400, json={"request": f"/x?secret={SECRET}", "error": f"bad secret {SECRET}"})
    )
    with pytest.raises(QueryError) as err:
        client.request("GET", "query", "engage")
    assert SECRET not in err.value.message
    assert SECRET not in str(err.value.to_dict())
    assert "***" in err.value.message


def test_parse_retry_after_forms() -> None:
    now = time.time()
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(future, now=now) or 0) <= 31
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_repr_has_no_secret() -> None:
    client, _ = client_for(_raise(200, json={}))
    assert SECRET not in repr(client)
    assert "4242" in repr(client)
