"""Reports bucket in project time for legacy projects too (export time shifted, contract §3.5)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import httpx
import orjson

from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator


def test_legacy_project_buckets_match_the_shifted_export(tmp_path):
    spec = ProjectSpec(seed=3, users=40, days=4, timezone="Asia/Kolkata", legacy_time_shift=True)
    with Emulator(spec=spec, cache_dir=tmp_path) as emu:
        days = emu.project.data_dates
        first, last = days[0].isoformat(), days[-1].isoformat()
        auth = (emu.username, emu.secret)
        base = {"project_id": str(spec.project_id), "from_date": first, "to_date": last}
        export = httpx.get(f"{emu.base_url}/api/2.0/export", params=base, auth=auth, timeout=60)
        seg = httpx.get(
            f"{emu.base_url}/api/query/segmentation",
            params={**base, "event": "Login"},
            auth=auth,
            timeout=60,
        )
    assert export.status_code == seg.status_code == 200
    seen, counts = set(), Counter()
    for line in export.content.splitlines():
        record = orjson.loads(line)
        props = record["properties"]
        key = (record["event"], props["distinct_id"], props["time"], props.get("$insert_id"))
        if record["event"] != "Login" or (key[3] is not None and key in seen):
            continue
        seen.add(key)
        # legacy export time is already project wall-clock time read as UTC
        counts[datetime.fromtimestamp(props["time"], UTC).date().isoformat()] += 1
    values = seg.json()["data"]["values"]["Login"]
    assert {d: n for d, n in values.items() if n} == dict(counts)
    assert sum(counts.values()) > 10
