"""The typed results users get: frozen dataclasses, their DataFrames and notebook rendering.

Re-exported from ``mixpanel_data.types``. Imports only the public exceptions (and other
results): no config, http, storage or services, so a result is plain data.
"""
