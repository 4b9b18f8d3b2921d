"""The credential check behind `mp auth test`: one cheap call, then what it tells.

A service account is checked with ``/api/app/me`` (contract §14), which also names the
project and its data views. A project secret is checked with one Query API call
(``/events/names``, §14's project-scoped alternative): ``/me`` is documented for
service accounts only, so its answer for a project secret is not relied on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mixpanel_data._internal.config import PROJECT_SECRET
from mixpanel_data.exceptions import AuthenticationError

if TYPE_CHECKING:
    from mixpanel_data._internal.http.client import MixpanelAPIClient

__all__ = ["check_credentials"]


def check_credentials(api: MixpanelAPIClient) -> dict[str, Any]:
    """Describe the project (and data view) the credentials reach, or raise."""
    creds = api.credentials
    if creds.kind == PROJECT_SECRET:
        api.request("GET", "query", "events/names", params={"type": "general", "limit": 1})
        return {
            "ok": True,
            "account": creds.account,
            "kind": creds.kind,
            "project_id": creds.project_id,
            "region": creds.region,
            "workspace_id": creds.workspace_id,
        }
    me = api.me()
    projects = me.get("projects") or {}
    project = projects.get(creds.project_id)
    if not isinstance(project, dict):
        raise AuthenticationError(
            f"the credentials are valid but cannot access project "
            f"{creds.project_id} (it has {len(projects)} project(s)); "
            "check the project id or grant the service account access",
        )
    view: dict[str, Any] = {}
    if creds.workspace_id:
        found = (me.get("workspaces") or {}).get(creds.workspace_id)
        if not isinstance(found, dict) or str(found.get("project_id")) != creds.project_id:
            raise AuthenticationError(
                f"the credentials are valid but data view (workspace) {creds.workspace_id} "
                f"is not one this account sees in project {creds.project_id}; "
                "check workspace_id (the number after /view/ in a Mixpanel URL)",
            )
        view = found
    return {
        "ok": True,
        "account": creds.account,
        "kind": creds.kind,
        "project_id": creds.project_id,
        "project_name": project.get("name"),
        "timezone": project.get("timezone"),
        "domain": project.get("domain"),
        "region": creds.region,
        "user_email": me.get("user_email"),
        "workspace_id": creds.workspace_id,
        "workspace_name": view.get("name"),
    }
