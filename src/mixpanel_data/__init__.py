"""mixpanel_data: fast, reliable, local access to Mixpanel data.

The one public door: the Workspace facade, the result types and the exceptions.

    >>> import mixpanel_data as mp
    >>> with mp.Workspace() as ws:          # doctest: +SKIP
    ...     ws.fetch_events("events", from_date="2024-01-01", to_date="2024-01-31")
    ...     ws.sql("SELECT event_name, count(*) FROM events GROUP BY 1")
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from mixpanel_data._version import __version__
from mixpanel_data.exceptions import (
    AccountExistsError,
    AccountNotFoundError,
    APIError,
    AuthenticationError,
    ConfigError,
    DatabaseLockedError,
    DatabaseNotFoundError,
    IncompleteDataError,
    MixpanelDataError,
    NetworkError,
    NotFoundError,
    PartialFetchError,
    QueryError,
    RateLimitError,
    Retryable,
    ServerError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    ValidationError,
)

if _TYPE_CHECKING:
    from mixpanel_data.types import (
        AccountInfo,
        ActivityEvent,
        ActivityFeedResult,
        AverageQuery,
        BookmarkInfo,
        ColumnInfo,
        ColumnStats,
        Credentials,
        EventBreakdown,
        EventCountsQuery,
        EventCountsResult,
        EventStats,
        FetchProgress,
        FetchResult,
        FlowNode,
        FlowsResult,
        FrequencyQuery,
        FrequencyResult,
        FunnelInfo,
        FunnelQuery,
        FunnelResult,
        FunnelStep,
        JQLResult,
        NumericAggregateResult,
        NumericQuery,
        NumericStats,
        ParquetExport,
        PropertyCountsQuery,
        PropertyCountsResult,
        QuerySpec,
        RetentionCohort,
        RetentionQuery,
        RetentionResult,
        SavedCohort,
        SavedReportResult,
        SegmentationQuery,
        SegmentationResult,
        SQLRows,
        SumQuery,
        TableInfo,
        TableSchema,
        TopEvent,
        WorkspaceInfo,
    )
    from mixpanel_data.workspace import Workspace

# Result types and the Workspace load on first use, so `mp` (completion, `mp mcp`'s
# start-up) does not pay for pydantic, pandas and DuckDB before it needs them.
_LAZY_TYPES = frozenset(
    {
        "AccountInfo",
        "ActivityEvent",
        "ActivityFeedResult",
        "BookmarkInfo",
        "ColumnInfo",
        "ColumnStats",
        "Credentials",
        "EventBreakdown",
        "EventCountsResult",
        "EventStats",
        "FetchProgress",
        "FetchResult",
        "FlowNode",
        "FlowsResult",
        "FrequencyResult",
        "FunnelInfo",
        "FunnelResult",
        "FunnelStep",
        "JQLResult",
        "NumericAggregateResult",
        "NumericStats",
        "ParquetExport",
        "PropertyCountsResult",
        "RetentionCohort",
        "RetentionResult",
        "SavedCohort",
        "SavedReportResult",
        "SegmentationResult",
        "SQLRows",
        "TableInfo",
        "TableSchema",
        "TopEvent",
        "WorkspaceInfo",
        "AverageQuery",
        "EventCountsQuery",
        "FrequencyQuery",
        "FunnelQuery",
        "NumericQuery",
        "PropertyCountsQuery",
        "QuerySpec",
        "RetentionQuery",
        "SegmentationQuery",
        "SumQuery",
    }
)


def __getattr__(name: str) -> _Any:
    if name in _LAZY_TYPES:
        from mixpanel_data import types

        return getattr(types, name)
    if name == "Workspace":
        from mixpanel_data.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'mixpanel_data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_TYPES, "Workspace"})


__all__ = [
    "APIError",
    "AccountExistsError",
    "AccountInfo",
    "AccountNotFoundError",
    "ActivityEvent",
    "ActivityFeedResult",
    "AuthenticationError",
    "AverageQuery",
    "BookmarkInfo",
    "ColumnInfo",
    "ColumnStats",
    "ConfigError",
    "Credentials",
    "DatabaseLockedError",
    "DatabaseNotFoundError",
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
    "IncompleteDataError",
    "JQLResult",
    "MixpanelDataError",
    "NetworkError",
    "NotFoundError",
    "NumericAggregateResult",
    "NumericQuery",
    "NumericStats",
    "ParquetExport",
    "PartialFetchError",
    "PropertyCountsQuery",
    "PropertyCountsResult",
    "QueryError",
    "QuerySpec",
    "RateLimitError",
    "RetentionCohort",
    "RetentionQuery",
    "RetentionResult",
    "Retryable",
    "SQLRows",
    "SavedCohort",
    "SavedReportResult",
    "SegmentationQuery",
    "SegmentationResult",
    "ServerError",
    "StorageError",
    "SumQuery",
    "TableExistsError",
    "TableInfo",
    "TableNotFoundError",
    "TableSchema",
    "TopEvent",
    "ValidationError",
    "Workspace",
    "WorkspaceInfo",
    "__version__",
]
