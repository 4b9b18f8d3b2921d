"""Every result a user gets can be looked at: HTML tables, charts, and Arrow without pandas.

Results come from the emulator over loopback (live reports) and from a real fetch into a
DuckDB file (local results). Charts are checked by what they draw (line points, bar
heights, heat-map cells), which must be the result's own numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import Workspace
from mixpanel_data.types import save_chart

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:matplotlib.*")


@pytest.fixture
def ws(emulator: Any, tmp_path: Path) -> Iterator[Workspace]:
    budgets: dict[str, Any] = {"query": "off", "export": "off", "app": "off"}
    creds = emulator_credentials(emulator)
    with Workspace(credentials=creds, path=tmp_path / "v.duckdb", budgets=budgets) as w:
        yield w


@pytest.fixture
def span(emulator: Any) -> dict[str, str]:
    end = emulator.project.today - timedelta(days=1)
    return {"from_date": (end - timedelta(days=13)).isoformat(), "to_date": end.isoformat()}


def _cells(markup: str) -> list[list[str]]:
    return [
        re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in re.findall(r"<tr>(.*?)</tr>", markup)
    ]


# -- readable tables -------------------------------------------------------------------


def test_funnel_ratios_show_as_percentages_and_missing_as_blank(ws: Workspace, span: Any) -> None:
    funnel = ws.funnel(ws.funnels()[0].funnel_id, **span)
    cells = _cells(funnel._repr_html_())
    header, body = cells[0], cells[1:]
    ratio = header.index("overall_conv_ratio")
    for row, tidy in zip(body, funnel.rows, strict=False):
        assert row[ratio] == f"{tidy['overall_conv_ratio']:.1%}"
        assert row[header.index("count")] == f"{tidy['count']:,}"
    first_step_avg = body[0][header.index("avg_time")]
    assert funnel.rows[0]["avg_time"] is None
    assert first_step_avg == ""
    assert 'style="text-align:right"' in funnel._repr_html_()


def test_local_results_render_as_tables(ws: Workspace, span: Any) -> None:
    fetched = ws.fetch_events(**span)
    markup = fetched._repr_html_()
    assert ["table", "events"] in _cells(markup)
    assert ["rows_inserted", f"{fetched.rows_inserted:,}"] in _cells(markup)

    tables = ws.tables()
    cells = _cells(tables._repr_html_())
    assert "name" in cells[0]
    assert "row_count" in cells[0]
    row = cells[1]
    assert row[cells[0].index("name")] == "events"
    assert row[cells[0].index("row_count")] == f"{fetched.rows_inserted:,}"

    breakdown = ws.event_breakdown("events")
    cells = _cells(breakdown._repr_html_())
    by_name = {r[0]: r for r in cells[1:]}
    for stats in breakdown.events:
        assert by_name[stats.event_name][1] == f"{stats.count:,}"
    assert f"total_events={breakdown.total_events:,}" in breakdown._repr_html_()
    schema_cells = _cells(ws.table_schema("events")._repr_html_())
    assert ["properties", "JSON"] in [r[:2] for r in schema_cells[1:]]
    # typed property columns show the property they hold
    typed = [r for r in schema_cells[1:] if r[0] == "mp_country_code"]
    assert typed, schema_cells[:3]
    assert typed[0][1] == "VARCHAR"
    funnels = _cells(ws.funnels()._repr_html_())
    assert [str(f.funnel_id) for f in ws.funnels()] == [
        r[funnels[0].index("funnel_id")].replace(",", "") for r in funnels[1:]
    ]


# -- Arrow PyCapsule -------------------------------------------------------------------


def test_results_speak_arrow_to_polars_and_duckdb(ws: Workspace, span: Any) -> None:
    import duckdb
    import polars as pl

    seg = ws.segmentation("Purchase", on="mp_country_code", **span)
    frame = pl.DataFrame(seg)  # through __arrow_c_stream__, no pandas
    assert frame.to_dicts() == seg.rows
    [(total,)] = duckdb.sql("SELECT sum(value) FROM seg").fetchall()
    assert total == pytest.approx(seg.total)

    ws.fetch_events(**span)
    rows = ws.sql_rows("SELECT event_name, count(*) AS n FROM events GROUP BY 1")
    assert sorted(pl.DataFrame(rows).rows()) == sorted(rows.rows)
    tables = ws.tables()  # a list: DuckDB and Polars read lists as lists, so ask for Arrow
    arrow = tables.to_arrow()  # noqa: F841 (read by name in the SQL below)
    listed = duckdb.sql("SELECT name, row_count FROM arrow").fetchall()
    assert listed == [(t.name, t.row_count) for t in tables]


# -- charts ----------------------------------------------------------------------------


def test_segmentation_chart_draws_each_segment_over_time(
    ws: Workspace, span: Any, tmp_path
) -> None:
    seg = ws.segmentation("Purchase", on="mp_country_code", **span)
    fig = seg.plot()
    lines = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].get_lines()}
    top = next(iter(seg.values))  # the largest segment first, as the legend shows it
    assert lines[top] == [seg.values[top][d] for d in seg.series]
    assert len(lines) == min(8, len(seg.values))
    png = save_chart(fig, tmp_path / "seg.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_event_counts_and_frequency_charts(ws: Workspace, span: Any) -> None:
    counts = ws.event_counts(["Login", "Purchase"], **span)
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in counts.plot().axes[0].get_lines()}
    assert lines == {e: [counts.values[e][d] for d in counts.series] for e in counts.values}

    freq = ws.frequency(event="Login", unit="week", addiction_unit="day", **span)
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in freq.plot().axes[0].get_lines()}
    dates = sorted(freq.data)
    assert lines["≥ 1"] == [freq.data[d][0] for d in dates]


def test_funnel_chart_bars_are_step_counts(ws: Workspace, span: Any) -> None:
    funnel = ws.funnel(ws.funnels()[0].funnel_id, **span)
    axes = funnel.plot().axes[0]
    assert [bar.get_height() for bar in axes.patches] == [s.count for s in funnel.steps]
    notes = [t.get_text() for t in axes.texts]
    last = funnel.steps[-1].count / funnel.steps[0].count
    assert notes[-1] == f"{funnel.steps[-1].count:,}\n{last:.1%}"


def test_retention_heat_map_cells_are_rates(ws: Workspace, span: Any) -> None:
    ret = ws.retention(born_event="Sign Up", event="Login", **span)
    axes = ret.plot().axes[0]
    grid = axes.images[0].get_array()
    for y, cohort in enumerate(ret.cohorts):
        assert list(grid[y][: len(cohort.rates)]) == pytest.approx(list(cohort.rates))
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert labels[0] == f"{ret.cohorts[0].date[:10]} ({ret.cohorts[0].size:,})"


def test_cli_writes_the_chart_and_checks_the_path_first(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path, span: Any
) -> None:
    import json

    from mixpanel_data.cli.main import main

    for key, value in {
        "MP_USERNAME": emulator.username,
        "MP_SECRET": emulator.secret,
        "MP_PROJECT_ID": str(emulator.spec.project_id),
        "MP_BASE_URL": emulator.base_url,
        "MP_TIMEZONE": emulator.spec.timezone,
    }.items():
        monkeypatch.setenv(key, value)

    def mp(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    dates = ["--from", span["from_date"], "--to", span["to_date"]]
    out_png = tmp_path / "funnel.png"
    code, out, err = mp("query", "funnel", "7003", *dates, "--chart", str(out_png))
    assert code == 0, err
    assert json.loads(out)["funnel_id"] == 7003  # stdout still carries only the data
    assert out_png.read_bytes()[:4] == b"\x89PNG"

    before = len(emulator.requests())
    code, out, err = mp("query", "funnel", "7003", *dates, "--chart", str(tmp_path / "f.gif"))
    assert (code, out) == (3, "")
    assert "use a .png, .svg or .pdf" in err
    assert len(err.strip().splitlines()) == 1
    assert len(emulator.requests()) == before  # refused before any query was spent
