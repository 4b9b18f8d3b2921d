"""Typed query specs: each report's parameters described once.

A spec is a frozen dataclass holding one report's parameters: their names, defaults,
checks (run at construction, before any query is spent) and help text. The live client
(``LiveQueryService``), the local engine (``LocalQueryService``), the Workspace, `mp query`
and the MCP tools all take or derive from them:

- ``@takes(SegmentationQuery)`` turns ``def segmentation(self, q)`` into a method with the
  spec's own signature (``ws.segmentation("Login", from_date=..., to_date=...)``);
- ``ws.run(spec)`` / ``ws.local.run(spec)`` run a spec built beforehand;
- the CLI builds each `mp query` command's options from the fields' ``metadata``
  (``cli/commands/query.py``), and a test holds the MCP tools to the same fields.

A check that only one engine needs (``interval`` is live only, ad-hoc ``steps`` local
only, /segmentation's missing week) stays in that engine.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from datetime import date
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, cast

from mixpanel_data._internal.results.live import (
    EventCountsResult,
    FrequencyResult,
    NumericAggregateResult,
    PropertyCountsResult,
    SegmentationResult,
)
from mixpanel_data._internal.results.reports import FunnelResult, RetentionResult
from mixpanel_data._internal.services.params import (
    DAY_WEEK_MONTH,
    HOUR_DAY,
    LENGTH_UNITS,
    MAX_LIMIT,
    RETENTION_TYPES,
    SEGMENTATION_ONLY_UNITS,
    SEGMENTATION_UNITS,
    TYPES,
    check_choice,
    check_name,
    check_positive,
    check_range,
    to_expression,
)
from mixpanel_data.exceptions import ValidationError

__all__ = [
    "SPECS",
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
    "help_of",
    "takes",
]

R = TypeVar("R")
S = TypeVar("S")
P = ParamSpec("P")
MAX_WINDOW_SECONDS = 90 * 86400  # "the conversion window may not be greater than 90 days"
LENGTH_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def arg(help: str, *flags: str, cli_help: str | None = None, cli: bool = True) -> dict[str, Any]:
    """A field's description: its help, its `mp` flags (none: a positional argument)."""
    text = cli_help or (help if help.endswith(".") else help + ".")
    return {"help": help, "flags": flags, "cli_help": text, "cli": cli}


def help_of(spec: type[QuerySpec[Any]], name: str) -> str:
    """The help text of one field (MCP descriptions and CLI help read it)."""
    return str(next(f for f in fields(spec) if f.name == name).metadata["help"])


_DATE_HELP = "YYYY-MM-DD, inclusive, in the project's timezone"
_FROM = arg(
    f"first day, {_DATE_HELP}",
    "--from",
    cli_help="First day, YYYY-MM-DD (inclusive; default: 29 days before --to).",
)
_TO = arg(
    f"last day, {_DATE_HELP}",
    "--to",
    cli_help="Last day, YYYY-MM-DD (inclusive; default: today in the project's timezone).",
)
_OPT_FROM = arg(
    f"first day, {_DATE_HELP} (or give interval)",
    "--from",
    cli_help="First day, YYYY-MM-DD (default: 29 days before --to; or --interval).",
)
_OPT_TO = arg(
    f"last day, {_DATE_HELP} (or give interval)",
    "--to",
    cli_help="Last day, YYYY-MM-DD (default: today in project time; or --interval).",
)
_ON = arg(
    "property name or expression to split by",
    "--on",
    cli_help='Split by a property name or an expression (properties["x"]).',
)
_NUMERIC_ON = arg(
    "a numeric property name or expression",
    "--on",
    cli_help="A numeric property name or expression.",
)
_WHERE = arg(
    "Mixpanel expression filter",
    "--where",
    cli_help='Filter expression, e.g. properties["plan"] == "pro".',
)
_TYPE = arg(
    "general=events, unique=users, average=events per user",
    "--type",
    "-t",
    cli_help="general, unique or average.",
)
_LIMIT = arg("top N segments", "--limit", "-l", cli_help="Top N segments.")
_EVENT = arg("event name", cli_help="Event name.")
_HOUR_DAY = arg("hour or day buckets", "--unit", "-u", cli_help="hour or day.")
_UNITS = arg(
    "minute, hour, day, week or month buckets",
    "--unit",
    "-u",
    cli_help="minute, hour, day, week or month.",
)
_SPAN = arg(
    "the last N units up to now, instead of the dates (live only)",
    "--interval",
    cli_help="The last N units up to now, instead of --from/--to.",
)


@dataclass(frozen=True)
class QuerySpec(Generic[R]):
    """One report's parameters, checked; ``R`` is the result type both engines return."""

    report: ClassVar[str]  # the method name on both engines (and the Workspace)
    command: ClassVar[str]  # the `mp query` command
    cli_doc: ClassVar[str]  # the command's help (with an example)

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _dates(self) -> None:
        start, end = check_range(
            cast(Any, self).from_date,
            cast(Any, self).to_date,
        )
        self._set(from_date=start, to_date=end)

    def to_dict(self) -> dict[str, Any]:
        """The checked parameters as JSON-ready data (dates as ``YYYY-MM-DD``)."""
        out: dict[str, Any] = {"report": self.report}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @property
    def start(self) -> date:
        """``from_date`` as a date (checked)."""
        return cast(date, cast(Any, self).from_date)

    @property
    def end(self) -> date:
        """``to_date`` as a date (checked)."""
        return cast(date, cast(Any, self).to_date)


def _limit(value: int | None) -> int | None:
    return check_positive(value, name="limit", maximum=MAX_LIMIT)


@dataclass(frozen=True)
class SegmentationQuery(QuerySpec[SegmentationResult]):
    """Count an event over time, optionally split by a property or expression.

    ``unit`` is minute, hour, day (the default) or month for the live report (Mixpanel's
    /segmentation lists no week); ``interval`` buckets by that many days instead, only
    for ``type`` unique or average, and only live.
    """

    report: ClassVar[str] = "segmentation"
    command: ClassVar[str] = "segmentation"
    cli_doc: ClassVar[str] = (
        "Count an event over time, optionally split by a property.\n\n"
        "Mixpanel's /segmentation has no weekly unit: use `mp query event-counts --unit week`."
        "\n\nExample: mp query segmentation Purchase --from 2024-01-01 --to 2024-01-31 "
        "--on country -f table"
    )
    event: str = field(metadata=_EVENT)
    _: KW_ONLY
    from_date: str | date = field(metadata=_FROM)
    to_date: str | date = field(metadata=_TO)
    on: str | None = field(default=None, metadata=_ON)
    where: str | None = field(default=None, metadata=_WHERE)
    unit: str | None = field(
        default=None,
        metadata=arg(
            "minute, hour, day (default) or month buckets",
            "--unit",
            "-u",
            cli_help="minute, hour, day (default) or month (no week).",
        ),
    )
    type: str = field(default="general", metadata=_TYPE)
    limit: int | None = field(default=None, metadata=_LIMIT)
    interval: int | None = field(
        default=None,
        metadata=arg(
            "days per bucket instead of unit (type unique or average; live only)",
            "--interval",
            cli_help="Days per bucket instead of --unit (type unique or average only).",
        ),
    )

    def __post_init__(self) -> None:
        check_name(self.event, name="event")
        self._dates()
        kind = check_choice(self.type, TYPES, name="type")
        unit = self.unit
        if self.interval is not None:
            if unit is not None:
                raise ValidationError("give either unit or interval for segmentation, not both")
            if kind == "general":
                raise ValidationError(
                    "segmentation's interval (days per bucket) is only for type unique or "
                    "average (Mixpanel's /segmentation spec); use unit for general counts"
                )
            check_positive(self.interval, name="interval")
        elif unit is not None and str(unit).strip().lower() == "week":
            unit = "week"  # the local engine's; the live report refuses it with advice
        elif unit is not None:
            unit = check_choice(unit, SEGMENTATION_ONLY_UNITS, name="unit")
        self._set(type=kind, unit=unit, on=to_expression(self.on), limit=_limit(self.limit))


@dataclass(frozen=True)
class NumericQuery(QuerySpec[SegmentationResult]):
    """Count an event in numeric buckets of ``on`` (ranges chosen as Mixpanel does)."""

    report: ClassVar[str] = "segmentation_numeric"
    command: ClassVar[str] = "segmentation-numeric"
    cli_doc: ClassVar[str] = (
        'Count an event in numeric buckets of a property (e.g. "10 - 20").\n\n'
        "Example: mp query segmentation-numeric Purchase --from 2024-01-01 --to 2024-01-07 "
        "--on price"
    )
    event: str = field(metadata=_EVENT)
    _: KW_ONLY
    from_date: str | date = field(metadata=_FROM)
    to_date: str | date = field(metadata=_TO)
    on: str = field(metadata=_NUMERIC_ON)
    where: str | None = field(default=None, metadata=_WHERE)
    unit: str = field(default="day", metadata=_HOUR_DAY)
    type: str = field(default="general", metadata=_TYPE)

    def __post_init__(self) -> None:
        check_name(self.event, name="event")
        self._dates()
        expr = to_expression(self.on)
        if expr is None:
            raise ValidationError("segmentation_numeric needs `on`, a numeric property")
        self._set(
            on=expr,
            unit=check_choice(self.unit, HOUR_DAY, name="unit"),
            type=check_choice(self.type, TYPES, name="type"),
        )


@dataclass(frozen=True)
class SumQuery(QuerySpec[NumericAggregateResult]):
    """Sum a numeric expression per bucket (non-numbers count as 0)."""

    aggregate: ClassVar[str] = "sum"
    report: ClassVar[str] = "segmentation_sum"
    command: ClassVar[str] = "segmentation-sum"
    cli_doc: ClassVar[str] = (
        "Sum a numeric property per day (or hour).\n\n"
        "Example: mp query segmentation-sum Purchase --from 2024-01-01 --to 2024-01-31 --on price"
    )
    event: str = field(metadata=_EVENT)
    _: KW_ONLY
    from_date: str | date = field(metadata=_FROM)
    to_date: str | date = field(metadata=_TO)
    on: str = field(metadata=_NUMERIC_ON)
    where: str | None = field(default=None, metadata=_WHERE)
    unit: str = field(default="day", metadata=_HOUR_DAY)

    def __post_init__(self) -> None:
        check_name(self.event, name="event")
        self._dates()
        expr = to_expression(self.on)
        if expr is None:
            raise ValidationError(f"segmentation_{self.aggregate} needs `on`, a numeric property")
        self._set(on=expr, unit=check_choice(self.unit, HOUR_DAY, name="unit"))


@dataclass(frozen=True)
class AverageQuery(SumQuery):
    """Average a numeric expression per bucket."""

    aggregate: ClassVar[str] = "average"
    report: ClassVar[str] = "segmentation_average"
    command: ClassVar[str] = "segmentation-average"
    cli_doc: ClassVar[str] = (
        "Average a numeric property per day (or hour).\n\n"
        "Example: mp query segmentation-average Purchase --from 2024-01-01 --to 2024-01-31 "
        "--on price"
    )


def _span(spec: EventCountsQuery | PropertyCountsQuery) -> None:
    """The spec's two ways to give /events a range: both dates, or ``interval``.

    ``interval`` is the number of units back from now, the current one included
    (openapi/query.openapi.yaml, ``components.parameters.interval``).
    """
    if spec.interval is not None:
        if spec.from_date is not None or spec.to_date is not None:
            raise ValidationError("give either interval or from_date/to_date, not both")
        check_positive(spec.interval, name="interval")
        return
    if spec.from_date is None or spec.to_date is None:
        raise ValidationError("give from_date and to_date, or interval (units back from now)")
    spec._dates()


@dataclass(frozen=True)
class EventCountsQuery(QuerySpec[EventCountsResult]):
    """Count several events over time in one query.

    Give the dates, or ``interval`` (live only): the last N units up to now (then the
    result's dates are its first and last bucket).
    """

    report: ClassVar[str] = "event_counts"
    command: ClassVar[str] = "event-counts"
    cli_doc: ClassVar[str] = (
        "Count several events over time in one query (give --from/--to or --interval).\n\n"
        "Example: mp query event-counts -e Login -e Purchase --from 2024-01-01 --to 2024-01-31"
    )
    events: Sequence[str] = field(
        metadata=arg("event names", "--event", "-e", cli_help="Event name (repeatable).")
    )
    _: KW_ONLY
    from_date: str | date | None = field(default=None, metadata=_OPT_FROM)
    to_date: str | date | None = field(default=None, metadata=_OPT_TO)
    type: str = field(default="general", metadata=_TYPE)
    unit: str = field(default="day", metadata=_UNITS)
    interval: int | None = field(default=None, metadata=_SPAN)

    def __post_init__(self) -> None:
        if isinstance(self.events, str):
            raise ValidationError("events must be a list of event names, e.g. ['Login']")
        names = tuple(check_name(e, name="event") for e in self.events)
        if not names:
            raise ValidationError("give at least one event")
        _span(self)
        kind = check_choice(self.type, TYPES, name="type")
        unit = check_choice(self.unit, SEGMENTATION_UNITS, name="unit")
        if kind == "unique" and unit in ("minute", "hour"):
            raise ValidationError("Mixpanel has no hourly uniques; use unit day, week or month")
        self._set(events=names, type=kind, unit=unit)


@dataclass(frozen=True)
class PropertyCountsQuery(QuerySpec[PropertyCountsResult]):
    """Count one event per value of one property over time (dates, or ``interval``)."""

    report: ClassVar[str] = "property_counts"
    command: ClassVar[str] = "property-counts"
    cli_doc: ClassVar[str] = (
        "Count an event per value of a property over time (give --from/--to or --interval).\n\n"
        "Example: mp query property-counts -e Purchase -p plan --from 2024-01-01 --to 2024-01-31"
    )
    event: str = field(metadata=arg("event name", "--event", "-e", cli_help="Event name."))
    property: str = field(
        metadata=arg("property name", "--property", "-p", cli_help="Property name.")
    )
    _: KW_ONLY
    from_date: str | date | None = field(default=None, metadata=_OPT_FROM)
    to_date: str | date | None = field(default=None, metadata=_OPT_TO)
    type: str = field(default="general", metadata=_TYPE)
    unit: str = field(default="day", metadata=_UNITS)
    values: Sequence[str] | None = field(
        default=None,
        metadata=arg("only these values", "--value", cli_help="Only this value (repeatable)."),
    )
    limit: int | None = field(
        default=None, metadata=arg("top values", "--limit", "-l", cli_help="Top N segments.")
    )
    interval: int | None = field(default=None, metadata=_SPAN)

    def __post_init__(self) -> None:
        check_name(self.event, name="event")
        check_name(self.property, name="property")
        _span(self)
        self._set(
            type=check_choice(self.type, TYPES, name="type"),
            unit=check_choice(self.unit, SEGMENTATION_UNITS, name="unit"),
            values=None if self.values is None else tuple(str(v) for v in self.values),
            limit=_limit(self.limit),
        )


@dataclass(frozen=True)
class FunnelQuery(QuerySpec[FunnelResult]):
    """A funnel: a saved one by id (live or local), or ad hoc from ``steps`` (local only).

    The totals count each user once over the whole range; ``unit`` or ``interval`` also
    returns per-bucket results. ``length``/``length_unit`` override the saved window.
    """

    report: ClassVar[str] = "funnel"
    command: ClassVar[str] = "funnel"
    cli_doc: ClassVar[str] = (
        "Compute a saved funnel; totals count each user once over the range.\n\n"
        "With --local, a saved funnel's steps and window come from its saved definition, "
        "and -s A -s B runs an ad-hoc funnel (the Query API cannot).\n\n"
        "Example: mp query funnel 7509 --from 2024-01-01 --to 2024-01-31 -f table"
    )
    funnel_id: int | None = field(
        default=None,
        metadata=arg(
            "a saved funnel id (list_funnels)",
            cli_help="Saved funnel id (see `mp inspect funnels`).",
        ),
    )
    _: KW_ONLY
    from_date: str | date = field(metadata=_FROM)
    to_date: str | date = field(metadata=_TO)
    length: int | None = field(
        default=None, metadata=arg("conversion window", "--length", cli_help="Conversion window.")
    )
    length_unit: str | None = field(
        default=None,
        metadata=arg("second, minute, hour or day", "--length-unit"),
    )
    interval: int | None = field(
        default=None,
        metadata=arg(
            "days per bucket", "--interval", cli_help="Days per bucket (adds per-bucket rows)."
        ),
    )
    unit: str | None = field(
        default=None,
        metadata=arg("day, week or month buckets", "--unit", "-u"),
    )
    on: str | None = field(default=None, metadata=_ON)
    where: str | None = field(default=None, metadata=_WHERE)
    limit: int | None = field(default=None, metadata=_LIMIT)
    steps: Sequence[str] | None = field(
        default=None,
        metadata=arg(
            "an ad-hoc funnel's steps (local only)",
            "--step",
            "-s",
            cli_help="With --local: an ad-hoc funnel's step (repeatable).",
        ),
    )

    def __post_init__(self) -> None:
        self._dates()
        if self.interval is not None and self.unit is not None:
            raise ValidationError("give either unit or interval for a funnel, not both")
        if self.steps is not None:
            if self.funnel_id is not None:
                raise ValidationError("give a saved funnel's id or steps, not both")
            if isinstance(self.steps, str):
                raise ValidationError("steps must be a list of event names")
            names = tuple(check_name(s, name="step") for s in self.steps)
            if len(names) < 2:
                raise ValidationError(
                    "a funnel needs at least two steps, e.g. -s Login -s Purchase"
                )
            self._set(steps=names)
        elif self.funnel_id is None:
            raise ValidationError("give a saved funnel's id (mp inspect funnels), or its steps")
        else:
            check_positive(self.funnel_id, name="funnel_id")
        length_unit = self.length_unit
        if length_unit is not None:
            length_unit = check_choice(length_unit, tuple(LENGTH_SECONDS), name="length_unit")
        length = check_positive(self.length, name="length")
        if length is not None and length * LENGTH_SECONDS[length_unit or "day"] > (
            MAX_WINDOW_SECONDS
        ):
            raise ValidationError("the conversion window may not be greater than 90 days")
        self._set(
            length_unit=length_unit,
            interval=check_positive(self.interval, name="interval"),
            unit=None
            if self.unit is None
            else check_choice(self.unit, DAY_WEEK_MONTH, name="unit"),
            on=to_expression(self.on),
            limit=_limit(self.limit),
        )


assert tuple(LENGTH_SECONDS) == LENGTH_UNITS


@dataclass(frozen=True)
class RetentionQuery(QuerySpec[RetentionResult]):
    """Birth ("first time") or compounded ("recurring") retention by cohort."""

    report: ClassVar[str] = "retention"
    command: ClassVar[str] = "retention"
    cli_doc: ClassVar[str] = (
        "Compute birth or compounded retention by cohort day.\n\n"
        "Example: mp query retention --born-event Signup -e Login --from 2024-01-01 "
        "--to 2024-01-31"
    )
    _: KW_ONLY
    born_event: str = field(
        metadata=arg(
            "the event that puts a user in a cohort",
            "--born-event",
            cli_help="Event that starts a cohort.",
        )
    )
    from_date: str | date = field(metadata=_FROM)
    to_date: str | date = field(metadata=_TO)
    event: str | None = field(
        default=None,
        metadata=arg(
            "return event (default: any)", "--event", "-e", cli_help="Return event (default: any)."
        ),
    )
    retention_type: str = field(
        default="birth", metadata=arg("birth or compounded", "--retention-type")
    )
    born_where: str | None = field(
        default=None,
        metadata=arg(
            "filter on the born event", "--born-where", cli_help="Filter on the born event."
        ),
    )
    where: str | None = field(default=None, metadata=_WHERE)
    interval: int | None = field(
        default=None,
        metadata=arg(
            "days per bucket (not with unit)",
            "--interval",
            cli_help="Days per bucket (not with --unit).",
        ),
    )
    unit: str | None = field(
        default=None,
        metadata=arg(
            "day, week or month (not with interval)",
            "--unit",
            "-u",
            cli_help="day, week or month (not with --interval).",
        ),
    )
    interval_count: int = field(
        default=1,
        metadata=arg("number of buckets", "--interval-count", cli_help="Number of buckets."),
    )
    unbounded: bool = field(
        default=False,
        metadata=arg(
            "count returns in this bucket or later",
            "--unbounded",
            cli_help="Count returns in this bucket or later.",
        ),
    )
    on: str | None = field(default=None, metadata=_ON)
    limit: int | None = field(default=None, metadata=_LIMIT)

    def __post_init__(self) -> None:
        self._dates()
        if self.interval is not None and self.unit is not None:
            # Contract §10.1: the server answers "unit and interval both specified".
            raise ValidationError(
                "give either unit or interval for retention, not both "
                "(Mixpanel refuses 'unit and interval both specified')"
            )
        self._set(
            born_event=check_name(self.born_event, name="born_event"),
            event=None if self.event is None else check_name(self.event, name="event"),
            retention_type=check_choice(
                self.retention_type, RETENTION_TYPES, name="retention_type"
            ),
            interval=check_positive(self.interval, name="interval", maximum=90),
            unit=None
            if self.unit is None
            else check_choice(self.unit, DAY_WEEK_MONTH, name="unit"),
            interval_count=check_positive(self.interval_count, name="interval_count"),
            unbounded=bool(self.unbounded),
            on=to_expression(self.on),
            limit=_limit(self.limit),
        )


@dataclass(frozen=True)
class FrequencyQuery(QuerySpec[FrequencyResult]):
    """Users by how many ``addiction_unit`` periods of each ``unit`` they were active in."""

    report: ClassVar[str] = "frequency"
    command: ClassVar[str] = "frequency"
    cli_doc: ClassVar[str] = (
        "Count users by how many hours of each day (or days of each week) they were active.\n\n"
        "Example: mp query frequency -e Login --from 2024-01-01 --to 2024-01-07 -f table"
    )
    _: KW_ONLY
    from_date: str | date = field(metadata=_FROM)
    to_date: str | date = field(metadata=_TO)
    unit: str = field(default="day", metadata=arg("day, week or month", "--unit", "-u"))
    addiction_unit: str = field(default="hour", metadata=arg("hour or day", "--addiction-unit"))
    event: str | None = field(
        default=None,
        metadata=arg("event (default: any)", "--event", "-e", cli_help="Event (default: any)."),
    )
    where: str | None = field(default=None, metadata=_WHERE)
    on: str | None = field(default=None, metadata=_ON)
    limit: int | None = field(default=None, metadata=_LIMIT)

    def __post_init__(self) -> None:
        self._dates()
        self._set(
            unit=check_choice(self.unit, DAY_WEEK_MONTH, name="unit"),
            addiction_unit=check_choice(self.addiction_unit, HOUR_DAY, name="addiction_unit"),
            event=None if self.event is None else check_name(self.event, name="event"),
            on=to_expression(self.on),
            limit=_limit(self.limit),
        )


# The order of `mp query`'s report commands.
SPECS: tuple[type[QuerySpec[Any]], ...] = (
    SegmentationQuery,
    NumericQuery,
    SumQuery,
    AverageQuery,
    FunnelQuery,
    RetentionQuery,
    FrequencyQuery,
    EventCountsQuery,
    PropertyCountsQuery,
)


def takes(
    spec: Callable[P, S],
) -> Callable[[Callable[[Any, S], R]], Callable[Concatenate[Any, P], R]]:
    """Give an engine's ``def report(self, q: Spec)`` the spec's own keyword signature.

    The method then builds (and so checks) the spec from its arguments; ``run(spec)``
    reaches the undecorated body through ``.impl``.
    """

    def decorate(body: Callable[[Any, S], R]) -> Callable[Concatenate[Any, P], R]:
        @functools.wraps(body)
        def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with _context(self):
                return body(self, spec(*args, **kwargs))

        own = inspect.signature(cast(Any, spec))
        selfp = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        sig = own.replace(
            parameters=[selfp, *own.parameters.values()],
            return_annotation=inspect.signature(body).return_annotation,
        )
        method.__signature__ = sig  # type: ignore[attr-defined]
        method.impl = body  # type: ignore[attr-defined]
        method.__doc__ = body.__doc__ or cast(Any, spec).__doc__
        return method

    return decorate


def run_spec(engine: Any, spec: QuerySpec[R]) -> R:
    """Run ``spec`` on an engine whose report methods are ``@takes`` methods."""
    if not isinstance(spec, QuerySpec):
        raise ValidationError(
            f"run() takes a query spec such as SegmentationQuery(...), not {type(spec).__name__}"
        )
    method = getattr(type(engine), spec.report)
    with _context(engine):
        return cast(R, method.impl(engine, spec))


def _context(engine: Any) -> contextlib.AbstractContextManager[Any]:
    """An engine's per-query context (the local engine's typed columns), if it has one."""
    query_context = getattr(engine, "query_context", None)
    return query_context() if query_context is not None else contextlib.nullcontext()
