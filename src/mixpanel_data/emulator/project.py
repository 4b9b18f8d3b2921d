"""The emulator's deterministic synthetic Mixpanel project: events, profiles, saved reports.

``SyntheticProject`` answers everything the server and the report code need:
export days as cached JSONL files (generated once per day, see ``export_days``),
engage profiles, saved funnels, cohorts, bookmarks and the ``/api/app/me`` body.
The same ``ProjectSpec`` always gives the same bytes, whatever order days are asked in.

Volume: ``events_per_user_per_day`` is the average over every user and day of the
range, so a project holds about ``users * days * events_per_user_per_day`` events
(10,000 users x 30 days x 3.4 = about 1M events, about 850 MB). Users are active on
a share of days that decays after signup; active users produce proportionally more.

Example::

    project = SyntheticProject(ProjectSpec(seed=7, users=200, days=7))
    path = project.export_day_path(project.data_dates[0])
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from mixpanel_data.emulator import export_days, population
from mixpanel_data.emulator.data_views import data_views
from mixpanel_data.emulator.export_days import (
    HARD_CASE_RATES,
    count_hard_cases,
    write_export_day,
)
from mixpanel_data.emulator.population import Population, day_offset_seconds, hash_uniform

__all__ = ["HARD_CASE_RATES", "ProjectSpec", "SyntheticProject", "hard_case_counts"]

CACHE_ROOT_NAME: Final = "mixpanel-emulator-cache"
CACHE_MAX_AGE_SECONDS: Final = 2 * 86_400  # other specs' caches unused this long are removed
SPEC_RECORD_NAME: Final = "spec.json"  # which spec a cache directory's files belong to
_ORG_ID: Final = 880_001
ENGAGED_CUSTOM_EVENT: Final = 4001  # the custom event "Engaged" (Add To Cart or Share Item)


@dataclass(frozen=True)
class ProjectSpec:
    """What the synthetic project looks like; equal specs give byte-identical data.

    ``legacy_time_shift`` emulates a project created before 2023 (contract §3.5):
    export ``time`` is shifted by the project's UTC offset and export dates are
    project-timezone days. ``today`` fixes "today" for tests (default: the real
    date in the project timezone); ``start_date`` defaults to ``today - days``
    so that the data ends yesterday.
    """

    seed: int = 7
    users: int = 500
    days: int = 30
    start_date: date | None = None
    timezone: str = "America/Los_Angeles"
    project_id: str = "1000001"
    project_name: str = "Demo Project"
    events_per_user_per_day: float = 3.0
    legacy_time_shift: bool = False
    today: date | None = None


class SyntheticProject:
    """One emulated project's data, generated lazily and cached on disk per export day.

    Thread-safe: concurrent requests for the same day generate it once; files are
    written to a temporary name and renamed, so other processes sharing the
    cache directory never see a partial file.
    """

    def __init__(self, spec: ProjectSpec, *, cache_dir: Path | None = None) -> None:
        self.spec = spec
        self.tz = ZoneInfo(spec.timezone)
        self.today: date = spec.today or datetime.now(self.tz).date()
        self.start_date: date = spec.start_date or self.today - timedelta(days=spec.days)
        self.data_dates: list[date] = [
            self.start_date + timedelta(days=i) for i in range(spec.days)
        ]
        if cache_dir is None:
            root = Path(tempfile.gettempdir()) / CACHE_ROOT_NAME
            cache_dir = root / self.cache_key
            _prune(root, keep=cache_dir)
        self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._day_locks: dict[date, threading.Lock] = {}
        self._members: dict[int, frozenset[str]] = {}
        _remove_stale_temp_files(self.cache_dir)
        self.cache_regenerated = _claim_cache(self.cache_dir, self._spec_record())

    def today_now(self) -> date:
        """Today as of this request: the pinned day, else the clock's date in the project
        timezone. Mixpanel's today moves at midnight, so a long-running emulator's does
        too (its data days stay those of its start, `today`)."""
        return self.spec.today or datetime.now(self.tz).date()

    # -- identity and shared state ---------------------------------------------

    @cached_property
    def cache_key(self) -> str:
        """A hash of the resolved spec and the generator code (stale caches never match)."""
        digest = hashlib.sha256()
        resolved = {**asdict(self.spec), "start_date": self.start_date, "today": self.today}
        digest.update(repr(sorted(resolved.items())).encode())
        for module in (population, export_days):
            digest.update(Path(str(module.__file__)).read_bytes())
        return digest.hexdigest()[:20]

    def _spec_record(self) -> dict[str, Any]:
        """What ``spec.json`` holds: the resolved spec and the key that hashes it with the code."""
        resolved = {**asdict(self.spec), "start_date": self.start_date, "today": self.today}
        return {
            "cache_key": self.cache_key,
            "spec": {k: v.isoformat() if isinstance(v, date) else v for k, v in resolved.items()},
        }

    @cached_property
    def population(self) -> Population:
        """The users (built once, on first use)."""
        offset = 0 if self.spec.legacy_time_shift else day_offset_seconds(self.tz, self.start_date)
        return Population(
            seed=self.spec.seed,
            users=self.spec.users,
            days=self.spec.days,
            offset_hours=offset / 3600,
        )

    @cached_property
    def events_per_active_day(self) -> float:
        """Mean events per active user-day that gives the requested overall volume."""
        target = self.spec.users * self.spec.days * self.spec.events_per_user_per_day
        expected = self.population.expected_active_user_days()
        return max(1.0, target / expected) if expected > 0 else 1.0

    def day_index(self, day: date) -> int:
        """Days since the first data day."""
        return (day - self.start_date).days

    def day_midnight(self, day: date) -> int:
        """Epoch seconds of an export day's first second (true UTC for modern projects)."""
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        if self.spec.legacy_time_shift:
            return midnight - day_offset_seconds(self.tz, day)
        return midnight

    # -- events ------------------------------------------------------------------

    def export_day_path(self, day: date) -> Path:
        """The cached JSONL file of one export day (empty outside the data range)."""
        path = self.cache_dir / f"export-{day.isoformat()}.jsonl"
        if path.exists():
            return path
        with self._lock:
            lock = self._day_locks.setdefault(day, threading.Lock())
        with lock:
            if path.exists():
                return path
            self.cache_dir.mkdir(parents=True, exist_ok=True)  # in case it was pruned meanwhile
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                if self.start_date <= day < self.start_date + timedelta(days=self.spec.days):
                    write_export_day(
                        tmp,
                        population=self.population,
                        seed=self.spec.seed,
                        day=day,
                        day_index=self.day_index(day),
                        events_per_active_day=self.events_per_active_day,
                        tz=self.tz,
                        legacy_time_shift=self.spec.legacy_time_shift,
                    )
                else:
                    tmp.write_bytes(b"")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return path

    def iter_export_day(self, day: date) -> Iterator[dict[str, Any]]:
        """The records of one export day, parsed, in time order."""
        with self.export_day_path(day).open("rb") as f:
            for line in f:
                yield orjson.loads(line)

    # -- profiles ------------------------------------------------------------------

    @cached_property
    def _profiles(self) -> list[dict[str, Any]]:
        import numpy as np

        pop = self.population
        cols = pop.cols
        registered = np.flatnonzero(~cols.anonymous)
        last_day = pop.last_active_day()[registered]
        # $last_seen: the first event of the last active day plus up to an hour of use.
        last_tod = pop.first_event_tod(last_day, registered)
        extra = hash_uniform(self.spec.seed, 4, registered, last_day) * 3600
        rows: list[dict[str, Any]] = []
        for j, i in enumerate(registered.tolist()):
            signup = self._instant(int(cols.signup_day[i]), int(cols.signup_tod[i]))
            seen = self._instant(int(last_day[j]), int(last_tod[j])) + int(extra[j])
            rows.append(
                {
                    "$distinct_id": pop.distinct_ids[i],
                    "$properties": pop.profile(i, created=signup, last_seen=max(seen, signup)),
                }
            )
        rows.sort(key=lambda r: str(r["$distinct_id"]))
        return rows

    def _instant(self, day_index: int, second_of_day: int) -> int:
        """True UTC epoch of a second of an export day (any day index, even before the range)."""
        return self.day_midnight(self.start_date + timedelta(days=day_index)) + second_of_day

    def profiles(self) -> list[dict[str, Any]]:
        """Engage rows ``{"$distinct_id", "$properties"}``, sorted by distinct id.

        Anonymous visitors (``$device:...`` ids) have events but no profile.
        """
        return [
            {"$distinct_id": r["$distinct_id"], "$properties": dict(r["$properties"])}
            for r in self._profiles
        ]

    # -- saved reports ------------------------------------------------------------

    def funnels(self) -> list[dict[str, Any]]:
        """Saved funnels (``/funnels/list`` rows plus their steps and window)."""
        return [
            {
                "funnel_id": 7001,
                "name": "Purchase funnel",
                "steps": ["Sign Up", "View Item", "Add To Cart", "Purchase"],
                "length": 14,
                "length_unit": "day",
            },
            {
                "funnel_id": 7002,
                "name": "Search to view",
                "steps": ["Login", "Search", "View Item"],
                "length": 1,
                "length_unit": "day",
            },
            {
                "funnel_id": 7003,
                "name": "Checkout",
                "steps": ["View Item", "Add To Cart", "Purchase"],
                "length": 7,
                "length_unit": "day",
            },
            {
                # A custom-event step: its goal is "$custom_event:<id>" (the funnels spec example).
                "funnel_id": 7004,
                "name": "View to engaged",
                "steps": ["View Item", f"$custom_event:{ENGAGED_CUSTOM_EVENT}"],
                "length": 3,
                "length_unit": "day",
            },
        ]

    def funnel_bookmark_params(self, funnel: dict[str, Any]) -> dict[str, Any]:
        """A saved funnel's definition as the bookmarks API's ``params`` (contract §12.1).

        Mixpanel's bookmark JSON: ``sections.show[0].behavior`` holds the steps
        (``behaviors``), the conversion window and the order. A custom-event step is
        ``{"type": "custom-event", "id": N, "name": ...}`` (that key set is unconfirmed).
        """
        names = {c["custom_event_id"]: c["name"] for c in self.custom_events()}
        steps: list[dict[str, Any]] = []
        for step in funnel["steps"]:
            if str(step).startswith("$custom_event:"):
                cid = int(str(step).removeprefix("$custom_event:"))
                steps.append({"type": "custom-event", "id": cid, "name": names.get(cid, step)})
            else:
                steps.append(
                    {
                        "type": "event",
                        "name": step,
                        "filters": [],
                        "filtersDeterminer": "all",
                        "funnelOrder": "loose",
                    }
                )
        return {
            "sections": {
                "show": [
                    {
                        "type": "metric",
                        "behavior": {
                            "type": "funnel",
                            "resourceType": "events",
                            "behaviors": steps,
                            "conversionWindowDuration": funnel["length"],
                            "conversionWindowUnit": funnel["length_unit"],
                            "funnelOrder": "loose",
                            "exclusions": [],
                            "aggregateBy": [],
                        },
                        "measurement": {"math": "conversion_rate_unique"},
                    }
                ],
                "filter": [],
                "group": [],
                "time": [{"dateRangeType": "in the last", "unit": "day", "window": {"value": 30}}],
            },
            "displayOptions": {"chartType": "funnel-steps"},
        }

    def custom_events(self) -> list[dict[str, Any]]:
        """Custom events (a named union of events), as funnel steps refer to them by id."""
        return [
            {
                "custom_event_id": ENGAGED_CUSTOM_EVENT,
                "name": "Engaged",
                "alternatives": ["Add To Cart", "Share Item"],
            }
        ]

    _COHORTS: Final = (
        (1001, "Pro plan users", 'Profiles with plan == "pro"', 1),
        (1002, "Purchasers", "Anyone who did Purchase in the data range", 1),
        (1003, "US users", 'Profiles with $country_code == "US"', 1),
        (1004, "Newsletter subscribers", "Profiles with newsletter == true", 1),
        (1005, "Anonymous visitors", "Visitors seen in the range who never signed up", 0),
    )

    def cohorts(self) -> list[dict[str, Any]]:
        """``/cohorts/list`` rows (contract §8)."""
        created = datetime.combine(self.start_date - timedelta(days=45), datetime.min.time())
        return [
            {
                "count": len(self.cohort_members(cid)),
                "is_visible": visible,
                "description": description,
                "created": (created + timedelta(days=k, hours=9 + k, minutes=17 * k)).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                "project_id": self.project_id_int,
                "id": cid,
                "name": name,
                "data_group_id": None,
            }
            for k, (cid, name, description, visible) in enumerate(self._COHORTS)
        ]

    def cohort_members(self, cohort_id: int) -> frozenset[str]:
        """The distinct ids in a cohort; unknown ids raise ``KeyError``."""
        with self._lock:
            if cohort_id in self._members:
                return self._members[cohort_id]
        members = self._compute_members(cohort_id)
        with self._lock:
            self._members[cohort_id] = members
        return members

    def _compute_members(self, cohort_id: int) -> frozenset[str]:
        def having(key: str, value: Any) -> frozenset[str]:
            return frozenset(
                str(p["$distinct_id"]) for p in self._profiles if p["$properties"].get(key) == value
            )

        if cohort_id == 1001:
            return having("plan", "pro")
        if cohort_id == 1003:
            return having("$country_code", "US")
        if cohort_id == 1004:
            return having("newsletter", True)
        if cohort_id == 1002:
            prefix = b'{"event":"Purchase",'
            buyers: set[str] = set()
            for day in self.data_dates:
                with self.export_day_path(day).open("rb") as f:
                    for line in f:
                        if line.startswith(prefix):
                            buyers.add(orjson.loads(line)["properties"]["distinct_id"])
            return frozenset(buyers)
        if cohort_id == 1005:
            cols = self.population.cols
            return frozenset(
                self.population.distinct_ids[i]
                for i in range(self.spec.users)
                if cols.anonymous[i] and 0 <= cols.signup_day[i] < self.spec.days
            )
        raise KeyError(cohort_id)

    def bookmarks(self) -> list[dict[str, Any]]:
        """App API bookmark rows (contract §12.1) with a ``params`` dict the reports compute."""
        base = datetime.combine(self.start_date - timedelta(days=20), datetime.min.time())
        saved: list[tuple[int, str, str, dict[str, Any]]] = [
            (
                5001,
                "Daily purchasers",
                "insights",
                {"event": "Purchase", "type": "unique", "unit": "day", "on": None},
            ),
            (
                5002,
                "Sign ups by country",
                "insights",
                {
                    "event": "Sign Up",
                    "type": "general",
                    "unit": "day",
                    "on": 'properties["mp_country_code"]',
                },
            ),
            (
                5003,
                "Weekly logins",
                "insights",
                {"event": "Login", "type": "general", "unit": "week", "on": None},
            ),
            (5004, "Purchase funnel", "funnels", {"funnel_id": 7001}),
            (
                5005,
                "Sign up retention",
                "retention",
                {"born_event": "Sign Up", "event": "Login", "unit": "day"},
            ),
            (
                5006,
                "After sign up",
                "flows",
                {"anchor_event": "Sign Up", "direction": "after", "steps": 3},
            ),
        ]
        # Each saved funnel is also a funnels bookmark with its id (the docs send funnel
        # users to "build a Funnels report in-app", i.e. a bookmark; how the legacy
        # funnel_id relates to bookmark ids they do not say: here they are equal).
        saved += [
            (f["funnel_id"], f["name"], "funnels", {"funnel_id": f["funnel_id"]})
            for f in self.funnels()
        ]
        return [
            {
                "id": bid,
                "name": name,
                "type": kind,
                "project_id": self.project_id_int,
                "workspace_id": None,
                "dashboard_id": None,
                "created": (base + timedelta(days=k, hours=k)).strftime("%Y-%m-%dT%H:%M:%S"),
                "modified": (base + timedelta(days=k + 3, hours=2 * k)).strftime(
                    "%Y-%m-%dT%H:%M:%S"
                ),
                "params": params,
            }
            for k, (bid, name, kind, params) in enumerate(saved)
        ]

    # -- account ---------------------------------------------------------------------

    @property
    def project_id_int(self) -> int:
        """The project id as a number (non-numeric ids hash to a stable one)."""
        pid = self.spec.project_id
        if pid.isdigit():
            return int(pid)
        return int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16)

    @property
    def workspace_id(self) -> int:
        """The project's default (global) workspace id."""
        return 3_000_000 + self.project_id_int % 1_000_000

    def me(self, username: str) -> dict[str, Any]:
        """The ``/api/app/me`` ``results`` object for a service account (contract §14)."""
        pid = self.project_id_int
        return {
            "user_id": 6_000_000 + self.spec.seed % 1_000_000,
            "user_email": f"{username}@mixpanel.org",
            "user_name": "",
            "organizations": {
                str(_ORG_ID): {
                    "id": _ORG_ID,
                    "name": "Demo Organization",
                    "role": "admin",
                    "permissions": ["view_project", "create_service_accounts", "export_data"],
                }
            },
            "projects": {
                self.spec.project_id: {
                    "id": pid,
                    "name": self.spec.project_name,
                    "organization_id": _ORG_ID,
                    "timezone": self.spec.timezone,
                    "domain": "mixpanel.com",
                    "cluster_name": "us",
                    "has_workspaces": True,
                }
            },
            "workspaces": {str(v.id): v.me_row(pid) for v in data_views(self.workspace_id)},
        }


def hard_case_counts(project: SyntheticProject, day: date) -> dict[str, int]:
    """Count the hard cases (``HARD_CASE_RATES``) in one export day, plus ``events``."""
    return count_hard_cases(project.export_day_path(day))


def _remove_stale_temp_files(cache_dir: Path) -> None:
    """Remove partial files a crashed process left behind (an hour is far beyond any write)."""
    cutoff = time.time() - 3600
    for tmp in cache_dir.glob(".*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:
            continue


def _claim_cache(cache_dir: Path, record: dict[str, Any]) -> bool:
    """Make ``cache_dir`` hold only this spec's days; True when another spec's were removed.

    A directory filled for another spec (or by a version that kept no record) would
    otherwise serve that spec's days under this one's dates. Only the emulator's own
    files (day files, their gzip fragments) are removed; anything else is left alone.
    """
    path = cache_dir / SPEC_RECORD_NAME
    try:
        found = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        found = None
    if isinstance(found, dict) and found.get("cache_key") == record["cache_key"]:
        return False
    stale = list(cache_dir.glob("export-*.jsonl"))
    for day_file in stale:
        day_file.unlink(missing_ok=True)
    shutil.rmtree(cache_dir / "gzip-fragments", ignore_errors=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(tmp, path)
    return bool(stale)


def _prune(root: Path, *, keep: Path) -> None:
    """Remove other specs' cache directories left unused for a while."""
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return
    cutoff = time.time() - CACHE_MAX_AGE_SECONDS
    for entry in entries:
        try:
            if entry != keep and entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
    if keep.exists():
        os.utime(keep)
