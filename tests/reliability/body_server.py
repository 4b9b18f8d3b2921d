"""A tiny export server on 127.0.0.1 that answers every export with the bytes a test gives.

For bodies the emulator never produces (invalid UTF-8, NaN, 10 MB lines). Speaks just
enough of the contract: Basic auth checked, ``/api/2.0/export`` streams the body,
``/api/app/me`` names the project.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

USERNAME = "svc.user"
SECRET = "body-secret-7f3a"
PROJECT_ID = "4242"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(WSGIServer):
    daemon_threads = True


@contextmanager
def body_server(body: bytes) -> Iterator[str]:
    """Serve `body` for every export; yield the base URL."""
    expected = "Basic " + base64.b64encode(f"{USERNAME}:{SECRET}".encode()).decode()

    def app(environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error": "Invalid credentials"}']
        path = environ.get("PATH_INFO", "")
        if path.endswith("/export"):
            start("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body[i : i + 65536] for i in range(0, len(body), 65536)]
        if path.endswith("/me"):
            start("200 OK", [("Content-Type", "application/json")])
            tz = b'{"projects": {"' + PROJECT_ID.encode() + b'": {"timezone": "UTC"}}}'
            return [b'{"results": ' + tz + b"}"]
        start("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not found"}']

    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
