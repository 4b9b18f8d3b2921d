"""`mp mcp` start-up: how long an MCP client waits for ``initialize`` (and ``tools/list``).

Starts the installed `mp mcp` over stdio as an agent does, writes ``initialize`` at once
and times its answer, then ``notifications/initialized`` and ``tools/list`` (answered by
the MCP SDK once it is imported). The same for `mp mcp` without the early handshake
(the SDK answers everything, as before ``mcp/fast_start.py``). Runs interleave; each
figure is the median of ``--runs``, with its ratio to the 1 s ceiling.

    python benchmarks/mcp_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CEILING = 1.0
SDK_ONLY = "import sys; from mixpanel_data.cli.main import main; main(['mcp'])"


def _send(proc: subprocess.Popen[bytes], message: dict[str, object]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()


def _session(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    params = {"protocolVersion": "2025-06-18", "capabilities": {},
              "clientInfo": {"name": "bench", "version": "0"}}  # fmt: skip
    _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    first = json.loads(proc.stdout.readline())
    initialized = time.perf_counter() - started
    assert first["id"] == 1, first
    assert "result" in first, first
    _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    listed = json.loads(proc.stdout.readline())
    tools = time.perf_counter() - started
    assert listed["id"] == 2, listed
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=60)
    return initialized, tools, len(listed["result"]["tools"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    mp = shutil.which("mp", path=str(Path(sys.executable).parent)) or "mp"
    home = tempfile.mkdtemp(prefix="mp-mcp-bench-")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    kinds = {"`mp mcp`": [mp, "mcp"], "SDK only (before)": [sys.executable, "-c", SDK_ONLY]}
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in kinds}
    for _ in range(opts.runs):
        for kind, argv in kinds.items():
            results[kind].append(_session(argv, env))
    print(f"| server ({opts.runs} runs) | initialize | / {CEILING:.0f} s | tools/list | tools |")
    print("|---|---:|---:|---:|---:|")
    for kind, rows in results.items():
        init = statistics.median(r[0] for r in rows)
        listed = statistics.median(r[1] for r in rows)
        print(f"| {kind} | {init:.2f} s | {init / CEILING:.2f} | {listed:.2f} s | {rows[0][2]} |")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
