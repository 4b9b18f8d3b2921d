"""mixpanel_data: fast, reliable, local access to Mixpanel data.

The one public door: the Workspace facade, the result types and the exceptions.

    >>> import mixpanel_data as mp
    >>> with mp.Workspace() as ws:          # doctest: +SKIP
    ...     ws.fetch_events("events", from_date="2024-01-01", to_date="2024-01-31")
    ...     ws.sql("SELECT event_name, count(*) FROM events GROUP BY 1")
"""

from mixpanel_data._version import __version__
from mixpanel_data.exceptions import (
    AccountExistsError,
    AccountNotFoundError,
    APIError,
    AuthenticationError,
    ConfigError,
    DatabaseLockedError,
    DatabaseNotFoundError,
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
from mixpanel_data.types import AccountInfo, Credentials
from mixpanel_data.workspace import Workspace

__all__ = [
    "APIError",
    "AccountExistsError",
    "AccountInfo",
    "AccountNotFoundError",
    "AuthenticationError",
    "ConfigError",
    "Credentials",
    "DatabaseLockedError",
    "DatabaseNotFoundError",
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
    "Workspace",
    "__version__",
]
