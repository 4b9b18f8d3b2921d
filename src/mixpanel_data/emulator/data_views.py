"""Data views ("workspaces"): event-scoped views of a project, chosen with ``workspace_id``.

Every Query API path takes ``workspace_id`` (``openapi/query.openapi.yaml``,
``components.parameters.workspaceId``: "The id of the workspace if applicable"); the
Raw Export spec has no such parameter, so export ignores it. The docs describe a data
view as a named filter over events, event properties and profile properties, with a
global "All Project Data" view that has none (``data-views-and-classification.mdx``).

The emulated project has three views (ids count up from the project's global one):

- ``G``     "All Project Data": no filter (the default, as without ``workspace_id``);
- ``G + 1`` "Commerce": only ``View Item``, ``Add To Cart`` and ``Purchase``;
- ``G + 2`` "Without browsing": every event but ``Page View`` and ``Share Item``.

Reports computed in a view see only its events; profiles (engage), saved funnels and
cohort lists are the project's. Mixpanel publishes no error for an unknown view, so
the emulator answers as it does for a project the caller may not use: 403, envelope
``User is not a member of this workspace`` (a chosen wording, by analogy with the
recorded project refusal). A ``workspace_id`` that is not a number is a 400.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from mixpanel_data.emulator.routing import EmulatorError

__all__ = ["DataView", "ScopedProject", "data_views", "scoped"]

NOT_MEMBER = "User is not a member of this workspace"


@dataclass(frozen=True)
class DataView:
    """One data view: an id, a name and an event filter (include-only or exclude)."""

    id: int
    name: str
    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    is_global: bool = False

    def keeps(self, event: str) -> bool:
        """Whether an event of this name is visible in the view."""
        if self.include is not None and event not in self.include:
            return False
        return event not in self.exclude

    def me_row(self, project_id: int) -> dict[str, Any]:
        """The view as ``/api/app/me`` lists it under ``workspaces`` (contract §14)."""
        return {
            "id": self.id,
            "name": self.name,
            "project_id": project_id,
            "is_default": self.is_global,
            "is_global": self.is_global,
        }


def data_views(global_id: int) -> list[DataView]:
    """The emulated project's data views, the global one first."""
    return [
        DataView(global_id, "All Project Data", is_global=True),
        DataView(
            global_id + 1, "Commerce", include=frozenset({"View Item", "Add To Cart", "Purchase"})
        ),
        DataView(global_id + 2, "Without browsing", exclude=frozenset({"Page View", "Share Item"})),
    ]


class ScopedProject:
    """A project seen through one data view: its export days hold only the view's events.

    Everything else (spec, timezone, profiles, saved reports) is the project's own, so
    the report code works unchanged; each view's Dataset is cached like the project's.
    """

    def __init__(self, base: Any, view: DataView) -> None:
        self._base = base
        self.view = view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def iter_export_day(self, day: date) -> Iterator[dict[str, Any]]:
        """The day's records whose event the view keeps."""
        for record in self._base.iter_export_day(day):
            if self.view.keeps(str(record.get("event"))):
                yield record


_SCOPED: weakref.WeakKeyDictionary[Any, dict[int, ScopedProject]] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def scoped(project: Any, workspace_id: str | None) -> Any:
    """The project as the request's ``workspace_id`` sees it (itself without one)."""
    text = (workspace_id or "").strip()
    if not text:
        return project
    try:
        wanted = int(text)
    except ValueError:
        message = f"Error in workspace_id: expected an integer, got {text!r}"
        raise EmulatorError(400, message) from None
    view = next((v for v in data_views(project.workspace_id) if v.id == wanted), None)
    if view is None:
        raise EmulatorError(403, NOT_MEMBER)
    if view.is_global:
        return project
    with _GUARD:
        views = _SCOPED.setdefault(project, {})
        if view.id not in views:
            views[view.id] = ScopedProject(project, view)
        return views[view.id]
