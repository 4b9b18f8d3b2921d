"""The bulk path: export bytes to a staging file, then DuckDB parses, dedups and commits.

No per-row Python work: a window's response body is written to a temp file as
it arrives (counting lines with ``bytes.count``), and one SQL statement lets
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

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mixpanel_data._internal.api_client import MixpanelAPIClient, translate_transport_errors
from mixpanel_data._internal.jsonl import is_terminated_early
from mixpanel_data._internal.storage import quote_ident
from mixpanel_data._internal.windows import DateWindow
from mixpanel_data.exceptions import NetworkError, RateLimitError, Retryable

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "StagedFile",
    "WindowCounts",
    "commit_events",
    "commit_profiles",
    "download_window",
    "sql_literal",
]

CHUNK = 1 << 20
_BLANK_RUN = re.compile(rb"(?<=\n)\n")
# DuckDB's buffer pool for ingestion; larger windows spill to disk, so RSS stays flat.
INGEST_MEMORY_LIMIT = "256MB"


@dataclass(frozen=True)
class StagedFile:
    """A window's export body on local disk, with its non-blank line count."""

    window: DateWindow
    path: Path
    lines: int
    size: int
    attempts: int


@dataclass(frozen=True)
class WindowCounts:
    """What committing one window did."""

    rows_inserted: int
    duplicates: int
    malformed: int


def sql_literal(text: str) -> str:
    """Quote a string as a SQL literal (for table functions that take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


class _LineCounter:
    """Count non-blank lines across chunk boundaries at C speed."""

    def __init__(self) -> None:
        self.newlines = 0
        self.blank = 0
        self.last = b"\n"  # a newline at the very start is a blank line

    def feed(self, chunk: bytes) -> None:
        self.newlines += chunk.count(b"\n")
        if chunk[:1] == b"\n" and self.last == b"\n":
            self.blank += 1
        if b"\n\n\n" in chunk:
            self.blank += len(_BLANK_RUN.findall(chunk))
        else:
            self.blank += chunk.count(b"\n\n")
        self.last = chunk[-1:]

    @property
    def lines(self) -> int:
        tail = 0 if self.last in (b"\n", b"") else 1
        return self.newlines + tail - self.blank


def _tail_line(path: Path, size: int) -> bytes:
    """Return the last non-blank line of a file (reads backwards in blocks)."""
    if size == 0:
        return b""
    block = 1 << 16
    with open(path, "rb") as fh:
        data = b""
        pos = size
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
            stripped = data.rstrip()
            if b"\n" in stripped or pos == 0:
                return stripped.rsplit(b"\n", 1)[-1]
    return b""


def download_window(
    api: MixpanelAPIClient,
    window: DateWindow,
    params: Mapping[str, Any],
    dest: Path,
    *,
    gzip: bool,
    on_bytes: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StagedFile:
    """Download one window's export into `dest`, retrying retryable failures.

    A 200 body that ends in ``terminated early`` or a cut record (contract §4)
    counts as a network failure and is fetched again.
    """
    started = time.monotonic()
    attempt = 0
    query = {**params, "from_date": window.start.isoformat(), "to_date": window.end.isoformat()}
    headers = {"Accept-Encoding": "gzip" if gzip else "identity", "Accept": "text/plain"}
    while True:
        attempt += 1
        counter = _LineCounter()
        size = 0
        try:
            with (
                api.stream("GET", "export", "export", params=query, headers=headers) as response,
                open(dest, "wb") as fh,
                translate_transport_errors(api, "GET", str(response.request.url)),
            ):
                for chunk in response.iter_bytes(CHUNK):
                    fh.write(chunk)
                    counter.feed(chunk)
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
                    raise NetworkError(
                        f"export of {window} ended in a cut record; retrying the window"
                    ) from None
            return StagedFile(window, dest, counter.lines, size, attempt)
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
            sleep(delay)


def _time_expr(legacy_tz: str | None) -> str:
    base = "to_timestamp(TRY_CAST(k[1] AS DOUBLE))"
    if legacy_tz is None:
        return base
    # Legacy projects export the epoch shifted by the project's UTC offset
    # (contract §3.5): read it as wall-clock time in the project zone.
    return f"timezone({sql_literal(legacy_tz)}, ({base})::TIMESTAMP)"


def _select_window(path: Path, *, legacy_tz: str | None, dedup: bool) -> str:
    """SELECT the window's rows (valid and malformed), deduplicated unless told not to."""
    source = (
        f"read_json({sql_literal(str(path))}, format = 'newline_delimited', "
        "columns = {event: 'VARCHAR', properties: 'JSON'}, ignore_errors = true)"
    )
    # Malformed lines come back as NULL rows; they get a unique key so they are
    # never merged, and a NULL event_time so they can be counted and removed.
    inner = f"""
        SELECT event AS event_name,
               CASE WHEN ok THEN {_time_expr(legacy_tz)} END AS event_time,
               k[2] AS distinct_id,
               CASE WHEN NOT ok THEN uuid()::VARCHAR
                    ELSE coalesce(k[3], md5(event || properties::VARCHAR)) END AS insert_id,
               properties,
               TRY_CAST(k[4] AS BIGINT) AS pt
        FROM (
            SELECT *, (event IS NOT NULL AND TRY_CAST(k[1] AS DOUBLE) IS NOT NULL) AS ok
            FROM (
                SELECT event, properties,
                       json_extract_string(properties,
                           ['$.time', '$.distinct_id', '$."$insert_id"',
                            '$.mp_processing_time_ms']) AS k
                FROM {source}
            )
        )
    """
    if not dedup:
        return inner
    return f"""
        SELECT * FROM ({inner})
        QUALIFY row_number() OVER (
            PARTITION BY event_name, distinct_id, event_time, insert_id
            ORDER BY pt DESC NULLS LAST, properties::VARCHAR DESC) = 1
    """


_COLS = "event_name, event_time, distinct_id, insert_id, properties"
_KEY_MATCH = (
    "t.event_time = w.event_time AND t.event_name = w.event_name "
    "AND t.insert_id = w.insert_id AND t.distinct_id IS NOT DISTINCT FROM w.distinct_id"
)


def commit_events(
    conn: duckdb.DuckDBPyConnection,
    *,
    table: str,
    staged: StagedFile,
    dedup: bool,
    merge: bool,
    legacy_tz: str | None,
) -> WindowCounts:
    """Insert one staged window into `table` (call inside an open transaction).

    ``merge`` is for appends over data that may already hold the same events:
    existing rows lose to newer versions and identical keys are not added twice.
    """
    target = quote_ident(table)
    if staged.size == 0:
        return WindowCounts(0, 0, 0)
    select = _select_window(staged.path, legacy_tz=legacy_tz, dedup=dedup)
    if not merge:
        start = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
        inserted = _count(conn.execute(f"INSERT INTO {target} SELECT {_COLS} FROM ({select})"))
        malformed = _count(
            conn.execute(
                f"DELETE FROM {target} WHERE rowid >= ? AND event_time IS NULL",
                [int(start[0]) if start else 0],
            )
        )
        rows = inserted - malformed
        return WindowCounts(rows, max(0, staged.lines - inserted), malformed)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _mp_window AS {select}")
    try:
        malformed = _count(conn.execute("DELETE FROM _mp_window WHERE event_time IS NULL"))
        parsed = staged.lines - malformed
        if dedup:
            replaced = _count(
                conn.execute(
                    f"DELETE FROM {target} t USING _mp_window w WHERE {_KEY_MATCH} "
                    "AND coalesce(w.pt, -1) >= coalesce(TRY_CAST("
                    "json_extract_string(t.properties, '$.mp_processing_time_ms') AS BIGINT), -1)"
                )
            )
            added = _count(
                conn.execute(
                    f"INSERT INTO {target} SELECT {_COLS} FROM _mp_window w "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {_KEY_MATCH})"
                )
            )
            rows = added - replaced
        else:
            rows = _count(conn.execute(f"INSERT INTO {target} SELECT {_COLS} FROM _mp_window"))
        return WindowCounts(rows, max(0, parsed - rows), malformed)
    finally:
        conn.execute("DROP TABLE IF EXISTS _mp_window")


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def commit_profiles(
    conn: duckdb.DuckDBPyConnection, *, table: str, path: Path, lines: int
) -> WindowCounts:
    """Upsert staged engage records into `table` on distinct_id: the newer fetch wins."""
    target = quote_ident(table)
    if lines == 0:
        return WindowCounts(0, 0, 0)
    source = (
        f"read_json({sql_literal(str(path))}, format = 'newline_delimited', "
        "columns = {\"$distinct_id\": 'VARCHAR', \"$properties\": 'JSON'}, "
        "ignore_errors = true)"
    )
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _mp_profiles AS
        SELECT "$distinct_id" AS distinct_id,
               TRY_CAST(json_extract_string(coalesce("$properties", '{{}}'), '$."$last_seen"')
                        AS TIMESTAMP)::TIMESTAMPTZ AS last_seen,
               coalesce("$properties", '{{}}')::JSON AS properties
        FROM {source}
        QUALIFY row_number() OVER (PARTITION BY "$distinct_id") = 1"""
    )
    try:
        malformed = _count(conn.execute("DELETE FROM _mp_profiles WHERE distinct_id IS NULL"))
        replaced = _count(
            conn.execute(
                f"DELETE FROM {target} t USING _mp_profiles p WHERE t.distinct_id = p.distinct_id"
            )
        )
        added = _count(
            conn.execute(
                f"INSERT INTO {target} SELECT distinct_id, last_seen, properties FROM _mp_profiles"
            )
        )
        rows = added - replaced
        return WindowCounts(rows, max(0, lines - malformed - added), malformed)
    finally:
        conn.execute("DROP TABLE IF EXISTS _mp_profiles")
