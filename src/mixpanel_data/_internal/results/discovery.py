"""Typed results of the discovery endpoints: funnels, cohorts, top events, bookmarks.

Parsers are lenient (contract §6–§8, §12.1): optional keys default, unknown keys are
ignored, and ids that may exceed a float's precision stay ints or strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from mixpanel_data._internal.results.notebook import NotebookRepr

__all__ = ["BookmarkInfo", "FunnelInfo", "SavedCohort", "TopEvent"]


def _int(value: Any, default: int = 0) -> int:
    """Read an int that may arrive as a string or a float."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class FunnelInfo(NotebookRepr):
    """A saved funnel, as `/funnels/list` lists it (contract §7.1)."""

    notebook_table: ClassVar[str | None] = None

    funnel_id: int
    name: str

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> FunnelInfo:
        """Parse one `/funnels/list` row."""
        return cls(funnel_id=_int(row.get("funnel_id")), name=str(row.get("name", "")))

    def to_dict(self) -> dict[str, Any]:
        """Describe the funnel as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class SavedCohort(NotebookRepr):
    """A saved cohort, as `/cohorts/list` lists it (contract §8).

    ``created`` stays Mixpanel's ``YYYY-MM-DD HH:MM:SS`` text (no timezone is given);
    ``data_group_id`` is a string because group ids can be large negative 64-bit numbers.
    """

    notebook_table: ClassVar[str | None] = None

    id: int
    name: str
    count: int
    description: str
    created: str | None
    is_visible: bool
    project_id: int | None
    data_group_id: str | None

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> SavedCohort:
        """Parse one `/cohorts/list` row."""
        project = row.get("project_id")
        return cls(
            id=_int(row.get("id")),
            name=str(row.get("name", "")),
            count=_int(row.get("count")),
            description=str(row.get("description") or ""),
            created=_opt_str(row.get("created")),
            is_visible=bool(_int(row.get("is_visible"), 1)),
            project_id=None if project is None else _int(project),
            data_group_id=_opt_str(row.get("data_group_id")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the cohort as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class TopEvent(NotebookRepr):
    """One of today's top events (contract §6.2); ``percent_change`` is against yesterday."""

    notebook_table: ClassVar[str | None] = None

    event: str
    amount: int
    percent_change: float

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> TopEvent:
        """Parse one item of `/events/top`'s ``events`` list."""
        return cls(
            event=str(row.get("event", "")),
            amount=_int(row.get("amount")),
            percent_change=_float(row.get("percent_change")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the event as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class BookmarkInfo(NotebookRepr):
    """A saved report (bookmark) from the App API (contract §12.1).

    ``type`` is ``insights``, ``funnels``, ``retention``, ``flows`` or ``launch-analysis``;
    pass ``id`` to `Workspace.saved_report` or `Workspace.flows`.
    """

    notebook_table: ClassVar[str | None] = None

    id: int
    name: str
    type: str
    project_id: int | None
    workspace_id: int | None
    dashboard_id: int | None
    created: str | None
    modified: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> BookmarkInfo:
        """Parse one item of the bookmarks list's ``results``."""

        def opt_int(key: str) -> int | None:
            value = row.get(key)
            return None if value is None else _int(value)

        return cls(
            id=_int(row.get("id")),
            name=str(row.get("name", "")),
            type=str(row.get("type", "")),
            project_id=opt_int("project_id"),
            workspace_id=opt_int("workspace_id"),
            dashboard_id=opt_int("dashboard_id"),
            created=_opt_str(row.get("created")),
            modified=_opt_str(row.get("modified")),
            raw=dict(row),
        )

    def to_dict(self) -> dict[str, Any]:
        """Describe the bookmark as JSON-ready data (without the raw row)."""
        out = asdict(self)
        out.pop("raw")
        return out
