"""`mp mcp`: serve the Workspace to AI agents over the Model Context Protocol (stdio)."""

from __future__ import annotations

from typing import Annotated

import typer

from mixpanel_data.cli.commands.emulator import require_extra
from mixpanel_data.cli.context import get_context


def mcp(
    ctx: typer.Context,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, max=1000, help="Rows per answer (default 100).")
    ] = 100,
    sql_timeout: Annotated[
        float, typer.Option("--sql-timeout", min=0.1, help="Seconds an agent query may run.")
    ] = 10.0,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="DuckDB memory limit for agent SQL.")
    ] = "1GB",
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="DuckDB threads for agent SQL.")
    ] = 2,
    max_bytes: Annotated[
        int,
        typer.Option(
            "--max-bytes",
            min=1000,
            help="Largest answer in bytes of JSON; longer ones lose rows and say so.",
        ),
    ] = 16_000,
) -> None:
    """Serve tools for AI agents (SQL, fetch, discovery, live reports) over MCP on stdio.

    Example: mp mcp   # in the agent's MCP config: {"command": "mp", "args": ["mcp"]}
    """
    require_extra("mcp", command="mp mcp")
    from mixpanel_data.mcp.server import MixpanelTools, serve_stdio
    from mixpanel_data.types import SandboxLimits

    state = get_context(ctx)
    limits = SandboxLimits(
        max_rows=max_rows, timeout=sql_timeout, memory_limit=memory_limit, threads=threads
    )
    # stdout carries the protocol; everything else (lock waits, logs) goes to stderr.
    tools = MixpanelTools(
        workspace_factory=lambda: state.workspace(),
        local_factory=lambda: state.workspace(credentials=False),
        limits=limits,
        max_bytes=max_bytes,
    )
    serve_stdio(tools)
