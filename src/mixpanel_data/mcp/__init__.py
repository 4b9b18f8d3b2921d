"""`mp mcp`: a Model Context Protocol server that lets AI agents use a Workspace.

``server.py`` defines the tools (thin calls to the same Workspace methods a Python
user calls), agent SQL runs on the Workspace's locked-down read-only connection
(``Workspace.sql_sandboxed``),
and ``payloads.py`` keeps answers compact (row caps, summaries before data).
"""
