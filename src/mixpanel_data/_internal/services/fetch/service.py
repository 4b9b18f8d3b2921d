"""FetcherService: Export and Engage data into DuckDB, exactly, fast and resumable.

Events: the range is split into day windows (longer ones for long ranges, so a
fetch stays within half the export hour's budget, contract §3.3). Worker threads
download windows ahead into a staging folder next to the database; the calling
thread is the single writer and commits each window in date order, in one short
transaction with its metadata (see ``storage.py`` for why the database is opened
only briefly). Re-running the same command after a crash resumes at the first
window not committed. ``--replace`` builds an aside table (``_mp_new_<name>``)
and swaps it in only when every window is there.

Profiles: engage pages (contract §5) are staged to a file and upserted on
``distinct_id`` in one transaction at the end.
"""

# SQL here is built from validated, always-quoted identifiers; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from mixpanel_data._internal.http.jsonl import is_terminated_early, iter_lines
from mixpanel_data._internal.results.fetch import FetchProgress, FetchResult
from mixpanel_data._internal.services.fetch.ingest import (
    ProjectDays,
    StagedFile,
    WindowCounts,
    commit_events,
    is_out_of_memory,
    out_of_memory_error,
    sql_literal,
)
from mixpanel_data._internal.services.fetch.profiles import ASIDE_PREFIX, ProfileFetching
from mixpanel_data._internal.services.fetch.profiles import fetch_id as new_fetch_id
from mixpanel_data._internal.services.fetch.records import (
    clean_events,
    engage_params,
    normalize_event,
    normalize_profile,
)
from mixpanel_data._internal.services.fetch.staging import (
    WriterSession,
    clean_stale_staging,
    download_ahead,
    is_loopback,
)
from mixpanel_data._internal.services.fetch.windows import (
    DateWindow,
    auto_window_days,
    export_span,
    kept_days,
    project_today,
    split_windows,
    validate_range,
)
from mixpanel_data._internal.storage import engine as st
from mixpanel_data._internal.storage.interrupts import deferred_interrupts, interrupt_pending
from mixpanel_data._internal.storage.lake import LakeBatch, ParquetDaySink
from mixpanel_data._internal.storage.safety import check_address_space, rollback_quietly
from mixpanel_data.exceptions import (
    AuthenticationError,
    MixpanelDataError,
    NetworkError,
    PartialFetchError,
    RateLimitError,
    Retryable,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    import duckdb

    from mixpanel_data._internal.http.client import MixpanelAPIClient

__all__ = ["FetcherService", "ProgressCallback"]

ProgressCallback = Callable[[FetchProgress], None]
MAX_LIMIT = 100_000  # contract §4: a larger export limit is a 400
MAX_WORKERS = 16
DEFAULT_WORKERS = 4


@dataclass
class _Totals:
    rows: int = 0
    duplicates: int = 0
    malformed: int = 0
    bytes: int = 0


def _fetch_id(args: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(orjson.dumps(dict(args), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{digest[:16]}-{int(time.time() * 1000)}"


class FetcherService(ProfileFetching):
    """Fetch events and profiles into the local database, or stream them.

    ``timezone`` is the project's (for "today", contract §3.5); when None it is
    read once from ``/api/app/me``. ``gzip`` None asks export for gzip except on
    loopback (the emulator), where it only costs CPU.
    """

    def __init__(
        self,
        api_client: MixpanelAPIClient,
        storage: st.StorageEngine,
        *,
        progress: ProgressCallback | None = None,
        timezone: str | None = None,
        notice: Callable[[str], None] | None = None,
        gzip: bool | None = None,
    ) -> None:
        self.api = api_client
        self.gzip = gzip
        self.storage = storage
        self.progress = progress
        self._timezone = timezone
        self._timezone_known = timezone is not None
        self._notice = notice

    # -- shared helpers ----------------------------------------------------------------

    def project_timezone(self) -> str | None:
        """The project's timezone: given, or read once from ``/api/app/me``."""
        if not self._timezone_known:
            self._timezone_known = True
            try:
                projects = self.api.me().get("projects") or {}
            except AuthenticationError:
                if self.api.credentials.kind == "project_secret":
                    projects = {}  # /me is a service-account call; the timezone stays unknown
                else:
                    raise
            except MixpanelDataError:
                projects = {}
            project = projects.get(self.api.credentials.project_id)
            if isinstance(project, dict) and isinstance(project.get("timezone"), str):
                self._timezone = project["timezone"]
        return self._timezone

    def _say(self, text: str) -> None:
        if self._notice is not None:
            self._notice(text)

    def _staging_dir(self) -> Path:
        base = self.storage.path.parent if self.storage.path is not None else None
        if base is not None:
            st.private_mkdir(base)
            clean_stale_staging(base)
        return Path(tempfile.mkdtemp(prefix=f".mp-staging-{os.getpid()}-", dir=base))

    @staticmethod
    def _export_params(
        events: Sequence[str] | None, where: str | None, limit: int | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if events:
            params["event"] = list(events)
        if where:
            params["where"] = where
        if limit is not None:
            params["limit"] = limit
        return params

    # -- events ------------------------------------------------------------------------

    def fetch_events(
        self,
        name: str = "events",
        *,
        from_date: str | date | None = None,
        to_date: str | date | None = None,
        events: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
        append: bool = False,
        replace: bool = False,
        keep_duplicates: bool = False,
        update: bool = False,
        lookback_days: int = 5,
        legacy_time: bool | None = None,
        workers: int | None = None,
        window_days: int | None = None,
        progress: ProgressCallback | None = None,
        to_parquet: str | Path | None = None,
    ) -> FetchResult:
        """Fetch events of ``from_date..to_date`` (inclusive) into table `name`.

        ``to_parquet`` also writes each committed window's days into that lake
        (``<dir>/<name>/date=YYYY-MM-DD/``, replacing those partitions).
        """
        started = time.monotonic()
        st.validate_table_name(name)
        sink = ParquetDaySink(to_parquet, table=name) if to_parquet is not None else None
        if append and replace:
            raise ValidationError("use either --append or --replace, not both")
        if update and replace:
            raise ValidationError(
                "--update adds to the table; it cannot be combined with --replace"
            )
        events = clean_events(events)
        where = where.strip() if where and where.strip() else None
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"--limit must be between 1 and {MAX_LIMIT:,}, got {limit:,}")
        n_workers = DEFAULT_WORKERS if workers is None else workers
        if not 1 <= n_workers <= MAX_WORKERS:
            raise ValidationError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
        if window_days is not None and window_days < 1:
            raise ValidationError(f"window_days must be at least 1, got {window_days}")
        if lookback_days < 0:
            raise ValidationError(f"lookback days must be 0 or more, got {lookback_days}")
        check_address_space()

        mode = "replace" if replace else "append" if (append or update) else "create"
        tz = self.project_timezone()
        today = project_today(tz)
        if update:
            prior = self.storage.table_metadata(name)
            if prior is None or not self.storage.table_exists(name):
                raise TableNotFoundError(name)
            if prior["kind"] != "events":
                raise ValidationError(f"table '{name}' holds {prior['kind']}, not events")
            old = prior["fetch_args"]
            events = events or old.get("events")
            where = where or old.get("where")
            if legacy_time is None:
                legacy_time = bool(old.get("legacy_time"))
            keep_duplicates = keep_duplicates or bool(old.get("keep_duplicates"))
            # Through today, which without a known timezone is the earliest on Earth:
            # `today` bounds dates a user gives; one we pick must not be refused.
            until = project_today(tz, earliest=True)
            last_day = self._last_window_day(name) or prior["to_date"] or until
            from_date = min(last_day - timedelta(days=lookback_days), until)
            to_date = until
        if from_date is None or to_date is None:
            raise ValidationError("give both --from and --to (YYYY-MM-DD), or use --update")
        start, end = validate_range(from_date, to_date, today=today)
        legacy = bool(legacy_time)
        if legacy and not tz:
            raise ValidationError(
                "legacy time needs the project timezone; set `timezone` on the account "
                "(mp auth add ... --timezone) so times can be converted to UTC"
            )
        zone = _zone(tz)
        if tz is None:
            self._say(
                "note: the project timezone is unknown, so days are UTC days; set the "
                "account's timezone (mp auth add ... --timezone) or MP_TIMEZONE"
            )
        # Project days start..end come from the export days that overlap them.
        span = export_span(start, end, zone=zone, legacy=legacy, today=today)
        days = ProjectDays(zone.key, start, end)
        args = {
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "events": list(events) if events else None,
            "where": where,
            "limit": limit,
            "keep_duplicates": keep_duplicates,
            "legacy_time": legacy,
            "timezone": tz,
            "mode": mode,
            "days": "project",  # from/to are project days (before: export days)
        }
        if limit is not None:
            # Export's limit caps one request; one window keeps the server's meaning.
            windows = [span]
        else:
            size = window_days or auto_window_days((end - start).days + 1)
            windows = split_windows(span.start, span.end, days=size)

        target, fetch_id, committed, merge_possible = self._plan(name, "events", mode, args)
        todo = [w for w in windows if w.start not in committed]
        totals = _Totals()
        resumed = len(windows) - len(todo)
        if resumed:
            self._say(f"resuming: {resumed} of {len(windows)} windows already committed")
        params = self._export_params(events, where, limit)
        failed: list[dict[str, str]] = []
        report = progress or self.progress

        def emit(done: int) -> None:
            if report is not None:
                report(
                    FetchProgress(
                        table=name,
                        kind="events",
                        windows_done=done,
                        windows_total=len(windows),
                        rows=totals.rows,
                        bytes=totals.bytes,
                        elapsed_seconds=time.monotonic() - started,
                    )
                )

        session = WriterSession(self.storage)
        complete_note = (
            f"note: the interrupt came after the last window was committed: table '{name}' "
            f"is complete ({start}..{end})"
        )
        # Windows this fetch has recorded; each commit first checks they are all still
        # there (a drop or re-creation of the table by another command must fail the
        # fetch, never let it mark a range complete that the table does not hold).
        recorded = set(committed)

        def commit(batch: list[StagedFile], done_after: int) -> None:
            # Ctrl-C waits until the window is committed (or rolled back) and closed.
            with deferred_interrupts():
                _commit(batch, done_after)
                recorded.update(f.window.start for f in batch)
                if interrupt_pending():
                    session.release()

        def _commit(batch: list[StagedFile], done_after: int) -> None:
            if self.storage.readers_waiting():
                session.release()  # a reader gets in before this commit
            lake: LakeBatch | None = None
            with session.connection() as conn:
                conn.execute("BEGIN TRANSACTION")
                try:
                    st.ensure_meta(conn)
                    _check_recorded(conn, name, target, fetch_id, recorded)
                    conn.execute(
                        st.create_table_sql(target, "events").replace(
                            "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1
                        )
                    )
                    _add_event_date(conn, target, zone.key)
                    merge = merge_possible and any(_overlaps(conn, target, f.window) for f in batch)
                    counts = commit_events(
                        conn,
                        table=target,
                        staged=batch,
                        dedup=not keep_duplicates,
                        merge=merge,
                        legacy_tz=tz if legacy else None,
                        days=days,
                    )
                    now = datetime.now(tz=UTC)
                    single = len(batch) == 1
                    for staged in batch:
                        kept = kept_days(staged.window, start, end, zone=zone, legacy=legacy)
                        # Counts are per statement; windows committed together get NULLs.
                        st.record_window(
                            conn,
                            name=target,
                            fetch_id=fetch_id,
                            from_date=staged.window.start,
                            to_date=staged.window.end,
                            rows_inserted=counts.rows_inserted if single else None,
                            duplicates=counts.duplicates if single else None,
                            malformed=counts.malformed if single else None,
                            committed_at=now,
                            first_day=kept.start,
                            last_day=kept.end,
                        )
                    st.write_meta(
                        conn,
                        name=target,
                        kind="events",
                        project_id=self.api.credentials.project_id,
                        fetch_args=args,
                        fetch_id=fetch_id,
                        windows_done=done_after,
                        windows_total=len(windows),
                        from_date=start,
                        to_date=end,
                        complete=done_after == len(windows) and mode != "replace",
                        fetched_at=now,
                    )
                    if sink is not None:  # --to-parquet: the lake's days commit with the window
                        # Project days, each whole as the table now holds it (a day whose
                        # other export day is not committed yet is rewritten when it is).
                        touched = sorted(
                            {
                                d
                                for f in batch
                                for d in kept_days(
                                    f.window, start, end, zone=zone, legacy=legacy
                                ).dates()
                            }
                        )
                        lake = sink.write_windows(
                            conn, target, [DateWindow(d, d) for d in touched], zone=zone.key
                        )
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if lake is not None:
                        lake.undo()  # the window is not committed: neither are its days
                    rollback_quietly(conn)
                    if is_out_of_memory(exc):
                        first, last = batch[0].window.start, batch[-1].window.end
                        raise out_of_memory_error(f"the days {first}..{last}", exc) from exc
                    raise
            if lake is not None:
                lake.finish()
            _add(totals, counts)

        done = len(windows) - len(todo)
        emit(done)

        def add_bytes(n: int) -> None:
            totals.bytes += n

        staging = self._staging_dir() if todo else None
        downloads = download_ahead(
            self.api,
            self.storage,
            todo,
            params,
            staging=staging or Path(),
            workers=n_workers,
            add_bytes=add_bytes,
            scan=not keep_duplicates,
            legacy_tz=tz if legacy else None,
            on_block=session.idle,
            gzip=self.gzip,
        )
        swapped = False
        try:
            with session, contextlib.closing(downloads):  # type: ignore[type-var]
                for batch_or_error in downloads:
                    if isinstance(batch_or_error, tuple):
                        window, error = batch_or_error
                        failed.append(
                            {
                                "from_date": str(window.start),
                                "to_date": str(window.end),
                                "error": error.message,
                            }
                        )
                        continue
                    try:
                        commit(batch_or_error, done + len(batch_or_error))
                    finally:
                        for staged in batch_or_error:
                            staged.path.unlink(missing_ok=True)
                            if staged.losers is not None:
                                staged.losers.unlink(missing_ok=True)
                    done += len(batch_or_error)
                    emit(done)
            if not todo or (done == len(windows) and mode == "replace"):
                with deferred_interrupts():
                    self._finish(
                        name, target, mode, args, fetch_id, len(windows), start, end, recorded
                    )
                    swapped = True  # a Ctrl-C held during the swap is raised just after
        except KeyboardInterrupt:
            # Ctrl-C after the last window committed (e.g. during the final checkpoint):
            # the table is complete; say so rather than leave the user guessing.
            if swapped or (mode != "replace" and recorded.issuperset(w.start for w in windows)):
                self._say(complete_note)
            raise
        warnings = []
        if totals.malformed:
            warnings.append(
                f"{totals.malformed} malformed export line(s) were not stored (counted, not JSON)"
            )
        result = FetchResult(
            table=name,
            kind="events",
            rows_inserted=totals.rows,
            duplicates_dropped=totals.duplicates,
            malformed_lines=totals.malformed,
            windows_done=done,
            windows_total=len(windows),
            duration_seconds=time.monotonic() - started,
            from_date=start,
            to_date=end,
            bytes_downloaded=totals.bytes,
            windows_resumed=resumed,
            retries=self.api.retries,
            table_rows=self._row_count(name if not failed else target),
            mode="update" if update else mode,
            failed_ranges=tuple(failed),
            warnings=tuple(warnings),
        )
        for text in warnings:
            self._say(f"warning: {text}")
        if failed:
            raise PartialFetchError(
                f"{len(failed)} of {len(windows)} windows failed after retries "
                f"(first: {failed[0]['from_date']}: {failed[0]['error']}); the others are "
                "committed; run the same command again to fetch the missing windows",
                failed_ranges=failed,
                result=result,
            )
        return result

    def _plan(
        self, name: str, kind: str, mode: str, args: Mapping[str, Any]
    ) -> tuple[str, str, dict[date, tuple[int, int, int]], bool]:
        """Pick the target table and fetch id; return committed windows when resuming.

        Raises TableExistsError when `name` exists and neither append nor replace
        was asked for (unless this is the same, unfinished fetch being resumed).
        """
        if not self.storage.exists():
            return (
                (ASIDE_PREFIX + name if mode == "replace" else name),
                new_fetch_id(args),
                {},
                False,
            )
        with self.storage.reader() as conn:
            exists = st._table_exists(conn, name)
            meta = st._all_meta(conn, name).get(name)
            if exists and meta is not None and meta["kind"] != kind:
                raise ValidationError(
                    f"table '{name}' holds {meta['kind']}, not {kind}; choose another name"
                )
            if exists and meta is None and mode != "replace":
                raise TableExistsError(name)
            target = ASIDE_PREFIX + name if mode == "replace" else name
            tmeta = st._all_meta(conn, target).get(target)
            target_exists = st._table_exists(conn, target)
            resumable = (
                target_exists
                and tmeta is not None
                and not tmeta["complete"]
                and tmeta["fetch_args"] == dict(args)
            )
            if resumable and tmeta is not None:
                fetch_id = tmeta["fetch_id"]
                done = st.committed_windows(conn, name=target, fetch_id=fetch_id)
                return target, fetch_id, done, mode == "append"
        if mode == "create" and exists:
            if meta is not None and meta["complete"] and meta["fetch_args"] == dict(args):
                span = f"{args['from_date']}..{args['to_date']}"
                raise TableExistsError(name, complete_range=span)
            raise TableExistsError(name)
        if mode == "replace" and target_exists:
            with deferred_interrupts(), self.storage.writer() as conn:
                conn.execute("BEGIN TRANSACTION")
                conn.execute(f"DROP TABLE IF EXISTS {st.quote_ident(target)}")
                st.rename_meta(conn, old="", new=target)  # forget the stale aside's metadata
                conn.execute("COMMIT")
        return target, new_fetch_id(args), {}, mode == "append" and exists

    def _finish(
        self,
        name: str,
        target: str,
        mode: str,
        args: Mapping[str, Any],
        fetch_id: str,
        windows_total: int,
        start: date,
        end: date,
        recorded: set[date],
    ) -> None:
        """Mark the fetch complete; for a replace, swap the aside table in atomically."""
        with self.storage.writer() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                st.ensure_meta(conn)
                _check_recorded(conn, name, target, fetch_id, recorded)
                if not st._table_exists(conn, target):
                    conn.execute(st.create_table_sql(target, str(args.get("kind", "events"))))
                st.write_meta(
                    conn,
                    name=target,
                    kind="events",
                    project_id=self.api.credentials.project_id,
                    fetch_args=args,
                    fetch_id=fetch_id,
                    windows_done=windows_total,
                    windows_total=windows_total,
                    from_date=start,
                    to_date=end,
                    complete=True,
                    fetched_at=datetime.now(tz=UTC),
                )
                if mode == "replace":
                    conn.execute(f"DROP TABLE IF EXISTS {st.quote_ident(name)}")
                    conn.execute(
                        f"ALTER TABLE {st.quote_ident(target)} RENAME TO {st.quote_ident(name)}"
                    )
                    st.rename_meta(conn, old=target, new=name)
                conn.execute("COMMIT")
            except BaseException:
                rollback_quietly(conn)
                raise

    def _last_window_day(self, name: str) -> date | None:
        """The last project day a window kept (its export day, for older databases)."""
        with self.storage.reader() as conn:
            rows = st.window_rows(conn, name)
        return max((last or to for _a, to, _f, last in rows), default=None)

    def _row_count(self, name: str) -> int:
        if not self.storage.table_exists(name):
            return 0
        value = self.storage.execute_scalar(f"SELECT count(*) FROM {st.quote_ident(name)}")
        return int(value or 0)

    # -- streams -----------------------------------------------------------------------

    def iter_export_lines(
        self,
        *,
        from_date: str | date,
        to_date: str | date,
        events: Sequence[str] | None = None,
        where: str | None = None,
        limit: int | None = None,
    ) -> Iterator[bytes]:
        """Yield the export's raw JSONL lines, window by window, in constant memory."""
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"--limit must be between 1 and {MAX_LIMIT:,}, got {limit:,}")
        events = clean_events(events)
        start, end = validate_range(
            from_date, to_date, today=project_today(self.project_timezone())
        )
        windows = (
            [DateWindow(start, end)]
            if limit is not None
            else split_windows(start, end, days=auto_window_days((end - start).days + 1))
        )
        params = self._export_params(events, where.strip() if where else None, limit)
        gzip = not is_loopback(self.api.credentials.base_url) if self.gzip is None else self.gzip
        for window in windows:
            yield from self._window_lines(window, params, gzip=gzip)

    def _window_lines(
        self, window: DateWindow, params: Mapping[str, Any], *, gzip: bool
    ) -> Iterator[bytes]:
        from mixpanel_data._internal.http.client import iter_body, translate_transport_errors

        query = {**params, "from_date": window.start.isoformat(), "to_date": window.end.isoformat()}
        headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            try:
                with (
                    self.api.stream("GET", "export", "export", params=query, headers=headers) as r,
                    translate_transport_errors(self.api, "GET", str(r.request.url)),
                ):
                    for line in iter_lines(iter_body(r)):
                        if is_terminated_early(line):
                            raise NetworkError(
                                f"export of {window} ended with 'terminated early'; "
                                "run the command again"
                            )
                        yielded = True
                        yield line
                return
            except Exception as exc:
                # Only a window that yielded nothing yet can be retried without repeats.
                if (
                    yielded
                    or not isinstance(exc, Retryable)
                    or attempt >= self.api.retry.max_attempts
                ):
                    raise
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                self.api.retries += 1
                self.api.sleep(self.api.retry.delay(attempt, retry_after))

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
        """Yield export records (``raw=True``) or rows shaped like the events table.

        Streams are not deduplicated (that needs the whole range); malformed lines
        are reported on the notice channel, not stored or yielded.
        """
        zone = ZoneInfo(self.project_timezone() or "UTC") if legacy_time else None
        for line in self.iter_export_lines(
            from_date=from_date, to_date=to_date, events=events, where=where, limit=limit
        ):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                self._say(f"warning: skipped a malformed export line: {line[:80]!r}")
                continue
            if raw:
                yield record
            else:
                yield normalize_event(record, legacy_zone=zone)

    def stream_profiles(self, *, raw: bool = False, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yield engage records (``raw=True``) or rows shaped like the profiles table."""
        for page in self._engage_once(engage_params(**filters)):
            for record in page:
                yield record if raw else normalize_profile(record)


# -- pure helpers ----------------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo:
    """The project's zone (UTC when unknown), or one clear error for a bad name."""
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError):
        raise ValidationError(
            f"unknown project timezone {name!r}; set an IANA name such as "
            "America/Los_Angeles on the account (mp auth add ... --timezone) or MP_TIMEZONE"
        ) from None


def _add_event_date(conn: duckdb.DuckDBPyConnection, table: str, zone: str) -> None:
    """Give a table fetched before ``event_date`` existed that column, filled in `zone`.

    Runs in the window's transaction, so readers see the table before or after, whole.
    """
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_catalog = current_database() AND table_name = ? AND column_name = ?",
        [table, "event_date"],
    ).fetchone()
    if row and row[0]:
        return
    quoted = st.quote_ident(table)
    conn.execute(f"ALTER TABLE {quoted} ADD COLUMN event_date DATE")
    conn.execute(
        f"UPDATE {quoted} SET event_date = CAST(timezone({sql_literal(zone)}, event_time) AS DATE)"
    )


def _add(totals: _Totals, counts: WindowCounts) -> None:
    totals.rows += counts.rows_inserted
    totals.duplicates += counts.duplicates
    totals.malformed += counts.malformed


def _check_recorded(
    conn: duckdb.DuckDBPyConnection, name: str, target: str, fetch_id: str, recorded: set[date]
) -> None:
    """Fail when windows this fetch recorded are gone (table dropped or re-created)."""
    if not recorded:
        return
    held = st.committed_windows(conn, name=target, fetch_id=fetch_id)
    missing = sorted(recorded - held.keys()) if st._table_exists(conn, target) else sorted(recorded)
    if missing:
        raise StorageError(
            f"table '{name}' was dropped or changed by another command during this fetch "
            f"({len(missing)} committed window(s) from {missing[0]} are gone); nothing more "
            "was recorded; run the same command again to fetch the table afresh",
            table=name,
        )


def _overlaps(conn: duckdb.DuckDBPyConnection, table: str, window: DateWindow) -> bool:
    """True when the table already holds rows near the window (an append must merge)."""
    lo = datetime.combine(window.start - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    hi = datetime.combine(window.end + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {st.quote_ident(table)} "
        "WHERE event_time >= ? AND event_time < ? LIMIT 1)",
        [lo, hi],
    ).fetchone()
    return bool(row and row[0])
