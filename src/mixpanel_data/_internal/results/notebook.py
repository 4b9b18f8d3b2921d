"""Notebook niceties: results that render as tables, and progress on one updating line.

``NotebookRepr`` is a mixin for result types. Jupyter calls ``_repr_html_`` and
shows an HTML table (first rows only); the terminal gets a one-line
``__repr__`` instead of a dataclass dump of every row. It also gives
``to_arrow()`` and ``to_polars()`` built from the same tidy rows as ``.df``.
A frozen dataclass adopting it must say ``repr=False``, or the dataclass's
generated ``__repr__`` wins::

    @dataclass(frozen=True, repr=False)
    class SegmentationResult(NotebookRepr, Tidy): ...

``NotebookProgress`` is a fetch ``progress=`` callback that keeps one output
line up to date through an IPython display handle, instead of printing a new
line per window into the cell. Without IPython (or outside a notebook) it does
nothing; IPython is never a dependency.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from mixpanel_data.exceptions import ConfigError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

__all__ = ["NotebookProgress", "NotebookRepr", "ResultList", "import_polars", "rows_of"]

POLARS_HINT = "pip install 'mixpanel_data[polars]'"


def import_polars() -> Any:
    """Import Polars, or explain how to install it (it is an optional extra)."""
    try:
        import polars
    except ImportError:
        raise ConfigError(f"Polars is not installed; install it with {POLARS_HINT}") from None
    return polars


def is_ratio(column: str) -> bool:
    """Columns holding shares of 1 (shown as percentages): conversion ratios, rates, shares."""
    name = column.lower()
    return name.endswith(("ratio", "rate", "share"))


def _cell(value: Any, *, column: str = "", limit: int = 80) -> str:
    """Readable text of one value: blanks for missing, percentages for ratios, 1,234 for counts."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and is_ratio(column) and 0 <= value <= 1.5:
        return f"{value:.1%}"
    if isinstance(value, int):
        return str(value) if _is_id(column) else f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) >= 1 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        text = ", ".join(_cell(v, limit=limit) for v in value)
    elif isinstance(value, dict):
        import json

        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_id(column: str) -> bool:
    name = column.lower()
    return name == "id" or name.endswith(("_id", "id_"))


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rows_of(result: Any) -> tuple[list[str], list[Sequence[Any]]]:
    """Return ``(columns, rows)`` for any result shape this package produces.

    Tables with ``columns`` and ``rows`` (SQLRows) come as they are; tidy
    results with ``rows`` as dicts (live reports) become columns in first-seen
    order; otherwise the first list of records in ``to_dict()`` is the table, and
    failing that its scalar fields show as key/value rows.
    """
    table = getattr(type(result), "notebook_table", "auto")
    if table is None:
        return _pairs(result.to_dict())
    if table != "auto":
        records = result.to_dict().get(table) or []
        keys = list(dict.fromkeys(k for r in records for k in r))
        return keys, [tuple(r.get(k) for k in keys) for r in records]
    columns = getattr(result, "columns", None)
    rows = getattr(result, "rows", None)
    if isinstance(rows, list | tuple) and all(isinstance(r, Mapping) for r in rows):
        if not rows and isinstance(columns, Sequence) and not isinstance(columns, str):
            return [str(c) for c in columns], []
        keys = list(dict.fromkeys(k for r in rows for k in r))
        return keys, [tuple(r.get(k) for k in keys) for r in rows]
    if isinstance(columns, Sequence) and isinstance(rows, Sequence) and not isinstance(rows, str):
        return [str(c) for c in columns], [tuple(r) for r in rows]
    data = result.to_dict() if hasattr(result, "to_dict") else {}
    for value in data.values():
        # A list of records (a breakdown's events, a schema's columns) is the table.
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            keys = list(dict.fromkeys(k for r in value for k in r))
            return keys, [tuple(r.get(k) for k in keys) for r in value]
    return _pairs(data)


def _pairs(data: Mapping[str, Any]) -> tuple[list[str], list[Sequence[Any]]]:
    """A record as field/value rows (lists and objects shown as text)."""
    return ["field", "value"], [(k, v) for k, v in data.items()]


class NotebookRepr:
    """Mixin: a compact ``__repr__``, an HTML table for Jupyter, Arrow and Polars views."""

    repr_rows: ClassVar[int] = 20

    def _summary_fields(self) -> list[str]:
        data = self.to_dict() if hasattr(self, "to_dict") else {}
        fields = [
            f"{k}={v!r}"
            for k, v in data.items()
            if isinstance(v, str | int | float | bool) and len(repr(v)) <= 40
        ]
        return fields[:4]

    def __repr__(self) -> str:
        columns, rows = rows_of(self)
        shape = f"{len(rows)} rows × {len(columns)} columns"
        if columns:
            names = ", ".join(columns[:6]) + (", …" if len(columns) > 6 else "")
            shape += f" ({names})"
        return f"{type(self).__name__}({', '.join([*self._summary_fields(), shape])})"

    def _repr_html_(self) -> str:
        columns, rows = rows_of(self)
        title = type(self).__name__
        if getattr(type(self), "notebook_table", "auto") not in ("auto", None):
            scalars = [
                f"{k}={_cell(v, column=k)}"
                for k, v in self.to_dict().items()  # type: ignore[attr-defined]
                if not isinstance(v, list | dict)
            ]
            title += " (" + ", ".join(scalars) + ")"
        return html_table(title, columns, rows, max_rows=self.repr_rows)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of ``to_arrow()``: polars.DataFrame(r), duckdb.sql(...)."""
        return self.to_arrow().__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> pa.Table:
        """Return the result's rows as a ``pyarrow.Table`` (no pandas in between)."""
        import pyarrow as pa

        if getattr(type(self), "notebook_table", "auto") is None:  # a record: one row
            record = {k: _plain_value(v) for k, v in self.to_dict().items()}  # type: ignore[attr-defined]
            return pa.Table.from_pylist([record])
        columns, rows = rows_of(self)
        if not columns:
            return pa.table({})
        data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
        return pa.table(data) if len(set(columns)) == len(columns) else _dup_table(columns, rows)

    def to_polars(self) -> pl.DataFrame:
        """Return the result's rows as a Polars DataFrame (needs the ``polars`` extra)."""
        polars = import_polars()
        frame: pl.DataFrame = polars.from_arrow(self.to_arrow())
        return frame


def html_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_rows: int = 20
) -> str:
    """An HTML table for Jupyter: numbers right-aligned, ratios in percent, blanks for missing."""
    shown = rows[:max_rows]
    right = ' style="text-align:right"'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)

    def cell(i: int, v: Any, row: Sequence[Any]) -> str:
        text = html.escape(_cell(v, column=_col(columns, i, row)))
        return f"<td{right if _numeric(v) else ''}>{text}</td>"

    body = "".join(
        "<tr>" + "".join(cell(i, v, row) for i, v in enumerate(row)) + "</tr>" for row in shown
    )
    record = list(columns) == ["field", "value"]
    caption = html.escape(title if record else f"{title}: {len(rows):,} rows")
    more = (
        f"<p>… {len(rows) - len(shown):,} more rows (use .df or .to_arrow())</p>"
        if len(rows) > len(shown)
        else ""
    )
    return (
        f"<div><p><b>{caption}</b></p><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{more}</div>"
    )


def _col(columns: Sequence[str], i: int, row: Sequence[Any]) -> str:
    """The column name a cell is formatted by; a field/value row is named by its field."""
    if list(columns) == ["field", "value"] and i == 1:
        return str(row[0])
    return str(columns[i]) if i < len(columns) else ""


T = TypeVar("T")


class ResultList(list[T]):
    """A list of results (tables, funnels, cohorts...) that Jupyter shows as one table."""

    def _rows(self) -> tuple[list[str], list[Sequence[Any]]]:
        records = [r.to_dict() if hasattr(r, "to_dict") else {"value": r} for r in self]
        keys = list(
            dict.fromkeys(k for r in records for k, v in r.items() if not isinstance(v, dict))
        )
        return keys, [tuple(r.get(k) for k in keys) for r in records]

    def _repr_html_(self) -> str:
        kind = type(self[0]).__name__ if self else "results"
        columns, rows = self._rows()
        return html_table(f"list of {kind}", columns, rows, max_rows=50)

    def to_arrow(self) -> pa.Table:
        """The items' fields as a ``pyarrow.Table``, one row per item."""
        import pyarrow as pa

        columns, rows = self._rows()
        return pa.table({c: [_plain(row[i]) for row in rows] for i, c in enumerate(columns)})

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of ``to_arrow()``."""
        return self.to_arrow().__arrow_c_stream__(requested_schema)


def _plain_value(value: Any) -> Any:
    """Arrow-friendly field of a record: lists and objects become JSON text."""
    if isinstance(value, list | dict):
        import json

        return json.dumps(value, default=str)
    return value


def _plain(value: Any) -> Any:
    """Arrow-friendly: lists of records become JSON text."""
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        import json

        return json.dumps(value, default=str)
    return value


def _dup_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.Table:
    import pyarrow as pa

    arrays = [pa.array([row[i] for row in rows]) for i in range(len(columns))]
    return pa.Table.from_arrays(arrays, names=list(columns))


class DisplayHandle(Protocol):
    """What ``IPython.display.display(..., display_id=True)`` returns."""

    def update(self, obj: Any) -> None: ...


Display = Callable[[Any], DisplayHandle | None]


def _ipython_display() -> Display | None:
    """IPython's ``display`` bound to a new display id, inside a kernel only."""
    try:
        from IPython import get_ipython  # type: ignore[import-not-found, unused-ignore]
        from IPython.display import display  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if get_ipython() is None:
        return None

    def show(obj: Any) -> DisplayHandle | None:
        handle: DisplayHandle | None = display(obj, display_id=True)  # type: ignore[no-untyped-call, unused-ignore]
        return handle

    return show


class NotebookProgress:
    """A ``progress=`` callback that rewrites one line in a notebook cell.

    Updates are throttled (``interval`` seconds) except the last one, so a fetch
    of a thousand windows costs a handful of redraws, not a thousand lines.

    Example:
        ws.fetch_events(from_date="2024-01-01", to_date="2024-01-31",
                        progress=NotebookProgress())
    """

    def __init__(
        self,
        *,
        label: str | None = None,
        interval: float = 0.2,
        display: Display | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.interval = interval
        self._display = display if display is not None else _ipython_display()
        self._clock = clock
        self._handle: DisplayHandle | None = None
        self._last = float("-inf")
        self.updates = 0

    @property
    def active(self) -> bool:
        """True when there is a notebook to draw in."""
        return self._display is not None

    @staticmethod
    def describe(progress: Any) -> str:
        """One line for a progress snapshot (a FetchProgress or anything alike)."""
        table = getattr(progress, "table", None)
        done = getattr(progress, "windows_done", None)
        total = getattr(progress, "windows_total", None)
        rows = getattr(progress, "rows", None)
        elapsed = getattr(progress, "elapsed_seconds", None)
        parts = [str(table)] if table else []
        if done is not None and total:
            pct = 100 * done / total
            bar = "█" * int(pct // 5) + "░" * (20 - int(pct // 5))
            parts.append(f"{bar} {done}/{total} windows")
        if rows is not None:
            parts.append(f"{rows:,} rows")
        if elapsed is not None:
            parts.append(f"{elapsed:.1f}s")
        return "  ".join(parts) if parts else str(progress)

    def __call__(self, progress: Any) -> None:
        if self._display is None:
            return
        done = getattr(progress, "windows_done", None)
        total = getattr(progress, "windows_total", None)
        final = done is not None and total is not None and done >= total
        now = self._clock()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        line = self.describe(progress)
        text = _Text(f"{self.label}: {line}" if self.label else line)
        if self._handle is None:
            self._handle = self._display(text)
        else:
            self._handle.update(text)
        self.updates += 1


class _Text:
    """Plain text for IPython's display: ``text/plain`` only, no HTML."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
