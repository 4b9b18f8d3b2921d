"""Shared fixtures: every test runs with a clean environment and a private config home."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixpanel_data._internal.rate_limit import reset_budgets

_MP_VARS = (
    "MP_ACCOUNT",
    "MP_USERNAME",
    "MP_SECRET",
    "MP_PROJECT_ID",
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
