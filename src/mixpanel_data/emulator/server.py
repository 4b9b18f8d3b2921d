"""``Emulator``: the Mixpanel API emulator served over real HTTP on 127.0.0.1.

The server is cheroot (CherryPy's WSGI server): a production-grade, pure-Python,
threaded HTTP/1.1 server with keep-alive and chunked streaming, and no event loop.
The app is plain WSGI, which keeps handlers simple blocking generators (an export
is a loop over 1 MiB file reads) and lets tests mount the very same app in-process
with ``httpx.WSGITransport``. A fixed pool of worker threads (default 128) covers
Mixpanel's 100 concurrent exports; idle keep-alive connections wait in cheroot's
selector without holding a thread.

Example::

    with Emulator(spec=ProjectSpec(users=200, days=30)) as emu:
        httpx.get(f"{emu.base_url}/api/app/me", auth=(emu.username, emu.secret))
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cheroot import wsgi

from mixpanel_data.emulator.app import EmulatorApp
from mixpanel_data.emulator.faults import Faults, StreamReset
from mixpanel_data.emulator.limits import RateLimiter
from mixpanel_data.emulator.project import ProjectSpec, SyntheticProject
from mixpanel_data.emulator.recording import RecordedRequest

__all__ = [
    "DEFAULT_PROJECT_SECRET",
    "DEFAULT_SECRET",
    "DEFAULT_USERNAME",
    "Emulator",
]

DEFAULT_USERNAME = "demo.abc123.mp-service-account"
DEFAULT_SECRET = "emulator-secret-7f3a9c1e5b2d4f60"  # noqa: S105 (a public demo value)
DEFAULT_PROJECT_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # noqa: S105

log = logging.getLogger("mixpanel_data.emulator")


class _Gateway(wsgi.Gateway_10):
    """cheroot's WSGI gateway, plus a real connection reset for the ``reset`` fault."""

    def respond(self) -> None:
        try:
            super().respond()
        except StreamReset:
            self._reset_connection()

    def _reset_connection(self) -> None:
        req: Any = self.req
        conn = req.conn
        req.close_connection = True
        req.chunked_write = False  # no terminating chunk: the body stays incomplete
        with contextlib.suppress(OSError):
            conn.wfile.flush()
        sock: socket.socket = conn.socket
        with contextlib.suppress(OSError):
            # Linger 0: closing sends a TCP RST instead of a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.linger = True  # cheroot must not shut the socket down after us
        fd = sock.detach()
        if fd >= 0:
            os.close(fd)


class _Server(wsgi.Server):
    """cheroot's server with its log routed to ``logging`` instead of stderr."""

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        log.log(level, "%s", msg, exc_info=traceback)


class Emulator:
    """A local Mixpanel: the synthetic project served on ``http://127.0.0.1:<port>``.

    ``faults`` is a ``--faults`` spec; ``rate_limit`` enforces Mixpanel's budgets
    (``hour_seconds`` shortens the hour, ``retry_after`` adds the header to 429s);
    ``session_ttl`` is how long engage sessions live.
    """

    def __init__(
        self,
        *,
        spec: ProjectSpec | None = None,
        port: int = 0,
        username: str = DEFAULT_USERNAME,
        secret: str = DEFAULT_SECRET,
        project_secret: str = DEFAULT_PROJECT_SECRET,
        faults: str | None = None,
        fault_seed: int = 0,
        rate_limit: bool = False,
        hour_seconds: float = 3600.0,
        retry_after: bool = False,
        session_ttl: float = 3600.0,
        cache_dir: Path | None = None,
        threads: int = 128,
    ) -> None:
        self.spec = spec if spec is not None else ProjectSpec()
        self.project = SyntheticProject(self.spec, cache_dir=cache_dir)
        self.username = username
        self.secret = secret
        self.project_secret = project_secret
        self.faults = Faults(seed=fault_seed)
        if faults:
            self.faults.add_spec(faults)
        self.limiter = RateLimiter(hour_seconds=hour_seconds) if rate_limit else None
        self.app = EmulatorApp(
            self.project,
            username=username,
            secret=secret,
            project_secret=project_secret,
            faults=self.faults,
            limiter=self.limiter,
            retry_after=retry_after,
            session_ttl=session_ttl,
        )
        self.threads = max(32, threads)
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind 127.0.0.1 and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self.app.stop_event.clear()
        server = _Server(
            ("127.0.0.1", self._port),
            self.app,
            numthreads=self.threads,
            server_name="mixpanel-emulator",
            request_queue_size=128,
            timeout=300,  # per socket operation: slow consumers of big exports are fine
            shutdown_timeout=2,
        )
        server.gateway = _Gateway
        server.prepare()
        self._port = int(server.bind_addr[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve, name=f"mixpanel-emulator:{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: streams in flight are cut, threads are joined."""
        server, self._server = self._server, None
        if server is None:
            return
        self.app.stop_event.set()
        server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "stopped"
        return f"<Emulator project_id={self.spec.project_id} {state}>"

    # -- what clients need -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (0 until started when asked for any free port)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the origin of every API family."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def credentials(self) -> dict[str, str]:
        """What a client needs: base_url, username, secret and project_id."""
        return {
            "base_url": self.base_url,
            "username": self.username,
            "secret": self.secret,
            "project_id": str(self.spec.project_id),
        }

    def requests(self) -> list[RecordedRequest]:
        """Every call answered so far (the control API lists the same)."""
        return self.app.requests.snapshot()

    def clear_requests(self) -> None:
        """Forget the recorded calls."""
        self.app.requests.clear()

    def wait_for_requests(
        self, predicate: Callable[[list[RecordedRequest]], bool], *, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Wait until ``predicate(calls)`` holds, e.g. a streamed call has completed."""
        return self.app.requests.wait_for(predicate, timeout=timeout)
