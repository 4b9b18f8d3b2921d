"""Fixtures for the emulator's report endpoints: an HTTP client and the raw export.

Expected numbers are computed here from the emulator's raw export (fetched over
HTTP from ``/api/2.0/export``) with plain Python, never with the report code.
The report semantics they follow: events deduplicated on (event, distinct_id,
time, $insert_id), buckets in the project timezone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest


@dataclass(frozen=True)
class Raw:
    """One deduplicated export event with its project-timezone wall-clock time."""

    name: str
    user: str
    time: int
    local: datetime
    props: dict[str, Any]

    @property
    def day(self) -> date:
        return self.local.date()


@pytest.fixture(scope="session")
def api(emulator: Any) -> Iterator[httpx.Client]:
    """An httpx client authenticated against the shared emulator."""
    with httpx.Client(
        base_url=emulator.base_url, auth=(emulator.username, emulator.secret), timeout=60
    ) as client:
        yield client


class Query:
    """Call a Query API endpoint of the emulator: ``query("segmentation", event=...)``."""

    def __init__(self, client: httpx.Client, project_id: str) -> None:
        self.client = client
        self.project_id = project_id

    def __call__(self, endpoint: str, *, method: str = "GET", **params: Any) -> httpx.Response:
        params = {k: v for k, v in params.items() if v is not None}
        query = {"project_id": self.project_id}
        if method == "POST":
            return self.client.post(f"/api/query/{endpoint}", params=query, data=params)
        return self.client.get(f"/api/query/{endpoint}", params={**query, **params})

    def ok(self, endpoint: str, **params: Any) -> Any:
        response = self(endpoint, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def query(api: httpx.Client, emulator: Any) -> Query:
    return Query(api, str(emulator.spec.project_id))


@pytest.fixture(scope="session")
def raw(api: httpx.Client, emulator: Any) -> list[Raw]:
    """Every event of the project from one export call, deduplicated, in export order."""
    project = emulator.project
    tz = ZoneInfo(emulator.spec.timezone)
    days = project.data_dates
    response = api.get(
        "/api/2.0/export",
        params={
            "project_id": str(emulator.spec.project_id),
            "from_date": days[0].isoformat(),
            "to_date": days[-1].isoformat(),
        },
    )
    assert response.status_code == 200
    seen: set[tuple[Any, ...]] = set()
    out: list[Raw] = []
    for line in response.content.splitlines():
        if not line.strip():
            continue
        record = orjson.loads(line)
        props = record["properties"]
        insert_id = props.get("$insert_id")
        if insert_id is not None:
            key = (record["event"], props["distinct_id"], props["time"], insert_id)
            if key in seen:
                continue
            seen.add(key)
        local = datetime.fromtimestamp(props["time"], tz).replace(tzinfo=None)
        out.append(Raw(record["event"], str(props["distinct_id"]), props["time"], local, props))
    out.sort(key=lambda r: r.time)  # stable: ties keep export order
    return out


@pytest.fixture(scope="session")
def today(emulator: Any) -> date:
    return emulator.project.today


@pytest.fixture(scope="session")
def window(today: date) -> tuple[date, date]:
    """A week well inside the data (which ends yesterday)."""
    return today - timedelta(days=16), today - timedelta(days=10)


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def label(value: Any) -> str:
    """How the Query API prints a segment value (booleans lowercase, no trailing .0)."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
