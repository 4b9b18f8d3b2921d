"""The Raw Event Export endpoint (contract §4).

Unfiltered calls stream the project's cached day files as they are (1 MiB reads,
no per-line work) or their cached gzip fragments. Filters (``event``, ``where``,
``limit``, ``time_in_ms``) read the same files line by line and emit the matching
lines' original bytes, so a filtered export is an exact subset of the unfiltered one.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

from mixpanel_data.emulator.expressions import ExpressionError, compile_filter
from mixpanel_data.emulator.faults import Fault
from mixpanel_data.emulator.responses import PLAIN, Reply
from mixpanel_data.emulator.routing import ApiRequest, EmulatorError
from mixpanel_data.emulator.streams import (
    CHUNK_SIZE,
    GZIP_MIN_BYTES,
    GzipFragments,
    gzip_stream,
    insert_malformed_line,
    iter_files,
    peek,
    prefetched,
    terminate_early,
)

__all__ = ["MAX_LIMIT", "export", "parse_dates"]

MAX_LIMIT = 100_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z", re.ASCII)


def parse_dates(params: Mapping[str, str], *, today: dt.date) -> tuple[dt.date, dt.date]:
    """Validate ``from_date``/``to_date`` (inclusive) with Mixpanel's messages."""
    dates: list[dt.date] = []
    for name in ("from_date", "to_date"):
        raw = (params.get(name) or "").strip()
        if not raw:
            raise EmulatorError(400, f"'{name}' is a required parameter")
        try:
            if not _DATE.match(raw):
                raise ValueError(raw)
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise EmulatorError(400, f"Error in {name}: invalid date") from None
        if day.year < 2000:
            raise EmulatorError(400, f"Error in {name}: invalid date, bad year")
        dates.append(day)
    start, end = dates
    # "today" is in the project timezone; a client using UTC trips this (contract §3.4).
    if end > today:
        raise EmulatorError(400, "to_date cannot be later than today")
    if start > end:
        raise EmulatorError(400, "from_date cannot be later than to_date")
    return start, end


def export(
    request: ApiRequest,
    *,
    accept_gzip: bool,
    faults: list[Fault],
    fragments: GzipFragments,
    stop: threading.Event,
) -> Reply:
    """Answer one export call; ``faults`` are the export-level ones that fired."""
    project = request.project
    params = request.params
    start, end = parse_dates(params, today=project.today_now())
    events = _event_filter(params.get("event"))
    keep = _where_filter(params.get("where"))
    limit = _limit(params.get("limit"))
    in_ms = (params.get("time_in_ms") or "").strip().lower() in ("true", "1")

    days = [day for day in project.data_dates if start <= day <= end]
    filtered = events is not None or keep is not None or limit is not None or in_ms
    byte_faults = [f for f in faults if f.kind in ("malformed_line", "terminated_early")]
    paths = prefetched(days, project.export_day_path)  # day N+1 is generated while N is sent

    if not filtered and not byte_faults:
        if not _larger_than(project, days, GZIP_MIN_BYTES):
            small = b"".join(iter_files([project.export_day_path(day) for day in days]))
            chunks = [small] if small else []
            return Reply(status=200, body=chunks, content_type=PLAIN, length=len(small))
        if accept_gzip:
            parts = prefetched(days, lambda day: fragments.fragment(project.export_day_path(day)))
            return Reply(
                status=200,
                body=fragments.gzip_body(parts, stop=stop),
                content_type=PLAIN,
                gzip=True,
            )
        return Reply(status=200, body=iter_files(paths, stop=stop), content_type=PLAIN)

    body: Iterable[bytes] = (
        _filtered(paths, events=events, keep=keep, limit=limit, in_ms=in_ms, stop=stop)
        if filtered
        else iter_files(paths, stop=stop)
    )
    for fault in byte_faults:
        if fault.kind == "malformed_line":
            body = insert_malformed_line(body, fault.after_bytes)
        else:
            body = terminate_early(body, fault.after_bytes)
    head, rest, exhausted = peek(body, GZIP_MIN_BYTES + 1)
    if exhausted and len(head) <= GZIP_MIN_BYTES:
        return Reply(status=200, body=[head] if head else [], content_type=PLAIN, length=len(head))
    if accept_gzip:
        return Reply(
            status=200, body=gzip_stream(chain([head], rest)), content_type=PLAIN, gzip=True
        )
    return Reply(status=200, body=chain([head], rest), content_type=PLAIN)


def _larger_than(project: Any, days: list[dt.date], size: int) -> bool:
    """Whether the days' export holds more than ``size`` bytes (reads as few days as needed)."""
    total = 0
    for day in days:
        total += project.export_day_path(day).stat().st_size
        if total > size:
            return True
    return False


def _filtered(
    paths: Iterable[Path],
    *,
    events: frozenset[str] | None,
    keep: Callable[[Mapping[str, Any]], bool] | None,
    limit: int | None,
    in_ms: bool,
    stop: threading.Event,
) -> Iterator[bytes]:
    batch: list[bytes] = []
    size = 0
    sent = 0
    for path in paths:
        if stop.is_set():
            return
        with open(path, "rb") as handle:
            for line in handle:
                record = orjson.loads(line)
                if events is not None and record.get("event") not in events:
                    continue
                properties = record.get("properties") or {}
                if keep is not None and not _safe(keep, properties):
                    continue
                if in_ms:
                    line = _with_ms(record)
                batch.append(line)
                size += len(line)
                sent += 1
                if limit is not None and sent >= limit:
                    yield b"".join(batch)
                    return
                if size >= CHUNK_SIZE:
                    yield b"".join(batch)
                    batch, size = [], 0
    if batch:
        yield b"".join(batch)


def _with_ms(record: dict[str, Any]) -> bytes:
    """``time_in_ms=true``: integer epoch milliseconds (the likeliest form, contract §4).

    The synthetic data has whole seconds, so a deterministic sub-second part is
    derived from the dedup 4-tuple: exact duplicates stay exact duplicates.
    """
    props = record.get("properties") or {}
    seconds = props.get("time")
    if isinstance(seconds, int):
        parts = (record.get("event"), props.get("distinct_id"), seconds, props.get("$insert_id"))
        key = "|".join(map(str, parts))
        props["time"] = seconds * 1000 + zlib.crc32(key.encode()) % 1000
    return orjson.dumps(record) + b"\n"


def _event_filter(raw: str | None) -> frozenset[str] | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        names = orjson.loads(raw)
    except orjson.JSONDecodeError:
        names = None
    # The parameter is a JSON array string, never repeated keys (contract §3.1).
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise EmulatorError(400, 'event must be a JSON array of event names, e.g. ["Login"]')
    return frozenset(names) if names else None


def _where_filter(raw: str | None) -> Callable[[Mapping[str, Any]], bool] | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        return compile_filter(raw)
    except ExpressionError as exc:
        raise EmulatorError(400, f"invalid 'where' expression: {exc}") from None


def _limit(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_LIMIT:
        raise EmulatorError(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got '{raw}'")
    return limit


def _safe(keep: Callable[[Mapping[str, Any]], bool], properties: Mapping[str, Any]) -> bool:
    try:
        return bool(keep(properties))
    except ExpressionError:
        return False  # a record the expression cannot judge is not kept
