"""The emulator's WSGI app: one origin serving every Mixpanel API family at its real paths.

Routes (contract §1): ``/api/2.0/export``; ``/api/query/<ep>`` and ``/api/2.0/<ep>`` for
engage and every Query endpoint registered in ``routing.QUERY_ROUTES``; ``/api/app/me``
and ``/api/app/projects/<id>/bookmarks``. Anything else is 400 ``Invalid API endpoint``.
``/_emulator/...`` is the control API (faults, recorded requests), a path Mixpanel never
uses. The app is a plain WSGI callable, so tests can mount it in-process with
``httpx.WSGITransport(app=...)`` or serve it over HTTP (``server.Emulator``).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import importlib
import importlib.util
import logging
import math
import pkgutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from mixpanel_data.emulator.data_views import scoped
from mixpanel_data.emulator.engage import EngageSessions, engage
from mixpanel_data.emulator.export import export
from mixpanel_data.emulator.faults import (
    STATUS_KINDS,
    Fault,
    Faults,
)
from mixpanel_data.emulator.limits import BUDGETS, RateLimiter
from mixpanel_data.emulator.recording import RecordedRequest, RequestLog
from mixpanel_data.emulator.responses import (
    PLAIN,
    Reply,
    app_error,
    envelope,
    gateway_page,
    json_reply,
    plain_text,
    rate_limit_message,
)
from mixpanel_data.emulator.routing import QUERY_ROUTES, ApiRequest, EmulatorError
from mixpanel_data.emulator.streams import GzipFragments, cut_after, reset_after, throttle

__all__ = ["EmulatorApp", "RecordedRequest", "resolve"]

log = logging.getLogger("mixpanel_data.emulator")

StartResponse = Callable[..., Any]
_MAX_BODY = 16 * 1024 * 1024
_AUTH_FAILED = "Unable to authenticate request"
_NOT_MEMBER = "User is not a member of this project"
_SECRET_PARAMS = frozenset({"secret", "api_secret", "password", "api_key"})


def resolve(path: str) -> tuple[str, str] | None:
    """Map a URL path to (family, endpoint), or None for paths Mixpanel does not serve."""
    path = path.rstrip("/")
    if path == "/api/2.0/export":
        return "export", "export"
    if path == "/api/app/me":
        return "app", "me"
    parts = path.split("/")
    if len(parts) == 6 and parts[:4] == ["", "api", "app", "projects"] and parts[5] == "bookmarks":
        return "app", "bookmarks"
    for prefix in ("/api/query/", "/api/2.0/"):
        if path.startswith(prefix) and len(path) > len(prefix):
            return "query", path[len(prefix) :]
    return None


def load_report_routes() -> None:
    """Import ``mixpanel_data.emulator.reports`` and its modules so their routes register."""
    name = "mixpanel_data.emulator.reports"
    if importlib.util.find_spec(name) is None:
        return  # the live-query reports are not installed: those endpoints stay unknown
    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(package, "__path__", []), f"{name}."):
        importlib.import_module(info.name)


class EmulatorApp:
    """The WSGI callable; holds the project, credentials, faults, limits and the request log."""

    def __init__(
        self,
        project: Any,
        *,
        username: str,
        secret: str,
        project_secret: str,
        faults: Faults | None = None,
        limiter: RateLimiter | None = None,
        retry_after: bool = False,
        session_ttl: float = 3600.0,
    ) -> None:
        self.project = project
        self.username = username
        self.secret = secret
        self.project_secret = project_secret
        self.faults = faults if faults is not None else Faults()
        self.limiter = limiter
        self.retry_after = retry_after
        self.sessions = EngageSessions(ttl=session_ttl)
        self.requests = RequestLog()
        self.stop_event = threading.Event()
        self.fragments = GzipFragments()
        load_report_routes()

    # -- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        started = time.monotonic()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/")
        query = str(environ.get("QUERY_STRING") or "")
        request_line = str(environ.get("REQUEST_URI") or (f"{path}?{query}" if query else path))
        if path.startswith("/_emulator/"):
            return self._send(self._control(method, path, environ), start_response)
        route = resolve(path)
        family, endpoint = route if route is not None else ("unknown", path)
        entry = self.requests.start(method=method, path=path, endpoint=endpoint, family=family)
        release: list[Callable[[], None]] = []
        try:
            params = _params(environ, query)
            entry.params = {k: v for k, v in params.items() if k.lower() not in _SECRET_PARAMS}
            if route is None or (family == "export" and method not in ("GET", "POST")):
                reply = envelope(400, "Invalid API endpoint", request_line)
            else:
                reply = self._route(environ, family, endpoint, params, request_line, entry, release)
        except EmulatorError as exc:
            reply = self._error(family, exc, request_line)
        except Exception:
            log.exception("emulator handler failed for %s", request_line)
            reply = envelope(500, "Internal server error", request_line)
        entry.status = reply.status
        body = _Body(reply.body, entry=entry, log=self.requests, started=started, release=release)
        return self._send(reply, start_response, body=body)

    def _send(
        self, reply: Reply, start_response: StartResponse, *, body: Iterable[bytes] | None = None
    ) -> Iterable[bytes]:
        headers = [("Content-Type", reply.content_type), *reply.headers]
        if reply.length is not None:
            headers.append(("Content-Length", str(reply.length)))
        if reply.gzip:
            headers.append(("Content-Encoding", "gzip"))
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        status = f"{reply.status} {phrase}"
        start_response(status, headers)
        return body if body is not None else reply.body

    # -- routing, auth, faults -----------------------------------------------------------

    def _route(
        self,
        environ: dict[str, Any],
        family: str,
        endpoint: str,
        params: dict[str, str],
        request_line: str,
        entry: Any,
        release: list[Callable[[], None]],
    ) -> Reply:
        if family == "query" and endpoint != "engage" and endpoint not in QUERY_ROUTES:
            return envelope(400, "Invalid API endpoint", request_line)
        denied = self._authenticate(environ, family, params, request_line)
        if denied is not None:
            return denied
        entry.auth_ok = True

        accept_gzip = _accepts_gzip(str(environ.get("HTTP_ACCEPT_ENCODING", "")))
        kinds = set(STATUS_KINDS) | {"hang", "reset", "slow"}
        if family == "export":
            kinds |= {"malformed_line", "terminated_early"}
            if accept_gzip:
                kinds.add("truncated_gzip")
        paging = endpoint == "engage" and params.get("session_id") and params.get("page", "0")
        if paging and paging.strip() not in ("", "0"):
            kinds.add("session_expired")
        fired = self.faults.draw(endpoint, family, kinds)
        entry.faults = tuple(f.kind for f in fired)
        by_kind = {f.kind: f for f in fired}

        if "hang" in by_kind:
            self.stop_event.wait(by_kind["hang"].seconds if by_kind["hang"].seconds else 30.0)
        status_fault = next((f for f in fired if f.kind in STATUS_KINDS), None)
        if status_fault is not None:
            return self._status_fault(status_fault, family, request_line)

        if self.limiter is not None:
            project_id = str(self.project.spec.project_id)
            refusal = self.limiter.acquire(family, project_id)
            if refusal is not None:
                reply = envelope(429, refusal.message, request_line)
                if self.retry_after:
                    reply.headers.append(("Retry-After", str(int(refusal.retry_after))))
                return reply
            release.append(
                lambda: self.limiter.release(family, project_id) if self.limiter else None
            )

        # Query API paths answer in the data view `workspace_id` names (export has none).
        workspace_id = params.get("workspace_id")
        project = scoped(self.project, workspace_id) if family == "query" else self.project
        request = ApiRequest(
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            endpoint=endpoint,
            params=params,
            project=project,
            request_line=request_line,
        )
        if family == "export":
            reply = export(
                request,
                accept_gzip=accept_gzip,
                faults=fired,
                fragments=self.fragments,
                stop=self.stop_event,
            )
        elif family == "app":
            reply = self._app_api(endpoint, environ, params)
        elif endpoint == "engage":
            expire = "session_expired" in by_kind
            reply = json_reply(engage(request, sessions=self.sessions, expire_session=expire))
        else:
            reply = _as_reply(QUERY_ROUTES[endpoint](request))
        return _with_wire_faults(reply, by_kind, stop=self.stop_event)

    def _authenticate(
        self, environ: dict[str, Any], family: str, params: dict[str, str], request_line: str
    ) -> Reply | None:
        """None if the caller may proceed, else Mixpanel's refusal for this host (contract §2)."""
        credentials = _basic_credentials(str(environ.get("HTTP_AUTHORIZATION", "")))
        service_account = credentials is not None and (
            hmac.compare_digest(credentials[0], self.username)
            and hmac.compare_digest(credentials[1], self.secret)
        )
        legacy = (
            credentials is not None
            and credentials[1] == ""
            and (
                hmac.compare_digest(credentials[0], self.project_secret)
                or hmac.compare_digest(credentials[0], self.secret)
            )
        )
        if not service_account and not legacy:
            if family == "export":
                return plain_text(400, f"{_AUTH_FAILED}\n")
            challenge = [("WWW-Authenticate", 'Basic realm="mixpanel-api"')]
            reply = app_error(401, _AUTH_FAILED) if family == "app" else None
            reply = reply or envelope(401, _AUTH_FAILED, request_line)
            reply.headers.extend(challenge)
            return reply
        if service_account and family != "app":
            project_id = (params.get("project_id") or "").strip()
            if not project_id:
                return envelope(
                    400,
                    "project_id is required when authenticating with a service account",
                    request_line,
                )
            if project_id != str(self.project.spec.project_id):
                return envelope(403, _NOT_MEMBER, request_line)
        return None

    def _status_fault(self, fault: Fault, family: str, request_line: str) -> Reply:
        status = int(fault.kind)
        if status in (502, 504):
            return gateway_page(status)
        if status == 429:
            budget = BUDGETS.get(family, BUDGETS["query"])
            message = rate_limit_message(
                str(self.project.spec.project_id),
                running=1,
                concurrent=budget.concurrent,
                last_hour=budget.hourly + 1,
                hourly=budget.hourly,
            )
            reply = envelope(429, message, request_line)
            if fault.retry_after is not None:
                reply.headers.append(("Retry-After", _retry_after(fault)))
            return reply
        message = "Internal server error" if status == 500 else "Service Unavailable"
        if family == "app":
            return app_error(status, message)
        return envelope(status, message, request_line)

    def _error(self, family: str, exc: EmulatorError, request_line: str) -> Reply:
        if exc.plain_text:
            return plain_text(exc.status, exc.message)
        if family == "app":
            return app_error(exc.status, exc.message)
        return envelope(exc.status, exc.message, request_line)

    # -- App API -------------------------------------------------------------------------

    def _app_api(self, endpoint: str, environ: dict[str, Any], params: dict[str, str]) -> Reply:
        if endpoint == "me":
            credentials = _basic_credentials(str(environ.get("HTTP_AUTHORIZATION", "")))
            username = credentials[0] if credentials and credentials[1] else self.username
            return json_reply({"status": "ok", "results": self.project.me(username)})
        project_id = str(environ.get("PATH_INFO", "")).rstrip("/").split("/")[4]
        if project_id != str(self.project.spec.project_id):
            return app_error(403, _NOT_MEMBER)
        wanted = params.get("type")
        funnels = {f["funnel_id"]: f for f in self.project.funnels()}
        rows = []
        for row in self.project.bookmarks():
            if wanted and row.get("type") != wanted:
                continue
            out = {k: v for k, v in row.items() if k != "params"}
            # v2 rows carry the saved query as ``params`` (contract §12.1); the emulator
            # has Mixpanel's bookmark JSON for its saved funnels only.
            saved = funnels.get(row["id"]) if row.get("type") == "funnels" else None
            if saved is not None:
                out["params"] = self.project.funnel_bookmark_params(saved)
            rows.append(out)
        return json_reply({"status": "ok", "results": rows})

    # -- control API ---------------------------------------------------------------------

    def _control(self, method: str, path: str, environ: dict[str, Any]) -> Reply:
        """``/_emulator/{faults,requests,limits,health}``: inject faults and inspect calls."""
        what = path.rstrip("/").removeprefix("/_emulator/")
        try:
            if what == "faults" and method == "GET":
                return json_reply({"faults": [f.to_dict() for f in self.faults.active()]})
            if what == "faults" and method == "DELETE":
                self.faults.clear()
                return json_reply({"faults": []})
            if what == "faults" and method == "POST":
                added = self._add_faults(_read_body(environ))
                return json_reply({"faults": [f.to_dict() for f in added]})
            if what == "requests" and method == "GET":
                return json_reply({"requests": [r.to_dict() for r in self.requests.snapshot()]})
            if what == "requests" and method == "DELETE":
                self.requests.clear()
                return json_reply({"requests": []})
            if what == "limits" and method == "DELETE" and self.limiter is not None:
                self.limiter.reset()
                return json_reply({"status": "ok"})
            if what == "health" and method == "GET":
                spec = self.project.spec
                return json_reply({"status": "ok", "project_id": str(spec.project_id)})
        except (ValueError, TypeError) as exc:
            return json_reply({"error": str(exc)}, status=400)
        return json_reply({"error": f"unknown control call {method} {path}"}, status=404)

    def _add_faults(self, raw: bytes) -> list[Fault]:
        payload = orjson.loads(raw) if raw.strip() else None
        items = payload if isinstance(payload, list) else [payload]
        added: list[Fault] = []
        for item in items:
            if isinstance(item, str):
                added.extend(self.faults.add_spec(item))
            elif isinstance(item, dict) and "spec" in item:
                added.extend(self.faults.add_spec(str(item["spec"])))
            elif isinstance(item, dict) and "kind" in item:
                options = {k: v for k, v in item.items() if k not in ("kind", "endpoint")}
                kind = str(item["kind"])
                added.append(
                    self.faults.add(kind, endpoint=str(item.get("endpoint", "*")), **options)
                )
            else:
                raise ValueError(
                    'POST a JSON object {"spec": "export:429:count=1"} or {"kind": ...}'
                )
        return added


class _Body:
    """The response iterable: counts bytes, and on close records the call and frees its slot."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        entry: Any,
        log: RequestLog,
        started: float,
        release: list[Callable[[], None]],
    ) -> None:
        self._chunks = chunks
        self._entry = entry
        self._log = log
        self._started = started
        self._release = release
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._entry.bytes_sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        for release in self._release:
            release()
        self._log.finish(self._entry, duration=time.monotonic() - self._started)


# -- helpers ---------------------------------------------------------------------------------


def _with_wire_faults(reply: Reply, by_kind: dict[str, Fault], *, stop: threading.Event) -> Reply:
    """Apply the faults that act on the bytes on the wire (after any gzip)."""
    body: Iterable[bytes] = reply.body
    touched = False
    if reply.gzip and "truncated_gzip" in by_kind:
        body = cut_after(body, by_kind["truncated_gzip"].after_bytes, tail=1024)
        touched = True
    if "reset" in by_kind:
        body = reset_after(body, by_kind["reset"].after_bytes)
        touched = True
    if "slow" in by_kind:
        body = throttle(body, by_kind["slow"].bytes_per_second or 10000.0, stop=stop)
    if touched and reply.length is not None:
        reply.length = None  # the real length is no longer known; stream it chunked
    reply.body = body
    return reply


def _as_reply(result: Any) -> Reply:
    """A Query handler's return value as a reply: JSON data, text, or a ready Reply."""
    if isinstance(result, Reply):
        return result
    if isinstance(result, bytes | str):
        data = result.encode() if isinstance(result, str) else result
        return Reply(status=200, body=[data], content_type=PLAIN, length=len(data))
    return json_reply(result)


def _retry_after(fault: Fault) -> str:
    seconds = fault.retry_after or 0.0
    if fault.retry_after_form == "date":
        return email.utils.formatdate(time.time() + seconds, usegmt=True)
    return str(math.ceil(seconds))


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """Read ``Basic`` credentials, base64 or plain ``user:secret`` (both accepted, contract §2)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    value = value.strip()
    decoded: str | None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = None
    if decoded is None or ":" not in decoded:
        decoded = value if ":" in value else None
    if decoded is None:
        return None
    user, _, password = decoded.partition(":")
    return user, password


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        name, _, options = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*"):
            q = options.strip().removeprefix("q=").strip() if "q=" in options else "1"
            try:
                return float(q) > 0
            except ValueError:
                return True
    return False


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length_text = str(environ.get("CONTENT_LENGTH") or "").strip()
    if length_text.isdigit():
        length = int(length_text)
        if length > _MAX_BODY:
            raise EmulatorError(413, "request body too large")
        return bytes(stream.read(length)) if length else b""
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read(_MAX_BODY + 1))[:_MAX_BODY]
    return b""


def _params(environ: dict[str, Any], query: str) -> dict[str, str]:
    """Merge the query string, a form body and a JSON body (contract §5); later wins."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method not in ("POST", "PUT", "PATCH"):
        return params
    raw = _read_body(environ)
    if not raw.strip():
        return params
    content_type = str(environ.get("CONTENT_TYPE") or "").lower()
    if "json" in content_type or (not content_type and raw.lstrip()[:1] == b"{"):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise EmulatorError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise EmulatorError(400, "a JSON request body must be an object")
        for key, value in data.items():
            if value is None:
                continue
            params[str(key)] = value if isinstance(value, str) else orjson.dumps(value).decode()
        return params
    params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return params
