"""Bucket keys of local days, and the local funnel's entry point.

The funnel is computed in ``funnel_sql.py`` (its semantics in ``funnels.py``); retention
and frequency follow contract §10 (the emulator's documented choices where Mixpanel's
docs are silent). A saved funnel's steps and conversion window come from its saved
definition: the ``params`` of the ``funnels`` bookmark with the funnel's id, as
Mixpanel's bookmarks API returns them (contract §12.1; ``funnels.saved_definition``
reads them).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from mixpanel_data._internal.services.local.funnel_sql import funnel

__all__ = ["bucket_of_day", "funnel"]


def bucket_of_day(unit: str) -> Any:
    """The bucket key of a local day for ``unit`` (weeks start on Monday)."""

    def key(d: date) -> str:
        if unit == "week":
            return (d - timedelta(days=d.weekday())).isoformat()
        if unit == "month":
            return d.replace(day=1).isoformat()
        return d.isoformat()

    return key
