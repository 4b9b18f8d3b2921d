"""Response shapes the emulator sends, one builder per wire format Mixpanel uses.

Query/engage errors are ``{"request", "error"}`` (contract §3.4), App API errors
``{"status": "error", "error"}``, export auth failures plain text, and gateway
errors (502/504) the HTML page a proxy sends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

__all__ = [
    "JSON",
    "JSON_ERROR",
    "PLAIN",
    "Reply",
    "app_error",
    "envelope",
    "gateway_page",
    "json_reply",
    "now_iso",
    "plain_text",
    "rate_limit_message",
]

JSON = "application/json"
JSON_ERROR = "application/json; charset=utf-8"  # as recorded on a real 403 (contract §3.2)
PLAIN = "text/plain; charset=utf-8"
HTML = "text/html; charset=UTF-8"
RATE_LIMIT_DOC = (
    "https://help.mixpanel.com/hc/en-us/articles/115004602563-Rate-Limits-for-Export-API-Endpoints"
)


@dataclass
class Reply:
    """What a handler answers: the app adds recording, faults and WSGI plumbing."""

    status: int
    body: Iterable[bytes]
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    length: int | None = None
    gzip: bool = False


def json_reply(data: object, *, status: int = 200, content_type: str = JSON) -> Reply:
    """Serialise ``data`` (dict key order is kept, as engage's key order matters)."""
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)  # tolerate numpy scalars
    return Reply(status=status, body=[body], content_type=content_type, length=len(body))


def envelope(status: int, message: str, request: str | None) -> Reply:
    """The Query/Export error envelope ``{"request": ..., "error": ...}``."""
    body = {"request": request, "error": message}
    return json_reply(body, status=status, content_type=JSON_ERROR)


def app_error(status: int, message: str) -> Reply:
    """The App API error shape ``{"status": "error", "error": ...}``."""
    return json_reply({"status": "error", "error": message}, status=status, content_type=JSON_ERROR)


def plain_text(status: int, text: str) -> Reply:
    """A plain-text answer, e.g. export's ``Unable to authenticate request\\n``."""
    body = text.encode()
    return Reply(status=status, body=[body], content_type=PLAIN, length=len(body))


def gateway_page(status: int) -> Reply:
    """The HTML error page a load balancer sends for 502/504."""
    title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}.get(status, f"{status} Error")
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()
    return Reply(status=status, body=[body], content_type=HTML, length=len(body))


def rate_limit_message(
    project_id: str, *, running: int, concurrent: int, last_hour: int, hourly: int
) -> str:
    """The text of a real 429 (contract §3.3)."""
    return (
        f"Query rate limit exceeded for project_id: {project_id}. "
        f"{running}/{concurrent} queries running concurrently and "
        f"{last_hour}/{hourly} queries running in the last hour. "
        f"For more information, please consult our documentation at {RATE_LIMIT_DOC}"
    )


def now_iso() -> str:
    """``computed_at``: ISO-8601 with microseconds and ``+00:00`` (contract §3.2)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
