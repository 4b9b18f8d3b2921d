"""Manage Mixpanel accounts: the public face of the config file.

    >>> from mixpanel_data import auth
    >>> auth.list_accounts()            # doctest: +SKIP
    [AccountInfo(name='prod', ...)]

Secrets are accepted as arguments here (a Python caller holds them anyway) but
never returned: `show` masks them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixpanel_data._internal.config import AccountInfo, ConfigManager, Credentials

__all__ = [
    "add_account",
    "config_path",
    "list_accounts",
    "remove_account",
    "resolve",
    "set_default",
    "show_account",
    "test_account",
]


def _manager(path: Path | None) -> ConfigManager:
    return ConfigManager(path)


def config_path(*, path: Path | None = None) -> Path:
    """Return the config file in use (``MP_CONFIG_PATH`` or ``~/.mp/config.toml``)."""
    return _manager(path).path


def list_accounts(*, path: Path | None = None) -> list[AccountInfo]:
    """List configured accounts, without secrets."""
    return _manager(path).list_accounts()


def add_account(
    name: str,
    *,
    username: str = "",
    secret: str,
    project_id: str,
    region: str = "us",
    base_url: str | None = None,
    timezone: str | None = None,
    make_default: bool = False,
    workspace_id: str | None = None,
    kind: str = "service_account",
    path: Path | None = None,
) -> AccountInfo:
    """Add an account (the first one becomes the default).

    ``kind="project_secret"`` stores a legacy project secret (no username); service
    accounts are preferred. ``workspace_id`` is the data view sent on every Query API call.
    """
    return _manager(path).add_account(
        name,
        username=username,
        secret=secret,
        project_id=project_id,
        region=region,
        base_url=base_url,
        timezone=timezone,
        make_default=make_default,
        workspace_id=workspace_id,
        kind=kind,
    )


def remove_account(name: str, *, path: Path | None = None) -> None:
    """Remove an account."""
    _manager(path).remove_account(name)


def set_default(name: str, *, path: Path | None = None) -> None:
    """Make an account the default."""
    _manager(path).set_default(name)


def resolve(account: str | None = None, *, path: Path | None = None) -> Credentials:
    """Resolve credentials: named account, then ``MP_*`` env vars, then the default."""
    return _manager(path).resolve(account)


def _resolved(account: str | None, path: Path | None, workspace_id: str | None) -> Credentials:
    creds = resolve(account, path=path)
    if workspace_id is None:
        return creds
    from dataclasses import replace

    return replace(creds, workspace_id=workspace_id)


def show_account(
    account: str | None = None, *, path: Path | None = None, workspace_id: str | None = None
) -> dict[str, Any]:
    """Describe the resolved credentials with the secret masked (``workspace_id`` overrides)."""
    return _resolved(account, path, workspace_id).to_dict()


def test_account(
    account: str | None = None, *, path: Path | None = None, workspace_id: str | None = None
) -> dict[str, Any]:
    """Check credentials against Mixpanel and describe the project (and data view).

    A service account is checked with ``/api/app/me``; a project secret with one
    Query API call (``/events/names``).
    """
    from mixpanel_data.workspace import Workspace

    with Workspace(credentials=_resolved(account, path, workspace_id)) as ws:
        return ws.test_credentials()
