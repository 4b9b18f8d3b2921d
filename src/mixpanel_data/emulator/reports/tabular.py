"""``format=csv`` on the reports that document it: segmentation, events, event properties.

The spec lists ``format`` as ``json`` (default) or ``csv`` on these three endpoints
(query.openapi.yaml ``components.parameters.format``, and ``csv`` on ``/segmentation``)
but shows no CSV body. Ours is the ``values`` table of the JSON answer: a ``date``
column in ``series`` order, then one column per key of ``values``, a cell being that
bucket's number (0 where the JSON omits a zero bucket). Any other ``format`` is a 400.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any, Final

from mixpanel_data.emulator.reports.params import choice
from mixpanel_data.emulator.responses import Reply
from mixpanel_data.emulator.routing import ApiRequest

__all__ = ["CSV", "FORMATS", "series_reply", "wants_csv"]

CSV: Final = "text/csv; charset=utf-8"
FORMATS: Final = ("json", "csv")


def wants_csv(req: ApiRequest) -> bool:
    """True for ``format=csv``; a 400 envelope for a format Mixpanel does not document."""
    return choice(req, "format", FORMATS, default="json") == "csv"


def series_reply(body: Mapping[str, Any]) -> Reply:
    """The CSV form of a ``{"data": {"series", "values"}, "legend_size"}`` answer."""
    data = body["data"]
    series: Sequence[str] = data["series"]
    values: Mapping[str, Mapping[str, Any]] = data["values"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["date", *values])
    for bucket in series:
        writer.writerow([bucket, *(row.get(bucket, 0) for row in values.values())])
    raw = out.getvalue().encode("utf-8")
    return Reply(status=200, body=[raw], content_type=CSV, length=len(raw))
