"""Private implementation behind the Workspace facade, one room per layer.

- ``config``: accounts and credentials (infrastructure).
- ``http/``: the Mixpanel API client (infrastructure).
- ``storage/``: the DuckDB engine and the Parquet lake (infrastructure).
- ``services/``: discovery, live queries, local SQL, and the fetch pipeline.
- ``results/``: the typed results every layer returns.
- ``crashpoints``: the documented test seam for killing a fetch at a named phase.

Who may import whom is pinned in ``tests/foundation/test_layers.py``.
"""
