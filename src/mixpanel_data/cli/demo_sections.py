"""The demo project and the questions `mp demo` asks of it, as a list of sections.

Each ``DemoSection`` is a title plus a function from (Workspace, DemoRun) to rows;
`mp demo` prints them in order, as tables. The SQL sections read the local tables
the demo fetched. Live-query sections (a segmentation, a funnel from Mixpanel's
Query API) go in ``LIVE_SECTIONS`` and print after them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.workspace import Workspace

__all__ = [
    "DEMO_DAYS",
    "DEMO_USERS",
    "LIVE_SECTIONS",
    "SQL_SECTIONS",
    "DemoRun",
    "DemoSection",
    "demo_spec",
    "sections",
]

DEMO_SEED = 2024
DEMO_USERS = 1000
DEMO_DAYS = 30
DAU_DAYS = 14  # the daily-active-users table shows the last two weeks
FUNNEL_STEPS = ("View Item", "Add To Cart", "Purchase")


# Not the emulator's default project (1000001): what the demo's `export` lines lead to is
# then its own ~/.mp/data/1000002.duckdb, never mixed with a default emulator's data.
DEMO_PROJECT_ID = "1000002"


def demo_spec(
    *, users: int = DEMO_USERS, days: int = DEMO_DAYS, start_date: date | None = None
) -> ProjectSpec:
    """The demo shop: a month of events by `users` users, in America/Los_Angeles."""
    from mixpanel_data.emulator.project import ProjectSpec  # the emulator extra

    return ProjectSpec(
        seed=DEMO_SEED,
        start_date=start_date,
        users=users,
        days=days,
        project_name="Demo Shop",
        project_id=DEMO_PROJECT_ID,
    )


@dataclass(frozen=True)
class DemoRun:
    """What the sections need to know about the fetched data (tables `events`, `profiles`):
    the demo project's data days, which are UTC export days (contract §3.5)."""

    from_date: date
    to_date: date
    timezone: str

    def full_local_days(self) -> list[date]:
        """Project-timezone days wholly inside the data's UTC days: the emulator's data
        start and end at UTC midnights, so the project days at both edges are partial,
        and daily numbers are read in the project's timezone, as Mixpanel reports them."""
        tz = ZoneInfo(self.timezone)
        start = datetime.combine(self.from_date, time(), tzinfo=UTC)
        end = datetime.combine(self.to_date + timedelta(days=1), time(), tzinfo=UTC)
        out = []
        day = self.from_date - timedelta(days=1)
        while day <= self.to_date + timedelta(days=1):
            lo = datetime.combine(day, time(), tzinfo=tz)
            hi = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
            if lo >= start and hi <= end:
                out.append(day)
            day += timedelta(days=1)
        return out


Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class DemoSection:
    """One table of the demo: a title, how to compute its rows, and the SQL shown with it."""

    title: str
    rows: Callable[[Workspace, DemoRun], Rows]
    sql: str | None = None


def _sql_rows(ws: Workspace, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Rows:
    return ws.sql_rows(sql, params).records()


@dataclass(frozen=True)
class _SQLSection:
    """A section that runs one SQL statement on the local tables."""

    title: str
    sql: str
    params: Callable[[DemoRun], Mapping[str, Any]] = field(default=lambda run: {})

    def section(self) -> DemoSection:
        def rows(ws: Workspace, run: DemoRun) -> Rows:
            return _sql_rows(ws, self.sql, self.params(run))

        return DemoSection(title=self.title, rows=rows, sql=self.sql)


TOP_EVENTS = """\
SELECT event_name, count(*) AS events, count(DISTINCT distinct_id) AS users,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM events GROUP BY event_name ORDER BY events DESC, event_name"""

# `event_date` is the event's day in the project timezone, as Mixpanel's daily buckets.
DAILY_ACTIVE_USERS = """\
SELECT event_date AS day, count(DISTINCT distinct_id) AS users, count(*) AS events
FROM events WHERE event_date BETWEEN $first AND $last GROUP BY day ORDER BY day"""

# Common properties are typed columns named like the property (`price` is a DOUBLE:
# summed as DECIMAL, cents stay exact).
REVENUE_BY_COUNTRY = """\
SELECT mp_country_code AS country, count(*) AS purchases,
       count(DISTINCT distinct_id) AS buyers, sum(price::DECIMAL(18, 2)) AS revenue
FROM events WHERE event_name = 'Purchase'
GROUP BY country ORDER BY revenue DESC, country"""

# Profiles have typed columns too; both tables have a `plan`, so it is qualified.
REVENUE_BY_PLAN = """\
SELECT coalesce(p.plan, '(no profile)') AS plan,
       count(DISTINCT e.distinct_id) AS buyers, count(*) AS purchases,
       sum(e.price::DECIMAL(18, 2)) AS revenue
FROM events e LEFT JOIN profiles p USING (distinct_id)
WHERE e.event_name = 'Purchase' GROUP BY 1 ORDER BY revenue DESC, 1"""

PURCHASE_FUNNEL = """\
WITH s1 AS (SELECT distinct_id, min(event_time) AS t FROM events
            WHERE event_name = $s1 GROUP BY 1),
     s2 AS (SELECT e.distinct_id, min(e.event_time) AS t FROM events e JOIN s1 USING (distinct_id)
            WHERE e.event_name = $s2 AND e.event_time >= s1.t GROUP BY 1),
     s3 AS (SELECT e.distinct_id, min(e.event_time) AS t FROM events e JOIN s2 USING (distinct_id)
            WHERE e.event_name = $s3 AND e.event_time >= s2.t GROUP BY 1),
     steps AS (SELECT 1 AS step, $s1 AS event, count(*) AS users FROM s1
               UNION ALL SELECT 2, $s2, count(*) FROM s2
               UNION ALL SELECT 3, $s3, count(*) FROM s3)
SELECT step, event, users,
       round(100.0 * users / nullif(first_value(users) OVER (ORDER BY step), 0), 1) AS pct_of_first
FROM steps ORDER BY step"""


def _dau_params(run: DemoRun) -> Mapping[str, Any]:
    days = run.full_local_days()[-DAU_DAYS:]
    return {"first": days[0], "last": days[-1]}


def _funnel_params(run: DemoRun) -> Mapping[str, Any]:
    return dict(zip(("s1", "s2", "s3"), FUNNEL_STEPS, strict=True))


SQL_SECTIONS: list[DemoSection] = [
    _SQLSection("Top events", TOP_EVENTS).section(),
    _SQLSection(
        f"Daily active users, last {DAU_DAYS} days (project timezone)",
        DAILY_ACTIVE_USERS,
        _dau_params,
    ).section(),
    _SQLSection("Revenue by country (typed columns)", REVENUE_BY_COUNTRY).section(),
    _SQLSection("Revenue by plan (events joined with profiles)", REVENUE_BY_PLAN).section(),
    _SQLSection(
        "Purchase funnel (ordered steps, from SQL)", PURCHASE_FUNNEL, _funnel_params
    ).section(),
]

LIVE_DAYS = 7  # the live segmentation compares the last week, day by day
LIVE_FUNNEL_ID = 7003  # the emulator's saved "Checkout" funnel: View Item → Add To Cart → Purchase

LOCAL_DAILY_PURCHASES = """\
SELECT event_date AS day, count(*) AS events
FROM events WHERE event_name = 'Purchase' AND event_date BETWEEN $first AND $last
GROUP BY day ORDER BY day"""

# The same funnel from the local engine: the saved funnel's steps and window, computed over
# the fetched events table with Mixpanel's semantics (`ws.local`, no API query spent).
LOCAL_FUNNEL_CALL = """\
ws.local.funnel(steps=["View Item", "Add To Cart", "Purchase"],
                from_date=first, to_date=last, length=window_days, length_unit="day")"""


def _live_days(run: DemoRun) -> list[date]:
    return run.full_local_days()[-LIVE_DAYS:]


def _live_segmentation(ws: Workspace, run: DemoRun) -> Rows:
    days = _live_days(run)
    if not days:
        return []
    live = ws.segmentation(
        "Purchase", from_date=days[0].isoformat(), to_date=days[-1].isoformat(), unit="day"
    )
    per_day = live.values.get("Purchase", {})
    local = {
        r["day"]: r["events"]
        for r in _sql_rows(
            ws,
            LOCAL_DAILY_PURCHASES,
            {"first": days[0], "last": days[-1]},
        )
    }
    return [
        {
            "day": day.isoformat(),
            "live (Query API)": int(per_day.get(day.isoformat(), 0)),
            "local (SQL)": int(local.get(day, 0)),
            "agree": int(per_day.get(day.isoformat(), 0)) == int(local.get(day, 0)),
        }
        for day in days
    ]


def _live_funnel(ws: Workspace, run: DemoRun) -> Rows:
    days = run.full_local_days()
    # A 7-day window, shortened for short demos so the range keeps at least one day.
    window_days = min(7, (len(days) - 1) // 2)
    if window_days < 1:
        return []
    # Leave a whole conversion window of local data after the range: Mixpanel counts
    # completions after to_date, so the local table must hold them too.
    first, last = days[0], days[-1] - timedelta(days=window_days)
    live = ws.funnel(
        LIVE_FUNNEL_ID,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        length=window_days,
        length_unit="day",
    )
    local = [
        s.count
        for s in ws.local.funnel(
            steps=[s.event for s in live.steps],
            from_date=first.isoformat(),
            to_date=last.isoformat(),
            length=window_days,
            length_unit="day",
        ).steps
    ]
    return [
        {
            "step": n + 1,
            "event": step.event,
            "live (Query API)": step.count,
            "local (engine)": local[n],
            "agree": step.count == local[n],
        }
        for n, step in enumerate(live.steps)
    ]


# Live Query API sections print after the SQL ones, next to the same numbers from SQL.
LIVE_SECTIONS: list[DemoSection] = [
    DemoSection(
        title=f"Live segmentation: Purchase events per day, last {LIVE_DAYS} days",
        rows=_live_segmentation,
        sql=LOCAL_DAILY_PURCHASES,
    ),
    DemoSection(
        title="Live funnel: saved 'Checkout' funnel vs the local engine",
        rows=_live_funnel,
        sql=LOCAL_FUNNEL_CALL,
    ),
]


def sections() -> list[DemoSection]:
    """Every section `mp demo` prints, in order."""
    return [*SQL_SECTIONS, *LIVE_SECTIONS]
