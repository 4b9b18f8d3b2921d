"""Results in Jupyter: HTML tables, one-line reprs, Arrow/Polars views, one-line progress."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from mixpanel_data._internal.results.live import SegmentationResult
from mixpanel_data._internal.results.notebook import NotebookProgress, NotebookRepr, rows_of
from mixpanel_data.types import FetchProgress, SQLRows

# Contract §9.1's segmentation example shape, with a segment and a missing zero bucket.
BODY = {
    "data": {
        "series": ["2024-01-01", "2024-01-02", "2024-01-03"],
        "values": {
            "US": {"2024-01-01": 5, "2024-01-02": 7, "2024-01-03": 1},
            "<FR & co>": {"2024-01-02": 2},
        },
    },
    "legend_size": 2,
}


class NotebookSegmentation(SegmentationResult):
    """A subclass, to show the repr names the concrete class (live results carry the mixin)."""


@dataclass(frozen=True, repr=False)
class NotebookRows(SQLRows):
    """A subclass of SQLRows (which carries the mixin: columns + row tuples)."""


def _segmentation() -> NotebookSegmentation:
    result = NotebookSegmentation.from_api(
        BODY,
        event="Purchase",
        from_date="2024-01-01",
        to_date="2024-01-03",
        unit="day",
        type="general",
        on="country",
    )
    assert isinstance(result, NotebookSegmentation)
    return result


def _cells(markup: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", markup)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]


def test_live_result_renders_an_html_table() -> None:
    result = _segmentation()
    markup = result._repr_html_()
    cells = _cells(markup)
    assert cells[0] == ["date", "segment", "value"]
    # Segments ordered by total (13 for US, 2 for the other), zero buckets filled.
    assert cells[1:] == [
        ["2024-01-01", "US", "5"],
        ["2024-01-02", "US", "7"],
        ["2024-01-03", "US", "1"],
        ["2024-01-01", "&lt;FR &amp; co&gt;", "0"],
        ["2024-01-02", "&lt;FR &amp; co&gt;", "2"],
        ["2024-01-03", "&lt;FR &amp; co&gt;", "0"],
    ]
    assert "NotebookSegmentation: 6 rows" in markup
    assert "more rows" not in markup


def test_repr_is_one_compact_line() -> None:
    text = repr(_segmentation())
    assert "\n" not in text
    assert text.startswith("NotebookSegmentation(event='Purchase'")
    assert "6 rows × 3 columns (date, segment, value)" in text
    assert len(text) < 200


def test_html_is_capped_with_a_note() -> None:
    rows = NotebookRows(
        columns=("n", "label"),
        types=("BIGINT", "VARCHAR"),
        rows=tuple((i, f"row {i}") for i in range(45)),
    )
    markup = rows._repr_html_()
    cells = _cells(markup)
    assert cells[0] == ["n", "label"]
    assert len(cells) == 1 + NotebookRepr.repr_rows
    assert cells[-1] == [str(NotebookRepr.repr_rows - 1), f"row {NotebookRepr.repr_rows - 1}"]
    assert f"… {45 - NotebookRepr.repr_rows} more rows" in markup
    assert repr(rows) == "NotebookRows(45 rows × 2 columns (n, label))"


def test_to_arrow_and_polars_from_tidy_rows() -> None:
    import pyarrow as pa

    result = _segmentation()
    table = result.to_arrow()
    assert isinstance(table, pa.Table)
    assert table.column_names == ["date", "segment", "value"]
    assert table.to_pylist() == result.rows
    assert sum(table.column("value").to_pylist()) == result.total == 15
    frame = result.to_polars()
    assert frame.to_dicts() == result.rows


def test_to_arrow_keeps_duplicate_column_names() -> None:
    rows = NotebookRows(columns=("a", "a"), types=("INTEGER", "INTEGER"), rows=((1, 2), (3, 4)))
    table = rows.to_arrow()
    assert table.column_names == ["a", "a"]
    assert [c.to_pylist() for c in table.columns] == [[1, 3], [2, 4]]


def test_rows_of_falls_back_to_field_value_rows() -> None:
    @dataclass(frozen=True)
    class Info:
        name: str
        count: int
        tags: list[str]

        def to_dict(self) -> dict[str, Any]:
            return {"name": self.name, "count": self.count, "tags": self.tags}

    info = Info("x", 3, ["a", "b"])
    assert rows_of(info) == (
        ["field", "value"],
        [("name", "x"), ("count", 3), ("tags", ["a", "b"])],
    )


class Handle:
    """Records what IPython's DisplayHandle.update would redraw (no kernel here)."""

    def __init__(self, shown: list[str]) -> None:
        self.shown = shown

    def update(self, obj: Any) -> None:
        self.shown.append("update:" + repr(obj))


def _snapshot(done: int, total: int = 10, rows: int = 0) -> FetchProgress:
    return FetchProgress(
        table="events",
        kind="events",
        windows_done=done,
        windows_total=total,
        rows=rows,
        bytes=0,
        elapsed_seconds=done * 0.5,
    )


def test_progress_draws_one_line_and_updates_it_throttled() -> None:
    shown: list[str] = []
    now = [0.0]

    def display(obj: Any) -> Handle:
        shown.append("display:" + repr(obj))
        return Handle(shown)

    progress = NotebookProgress(display=display, interval=1.0, clock=lambda: now[0])
    assert progress.active
    for done in range(11):
        progress(_snapshot(done, rows=done * 1000))
        now[0] += 0.25  # four snapshots per throttle interval
    # One display (the first snapshot), then updates every second, and always the final one.
    assert sum(s.startswith("display:") for s in shown) == 1
    assert [s.split(":", 1)[0] for s in shown] == ["display", "update", "update", "update"]
    assert progress.updates == 4
    assert shown[0] == "display:events  ░░░░░░░░░░░░░░░░░░░░ 0/10 windows  0 rows  0.0s"
    assert shown[-1] == "update:events  ████████████████████ 10/10 windows  10,000 rows  5.0s"


def test_progress_without_a_notebook_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "IPython", None)
    progress = NotebookProgress()
    assert not progress.active
    progress(_snapshot(10))
    assert progress.updates == 0


def test_workspace_offers_the_notebook_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mixpanel_data import Workspace

    monkeypatch.setitem(sys.modules, "IPython", None)
    progress = Workspace.notebook_progress(label="events")
    assert isinstance(progress, NotebookProgress)
    assert progress.label == "events"
    assert not progress.active


def test_records_inside_to_dict_become_the_table() -> None:
    from datetime import UTC, datetime

    from mixpanel_data.types import EventBreakdown, EventStats

    @dataclass(frozen=True, repr=False)
    class NotebookBreakdown(EventBreakdown):
        pass

    seen = datetime(2024, 1, 1, tzinfo=UTC)
    breakdown = NotebookBreakdown(
        table="events",
        total_events=30,
        total_users=4,
        first_seen=seen,
        last_seen=seen,
        events=(
            EventStats("Login", 20, 4, seen, seen, 66.7),
            EventStats("Purchase", 10, 2, seen, seen, 33.3),
        ),
    )
    columns, rows = rows_of(breakdown)
    assert columns[:3] == ["event_name", "count", "unique_users"]
    assert [r[:3] for r in rows] == [("Login", 20, 4), ("Purchase", 10, 2)]
    assert repr(breakdown).startswith("NotebookBreakdown(table='events', total_events=30")
    right = '<td style="text-align:right">'
    assert f"<td>Purchase</td>{right}10</td>{right}2</td>" in breakdown._repr_html_()
