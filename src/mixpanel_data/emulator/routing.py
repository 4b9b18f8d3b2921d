"""The emulator's route table for Query API endpoints.

Handlers take an ``ApiRequest`` and return a JSON-ready body (HTTP 200), or
raise ``EmulatorError`` with the status and message Mixpanel would send; the
WSGI app wraps that message in the ``{"request", "error"}`` envelope (contract §3.4).
Report modules register themselves with ``@query_route("segmentation")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["QUERY_ROUTES", "ApiRequest", "EmulatorError", "Handler", "query_route"]


@dataclass(frozen=True)
class ApiRequest:
    """One authenticated, project-scoped request as a handler sees it.

    ``params`` merges the query string, a form body and a JSON body; values are
    strings as on the wire (JSON-body values that are not strings are JSON-encoded).
    ``request_line`` is the path and query as received, echoed in error envelopes.
    """

    method: str
    endpoint: str
    params: Mapping[str, str]
    project: Any
    request_line: str


class EmulatorError(Exception):
    """An error response: status, message, and whether the body is plain text."""

    def __init__(self, status: int, message: str, *, plain_text: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.plain_text = plain_text


Handler = Callable[[ApiRequest], Any]

QUERY_ROUTES: dict[str, Handler] = {}


def query_route(endpoint: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``/api/query/<endpoint>`` and ``/api/2.0/<endpoint>``."""

    def register(fn: Handler) -> Handler:
        QUERY_ROUTES[endpoint] = fn
        return fn

    return register
