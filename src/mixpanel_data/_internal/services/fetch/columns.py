"""Typed property columns: which properties get one, of which type, filled how.

Every events (and profiles) table keeps `properties` losslessly; beside it, each
common property gets a plain typed column named like the property, so
``SELECT mp_country_code, count(*) FROM events GROUP BY 1`` reads a column
instead of parsing JSON. The rules (docs/typed-columns.md):

- **Common**: present (non-null) in at least MIN_SHARE of the table's rows (and in at
  least MIN_ROWS rows), estimated
  from samples of each batch; at most MAX_COLUMNS columns, the most common first.
- **Type** from the JSON types seen: a family holding at least DOMINANT of the
  values decides (integers BIGINT, or HUGEINT past 64 bits, with fractions DOUBLE;
  booleans BOOLEAN; strings VARCHAR, or TIMESTAMPTZ when they are Mixpanel date
  strings; lists VARCHAR[]; objects JSON); no family that strong: VARCHAR (JSON if
  lists or objects are among them).
- **Values that do not fit** (a string in a DOUBLE column, a number in a VARCHAR
  one) are counted per column (`mp inspect schema`). A number sent as a string
  is stored converted; what cannot be converted is NULL in the column and stays
  readable in `properties`. Counts are exact: taken from the stored rows of the
  days a commit touched, after dedup.
- **Evolution**: a later batch that makes a property common adds its column (filled
  for the stored rows too); exact counts that call for a wider type widen the
  column (BIGINT to HUGEINT or DOUBLE, anything to VARCHAR or JSON), recomputed from
  `properties`. Both happen in the batch's transaction. A column is never narrowed
  or dropped, so a query that worked keeps working.
- **Names**: exactly the property's. Case twins (``Plan`` and ``plan``; DuckDB names
  are case-insensitive): the more common one gets the column, the other stays in
  `properties` only. Properties that are core columns (``time``, ``distinct_id``,
  ``$insert_id``; profiles' ``$last_seen``) get none; a property named like a core
  column (``event_name``...) gets ``<name>_property``.
"""

# SQL here is built from always-quoted identifiers and escaped literals.
# ruff: noqa: S608

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mixpanel_data._internal.storage.meta_tables import (
    COLUMN_DAYS_TABLE,
    COLUMNS_TABLE,
    ensure_meta,
    quote_ident,
    sql_literal,
)

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "DOMINANT",
    "MAX_COLUMNS",
    "MIN_SHARE",
    "Extraction",
    "Plan",
    "Sample",
    "TypedColumn",
    "census",
    "decide_type",
    "extraction",
    "fill_sql",
    "fill_stored",
    "json_path",
    "load_columns",
    "plan_batch",
    "sample_file",
    "sample_keys",
    "totals",
    "typed_select",
]

# The core column listing, per row, the properties whose value did not fit its column.
UNFIT = "unfit_properties"
MIN_SHARE = 0.01
# ... and in at least this many rows: a tiny table's every key is not "common".
MIN_ROWS = 10
MAX_COLUMNS = 200
DOMINANT = 0.95
# Bytes read from the head, middle and tail of each staged file for the key census.
SAMPLE_SLICE = 1 << 17

FAMILIES = ("bool", "int", "float", "str", "list", "obj")
_JSON_FAMILY = {
    "BOOLEAN": "bool",
    "BIGINT": "int",
    "UBIGINT": "int",
    "DOUBLE": "float",
    "VARCHAR": "str",
    "ARRAY": "list",
    "OBJECT": "obj",
}
# Mixpanel's date property format (ISO 8601 without a zone, read as UTC).
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z?", re.ASCII)
_INT64 = (-(1 << 63), (1 << 63) - 1)

# Per kind: properties that are core columns already, and the core column names.
SKIP = {"events": {"time", "distinct_id", "$insert_id"}, "profiles": {"$last_seen"}}
CORE = {
    "events": {
        "event_name",
        "event_time",
        "event_date",
        "distinct_id",
        "insert_id",
        "properties",
        UNFIT,
    },
    "profiles": {"distinct_id", "last_seen", "properties", UNFIT},
}
_RANK = {
    "BOOLEAN": 0,
    "TIMESTAMPTZ": 0,
    "BIGINT": 0,
    "HUGEINT": 1,
    "DOUBLE": 2,
    "VARCHAR[]": 3,
    "VARCHAR": 4,
    "JSON": 5,
}
_NUMERIC = {"BIGINT", "HUGEINT", "DOUBLE"}


@dataclass(frozen=True)
class TypedColumn:
    """One property's typed column."""

    prop: str
    column: str
    type: str


@dataclass(frozen=True)
class Plan:
    """The typed columns a batch is inserted with, and the DDL that made them."""

    columns: tuple[TypedColumn, ...]
    added: tuple[TypedColumn, ...] = ()


@dataclass
class KeyCounts:
    """Values of one property per JSON family (plus date-like strings and huge ints)."""

    families: Counter[str]
    dates: int = 0
    huge: int = 0

    def present(self) -> int:
        return sum(self.families.values())


def json_path(prop: str) -> str:
    """The JSON path of a top-level key (keys with quotes or backslashes get no column)."""
    return '$."' + prop + '"'


def _usable(prop: str) -> bool:
    return (
        0 < len(prop) <= 255
        and '"' not in prop
        and "\\" not in prop
        and not any(ord(ch) < 32 for ch in prop)
    )


def _family(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "obj"


def _slices(path: Path, size: int) -> Iterable[bytes]:
    """Whole lines from the head, middle and tail of a file (each about SAMPLE_SLICE)."""
    if size <= 3 * SAMPLE_SLICE:
        yield path.read_bytes()
        return
    with open(path, "rb") as fh:
        for start in (0, size // 2, size - SAMPLE_SLICE):
            fh.seek(start)
            block = fh.read(SAMPLE_SLICE)
            if start:
                block = block[block.find(b"\n") + 1 :]
            yield block[: block.rfind(b"\n") + 1]


def _newlines(path: Path) -> int:
    count = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            count += block.count(b"\n")
    return count


@dataclass(frozen=True)
class Sample:
    """One staged file's sampled key counts, records sampled, and estimated records."""

    counts: Mapping[str, KeyCounts]
    lines: int
    estimate: float


def sample_file(path: Path, *, kind: str, newlines: int | None = None) -> Sample:
    """Count each top-level property's values by JSON family in samples of `path`.

    A sample of a few thousand lines per file finds every property over MIN_SHARE and
    its likely type. ``newlines``: the file's newline count if known (the download
    counts them; reading a file again to count cost the writer about 0.9 s per 1M
    events). The fetch samples each file on its download thread, off the writer's path.
    """
    field = "properties" if kind == "events" else "$properties"
    counts: dict[str, KeyCounts] = {}
    lines = 0
    size = path.stat().st_size
    read = 0
    for block in _slices(path, size):
        read += len(block)
        for line in block.split(b"\n"):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            props = record.get(field) if isinstance(record, dict) else None
            if not isinstance(props, dict):
                continue
            lines += 1
            for key, value in props.items():
                fam = _family(value)
                if fam is None:
                    continue
                kc = counts.get(key)
                if kc is None:
                    kc = counts[key] = KeyCounts(Counter())
                kc.families[fam] += 1
                if fam == "str" and _DATE.fullmatch(value):
                    kc.dates += 1
                elif fam == "int" and not _INT64[0] <= value <= _INT64[1]:
                    kc.huge += 1
    estimate = 0.0
    if read >= size:
        estimate = float(lines)
    elif read:
        # Lines of very different lengths (one of 10 MB) make bytes a poor guide:
        # count the file's lines (memchr speed), scaled by the share that parsed.
        total = newlines if newlines is not None else _newlines(path)
        sampled = sum(block.count(b"\n") for block in _slices(path, size))
        estimate = total * lines / max(sampled, 1)
    return Sample(counts, lines, estimate)


def sample_keys(
    paths: Sequence[Path],
    *,
    kind: str,
    newlines: Sequence[int | None] | None = None,
    samples: Sequence[Sample | None] | None = None,
) -> tuple[dict[str, KeyCounts], int, float]:
    """The key counts of `paths` together (`sample_file` of each, or its known
    ``samples``): the counts, the records sampled and the estimated records."""
    counts: dict[str, KeyCounts] = {}
    lines = 0
    estimate = 0.0
    for i, path in enumerate(paths):
        sample = samples[i] if samples is not None else None
        if sample is None:
            known = newlines[i] if newlines is not None else None
            sample = sample_file(path, kind=kind, newlines=known)
        lines += sample.lines
        estimate += sample.estimate
        for key, kc in sample.counts.items():
            merged = counts.get(key)
            if merged is None:
                merged = counts[key] = KeyCounts(Counter())
            merged.families.update(kc.families)
            merged.dates += kc.dates
            merged.huge += kc.huge
    return counts, lines, estimate


def decide_type(kc: KeyCounts) -> str:
    """The column type for values counted in `kc` (the module docstring's rules)."""
    fam = kc.families
    total = kc.present()
    groups = {
        "num": fam["int"] + fam["float"],
        "str": fam["str"],
        "bool": fam["bool"],
        "list": fam["list"],
        "obj": fam["obj"],
    }
    top = max(groups, key=lambda g: groups[g])
    if total == 0 or groups[top] < DOMINANT * total:
        return "JSON" if fam["list"] or fam["obj"] else "VARCHAR"
    if top == "num":
        if fam["float"]:
            return "DOUBLE"
        return "HUGEINT" if kc.huge else "BIGINT"
    if top == "str":
        return "TIMESTAMPTZ" if kc.dates >= DOMINANT * fam["str"] > 0 else "VARCHAR"
    return {"bool": "BOOLEAN", "list": "VARCHAR[]", "obj": "JSON"}[top]


def widen(current: str, wanted: str) -> str:
    """`current`, or `wanted` when it is wider (never narrower)."""
    if wanted == current or _RANK[wanted] <= _RANK[current]:
        return current
    if current in _NUMERIC and wanted in _NUMERIC:
        return wanted
    if wanted in ("VARCHAR", "JSON"):
        return wanted
    return "VARCHAR"  # e.g. BOOLEAN -> DOUBLE: neither holds the other


# SQL: does JSON text `v` start as a value of this kind does (a number: '-' or a digit)?
# Byte ranges of the first character, compared as strings: ascii() decodes UTF-8 and
# cost 1.4x as much (and a long IN list is planned as a join).
_STARTS = {
    "num": "(({v} >= '0' AND {v} < ':') OR ({v} >= '-' AND {v} < '.'))",
    "str": "({v} >= '\"' AND {v} < '#')",
    "bool": "(({v} >= 'f' AND {v} < 'g') OR ({v} >= 't' AND {v} < 'u'))",
    "list": "({v} >= '[' AND {v} < '\\')",
}


def _starts(kind: str, v: str) -> str:
    return _STARTS[kind].format(v=v)


def path_literal(prop: str) -> str:
    """The JSON path of `prop` as a SQL literal."""
    return sql_literal(json_path(prop))


def _unquote(v: str) -> str:
    """SQL: the value of JSON string text `v` (a substring unless it has escapes)."""
    # substr, not a slice: it has a fast path for ASCII text (4x on a 12-character value).
    inner = f"substr({v}, 2, length({v}) - 2)"
    return f"CASE WHEN contains({v}, '\\') THEN json_extract_string({v}, '$') ELSE {inner} END"


def fill_sql(column_type: str, v: str) -> str:
    """SQL turning `v`, the JSON text of a property's value (NULL when absent), into
    the column's value, never lossily (DuckDB's own casts round 2.5 to 2 and read
    "yes" as true): a number sent as a string is converted; anything else that does
    not fit is NULL in the column (and listed in ``unfit_properties``)."""
    is_str = _starts("str", v)
    is_num = _starts("num", v)
    if column_type == "VARCHAR":
        return f"CASE WHEN {is_str} THEN {_unquote(v)} WHEN {v} <> 'null' THEN {v} END"
    if column_type == "JSON":
        return f"nullif({v}, 'null')::JSON"
    if column_type == "VARCHAR[]":
        return f"CASE WHEN {_starts('list', v)} THEN TRY_CAST({v}::JSON AS VARCHAR[]) END"
    if column_type == "BOOLEAN":
        return (
            f"CASE {v} WHEN 'true' THEN true WHEN 'false' THEN false "
            "WHEN '\"true\"' THEN true WHEN '\"false\"' THEN false END"
        )
    if column_type == "DOUBLE":
        # A string converts only to a finite number ("NaN" and "inf" stay text).
        text = f"TRY_CAST({_unquote(v)} AS DOUBLE)"
        return (
            f"CASE WHEN {is_num} THEN TRY_CAST({v} AS DOUBLE) "
            f"WHEN {is_str} AND isfinite({text}) THEN {text} END"
        )
    if column_type in ("BIGINT", "HUGEINT"):
        text = f"(CASE WHEN {is_num} THEN {v} WHEN {is_str} THEN {_unquote(v)} END)"
        # Only integral values convert (TRY_CAST('2.5' AS BIGINT) is 3).
        return (
            f"CASE WHEN TRY_CAST({text} AS DOUBLE) = TRY_CAST({text} AS {column_type}) "
            f"THEN TRY_CAST({text} AS {column_type}) END"
        )
    if column_type == "TIMESTAMPTZ":
        return f"CASE WHEN {is_str} THEN timezone('UTC', TRY_CAST({_unquote(v)} AS TIMESTAMP)) END"
    raise ValueError(f"unknown column type {column_type}")


def unfit_sql(column_type: str, v: str) -> str:
    """SQL: true when JSON text `v` is present but not of the column's JSON type."""
    if column_type == "JSON":
        return "false"
    if column_type in ("BIGINT", "HUGEINT"):
        fraction = f"(contains({v}, '.') OR contains({v}, 'e') OR contains({v}, 'E'))"
        return f"({v} <> 'null' AND (NOT {_starts('num', v)} OR {fraction}))"
    want = {
        "VARCHAR": "str",
        "TIMESTAMPTZ": "str",
        "BOOLEAN": "bool",
        "VARCHAR[]": "list",
        "DOUBLE": "num",
    }[column_type]
    return f"({v} <> 'null' AND NOT {_starts(want, v)})"


def typed_select(columns: Sequence[TypedColumn], value: Callable[[TypedColumn], str]) -> str:
    """The select list (with a leading comma) of the typed columns and
    ``unfit_properties``, given the SQL of each column's JSON value text."""
    if not columns:
        return ""
    parts = [f"{fill_sql(c.type, value(c))} AS {quote_ident(c.column)}" for c in columns]
    flags = ", ".join(
        f"CASE WHEN {unfit_sql(c.type, value(c))} THEN {sql_literal(c.prop)} END" for c in columns
    )
    parts.append(f"nullif(list_filter([{flags}], lambda x: x IS NOT NULL), []) AS {UNFIT}")
    return ",\n               " + ",\n               ".join(parts)


@dataclass(frozen=True)
class Extraction:
    """How an insert reads its typed columns (and key strings) out of ``properties``.

    ``lists`` are the select items of a projection over ``properties``: one
    ``json_transform`` into a struct of JSON texts, a single parse (two only when
    names differ by case alone, as a struct's names may not). ``select`` is the
    outer select list (leading comma) of the columns and ``unfit_properties`` over
    it; ``keys`` the SQL of each requested key's string, as ``json_extract_string``
    gives it. Equal to `typed_select` value for value (tests/storage/test_typed_columns.py).
    """

    lists: tuple[str, ...]
    select: str
    keys: Mapping[str, str]


def _groups(names: Sequence[str]) -> list[list[str]]:
    """`names` in as few groups as keep each group's names distinct ignoring case."""
    groups: list[list[str]] = []
    seen: list[set[str]] = []
    for name in names:
        for group, lower in zip(groups, seen, strict=True):
            if name.lower() not in lower:
                group.append(name)
                lower.add(name.lower())
                break
        else:
            groups.append([name])
            seen.append({name.lower()})
    return groups


def extraction(
    columns: Sequence[TypedColumn], properties: str = "properties", keys: Sequence[str] = ()
) -> Extraction:
    """The one-parse form of `typed_select` for `columns` read from `properties`, plus
    the strings of the properties `keys` (the key fields an insert needs)."""
    typed = {c.prop for c in columns}
    kinds = {k: "VARCHAR" for k in keys if k not in typed}
    kinds.update({c.prop: "JSON" for c in columns})
    lists: list[str] = []
    at: dict[str, str] = {}
    for i, group in enumerate(_groups(list(kinds))):
        spec = orjson.dumps({name: kinds[name] for name in group}).decode()
        lists.append(f"json_transform({properties}, {sql_literal(spec)}) AS _p{i}")
        # As VARCHAR: the rules read JSON text (a JSON value would cast as JSON: "true" to 1).
        at.update({name: f"struct_extract(_p{i}, {sql_literal(name)})::VARCHAR" for name in group})
    # A key that is a typed column too comes as JSON text: its string, unquoted.
    key_sql = {
        k: at[k]
        if k not in typed
        else f"CASE WHEN {_starts('str', at[k])} THEN {_unquote(at[k])} ELSE {at[k]} END"
        for k in keys
    }
    if not columns:
        return Extraction(tuple(lists), "", key_sql)
    parts = [f"{fill_sql(c.type, at[c.prop])} AS {quote_ident(c.column)}" for c in columns]
    checked = [c for c in columns if c.type != "JSON"]
    if checked:
        tests = [unfit_sql(c.type, at[c.prop]) for c in checked]
        pairs = zip(checked, tests, strict=True)
        flags = ", ".join(f"CASE WHEN {t} THEN {sql_literal(c.prop)} END" for c, t in pairs)
        # Sorted by name: the set of the row's unfit properties, whatever the order of
        # its columns. Built only for the rare row that has one.
        parts.append(
            f"CASE WHEN {' OR '.join(tests)} THEN "
            f"list_sort(list_filter([{flags}], lambda x: x IS NOT NULL)) END AS {UNFIT}"
        )
    else:
        parts.append(f"NULL::VARCHAR[] AS {UNFIT}")
    return Extraction(
        tuple(lists), ",\n               " + ",\n               ".join(parts), key_sql
    )


def _stored_value(prop: str) -> str:
    """SQL: the JSON text of `prop` in a stored row's `properties`."""
    return f"(json_extract(properties, {path_literal(prop)})::VARCHAR)"


# -- the catalog --------------------------------------------------------------------


def load_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[TypedColumn]:
    """The table's typed columns, in column order (only those the table really has:
    a table dropped and re-created with SQL leaves a stale catalog, forgotten here)."""
    ensure_meta(conn)
    rows = conn.execute(
        f"SELECT property, column_name, type FROM {COLUMNS_TABLE} "
        "WHERE table_name = ? AND column_name IS NOT NULL ORDER BY position",
        [table],
    ).fetchall()
    actual = {
        str(r[0]).lower()
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
            "AND table_catalog = current_database() AND table_name = ?",
            [table],
        ).fetchall()
    }
    columns = [TypedColumn(str(p), str(c), str(t)) for p, c, t in rows]
    if any(c.column.lower() not in actual for c in columns):
        for meta in (COLUMNS_TABLE, COLUMN_DAYS_TABLE):
            conn.execute(f"DELETE FROM {meta} WHERE table_name = ?", [table])
        return []
    return columns


def _estimates(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, float]:
    rows = conn.execute(
        f"SELECT property, estimated FROM {COLUMNS_TABLE} WHERE table_name = ?", [table]
    ).fetchall()
    return {str(p): float(e or 0) for p, e in rows}


def _column_name(prop: str, kind: str, taken: set[str]) -> str | None:
    name = prop + "_property" if prop.lower() in CORE[kind] else prop
    return None if name.lower() in taken else name


def plan_batch(
    conn: duckdb.DuckDBPyConnection,
    *,
    table: str,
    kind: str,
    paths: Sequence[Path],
    newlines: Sequence[int | None] | None = None,
    samples: Sequence[Sample | None] | None = None,
) -> Plan:
    """Decide the batch's typed columns; add the new ones to `table` (inside the
    batch's transaction), filled from `properties` for the rows already stored."""
    columns = load_columns(conn, table)
    sampled, lines, batch_lines = sample_keys(paths, kind=kind, newlines=newlines, samples=samples)
    if not lines:
        return Plan(tuple(columns))
    scale = batch_lines / lines
    stored = _table_rows(conn, table)
    estimates = _estimates(conn, table)
    have = {c.prop for c in columns}
    totals = {
        key: estimates.get(key, 0.0) + kc.present() * scale
        for key, kc in sampled.items()
        if key not in SKIP[kind] and _usable(key)
    }
    _save_estimates(conn, table, {k: v for k, v in totals.items() if k not in have})
    threshold = max(MIN_SHARE * (stored + batch_lines), MIN_ROWS)
    taken = set(CORE[kind]) | {c.column.lower() for c in columns}
    # Case twins: the most common spelling of a lower-cased name is the one considered.
    best: dict[str, str] = {}
    for key in sorted(totals, key=lambda k: (-totals[k], k)):
        best.setdefault(key.lower(), key)
    added: list[TypedColumn] = []
    for key in sorted(totals, key=lambda k: (-totals[k], k)):
        if len(columns) + len(added) >= MAX_COLUMNS:
            break
        if key in have or totals[key] < threshold or best[key.lower()] != key:
            continue
        name = _column_name(key, kind, taken)
        if name is None:
            continue  # a twin of an existing column
        taken.add(name.lower())
        added.append(TypedColumn(key, name, decide_type(sampled[key])))
    if added and not _has_column(conn, table, UNFIT):
        conn.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN {UNFIT} VARCHAR[]")
    for col in added:
        _add_column(conn, table, col, fill=stored > 0)
        if stored:
            _mark_unfit(conn, table, col)
    return Plan(tuple(columns + added), tuple(added))


def _table_rows(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()
    return int(row[0]) if row else 0


def _save_estimates(
    conn: duckdb.DuckDBPyConnection, table: str, totals: Mapping[str, float]
) -> None:
    if not totals:
        return
    rows = [[table, k, v] for k, v in totals.items()]
    conn.executemany(
        f"UPDATE {COLUMNS_TABLE} SET estimated = ? WHERE table_name = ? AND property = ?",
        [[v, t, k] for t, k, v in rows],
    )
    conn.executemany(
        f"INSERT INTO {COLUMNS_TABLE} (table_name, property, estimated) SELECT ?, ?, ? "
        f"WHERE NOT EXISTS (SELECT 1 FROM {COLUMNS_TABLE} WHERE table_name = ? AND property = ?)",
        [[t, k, v, t, k] for t, k, v in rows],
    )


def _add_column(
    conn: duckdb.DuckDBPyConnection, table: str, col: TypedColumn, *, fill: bool
) -> None:
    target = quote_ident(table)
    conn.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(col.column)} {col.type}")
    if fill:
        conn.execute(
            f"UPDATE {target} SET {quote_ident(col.column)} = "
            f"{fill_sql(col.type, _stored_value(col.prop))}"
        )
    row = conn.execute(
        f"SELECT coalesce(max(position), 0) + 1 FROM {COLUMNS_TABLE} WHERE table_name = ?",
        [table],
    ).fetchone()
    conn.execute(
        f"DELETE FROM {COLUMNS_TABLE} WHERE table_name = ? AND property = ?", [table, col.prop]
    )
    conn.execute(
        f"INSERT INTO {COLUMNS_TABLE} (table_name, property, column_name, type, position) "
        "VALUES (?, ?, ?, ?, ?)",
        [table, col.prop, col.column, col.type, int(row[0]) if row else 1],
    )


def _has_column(conn: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_catalog = current_database() AND table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    return bool(row and row[0])


# -- exact counts and widening, after a batch is stored -------------------------------


def census(
    conn: duckdb.DuckDBPyConnection,
    *,
    table: str,
    day: str | None,
    days: Sequence[Any] | None = None,
) -> None:
    """Recount the typed columns on the stored rows of `days`, and widen every column
    whose counts over the whole table call for a wider type.

    Cheap: a column's values are its non-null count plus the rare rows listing it in
    ``unfit_properties`` (only those have a property parsed, for its JSON type).
    `day` is the SQL of a row's day (None for profiles: one whole-table slot). The
    counts of those days are replaced, so re-fetched days (an ``--update``) and rows
    removed by dedup are never counted.
    """
    columns = load_columns(conn, table)
    if not columns:
        return
    target = quote_ident(table)
    day_sql = day or "NULL::DATE"
    where, params = "true", []
    if day is not None:
        if not days:
            return
        where, params = f"{day} IN (SELECT unnest(?::DATE[]))", [list(days)]
    nonnull = ", ".join(f"count({quote_ident(c.column)})" for c in columns)
    counted = conn.execute(
        f"SELECT {day_sql} AS d, [{nonnull}] FROM {target} WHERE {where} GROUP BY d", params
    ).fetchall()
    holds = " ".join(
        f"WHEN {sql_literal(c.prop)} THEN {quote_ident(c.column)} IS NOT NULL" for c in columns
    )
    odd = conn.execute(
        f"""SELECT d, u, json_type(json_extract(properties, '$."' || u || '"')) AS ty,
                   CASE u {holds} END AS held, count(*)
            FROM (SELECT {day_sql} AS d, unnest({UNFIT}) AS u, *
                  FROM {target} WHERE {where} AND {UNFIT} IS NOT NULL)
            GROUP BY ALL""",
        params,
    ).fetchall()
    if day is None:
        conn.execute(f"DELETE FROM {COLUMN_DAYS_TABLE} WHERE table_name = ?", [table])
    else:
        conn.execute(
            f"DELETE FROM {COLUMN_DAYS_TABLE} WHERE table_name = ? AND day IN "
            "(SELECT unnest(?::DATE[]))",
            [table, list(days or [])],
        )
    slots: dict[tuple[Any, str], dict[str, int]] = {}

    def slot(d: Any, prop: str) -> dict[str, int]:
        return slots.setdefault(
            (d, prop), {"nonnull": 0, "nulled": 0, **{"u_" + f: 0 for f in FAMILIES}}
        )

    for d, values in counted:
        for col, n in zip(columns, values, strict=True):
            if n:
                slot(d, col.prop)["nonnull"] += int(n)
    for d, prop, ty, held, n in odd:
        s = slot(d, str(prop))
        s["u_" + _JSON_FAMILY.get(str(ty), "str")] += int(n)
        if not held:
            s["nulled"] += int(n)
    names = ["nonnull", "nulled", *("u_" + f for f in FAMILIES)]
    if slots:
        # One statement of zipped lists: executemany ran one insert per slot (about 1 ms
        # each, hundreds per commit).
        keys = list(slots)
        lists = [[prop for _d, prop in keys], [d for d, _prop in keys]]
        lists += [[slots[key][n] for key in keys] for n in names]
        unnests = ", ".join(
            ["unnest(?::VARCHAR[])", "unnest(?::DATE[])"] + ["unnest(?::BIGINT[])"] * len(names)
        )
        conn.execute(
            f"INSERT INTO {COLUMN_DAYS_TABLE} (table_name, property, day, {', '.join(names)}) "
            f"SELECT ?, {unnests}",
            [table, *lists],
        )
    _widen(conn, table, columns, day=day)


def totals(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, dict[str, int]]:
    """Per property: non-null values, values the column could not hold (``nulled``)
    and the values that did not fit, per JSON family (``u_<family>``)."""
    names = ["nonnull", "nulled", *("u_" + f for f in FAMILIES)]
    rows = conn.execute(
        f"SELECT property, {', '.join(f'sum({n})' for n in names)} FROM {COLUMN_DAYS_TABLE} "
        "WHERE table_name = ? GROUP BY property",
        [table],
    ).fetchall()
    return {
        str(prop): {n: int(v or 0) for n, v in zip(names, values, strict=True)}
        for prop, *values in rows
    }


_NATURAL = {
    "BOOLEAN": "bool",
    "BIGINT": "int",
    "HUGEINT": "int",
    "DOUBLE": "float",
    "VARCHAR": "str",
    "TIMESTAMPTZ": "str",
    "VARCHAR[]": "list",
    "JSON": "obj",
}


def counts_of(column_type: str, c: Mapping[str, int]) -> tuple[int, int]:
    """(present, unfit) of a column from its `totals` entry."""
    unfit = sum(c["u_" + f] for f in FAMILIES)
    return c["nonnull"] + c["nulled"], unfit


def _families(column_type: str, c: Mapping[str, int]) -> KeyCounts:
    unfit = sum(c["u_" + f] for f in FAMILIES)
    fits = c["nonnull"] + c["nulled"] - unfit
    fam: Counter[str] = Counter({f: c["u_" + f] for f in FAMILIES})
    fam[_NATURAL[column_type]] += max(0, fits)
    if column_type == "TIMESTAMPTZ":
        return KeyCounts(fam, dates=max(0, fits - c["nulled"]))
    return KeyCounts(fam)


def _widen(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[TypedColumn],
    *,
    day: str | None,
) -> None:
    counted = totals(conn, table)
    for col in columns:
        c = counted.get(col.prop)
        if not c:
            continue
        kc = _families(col.type, c)
        wanted = decide_type(kc)
        if col.type in ("BIGINT", "HUGEINT") and wanted == "BIGINT":
            continue
        others = sum(c["u_" + f] for f in FAMILIES if f != "int")
        if col.type == "BIGINT" and c["nulled"] > others:
            wanted = "HUGEINT"  # integers past 64 bits
        few = c["nulled"] < (1 - DOMINANT) * (c["nonnull"] + c["nulled"])
        if col.type == "TIMESTAMPTZ" and wanted == "VARCHAR" and few:
            continue  # a date column stays one while the strings it cannot read are few
        new = widen(col.type, wanted)
        if new == col.type:
            continue
        _retype(conn, table, TypedColumn(col.prop, col.column, new), day=day)


def _retype(
    conn: duckdb.DuckDBPyConnection, table: str, col: TypedColumn, *, day: str | None
) -> None:
    """Give a column a wider type, every value recomputed from `properties`, and
    recount it (its unfit values change with its type)."""
    target = quote_ident(table)
    value = _stored_value(col.prop)
    conn.execute(
        f"ALTER TABLE {target} ALTER COLUMN {quote_ident(col.column)} TYPE {col.type} "
        f"USING ({fill_sql(col.type, value)})"
    )
    conn.execute(
        f"UPDATE {COLUMNS_TABLE} SET type = ? WHERE table_name = ? AND property = ?",
        [col.type, table, col.prop],
    )
    _mark_unfit(conn, table, col)
    days = None
    if day is not None:
        days = [r[0] for r in conn.execute(f"SELECT DISTINCT {day} FROM {target}").fetchall()]
    census(conn, table=table, day=day, days=days)


def fill_stored(
    conn: duckdb.DuckDBPyConnection, table: str, columns: Sequence[TypedColumn], where: str
) -> None:
    """Fill the typed columns and ``unfit_properties`` of the rows `where` selects from
    their `properties`, each parsed once (a batch with a huge line is inserted without
    them: the typed scan would hold its lines twice)."""
    if not columns:
        return
    paths = ", ".join(path_literal(c.prop) for c in columns)

    def value(c: TypedColumn) -> str:
        return f"(s.v[{columns.index(c) + 1}]::VARCHAR)"

    sets = [f"{quote_ident(c.column)} = {fill_sql(c.type, value(c))}" for c in columns]
    flags = ", ".join(
        f"CASE WHEN {unfit_sql(c.type, value(c))} THEN {sql_literal(c.prop)} END" for c in columns
    )
    sets.append(f"{UNFIT} = nullif(list_filter([{flags}], lambda x: x IS NOT NULL), [])")
    target = quote_ident(table)
    conn.execute(
        f"UPDATE {target} SET {', '.join(sets)} FROM (SELECT rowid AS rid, "
        f"json_extract(properties, [{paths}]) AS v FROM {target} WHERE {where}) s "
        f"WHERE {target}.rowid = s.rid"
    )


def _mark_unfit(conn: duckdb.DuckDBPyConnection, table: str, col: TypedColumn) -> None:
    """List `col` in ``unfit_properties`` exactly on the stored rows whose value does
    not fit its (new) type; only those rows are written."""
    lit = sql_literal(col.prop)
    drop = f"list_filter(coalesce({UNFIT}, []), lambda x: x <> {lit})"
    bad = unfit_sql(col.type, _stored_value(col.prop))
    conn.execute(
        f"UPDATE {quote_ident(table)} SET {UNFIT} = nullif("
        f"CASE WHEN {bad} THEN list_append({drop}, {lit}) ELSE {drop} END, []) "
        f"WHERE list_contains({UNFIT}, {lit}) OR {bad}"
    )
