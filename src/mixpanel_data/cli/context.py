"""State shared by all commands of one `mp` invocation (``ctx.obj``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mixpanel_data.workspace import Workspace


@dataclass
class CliContext:
    """Global options, and the Workspace built once, on first use."""

    account: str | None = None
    quiet: bool = False
    verbose: bool = False
    db_path: str | None = None
    workspace_id: str | None = None
    _workspaces: dict[tuple[Any, ...], Workspace] = field(default_factory=dict)

    def workspace(self, *, read_only: bool = False, credentials: bool = True) -> Workspace:
        """Return the Workspace for this invocation (credentials resolved once).

        ``credentials=False`` opens the local database only (e.g. `mp sql`).
        """
        from mixpanel_data.workspace import Workspace

        key = (read_only, credentials)
        if key not in self._workspaces:
            if credentials:
                ws = Workspace(
                    self.account,
                    path=self.db_path,
                    read_only=read_only,
                    workspace_id=self.workspace_id,
                    quiet=self.quiet,
                )
            else:
                ws = Workspace.open(self.db_path, read_only=read_only, quiet=self.quiet)
            self._workspaces[key] = ws
        return self._workspaces[key]

    def close(self) -> None:
        """Close every Workspace this invocation opened."""
        for ws in self._workspaces.values():
            ws.close()
        self._workspaces.clear()


def get_context(ctx: typer.Context) -> CliContext:
    """Return the invocation's CliContext, creating a default one for sub-apps run alone."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext()
    return root.obj
