"""Typed property columns (docs/typed-columns.md), on real DuckDB files.

The oracle is plain Python over the JSON values the lines carry: what each column
type must hold for a value, which values do not fit, and what the table's
``properties`` must keep (every input value, equal as JSON).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpanel_data._internal.services.fetch import columns
from mixpanel_data._internal.services.fetch.ingest import StagedFile, commit_events, scan_duplicates
from mixpanel_data._internal.services.fetch.windows import DateWindow
from mixpanel_data._internal.storage import engine as storage_mod
from mixpanel_data._internal.storage import meta_tables

if TYPE_CHECKING:
    import duckdb

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC
DAY = DateWindow(date(2023, 11, 14), date(2023, 11, 14))


def _db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    conn = duckdb.connect(str(tmp_path / "typed.duckdb"))
    conn.execute("SET TimeZone = 'UTC'")
    storage_mod.ensure_meta(conn)
    conn.execute(storage_mod.create_table_sql("events", "events"))
    return conn


_SEQ = iter(range(10**9))


def _line(props: dict[str, Any], *, t: int = T0, event: str = "E") -> dict[str, Any]:
    n = next(_SEQ)
    base = {"time": t, "distinct_id": f"u{n % 7}", "$insert_id": f"i{n}"}
    return {"event": event, "properties": {**base, **props}}


def _commit(conn: duckdb.DuckDBPyConnection, path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    staged = scan_duplicates(
        StagedFile(window=DAY, path=path, size=path.stat().st_size, attempts=1), legacy_tz=None
    )
    conn.execute("BEGIN TRANSACTION")
    commit_events(conn, table="events", staged=[staged], dedup=True, merge=False, legacy_tz=None)
    conn.execute("COMMIT")


def _types(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'events' ORDER BY ordinal_position"
    ).fetchall()
    return {str(n): str(t) for n, t in rows}


def _catalog(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str, int, int, int]]:
    catalog = meta_tables.column_catalog(conn, "events")
    return {c[1]: (c[0], c[2], c[3], c[4], c[5]) for c in catalog}


# -- the fill rules, value by value (Hypothesis) -------------------------------------------


def _family(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "list" if isinstance(v, list) else "obj"


def _text(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def expected(column_type: str, v: Any) -> Any:
    """What a column of `column_type` holds for JSON value `v` (None: NULL)."""
    if v is None:
        return None
    fam = _family(v)
    if column_type == "VARCHAR":
        return v if fam == "str" else _text(v)
    if column_type == "DOUBLE":
        if fam in ("int", "float"):
            return float(v)
        return _number(v) if fam == "str" else None
    if column_type == "BIGINT":  # integral values only (2.0 converts, 2.5 does not)
        if fam == "int":
            return v
        x = _number(v) if fam == "str" else (v if fam == "float" else None)
        return int(x) if x is not None and x == int(x) and abs(x) < 2**53 else None
    if column_type == "BOOLEAN":
        if fam == "bool":
            return v
        return {"true": True, "false": False}.get(v) if fam == "str" else None
    if column_type == "VARCHAR[]":
        if fam != "list":
            return None
        return [None if x is None else (x if isinstance(x, str) else _text(x)) for x in v]
    raise AssertionError(column_type)


def is_unfit(column_type: str, v: Any) -> bool:
    if v is None:
        return False
    natural = {
        "VARCHAR": {"str"},
        "DOUBLE": {"int", "float"},
        "BIGINT": {"int"},
        "BOOLEAN": {"bool"},
        "VARCHAR[]": {"list"},
    }
    return _family(v) not in natural[column_type]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2).map(float),
    st.text(alphabet="ab1.-e ", max_size=6),
    st.sampled_from(["12", "-3", "2.5", "1e3", "true", "false", 'x"y', "é", "NaN"]),
)
values = st.one_of(
    scalars,
    st.lists(st.one_of(st.text(alphabet="ab", max_size=3), st.integers(-5, 5)), max_size=3),
    st.dictionaries(st.sampled_from(["k", "m"]), st.integers(0, 9), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vals=st.lists(values, min_size=1, max_size=25))
def test_fill_and_unfit_follow_the_rules_for_every_type(vals: list[Any]) -> None:
    import duckdb

    conn = duckdb.connect()
    conn.execute("CREATE TABLE v (i INTEGER, j VARCHAR)")
    texts = [[i, None if x is None else _text(x)] for i, x in enumerate(vals)]
    conn.executemany("INSERT INTO v VALUES (?, ?)", texts)
    for column_type in ("VARCHAR", "DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR[]"):
        fill, unfit_sql = columns.fill_sql(column_type, "j"), columns.unfit_sql(column_type, "j")
        rows = conn.execute(f"SELECT {fill}, {unfit_sql} FROM v ORDER BY i").fetchall()  # noqa: S608
        for x, (got, unfit) in zip(vals, rows, strict=True):
            assert got == expected(column_type, x), (column_type, x, got)
            assert bool(unfit) == is_unfit(column_type, x), (column_type, x)


# Raw JSON tokens Python's json cannot write but DuckDB reads (and numbers past 64 bits).
_RAW = [
    "NaN",
    "Infinity",
    "-Infinity",
    "123456789012345678901234567890",
    "18446744073709551615",
    "9223372036854775808",
    "-0",
    "1.0",
    "2e3",
    '"2026-11-02T10:00:00"',
    '"a\\"b"',
]
raw_values = st.one_of(values.map(_text), st.sampled_from(_RAW))
_TYPES = ("VARCHAR", "DOUBLE", "BIGINT", "HUGEINT", "BOOLEAN", "VARCHAR[]", "TIMESTAMPTZ", "JSON")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.lists(st.one_of(st.none(), raw_values), min_size=8, max_size=8), min_size=1, max_size=20
    )
)
def test_the_inserts_one_parse_extraction_equals_the_json_text_fill(
    rows: list[list[str | None]],
) -> None:
    """`columns.extraction` (what the fetch's insert runs) gives exactly what
    `typed_select` over each value's JSON text gives: values and unfit lists."""
    import duckdb

    cols = [columns.TypedColumn(f"p{i}", f"c{i}", t) for i, t in enumerate(_TYPES)]
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("CREATE TABLE r (i INTEGER, properties JSON)")
    docs = [
        "{" + ",".join(f'"p{k}":{v}' for k, v in enumerate(row) if v is not None) + "}"
        for row in rows
    ]
    conn.executemany("INSERT INTO r VALUES (?, ?)", list(enumerate(docs)))
    ex = columns.extraction(cols)
    slots = {c.prop: f"(json_extract(properties, '$.{c.prop}')::VARCHAR)" for c in cols}
    old = columns.typed_select(cols, lambda c: slots[c.prop])
    lists = ", ".join(ex.lists)
    mine = conn.execute(f"SELECT i {ex.select} FROM (SELECT i, {lists} FROM r) ORDER BY i")  # noqa: S608
    got = mine.fetchall()
    want = conn.execute(f"SELECT i {old} FROM r ORDER BY i").fetchall()  # noqa: S608
    # unfit_properties is a set: the extraction lists it sorted by name.
    want = [(*r[:-1], None if r[-1] is None else sorted(r[-1])) for r in want]
    assert got == want, docs


def test_a_known_newline_count_gives_the_same_estimate_as_counting(tmp_path: Path) -> None:
    """sample_keys reads only slices of a large file; the rows it scales to come from
    the newline count the download took, equal to counting the file again."""
    path = tmp_path / "big.jsonl"
    lines = [
        json.dumps({"event": "e", "properties": {"n": i, "pad": "x" * (i % 700)}})
        for i in range(4000)
    ]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 3 * columns.SAMPLE_SLICE  # only slices are parsed
    counted = columns.sample_keys([path], kind="events")
    given_count = columns.sample_keys([path], kind="events", newlines=[4000])
    assert given_count[1:] == counted[1:]
    assert given_count[0]["n"].families == counted[0]["n"].families
    assert 0 < counted[1] < 4000  # sampled lines
    assert counted[2] == pytest.approx(4000, rel=0.25)  # the estimate of all rows


def test_samples_taken_on_the_download_threads_add_up_to_the_batchs(tmp_path: Path) -> None:
    """The fetch samples each file as it is downloaded (`sample_file`); a batch's
    counts are their sum, equal to sampling the batch's files at the commit."""
    paths = []
    for n in range(3):
        path = tmp_path / f"w{n}.jsonl"
        rows = [
            {"event": "e", "properties": {"k": i, f"only{n}": "x", "when": "2026-11-02T10:00:00"}}
            for i in range(50 + n)
        ]
        rows.append({"event": "e", "properties": {"k": "text", "big": 2**70}})
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
        paths.append(path)
    whole = columns.sample_keys(paths, kind="events")
    ahead = [columns.sample_file(p, kind="events") for p in paths]
    merged = columns.sample_keys(paths, kind="events", samples=ahead)
    assert merged[1:] == whole[1:] == (sum(51 + n for n in range(3)), 156.0)
    assert {k: (v.families, v.dates, v.huge) for k, v in merged[0].items()} == {
        k: (v.families, v.dates, v.huge) for k, v in whole[0].items()
    }
    assert merged[0]["k"].families == {"int": 153, "str": 3}
    assert (merged[0]["when"].dates, merged[0]["big"].present()) == (153, 3)
    # Merging never changes a file's own sample (it may be merged again on a retry).
    assert ahead[0].counts["k"].families == {"int": 50, "str": 1}


# -- the table: types, twins, names, evolution ---------------------------------------------


def test_a_batch_gets_typed_columns_that_hold_what_properties_says(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    lines = [
        _line(
            {
                "country": ["US", "GB", "BR"][i % 3],
                "price": 10 + i / 4 if i % 50 else str(10 + i / 4),  # 2% sent as strings
                "count": i,
                "flag": i % 2 == 0,
                "tags": ["a", "b"][: i % 3],
                "cart": {"n": i},
                "Plan": "rare",
                "plan": "pro",
                "event_name": "own",
            }
            if i % 40
            else {"plan": "pro", "country": "US", "count": i}
        )
        for i in range(400)
    ]
    _commit(conn, tmp_path / "a.jsonl", lines)
    types = _types(conn)
    assert types["country"] == "VARCHAR"
    assert types["price"] == "DOUBLE"
    assert types["count"] == "BIGINT"
    assert types["flag"] == "BOOLEAN"
    assert types["tags"] == "VARCHAR[]"
    assert types["cart"] == "JSON"
    assert types["event_name_property"] == "VARCHAR"  # a core column's name
    assert "time" not in types  # core columns hold them
    assert "$insert_id" not in types
    # Case twins: the common spelling gets the column, the rare one none.
    assert [c for c in types if c.lower() == "plan"] == ["plan"]
    # Every column equals the JSON path's value, converted by the rules.
    by_id = {x["properties"]["$insert_id"]: x["properties"] for x in lines}
    got = conn.execute(
        'SELECT insert_id, country, price, "count", flag, tags, cart::VARCHAR, plan, '
        "unfit_properties, properties::VARCHAR FROM events"
    ).fetchall()
    assert len(got) == 400
    for iid, country, price, count, flag, tags, cart, plan, unfit, raw in got:
        p = by_id[iid]
        assert json.loads(raw) == p  # properties keeps every input value
        assert country == p.get("country")
        assert price == expected("DOUBLE", p.get("price"))
        assert count == p.get("count")
        assert flag == p.get("flag")
        assert tags == expected("VARCHAR[]", p.get("tags"))
        assert (json.loads(cart) if cart else None) == p.get("cart")
        assert plan == p["plan"]
        assert (unfit or []) == (["price"] if isinstance(p.get("price"), str) else [])
    catalog = _catalog(conn)
    strings = sum(isinstance(p.get("price"), str) for p in by_id.values())
    priced = sum("price" in p for p in by_id.values())
    assert catalog["price"][1:] == ("DOUBLE", priced, strings, 0)  # converted, none nulled
    assert catalog["country"][1:] == ("VARCHAR", 400, 0, 0)


def test_properties_named_like_the_keys_but_for_case_keep_both_apart(tmp_path: Path) -> None:
    """``Time`` and ``DISTINCT_ID`` (as ``DISTINCT_ID_property``, the core column's
    name) get columns beside the keys ``time`` and ``distinct_id`` (a struct's names
    ignore case: the insert reads them in two parses), and ``mp_processing_time_ms``,
    a key and a column, still decides dedup when it is sent as a string."""
    conn = _db(tmp_path)
    lines = [
        _line({"Time": f"t{i}", "DISTINCT_ID": i, "mp_processing_time_ms": 100 + i}, t=T0 + i)
        for i in range(60)
    ]
    newer = {**lines[0]["properties"], "mp_processing_time_ms": "999", "Time": "newer"}
    lines.append({"event": "E", "properties": newer})  # the same key, processed later
    _commit(conn, tmp_path / "a.jsonl", lines)
    types = _types(conn)
    assert (types["Time"], types["DISTINCT_ID_property"], types["mp_processing_time_ms"]) == (
        "VARCHAR",
        "BIGINT",
        "BIGINT",
    )
    got = conn.execute(
        'SELECT epoch(event_time)::BIGINT, distinct_id, "Time", DISTINCT_ID_property, '
        "mp_processing_time_ms, unfit_properties FROM events ORDER BY event_time"
    ).fetchall()
    assert len(got) == 60  # the older copy of the first line lost dedup
    # "999" is converted, and listed as a value that did not fit (a string).
    assert got[0] == (
        T0,
        lines[0]["properties"]["distinct_id"],
        "newer",
        0,
        999,
        ["mp_processing_time_ms"],
    )
    for i, row in enumerate(got[1:], start=1):
        p = lines[i]["properties"]
        assert row == (T0 + i, p["distinct_id"], f"t{i}", i, 100 + i, None)


def test_numbers_then_strings_widen_the_column_to_varchar(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    first = [_line({"amount": i}) for i in range(100)]
    _commit(conn, tmp_path / "1.jsonl", first)
    assert _types(conn)["amount"] == "BIGINT"
    later = [_line({"amount": f"A-{i}"}, t=T0 + 60) for i in range(100)]
    _commit(conn, tmp_path / "2.jsonl", later)
    assert _types(conn)["amount"] == "VARCHAR"
    rows = dict(conn.execute("SELECT insert_id, amount FROM events").fetchall())
    for x in first + later:
        p = x["properties"]
        assert rows[p["$insert_id"]] == expected("VARCHAR", p["amount"])
    # After widening, the numbers are the ones that do not fit, and none is lost.
    assert _catalog(conn)["amount"][1:] == ("VARCHAR", 200, 100, 0)
    listed = conn.execute(
        "SELECT count(*) FROM events WHERE list_contains(unfit_properties, 'amount')"
    ).fetchone()
    assert listed == (100,)


def test_integers_then_fractions_widen_to_double_and_recover_every_value(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    _commit(conn, tmp_path / "1.jsonl", [_line({"v": i}) for i in range(50)])
    _commit(conn, tmp_path / "2.jsonl", [_line({"v": i + 0.5}, t=T0 + 9) for i in range(50)])
    assert _types(conn)["v"] == "DOUBLE"
    total = conn.execute("SELECT sum(v), count(v) FROM events").fetchone()
    assert total == (sum(range(50)) * 2 + 25.0, 100)
    assert _catalog(conn)["v"][1:] == ("DOUBLE", 100, 0, 0)


def test_a_property_common_only_in_a_later_batch_gets_a_column_for_all_rows(
    tmp_path: Path,
) -> None:
    conn = _db(tmp_path)
    # 1 in 400 at first: below the 1% share, no column.
    _commit(
        conn,
        tmp_path / "1.jsonl",
        [_line({"coupon": "FIRST"} if i == 0 else {}) for i in range(400)],
    )
    assert "coupon" not in _types(conn)
    _commit(conn, tmp_path / "2.jsonl", [_line({"coupon": f"C{i}"}, t=T0 + 5) for i in range(100)])
    assert _types(conn)["coupon"] == "VARCHAR"
    # The stored row that had it is filled too, and the counts cover both batches.
    assert conn.execute("SELECT count(coupon) FROM events WHERE coupon = 'FIRST'").fetchone() == (
        1,
    )
    assert _catalog(conn)["coupon"][1:] == ("VARCHAR", 101, 0, 0)


def test_mixpanel_date_strings_become_timestamps(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    lines = [_line({"signed_up": f"2023-11-{1 + i % 9:02d}T10:00:0{i % 10}"}) for i in range(60)]
    _commit(conn, tmp_path / "1.jsonl", lines)
    assert _types(conn)["signed_up"] == "TIMESTAMP WITH TIME ZONE"
    got = conn.execute("SELECT min(signed_up), max(signed_up) FROM events").fetchone()
    assert got == (
        datetime(2023, 11, 1, 10, 0, 0, tzinfo=UTC),
        datetime(2023, 11, 9, 10, 0, 8, tzinfo=UTC),
    )


@pytest.mark.parametrize("mode", ["drop", "sql"])
def test_a_recreated_table_forgets_its_old_catalog(tmp_path: Path, mode: str) -> None:
    conn = _db(tmp_path)
    _commit(conn, tmp_path / "1.jsonl", [_line({"a": 1}) for _ in range(20)])
    conn.execute("DROP TABLE events")
    if mode == "drop":
        meta_tables.forget_columns(conn, "events")
    conn.execute(storage_mod.create_table_sql("events", "events"))
    _commit(conn, tmp_path / "2.jsonl", [_line({"b": "x"}) for _ in range(20)])
    assert "a" not in _types(conn)
    assert _types(conn)["b"] == "VARCHAR"
    assert set(_catalog(conn)) == {"b"}
