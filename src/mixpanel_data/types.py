"""Public result types: frozen dataclasses with ``to_dict()``.

Sections are grouped by the feature that returns them.
"""

from __future__ import annotations

from mixpanel_data._internal.config import AccountInfo, Credentials

__all__ = ["AccountInfo", "Credentials"]
