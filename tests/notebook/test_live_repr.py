"""Live results render in notebooks and convert to Arrow/Polars from their tidy rows."""

from __future__ import annotations

from mixpanel_data._internal.results.live import SegmentationResult

BODY = {
    "data": {
        "series": ["2024-01-02", "2024-01-01"],
        "values": {"US": {"2024-01-01": 3}, "FR": {"2024-01-02": 5, "2024-01-01": 1}},
    },
    "legend_size": 2,
}


def result() -> SegmentationResult:
    return SegmentationResult.from_api(
        BODY,
        event="Purchase",
        from_date="2024-01-01",
        to_date="2024-01-02",
        unit="day",
        type="general",
        on='properties["country"]',
    )


def test_arrow_and_polars_hold_the_tidy_rows() -> None:
    r = result()
    rows = sorted((d["date"], d["segment"], d["value"]) for d in r.rows)
    table = r.to_arrow()
    assert table.column_names == ["date", "segment", "value"]
    assert (
        sorted(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)) == rows
    )
    frame = r.to_polars()
    assert sorted(frame.iter_rows()) == rows
    # Zero buckets missing from the response are filled from the series (contract §15.11).
    assert ("2024-01-02", "US", 0) in rows


def test_compact_repr_and_html() -> None:
    r = result()
    assert repr(r).endswith("4 rows × 3 columns (date, segment, value))")
    html = r._repr_html_()
    assert "<table>" in html
    assert "<td>FR</td>" in html
