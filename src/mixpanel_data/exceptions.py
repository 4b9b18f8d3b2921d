"""The one exception tree of mixpanel_data.

Every error the library raises on purpose derives from ``MixpanelDataError``;
httpx and duckdb errors are translated once, at the edge that calls them::

    MixpanelDataError                      exit 1 (unless a subclass says otherwise)
    ├── ConfigError                        exit 1
    │   ├── AccountNotFoundError           exit 4
    │   └── AccountExistsError             exit 1
    ├── ValidationError                    exit 3   (bad dates, names, arguments)
    │   └── IncompleteDataError            exit 7   (.missing_days: a local report's days not fetched)
    ├── APIError                           exit 1   (.status_code .method .endpoint .request_summary .server_message)
    │   ├── AuthenticationError            exit 2   (401, export's 400 "Unable to authenticate", 403 not a member)
    │   ├── QueryError                     exit 3   (other 4xx: bad parameters, 403 date gate, 412 JQL)
    │   ├── NotFoundError                  exit 4   (404, unknown funnel or bookmark)
    │   ├── RateLimitError  [Retryable]    exit 5   (.retry_after)
    │   └── ServerError     [Retryable]    exit 1   (5xx)
    ├── NetworkError        [Retryable]    exit 1   (connect, reset, timeout, truncated stream)
    ├── PartialFetchError                  exit 6   (.failed_ranges: some windows or pages failed)
    └── StorageError                       exit 1
        ├── TableExistsError               exit 1
        ├── TableNotFoundError             exit 4
        ├── DatabaseLockedError            exit 1   (.pid of the holder, when known)
        └── DatabaseNotFoundError          exit 4

``Retryable`` is a marker mixin: ``isinstance(err, Retryable)`` says a retry may succeed.
"""

from __future__ import annotations

from typing import Any

__all__ = [
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
]


class MixpanelDataError(Exception):
    """Base of every error mixpanel_data raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """Describe the error as JSON-ready data (for `--format json` and agents)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "exit_code": self.exit_code,
            **{k: v for k, v in self.details.items() if v is not None},
        }

    def __str__(self) -> str:
        return self.message

    @property
    def cli_message(self) -> str:
        """The message as the `mp` command line shows it (flags, not keyword arguments)."""
        return self.message


class Retryable:
    """Marker: the same request may succeed if tried again later."""


class ConfigError(MixpanelDataError):
    """The account configuration is missing, invalid or unsafe."""


class AccountNotFoundError(ConfigError):
    """A named account does not exist in the config file."""

    exit_code = 4

    def __init__(self, name: str, *, available: list[str] | None = None) -> None:
        known = ", ".join(available or []) or "none"
        super().__init__(
            f"account '{name}' not found (configured: {known}); "
            f"add it with `mp auth add {name}` or list accounts with `mp auth list`",
            account=name,
        )
        self.name = name


class AccountExistsError(ConfigError):
    """An account with this name is already configured."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"account '{name}' already exists; remove it first with `mp auth remove {name}` "
            "or choose another name",
            account=name,
        )
        self.name = name


class ValidationError(MixpanelDataError):
    """An argument is invalid (dates, table names, limits, expressions)."""

    exit_code = 3


class IncompleteDataError(ValidationError):
    """A local report covers days the events table was not fetched for.

    Reporting them would give low numbers silently; ``.missing_days`` lists them.
    """

    exit_code = 7

    def __init__(self, message: str, *, missing_days: list[str]) -> None:
        super().__init__(message, missing_days=missing_days)
        self.missing_days = missing_days


class APIError(MixpanelDataError):
    """Mixpanel answered with an error.

    Carries the HTTP status, method, endpoint, a request summary with secrets
    removed, and the server's own error text.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        endpoint: str | None = None,
        request_summary: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            method=method,
            endpoint=endpoint,
            request_summary=request_summary,
            server_message=server_message,
        )
        self.status_code = status_code
        self.method = method
        self.endpoint = endpoint
        self.request_summary = request_summary
        self.server_message = server_message


class AuthenticationError(APIError):
    """The credentials were refused or lack access to the project."""

    exit_code = 2


class QueryError(APIError):
    """Mixpanel refused the query's parameters (4xx other than auth and rate limits)."""

    exit_code = 3


class NotFoundError(APIError):
    """The requested object (funnel, bookmark, endpoint) does not exist."""

    exit_code = 4


class RateLimitError(APIError, Retryable):
    """Mixpanel's rate limit was hit; `retry_after` says how long to wait, in seconds."""

    exit_code = 5

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.details["retry_after"] = retry_after


class ServerError(APIError, Retryable):
    """Mixpanel (or a proxy in front of it) failed with a 5xx."""


class NetworkError(MixpanelDataError, Retryable):
    """The connection failed, timed out or was cut mid-response."""


class PartialFetchError(MixpanelDataError):
    """Some windows or pages failed for good; the others were committed."""

    exit_code = 6

    def __init__(
        self, message: str, *, failed_ranges: list[dict[str, Any]], result: Any = None
    ) -> None:
        super().__init__(message, failed_ranges=failed_ranges)
        self.failed_ranges = failed_ranges
        self.result = result


class StorageError(MixpanelDataError):
    """The local DuckDB database could not be used."""


class TableExistsError(StorageError):
    """The target table exists and neither append nor replace was asked for."""

    def __init__(self, table: str, *, complete_range: str | None = None) -> None:
        self.complete_range = complete_range
        if complete_range:  # the same fetch again (e.g. after a late Ctrl-C): nothing to do
            message = (
                f"table '{table}' already exists and is complete: this same fetch "
                f"({complete_range}) committed every window; nothing to fetch; pass "
                "append=True to add to it, replace=True to rebuild it, or use "
                "update_events() to bring it up to today"
            )
        else:
            message = (
                f"table '{table}' already exists; pass append=True to add to it, "
                f"replace=True to rebuild it, or choose another name"
            )
        super().__init__(message, table=table)
        self.table = table

    @property
    def cli_message(self) -> str:
        """The same advice in `mp fetch` flags."""
        if self.complete_range:
            return (
                f"table '{self.table}' already exists and is complete: this same fetch "
                f"({self.complete_range}) committed every window; nothing to fetch; use "
                "--append to add to it, --replace to rebuild it, or --update to bring it "
                "up to today"
            )
        return (
            f"table '{self.table}' already exists; use --append to add to it, "
            f"--replace to rebuild it, or choose another name"
        )


class TableNotFoundError(StorageError):
    """The named table is not in the database."""

    exit_code = 4

    def __init__(self, table: str, *, fetch_running: bool = False) -> None:
        # A fetch that creates the table shows it at its first commit, not before.
        note = (
            " (a fetch is writing this database: a table it creates appears when its "
            "first window is committed, in a moment)"
            if fetch_running
            else ""
        )
        super().__init__(
            f"table '{table}' not found{note}; list tables with `mp inspect tables`",
            table=table,
        )
        self.table = table


class DatabaseLockedError(StorageError):
    """Another process holds the database's write lock."""

    def __init__(self, path: str, *, pid: int | None = None, action: str | None = None) -> None:
        holder = f"process {pid}" if pid else "another process"
        if action:  # a drop/export refused while a fetch writes the database
            message = (
                f"cannot {action}: a fetch ({holder}) is writing database {path}; "
                "wait for it to finish (or stop it) and run the command again"
            )
        else:
            message = (
                f"database {path} is locked by {holder}; wait for it to finish "
                "or use another --db path (reading with `mp sql` still works)"
            )
        super().__init__(message, path=path, pid=pid)
        self.path = path
        self.pid = pid


class DatabaseNotFoundError(StorageError):
    """The database file does not exist (read-only opens never create one)."""

    exit_code = 4

    def __init__(self, path: str) -> None:
        super().__init__(
            f"database {path} does not exist; fetch data first with `mp fetch events`",
            path=path,
        )
        self.path = path
