"""`mp mcp`: a Model Context Protocol server that lets AI agents use a Workspace.

``server.py`` defines the tools (thin calls to the same Workspace methods a Python
user calls), ``sandbox.py`` runs agent SQL on a locked-down read-only connection,
and ``payloads.py`` keeps answers compact (row caps, summaries before data).
"""
