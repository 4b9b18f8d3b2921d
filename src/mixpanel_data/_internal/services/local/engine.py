"""The local engine's plumbing: the events table, its coverage, and SQL over it.

``LocalEngine`` is the base of ``LocalQueryService`` (reports.py) and what the funnel
(cohorts.py), retention and frequency (retention.py) functions read from.
"""

# SQL here is built from compiled expressions, quoted literals and validated names.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from mixpanel_data._internal.services.local.expressions import (
    LocalUnsupportedError,
    filter_sql,
    sql_string,
    typed_columns,
)
from mixpanel_data._internal.storage.days import held_days
from mixpanel_data._internal.storage.meta_tables import column_catalog, quote_ident
from mixpanel_data.exceptions import IncompleteDataError, TableNotFoundError, ValidationError

if TYPE_CHECKING:
    from typing import Self

    from mixpanel_data._internal.services.live_query import LiveQueryService
    from mixpanel_data._internal.storage.engine import StorageEngine

__all__ = ["LocalEngine", "bucket_key", "bucket_series", "bucket_sql", "top_segments"]


def bucket_sql(unit: str, *, day: str, local: str) -> str:
    """An event's bucket as a DATE or TIMESTAMP (formatted by ``bucket_key`` after grouping).

    Days, weeks (from Monday) and months need only the project day; hours and
    minutes the local wall clock.
    """
    if unit in ("minute", "hour"):
        return f"date_trunc('{unit}', {local})"
    if unit in ("week", "month"):
        return f"CAST(date_trunc('{unit}', {day}) AS DATE)"
    return day


def bucket_key(unit: str, value: date | datetime) -> str:
    """The key of a bucket value from ``bucket_sql``, as ``bucket_series`` spells it."""
    if unit == "minute" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:00")
    if unit == "hour" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:00:00")
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def bucket_series(unit: str, first: date, last: date) -> list[str]:
    """Every bucket key of ``unit`` between two local days, in order."""
    if unit in ("minute", "hour"):
        step = timedelta(minutes=1 if unit == "minute" else 60)
        fmt = "%Y-%m-%d %H:%M:00" if unit == "minute" else "%Y-%m-%d %H:00:00"
        t, end = (
            datetime.combine(first, datetime.min.time()),
            datetime.combine(last + timedelta(days=1), datetime.min.time()),
        )
        out = []
        while t < end:
            out.append(t.strftime(fmt))
            t += step
        return out
    if unit == "day":
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    if unit == "week":
        d = first - timedelta(days=first.weekday())
        out = []
        while d <= last:
            out.append(d.isoformat())
            d += timedelta(days=7)
        return out
    d, out = first.replace(day=1), []
    while d <= last:
        out.append(d.isoformat())
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


def top_segments(values: dict[str, dict[str, Any]], limit: int) -> dict[str, dict[str, Any]]:
    """The ``limit`` segments with the largest totals, ties by label."""
    ranked = sorted(values.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return dict(ranked[:limit])


def _day_ranges(days: list[date]) -> str:
    parts: list[str] = []
    start = prev = days[0]
    for d in [*days[1:], None]:
        if d is not None and d == prev + timedelta(days=1):
            prev = d
            continue
        parts.append(start.isoformat() if start == prev else f"{start} to {prev}")
        if d is not None:
            start = prev = d
    return ", ".join(parts)


class _Lazy(Mapping[str, tuple[str, str]]):
    """A mapping read on first use: a report without expressions never reads the catalog."""

    def __init__(self, load: Callable[[], dict[str, tuple[str, str]]]) -> None:
        self._load = load
        self._data: dict[str, tuple[str, str]] | None = None

    def _get(self) -> dict[str, tuple[str, str]]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> tuple[str, str]:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class LocalEngine:
    """An events table in the local database, read in the project's timezone."""

    def __init__(
        self,
        storage: StorageEngine,
        *,
        timezone: str | None,
        table: str = "events",
        live: LiveQueryService | None = None,
    ):
        self._storage = storage
        self._timezone = timezone
        self._table = table
        self._live = live  # reads a saved funnel's definition (bookmarks), nothing else

    def using(self, table: str) -> Self:
        """The same engine over another events table (``--table NAME``)."""
        return type(self)(self._storage, timezone=self._timezone, table=table, live=self._live)

    # -- plumbing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def query_context(self) -> Iterator[None]:
        """One connection for the whole report (every read inside shares it), and its
        expressions compiled over the table's exact typed columns."""
        if not self._storage.exists():
            with typed_columns({}):
                yield
            return
        with self._storage.connection(), typed_columns(_Lazy(self._typed_columns)):
            yield

    def _typed_columns(self) -> dict[str, tuple[str, str]]:
        """``{property: (column, kind)}`` for columns holding every value of their
        property with its JSON type (none unfit): reading them gives the JSON's answer."""
        kinds = {"VARCHAR": "str", "BOOLEAN": "bool", "BIGINT": "num", "DOUBLE": "num"}
        if not self._storage.exists():
            return {}
        with self._storage.connection() as conn:
            catalog = column_catalog(conn, self._table)
        return {
            prop: (column, kinds[kind])
            for prop, column, kind, present, unfit, _nulled in catalog
            if kind in kinds and unfit == 0 and present > 0
        }

    def _tz(self) -> str:
        if not self._timezone:
            raise ValidationError(
                "local reports need the project timezone for their day buckets; "
                "set MP_TIMEZONE or the account's timezone"
            )
        return self._timezone

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        from mixpanel_data._internal.services.sql import translate_duckdb_errors

        with (
            self._storage.connection() as conn,
            translate_duckdb_errors(conn, query, read_only=self._storage.read_only),
        ):
            return conn.execute(query, list(params)).fetchall()

    def _meta_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]] | None:
        """The rows of a catalog or metadata read; None when its table or column is missing."""
        import duckdb

        with self._storage.connection() as conn:
            try:
                return conn.execute(query, list(params)).fetchall()
            except (duckdb.CatalogException, duckdb.BinderException):
                return None

    def _check_coverage(self, first: date, last: date, names: Sequence[str]) -> str:
        """Refuse a range the table does not fully hold, naming the project-time days.

        The fetch records for each export window the project days it kept, so a day
        is covered when every export day it overlaps was fetched for it
        (``storage/days.py``; contract §3.5). Returns the SQL of an event's project
        day: the stored ``event_date`` when the fetch computed it in this timezone
        (``fetch_args.timezone``; UTC when it was unknown), else computed per row.
        """
        table = self._table
        # Read directly (a missing table or column raises): the catalog views cost more.
        columns = self._meta_rows(f"SELECT name FROM pragma_table_info({sql_string(table)})")
        if columns is None:
            raise TableNotFoundError(table)
        windows: list[tuple[date, date, date | None, date | None]] = []
        for days in ("first_day, last_day", "NULL, NULL"):  # no kept days: an older database
            found = self._meta_rows(
                f"SELECT from_date, to_date, {days} FROM _mp_windows WHERE name = ?", [table]
            )
            if found is not None:
                windows = [(r[0], r[1], r[2], r[3]) for r in found]
                break
        args: dict[str, Any] = {}
        for (raw,) in (
            self._meta_rows("SELECT fetch_args FROM _mp_tables WHERE name = ?", [table]) or []
        ):
            args = orjson.loads(raw) if isinstance(raw, str) else dict(raw or {})
        self._check_args(args, names)
        zone = ZoneInfo(self._tz())
        covered = held_days(windows, zone=zone, legacy=bool(args.get("legacy_time")))
        missing = [
            first + timedelta(days=i)
            for i in range((last - first).days + 1)
            if first + timedelta(days=i) not in covered
        ]
        if missing:
            raise IncompleteDataError(
                f"table {table!r} does not hold all events of {_day_ranges(missing)} "
                f"(project time, {zone.key}); fetch those days first, e.g. "
                f"`mp fetch events --from {missing[0]} --to {missing[-1]} --append`",
                missing_days=[d.isoformat() for d in missing],
            )
        if (
            args.get("days") == "project"
            and "timezone" in args
            and (args["timezone"] or "UTC") == self._tz()
            and ("event_date",) in columns
        ):
            return "event_date"
        return f"CAST((event_time AT TIME ZONE {sql_string(self._tz())}) AS DATE)"

    @staticmethod
    def _check_args(args: dict[str, Any], names: Sequence[str]) -> None:
        """A table fetched with a filter, a limit or duplicates kept cannot answer exactly."""
        for key, what in (("where", "a where filter"), ("limit", "a limit")):
            if args.get(key) not in (None, ""):
                raise LocalUnsupportedError(
                    f"the table was fetched with {what}, so it may miss events; "
                    "fetch without it for local reports"
                )
        if args.get("keep_duplicates"):
            raise LocalUnsupportedError(
                "the table was fetched with --keep-duplicates; Mixpanel's reports count "
                "each event once: fetch it again without that option"
            )
        fetched = args.get("events")
        if fetched:
            absent = [n for n in names if n not in fetched]
            if absent:
                raise LocalUnsupportedError(
                    f"the table holds only the events {', '.join(map(repr, fetched))}, "
                    f"not {', '.join(map(repr, absent))}; fetch them for this report"
                )

    def _local_sql(self, first: date, last: date) -> str:
        """SQL of an event's project-timezone wall clock (a TIMESTAMP), exact for the
        events of project days ``first..last``.

        It is UTC plus the zone's offset, which changes only at the zone's transitions:
        DuckDB's own zone data gives the offset each hour of the range and, where it
        changes, the second it does. Adding a constant per piece is several times
        cheaper than converting every row (``event_time AT TIME ZONE tz``).
        """
        lo = int(datetime.combine(first - timedelta(days=2), time.min, UTC).timestamp())
        hi = int(datetime.combine(last + timedelta(days=3), time.min, UTC).timestamp())
        offset = f"epoch_us(timezone({sql_string(self._tz())}, to_timestamp(x))) - x * 1000000"
        hours = self._rows(f"SELECT x, {offset} FROM range({lo}, {hi + 1}, 3600) r(x) ORDER BY x")
        pieces: list[tuple[int, int]] = []  # (first second, offset in µs) after the first
        for (x0, o0), (x1, o1) in itertools.pairwise(hours):
            if o1 != o0:
                at = self._rows(
                    f"SELECT min(x) FROM range({x0 + 1}, {x1 + 1}) r(x) WHERE {offset} = {o1}"
                )[0][0]
                pieces.append((int(at), int(o1)))
        shift = before = int(hours[0][1])
        if pieces:
            whens = []
            for at, after in pieces:
                whens.append(f"WHEN epoch_us(event_time) < {at * 1_000_000} THEN {before}")
                before = after
            return (
                f"make_timestamp(epoch_us(event_time) + (CASE {' '.join(whens)} ELSE {before} END))"
            )
        return f"make_timestamp(epoch_us(event_time) + {shift})"

    def _events_sql(self, first: date, last: date, *, names: Sequence[str]) -> tuple[str, str]:
        """(FROM-WHERE clause over the range and event names, the project day's SQL)."""
        day = self._check_coverage(first, last, names)
        where = (
            f"FROM {quote_ident(self._table)} WHERE {day} BETWEEN DATE '{first}' AND "
            f"DATE '{last}' AND event_name IN ({', '.join(sql_string(n) for n in names)}) "
            "AND event_time IS NOT NULL"
        )
        return where, day

    def _bucket(self, unit: str, first: date, last: date, day: str) -> str:
        """``bucket_sql`` for events of ``first..last`` (the wall clock only when needed)."""
        local = self._local_sql(first, last) if unit in ("minute", "hour") else ""
        return bucket_sql(unit, day=day, local=local)

    def _counts(
        self,
        first: date,
        last: date,
        *,
        names: Sequence[str],
        unit: str,
        labels: str,
        where: str | None,
        label: str | None = None,
        users: bool = True,
    ) -> dict[str, dict[str, tuple[int, int]]]:
        """``{label: {bucket: (events, users)}}`` for the matching events.

        ``label`` is the segment as one value per event, when it is one (no list
        to unnest); ``labels`` the list of an event's segments otherwise. Without
        ``users`` the user counts are 0 (not counted).
        """
        source, day = self._events_sql(first, last, names=names)
        if where is not None:
            source += f" AND {filter_sql(where)}"
        bucket = self._bucket(unit, first, last, day)
        distinct = "count(DISTINCT u)" if users else "0"
        if label is not None:
            rows = f"SELECT {label} AS k, {bucket} AS b, coalesce(distinct_id, '') AS u {source}"
        else:
            rows = (
                f"SELECT unnest({labels}) AS k, {bucket} AS b, coalesce(distinct_id, '') AS u "
                f"{source}"
            )
        query = f"SELECT k, b, count(*), {distinct} FROM ({rows}) GROUP BY k, b"
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for k, b, n, users in self._rows(query):
            out.setdefault(str(k), {})[bucket_key(unit, b)] = (int(n), int(users))
        return out
