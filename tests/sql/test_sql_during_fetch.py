"""`mp sql` from two processes at once while a third process runs `mp fetch` on the same file."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixpanel_data import Workspace
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator

MP = str(Path(sys.executable).with_name("mp"))


@pytest.mark.slow
def test_two_readers_see_committed_windows_while_a_fetch_runs(tmp_path: Path) -> None:
    spec = ProjectSpec(seed=11, users=60, days=5)
    # Each export window trickles in over about a second, so the fetch spans several reads.
    with Emulator(
        spec=spec, cache_dir=tmp_path / "cache", faults="export:slow:bytes_per_second=150000:prob=1"
    ) as emu:
        days = emu.project.data_dates
        db = tmp_path / "shared.duckdb"
        env = {
            **os.environ,
            "MP_BASE_URL": emu.base_url,
            "MP_USERNAME": emu.username,
            "MP_SECRET": emu.secret,
            "MP_PROJECT_ID": str(spec.project_id),
            "MP_TIMEZONE": spec.timezone,
        }
        fetch = subprocess.Popen(
            [
                MP,
                "-q",
                "--db",
                str(db),
                "fetch",
                "events",
                "--from",
                str(days[0]),
                "--to",
                str(days[-1]),
                "--workers",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        # (exit code, count) of every read, per round of two concurrent readers: the two
        # race each other, but a round starts only after the previous one ended.
        rounds: list[list[tuple[int, int]]] = []
        during = 0
        with fetch:
            while fetch.poll() is None:
                readers = [
                    subprocess.Popen(
                        [MP, "--db", str(db), "sql", "SELECT count(*) FROM events", "--scalar"],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                        env=env,
                    )
                    for _ in range(2)
                ]
                rounds.append([])
                for reader in readers:
                    with reader:
                        out, err = reader.communicate(timeout=60)
                    count = int(out) if reader.returncode == 0 else -1
                    rounds[-1].append((reader.returncode, count))
                    assert reader.returncode in (0, 4), err  # 4: no window committed yet
                if fetch.poll() is None:
                    during += 1
            _, fetch_err = fetch.communicate(timeout=60)
        assert fetch.returncode == 0, fetch_err
    with Workspace.open(db) as ws:
        final = ws.sql_scalar("SELECT count(*) FROM events")
    counts = [n for r in rounds for code, n in r if code == 0]
    assert during >= 1  # reads happened while the fetch was still running
    assert any(0 < n < final for n in counts)  # a reader saw a partial, committed table
    assert all(n <= final for n in counts)
    for before, after in itertools.pairwise(rounds):
        seen_before = [n for code, n in before if code == 0]
        if seen_before:
            # Committed data only grows, and once the table exists it stays readable.
            assert all(code == 0 and n >= max(seen_before) for code, n in after), rounds
