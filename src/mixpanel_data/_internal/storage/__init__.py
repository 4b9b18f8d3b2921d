"""Local storage: the DuckDB engine, its metadata tables, locks and crash safety, the Parquet lake.

Infrastructure. May import ``results`` (the table results it returns), ``crashpoints`` and
the public exceptions; never ``http`` or services (storage knows nothing of Mixpanel's API).
"""
