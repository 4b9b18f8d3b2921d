"""Services: discovery, live queries, local SQL and introspection, and the fetch pipeline.

Each is built from its collaborators (an API client, a storage engine) passed in. May import
``config``, ``http``, ``storage``, ``results`` and each other without cycles; never the
public facade (``workspace``) or a front door (``cli``, ``mcp``).
"""
