"""examples/tour.ipynb runs with `jupyter nbconvert --execute` and shows tables and charts.

The notebook starts the emulator itself; it runs in a fresh HOME and database. Every
result cell must show an HTML table (no dataclass dumps, no "None"), every ``.plot()``
cell a PNG, and the numbers must agree across cells (the fetch's rows are the table's).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tour.ipynb"

pytestmark = pytest.mark.slow


def _text(markup: str) -> list[str]:
    return list(re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", markup))


def test_the_tour_notebook_executes_with_tables_and_charts(tmp_path: Path) -> None:
    import nbformat

    env = {**os.environ, "HOME": str(tmp_path), "MP_DB_PATH": str(tmp_path / "tour.duckdb")}
    for key in ("MP_USERNAME", "MP_SECRET", "MP_PROJECT_ID", "MP_BASE_URL", "MP_ACCOUNT"):
        env.pop(key, None)
    jupyter = Path(sys.executable).with_name("jupyter")
    proc = subprocess.run(
        [
            str(jupyter),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            str(NOTEBOOK),
            "--output-dir",
            str(tmp_path),
            "--output",
            "ran.ipynb",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = nbformat.read(tmp_path / "ran.ipynb", as_version=4)
    cells = {c.source.splitlines()[0]: c for c in ran.cells if c.cell_type == "code"}
    assert not [o for c in cells.values() for o in c.outputs if o.output_type == "error"]

    def html(prefix: str) -> str:
        cell = next(c for src, c in cells.items() if src.startswith(prefix))
        found = [o.data["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
        assert found, f"{prefix}: no HTML table"
        markup = str(found[0])
        assert "<table" in markup
        assert "None" not in markup
        return markup

    fetched = _text(html("ws.fetch_events"))
    rows = fetched[fetched.index("rows_inserted") + 1]
    listed = _text(html("ws.tables()"))
    assert listed[listed.index("row_count") + len(listed) // 2] == rows  # same count, both cells
    for prefix in (
        "ws.event_breakdown",
        "ws.table_schema",
        "ws.column_stats",
        "ws.sql_rows",
        "ws.funnels()",
        "seg = ",
        "freq = ",
        "import duckdb",
    ):
        html(prefix)
    funnel = html("funnel = ")
    assert re.search(r">\d+\.\d%<", funnel)  # conversion ratios as percentages
    charts = [
        src for src, c in cells.items() if any("image/png" in o.get("data", {}) for o in c.outputs)
    ]
    assert len(charts) == 5, charts  # segmentation, event counts, funnel, retention, frequency
