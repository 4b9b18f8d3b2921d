"""Shared fixtures: every test runs with a clean environment and a private config home."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mixpanel_data._internal.http.rate_limit import reset_budgets

_MP_VARS = (
    "MP_ACCOUNT",
    "MP_USERNAME",
    "MP_SECRET",
    "MP_PROJECT_SECRET",
    "MP_PROJECT_ID",
    "MP_WORKSPACE_ID",
    "MP_REGION",
    "MP_BASE_URL",
    "MP_TIMEZONE",
    "MP_CONFIG_PATH",
    "MP_DB_PATH",
    "MP_RATE_LIMIT_EXPORT",
    "MP_RATE_LIMIT_QUERY",
    "MP_RATE_LIMIT_APP",
    "NO_COLOR",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Isolate MP_* variables, HOME and the config file for each test."""
    for name in _MP_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MP_CONFIG_PATH", str(home / ".mp" / "config.toml"))
    # Each test's emulator has its own origin, so budgets never leak between tests;
    # the hourly budgets are off here (tests that check budgets set them explicitly).
    monkeypatch.setenv("MP_RATE_LIMIT_QUERY", "5c")
    monkeypatch.setenv("MP_RATE_LIMIT_EXPORT", "100c")
    reset_budgets()
    return home


# -- the Mixpanel API emulator, shared by integration tests ---------------------------------


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running emulator (users=200, days=30, seed=7), started once per xdist worker.

    Shared: tests that inject faults must clear them (``emulator.faults.clear()``) or
    start their own ``Emulator``.
    """
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    spec = ProjectSpec(seed=7, users=200, days=30)
    cache = tmp_path_factory.mktemp("emulator-cache")
    with Emulator(spec=spec, cache_dir=cache, threads=32) as emu:
        yield emu


def emulator_credentials(emu: Any) -> Any:
    """``Credentials`` that point the client at an ``Emulator``."""
    from mixpanel_data._internal.config import Credentials

    return Credentials(
        username=emu.username,
        secret=emu.secret,
        project_id=str(emu.spec.project_id),
        base_url=emu.base_url,
        timezone=emu.spec.timezone,
        source="emulator",
    )


@pytest.fixture
def emulator_creds(emulator: Any) -> Any:
    """``Credentials`` for the shared ``emulator`` fixture."""
    return emulator_credentials(emulator)


@contextlib.contextmanager
def client_today(day: Any, zone: str) -> Iterator[None]:
    """Pin the client's "today" in the project timezone (noon of `day` there), to match
    an emulator whose ``today`` is pinned: a fetch clamps its last export day to it."""
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    from mixpanel_data._internal.services.fetch import service, windows

    noon = datetime.combine(day, time(12), ZoneInfo(zone))

    def today(tz: str | None, *, now: Any = None, earliest: bool = False) -> Any:
        return windows.project_today(tz, now=noon, earliest=earliest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "project_today", today)
        yield
