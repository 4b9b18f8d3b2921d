"""The local engine's wall clock (UTC plus the zone's offset per piece between
transitions) equals DuckDB's ``AT TIME ZONE`` for every instant of a range, to the
microsecond, in zones with DST, half-hour offsets and half-hour DST steps."""

# The SQL here is built from constant names and the engine's own expressions.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mixpanel_data._internal.services.local.engine import LocalEngine
from mixpanel_data._internal.storage.engine import StorageEngine

ZONES = [
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Auckland",  # DST ends in April, starts in September
    "Australia/Lord_Howe",  # DST moves the clock by 30 minutes
    "America/St_Johns",  # -03:30 with DST
    "UTC",
]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> StorageEngine:
    """Instants all over 2024 (every 599 s, with sub-second parts) and every second,
    plus and minus a microsecond, within two hours of each zone's transitions."""
    path: Path = tmp_path_factory.mktemp("clock") / "clock.duckdb"
    engine = StorageEngine(path)
    with engine.connection(write=True) as conn:
        conn.execute(
            "CREATE TABLE ev AS SELECT to_timestamp(x + 0.25 * (x % 4)) AS event_time "
            "FROM range(1703808000, 1735948800, 599) r(x)"
        )
        for zone in ZONES:
            # Hours whose offset differs from the hour before: the transitions.
            offset = f"epoch_us(timezone('{zone}', to_timestamp(x))) - x * 1000000"
            conn.execute(
                f"""INSERT INTO ev
                SELECT to_timestamp(h + s) + to_microseconds(d) FROM (
                    SELECT x AS h, {offset} AS o, lag({offset}) OVER (ORDER BY x) AS p
                    FROM range(1703808000, 1735948800, 3600) r(x)
                ), range(-7200, 7200) r2(s), (VALUES (-1), (0), (1)) v(d)
                WHERE o <> p"""
            )
    return engine


@pytest.mark.parametrize("zone", ZONES)
def test_wall_clock_equals_at_time_zone(storage: StorageEngine, zone: str) -> None:
    local = LocalEngine(storage, timezone=zone, table="ev")
    with storage.connection() as conn:
        clock = local._local_sql(date(2024, 1, 1), date(2024, 12, 31))
        total, wrong = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {clock} IS DISTINCT FROM "
            f"(event_time AT TIME ZONE '{zone}')) FROM ev "
            "WHERE event_time BETWEEN TIMESTAMPTZ '2024-01-01 00:00:00+14' "
            "AND TIMESTAMPTZ '2024-12-31 23:59:59-12'"
        ).fetchone() or (0, 0)
    assert total > 50_000
    assert wrong == 0
    if zone not in ("Asia/Kolkata", "UTC"):
        assert clock.count("WHEN") == 2  # two transitions in 2024, each its own piece
