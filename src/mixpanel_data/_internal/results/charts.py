"""Charts of report results, drawn as Mixpanel's own reports show them (matplotlib, optional).

- segmentation, numeric aggregates, event and property counts: one line per segment
  (or event) over time;
- funnels: a bar per step with its count and the conversion from the first step;
- retention: a heat map, one row per cohort, one column per bucket, cells in percent;
- frequency: one line over time per "at least N periods" level.

Only the tidy ``rows`` of a result are read, so a chart shows exactly what ``.df`` holds.
matplotlib is imported when a chart is drawn; without it, one line says how to install it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixpanel_data.exceptions import ConfigError, ValidationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CHART_HINT", "funnel_chart", "heatmap_chart", "line_chart", "save_chart"]

CHART_HINT = "pip install 'mixpanel_data[charts]'"
MAX_LINES = 8  # Mixpanel's line charts show the top segments; the rest are left out
OVERALL = "$overall"


def _pyplot() -> Any:
    try:
        import matplotlib

        if not _interactive():
            matplotlib.use("Agg")  # no display: draw into files only
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(f"charts need matplotlib; install it with {CHART_HINT}") from None
    return plt


def _interactive() -> bool:
    import sys

    return "ipykernel" in sys.modules or "IPython" in sys.modules


def _axes(ax: Axes | None, *, size: tuple[float, float] = (9, 4.5)) -> tuple[Figure, Axes]:
    plt = _pyplot()
    if ax is not None:
        return ax.get_figure(root=True), ax  # type: ignore[return-value]
    fig, new = plt.subplots(figsize=size, layout="constrained")
    return fig, new


def line_chart(
    rows: Sequence[Mapping[str, Any]],
    *,
    series: str,
    value: str = "value",
    title: str,
    ylabel: str = "",
    ax: Axes | None = None,
) -> Figure:
    """One line per ``series`` value over ``date``, the largest totals first (legend order)."""
    fig, axes = _axes(ax)
    groups: dict[str, dict[str, float]] = {}
    for r in rows:
        groups.setdefault(str(r.get(series, OVERALL)), {})[str(r["date"])] = float(r[value] or 0)
    ranked = sorted(groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    dates = sorted({d for _, points in ranked for d in points})
    for name, points in ranked[:MAX_LINES]:
        axes.plot(dates, [points.get(d, 0.0) for d in dates], marker="o", markersize=3, label=name)
    _date_axis(axes, dates)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    if len(ranked) > 1 or (ranked and ranked[0][0] != OVERALL):
        shown = len(ranked[:MAX_LINES])
        more = f" (top {shown} of {len(ranked)})" if len(ranked) > shown else ""
        axes.legend(title=f"{series}{more}", fontsize="small", loc="best")
    return fig


def _date_axis(axes: Axes, dates: Sequence[str]) -> None:
    step = max(1, len(dates) // 10)
    axes.set_xticks(range(0, len(dates), step))
    axes.set_xticklabels([dates[i][:16] for i in range(0, len(dates), step)], rotation=30)
    axes.tick_params(axis="x", labelsize="small")


def funnel_chart(steps: Sequence[tuple[str, int]], *, title: str, ax: Axes | None = None) -> Figure:
    """Bars of users per step; each bar says its conversion from the first step."""
    if not steps:
        raise ValidationError("the funnel has no steps to chart")
    fig, axes = _axes(ax, size=(max(6.0, 1.8 * len(steps)), 4.5))
    labels = [f"{i + 1}. {name}" for i, (name, _) in enumerate(steps)]
    counts = [count for _, count in steps]
    bars = axes.bar(labels, counts, color="#4f44e0")
    first = counts[0] or 1
    for bar, count in zip(bars, counts, strict=True):
        axes.annotate(
            f"{count:,}\n{count / first:.1%}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    axes.set_ylim(0, max(counts) * 1.2 or 1)
    axes.set_ylabel("users")
    axes.set_title(title)
    axes.tick_params(axis="x", labelsize="small")
    return fig


def heatmap_chart(
    cohorts: Sequence[tuple[str, int, Sequence[float]]],
    *,
    title: str,
    bucket_label: str,
    ax: Axes | None = None,
) -> Figure:
    """Rows are cohorts (date, size), columns buckets; cells are retention rates in percent."""
    if not cohorts:
        raise ValidationError("the retention report has no cohorts to chart")
    width = max(len(rates) for _, _, rates in cohorts)
    fig, axes = _axes(ax, size=(max(6.0, 0.8 * width + 3), max(3.0, 0.35 * len(cohorts) + 1.5)))
    grid = [
        [rates[i] if i < len(rates) else float("nan") for i in range(width)]
        for *_, rates in cohorts
    ]
    image = axes.imshow(grid, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for y, row in enumerate(grid):
        for x, rate in enumerate(row):
            if rate == rate:  # not NaN
                color = "white" if rate > 0.6 else "black"
                axes.text(x, y, f"{rate:.0%}", ha="center", va="center", fontsize=7, color=color)
    axes.set_xticks(range(width))
    axes.set_xticklabels(
        [f"{bucket_label} {i}" for i in range(width)], fontsize="small", rotation=30
    )
    axes.set_yticks(range(len(cohorts)))
    axes.set_yticklabels([f"{d[:10]} ({n:,})" for d, n, _ in cohorts], fontsize="small")
    axes.set_title(title)
    fig.colorbar(image, ax=axes, format=lambda v, _: f"{v:.0%}", shrink=0.8)
    return fig


def save_chart(figure: Figure, path: str | Path) -> Path:
    """Write a chart to ``path`` (PNG, SVG or PDF, by its extension) and close it."""
    target = Path(path).expanduser()
    if target.suffix.lower() not in {".png", ".svg", ".pdf"}:
        raise ValidationError(f"--chart {path}: use a .png, .svg or .pdf file name")
    plt = _pyplot()
    try:
        figure.savefig(target, dpi=120)
    except OSError as exc:
        raise ValidationError(f"cannot write chart {target}: {exc.strerror}") from None
    finally:
        plt.close(figure)
    return target


def top_levels(rows: Iterable[Mapping[str, Any]], *, limit: int = 6) -> list[dict[str, Any]]:
    """Frequency rows of the overall segment, for the first ``limit`` "at least" levels."""
    return [
        {"date": r["date"], "level": f"≥ {r['at_least']}", "users": r["users"]}
        for r in rows
        if r.get("segment", OVERALL) == OVERALL and int(r["at_least"]) <= limit
    ]
