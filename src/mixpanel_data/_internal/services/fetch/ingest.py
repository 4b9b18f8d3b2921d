"""The bulk path: export bytes to a staging file, then DuckDB parses, dedups and commits.

No per-row Python work: a window's response body is written to a temp file as
it arrives, and one SQL statement lets
DuckDB's ``read_json`` parse it, pull ``time``/``distinct_id``/``$insert_id``
out with JSON functions, deduplicate, and insert — inside a transaction that
also records the window in the metadata, so a window is either fully there or
not at all.

Dedup follows Mixpanel's query-time rule (contract §3.5): one row per
(event, distinct_id, time, ``$insert_id``), the largest ``mp_processing_time_ms``
winning (ties broken by the properties text, so the result is deterministic).
An event without ``$insert_id`` gets ``md5(event || properties)`` as its key, so
re-fetching it never duplicates it. ``properties`` keeps every property,
including the extracted ones: lossless and simplest.
"""

# SQL here is built from validated, always-quoted identifiers and fixed fragments;
# values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mixpanel_data._internal.http.client import (
    MixpanelAPIClient,
    iter_body,
    translate_transport_errors,
)
from mixpanel_data._internal.http.jsonl import is_terminated_early
from mixpanel_data._internal.services.fetch.columns import (
    UNFIT,
    Sample,
    TypedColumn,
    census,
    extraction,
    fill_stored,
    path_literal,
    plan_batch,
    typed_select,
)
from mixpanel_data._internal.services.fetch.windows import DateWindow
from mixpanel_data._internal.storage.engine import quote_ident, sql_literal
from mixpanel_data._internal.storage.safety import cleanup, close_quietly
from mixpanel_data.exceptions import (
    NetworkError,
    RateLimitError,
    Retryable,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "HEAVY_STEP",
    "PROFILE_CHUNK_BYTES",
    "PROFILE_MEMORY_LIMIT",
    "UTC_DAYS",
    "ProjectDays",
    "StagedFile",
    "WindowCounts",
    "checkpoint_memory_limit",
    "checkpoint_out_of_memory_error",
    "commit_events",
    "commit_profiles",
    "download_window",
    "is_out_of_memory",
    "out_of_memory_error",
    "profile_memory_limit",
    "sql_literal",
    "writer_memory_limit",
]

# DuckDB's buffer pool for ingestion; larger windows spill to disk, so RSS stays flat.
INGEST_MEMORY_LIMIT = "256MB"
# The writer's pool while it checkpoints on close (commits get `writer_memory_limit()`).
CHECKPOINT_MEMORY_LIMIT = "128MB"
# Raises (or lowers) the writer's pool: the one setting to change when a commit runs out.
MEMORY_LIMIT_ENV = "MP_FETCH_MEMORY_LIMIT"
_SIZE = re.compile(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*", re.IGNORECASE)
# Rows merged per statement when a fetch overlaps stored days (see `_merge_losers`).
MERGE_SLICE_ROWS = 500_000
# Stored rows whose hashes one insert's anti-join may hold (`_skip_stored`): about
# 130 MB of hash table, which fits the default 256MB pool beside the insert.
SKIP_STORED_ROWS = 1_000_000


def writer_memory_limit() -> str:
    """The writer's DuckDB memory limit: ``MP_FETCH_MEMORY_LIMIT`` or 256MB."""
    value = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not value:
        return INGEST_MEMORY_LIMIT
    if not _SIZE.fullmatch(value):
        raise ValidationError(
            f"{MEMORY_LIMIT_ENV}={value!r} is not a memory size; use e.g. 512MB or 2GB"
        )
    return value.replace(" ", "")


def profile_memory_limit() -> str:
    """A profile commit's pool: ``MP_FETCH_MEMORY_LIMIT`` if set, else PROFILE_MEMORY_LIMIT."""
    return (
        writer_memory_limit()
        if os.environ.get(MEMORY_LIMIT_ENV, "").strip()
        else (PROFILE_MEMORY_LIMIT)
    )


def checkpoint_memory_limit() -> str:
    """The writer's pool while it checkpoints: ``MP_FETCH_MEMORY_LIMIT`` if set, else 128MB."""
    return (
        writer_memory_limit()
        if os.environ.get(MEMORY_LIMIT_ENV, "").strip()
        else CHECKPOINT_MEMORY_LIMIT
    )


def is_out_of_memory(exc: BaseException) -> bool:
    """True for DuckDB's memory-pool failure (its own class, or its text under another:
    a checkpoint that runs out raises a FatalException, "could not allocate ...")."""
    import duckdb

    text = str(exc).lower()
    return isinstance(exc, duckdb.OutOfMemoryException) or (
        isinstance(exc, duckdb.Error) and _OUT_OF_MEMORY_TEXT.search(text) is not None
    )


# DuckDB's texts for a pool that is full (seen from checkpoints: "failed to allocate
# data", "failed to pin block", "could not allocate block").
_OUT_OF_MEMORY_TEXT = re.compile(r"out of memory|(failed to|could not) (allocate|pin)")


def checkpoint_out_of_memory_error(db: str, limit: str) -> StorageError:
    """One line for a checkpoint that outgrew its pool (`limit`): what is kept, what to raise."""
    return StorageError(
        f"DuckDB ran out of memory while checkpointing {db} (checkpoint memory limit "
        f"{limit}); every committed window is kept in its write-ahead log {db}.wal; raise "
        f"the limit, e.g. {MEMORY_LIMIT_ENV}=1GB, and run the same command again (it "
        "resumes)",
        memory_limit=limit,
        setting=MEMORY_LIMIT_ENV,
    )


def out_of_memory_error(what: str, exc: BaseException) -> StorageError:
    """One line for a commit that outgrew the writer's pool, naming the setting to raise."""
    limit = writer_memory_limit()
    return StorageError(
        f"DuckDB ran out of memory while committing {what} (writer memory limit {limit}); "
        f"nothing of it was stored; raise the limit, e.g. {MEMORY_LIMIT_ENV}=1GB, "
        "and run the same command again (it resumes)",
        memory_limit=limit,
        setting=MEMORY_LIMIT_ENV,
    )


# read_json refuses an object over its `maximum_object_size` (16 MiB by default; lines
# up to twice that still fit its buffer) and needs a few times a line's size in
# memory. A window with a line over LONG_LINE gets both raised for its statements.
LONG_LINE = 8 << 20
_DEFAULT_OBJECT_SIZE = 16 << 20


def long_line_limits(longest: int, pool_mb: int) -> tuple[str, int | None]:
    """The memory_limit and maximum_object_size (None: default) a window's longest
    line needs, given the pool used for ordinary windows."""
    if longest <= LONG_LINE:
        return f"{pool_mb}MB", None
    size = max(_DEFAULT_OBJECT_SIZE, (longest >> 20) + 2 << 20)
    return f"{pool_mb + 16 * (size >> 20)}MB", size


def _object_size_option(size: int | None) -> str:
    return "" if size is None else f", maximum_object_size = {size}"


# A profile fetch stages engage pages into files of about this size, upserted one by
# one in a pool of PROFILE_MEMORY_LIMIT (a chunk needs about 4x its size; the
# transaction's new rows fill the rest and spill): its peak is the same at 100k
# profiles as at 1M (benchmarks/profile_benchmark.py).
PROFILE_CHUNK_BYTES = 16 << 20
PROFILE_MEMORY_LIMIT = "128MB"


@dataclass(frozen=True)
class StagedFile:
    """A window's export body on local disk."""

    window: DateWindow
    path: Path
    size: int
    attempts: int
    # Set by `scan_duplicates`: a Parquet file of the lines that lose dedup, and
    # whether some duplicates need the slower fix-up (ties, missing keys).
    losers: Path | None = None
    needs_fix: bool = False
    # An upper bound on the body's longest line, in bytes (see `long_line_limits`).
    longest_line: int = 0
    # Newline bytes in the body, counted as it arrived (None: count them when needed).
    newlines: int | None = None
    # The typed columns' key counts of the body (columns.sample_file; None: not yet).
    sample: Sample | None = None


class _LineMeter:
    """Track an upper bound of the longest line of a body fed in chunks (two memchr
    calls per chunk; exact for lines spanning chunks, the chunk's size otherwise)."""

    def __init__(self) -> None:
        self.run = 0
        self.longest = 0
        self.newlines = 0  # for the typed columns' estimate (columns.sample_keys)

    def feed(self, chunk: bytes) -> None:
        self.newlines += chunk.count(b"\n")
        first = chunk.find(b"\n")
        if first < 0:
            self.run += len(chunk)
            return
        last = chunk.rfind(b"\n")
        inner = last - first if len(chunk) > LONG_LINE else 0  # only a big chunk matters
        self.longest = max(self.longest, self.run + first, inner)
        self.run = len(chunk) - last - 1

    def result(self) -> int:
        return max(self.longest, self.run)


@dataclass(frozen=True)
class WindowCounts:
    """What committing one window did."""

    rows_inserted: int
    duplicates: int
    malformed: int


def _tail_line(path: Path, size: int) -> bytes:
    """Return the last non-blank line of a file (reads backwards in blocks).

    Blocks are joined once at the end: a last line of many MB stays linear.
    """
    if size == 0:
        return b""
    block = 1 << 16
    parts: list[bytes] = []
    with open(path, "rb") as fh:
        pos = size
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            piece = fh.read(step)
            if not parts:
                piece = piece.rstrip()  # trailing blank lines and whitespace
                if not piece:
                    continue
            cut = piece.rfind(b"\n")
            if cut >= 0:
                parts.append(piece[cut + 1 :])
                break
            parts.append(piece)
    return b"".join(reversed(parts))


def _whole_record(line: bytes) -> bool:
    """A last line strict JSON rejects may still be whole: NaN/Infinity (stored, as
    DuckDB's JSON accepts them) or invalid UTF-8 (counted as malformed). Only a cut
    record fails the window; otherwise such a line could never be fetched."""
    import json

    try:
        json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return False
    return True


def download_window(
    api: MixpanelAPIClient,
    window: DateWindow,
    params: Mapping[str, Any],
    dest: Path,
    *,
    gzip: bool,
    on_bytes: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> StagedFile:
    """Download one window's export into `dest`, retrying retryable failures.

    A 200 body that ends in ``terminated early``, a cut record or a gzip body
    without its trailer (contract §4) counts as a network failure; the window
    is fetched again from its start into the same file (truncated), so a
    partial line is never committed.
    """
    started = time.monotonic()
    attempt = 0
    query = {**params, "from_date": window.start.isoformat(), "to_date": window.end.isoformat()}
    headers = {"Accept-Encoding": "gzip" if gzip else "identity", "Accept": "text/plain"}
    while True:
        attempt += 1
        size = 0
        meter = _LineMeter()
        try:
            with (
                api.stream("GET", "export", "export", params=query, headers=headers) as response,
                open(dest, "wb") as fh,
                translate_transport_errors(api, "GET", str(response.request.url)),
            ):
                for chunk in iter_body(response):
                    fh.write(chunk)
                    meter.feed(chunk)
                    size += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            last = _tail_line(dest, size)
            if last and is_terminated_early(last):
                raise NetworkError(
                    f"export of {window} ended with 'terminated early'; retrying the window"
                )
            if last:
                try:
                    orjson.loads(last)
                except orjson.JSONDecodeError:
                    if not _whole_record(last):
                        raise NetworkError(
                            f"export of {window} ended in a cut record; retrying the window"
                        ) from None
            return StagedFile(
                window, dest, size, attempt, longest_line=meter.result(), newlines=meter.newlines
            )
        except Exception as exc:
            if not isinstance(exc, Retryable):
                raise
            retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
            if isinstance(exc, RateLimitError) and retry_after:
                api.budget("export").penalize(retry_after)
            delay = api.retry.delay(attempt, retry_after)
            if (
                attempt >= api.retry.max_attempts
                or time.monotonic() - started + delay > api.retry.max_total_seconds
            ):
                raise
            api.retries += 1
            (sleep or api.sleep)(delay)


def _time_expr(text: str, legacy_tz: str | None) -> str:
    """SQL turning export ``time`` text (epoch seconds) into a UTC TIMESTAMPTZ."""
    base = f"to_timestamp(TRY_CAST({text} AS DOUBLE))"
    if legacy_tz is None:
        return base
    # Legacy projects export the epoch shifted by the project's UTC offset
    # (contract §3.5): read it as wall-clock time in the project zone.
    return f"timezone({sql_literal(legacy_tz)}, ({base})::TIMESTAMP)"


def _files(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"


@dataclass(frozen=True)
class ProjectDays:
    """Keep only the events of project days ``first..last`` in ``zone`` (storage/days.py).

    ``event_date`` is each event's day in ``zone``; an export day at either end of a
    fetch also holds events of the day before or after, which are not stored.
    """

    zone: str
    first: date | None = None
    last: date | None = None

    def date_sql(self, time_sql: str) -> str:
        return f"CAST(timezone({sql_literal(self.zone)}, {time_sql}) AS DATE)"

    def keeps_sql(self, time_sql: str) -> str:
        if self.first is None or self.last is None:
            return "true"
        day = self.date_sql(time_sql)
        return f"{day} BETWEEN DATE '{self.first}' AND DATE '{self.last}'"


UTC_DAYS = ProjectDays("UTC")


def _select_rows(
    paths: Sequence[Path],
    *,
    legacy_tz: str | None,
    object_size: int | None = None,
    days: ProjectDays = UTC_DAYS,
    columns: Sequence[TypedColumn] = (),
) -> str:
    """SELECT every line of the staged files as a row, plus ``pt`` (processing time).

    ``properties`` is kept as JSON (lossless); the key fields and the typed columns'
    values are read from it (`columns.extraction`). Malformed lines come back as NULL
    rows; they get a NULL ``event_time`` here so they can be counted and removed
    after the insert. Lines of days outside `days` are left out.
    """
    option = _object_size_option(object_size)
    source = (
        f"read_json({_files(paths)}, format = 'newline_delimited', "
        f"columns = {{event: 'VARCHAR', properties: 'JSON'}}, ignore_errors = true{option})"
    )
    if not columns:
        rows = f"""
        SELECT event AS event_name,
               CASE WHEN event IS NOT NULL THEN {_time_expr("k[1]", legacy_tz)} END
                   AS event_time,
               k[2] AS distinct_id,
               coalesce(k[3], md5(event || properties::VARCHAR)) AS insert_id,
               properties,
               TRY_CAST(k[4] AS BIGINT) AS pt,
               k[3] IS NULL AS derived
        FROM (
            SELECT event, properties,
                   json_extract_string(properties,
                       ['$.time', '$.distinct_id', '$."$insert_id"',
                        '$.mp_processing_time_ms']) AS k
            FROM {source}
        )"""
    else:
        # The key fields and the typed values come from one json_transform of the
        # properties (`columns.extraction`): one more parse, not one per kind of value.
        ex = extraction(columns, keys=_KEYS)
        k = ex.keys
        rows = f"""
        SELECT event AS event_name,
               CASE WHEN event IS NOT NULL THEN {_time_expr(k["time"], legacy_tz)} END
                   AS event_time,
               {k["distinct_id"]} AS distinct_id,
               coalesce({k["$insert_id"]}, md5(event || properties::VARCHAR)) AS insert_id,
               properties,
               TRY_CAST({k["mp_processing_time_ms"]} AS BIGINT) AS pt,
               {k["$insert_id"]} IS NULL AS derived{ex.select}
        FROM (SELECT event, properties, {", ".join(ex.lists)} FROM {source})"""
    return f"""
        SELECT *, {days.date_sql("event_time")} AS event_date FROM ({rows}
        ) WHERE event_time IS NULL OR {days.keeps_sql("event_time")}
    """


_KEYS = ("time", "distinct_id", "$insert_id", "mp_processing_time_ms")


def _key_hash(ev: str, did: str, iid: str) -> str:
    """SQL hashing the dedup key's strings to one UBIGINT (with the time, the group key).

    Grouping on fixed-width hashes instead of the strings keeps the scan's memory a
    fraction of the day's keys. A collision cannot merge two events: every group
    also carries the range of an independent check hash (`_check_hash`), and a
    group whose lines disagree on it is left to the exact fix-up.
    """
    return f"hash({ev}, {did}, {iid})"


def _check_hash(ev: str, did: str, iid: str) -> str:
    return f"hash({iid}, {did}, {ev}, 'mp-check')"


def _select_duplicate_keys(
    paths: Sequence[Path], *, legacy_tz: str | None, object_size: int | None = None
) -> str:
    """SELECT the lines whose dedup key occurs more than once, as hashed keys.

    Reading only four scalar properties is several times cheaper than the full
    parse; the key's strings are hashed as they are read, so the day is held as
    fixed-width rows (h, ts, pt, check hash) and the window functions only ever
    see the duplicated keys (a few per thousand lines).
    """
    struct = (
        'STRUCT("time" VARCHAR, distinct_id VARCHAR, "$insert_id" VARCHAR, '
        "mp_processing_time_ms VARCHAR)"
    )
    source = (
        f"read_json({_files(paths)}, format = 'newline_delimited', "
        f"columns = {{event: 'VARCHAR', properties: '{struct}'}}, ignore_errors = true"
        f"{_object_size_option(object_size)})"
    )
    return f"""
        WITH k AS MATERIALIZED (
            SELECT {_key_hash("ev", "did", "iid")} AS h, ts, pt,
                   {_check_hash("ev", "did", "iid")} AS h2, iid IS NULL AS no_iid
            FROM (
                SELECT event AS ev, properties.distinct_id AS did,
                       properties."$insert_id" AS iid,
                       {_time_expr('properties."time"', legacy_tz)} AS ts,
                       TRY_CAST(properties.mp_processing_time_ms AS BIGINT) AS pt
                FROM {source}
                WHERE event IS NOT NULL
            )
            WHERE ts IS NOT NULL
        ),
        g AS (SELECT h, ts FROM k GROUP BY ALL HAVING count(*) > 1)
        SELECT k.h, k.ts, k.pt,
               max(k.pt) OVER w AS top,
               count(*) FILTER (WHERE k.pt IS NULL) OVER w AS no_pt,
               min(k.h2) OVER w <> max(k.h2) OVER w AS collision,
               bool_or(k.no_iid) OVER w AS no_iid
        FROM k SEMI JOIN g ON k.h = g.h AND k.ts = g.ts
        WINDOW w AS (PARTITION BY k.h, k.ts)
    """


def scan_duplicates(staged: StagedFile, *, legacy_tz: str | None) -> StagedFile:
    """Find a downloaded window's dedup losers, in a private in-memory database.

    Runs on the download thread, so it overlaps other downloads instead of
    holding the main database. Windows cover disjoint days, so per-window
    losers are exactly the losers of the whole range. A loser is a line whose
    key has a line with a larger ``mp_processing_time_ms``; keys whose best
    processing time is tied or missing, lines without ``$insert_id`` and key
    hash collisions set ``needs_fix`` (settled after the insert on exact keys,
    rarely needed). The losers file holds ``(h, ts, pt)``: the key's hash, its
    time and the losing processing time.
    """
    from dataclasses import replace

    losers = staged.path.with_suffix(".losers.parquet")
    if staged.size == 0:
        return replace(staged, losers=losers, needs_fix=False)
    # One scan at a time, in a small buffer pool, beside at most the writer's commit:
    # RSS stays bounded however large the windows or however many download workers run.
    import duckdb

    if staged.longest_line > LONG_LINE:
        # A huge line: the small shared pool cannot hold it; a private one can, alone.
        with HEAVY_STEP, _big_scanner(staged.path.parent, staged.longest_line) as conn:
            return _scan(conn, staged, losers, legacy_tz=legacy_tz)
    try:
        with SCAN_STEP:
            return _scan(_scanner(), staged, losers, legacy_tz=legacy_tz)
    except duckdb.OutOfMemoryException:
        # A very large day (hundreds of MB of keys) outgrows the small pool: scan it
        # once more, alone, on a private connection allowed to spill to disk.
        with HEAVY_STEP, _big_scanner(staged.path.parent) as conn:
            return _scan(conn, staged, losers, legacy_tz=legacy_tz)


# Held by every memory-heavy DuckDB step of a fetch: the writer's commit, the
# checkpoint when the writer closes, a dedup scan too large for the small pool. Each
# step's memory is bounded by its pool; never running two at once keeps the
# process's peak bounded whatever the project size.
HEAVY_STEP = threading.Lock()
# Held by an ordinary dedup scan (its 128 MB pool), which runs beside a commit: under
# HEAVY_STEP the writer waited for the next windows' scans with one core idle, and
# the downloads stalled behind them (1M events: 11.97 s instead of 12.82 s, medians
# of 5 interleaved pairs, each faster; the 10M peak is 472 MB instead of 441-445).
SCAN_STEP = threading.Lock()


_scan_conn: duckdb.DuckDBPyConnection | None = None


def _scanner() -> duckdb.DuckDBPyConnection:
    """The scans' private in-memory database (under SCAN_STEP).

    Reused across windows: opening a DuckDB database costs tens of milliseconds,
    as much as scanning a whole day of a large project. One thread: with two, the
    JSON reader's buffers outgrew the pool at random (a 738 MB day, and once a 120 MB
    one) and the scan ran again in the big scanner, for 0.3-0.9 s saved per 11 days.
    """
    global _scan_conn
    if _scan_conn is None:
        import duckdb

        conn = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "128MB"})
        conn.execute("SET TimeZone = 'UTC'")
        _scan_conn = conn
    return _scan_conn


@contextlib.contextmanager
def _big_scanner(spill: Path, longest: int = 0) -> Iterator[duckdb.DuckDBPyConnection]:
    import duckdb

    limit, _size = long_line_limits(longest, 1024)
    conn = duckdb.connect(
        ":memory:",
        config={"threads": 1, "memory_limit": limit, "temp_directory": str(spill / ".scan-spill")},
    )
    try:
        conn.execute("SET TimeZone = 'UTC'")
        yield conn
    except BaseException:
        close_quietly(conn)
        raise
    conn.close()


def _scan(
    conn: duckdb.DuckDBPyConnection, staged: StagedFile, losers: Path, *, legacy_tz: str | None
) -> StagedFile:
    from dataclasses import replace

    _limit, size = long_line_limits(staged.longest_line, 0)
    with cleanup(conn, "DROP TABLE IF EXISTS dups"):
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE dups AS "
            + _select_duplicate_keys([staged.path], legacy_tz=legacy_tz, object_size=size)
        )
        # A loser has an older processing time than the newest line of its key.
        # Keys without $insert_id (their key is derived from the content), keys
        # with missing processing times and hash collisions are settled after the
        # insert instead, on exact keys (`_delete_losers`).
        exact = "NOT collision AND NOT no_iid"
        stats = conn.execute(
            f"SELECT count(*) FILTER (WHERE pt < top AND {exact}), "
            "count(*) FILTER (WHERE top IS NULL OR no_pt > 0 OR no_iid OR collision) FROM dups"
        ).fetchone()
        ties = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM dups WHERE pt = top "
            "GROUP BY h, ts HAVING count(*) > 1)"
        ).fetchone()
        if stats and stats[0]:
            conn.execute(
                f"COPY (SELECT h, ts, pt FROM dups WHERE pt < top AND {exact}) TO "
                f"{sql_literal(str(losers))} (FORMAT parquet)"
            )
        needs_fix = bool(stats and stats[1]) or bool(ties and ties[0])
    return replace(staged, losers=losers, needs_fix=needs_fix)


_COLS = "event_name, event_time, event_date, distinct_id, insert_id, properties"
# The day the typed columns' counts are kept by (services/fetch/columns.py): the project day.
EVENT_DAY = "event_date"
_PT_T = "TRY_CAST(json_extract_string(t.properties, '$.mp_processing_time_ms') AS BIGINT)"


def commit_events(
    conn: duckdb.DuckDBPyConnection,
    *,
    table: str,
    staged: Sequence[StagedFile],
    dedup: bool,
    merge: bool,
    legacy_tz: str | None,
    days: ProjectDays = UTC_DAYS,
) -> WindowCounts:
    """Insert staged windows into `table` (call inside an open transaction).

    Only events of `days` are stored; their ``event_date`` is their day there.

    Dedup without carrying payloads: a keys-only pass finds the duplicated keys
    and their losers (an older ``mp_processing_time_ms``); the streaming insert
    then skips exactly those lines. Deleting rows after an insert would make the
    commit rewrite the freshly written row groups, so the rare cases the keys
    pass cannot settle (equal processing times, missing ones, events without
    ``$insert_id``) are resolved by a delete on the new rows only when present.

    ``merge`` widens the dedup to rows already in the table for the same days
    (an append over an overlapping range): the newest version wins, once. Lines
    identical to a stored row are skipped by the insert (`_skip_stored`); the
    rest is settled against the stored rows of its time span (`_merge_losers`).
    """
    target = quote_ident(table)
    present = [f for f in staged if f.size > 0]
    if not present:
        return WindowCounts(0, 0, 0)
    paths = [f.path for f in present]
    row = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
    # New rows get row ids past every existing one: count(*) is a safe lower bound.
    params: dict[str, Any] = {"start": int(row[0]) if row else 0}
    skipped = 0
    needs_fix = merge
    pool, object_size = long_line_limits(max(f.longest_line for f in present), 256)
    plan = plan_batch(
        conn,
        table=table,
        kind="events",
        paths=paths,
        newlines=[f.newlines for f in present],
        samples=[f.sample for f in present],
    )
    # A huge line: the typed columns are filled after the insert (`fill_stored`).
    scanned = plan.columns if object_size is None else ()
    select = _select_rows(
        paths, legacy_tz=legacy_tz, object_size=object_size, days=days, columns=scanned
    )
    typed_cols = [quote_ident(c.column) for c in scanned]
    cols = ", ".join([_COLS, *typed_cols, *([UNFIT] if typed_cols else [])])
    if dedup:
        for f in present:
            if f.losers is None:
                raise ValueError("dedup needs scan_duplicates() on every staged file")
        losers = [f.losers for f in present if f.losers is not None and f.losers.exists()]
        needs_fix = needs_fix or any(f.needs_fix for f in present)
        if losers:
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE _mp_dups AS SELECT * FROM read_parquet("
                + _files(losers)
                + ")"
            )
            row = conn.execute(
                f"SELECT count(*) FROM _mp_dups WHERE {days.keeps_sql('ts')}"
            ).fetchone()
            skipped = int(row[0]) if row else 0
            hashed = _key_hash("event_name", "distinct_id", "insert_id")
            select = f"""
                SELECT s.* FROM (
                    SELECT *, CASE WHEN NOT derived THEN {hashed} END AS h FROM ({select})
                ) s
                WHERE NOT EXISTS (
                    SELECT 1 FROM _mp_dups d
                    WHERE d.h = s.h AND d.ts = s.event_time AND d.pt = s.pt)
            """
    lines = 0
    if dedup and merge:
        # A re-fetched day mostly repeats stored rows: a line identical to a stored
        # row (same key, same properties text) cannot change the merge's outcome,
        # so it is counted as a duplicate and never written (`_skip_stored`).
        lines = sum(_count_lines(f.path) for f in present)
        lines -= _lines_outside(conn, present, days, legacy_tz=legacy_tz, object_size=object_size)
        select = _skip_stored(conn, target, select, [f.window for f in present])
    # The optimizer may build the anti-join's hash table on the export side (its
    # size is unknown to it); keep the build on the small losers table.
    conn.execute("SET disabled_optimizers = 'build_side_probe_side'")
    resets: list[str] = []
    if object_size is not None:  # a huge line: a larger pool for this statement only
        row = conn.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
        if row is not None:
            resets = [f"SET memory_limit = '{row[0]}'", f"SET threads = {int(row[1])}"]
        conn.execute(f"SET memory_limit = '{pool}'")
        # One thread: each reads its own buffer of a few times the line's size, and
        # with two the 40 MB line of a test ran out of the pool on a busy machine.
        conn.execute("SET threads = 1")
    with cleanup(
        conn,
        "RESET disabled_optimizers",
        *resets,
        "DROP TABLE IF EXISTS _mp_dups",
        "DROP TABLE IF EXISTS _mp_stored",
    ):
        inserted = _count(
            conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM ({select})")
        )
        if plan.columns and not scanned:  # in the huge line's larger pool
            fill_stored(conn, table, plan.columns, f"rowid >= {int(params['start'])}")
    # Lines neither skipped as losers nor inserted were identical to stored rows.
    skipped += max(0, lines - skipped - inserted) if lines else 0
    malformed = _count(
        conn.execute(f"DELETE FROM {target} WHERE rowid >= $start AND event_time IS NULL", params)
    )
    fixed = 0
    if dedup and merge and inserted > malformed:
        fixed = _merge_losers(conn, target, params)
    elif dedup and needs_fix and inserted > malformed:
        fixed = _delete_losers(conn, target, params)
    if plan.columns:
        # New columns were filled for the stored rows too: count every day then.
        scope = "true" if plan.added and params["start"] else "rowid >= $start"
        touched = [
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT {EVENT_DAY} FROM {target} WHERE {scope}",
                params if scope != "true" else [],
            ).fetchall()
        ]
        census(conn, table=table, day=EVENT_DAY, days=touched)
    return WindowCounts(inserted - malformed - fixed, skipped + fixed, malformed)


def _lines_outside(
    conn: duckdb.DuckDBPyConnection,
    staged: Sequence[StagedFile],
    days: ProjectDays,
    *,
    legacy_tz: str | None,
    object_size: int | None,
) -> int:
    """Lines of days outside `days` (not stored, so not duplicates either).

    Only a fetch's first and last export windows can hold such lines; the others
    are not read.
    """
    if days.first is None or days.last is None:
        return 0
    from zoneinfo import ZoneInfo

    from mixpanel_data._internal.storage.days import project_days

    zone, legacy = ZoneInfo(days.zone), legacy_tz is not None
    edges = []
    for f in staged:
        lo, hi = project_days(f.window.start, f.window.end, zone=zone, legacy=legacy)
        if lo < days.first or hi > days.last:
            edges.append(f.path)
    if not edges:
        return 0
    source = (
        f"read_json({_files(edges)}, format = 'newline_delimited', "
        """columns = {event: 'VARCHAR', properties: 'STRUCT("time" VARCHAR)'}, """
        f"ignore_errors = true{_object_size_option(object_size)})"
    )
    ts = _time_expr('properties."time"', legacy_tz)
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT {ts} AS ts FROM {source} WHERE event IS NOT NULL) "
        f"WHERE ts IS NOT NULL AND NOT ({days.keeps_sql('ts')})"
    ).fetchone()
    return int(row[0]) if row else 0


def _count_lines(path: Path) -> int:
    """Non-blank lines of a staged file: the rows ``read_json`` reads (it skips blank ones)."""
    lines, carry = 0, b""
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            body, carry = block[:cut], block[cut:]
            if b"\n\n" in body or body.startswith(b"\n"):
                lines += sum(1 for line in body.split(b"\n")[:-1] if line.strip())
            else:
                lines += body.count(b"\n")
    return lines + bool(carry.strip())


def _skip_stored(
    conn: duckdb.DuckDBPyConnection, target: str, select: str, windows: Sequence[DateWindow]
) -> str:
    """Wrap `select` so that lines identical to a row stored near `windows` are dropped.

    The stored rows of the windows' days (a day either side, as ``_overlaps``
    looks) become fixed-width (key hash, time, two hashes of the properties
    text) in ``_mp_stored``; an incoming line matching all four is a copy of a
    stored row. Any row range would be correct (a key includes its time); the
    days only bound the work.
    """
    from datetime import UTC, datetime, timedelta

    def utc(day: Any) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    first = min(w.start for w in windows)
    bounds = [utc(first - timedelta(days=1)), utc(max(w.end for w in windows) + timedelta(days=2))]
    row = conn.execute(
        f"SELECT count(*) FROM {target} WHERE event_time >= ? AND event_time < ?", bounds
    ).fetchone()
    if row and row[0] > SKIP_STORED_ROWS:
        # Too many to hash at once in the pool: only whole hours from the first
        # day on, up to the cap; lines of the other hours go through the merge.
        hours = conn.execute(
            f"SELECT time_bucket(INTERVAL 1 HOUR, event_time) AS b, count(*) FROM {target} "
            "WHERE event_time >= ? AND event_time < ? GROUP BY b ORDER BY b",
            bounds,
        ).fetchall()
        lo = hi = utc(first)
        taken = 0
        for bucket, n in hours:
            if bucket < lo:
                continue
            if taken + n > SKIP_STORED_ROWS:
                break
            taken += n
            hi = bucket + timedelta(hours=1)
        if hi == lo:
            return select
        bounds = [lo, hi]
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _mp_stored AS
        SELECT {_key_hash("event_name", "distinct_id", "insert_id")} AS h, event_time AS ts,
               hash(properties::VARCHAR) AS p1, hash(properties::VARCHAR, 'mp-props') AS p2
        FROM {target} WHERE event_time >= ? AND event_time < ?""",
        bounds,
    )
    # A plain anti-join on computed columns: a correlated NOT EXISTS on expressions of
    # the properties would make DuckDB materialize every incoming line first.
    return f"""
        SELECT n.* FROM (
            SELECT *, {_key_hash("event_name", "distinct_id", "insert_id")} AS mh,
                   hash(properties::VARCHAR) AS mp1,
                   hash(properties::VARCHAR, 'mp-props') AS mp2
            FROM ({select})
        ) n
        ANTI JOIN _mp_stored o
          ON o.h = n.mh AND o.ts = n.event_time AND o.p1 = n.mp1 AND o.p2 = n.mp2
    """


def _merge_losers(conn: duckdb.DuckDBPyConnection, target: str, params: dict[str, Any]) -> int:
    """Dedup the new rows together with the stored rows of the span they cover.

    The same rule as ``_delete_losers`` (per exact key the largest processing
    time wins, then the largest properties text, then the newest row), applied
    to the rows whose ``event_time`` lies between the new rows' first and last;
    a key includes its time, so no other row can compete. The span is cut into
    time slices of at most MERGE_SLICE_ROWS rows and each slice is settled on its
    own, so the work and memory of a merge follow the days it replaces (an
    ``--update`` re-fetching six days of a large table), not the table.
    """
    bounds = conn.execute(
        f"SELECT min(event_time), max(event_time) FROM {target} WHERE rowid >= $start", params
    ).fetchone()
    if not bounds or bounds[0] is None:
        return 0
    span = {"lo": bounds[0], "hi": bounds[1]}
    # Rows per hour of the span (a scan of the time column only), packed into slices.
    hours = conn.execute(
        f"SELECT time_bucket(INTERVAL 1 HOUR, event_time) AS b, count(*) FROM {target} "
        "WHERE event_time BETWEEN $lo AND $hi GROUP BY b ORDER BY b",
        span,
    ).fetchall()
    slices: list[tuple[Any, Any]] = []
    first, rows = hours[0][0], 0
    for bucket, n in hours:
        if rows and rows + n > MERGE_SLICE_ROWS:
            slices.append((first, bucket))
            first, rows = bucket, 0
        rows += n
    slices.append((first, None))
    deleted = 0
    for a, b in slices:
        where = "event_time BETWEEN $lo AND $hi AND event_time >= $a"
        if b is not None:
            where += " AND event_time < $b"
        deleted += _merge_slice(conn, target, where, {**span, "a": a, "b": b})
    return deleted


def _merge_slice(
    conn: duckdb.DuckDBPyConnection, target: str, where: str, params: dict[str, Any]
) -> int:
    """Settle one time slice of a merge; return the rows deleted.

    Keys-only first: the slice's rows as fixed-width (row id, key hash, time, check
    hash), keeping the keys seen more than once. Only those rows have their
    properties read, as two 64-bit hashes. A key whose rows are all identical
    (the common case: a re-fetched day) keeps one of them; which one cannot change
    the table's contents, so it is the stored row (deleting a freshly inserted one
    is cheaper than rewriting a stored row group at the checkpoint). Keys whose rows
    differ, and key-hash collisions, are ranked exactly as ``_delete_losers`` does:
    largest processing time, then largest properties text, then newest row.
    """
    if params.get("b") is None:
        params = {k: v for k, v in params.items() if k != "b"}
    hashed = _key_hash("event_name", "distinct_id", "insert_id")
    check = _check_hash("event_name", "distinct_id", "insert_id")
    scratch = ("_mp_merge_keys", "_mp_merge_rank")
    with cleanup(conn, *(f"DROP TABLE IF EXISTS {name}" for name in scratch)):
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _mp_merge_keys AS
            WITH k AS MATERIALIZED (
                SELECT rowid AS rid, {hashed} AS h, event_time AS ts, {check} AS h2
                FROM {target} WHERE {where}
            ),
            g AS (SELECT h, ts FROM k GROUP BY ALL HAVING count(*) > 1)
            SELECT k.* FROM k SEMI JOIN g ON k.h = g.h AND k.ts = g.ts""",
            params,
        )
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _mp_merge_rank AS
            WITH c AS (
                SELECT k.rid, k.h, k.ts, k.h2, hash(t.properties::VARCHAR) AS p1,
                       hash(t.properties::VARCHAR, 'mp-props') AS p2
                FROM {target} t JOIN _mp_merge_keys k ON t.rowid = k.rid
                WHERE {where.replace("event_time", "t.event_time")}
            ),
            b AS (
                SELECT rid, min(h2) OVER w = max(h2) OVER w
                            AND min(p1) OVER w = max(p1) OVER w
                            AND min(p2) OVER w = max(p2) OVER w AS same,
                       min(rid) OVER w AS keep  -- identical rows: the stored one stays
                FROM c WINDOW w AS (PARTITION BY h, ts)
            )
            SELECT rid, CASE WHEN same THEN rid <> keep END AS lose FROM b""",
            params,
        )
        deleted = _count(
            conn.execute(
                f"DELETE FROM {target} WHERE {where} AND rowid IN "
                "(SELECT rid FROM _mp_merge_rank WHERE lose)",
                params,
            )
        )
        # The rare rest (lose IS NULL): ranked exactly, as _delete_losers does.
        deleted += _count(
            conn.execute(
                f"""DELETE FROM {target} WHERE rowid IN (
                    SELECT rid FROM (
                        SELECT t.rowid AS rid, row_number() OVER (
                            PARTITION BY t.event_name, t.distinct_id, t.event_time, t.insert_id
                            ORDER BY {_PT_T} DESC NULLS LAST,
                                     t.properties::VARCHAR DESC, t.rowid DESC) AS rn
                        FROM {target} t
                        SEMI JOIN (SELECT rid FROM _mp_merge_rank WHERE lose IS NULL) u
                          ON t.rowid = u.rid
                        WHERE {where.replace("event_time", "t.event_time")}
                    ) WHERE rn > 1)""",
                params,
            )
        )
    return deleted


def _delete_losers(conn: duckdb.DuckDBPyConnection, target: str, params: dict[str, Any]) -> int:
    """Delete all but the newest row of each duplicated key among the new rows.

    A merge with stored rows goes through ``_merge_losers`` (same rule, sliced).
    """
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _mp_dup_keys AS "
        f"SELECT event_name, distinct_id, event_time, insert_id FROM {target} "
        "WHERE rowid >= $start GROUP BY ALL HAVING count(*) > 1",
        params,
    )
    with cleanup(conn, "DROP TABLE IF EXISTS _mp_dup_keys"):
        return _count(
            conn.execute(
                f"""DELETE FROM {target} WHERE rowid IN (
                    SELECT rid FROM (
                        SELECT t.rowid AS rid, row_number() OVER (
                            PARTITION BY t.event_name, t.distinct_id, t.event_time, t.insert_id
                            ORDER BY {_PT_T} DESC NULLS LAST,
                                     t.properties::VARCHAR DESC, t.rowid DESC) AS rn
                        FROM {target} t
                        SEMI JOIN _mp_dup_keys d
                          ON t.event_name = d.event_name AND t.event_time = d.event_time
                         AND t.insert_id = d.insert_id
                         AND t.distinct_id IS NOT DISTINCT FROM d.distinct_id
                        WHERE t.rowid >= $start
                    ) WHERE rn > 1)""",
                params,
            )
        )


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _slot_text(columns: Sequence[TypedColumn]) -> Callable[[TypedColumn], str]:
    """The JSON text of each column's value in a ``v`` list of extracted values."""
    slot = {c.prop: i + 1 for i, c in enumerate(columns)}
    return lambda c: f"(v[{slot[c.prop]}]::VARCHAR)"


def commit_profiles(
    conn: duckdb.DuckDBPyConnection, *, table: str, chunks: Sequence[tuple[Path, int]]
) -> WindowCounts:
    """Upsert staged engage records into `table` on distinct_id: the newer fetch wins.

    Call inside an open transaction. Chunks (staging files of at most
    ``PROFILE_CHUNK_BYTES``) are upserted one statement set at a time, so the
    commit's memory is one chunk's whatever the number of profiles; a profile
    repeated in a later chunk replaces the earlier one and counts as a duplicate.
    """
    target = quote_ident(table)
    chunks = [(path, lines) for path, lines in chunks if lines > 0]
    rows = duplicates = malformed = 0
    track = len(chunks) > 1  # ids of earlier chunks, to count repeats as duplicates
    if track:
        conn.execute("CREATE OR REPLACE TEMP TABLE _mp_seen (distinct_id VARCHAR)")
    with cleanup(conn, *(["DROP TABLE IF EXISTS _mp_seen"] if track else [])):
        for path, lines in chunks:
            source = (
                f"read_json({sql_literal(str(path))}, format = 'newline_delimited', "
                "columns = {\"$distinct_id\": 'VARCHAR', \"$properties\": 'JSON'}, "
                "ignore_errors = true)"
            )
            plan = plan_batch(conn, table=table, kind="profiles", paths=[path])
            paths = ", ".join(path_literal(c.prop) for c in plan.columns)
            typed = typed_select(plan.columns, _slot_text(plan.columns))
            values = f", json_extract(props, [{paths}]) AS v" if plan.columns else ""
            names = [quote_ident(c.column) for c in plan.columns]
            cols = ", ".join(["distinct_id", "last_seen", "properties", *names])
            if names:
                cols += f", {UNFIT}"
            conn.execute(
                f"""CREATE OR REPLACE TEMP TABLE _mp_profiles AS
                SELECT distinct_id,
                       TRY_CAST(json_extract_string(props, '$."$last_seen"') AS TIMESTAMP)
                           ::TIMESTAMPTZ AS last_seen,
                       props AS properties{typed}
                FROM (
                    SELECT "$distinct_id" AS distinct_id,
                           coalesce("$properties", '{{}}')::JSON AS props{values}
                    FROM {source}
                    QUALIFY row_number() OVER (PARTITION BY "$distinct_id") = 1
                )"""
            )
            with cleanup(conn, "DROP TABLE IF EXISTS _mp_profiles"):
                bad = _count(conn.execute("DELETE FROM _mp_profiles WHERE distinct_id IS NULL"))
                repeats = 0
                if track:
                    repeats = _count(
                        conn.execute(
                            "SELECT count(*) FROM _mp_profiles p "
                            "SEMI JOIN _mp_seen s ON p.distinct_id = s.distinct_id"
                        )
                    )
                replaced = _count(
                    conn.execute(
                        f"DELETE FROM {target} t USING _mp_profiles p "
                        "WHERE t.distinct_id = p.distinct_id"
                    )
                )
                added = _count(
                    conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM _mp_profiles")
                )
                if track:
                    conn.execute("INSERT INTO _mp_seen SELECT distinct_id FROM _mp_profiles")
            rows += added - replaced
            malformed += bad
            duplicates += max(0, lines - bad - added) + repeats
    census(conn, table=table, day=None)
    return WindowCounts(rows, duplicates, malformed)
