"""MixpanelAPIClient: hosts, auth, parameters and error translation in one place.

URLs follow the contract (``shared/mixpanel-api.md`` §1): the Query API on
``{,eu.,in.}mixpanel.com/api/query/<ep>``, the Raw Export on
``data{,-eu,-in}.mixpanel.com/api/2.0/export`` and the App API on
``{,eu.,in.}mixpanel.com/api/app/<ep>``. A ``base_url`` replaces the origin of
all three (a proxy, or the local emulator).
"""

from __future__ import annotations

import email.utils
import random
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import orjson

from mixpanel_data._internal.config import Credentials
from mixpanel_data._internal.http.rate_limit import (
    DEFAULT_BUDGETS,
    NOTICE_AFTER,
    BudgetSpec,
    RateBudget,
    budget_for,
)
from mixpanel_data._version import __version__
from mixpanel_data.exceptions import (
    APIError,
    AuthenticationError,
    MixpanelDataError,
    NetworkError,
    NotFoundError,
    QueryError,
    RateLimitError,
    Retryable,
    ServerError,
    ValidationError,
)

Family = Literal["query", "export", "app"]

_QUERY_HOSTS = {"us": "mixpanel.com", "eu": "eu.mixpanel.com", "in": "in.mixpanel.com"}
_EXPORT_HOSTS = {
    "us": "data.mixpanel.com",
    "eu": "data-eu.mixpanel.com",
    "in": "data-in.mixpanel.com",
}

# Exports stream for minutes; between bytes we allow a long read timeout.
TIMEOUTS: dict[str, httpx.Timeout] = {
    "query": httpx.Timeout(connect=10.0, read=180.0, write=30.0, pool=60.0),
    "export": httpx.Timeout(connect=10.0, read=300.0, write=30.0, pool=600.0),
    "app": httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=60.0),
}

USER_AGENT = f"mixpanel_data/{__version__} (+https://pypi.org/project/mixpanel_data)"
_MAX_ERROR_BODY = 2000


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and for how long, retryable errors are tried again."""

    max_attempts: int = 5
    max_total_seconds: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After wins."""
        if retry_after is not None:
            return min(retry_after, self.max_total_seconds)
        cap = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(cap / 2, cap)


def origin_for(credentials: Credentials, family: Family) -> str:
    """Return the scheme and host serving `family` for these credentials."""
    if credentials.base_url:
        return credentials.base_url
    hosts = _EXPORT_HOSTS if family == "export" else _QUERY_HOSTS
    return f"https://{hosts[credentials.region]}"


def build_url(credentials: Credentials, family: Family, endpoint: str) -> str:
    """Build the full URL of an endpoint (``endpoint`` without a leading slash)."""
    endpoint = endpoint.lstrip("/")
    origin = origin_for(credentials, family)
    if family == "export":
        return f"{origin}/api/2.0/{endpoint}"
    if family == "app":
        return f"{origin}/api/app/{endpoint}"
    return f"{origin}/api/query/{endpoint}"


def encode_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Encode parameters as Mixpanel expects: arrays and objects as JSON strings (§3.1)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple | dict):
            out[key] = orjson.dumps(list(value) if isinstance(value, tuple) else value).decode()
        else:
            out[key] = str(value)
    return out


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a Retry-After header in seconds or HTTP-date form."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def secret_forms(username: str, secret: str) -> list[str]:
    """The secret as a body could carry it: raw, URL-encoded, HTML- and JSON-escaped,
    and the same for the Basic tokens: ``username:secret`` (service account) and
    ``secret:`` (project secret, contract §2), whichever kind the account is.

    URL-encoding's hex digits may come in either case; `redact` matches every form
    without regard to case (a few extra characters starred out cost nothing).
    """
    import base64
    import html
    import json
    from urllib.parse import quote, quote_plus

    if not secret:
        return []
    tokens = {base64.b64encode(f"{user}:{secret}".encode()).decode() for user in (username, "")}
    tokens.add(base64.b64encode(f"{secret}:".encode()).decode())
    forms: set[str] = set()
    for text in (secret, *tokens):
        forms |= {text, quote(text), quote(text, safe=""), quote_plus(text)}
        for escaped in {html.escape(text), html.escape(text, quote=False)}:
            forms |= {
                escaped,
                escaped.replace("&#x27;", "&#39;"),
                escaped.replace("&quot;", "&#34;"),
            }
        for dumped in (json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]):
            forms |= {dumped, dumped.replace("/", "\\/")}
    return sorted(forms, key=len, reverse=True)  # longest first


def _redactor(forms: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for every form (longest first, so a form that
    contains another is removed whole)."""
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in forms), re.IGNORECASE)


class MixpanelAPIClient:
    """Talk to Mixpanel (or the emulator) for one project.

    Pass ``transport`` to plug in any httpx transport (tests mount the emulator
    in-process); ``budgets`` overrides the per-family rate budgets.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        budgets: Mapping[str, BudgetSpec] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeouts: Mapping[str, httpx.Timeout] | None = None,
    ) -> None:
        self.credentials = credentials
        self.timeouts = {**TIMEOUTS, **(timeouts or {})}
        self._secret = credentials.secret.get_secret_value()
        self._secret_forms = secret_forms(credentials.username, self._secret)
        self._secret_pattern = _redactor(self._secret_forms)
        self._budgets = {**DEFAULT_BUDGETS, **(budgets or {})}
        self.retry = retry or RetryPolicy()
        self.sleep = sleep  # backoff waits (window retries use it too); a test seam
        self._http = httpx.Client(
            transport=transport,
            auth=httpx.BasicAuth(*credentials.basic_auth),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self.retries = 0
        # Told about long waits (rate budgets, retry backoffs): what for and until when.
        self.on_wait: Callable[[str], None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        self._http.close()

    def __enter__(self) -> MixpanelAPIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.credentials
        return f"MixpanelAPIClient(project_id={c.project_id!r}, region={c.region!r})"

    # -- helpers -------------------------------------------------------------------

    def _wait_note(self, family: Family) -> Callable[[float, str], None] | None:
        """Announce a long budget wait on `on_wait`, naming the limit and the resume time."""
        notify = self.on_wait
        if notify is None:
            return None

        def note(seconds: float, reason: str) -> None:
            notify(
                f"waiting {seconds:,.0f} s for {reason} of the {family} API; "
                f"continuing at {_clock_after(seconds)}"
            )

        return note

    def budget(self, family: Family) -> RateBudget:
        """Return the shared rate budget for `family` of this project."""
        return budget_for(
            origin_for(self.credentials, family),
            self.credentials.project_id,
            family,
            self._budgets[family],
        )

    def redact(self, text: str) -> str:
        """Remove the secret from any text that may reach users or logs.

        Also every encoded form of it and of the Basic token (`secret_forms`): a
        proxy's error page may echo the Authorization header or a query string.
        """
        if self._secret_pattern is None:
            return text
        return self._secret_pattern.sub("***", text)

    def _params(
        self, params: Mapping[str, Any] | None, project_scoped: bool, family: Family = "query"
    ) -> dict[str, str]:
        encoded = encode_params(params)
        if project_scoped:
            encoded.setdefault("project_id", self.credentials.project_id)
            # Every Query API path (engage included) takes the data view's workspace_id;
            # the export spec has no such parameter, so the Raw Export never gets it.
            if family == "query" and self.credentials.workspace_id:
                encoded.setdefault("workspace_id", self.credentials.workspace_id)
        return encoded

    def _summary(self, method: str, url: str, params: Mapping[str, str]) -> str:
        query = urlencode(params)
        return self.redact(f"{method} {url}{'?' + query if query else ''}")

    # -- requests ------------------------------------------------------------------

    def request(
        self,
        method: str,
        family: Family,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        project_scoped: bool = True,
    ) -> Any:
        """Send one request and return its parsed JSON body.

        Rate limits, 5xx and network errors are retried per the RetryPolicy;
        every other failure raises at once as a typed APIError.
        """
        url = build_url(self.credentials, family, endpoint)
        qs = self._params(params, project_scoped, family)
        form = encode_params(data) if data is not None else None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                with (
                    self.budget(family).slot(self._wait_note(family)),
                    translate_transport_errors(self, method, url),
                ):
                    response = self._http.request(
                        method,
                        url,
                        params=qs,
                        data=form,
                        content=orjson.dumps(json_body) if json_body is not None else None,
                        headers={"Content-Type": "application/json"}
                        if json_body is not None
                        else None,
                        timeout=self.timeouts[family],
                    )
                self.raise_for_response(response, method=method, family=family, params=qs)
                return self._json(response, method=method, url=url, params=qs)
            except (RateLimitError, ServerError, NetworkError) as exc:
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                if isinstance(exc, RateLimitError) and retry_after:
                    self.budget(family).penalize(retry_after)
                delay = self.retry.delay(attempt, retry_after)
                elapsed = time.monotonic() - started
                if (
                    attempt >= self.retry.max_attempts
                    or elapsed + delay > self.retry.max_total_seconds
                ):
                    raise
                self.retries += 1
                if self.on_wait is not None and delay >= NOTICE_AFTER:
                    self.on_wait(
                        f"{exc.message.split(';')[0]}; retrying in {delay:,.0f} s "
                        f"(at {_clock_after(delay)})"
                    )
                self.sleep(delay)

    @contextmanager
    def stream(
        self,
        method: str,
        family: Family,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """Open a streaming response; non-200 answers raise typed errors before yielding.

        Use `iter_raw_bytes` / `iter_bytes` on the yielded response inside
        `translate_transport_errors` so a cut stream becomes a NetworkError.
        """
        url = build_url(self.credentials, family, endpoint)
        qs = self._params(params, project_scoped=True, family=family)
        with (
            self.budget(family).slot(self._wait_note(family)),
            translate_transport_errors(self, method, url),
            self._http.stream(
                method, url, params=qs, headers=dict(headers or {}), timeout=self.timeouts[family]
            ) as response,
        ):
            if response.status_code != 200:
                response.read()
                self.raise_for_response(response, method=method, family=family, params=qs)
            yield response

    def me(self) -> dict[str, Any]:
        """Call ``/api/app/me``: the cheapest credential check (contract §14)."""
        body = self.request("GET", "app", "me", project_scoped=False)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, dict):
            raise APIError("unexpected /api/app/me response: no 'results' object")
        return results

    # -- error translation -----------------------------------------------------------

    def _json(
        self, response: httpx.Response, *, method: str, url: str, params: Mapping[str, str]
    ) -> Any:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise APIError(
                f"Mixpanel returned a body that is not JSON from {url}; "
                "retry, and report it if it persists",
                status_code=response.status_code,
                method=method,
                endpoint=url,
                request_summary=self._summary(method, url, params),
                server_message=self.redact(response.text[:200]),
            ) from None
        # The App API reports errors as {"status": "error", "error": ...} (contract §3.4).
        if isinstance(body, dict) and body.get("status") == "error":
            raise QueryError(
                f"Mixpanel refused the request to {url}: {self.redact(str(body.get('error')))}",
                status_code=response.status_code,
                method=method,
                endpoint=url,
                request_summary=self._summary(method, url, params),
                server_message=self.redact(str(body.get("error"))),
            )
        return body

    def raise_for_response(
        self,
        response: httpx.Response,
        *,
        method: str,
        family: Family,
        params: Mapping[str, str],
    ) -> None:
        """Translate a non-2xx response into the exception tree (contract §2, §3.4)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        url = str(response.request.url).split("?", 1)[0]
        message = self.redact(server_error_text(response))
        kw: dict[str, Any] = {
            "status_code": status,
            "method": method,
            "endpoint": url,
            "request_summary": self._summary(method, url, params),
            "server_message": message,
        }
        lowered = message.lower()
        if status == 401 or (status == 400 and "unable to authenticate" in lowered):
            raise AuthenticationError(
                f"Mixpanel refused the credentials ({status}: {message}); "
                "check the account with `mp auth test`",
                **kw,
            )
        if status == 403 and "workspace" in lowered and self.credentials.workspace_id:
            raise AuthenticationError(
                f"the account cannot use data view (workspace) {self.credentials.workspace_id} "
                f"of project {self.credentials.project_id} ({message}); check workspace_id "
                "(`mp auth show`) or ask an admin to add the account to that data view",
                **kw,
            )
        if status == 403 and "not a member" in lowered:
            raise AuthenticationError(
                f"the service account cannot access project {self.credentials.project_id} "
                f"({message}); check the project id or grant the account access",
                **kw,
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = f"retry after {retry_after:.0f}s" if retry_after is not None else "retry later"
            raise RateLimitError(
                f"Mixpanel rate limit exceeded on {url} ({message}); {wait}",
                retry_after=retry_after,
                **kw,
            )
        if status >= 500:
            raise ServerError(
                f"Mixpanel server error {status} on {url} ({message}); retry later", **kw
            )
        if status == 414:
            raise QueryError(
                f"Mixpanel refused the request URL as too long (414) on {url}; "
                "shorten the --where expression or pass fewer --events/-e names",
                **kw,
            )
        if status == 404:
            raise NotFoundError(f"not found: {url} ({message})", **kw)
        if status == 402:
            raise QueryError(
                f"Mixpanel says the plan lacks access to {url} ({message}); "
                "check the project's plan",
                **kw,
            )
        if status == 400 and "later than today" in lowered:
            # Mixpanel's today is the project's (contract §3.4): the configured zone is ahead.
            zone = self.credentials.timezone or "not set"
            raise QueryError(
                f"Mixpanel rejected the request (400): {message}; the project's today is "
                f"earlier than today in the configured timezone ({zone}): set the account's "
                "timezone to the project's (Mixpanel: Project Settings), or end the range a "
                "day earlier",
                **kw,
            )
        raise QueryError(f"Mixpanel rejected the request ({status}): {message}", **kw)


def server_error_text(response: httpx.Response) -> str:
    """Extract the server's message from a JSON envelope or a plain-text body."""
    raw = response.content[:_MAX_ERROR_BODY]
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", errors="replace").strip()
        if "<html" in text.lower():
            return f"HTTP {response.status_code} (HTML error page)"
        return text or f"HTTP {response.status_code}"
    if isinstance(body, dict) and body.get("error") is not None:
        return str(body["error"])
    return raw.decode("utf-8", errors="replace").strip()


@contextmanager
def translate_transport_errors(client: MixpanelAPIClient, method: str, url: str) -> Iterator[None]:
    """Turn httpx transport failures into NetworkError, by type, once."""
    try:
        yield
    except MixpanelDataError:
        raise
    except httpx.InvalidURL as exc:
        # Raised before sending: a query string over httpx's 65,536 characters.
        raise ValidationError(
            f"cannot send the request to {url} ({exc}); "
            "shorten the --where expression or pass fewer --events/-e names"
        ) from None
    except httpx.TimeoutException as exc:
        raise NetworkError(
            f"timed out talking to {url} ({type(exc).__name__}); check the network and retry",
            endpoint=url,
            method=method,
        ) from None
    except (httpx.TransportError, httpx.DecodingError, httpx.StreamError) as exc:
        raise NetworkError(
            f"connection to {url} failed ({type(exc).__name__}: {client.redact(str(exc))}); "
            "check the network and retry",
            endpoint=url,
            method=method,
        ) from None


def iter_body(response: httpx.Response, chunk_size: int | None = None) -> Iterator[bytes]:
    """Yield a streamed body, gunzipped here so a truncated gzip stream is an error.

    httpx's own decoder accepts a gzip body cut before its trailer and returns
    what it got; a cut export must instead be fetched again (contract §4).
    ``chunk_size`` None yields pieces as they arrive: re-chunking a large export
    into fixed sizes costs more CPU than the download itself.
    """
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("gzip", "x-gzip"):
        yield from response.iter_bytes(chunk_size)
        return
    decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    url = str(response.request.url).split("?", 1)[0]
    for raw in response.iter_raw(chunk_size):
        try:
            data = decoder.decompress(raw)
        except zlib.error:
            raise NetworkError(
                f"the gzip body from {url} is corrupt; retry", endpoint=url
            ) from None
        if data:
            yield data
    if not decoder.eof:
        raise NetworkError(
            f"the gzip body from {url} was cut short (no gzip trailer); retry", endpoint=url
        )
    tail = decoder.flush()
    if tail:
        yield tail


def is_retryable(exc: BaseException) -> bool:
    """Return True when a retry of the same request may succeed."""
    return isinstance(exc, Retryable)


def _clock_after(seconds: float) -> str:
    """The local wall-clock time `seconds` from now, as HH:MM:SS and the zone."""
    from datetime import datetime, timedelta

    return (datetime.now().astimezone() + timedelta(seconds=seconds)).strftime("%H:%M:%S %Z")
