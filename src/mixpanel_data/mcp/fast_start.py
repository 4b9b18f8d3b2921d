"""Answer an MCP client's ``initialize`` before the MCP SDK is imported (4-6 s here).

`mp mcp` starts this first (cli/entry.py), then imports Typer, the SDK and the tools.
Meanwhile a thread reads stdin: it answers ``initialize`` (for a protocol version the SDK
speaks over the handshake) with the SDK's own answer, recorded in ``handshake.json`` by
scripts/gen_docs.py and pinned by tests/mcp; every other message waits, in order, for the
SDK. When the server is ready (``server.serve_stdio``) the SDK gets the recorded
``initialize`` first (its answer is dropped: the client has it), then everything else.

Like the SDK's stdio transport, the wire moves to private descriptors: fd 0 reads EOF and
fd 1 is stderr, so nothing printed by accident reaches the protocol.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["HANDSHAKE", "Handshake", "begin"]

HANDSHAKE = Path(__file__).resolve().parent / "handshake.json"


class Handshake:
    """The early reader of the wire; ``take_over`` hands it to the SDK."""

    def __init__(self, answers: dict[str, Any], wire_in: BinaryIO, wire_out: BinaryIO) -> None:
        self._answers = answers  # protocol version -> the SDK's initialize result
        self._in = wire_in
        self.out = wire_out
        self.out_lock = threading.Lock()
        self._lock = threading.Lock()
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._handed_over = False
        self.replay: list[bytes] = []  # what was answered here, for the SDK to see first
        self.answered_id: Any = None
        self._thread = threading.Thread(target=self._read, name="mcp-handshake", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in iter(self._in.readline, b""):
            with self._lock:
                if self._handed_over or not self._answer(line):
                    self._handed_over = True  # from here on, order is the SDK's to keep
                    self._queue.put(line)
        self._queue.put(None)

    def _answer(self, line: bytes) -> bool:
        try:
            message = json.loads(line)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return False
        method = message.get("method")
        if method == "initialize" and "id" in message and not self.replay:
            params = message.get("params")
            version = params.get("protocolVersion") if isinstance(params, dict) else None
            result = self._answers.get(version) if isinstance(version, str) else None
            if result is None:
                return False  # a version only the SDK knows how to negotiate
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
            self.answered_id = message["id"]
            self.replay.append(line)
            with self.out_lock:
                self.out.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
                self.out.flush()
            return True
        if method == "notifications/initialized" and "id" not in message and self.replay:
            self.replay.append(line)
            return True
        return False

    def take_over(self) -> queue.Queue[bytes | None]:
        """Stop answering here: every later line goes to the returned queue (None: EOF)."""
        with self._lock:
            self._handed_over = True
        return self._queue


_ACTIVE: Handshake | None = None


def begin() -> None:
    """Start answering ``initialize`` on stdin/stdout (once per process)."""
    global _ACTIVE
    if _ACTIVE is not None:
        return
    from importlib.metadata import PackageNotFoundError, version

    from mixpanel_data._version import __version__

    try:
        record = json.loads(HANDSHAKE.read_text())
        answers = record["initialize"]
        current = record["versions"] == {"mixpanel_data": __version__, "mcp": version("mcp")}
    except (OSError, ValueError, KeyError, TypeError, PackageNotFoundError):
        return  # no usable recording (or no SDK): the SDK answers everything, only later
    if not current or not isinstance(answers, dict):
        return  # recorded with another SDK or release: its answer might differ
    wire_in = os.fdopen(os.dup(0), "rb", closefd=True)
    wire_out = os.fdopen(os.dup(1), "wb", closefd=True)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    _ACTIVE = Handshake(answers, wire_in, wire_out)


def active() -> Handshake | None:
    """The running early reader, if `mp mcp` started one."""
    return _ACTIVE
