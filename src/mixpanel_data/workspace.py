"""Workspace: the facade every user (Python or `mp`) goes through.

Credentials are resolved once, at construction; the API client and the local
database are created lazily, on first use, so commands that need neither stay fast.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from mixpanel_data._internal.config import ConfigManager, Credentials
from mixpanel_data._internal.http.rate_limit import BudgetSpec
from mixpanel_data._internal.services.discovery import DiscoveryService
from mixpanel_data._internal.services.frames import FrameService
from mixpanel_data._internal.services.introspection import IntrospectionService
from mixpanel_data._internal.services.live_query import LiveQueryService
from mixpanel_data._internal.services.sql import SQLService
from mixpanel_data.exceptions import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import date

    import httpx
    import pandas as pd

    from mixpanel_data._internal.http.client import MixpanelAPIClient, RetryPolicy
    from mixpanel_data._internal.results.fetch import FetchProgress, FetchResult
    from mixpanel_data._internal.results.notebook import NotebookProgress
    from mixpanel_data._internal.services.local.reports import LocalQueryService
    from mixpanel_data._internal.storage.engine import StorageEngine
    from mixpanel_data.types import (
        ParquetExport,
        SandboxLimits,
        SandboxResult,
    )


# Lazy members (API client, services) are built once even when first used from threads.
_LAZY_LOCK = threading.RLock()

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _via(
    service: str, method: Callable[Concatenate[Any, _P], _R]
) -> Callable[Concatenate[Workspace, _P], _R]:
    """Offer a service's method on the Workspace with its own signature and docstring."""

    @functools.wraps(method)
    def call(self: Workspace, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(getattr(self, service), *args, **kwargs)

    return call


def _stderr_line(text: str) -> None:
    import sys

    print(text, file=sys.stderr)


class Workspace:
    """One project's data: live queries against Mixpanel, and the local DuckDB copy.

    Example:
        with Workspace(account="prod") as ws:
            print(ws.test_credentials())
    """

    def __init__(
        self,
        account: str | None = None,
        *,
        project_id: str | None = None,
        region: str | None = None,
        workspace_id: str | int | None = None,
        path: str | Path | None = None,
        read_only: bool = False,
        credentials: Credentials | None = None,
        config: ConfigManager | None = None,
        transport: httpx.BaseTransport | None = None,
        budgets: Mapping[str, BudgetSpec | str] | None = None,
        retry: RetryPolicy | None = None,
        quiet: bool = False,
    ) -> None:
        self._config = config or ConfigManager()
        creds = credentials or self._config.resolve(account)
        if project_id is not None or region is not None or workspace_id is not None:
            from dataclasses import replace

            creds = replace(
                creds,
                project_id=project_id if project_id is not None else creds.project_id,
                region=region if region is not None else creds.region,
                workspace_id=str(workspace_id) if workspace_id is not None else creds.workspace_id,
            )
        self._credentials: Credentials | None = creds
        self._path = Path(path).expanduser() if path is not None else None
        self._read_only = read_only
        self._transport = transport
        self._budgets = _budgets(budgets) if budgets is not None else budgets_from_env()
        self._retry = retry
        self._quiet = quiet  # no progress notes on stderr (warnings still print)
        self._api: MixpanelAPIClient | None = None
        self._storage: StorageEngine | None = None
        self._ephemeral = False
        self._closed = False

    @classmethod
    def ephemeral(cls, account: str | None = None, **kwargs: Any) -> Workspace:
        """A Workspace on a temporary database file, deleted (with its WAL) on close."""
        import tempfile

        directory = tempfile.mkdtemp(prefix="mp-ephemeral-")
        ws = cls(account, path=Path(directory) / "ephemeral.duckdb", **kwargs)
        ws._ephemeral = True
        return ws

    @classmethod
    def memory(cls, account: str | None = None, **kwargs: Any) -> Workspace:
        """A Workspace on an in-memory database (``:memory:``), gone on close."""
        return cls(account, path=":memory:", **kwargs)

    @classmethod
    def open(
        cls, path: str | Path | None = None, *, read_only: bool = True, quiet: bool = False
    ) -> Workspace:
        """Open a local database without credentials (SQL and inspection only); ``quiet``:
        no notes on stderr (such as waiting for a fetch to release the file)."""
        ws = cls.__new__(cls)
        ws._config = ConfigManager()
        ws._credentials = None
        ws._path = Path(path).expanduser() if path is not None else None
        ws._read_only = read_only
        ws._transport = None
        ws._budgets = {}
        ws._retry = None
        ws._quiet = quiet
        ws._api = None
        ws._storage = None
        ws._ephemeral = False
        ws._closed = False
        return ws

    @staticmethod
    def set_wal_recovery(enabled: bool) -> None:
        """Process-wide: move an unreplayable write-ahead log aside on open (``mp --recover``)."""
        from mixpanel_data._internal.storage.safety import set_wal_recovery

        set_wal_recovery(enabled)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The credentials resolved at construction (secret masked in repr)."""
        if self._credentials is None:
            from mixpanel_data.exceptions import ConfigError

            raise ConfigError(
                "this workspace was opened without credentials; "
                "open it with Workspace(account=...) to call Mixpanel"
            )
        return self._credentials

    @property
    def api(self) -> MixpanelAPIClient:
        """The API client, created on first use."""
        if self._api is None:
            from mixpanel_data._internal.http.client import MixpanelAPIClient

            with _LAZY_LOCK:
                if self._api is None:
                    api = MixpanelAPIClient(
                        self.credentials,
                        transport=self._transport,
                        budgets=self._budgets,
                        retry=self._retry,
                    )
                    if not self._quiet:  # long rate-limit waits say what for, until when
                        api.on_wait = _stderr_line
                    self._api = api
        return self._api

    @property
    def storage(self) -> StorageEngine:
        """The local database engine, created on first use (path: ``path=``, --db,
        ``MP_DB_PATH``, else ``~/.mp/data/<project_id>.duckdb``)."""
        if self._storage is None:
            from mixpanel_data._internal.storage.engine import StorageEngine

            self._storage = StorageEngine(
                self._resolved_path(),
                read_only=self._read_only,
                ephemeral=self._ephemeral,
                announce_waits=not self._quiet,  # -q: no "waiting for process N" note
            )
        return self._storage

    def _resolved_path(self) -> str | Path:
        """The database this workspace uses (opened or not); raises if none can be named."""
        from mixpanel_data._internal.storage.engine import resolve_db_path
        from mixpanel_data.exceptions import MixpanelDataError

        project_id = self._credentials.project_id if self._credentials else None
        if project_id is None and self._path is None and not os.environ.get("MP_DB_PATH"):
            try:
                project_id = self._config.resolve(None).project_id
            except MixpanelDataError:
                project_id = None
        return resolve_db_path(self._path, project_id=project_id)

    def close(self) -> None:
        """Release the API client and the database; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._api is not None:
            self._api.close()
            self._api = None
        if self._storage is not None:
            self._storage.close()
            if self._ephemeral and self._storage.path is not None:
                import shutil

                shutil.rmtree(self._storage.path.parent, ignore_errors=True)
            self._storage = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        creds = self._credentials
        project = creds.project_id if creds else None
        from mixpanel_data.exceptions import MixpanelDataError

        try:
            path: str | None = (
                self._storage.display_path if self._storage else str(self._resolved_path())
            )
        except MixpanelDataError:
            path = None  # no database can be named yet (no account, no --db)
        return f"Workspace(project_id={project!r}, path={path!r})"

    # -- local data: fetch and stream --------------------------------------------------

    def _fetcher(self, progress: Callable[[FetchProgress], None] | None = None) -> Any:
        import sys

        from mixpanel_data._internal.services.fetch.service import FetcherService

        def notice(text: str) -> None:
            if not self._quiet or text.startswith(("warning:", "note:")):
                print(text, file=sys.stderr)

        return FetcherService(
            self.api,
            self.storage,
            progress=progress,
            timezone=self.credentials.timezone,
            notice=notice,
        )

    def fetch_events(
        self,
        name: str = "events",
        *,
        from_date: str | date,
        to_date: str | date,
        events: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
        append: bool = False,
        replace: bool = False,
        keep_duplicates: bool = False,
        legacy_time: bool = False,
        workers: int | None = None,
        progress: Callable[[FetchProgress], None] | None = None,
        to_parquet: str | Path | None = None,
    ) -> FetchResult:
        """Fetch events (dates inclusive) into a local table, deduplicated and resumable.

        ``legacy_time=True`` is for projects created before 2023, whose export
        times are shifted by the project timezone (contract §3.5). ``to_parquet``
        also writes each fetched day to ``<dir>/<name>/date=YYYY-MM-DD/`` (Parquet),
        replacing that day's partition.

        Example:
            ws.fetch_events("jan", from_date="2024-01-01", to_date="2024-01-31")
        """
        with self.storage.exclusive_fetch():  # a second writer fails at once, naming us
            result: FetchResult = self._fetcher(progress).fetch_events(
                name,
                from_date=from_date,
                to_date=to_date,
                events=events,
                where=where,
                limit=limit,
                append=append,
                replace=replace,
                keep_duplicates=keep_duplicates,
                legacy_time=legacy_time,
                workers=workers,
                to_parquet=to_parquet,
            )
        return result

    def update_events(
        self,
        name: str = "events",
        *,
        lookback_days: int = 5,
        workers: int | None = None,
        progress: Callable[[FetchProgress], None] | None = None,
        to_parquet: str | Path | None = None,
    ) -> FetchResult:
        """Bring an events table up to today: refetch from its last day minus a look-back.

        Late events (up to 5 days, contract §3.5) are merged without duplicates.
        """
        with self.storage.exclusive_fetch():
            result: FetchResult = self._fetcher(progress).fetch_events(
                name,
                update=True,
                lookback_days=lookback_days,
                workers=workers,
                to_parquet=to_parquet,
            )
        return result

    def fetch_profiles(
        self,
        name: str = "profiles",
        *,
        where: str | None = None,
        cohort_id: int | str | None = None,
        output_properties: Sequence[str] | None = None,
        distinct_ids: Sequence[str] | None = None,
        group_id: str | None = None,
        behaviors: str | Sequence[Any] | None = None,
        as_of_timestamp: int | None = None,
        include_all_users: bool | None = None,
        append: bool = False,
        replace: bool = False,
        progress: Callable[[FetchProgress], None] | None = None,
    ) -> FetchResult:
        """Fetch user (or group) profiles into a local table, upserting on distinct_id."""
        with self.storage.exclusive_fetch():
            result: FetchResult = self._fetcher(progress).fetch_profiles(
                name,
                where=where,
                cohort_id=cohort_id,
                output_properties=output_properties,
                distinct_ids=distinct_ids,
                group_id=group_id,
                behaviors=behaviors,
                as_of_timestamp=as_of_timestamp,
                include_all_users=include_all_users,
                append=append,
                replace=replace,
            )
        return result

    def stream_events(
        self,
        *,
        from_date: str | date,
        to_date: str | date,
        events: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
        raw: bool = False,
        legacy_time: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Iterate over exported events in constant memory, without storing them.

        Rows have the events table's columns; ``raw=True`` yields the API's records.
        """
        stream: Iterator[dict[str, Any]] = self._fetcher().stream_events(
            from_date=from_date,
            to_date=to_date,
            events=events,
            where=where,
            limit=limit,
            raw=raw,
            legacy_time=legacy_time,
        )
        return stream

    def stream_export_lines(
        self,
        *,
        from_date: str | date,
        to_date: str | date,
        events: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
    ) -> Iterator[bytes]:
        """Iterate over the export's JSONL lines exactly as Mixpanel sends them (bytes)."""
        lines: Iterator[bytes] = self._fetcher().iter_export_lines(
            from_date=from_date, to_date=to_date, events=events, where=where, limit=limit
        )
        return lines

    def stream_profiles(self, *, raw: bool = False, **filters: Any) -> Iterator[dict[str, Any]]:
        """Iterate over profiles (same filters as `fetch_profiles`) without storing them."""
        stream: Iterator[dict[str, Any]] = self._fetcher().stream_profiles(raw=raw, **filters)
        return stream

    # -- credentials -------------------------------------------------------------------

    def test_credentials(self) -> dict[str, Any]:
        """Check the credentials with Mixpanel and describe the project (and data view).

        Raises AuthenticationError when the account cannot see the project or the
        configured data view (``workspace_id``).
        """
        from mixpanel_data._internal.services.credentials_check import check_credentials

        return check_credentials(self.api)

    # -- discovery (DiscoveryService; cached for the life of the Workspace) -------------

    _discovery_service: DiscoveryService | None = None
    _live_service: LiveQueryService | None = None

    @property
    def _discovery(self) -> DiscoveryService:
        if self._discovery_service is None:
            with _LAZY_LOCK:
                if self._discovery_service is None:
                    self._discovery_service = DiscoveryService(self.api)
        return self._discovery_service

    @property
    def _live(self) -> LiveQueryService:
        if self._live_service is None:
            with _LAZY_LOCK:
                if self._live_service is None:
                    self._live_service = LiveQueryService(self.api, discovery=self._discovery)
        return self._live_service

    events = _via("_discovery", DiscoveryService.events)
    properties = _via("_discovery", DiscoveryService.properties)
    property_values = _via("_discovery", DiscoveryService.property_values)
    funnels = _via("_discovery", DiscoveryService.funnels)
    cohorts = _via("_discovery", DiscoveryService.cohorts)
    top_events = _via("_discovery", DiscoveryService.top_events)
    bookmarks = _via("_discovery", DiscoveryService.bookmarks)

    def clear_discovery_cache(self) -> None:
        """Forget cached discovery answers so the next call asks Mixpanel again."""
        if self._discovery_service is not None:
            self._discovery_service.clear_cache()

    # -- live queries: Mixpanel computes them; each is one of the 60 hourly queries -------

    @property
    def live(self) -> LiveQueryService:
        """The live reports (also on the Workspace itself: ``ws.funnel`` is ``ws.live.funnel``)."""
        return self._live

    run = _via("_live", LiveQueryService.run)  # a query spec: ws.run(FunnelQuery(...))
    segmentation = _via("_live", LiveQueryService.segmentation)
    segmentation_numeric = _via("_live", LiveQueryService.segmentation_numeric)
    segmentation_sum = _via("_live", LiveQueryService.segmentation_sum)
    segmentation_average = _via("_live", LiveQueryService.segmentation_average)
    funnel = _via("_live", LiveQueryService.funnel)
    retention = _via("_live", LiveQueryService.retention)
    frequency = _via("_live", LiveQueryService.frequency)
    event_counts = _via("_live", LiveQueryService.event_counts)
    property_counts = _via("_live", LiveQueryService.property_counts)
    activity_feed = _via("_live", LiveQueryService.activity_feed)
    saved_report = _via("_live", LiveQueryService.saved_report)
    flows = _via("_live", LiveQueryService.flows)
    jql = _via("_live", LiveQueryService.jql)

    @property
    def local(self) -> LocalQueryService:
        """``ws.live``'s reports computed from the fetched ``events`` table (``.using(name)``)."""
        from mixpanel_data._internal.services.local.reports import LocalQueryService

        zone = self._credentials.timezone if self._credentials else os.environ.get("MP_TIMEZONE")
        live = self._live if self._credentials else None
        return LocalQueryService(self.storage, timezone=zone or None, live=live)

    @property
    def _sql(self) -> SQLService:
        return SQLService(self.storage)

    @property
    def _introspection(self) -> IntrospectionService:
        creds = self._credentials
        return IntrospectionService(self.storage, project_id=creds.project_id if creds else None)

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Run SQL on the local database and return a DataFrame.

        Bind values with ``?`` and a list, or ``$name`` and a dict; never format them in.

        Example:
            ws.sql("SELECT count(*) AS n FROM events WHERE event_name = ?", ["Login"])
        """
        return self._sql.df(query, params)

    def sql_sandboxed(
        self, query: str, *, limits: SandboxLimits | None = None, max_rows: int | None = None
    ) -> SandboxResult:
        """Run untrusted SQL (an agent's): one SELECT, read-only, no files, capped.

        The connection is locked down by DuckDB itself (see ``SandboxLimits``); the MCP
        server's SQL tools use this.
        """
        from mixpanel_data._internal.services.sandbox import SQLSandbox

        path = self.storage.path
        if path is None:
            raise StorageError(
                "the SQL sandbox needs a database file, not :memory:; set MP_DB_PATH or --db"
            )
        return SQLSandbox(path, limits=limits).run(query, max_rows=max_rows)

    sql_scalar = _via("_sql", SQLService.scalar)

    sql_rows = _via("_sql", SQLService.rows)

    sql_arrow = _via("_frames", FrameService.arrow)  # pyarrow.Table straight from DuckDB
    sql_polars = _via("_frames", FrameService.polars)  # needs the polars extra

    @property
    def _frames(self) -> FrameService:
        return FrameService(self.storage)

    @staticmethod
    def notebook_progress(*, label: str | None = None) -> NotebookProgress:
        """A ``progress=`` callback that redraws one line in Jupyter (no-op elsewhere).

        Example:
            ws.fetch_events(from_date=..., to_date=..., progress=ws.notebook_progress())
        """
        from mixpanel_data._internal.results.notebook import NotebookProgress

        return NotebookProgress(label=label)

    # -- the local database: tables, schemas, statistics ----------------------------------

    info = _via("_introspection", IntrospectionService.info)
    tables = _via("_introspection", IntrospectionService.tables)
    table_schema = _via("_introspection", IntrospectionService.table_schema)
    sample = _via("_introspection", IntrospectionService.sample)
    summarize = _via("_introspection", IntrospectionService.summarize)
    event_breakdown = _via("_introspection", IntrospectionService.event_breakdown)
    property_keys = _via("_introspection", IntrospectionService.property_keys)
    column_stats = _via("_introspection", IntrospectionService.column_stats)
    drop = _via("_introspection", IntrospectionService.drop)
    drop_all = _via("_introspection", IntrospectionService.drop_all)

    # -- the Parquet lake --------------------------------------------------------------

    def export_parquet(
        self, table: str, directory: str | Path, *, partition_by: str = "day"
    ) -> ParquetExport:
        """Write a table as Hive-partitioned zstd Parquet under ``directory/<table>/``.

        Events go to one folder per UTC day (``date=YYYY-MM-DD``) or month
        (``month=YYYY-MM``) of ``event_time``; profiles to one unpartitioned file.
        Each partition written replaces that partition's older files, so re-running
        never duplicates rows; partitions the table does not have are left alone.

        Example:
            ws.export_parquet("events", "lake/")   # lake/events/date=2024-01-31/data_0.parquet
        """
        return self._export(table, directory, partition_by=partition_by, file_format="parquet")

    def export_csv(
        self, table: str, directory: str | Path, *, partition_by: str = "day"
    ) -> ParquetExport:
        """Like ``export_parquet``, as CSV with a header row (``.../data_0.csv``): for
        spreadsheets and tools without Parquet; JSON columns are text, times UTC."""
        return self._export(table, directory, partition_by=partition_by, file_format="csv")

    def _export(self, table: str, directory: str | Path, **how: str) -> ParquetExport:
        from mixpanel_data._internal.storage.lake import export_table

        with self.storage.exclusive_fetch(action=f"export table '{table}'"):
            return export_table(self.storage, table, directory, **how)


def _budgets(given: Mapping[str, BudgetSpec | str]) -> dict[str, BudgetSpec]:
    """Budgets per API family; a string is a spec such as ``off`` or ``60/3600``."""
    from mixpanel_data._internal.http.rate_limit import parse_budget_spec

    return {k: parse_budget_spec(v) if isinstance(v, str) else v for k, v in given.items()}


def budgets_from_env(environ: Mapping[str, str] | None = None) -> dict[str, BudgetSpec]:
    """Read ``MP_RATE_LIMIT_EXPORT`` / ``MP_RATE_LIMIT_QUERY`` overrides (e.g. ``off``)."""
    from mixpanel_data._internal.http.rate_limit import parse_budget_spec

    env = os.environ if environ is None else environ
    out: dict[str, BudgetSpec] = {}
    for family in ("export", "query", "app"):
        raw = env.get(f"MP_RATE_LIMIT_{family.upper()}")
        if raw:
            out[family] = parse_budget_spec(raw)
    return out
