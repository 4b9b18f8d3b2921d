"""The Mixpanel API client: URLs per region, auth, retries, rate budgets, export streams.

Infrastructure. May import ``config`` and the public exceptions; never storage,
services or results (it returns parsed JSON and byte streams, not typed results).
"""
