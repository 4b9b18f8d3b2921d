"""The MCP server behind `mp mcp`: Workspace calls as tools an AI agent can use.

Each tool is a thin call to the Workspace method a Python user would call, then
a compact answer from ``payloads.py``. Agent SQL goes through ``Workspace.sql_sandboxed``
instead of ``ws.sql`` (read-only, no files, limits). Errors come back as tool
errors carrying the library's one-line message: never a traceback, never a
secret (the SDK logs unexpected tracebacks to the server's stderr only).

The Workspace is built on the first tool call, from the same account
resolution as `mp` (``--account``, ``MP_*`` variables, the config file). Without
credentials the local tools still work; the Mixpanel tools say how to configure.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec

import orjson
from pydantic import Field

from mixpanel_data._version import __version__
from mixpanel_data.exceptions import (
    ConfigError,
    MixpanelDataError,
    StorageError,
    ValidationError,
)
from mixpanel_data.mcp.payloads import (
    MAX_BYTES,
    cap_bytes,
    dumps,
    records_table,
    result_payload,
    table,
)
from mixpanel_data.types import (
    EventCountsQuery,
    FunnelQuery,
    PropertyCountsQuery,
    RetentionQuery,
    SandboxLimits,
    SegmentationQuery,
)

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import CallToolResult

    from mixpanel_data.types import SandboxLimits
    from mixpanel_data.workspace import Workspace

__all__ = ["INSTRUCTIONS", "MixpanelTools", "build_server"]

logger = logging.getLogger(__name__)
P = ParamSpec("P")

INSTRUCTIONS = """\
Mixpanel data for this project, two ways:
1. Local SQL (DuckDB): list_tables, describe_table, then run_sql. If the table you need is
   missing, load it with fetch_events (a date range) or fetch_profiles. Events tables have
   event_name, event_time (TIMESTAMPTZ, UTC), distinct_id, insert_id and properties (JSON:
   read a property with properties->>'$.name'). run_sql runs one read-only SELECT with a row
   cap and a time limit; aggregate in SQL rather than reading raw rows.
2. Live Mixpanel reports: segmentation, funnel, retention, event_counts, property_counts,
   after discovery with list_events, list_properties, list_property_values, list_funnels
   and list_cohorts. Each live call uses Mixpanel's query budget (60 per hour); pass
   local=true to compute the same report from the fetched events table (same numbers, no
   budget: prefer it when the range is fetched; it names the days that are not).
Dates are YYYY-MM-DD and inclusive, in the project's timezone: project_time tells today's
date there and which days each local table covers. Answers show counts first, at most
max_rows rows and a bounded number of bytes (a cut answer says so in byte_cap).
"""

DateArg = Annotated[str, Field(description="YYYY-MM-DD, inclusive")]
MaxRows = Annotated[int, Field(ge=1, le=1000, description="rows to return (the rest are counted)")]
Unit = Literal["minute", "hour", "day", "week", "month"]
LocalArg = Annotated[
    bool, Field(description="compute from the fetched events table: no query budget spent")
]


class MixpanelTools:
    """The tool bodies, over one lazily built Workspace and one SQL sandbox.

    Tests and embedders may pass a ``workspace_factory``; `mp mcp` passes the
    CLI's own (so ``--account`` and ``--db`` apply).
    """

    def __init__(
        self,
        *,
        workspace_factory: Callable[[], Workspace],
        local_factory: Callable[[], Workspace] | None = None,
        limits: SandboxLimits | None = None,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        from mixpanel_data.types import SandboxLimits

        self._workspace_factory = workspace_factory
        self._local_factory = local_factory
        self.limits = limits or SandboxLimits()
        self.max_bytes = max_bytes
        self._ws: Workspace | None = None
        self._credentials_error: ConfigError | None = None
        self._init_lock = threading.Lock()
        # DuckDB refuses two in-process connections to one file with different
        # settings, and the sandbox's are locked down; so database work is serial.
        self._db_lock = threading.Lock()

    def _answer(self, payload: dict[str, Any]) -> str:
        """The answer as compact JSON, cut to ``max_bytes`` (saying so) when longer."""
        return dumps(cap_bytes(payload, max_bytes=self.max_bytes))

    # -- the workspace -------------------------------------------------------------

    def workspace(self, *, credentials: bool = False) -> Workspace:
        """The Workspace; with ``credentials=True``, fail if no account is configured."""
        with self._init_lock:
            if self._ws is None:
                try:
                    self._ws = self._workspace_factory()
                except ConfigError as exc:
                    if self._local_factory is None:
                        raise
                    self._credentials_error = exc
                    self._ws = self._local_factory()
        if credentials and self._credentials_error is not None:
            raise self._credentials_error
        return self._ws

    def close(self) -> None:
        """Close the Workspace (the API client and the database)."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    @contextlib.contextmanager
    def _db(self) -> Iterator[None]:
        """Hold the database for one tool call (a fetch holds it for its whole run)."""
        if not self._db_lock.acquire(timeout=max(30.0, self.limits.timeout * 3)):
            raise StorageError("the database is busy with another tool call (a fetch?); retry")
        try:
            yield
        finally:
            self._db_lock.release()

    # -- local database ------------------------------------------------------------

    def list_tables(self) -> str:
        """List the local tables: name, kind (events/profiles/other), rows, fetch state."""
        with self._db():
            tables = self.workspace().tables()
        if not tables:
            return self._answer(
                {
                    "tables": [],
                    "note": "the local database has no tables yet; load data with fetch_events",
                }
            )
        return self._answer({"tables": [t.to_dict() for t in tables]})

    def describe_table(
        self,
        name: Annotated[str, Field(description="a table from list_tables")],
        sample_rows: Annotated[int, Field(ge=0, le=20, description="example rows")] = 3,
    ) -> str:
        """Show a local table's columns and row count, with a few example rows."""
        with self._db():
            schema = self.workspace().table_schema(name)
            out = schema.to_dict()
            if sample_rows:
                # The name comes from the database itself and is always quoted.
                result = self.workspace().sql_sandboxed(
                    f"SELECT * FROM {_quote(schema.name)} LIMIT {int(sample_rows)}",  # noqa: S608
                    limits=self.limits,
                    max_rows=sample_rows,
                )
                out["sample"] = table(result.columns, result.rows, max_rows=sample_rows)
        return self._answer(out)

    def run_sql(
        self,
        query: Annotated[str, Field(description="one read-only DuckDB SELECT statement")],
        max_rows: MaxRows | None = None,
    ) -> str:
        """Run one read-only SELECT on the local DuckDB database.

        No files, extensions or changes; a row cap and a time limit apply.
        """
        cap = max_rows or self.limits.max_rows
        with self._db():
            result = self.workspace().sql_sandboxed(query, limits=self.limits, max_rows=cap)
        out = table(result.columns, result.rows, total_rows=result.total_rows, max_rows=cap)
        out["types"] = list(result.types)
        out["elapsed_ms"] = result.elapsed_ms
        return self._answer(out)

    def fetch_events(
        self,
        from_date: DateArg,
        to_date: DateArg,
        table: Annotated[str, Field(description="local table name")] = "events",
        events: Annotated[list[str] | None, Field(description="only these event names")] = None,
        where: Annotated[str | None, Field(description="Mixpanel expression filter")] = None,
        mode: Annotated[
            Literal["create", "append", "replace"],
            Field(description="create fails if the table exists"),
        ] = "create",
    ) -> str:
        """Download events from Mixpanel's Export API into a local table."""
        ws = self.workspace(credentials=True)
        with self._db():
            result = ws.fetch_events(
                table,
                from_date=from_date,
                to_date=to_date,
                events=events or None,
                where=where,
                append=mode == "append",
                replace=mode == "replace",
            )
        return self._answer(result.to_dict())

    def fetch_profiles(
        self,
        table: Annotated[str, Field(description="local table name")] = "profiles",
        where: Annotated[str | None, Field(description="Mixpanel expression filter")] = None,
        cohort_id: Annotated[int | None, Field(description="only this cohort's members")] = None,
        mode: Annotated[
            Literal["create", "append", "replace"],
            Field(description="create fails if the table exists"),
        ] = "create",
    ) -> str:
        """Download user profiles from Mixpanel's Engage API into a local table."""
        ws = self.workspace(credentials=True)
        with self._db():
            result = ws.fetch_profiles(
                table,
                where=where,
                cohort_id=cohort_id,
                append=mode == "append",
                replace=mode == "replace",
            )
        return self._answer(result.to_dict())

    def project_time(self) -> str:
        """Tell the project's timezone, today's date there, and which days each table covers.

        Mixpanel reports count days in the project's timezone; pick from_date/to_date from
        this rather than from your own clock.
        """
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        ws = self.workspace()
        timezone, source = None, "unknown"
        if self._credentials_error is None:
            timezone = ws.credentials.timezone
            source = "config"
            if timezone is None:
                timezone = ws.test_credentials().get("timezone")  # /api/app/me: no query budget
                source = "mixpanel"
        now = datetime.now(tz=UTC)
        try:
            zone = ZoneInfo(timezone) if timezone else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        out: dict[str, Any] = {
            "timezone": timezone,
            "timezone_source": source,
            "now_utc": now.isoformat(timespec="seconds"),
            "today": now.astimezone(zone).date().isoformat() if zone else None,
        }
        if zone is None:
            out["note"] = "the project's timezone is unknown; configure an account to learn it"
        with self._db():
            tables = ws.tables()
            covered = []
            for info in tables:
                entry: dict[str, Any] = {
                    "name": info.name,
                    "kind": info.kind,
                    "rows": info.row_count,
                }
                args = info.fetch_args
                if args.get("from_date") and args.get("to_date"):
                    entry["fetched_from_date"] = args["from_date"]  # export days (UTC, §3.5)
                    entry["fetched_to_date"] = args["to_date"]
                if info.kind == "events" and info.row_count:
                    result = ws.sql_sandboxed(
                        f"SELECT min(event_time), max(event_time) FROM {_quote(info.name)}",  # noqa: S608
                        limits=self.limits,
                        max_rows=1,
                    )
                    first, last = result.rows[0]
                    if isinstance(first, datetime) and isinstance(last, datetime):
                        local = zone or UTC
                        entry["first_day"] = first.astimezone(local).date().isoformat()
                        entry["last_day"] = last.astimezone(local).date().isoformat()
                        entry["days_in"] = "project timezone" if zone else "UTC"
                covered.append(entry)
        out["tables"] = covered
        return self._answer(out)

    # -- discovery (live) ----------------------------------------------------------

    def list_events(self) -> str:
        """List the project's event names (from Mixpanel)."""
        names = list(self.workspace(credentials=True).events())
        return self._answer({"count": len(names), "events": names})

    def list_properties(
        self, event: Annotated[str, Field(description="an event name from list_events")]
    ) -> str:
        """List the property names Mixpanel has seen on one event."""
        names = list(self.workspace(credentials=True).properties(event))
        return self._answer({"event": event, "count": len(names), "properties": names})

    def list_property_values(
        self,
        property: Annotated[str, Field(description="a property name")],
        event: Annotated[str | None, Field(description="limit to this event")] = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> str:
        """List sample values of a property (most common first, per Mixpanel)."""
        values = list(
            self.workspace(credentials=True).property_values(property, event=event, limit=limit)
        )
        return self._answer(
            {"property": property, "event": event, "count": len(values), "values": values}
        )

    def list_funnels(self) -> str:
        """List the project's saved funnels (ids for the funnel tool)."""
        funnels = self.workspace(credentials=True).funnels()
        return self._answer(
            records_table([f.to_dict() for f in funnels], max_rows=self.limits.max_rows)
        )

    def list_cohorts(self) -> str:
        """List the project's saved cohorts (ids for fetch_profiles' cohort_id)."""
        cohorts = self.workspace(credentials=True).cohorts()
        return self._answer(
            records_table([c.to_dict() for c in cohorts], max_rows=self.limits.max_rows)
        )

    # -- live reports --------------------------------------------------------------

    def _reports(self, local: bool) -> Any:
        """The Workspace's live reports, or with ``local`` the same over the events table."""
        ws = self.workspace(credentials=True)
        return ws.local if local else ws

    def segmentation(
        self,
        event: Annotated[str, Field(description="event name")],
        from_date: DateArg,
        to_date: DateArg,
        on: Annotated[str | None, Field(description="property name or expression")] = None,
        where: Annotated[str | None, Field(description="Mixpanel expression filter")] = None,
        unit: Literal["minute", "hour", "day", "month"] | None = None,
        type: Annotated[
            Literal["general", "unique", "average"],
            Field(description="general=events, unique=users, average=events per user"),
        ] = "general",
        local: LocalArg = False,
        max_rows: MaxRows | None = None,
    ) -> str:
        """Count an event over time (optionally per property value) with Mixpanel."""
        spec = SegmentationQuery(
            event, from_date=from_date, to_date=to_date, on=on, where=where, unit=unit, type=type
        )
        result = self._reports(local).run(spec)
        return self._answer(result_payload(result, max_rows=max_rows or self.limits.max_rows))

    def funnel(
        self,
        from_date: DateArg,
        to_date: DateArg,
        funnel_id: Annotated[
            int | None, Field(description="a saved funnel id from list_funnels")
        ] = None,
        on: Annotated[str | None, Field(description="property name or expression")] = None,
        where: Annotated[str | None, Field(description="Mixpanel expression filter")] = None,
        local: LocalArg = False,
        steps: Annotated[
            list[str] | None, Field(description="with local: an ad-hoc funnel's steps")
        ] = None,
        length_days: Annotated[
            int | None,
            Field(ge=1, le=90, description="conversion window in days (default: the saved one)"),
        ] = None,
        max_rows: MaxRows | None = None,
    ) -> str:
        """Compute a saved funnel's step counts and conversion with Mixpanel."""
        if funnel_id is None and not (local and steps):
            raise ValidationError("give funnel_id, or local=true with steps")
        spec = FunnelQuery(
            funnel_id,
            from_date=from_date,
            to_date=to_date,
            on=on,
            where=where,
            steps=steps,
            length=length_days,
            length_unit=None if length_days is None else "day",
        )
        result = self._reports(local).run(spec)
        return self._answer(result_payload(result, max_rows=max_rows or self.limits.max_rows))

    def retention(
        self,
        born_event: Annotated[str, Field(description="the event that puts a user in a cohort")],
        from_date: DateArg,
        to_date: DateArg,
        event: Annotated[str | None, Field(description="return event (default any)")] = None,
        retention_type: Literal["birth", "compounded"] = "birth",
        unit: Literal["day", "week", "month"] | None = None,
        interval_count: Annotated[int, Field(ge=1, le=90)] = 7,
        local: LocalArg = False,
        max_rows: MaxRows | None = None,
    ) -> str:
        """Compute cohort retention (users who came back, per period) with Mixpanel."""
        spec = RetentionQuery(
            born_event=born_event,
            event=event,
            from_date=from_date,
            to_date=to_date,
            retention_type=retention_type,
            unit=unit,
            interval_count=interval_count,
        )
        result = self._reports(local).run(spec)
        return self._answer(result_payload(result, max_rows=max_rows or self.limits.max_rows))

    def event_counts(
        self,
        events: Annotated[list[str], Field(min_length=1, description="event names")],
        from_date: DateArg,
        to_date: DateArg,
        type: Literal["general", "unique", "average"] = "general",
        unit: Unit = "day",
        local: LocalArg = False,
        max_rows: MaxRows | None = None,
    ) -> str:
        """Count several events side by side over time with Mixpanel."""
        spec = EventCountsQuery(events, from_date=from_date, to_date=to_date, type=type, unit=unit)
        result = self._reports(local).run(spec)
        return self._answer(result_payload(result, max_rows=max_rows or self.limits.max_rows))

    def property_counts(
        self,
        event: Annotated[str, Field(description="event name")],
        property: Annotated[str, Field(description="property name")],
        from_date: DateArg,
        to_date: DateArg,
        type: Literal["general", "unique", "average"] = "general",
        unit: Unit = "day",
        limit: Annotated[int | None, Field(ge=1, le=10000, description="top values")] = None,
        local: LocalArg = False,
        max_rows: MaxRows | None = None,
    ) -> str:
        """Count an event per value of one property over time with Mixpanel."""
        spec = PropertyCountsQuery(
            event, property, from_date=from_date, to_date=to_date, type=type, unit=unit, limit=limit
        )
        result = self._reports(local).run(spec)
        return self._answer(result_payload(result, max_rows=max_rows or self.limits.max_rows))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# (tool name, reads only, reaches Mixpanel): the order is the order agents see.
_TOOLS: tuple[tuple[str, bool, bool], ...] = (
    ("project_time", True, True),  # asks /api/app/me only when no timezone is configured
    ("list_tables", True, False),
    ("describe_table", True, False),
    ("run_sql", True, False),
    ("fetch_events", False, True),
    ("fetch_profiles", False, True),
    ("list_events", True, True),
    ("list_properties", True, True),
    ("list_property_values", True, True),
    ("list_funnels", True, True),
    ("list_cohorts", True, True),
    ("segmentation", True, True),
    ("funnel", True, True),
    ("retention", True, True),
    ("event_counts", True, True),
    ("property_counts", True, True),
)

# The library's messages name `mp` flags or Python keywords; an agent calls tool arguments.
_ARGUMENT_NAMES = (
    (re.compile(r"(?<![\w-])--from( date)?(?![\w-])"), "from_date"),
    (re.compile(r"(?<![\w-])--to( date)?(?![\w-])"), "to_date"),
    (re.compile(r"(?<![\w-])(--append|append=True)(?![\w-])"), 'mode="append"'),
    (re.compile(r"(?<![\w-])(--replace|replace=True)(?![\w-])"), 'mode="replace"'),
    (re.compile(r"(?<![\w-])--(limit|event|where|cohort)(?![\w-])"), r"\1"),
)


def _tool_message(text: str) -> str:
    """A library message in the tool's own argument names (``from_date``, not ``--from``)."""
    for pattern, name in _ARGUMENT_NAMES:
        text = pattern.sub(name, text)
    return text


def _as_tool_errors(fn: Callable[P, str]) -> Callable[P, CallToolResult]:
    """Answer with the compact JSON text and the same data as structuredContent; turn the
    library's errors into MCP tool errors with its one-line message."""
    import inspect

    import orjson
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent

    @functools.wraps(fn)
    def tool(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            text = fn(*args, **kwargs)
        except MixpanelDataError as exc:
            raise ToolError(f"{type(exc).__name__}: {_tool_message(exc.message)}") from None
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=orjson.loads(text)
        )

    # outputSchema: a JSON object (every answer is one); the SDK reads the signature.
    tool.__signature__ = inspect.signature(fn, eval_str=True).replace(  # type: ignore[attr-defined]
        return_annotation=dict[str, Any]
    )
    return tool


def _one_line_arguments_error(name: str, exc: Exception) -> Exception:
    """Pydantic's multi-line argument report as one line an agent can act on."""
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError as ArgumentsError

    cause = exc.__cause__
    if not isinstance(exc, ToolError) or not isinstance(cause, ArgumentsError):
        return exc
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in cause.errors()
    )
    return ToolError(f"Error executing tool {name}: ValidationError: invalid arguments: {problems}")


def build_server(tools: MixpanelTools) -> MCPServer[Any]:
    """Register every tool of ``tools`` on a new MCP server (serve it with ``.run()``)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    class Server(MCPServer[Any]):
        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except Exception as exc:
                error = _one_line_arguments_error(name, exc)
                if error is exc:
                    raise
                raise error from None

    server: MCPServer[Any] = Server(
        name="mixpanel_data",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    for name, read_only, open_world in _TOOLS:
        hints = ToolAnnotations(read_only_hint=read_only, open_world_hint=open_world)
        if not read_only:  # fetches: mode="replace" rebuilds a table; a rerun adds no rows
            hints = ToolAnnotations(
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=False,
                open_world_hint=open_world,
            )
        server.add_tool(
            _as_tool_errors(getattr(tools, name)),
            name=name,
            annotations=hints,
            structured_output=True,
        )
    return server


def serve_stdio(tools: MixpanelTools) -> None:
    """Serve the tools over stdin/stdout until the client closes the connection."""
    from mixpanel_data.mcp import fast_start

    try:
        early = fast_start.active()
        if early is None:
            build_server(tools).run("stdio")
        else:
            import anyio

            anyio.run(_serve_after_handshake, build_server(tools), early)
    finally:
        tools.close()


class _Lines:
    """stdin for the SDK: what the early reader answered, then every later line."""

    def __init__(self, replay: list[bytes], lines: queue.Queue[bytes | None]) -> None:
        self._replay = list(replay)
        self._lines = lines

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        import anyio.to_thread

        if self._replay:
            return self._replay.pop(0).decode("utf-8", errors="replace")
        line = await anyio.to_thread.run_sync(self._lines.get, abandon_on_cancel=True)
        if line is None:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Wire:
    """stdout for the SDK: drops its answer to the replayed ``initialize``."""

    def __init__(self, early: Any) -> None:
        self._early = early
        self._drop = early.answered_id

    async def write(self, text: str) -> None:
        if self._drop is not None:
            message = orjson.loads(text)
            if message.get("id") == self._drop and ("result" in message or "error" in message):
                self._drop = None
                return
        with self._early.out_lock:
            self._early.out.write(text.encode())

    async def flush(self) -> None:
        with self._early.out_lock:
            self._early.out.flush()


async def _serve_after_handshake(server: MCPServer[Any], early: Any) -> None:
    from mcp.server.stdio import stdio_server

    lines = early.take_over()
    async with stdio_server(
        stdin=_Lines(early.replay, lines),  # type: ignore[arg-type]
        stdout=_Wire(early),  # type: ignore[arg-type]
    ) as (read, write):
        low = server._lowlevel_server  # what MCPServer.run_stdio_async runs, on our streams
        await low.run(read, write, low.create_initialization_options())
