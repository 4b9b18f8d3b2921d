"""Fixtures for the network fault suite: a fetcher with recorded (not slept) backoffs.

Every test injects a fault through the emulator (over real loopback HTTP), then
compares the table with a clean run of the same range: a Counter of
(event, distinct_id, time, properties) rows, so order and row ids do not matter.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from mixpanel_data._internal.config import Credentials
from mixpanel_data._internal.http.client import MixpanelAPIClient, RetryPolicy
from mixpanel_data._internal.http.rate_limit import BudgetSpec
from mixpanel_data._internal.services.fetch.service import FetcherService
from mixpanel_data._internal.storage.engine import StorageEngine, quote_ident

# Quick but real retries: the backoff delays are recorded by `Harness.sleep`.
FAST_RETRY = RetryPolicy(max_attempts=4, max_total_seconds=30.0, base_delay=0.01, max_delay=0.02)


def creds_for(emu: Any, *, secret: str | None = None, project_id: str | None = None) -> Credentials:
    """Credentials pointing at an Emulator (optionally wrong ones)."""
    return Credentials(
        username=emu.username,
        secret=SecretStr(secret if secret is not None else emu.secret),
        project_id=project_id or str(emu.spec.project_id),
        # The client takes the project as UTC, so one day is one export request: these
        # tests count requests per day. Project-timezone days: tests/fetch/test_project_days.py.
        base_url=emu.base_url,
        timezone="UTC",
    )


@dataclass
class Harness:
    """A FetcherService on a fresh database, its API client and the backoffs it asked for."""

    emu: Any
    db: Path
    slept: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    clients: list[MixpanelAPIClient] = field(default_factory=list)

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def fetcher(
        self,
        *,
        retry: RetryPolicy = FAST_RETRY,
        gzip: bool | None = None,
        timeouts: dict[str, httpx.Timeout] | None = None,
        budgets: dict[str, BudgetSpec] | None = None,
        credentials: Credentials | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> FetcherService:
        api = MixpanelAPIClient(
            credentials or creds_for(self.emu),
            retry=retry,
            sleep=self.sleep,
            timeouts=timeouts,
            budgets=budgets,
            transport=transport,
        )
        self.clients.append(api)
        return FetcherService(
            api,
            StorageEngine(self.db),
            timezone="UTC",  # as creds_for: one export day per day
            notice=self.notices.append,
            gzip=gzip,
        )


@pytest.fixture
def emu(emulator: Any) -> Iterator[Any]:
    """The shared emulator with no faults and an empty request log."""
    emulator.faults.clear()
    emulator.clear_requests()
    yield emulator
    emulator.faults.clear()


@pytest.fixture
def harness(emu: Any, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(emu=emu, db=tmp_path / "data.duckdb")
    yield h
    h.close()


def table_counter(db: Path, table: str = "events") -> Counter[tuple[Any, ...]]:
    """A table's rows as a multiset (properties canonicalised)."""
    engine = StorageEngine(db, read_only=True)
    sql = "SELECT event_name, distinct_id, epoch(event_time)::BIGINT, properties FROM "
    _cols, rows = engine.execute_rows(sql + quote_ident(table))
    return Counter((e, d, t, json.dumps(json.loads(p), sort_keys=True)) for e, d, t, p in rows)


_CLEAN: dict[tuple[int, date, date], Counter[tuple[Any, ...]]] = {}


def clean_run(emu: Any, tmp_path: Path, start: date, end: date) -> Counter[tuple[Any, ...]]:
    """The table a fault-free fetch of ``start..end`` produces (cached per process)."""
    key = (id(emu), start, end)
    if key not in _CLEAN:
        assert not emu.faults.active()
        db = tmp_path / f"clean-{start}-{end}.duckdb"
        h = Harness(emu=emu, db=db)
        try:
            h.fetcher().fetch_events("events", from_date=start, to_date=end)
        finally:
            h.close()
        _CLEAN[key] = table_counter(db)
    return _CLEAN[key]


def export_statuses(emu: Any) -> list[int]:
    """HTTP statuses of the export calls the emulator answered, in order."""
    return [r.status for r in emu.requests() if r.endpoint == "export"]
