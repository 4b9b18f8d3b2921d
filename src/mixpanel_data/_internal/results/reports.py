"""Typed results of funnels, retention, saved reports (insights) and flows.

Lenient per the contract: both segmented funnel forms (§7.2), ``null`` average times,
ratios as ints or floats, retention keyed by date or by segment (§10.1, shape
unconfirmed with ``on``), insights' normalised funnel/retention series (§12.1), and
flows' string ``totalCount`` (§12.2).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mixpanel_data._internal.results.live import (
    OVERALL,
    Tidy,
    as_dict,
    is_date_key,
    num,
    split_segments,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FlowNode",
    "FlowsResult",
    "FunnelResult",
    "FunnelStep",
    "RetentionCohort",
    "RetentionResult",
    "SavedReportResult",
]

Steps = tuple["FunnelStep", ...]


def _opt_float(value: Any) -> float | None:
    return None if value is None else num(value)


@dataclass(frozen=True)
class FunnelStep:
    """One funnel step: users who reached it, conversion ratios and average times (s).

    ``avg_time`` and ``avg_time_from_start`` are ``None`` for the first step and when
    nobody converted (contract §7.2).
    """

    event: str
    count: int
    step_conv_ratio: float
    overall_conv_ratio: float
    avg_time: float | None = None
    avg_time_from_start: float | None = None
    step_label: str | None = None
    custom_event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Describe the step as JSON-ready data."""
        return {
            "event": self.event,
            "step_label": self.step_label,
            "count": self.count,
            "step_conv_ratio": self.step_conv_ratio,
            "overall_conv_ratio": self.overall_conv_ratio,
            "avg_time": self.avg_time,
            "avg_time_from_start": self.avg_time_from_start,
            "custom_event_id": self.custom_event_id,
        }


def parse_steps(items: Any) -> Steps:
    """Parse a list of step objects; missing ratios are computed from the counts."""
    rows = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    counts = [int(num(r.get("count"))) for r in rows]
    steps = []
    for i, row in enumerate(rows):
        prev = counts[i - 1] if i else counts[0]
        first = counts[0]
        step_ratio = row.get("step_conv_ratio")
        overall_ratio = row.get("overall_conv_ratio")
        custom = row.get("custom_event_id")
        steps.append(
            FunnelStep(
                event=str(row.get("event", row.get("goal", ""))),
                count=counts[i],
                step_conv_ratio=num(step_ratio)
                if step_ratio is not None
                else (counts[i] / prev if prev else 0.0),
                overall_conv_ratio=num(overall_ratio)
                if overall_ratio is not None
                else (counts[i] / first if first else 0.0),
                avg_time=_opt_float(row.get("avg_time")),
                avg_time_from_start=_opt_float(row.get("avg_time_from_start")),
                step_label=None if row.get("step_label") is None else str(row["step_label"]),
                custom_event_id=None if custom is None else str(custom),
            )
        )
    return tuple(steps)


def _bucket(value: Any) -> dict[str, Steps]:
    """Read one date bucket in any of the forms of §7.2, keyed by segment."""
    if isinstance(value, list):
        return {OVERALL: parse_steps(value)}
    out: dict[str, Steps] = {}
    for key, item in as_dict(value).items():
        if key == "analysis":
            continue
        if key == "steps":
            out[OVERALL] = parse_steps(item)
        elif isinstance(item, list):
            out[key] = parse_steps(item)
        elif isinstance(item, dict) and isinstance(item.get("steps"), list):
            out[key] = parse_steps(item["steps"])
    return out


def parse_funnel_buckets(body: Any) -> dict[str, dict[str, Steps]]:
    """Read a `/funnels` body into ``{bucket date: {segment: steps}}``, dates ascending.

    A ``$overall`` key at the ``data`` level is not a date bucket; Singer skips it too (§7.2).
    """
    data = as_dict(as_dict(body).get("data"))
    return {d: _bucket(data[d]) for d in sorted(data) if d != OVERALL}


def combine_buckets(buckets: Mapping[str, Mapping[str, Steps]]) -> dict[str, Steps]:
    """Whole-range steps per segment from one bucket (the normal case) or several.

    The service asks for the whole range as one bucket so each user counts once
    (§7.2). If a server still splits it, counts are added and times dropped: an
    approximation that only that server's answer can cause.
    """
    if len(buckets) == 1:
        return dict(next(iter(buckets.values())))
    totals: dict[str, list[FunnelStep]] = {}
    for segments in buckets.values():
        for segment, steps in segments.items():
            acc = totals.setdefault(segment, [])
            for i, step in enumerate(steps):
                if i < len(acc):
                    acc[i] = FunnelStep(
                        event=acc[i].event,
                        count=acc[i].count + step.count,
                        step_conv_ratio=0,
                        overall_conv_ratio=0,
                    )
                else:
                    acc.append(
                        FunnelStep(
                            event=step.event,
                            count=step.count,
                            step_conv_ratio=0,
                            overall_conv_ratio=0,
                        )
                    )
    return {
        s: parse_steps([{"event": x.event, "count": x.count} for x in steps])
        for s, steps in totals.items()
    }


@dataclass(frozen=True, repr=False)
class FunnelResult(Tidy):
    """A saved funnel computed over a date range (`/funnels`, §7.2).

    ``steps`` and ``segments`` are whole-range totals (each user counted once);
    ``buckets`` holds the per-bucket answer (one bucket, keyed by its start date, unless
    ``unit`` or ``interval`` was given). ``.df`` has one row per bucket x segment x step.
    """

    funnel_id: int
    from_date: str
    to_date: str
    on: str | None
    steps: Steps
    segments: dict[str, Steps]
    buckets: dict[str, dict[str, Steps]]
    raw: Any = field(default=None, repr=False, compare=False)
    raw_buckets: Any = field(default=None, repr=False, compare=False)

    columns: ClassVar[tuple[str, ...]] = (
        "date",
        "segment",
        "step",
        "event",
        "count",
        "step_conv_ratio",
        "overall_conv_ratio",
        "avg_time",
        "avg_time_from_start",
    )

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        funnel_id: int,
        from_date: str,
        to_date: str,
        on: str | None,
        buckets_body: Any = None,
    ) -> FunnelResult:
        """Parse the whole-range body and, when asked for, a per-bucket body."""
        totals_buckets = parse_funnel_buckets(body)
        totals = combine_buckets(totals_buckets) if totals_buckets else {}
        overall = totals.pop(OVERALL, ())
        per_bucket = parse_funnel_buckets(buckets_body) if buckets_body is not None else None
        return cls(
            funnel_id=funnel_id,
            from_date=from_date,
            to_date=to_date,
            on=on,
            steps=overall,
            segments=dict(sorted(totals.items(), key=lambda kv: (-_first(kv[1]), kv[0]))),
            buckets=per_bucket if per_bucket is not None else totals_buckets,
            raw=body,
            raw_buckets=buckets_body,
        )

    @property
    def conversion_rate(self) -> float:
        """Share of users who entered the funnel and finished it."""
        if not self.steps or not self.steps[0].count:
            return 0.0
        return self.steps[-1].count / self.steps[0].count

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per bucket x segment x step."""
        out = []
        for date, segments in self.buckets.items():
            for segment, steps in segments.items():
                for i, s in enumerate(steps):
                    out.append(
                        {
                            "date": date,
                            "segment": segment,
                            "step": i + 1,
                            "event": s.event,
                            "count": s.count,
                            "step_conv_ratio": s.step_conv_ratio,
                            "overall_conv_ratio": s.overall_conv_ratio,
                            "avg_time": s.avg_time,
                            "avg_time_from_start": s.avg_time_from_start,
                        }
                    )
        return out

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw the funnel: users per step and conversion from the first (matplotlib)."""
        from mixpanel_data._internal.results.charts import funnel_chart

        steps = [(s.step_label or s.event, s.count) for s in self.steps]
        span = f"{self.from_date} to {self.to_date}"
        title = f"funnel {self.funnel_id}, {span}: {self.conversion_rate:.1%} converted"
        return funnel_chart(steps, title=title, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "funnel_id": self.funnel_id,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "on": self.on,
            "conversion_rate": self.conversion_rate,
            "steps": [s.to_dict() for s in self.steps],
            "segments": {k: [s.to_dict() for s in v] for k, v in self.segments.items()},
            "buckets": {
                d: {k: [s.to_dict() for s in v] for k, v in segs.items()}
                for d, segs in self.buckets.items()
            },
        }


def _first(steps: Steps) -> int:
    return steps[0].count if steps else 0


@dataclass(frozen=True)
class RetentionCohort:
    """Users born on ``date`` (``size``) and how many returned in each bucket."""

    date: str
    size: int
    counts: tuple[int, ...]
    rates: tuple[float, ...]

    @classmethod
    def from_api(cls, date: str, leaf: Mapping[str, Any]) -> RetentionCohort:
        """Parse ``{"counts": […], "first": n[, "rates": […]]}``."""
        size = int(num(leaf.get("first")))
        counts = tuple(int(num(c)) for c in leaf.get("counts") or [])
        rates_raw = leaf.get("rates")
        if isinstance(rates_raw, list) and len(rates_raw) == len(counts):
            rates = tuple(float(num(r)) for r in rates_raw)
        else:
            rates = tuple(c / size if size else 0.0 for c in counts)
        return cls(date=date, size=size, counts=counts, rates=rates)

    def to_dict(self) -> dict[str, Any]:
        """Describe the cohort as JSON-ready data."""
        return {
            "date": self.date,
            "size": self.size,
            "counts": list(self.counts),
            "rates": list(self.rates),
        }


def _is_cohort(value: Any) -> bool:
    return isinstance(value, dict) and "counts" in value


def parse_cohorts(data: Mapping[str, Any]) -> tuple[tuple[RetentionCohort, ...], dict[str, Any]]:
    """Split a retention map into overall cohorts and per-segment cohorts."""
    overall, segments = split_segments(data, _is_cohort)

    def cohorts(m: Mapping[str, Any]) -> tuple[RetentionCohort, ...]:
        return tuple(RetentionCohort.from_api(d, m[d]) for d in sorted(m))

    return cohorts(overall), {s: cohorts(m) for s, m in sorted(segments.items())}


@dataclass(frozen=True, repr=False)
class RetentionResult(Tidy):
    """Birth or compounded retention by cohort date (`/retention`, §10.1).

    ``counts[i]`` is the users who returned in bucket ``i``; the counts are not monotonic.
    """

    born_event: str | None
    event: str | None
    from_date: str
    to_date: str
    retention_type: str
    cohorts: tuple[RetentionCohort, ...]
    segments: dict[str, tuple[RetentionCohort, ...]]
    raw: Any = field(default=None, repr=False, compare=False)

    columns: ClassVar[tuple[str, ...]] = (
        "date",
        "segment",
        "bucket",
        "cohort_size",
        "count",
        "rate",
    )

    @classmethod
    def from_api(
        cls,
        body: Any,
        *,
        born_event: str | None,
        event: str | None,
        from_date: str,
        to_date: str,
        retention_type: str,
    ) -> RetentionResult:
        """Parse ``{date: {"counts": […], "first": n}}`` (or a ``data``-wrapped/segmented form)."""
        data = as_dict(body)
        if isinstance(data.get("data"), dict) and not any(is_date_key(k) for k in data):
            data = data["data"]
        cohorts, segments = parse_cohorts(data)
        return cls(
            born_event=born_event,
            event=event,
            from_date=from_date,
            to_date=to_date,
            retention_type=retention_type,
            cohorts=cohorts,
            segments=segments,
            raw=body,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per cohort date x segment x bucket."""
        return list(_cohort_rows([(OVERALL, self.cohorts), *self.segments.items()]))

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Draw the retention heat map: cohorts by bucket, in percent (matplotlib)."""
        from mixpanel_data._internal.results.charts import heatmap_chart

        cohorts = [(c.date, c.size, c.rates) for c in self.cohorts]
        title = (
            f"{self.retention_type} retention: {self.born_event or 'any'} → {self.event or 'any'}"
        )
        return heatmap_chart(cohorts, title=title, bucket_label="bucket", ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "born_event": self.born_event,
            "event": self.event,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "retention_type": self.retention_type,
            "cohorts": [c.to_dict() for c in self.cohorts],
            "segments": {s: [c.to_dict() for c in v] for s, v in self.segments.items()},
        }


def _cohort_rows(
    groups: list[tuple[str, tuple[RetentionCohort, ...]]], **extra: Any
) -> Iterator[dict[str, Any]]:
    for segment, cohorts in groups:
        for c in cohorts:
            for i, count in enumerate(c.counts):
                yield {
                    **extra,
                    "date": c.date,
                    "segment": segment,
                    "bucket": i,
                    "cohort_size": c.size,
                    "count": count,
                    "rate": c.rates[i],
                }


def _leaves(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield (key path, value) for every non-object leaf of a nested series."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


@dataclass(frozen=True, repr=False)
class SavedReportResult(Tidy):
    """A saved report computed by `/insights` (§12.1).

    ``report_type`` is ``funnel`` or ``retention`` when ``headers`` holds ``$funnel`` or
    ``$retention`` (those bookmarks come back normalised), else ``insights``. Series keys
    are metric names; insights dates are ISO timestamps with the project's offset.
    """

    bookmark_id: int
    report_type: str
    computed_at: str | None
    from_date: str | None
    to_date: str | None
    headers: tuple[str, ...]
    series: dict[str, Any]
    meta: dict[str, Any]
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_api(cls, body: Any, *, bookmark_id: int) -> SavedReportResult:
        """Parse an `/insights` body of any of the three kinds."""
        data = as_dict(body)
        headers = tuple(str(h) for h in data.get("headers") or [])
        kind = "insights"
        if "$funnel" in headers:
            kind = "funnel"
        elif "$retention" in headers:
            kind = "retention"
        date_range = as_dict(data.get("date_range"))
        computed = data.get("computed_at")
        return cls(
            bookmark_id=bookmark_id,
            report_type=kind,
            computed_at=None if computed is None else str(computed),
            from_date=None if date_range.get("from_date") is None else str(date_range["from_date"]),
            to_date=None if date_range.get("to_date") is None else str(date_range["to_date"]),
            headers=headers,
            series=as_dict(data.get("series")),
            meta=as_dict(data.get("meta")),
            raw=body,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows; the columns depend on ``report_type``.

        insights: metric, date, segment, value. funnel: step, segment and one column per
        metric (count, overall_conv_ratio, …). retention: metric, date, segment, bucket,
        cohort_size, count, rate.
        """
        if self.report_type == "retention":
            out: list[dict[str, Any]] = []
            for metric, by_date in self.series.items():
                cohorts, segments = parse_cohorts(as_dict(by_date))
                groups = [(OVERALL, cohorts), *segments.items()] if cohorts else [*segments.items()]
                out.extend(_cohort_rows(groups, metric=metric))
            return out
        if self.report_type == "funnel":
            table: dict[tuple[str, str], dict[str, Any]] = {}
            for path, value in _leaves(self.series, ()):
                if len(path) < 2:
                    continue
                step, segment = path[1], " / ".join(path[2:]) or OVERALL
                row = table.setdefault((step, segment), {"step": step, "segment": segment})
                row[path[0]] = value
            return list(table.values())
        rows = []
        for path, value in _leaves(self.series, ()):
            dates = [p for p in path[1:] if is_date_key(p)]
            others = [p for p in path[1:] if not is_date_key(p)]
            rows.append(
                {
                    "metric": path[0] if path else None,
                    "date": dates[-1] if dates else None,
                    "segment": " / ".join(others) or None,
                    "value": value,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "bookmark_id": self.bookmark_id,
            "report_type": self.report_type,
            "computed_at": self.computed_at,
            "from_date": self.from_date,
            "to_date": self.to_date,
            "headers": list(self.headers),
            "series": self.series,
            "meta": self.meta,
        }


def _counts_to_int(node: Any) -> Any:
    """Turn every ``totalCount`` (a string on the wire, §12.2) into an int, recursively."""
    if isinstance(node, dict):
        return {k: int(num(v)) if k == "totalCount" else _counts_to_int(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_counts_to_int(v) for v in node]
    return node


@dataclass(frozen=True)
class FlowNode:
    """One node of a flows step: an event (or drop-off) and the users who reached it."""

    step: int
    event: str
    type: str
    total_count: int
    edges: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Describe the node as JSON-ready data."""
        return {
            "step": self.step,
            "event": self.event,
            "type": self.type,
            "total_count": self.total_count,
            "edges": list(self.edges),
        }


@dataclass(frozen=True, repr=False)
class FlowsResult(Tidy):
    """A saved Flows report from the undocumented `/arb_funnels` (§12.2).

    Sankey answers fill ``nodes`` (one per step x node); top-path answers fill ``paths``.
    """

    bookmark_id: int
    query_type: str
    computed_at: str | None
    nodes: tuple[FlowNode, ...]
    paths: tuple[dict[str, Any], ...]
    breakdowns: tuple[Any, ...]
    overall_conversion_rate: float | None
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_api(cls, body: Any, *, bookmark_id: int, query_type: str) -> FlowsResult:
        """Parse a flows body; ``totalCount`` strings become ints."""
        data = as_dict(body)
        nodes = []
        for step_index, step in enumerate(data.get("steps") or []):
            for node in as_dict(step).get("nodes") or []:
                node = as_dict(node)
                nodes.append(
                    FlowNode(
                        step=step_index + 1,
                        event=str(node.get("event", "")),
                        type=str(node.get("type", "")),
                        total_count=int(num(node.get("totalCount"))),
                        edges=tuple(_counts_to_int(e) for e in node.get("edges") or []),
                    )
                )
        rate = data.get("overallConversionRate")
        computed = data.get("computed_at")
        return cls(
            bookmark_id=bookmark_id,
            query_type=query_type,
            computed_at=None if computed is None else str(computed),
            nodes=tuple(nodes),
            paths=tuple(_counts_to_int(p) for p in data.get("flows") or []),
            breakdowns=tuple(data.get("breakdowns") or []),
            overall_conversion_rate=None if rate is None else float(num(rate)),
            raw=body,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per step x node (sankey), or one row per path (top paths)."""
        if self.nodes:
            return [
                {"step": n.step, "event": n.event, "type": n.type, "total_count": n.total_count}
                for n in self.nodes
            ]
        return [
            {"path": i + 1, **(p if isinstance(p, dict) else {"value": p})}
            for i, p in enumerate(self.paths)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Describe the result as JSON-ready data."""
        return {
            "bookmark_id": self.bookmark_id,
            "query_type": self.query_type,
            "computed_at": self.computed_at,
            "overall_conversion_rate": self.overall_conversion_rate,
            "nodes": [n.to_dict() for n in self.nodes],
            "paths": list(self.paths),
            "breakdowns": list(self.breakdowns),
        }
