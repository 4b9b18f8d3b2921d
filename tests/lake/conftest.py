"""Fixtures for the Parquet lake: a real DuckDB file with events and profiles built in Python."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from mixpanel_data._internal.storage.engine import StorageEngine, create_table_sql

EVENT_NAMES = ("Login", "Purchase", "Sign Up", "View Item")


@dataclass(frozen=True)
class LocalData:
    """A database file and the facts about its rows, computed in Python."""

    path: Path
    events: list[tuple[str, datetime, str, str, str]]
    profiles: list[tuple[str, datetime, str]]

    def per_day(self) -> Counter[tuple[str, str]]:
        """Events per (UTC day, event name)."""
        return Counter((t.astimezone(UTC).date().isoformat(), n) for n, t, *_ in self.events)

    def per_partition(self, fmt: str = "%Y-%m-%d") -> Counter[str]:
        return Counter(t.astimezone(UTC).strftime(fmt) for _, t, *_ in self.events)


def make_events(seed: int, count: int) -> list[tuple[str, datetime, str, str, str]]:
    """Events over five days, stamped in assorted zones (partitioning must use UTC)."""
    rng = random.Random(seed)
    start = datetime(2024, 2, 27, tzinfo=UTC)  # crosses a month end (Feb 29, leap year)
    zones = [timezone(timedelta(hours=h)) for h in (-8, 0, 5, 9)]
    rows = []
    for i in range(count):
        when = start + timedelta(seconds=rng.randrange(5 * 86400))
        name = rng.choice(EVENT_NAMES)
        props = {"$insert_id": f"i{i}", "price": rng.randrange(100), "note": "o'k \u00e9"}
        rows.append(
            (name, when.astimezone(rng.choice(zones)), f"u{rng.randrange(50)}", f"i{i}", props)
        )
    return [(n, t, d, i, orjson.dumps(p).decode()) for n, t, d, i, p in rows]


def _arrow(rows: list, names: list[str]):
    import pyarrow as pa

    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def fill(engine: StorageEngine, data_events: list, profiles: list, *, table: str = "events"):
    """Create and fill the tables (bulk insert through Arrow: executemany is slow)."""
    ev = _arrow(data_events, ["event_name", "event_time", "distinct_id", "insert_id", "properties"])
    with engine.writer() as conn:
        conn.execute(create_table_sql(table, "events"))
        conn.register("ev", ev)
        # A UTC project: event_date is the UTC day (the fetcher's, for the zone UTC).
        conn.execute(
            f'INSERT INTO "{table}" SELECT event_name, event_time, '  # noqa: S608 (test's own name)
            "CAST(timezone('UTC', event_time) AS DATE), distinct_id, insert_id, properties FROM ev"
        )
        if profiles:
            pr = _arrow(profiles, ["distinct_id", "last_seen", "properties"])
            conn.execute(create_table_sql("profiles", "profiles"))
            conn.register("pr", pr)
            conn.execute("INSERT INTO profiles SELECT * FROM pr")


@pytest.fixture
def local_data(tmp_path: Path) -> LocalData:
    events = make_events(seed=11, count=600)
    profiles = [
        (f"u{i}", datetime(2024, 3, 1, i % 24, tzinfo=UTC), orjson.dumps({"n": i}).decode())
        for i in range(50)
    ]
    path = tmp_path / "local.duckdb"
    with StorageEngine(path) as engine:
        fill(engine, events, profiles)
    return LocalData(path=path, events=events, profiles=profiles)


@pytest.fixture(scope="session")
def dask_client() -> Any:
    """A ``dask.distributed`` local cluster: a real scheduler and two worker processes.

    Workers talk to the scheduler over loopback; while the client is open every Dask
    computation in the process runs on the cluster, not the threaded scheduler.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            # Every HTTP server on a free loopback port: 8787 may be taken by another run.
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
