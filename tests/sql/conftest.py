"""A real DuckDB file with known events and profiles, and an in-process `mp` runner."""

from __future__ import annotations

import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

EVENT_NAMES = ("Login", "View Item", "Add To Cart", "Purchase", "Sign Up")
COUNTRIES = ("US", "DE", "JP", "BR")
NOTES = ("Great 👍🔥", "非常好", "מוצר מצוין", "café crème")


def make_events(*, seed: int = 3, n: int = 400) -> list[dict[str, Any]]:
    """Events in the table's shape; properties as Python data (with the hard cases)."""
    rng = random.Random(seed)
    base = datetime(2024, 3, 1, tzinfo=UTC)
    users = [f"user-{i:02d}" for i in range(25)]
    out = []
    for i in range(n):
        name = rng.choices(EVENT_NAMES, weights=[30, 40, 15, 8, 7])[0]
        props: dict[str, Any] = {"mp_country_code": rng.choice(COUNTRIES), "$os": "Linux"}
        if rng.random() < 0.3:
            props["plan"] = rng.choice(["free", "pro"])
        if rng.random() < 0.05:
            props["Plan"] = "Pro"  # differs from "plan" by case only
        if name == "Purchase":
            cents = rng.randrange(100, 50_000)
            props["price"] = f"{cents / 100:.2f}" if i % 5 == 0 else cents / 100
            props["categories"] = rng.sample(["Books", "Shoes", "Toys"], 2)
        if name == "Add To Cart":
            props["cart"] = {"items": rng.randrange(1, 5), "currency": "USD"}
        if rng.random() < 0.1:
            props["note"] = rng.choice(NOTES)
        out.append(
            {
                "event_name": name,
                "event_time": base + timedelta(seconds=rng.randrange(14 * 86_400)),
                "distinct_id": rng.choice(users),
                "insert_id": None if i % 17 == 0 else f"ins-{i}",
                "properties": props,
            }
        )
    return out


def make_profiles(*, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "distinct_id": f"user-{i:02d}",
            "last_seen": datetime(2024, 3, 10, tzinfo=UTC) + timedelta(hours=i),
            "properties": {
                "$email": f"u{i}@example.com",
                "plan": rng.choice(["free", "pro"]),
                "age": rng.randrange(18, 70),
                "tags": ["beta"] if i % 3 == 0 else [],
            },
        }
        for i in range(20)
    ]


@dataclass(frozen=True)
class LocalDB:
    """The database file and the exact rows put in it."""

    path: Path
    events: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    purchases: list[dict[str, Any]]


def build_db(path: Path) -> LocalDB:
    """Create `events` and `profiles` (with fetch metadata) and `purchases` (made with SQL)."""
    import pyarrow as pa

    from mixpanel_data._internal.storage.engine import (
        StorageEngine,
        create_table_sql,
        ensure_meta,
        write_meta,
    )

    events, profiles = make_events(), make_profiles()
    with StorageEngine(path) as engine, engine.writer() as conn:
        ensure_meta(conn)
        conn.execute(create_table_sql("events", "events"))
        conn.execute(create_table_sql("profiles", "profiles"))
        # One bulk insert per table (row-by-row executemany is slow in DuckDB).
        for name, rows in (("events", events), ("profiles", profiles)):
            arrow = pa.Table.from_pylist(
                [{**r, "properties": orjson.dumps(r["properties"]).decode()} for r in rows]
            )
            conn.register("staged", arrow)
            conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM staged")  # noqa: S608
            conn.unregister("staged")
        for name, kind in (("events", "events"), ("profiles", "profiles")):
            write_meta(
                conn,
                name=name,
                kind=kind,
                project_id="4242",
                fetch_args={"from_date": "2024-03-01", "to_date": "2024-03-14"},
                fetch_id=f"test-{name}",
                windows_done=14,
                windows_total=14,
                from_date=date(2024, 3, 1),
                to_date=date(2024, 3, 14),
                complete=True,
                fetched_at=datetime(2024, 3, 15, tzinfo=UTC),
            )
        conn.execute("CREATE TABLE purchases AS SELECT * FROM events WHERE event_name = 'Purchase'")
    purchases = [e for e in events if e["event_name"] == "Purchase"]
    return LocalDB(path=path, events=events, profiles=profiles, purchases=purchases)


@pytest.fixture(scope="session")
def _local_db_template(tmp_path_factory: pytest.TempPathFactory) -> LocalDB:
    return build_db(tmp_path_factory.mktemp("sql-template") / "local.duckdb")


@pytest.fixture
def local_db(_local_db_template: LocalDB, tmp_path: Path) -> LocalDB:
    """A private copy of the template database (tests may change it)."""
    path = tmp_path / "local.duckdb"
    shutil.copyfile(_local_db_template.path, path)
    return LocalDB(
        path=path,
        events=_local_db_template.events,
        profiles=_local_db_template.profiles,
        purchases=_local_db_template.purchases,
    )


@dataclass(frozen=True)
class MpResult:
    exit_code: int
    stdout: str
    stderr: str


MpRunner = Callable[..., MpResult]


@pytest.fixture
def run_mp() -> MpRunner:
    """Run `mp` in-process through its real entry point (the one error handler included)."""
    from mixpanel_data.cli.main import main

    def run(*args: str, input: str | None = None) -> MpResult:
        runner = CliRunner()
        code: Any = 0
        with runner.isolation(input=input) as (out, err, _):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        return MpResult(int(code or 0), stdout, stderr)

    return run
