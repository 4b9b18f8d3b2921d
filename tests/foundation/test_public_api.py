"""The one public door: `mixpanel_data.__all__` is exactly what the package exports."""

from __future__ import annotations

import dataclasses
import inspect

import mixpanel_data
from mixpanel_data import exceptions, types

EXPECTED = {
    # facade
    "Workspace",
    "__version__",
    # exceptions
    "APIError",
    "AccountExistsError",
    "AccountNotFoundError",
    "AuthenticationError",
    "ConfigError",
    "DatabaseLockedError",
    "DatabaseNotFoundError",
    "IncompleteDataError",
    "MixpanelDataError",
    "NetworkError",
    "NotFoundError",
    "PartialFetchError",
    "QueryError",
    "RateLimitError",
    "Retryable",
    "ServerError",
    "StorageError",
    "TableExistsError",
    "TableNotFoundError",
    "ValidationError",
    # result types
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
    "SQLRows",
    "SavedCohort",
    "SavedReportResult",
    "SegmentationResult",
    "TableInfo",
    "TableSchema",
    "TopEvent",
    "WorkspaceInfo",
    # query specs (ws.run(spec), ws.local.run(spec))
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


def test_all_is_pinned() -> None:
    assert set(mixpanel_data.__all__) == EXPECTED
    assert len(mixpanel_data.__all__) == len(EXPECTED)  # no duplicates


def test_all_matches_the_real_public_names() -> None:
    # dir(), not vars(): result types and the Workspace load lazily (fast `mp` start-up).
    public = {n for n in dir(mixpanel_data) if not n.startswith("_")}
    # Submodules are reachable as attributes but are not exports.
    modules = {n for n in public if inspect.ismodule(getattr(mixpanel_data, n))}
    assert public - modules == set(mixpanel_data.__all__) - {"__version__"}
    for name in mixpanel_data.__all__:
        assert hasattr(mixpanel_data, name), name


def test_every_exception_derives_from_the_one_base() -> None:
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if name != "Retryable":
            assert issubclass(cls, mixpanel_data.MixpanelDataError), name
        assert getattr(mixpanel_data, name) is cls


def test_result_types_are_frozen_with_to_dict() -> None:
    for name in sorted(EXPECTED):
        obj = getattr(mixpanel_data, name)
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
            params = obj.__dataclass_params__
            assert params.frozen, f"{name} must be frozen"
            assert callable(getattr(obj, "to_dict", None)), f"{name} lacks to_dict()"
            assert getattr(types, name, obj) is obj
