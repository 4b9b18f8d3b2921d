"""Local reports against the emulator's live ones: fetch a range, then every number agrees.

Several projects (seeds, timezones west and east of UTC, pinned ``today``) are served
over loopback; the events are fetched into a real DuckDB file and each local report
must equal the live report for the same parameters, bucket for bucket.
"""

# The copied tables' SQL is built from constant names.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import client_today, emulator_credentials

from mixpanel_data import Workspace
from mixpanel_data._internal.services.local.expressions import LocalUnsupportedError
from mixpanel_data.exceptions import IncompleteDataError

SPECS = [
    (7, "America/Los_Angeles", date(2024, 3, 14)),  # west of UTC, DST starts 2024-03-10
    (11, "Asia/Kolkata", date(2024, 11, 5)),  # east, half-hour offset
    (23, "Pacific/Auckland", date(2024, 4, 9)),  # far east, DST ends 2024-04-07
]


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: f"{s[0]}-{s[1]}")
def fetched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, date, date]]:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    seed, zone, today = request.param
    spec = ProjectSpec(seed=seed, users=60, days=21, timezone=zone, today=today)
    tmp = tmp_path_factory.mktemp(f"local-{seed}")
    with Emulator(spec=spec, cache_dir=tmp / "cache", threads=8) as emu:
        ws = Workspace(credentials=emulator_credentials(emu), path=tmp / "db.duckdb")
        last = today - timedelta(days=1)
        first = last - timedelta(days=13)
        # Birth retention needs the whole history.
        with client_today(today, zone):
            ws.fetch_events(from_date=today - timedelta(days=22), to_date=today)  # all history
        ws.saved_funnels = emu.project.funnels()  # type: ignore[attr-defined]
        try:
            yield ws, first, last
        finally:
            ws.close()


def same(live: Any, local: Any, *, skip: tuple[str, ...] = ("raw", "computed_at")) -> None:
    """Field-for-field equality of two result objects (``raw`` bodies aside)."""
    assert type(live) is type(local)
    for f in fields(live):
        if f.name not in skip:
            assert getattr(local, f.name) == getattr(live, f.name), f.name


SEGMENTATIONS = [
    {"event": "Purchase"},
    {"event": "Purchase", "type": "unique", "unit": "month"},
    {"event": "View Item", "type": "average", "unit": "month"},
    {"event": "View Item", "on": "category", "limit": 3},
    {"event": "Purchase", "on": 'properties["categories"]', "type": "unique"},
    {"event": "Purchase", "on": 'properties["coupon_used"]', "where": 'properties["price"] > 20'},
    {"event": "Login", "unit": "hour", "on": "$os"},
    {
        "event": "Add To Cart",
        "where": 'defined(properties["utm_source"]) and not ("a" in properties["$city"])',
    },
    {
        "event": "Purchase",
        "on": 'string(floor(number(properties["price"]) / 10))',
        "type": "average",
    },
    {"event": "Page View", "unit": "minute", "where": 'properties["$browser"] == "Chrome"'},
]


@pytest.mark.parametrize("params", SEGMENTATIONS, ids=lambda p: "-".join(map(str, p.values())))
def test_segmentation_equals_live(
    fetched: tuple[Workspace, date, date], params: dict[str, Any]
) -> None:
    ws, first, last = fetched
    params = dict(params)
    event = params.pop("event")
    live = ws.live.segmentation(event, from_date=first, to_date=last, **params)
    local = ws.local.segmentation(event, from_date=first, to_date=last, **params)
    assert sum(sum(v.values()) for v in live.values.values()) > 0  # the case has data
    same(live, local)


@pytest.mark.parametrize(
    "params",
    [
        {"event": "Purchase", "on": 'properties["price"]'},
        {"event": "Purchase", "on": 'properties["quantity"]', "type": "unique", "unit": "hour"},
        {
            "event": "View Item",
            "on": 'properties["$screen_width"]',
            "where": 'properties["$os"] == "iOS"',
        },
    ],
)
def test_numeric_equals_live(fetched: tuple[Workspace, date, date], params: dict[str, Any]) -> None:
    ws, first, last = fetched
    params = dict(params)
    event = params.pop("event")
    live = ws.live.segmentation_numeric(event, from_date=first, to_date=last, **params)
    local = ws.local.segmentation_numeric(event, from_date=first, to_date=last, **params)
    assert len(live.values) > 1
    same(live, local)


@pytest.mark.parametrize("method", ["segmentation_sum", "segmentation_average"])
@pytest.mark.parametrize(
    "params",
    [
        {"on": 'properties["price"]'},
        {"on": 'properties["quantity"] * properties["price"]', "unit": "hour"},
        {"on": 'properties["category"]', "where": 'properties["coupon_used"]'},
    ],
)
def test_sum_and_average_equal_live(
    fetched: tuple[Workspace, date, date], method: str, params: dict[str, Any]
) -> None:
    ws, first, last = fetched
    live = getattr(ws.live, method)("Purchase", from_date=first, to_date=last, **params)
    local = getattr(ws.local, method)("Purchase", from_date=first, to_date=last, **params)
    same(live, local)


@pytest.mark.parametrize("kind", ["general", "unique", "average"])
@pytest.mark.parametrize("unit", ["day", "week", "month"])
def test_event_and_property_counts_equal_live(
    fetched: tuple[Workspace, date, date], kind: str, unit: str
) -> None:
    ws, first, last = fetched
    names = ["Purchase", "Login", "No Such Event"]
    same(
        ws.live.event_counts(names, from_date=first, to_date=last, type=kind, unit=unit),
        ws.local.event_counts(names, from_date=first, to_date=last, type=kind, unit=unit),
    )
    for prop, extra in [
        ("$browser", {}),
        ("categories", {"limit": 2}),
        ("plan", {"values": ["free", "pro"]}),
    ]:
        live = ws.live.property_counts(
            "Purchase", prop, from_date=first, to_date=last, type=kind, unit=unit, **extra
        )
        local = ws.local.property_counts(
            "Purchase", prop, from_date=first, to_date=last, type=kind, unit=unit, **extra
        )
        same(live, local)


def test_unfetched_days_are_named(fetched: tuple[Workspace, date, date]) -> None:
    ws, first, last = fetched
    early = last - timedelta(days=40)
    with pytest.raises(IncompleteDataError) as info:
        ws.local.segmentation("Purchase", from_date=early, to_date=last)
    missing = info.value.missing_days
    assert missing[0] == early.isoformat()
    assert len(missing) in (19, 20)  # the first fetched UTC day covers or misses its local day
    assert info.value.exit_code == 7
    assert early.isoformat() in str(info.value)
    ws.local.segmentation("Purchase", from_date=first, to_date=last)  # covered: no error


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"unit": "week"},
        {"interval": 3},
        {"on": 'properties["$os"]', "limit": 3},
        {"where": 'properties["$browser"] != "Safari"', "unit": "day"},
    ],
    ids=str,
)
def test_saved_funnels_equal_live(
    fetched: tuple[Workspace, date, date], params: dict[str, Any]
) -> None:
    ws, first, last = fetched
    for saved in ws.saved_funnels:  # type: ignore[attr-defined]
        if any(str(step).startswith("$custom_event:") for step in saved["steps"]):
            with pytest.raises(LocalUnsupportedError, match="custom-event step"):
                ws.local.funnel(saved["funnel_id"], from_date=first, to_date=last, length=1)
            continue
        fid, window = (
            saved["funnel_id"],
            {"length": saved["length"], "length_unit": saved["length_unit"]},
        )
        live = ws.live.funnel(fid, from_date=first, to_date=last, **params)
        local = ws.local.funnel(fid, from_date=first, to_date=last, **window, **params)
        assert live.steps[0].count > 0
        same(live, local, skip=("raw", "raw_buckets"))
        adhoc = ws.local.funnel(
            steps=saved["steps"], from_date=first, to_date=last, **window, **params
        )
        assert [s.count for s in adhoc.steps] == [s.count for s in live.steps]


def test_simultaneous_steps_use_the_grace_period(tmp_path: Path) -> None:
    """B one second before A still converts A -> B (funnels-faq.mdx: two-second grace)."""
    import duckdb

    from mixpanel_data._internal.config import Credentials

    db = tmp_path / "g.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE events (event_name VARCHAR, event_time TIMESTAMPTZ, distinct_id VARCHAR, "
        "insert_id VARCHAR, properties JSON)"
    )
    rows = [
        ("A", "2024-01-02 10:00:05+00", "u1", "1"),
        ("B", "2024-01-02 10:00:04+00", "u1", "2"),  # 1 s before A: within the grace
        ("A", "2024-01-02 10:00:05+00", "u2", "3"),
        ("B", "2024-01-02 10:00:02+00", "u2", "4"),  # 3 s before A: too early
    ]
    con.executemany("INSERT INTO events VALUES (?, ?::TIMESTAMPTZ, ?, ?, '{}')", rows)
    con.execute(
        "CREATE TABLE _mp_windows (name VARCHAR, fetch_id VARCHAR, from_date DATE, to_date DATE, "
        "rows_inserted BIGINT, duplicates BIGINT, malformed BIGINT, committed_at TIMESTAMPTZ)"
    )
    con.execute(
        "INSERT INTO _mp_windows VALUES ('events', 'f', '2024-01-01', '2024-01-03', 4, 0, 0, now())"
    )
    con.close()
    creds = Credentials(username="u", secret="s", project_id="1", timezone="UTC", source="test")
    with Workspace(credentials=creds, path=db) as ws:
        r = ws.local.funnel(steps=["A", "B"], from_date="2024-01-02", to_date="2024-01-02")
    assert [s.count for s in r.steps] == [2, 1]


RETENTIONS = [
    {"born_event": "Sign Up"},
    {"born_event": "Sign Up", "event": "Purchase", "interval_count": 5, "unbounded": True},
    {"born_event": "View Item", "event": "Add To Cart", "unit": "week", "interval_count": 2},
    {
        "born_event": "Login",
        "interval": 3,
        "interval_count": 3,
        "born_where": 'properties["$os"] == "iOS"',
    },
    {"born_event": "Login", "event": "Login", "retention_type": "compounded", "interval_count": 4},
    {"born_event": "Sign Up", "event": "View Item", "on": 'properties["category"]', "limit": 3},
    {"born_event": "Sign Up", "where": 'properties["$browser"] == "Chrome"', "interval_count": 6},
    # Segments of a list property, unbounded: a user counts in every interval up to the last.
    {
        "born_event": "Sign Up",
        "event": "Purchase",
        "on": 'properties["categories"]',
        "unbounded": True,
        "interval_count": 4,
    },
    {
        "born_event": "View Item",
        "event": "View Item",
        "retention_type": "compounded",
        "unit": "week",
        "on": "$browser",
        "unbounded": True,
        "limit": 2,
    },
    {
        "born_event": "Login",
        "event": "Purchase",
        "unit": "month",
        "born_where": 'properties["$os"] != "iOS"',
        "where": 'properties["price"] > 10',
    },
]


@pytest.mark.parametrize("params", RETENTIONS, ids=str)
def test_retention_equals_live(
    fetched: tuple[Workspace, date, date], params: dict[str, Any]
) -> None:
    ws, first, last = fetched
    live = ws.live.retention(from_date=first, to_date=last, **params)
    local = ws.local.retention(from_date=first, to_date=last, **params)
    same(live, local)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"unit": "week", "addiction_unit": "day", "event": "Login"},
        {"unit": "month", "event": "View Item", "where": 'properties["$os"] != "iOS"'},
        {"event": "Purchase", "on": 'properties["$browser"]', "limit": 2},
        {"unit": "week", "event": "Purchase", "on": 'properties["categories"]'},
        {"unit": "month", "addiction_unit": "day", "on": "$os"},
        {"unit": "week", "addiction_unit": "hour", "event": "Login", "limit": 1, "on": "$os"},
    ],
    ids=str,
)
def test_frequency_equals_live(
    fetched: tuple[Workspace, date, date], params: dict[str, Any]
) -> None:
    ws, first, last = fetched
    live = ws.live.frequency(from_date=first, to_date=last, **params)
    local = ws.local.frequency(from_date=first, to_date=last, **params)
    same(live, local)


def test_demo_live_and_local_tables_agree(fetched: tuple[Workspace, date, date]) -> None:
    """`mp demo`'s live-vs-local tables, on this project's seed, date and timezone."""
    from mixpanel_data.cli.demo_sections import DemoRun, _live_funnel, _live_segmentation

    ws, _, last = fetched
    today = last + timedelta(days=1)
    zone = ws.credentials.timezone
    assert zone is not None
    run = DemoRun(from_date=today - timedelta(days=22), to_date=today, timezone=zone)
    funnel, seg = _live_funnel(ws, run), _live_segmentation(ws, run)
    assert len(funnel) == 3
    assert funnel[0]["live (Query API)"] > 0
    assert all(r["agree"] for r in funnel + seg), funnel + seg


@pytest.mark.parametrize("damage", ["other timezone", "no event_date"])
def test_days_computed_per_row_when_event_date_does_not_fit(
    fetched: tuple[Workspace, date, date], damage: str
) -> None:
    """A table whose ``event_date`` is missing, or was computed for another timezone,
    is read by converting each event's time: the reports still equal the live ones."""
    ws, first, last = fetched
    copy = "events_" + damage.replace(" ", "_")
    with ws.storage.connection(write=True) as conn:
        conn.execute(f"CREATE OR REPLACE TABLE {copy} AS SELECT * FROM events")
        for meta, key in (
            ("_mp_tables", "name"),
            ("_mp_windows", "name"),
            ("_mp_columns", "table_name"),
            ("_mp_column_days", "table_name"),
        ):
            conn.execute(f"DELETE FROM {meta} WHERE {key} = ?", [copy])
            conn.execute(
                f"INSERT INTO {meta} SELECT * REPLACE (? AS {key}) FROM {meta} WHERE {key} = ?",
                [copy, "events"],
            )
        if damage == "no event_date":
            conn.execute(f"ALTER TABLE {copy} DROP COLUMN event_date")
        else:  # days of a zone 10 hours away, as the fetch records them
            conn.execute(
                f"UPDATE {copy} SET event_date = CAST(timezone('Etc/GMT-10', event_time) AS DATE)"
            )
            conn.execute(
                "UPDATE _mp_tables SET fetch_args = json_merge_patch(fetch_args, "
                """'{"timezone": "Etc/GMT-10"}') WHERE name = ?""",
                [copy],
            )
    local = ws.local.using(copy)
    span = {"from_date": first, "to_date": last}
    same(
        ws.live.segmentation("View Item", on="category", **span),
        local.segmentation("View Item", on="category", **span),
    )
    same(
        ws.live.segmentation("Login", unit="hour", **span),
        local.segmentation("Login", unit="hour", **span),
    )
    same(
        ws.live.retention(born_event="Sign Up", event="Purchase", **span),
        local.retention(born_event="Sign Up", event="Purchase", **span),
    )
    same(ws.live.frequency(event="Login", **span), local.frequency(event="Login", **span))
