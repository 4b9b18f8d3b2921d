"""Workspace: the facade every user (Python or `mp`) goes through.

Credentials are resolved once, at construction; the API client and the local
database are created lazily, on first use, so commands that need neither stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixpanel_data._internal.config import ConfigManager, Credentials
from mixpanel_data._internal.rate_limit import BudgetSpec

if TYPE_CHECKING:
    import httpx

    from mixpanel_data._internal.api_client import MixpanelAPIClient


class Workspace:
    """One project's data: live queries against Mixpanel, and the local DuckDB copy.

    Example:
        with Workspace(account="prod") as ws:
            print(ws.test_credentials())
    """

    def __init__(
        self,
        account: str | None = None,
        *,
        project_id: str | None = None,
        region: str | None = None,
        path: str | Path | None = None,
        read_only: bool = False,
        credentials: Credentials | None = None,
        config: ConfigManager | None = None,
        transport: httpx.BaseTransport | None = None,
        budgets: Mapping[str, BudgetSpec] | None = None,
    ) -> None:
        self._config = config or ConfigManager()
        creds = credentials or self._config.resolve(account)
        if project_id is not None or region is not None:
            from dataclasses import replace

            creds = replace(
                creds,
                project_id=project_id if project_id is not None else creds.project_id,
                region=region if region is not None else creds.region,
            )
        self._credentials: Credentials | None = creds
        self._path = Path(path).expanduser() if path is not None else None
        self._read_only = read_only
        self._transport = transport
        self._budgets = budgets if budgets is not None else budgets_from_env()
        self._api: MixpanelAPIClient | None = None
        self._closed = False

    @classmethod
    def open(cls, path: str | Path | None = None, *, read_only: bool = True) -> Workspace:
        """Open a local database without credentials (SQL and inspection only)."""
        ws = cls.__new__(cls)
        ws._config = ConfigManager()
        ws._credentials = None
        ws._path = Path(path).expanduser() if path is not None else None
        ws._read_only = read_only
        ws._transport = None
        ws._budgets = {}
        ws._api = None
        ws._closed = False
        return ws

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The credentials resolved at construction (secret masked in repr)."""
        if self._credentials is None:
            from mixpanel_data.exceptions import ConfigError

            raise ConfigError(
                "this workspace was opened without credentials; "
                "open it with Workspace(account=...) to call Mixpanel"
            )
        return self._credentials

    @property
    def api(self) -> MixpanelAPIClient:
        """The API client, created on first use."""
        if self._api is None:
            from mixpanel_data._internal.api_client import MixpanelAPIClient

            self._api = MixpanelAPIClient(
                self.credentials, transport=self._transport, budgets=self._budgets
            )
        return self._api

    def close(self) -> None:
        """Release the API client and the database; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._api is not None:
            self._api.close()
            self._api = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        creds = self._credentials
        project = creds.project_id if creds else None
        return (
            f"Workspace(project_id={project!r}, path={str(self._path) if self._path else None!r})"
        )

    # -- credentials -------------------------------------------------------------------

    def test_credentials(self) -> dict[str, Any]:
        """Check the credentials with ``/api/app/me`` and describe the project.

        Raises AuthenticationError when the account cannot see the project.
        """
        from mixpanel_data.exceptions import AuthenticationError

        me = self.api.me()
        projects = me.get("projects") or {}
        project = projects.get(self.credentials.project_id)
        if not isinstance(project, dict):
            raise AuthenticationError(
                f"the credentials are valid but cannot access project "
                f"{self.credentials.project_id} (it has {len(projects)} project(s)); "
                "check the project id or grant the service account access",
            )
        return {
            "ok": True,
            "account": self.credentials.account,
            "project_id": self.credentials.project_id,
            "project_name": project.get("name"),
            "timezone": project.get("timezone"),
            "domain": project.get("domain"),
            "region": self.credentials.region,
            "user_email": me.get("user_email"),
        }


def budgets_from_env(environ: Mapping[str, str] | None = None) -> dict[str, BudgetSpec]:
    """Read ``MP_RATE_LIMIT_EXPORT`` / ``MP_RATE_LIMIT_QUERY`` overrides (e.g. ``off``)."""
    from mixpanel_data._internal.rate_limit import parse_budget_spec

    env = os.environ if environ is None else environ
    out: dict[str, BudgetSpec] = {}
    for family in ("export", "query", "app"):
        raw = env.get(f"MP_RATE_LIMIT_{family.upper()}")
        if raw:
            out[family] = parse_budget_spec(raw)
    return out
