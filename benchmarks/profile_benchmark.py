"""Profile fetch benchmark: peak RSS of `mp fetch profiles` at two project sizes.

Each size gets its own `mp emulator serve` process (so the emulator's memory is
not counted); the fetch runs as `mp -q fetch profiles` under ``/usr/bin/time -f
%M`` (the child's peak RSS) into a fresh DuckDB file. Memory must stay flat:
the larger fetch's peak within 1.2x of the smaller one's.

    python benchmarks/profile_benchmark.py                        # 100k and 1M profiles
    python benchmarks/profile_benchmark.py --profiles 20000 200000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MP = str(Path(sys.executable).with_name("mp"))
# The emulator's default spec gives a profile to about 92% of its users.
PROFILES_PER_USER = 0.92


def _serve(users: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [MP, "emulator", "serve", "--users", str(users), "--days", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the emulator did not start")
    creds: dict[str, str] = json.loads(line)
    # Page 0 builds the project's profiles (seconds for a million): do it before timing.
    import httpx

    httpx.post(
        f"{creds['base_url']}/api/query/engage",
        params={"project_id": creds["project_id"]},
        auth=(creds["username"], creds["secret"]),
        timeout=600,
    ).raise_for_status()
    return proc, creds


def run(profiles: int, workdir: Path) -> dict[str, float]:
    """Fetch about `profiles` profiles from a fresh emulator; return counts, seconds, RSS."""
    users = round(profiles / PROFILES_PER_USER)
    emu, creds = _serve(users)
    try:
        db = workdir / f"profiles-{profiles}.duckdb"
        env = {
            **os.environ,
            "HOME": str(workdir),
            "MP_CONFIG_PATH": str(workdir / "config.toml"),
            "MP_USERNAME": creds["username"],
            "MP_SECRET": creds["secret"],
            "MP_PROJECT_ID": creds["project_id"],
            "MP_BASE_URL": creds["base_url"],
            "MP_TIMEZONE": "UTC",
            # The emulator runs without rate limits; keep only the concurrency cap.
            "MP_RATE_LIMIT_QUERY": "5c",
        }
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", MP, "-q", "--db", str(db), "fetch", "profiles"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"fetch failed ({proc.returncode}): {proc.stderr.strip()}")
        result = json.loads(proc.stdout)
        rss_kb = int(proc.stderr.strip().splitlines()[-1])
        for suffix in ("", ".wal"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        return {
            "users": users,
            "profiles": result["table_rows"],
            "mb": result["bytes_downloaded"] / 1e6,
            "seconds": result["duration_seconds"],
            "rss_mb": rss_kb / 1024,
        }
    finally:
        emu.kill()
        emu.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs=2, default=[100_000, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mp-profile-bench-") as tmp:
        rows = [run(n, Path(tmp)) for n in args.profiles]
    print("| profiles | JSON | seconds | profiles/s | peak RSS |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        rate = r["profiles"] / r["seconds"] if r["seconds"] else 0
        print(
            f"| {r['profiles']:,.0f} | {r['mb']:,.0f} MB | {r['seconds']:.1f} | {rate:,.0f} "
            f"| {r['rss_mb']:,.0f} MB |"
        )
    ratio = rows[1]["rss_mb"] / rows[0]["rss_mb"]
    print(f"\npeak RSS ratio: {ratio:.2f}x (target <= 1.2x)")
    if ratio > 1.2:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
