"""`mp mcp` answers ``initialize`` before the MCP SDK is imported, with the SDK's own answer.

Each test starts real server processes over stdio: `python -m mixpanel_data mcp` (the
early handshake of mcp/fast_start.py) and the same server without it (the SDK answers
everything), and compares the raw JSON-RPC answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data import __version__
from mixpanel_data.mcp.fast_start import HANDSHAKE

SDK_ONLY = "import sys; from mixpanel_data.cli.main import main; main(['mcp'])"


def _exchange(argv: list[str], home: Path, messages: list[dict[str, Any]]) -> list[Any]:
    """Send ``messages`` at once, read one answer per request, then close stdin."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    env["MP_DB_PATH"] = str(home / "local.duckdb")
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    proc.stdin.flush()
    answers = [json.loads(proc.stdout.readline()) for m in messages if "id" in m]
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    return answers


def _initialize(version: str, request_id: Any = 1) -> dict[str, Any]:
    params = {"protocolVersion": version, "capabilities": {},
              "clientInfo": {"name": "test", "version": "0"}}  # fmt: skip
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


def test_the_recording_is_of_this_release_and_sdk() -> None:
    record = json.loads(HANDSHAKE.read_text())
    assert record["versions"] == {"mixpanel_data": __version__, "mcp": version("mcp")}, (
        "run scripts/gen_docs.py"
    )
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    assert sorted(record["initialize"]) == sorted(HANDSHAKE_PROTOCOL_VERSIONS)


@pytest.mark.parametrize("protocol", ["2025-06-18", "2024-11-05", "1999-01-01"])
def test_a_whole_session_answers_as_the_sdk_alone_does(protocol: str, clean_environ: Path) -> None:
    """initialize (fast, or the SDK's for a version it must negotiate), then tools/list and
    a tool call: the same answers, in the same order, with one initialize answer."""
    session = [
        _initialize(protocol, request_id="a-1"),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "list_tables", "arguments": {}}},
    ]  # fmt: skip
    fast = _exchange([sys.executable, "-m", "mixpanel_data", "mcp"], clean_environ, session)
    sdk = _exchange([sys.executable, "-c", SDK_ONLY], clean_environ, session)
    assert [m.get("id") for m in fast] == ["a-1", 2, 3]
    assert fast == sdk
    assert fast[0]["result"]["serverInfo"]["version"] == __version__
    assert len(fast[1]["result"]["tools"]) == 16
    assert fast[2]["result"]["structuredContent"]["tables"] == []


def test_messages_before_initialize_go_to_the_sdk_in_order(clean_environ: Path) -> None:
    """A ping before initialize is the SDK's to answer; the early reader answers nothing."""
    session = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        _initialize("2025-06-18", request_id=2),
    ]
    fast = _exchange([sys.executable, "-m", "mixpanel_data", "mcp"], clean_environ, session)
    sdk = _exchange([sys.executable, "-c", SDK_ONLY], clean_environ, session)
    assert fast == sdk
    assert [m.get("id") for m in fast] == [1, 2]
