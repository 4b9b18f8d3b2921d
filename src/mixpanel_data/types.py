"""Public result types: frozen dataclasses with ``to_dict()``.

Sections are grouped by the feature that returns them.
"""

from __future__ import annotations

from mixpanel_data._internal.config import AccountInfo, Credentials
from mixpanel_data._internal.results.charts import save_chart

# -- Discovery and live queries (ws.events(), ws.segmentation(), ws.funnel(), ...) --
from mixpanel_data._internal.results.discovery import (
    BookmarkInfo,
    FunnelInfo,
    SavedCohort,
    TopEvent,
)
from mixpanel_data._internal.results.fetch import FetchProgress, FetchResult
from mixpanel_data._internal.results.live import (
    ActivityEvent,
    ActivityFeedResult,
    EventCountsResult,
    FrequencyResult,
    JQLResult,
    NumericAggregateResult,
    PropertyCountsResult,
    SegmentationResult,
)
from mixpanel_data._internal.results.reports import (
    FlowNode,
    FlowsResult,
    FunnelResult,
    FunnelStep,
    RetentionCohort,
    RetentionResult,
    SavedReportResult,
)
from mixpanel_data._internal.results.tables import (
    ColumnInfo,
    ColumnStats,
    EventBreakdown,
    EventStats,
    NumericStats,
    ParquetExport,
    SQLRows,
    TableInfo,
    TableSchema,
    WorkspaceInfo,
)
from mixpanel_data._internal.services.query_specs import (
    SPECS,
    AverageQuery,
    EventCountsQuery,
    FrequencyQuery,
    FunnelQuery,
    NumericQuery,
    PropertyCountsQuery,
    QuerySpec,
    RetentionQuery,
    SegmentationQuery,
    SumQuery,
)
from mixpanel_data._internal.services.sandbox import SandboxLimits, SandboxResult

__all__ = [
    "SPECS",
    "AccountInfo",
    "ActivityEvent",
    "ActivityFeedResult",
    "AverageQuery",
    "BookmarkInfo",
    "ColumnInfo",
    "ColumnStats",
    "Credentials",
    "EventBreakdown",
    "EventCountsQuery",
    "EventCountsResult",
    "EventStats",
    "FetchProgress",
    "FetchResult",
    "FlowNode",
    "FlowsResult",
    "FrequencyQuery",
    "FrequencyResult",
    "FunnelInfo",
    "FunnelQuery",
    "FunnelResult",
    "FunnelStep",
    "JQLResult",
    "NumericAggregateResult",
    "NumericQuery",
    "NumericStats",
    "ParquetExport",
    "PropertyCountsQuery",
    "PropertyCountsResult",
    "QuerySpec",
    "RetentionCohort",
    "RetentionQuery",
    "RetentionResult",
    "SQLRows",
    "SandboxLimits",
    "SandboxResult",
    "SavedCohort",
    "SavedReportResult",
    "SegmentationQuery",
    "SegmentationResult",
    "SumQuery",
    "TableInfo",
    "TableSchema",
    "TopEvent",
    "WorkspaceInfo",
    "save_chart",
]


# -- Local SQL and introspection (ws.sql_rows, ws.info, ws.tables, ws.event_breakdown, ...) --
