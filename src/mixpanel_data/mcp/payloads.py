"""Compact tool answers: a summary first, then at most ``max_rows`` rows, as one-line JSON.

An agent pays for every token it reads, so answers are shaped for it: tables
are ``columns`` plus row arrays (not one object per row), long cells are cut
with a note of how much was cut, and a truncated result says how many rows it
had and how to get a smaller one. Values become JSON-ready here: timestamps as
ISO strings, decimals as numbers, bytes as a length note.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

__all__ = [
    "ANSWER_BYTES",
    "CELL_CHARS",
    "MAX_BYTES",
    "cap_bytes",
    "dumps",
    "json_value",
    "records_table",
    "result_payload",
    "table",
]

CELL_CHARS = 500  # longer strings (JSON properties) are cut to this many characters
LIST_ITEMS = 100  # longer lists (and objects) keep this many items, then a note
# A table stops adding rows at this many bytes of JSON while it is built (one query once
# returned 194 MB), before the answer's own cap below cuts it to what an agent should read.
ANSWER_BYTES = 200_000
# One answer's JSON at most (about 4k tokens; `mp mcp --max-bytes`): rows beyond it are
# cut, and the answer says so.
MAX_BYTES = 16_000


def json_value(value: Any, *, cell_chars: int = CELL_CHARS, list_items: int = LIST_ITEMS) -> Any:
    """Return ``value`` as JSON-ready data, cutting long strings to ``cell_chars``
    and long lists and objects to ``list_items``."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if len(value) > cell_chars:
            return f"{value[:cell_chars]}…(+{len(value) - cell_chars} chars)"
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) <= 48:
            return "base64:" + base64.b64encode(raw).decode()
        return f"<{len(raw)} bytes>"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {
            str(k): json_value(v, cell_chars=cell_chars, list_items=list_items)
            for k, v in items[:list_items]
        }
        if len(items) > list_items:
            out["…"] = f"object cut at {list_items} keys"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        cut = [
            json_value(v, cell_chars=cell_chars, list_items=list_items) for v in seq[:list_items]
        ]
        if len(seq) > list_items:
            cut.append(f"…(list cut at {list_items} items)")
        return cut
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return json_value(to_dict(), cell_chars=cell_chars, list_items=list_items)
    return str(value)


def dumps(payload: Any) -> str:
    """Serialize a payload as compact one-line JSON (what the agent reads)."""
    return orjson.dumps(json_value(payload, cell_chars=10**9, list_items=10**9)).decode()


def _size(payload: Any) -> int:
    return len(dumps(payload).encode())


def cap_bytes(payload: dict[str, Any], *, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Cut an answer's longest list (its ``rows`` first) until its JSON fits ``max_bytes``.

    Rows, not bytes, are what an agent can act on, so whole rows are dropped from the end,
    and the answer says how many it kept, of how many, and why.
    """
    full = _size(payload)
    if full <= max_bytes:
        return payload
    lists = [k for k, v in payload.items() if isinstance(v, list) and v]
    if not lists:
        return payload
    key = "rows" if "rows" in lists else max(lists, key=lambda k: _size(payload[k]))
    items: list[Any] = payload[key]

    total = payload.get("row_count", len(items)) if key == "rows" else len(items)

    def cut(n: int) -> dict[str, Any]:
        out = dict(payload)
        if key == "rows":
            out["returned"] = n
        out["truncated"] = True
        out["byte_cap"] = max_bytes
        out["note"] = (
            f"showing the first {n} of {total} {key}: cut to stay under {max_bytes:,} bytes "
            f"({full:,} in full); aggregate, select fewer columns, or ask for fewer rows"
        )
        out[key] = out.pop(key)[:n]  # the bulk last, after what it is and how it was cut
        return out

    lo, hi = 0, len(items) - 1  # the largest n whose answer fits (0 if even one row is too big)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _size(cut(mid)) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    total_rows: int | None = None,
    max_rows: int,
    hint: str = "aggregate, filter or add LIMIT, or raise max_rows",
    max_bytes: int = ANSWER_BYTES,
) -> dict[str, Any]:
    """Shape rows as a compact table: counts and a truncation note before the data."""
    total = len(rows) if total_rows is None else total_rows
    shown: list[list[Any]] = []
    size = 0
    for row in rows[:max_rows]:
        shaped = [json_value(v) for v in row]
        try:
            size += len(orjson.dumps(shaped, default=str)) + 1
        except TypeError:  # an integer past 64 bits: its text is about as long
            size += len(repr(shaped)) + 1
        if size > max_bytes:
            break
        shown.append(shaped)
    out: dict[str, Any] = {"row_count": total, "returned": len(shown)}
    if total > len(shown):
        out["truncated"] = True
        why = f" (answer capped at {max_bytes:,} bytes)" if size > max_bytes else ""
        out["note"] = f"showing the first {len(shown)} of {total} rows{why}; {hint}"
    out["columns"] = list(columns)
    out["rows"] = shown
    return out


def records_table(
    records: Iterable[Mapping[str, Any]], *, max_rows: int, hint: str | None = None
) -> dict[str, Any]:
    """Turn a list of dicts (tidy rows) into a compact table; columns are the union of keys."""
    items = list(records)
    columns = list(dict.fromkeys(k for r in items for k in r))
    rows = [[r.get(c) for c in columns] for r in items]
    if hint is None:
        return table(columns, rows, max_rows=max_rows)
    return table(columns, rows, max_rows=max_rows, hint=hint)


def _summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields of a result's ``to_dict()`` (what it is, totals), not its bulk."""
    return {
        k: json_value(v)
        for k, v in data.items()
        if v is None or isinstance(v, str | int | float | bool)
        if k not in ("raw", "computed_at")
    }


def result_payload(result: Any, *, max_rows: int, hint: str | None = None) -> dict[str, Any]:
    """Describe a typed result compactly: its scalar fields, then its tidy rows, capped.

    Works for any result with ``to_dict()``; results with tidy ``rows`` (live
    reports) show them as a table, others show their lists capped at ``max_rows``.
    """
    data = result.to_dict() if hasattr(result, "to_dict") else {}
    out: dict[str, Any] = {"summary": _summary(data)} if data else {}
    rows = getattr(result, "rows", None)
    if isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows):
        out.update(records_table(rows, max_rows=max_rows, hint=hint))
        return out
    for key, value in data.items():
        if isinstance(value, list):
            if len(value) > max_rows:
                out[f"{key}_count"] = len(value)
                out[f"{key}_note"] = f"showing the first {max_rows} of {len(value)}"
            out[key] = json_value(value[:max_rows], list_items=max(max_rows, LIST_ITEMS))
        elif isinstance(value, Mapping):
            out[key] = json_value(
                dict(list(value.items())[:max_rows]), list_items=max(max_rows, LIST_ITEMS)
            )
    return out
