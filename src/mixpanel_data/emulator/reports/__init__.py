"""The emulator's Query API reports, computed from the synthetic project's events.

Importing this package registers every report handler in ``routing.QUERY_ROUTES``
(the server imports it at start). One module per family of endpoints; all of them
read the project's events through ``dataset.dataset_for`` (loaded once per project).
"""

from mixpanel_data.emulator.reports import (
    discovery,
    events,
    flows,
    funnels,
    insights,
    jql,
    retention,
    segmentation,
    stream,
)

__all__ = [
    "discovery",
    "events",
    "flows",
    "funnels",
    "insights",
    "jql",
    "retention",
    "segmentation",
    "stream",
]
