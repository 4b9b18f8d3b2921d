"""A shell's TAB: how long `mp` takes to answer one completion request.

Sets up what a new user has after `pip install` and one fetch: a config with two
accounts and `mp fetch events` from an emulator in this process (loopback HTTP), then
runs the installed `mp` console script as bash's completion runs it
(``_MP_COMPLETE=complete_bash``, ``COMP_WORDS``, ``COMP_CWORD``) in a child process,
interleaved, ``--runs`` times per line. Each round starts with no command tree cached
(as the first TAB after install). Each figure is the median wall time, and its ratio to
the ceiling (0.3 s) and to a bare ``python -c pass`` measured in the same rounds.

    python benchmarks/completion_benchmark.py            # 10 runs per line
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CEILING = 0.3
LINES = [
    ("first TAB after install: a command", "mp au"),
    ("a subcommand", "mp inspect "),
    ("an option's choices", "mp sql -f "),
    ("account names", "mp auth show "),
    ("table names", "mp inspect schema "),
    ("event names", "mp query segmentation P"),
]


def _tab(mp: str, line: str, env: dict[str, str]) -> tuple[float, str]:
    words = line.split(" ")
    full = {**env, "_MP_COMPLETE": "complete_bash", "COMP_WORDS": line}
    full["COMP_CWORD"] = str(len(words) - 1)
    started = time.perf_counter()
    out = subprocess.run([mp], env=full, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - started, out


def _python(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    mp = shutil.which("mp", path=str(Path(sys.executable).parent)) or "mp"

    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    work = Path(tempfile.mkdtemp(prefix="mp-tab-"))
    spec = ProjectSpec(seed=7, users=200, days=7)
    with Emulator(spec=spec, cache_dir=work / "emu") as emu:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "MP_RATE_LIMIT_EXPORT": "100c",
        }
        if "PYTHONPATH" in os.environ:
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        days = list(emu.project.data_dates)
        for name in ("prod", "staging"):
            subprocess.run(
                [mp, "-q", "auth", "add", name, "-u", emu.username, "-p", str(spec.project_id),
                 "--base-url", emu.base_url, "--secret-stdin"],
                input=emu.secret + "\n", env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
        subprocess.run(
            [mp, "-q", "fetch", "events", "--from", str(days[0]), "--to", str(days[-1])],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    times: dict[str, list[float]] = {line: [] for _, line in LINES}
    answers: dict[str, str] = {}
    bare: list[float] = []
    for _ in range(opts.runs):
        for stale in (work / ".cache" / "mp").glob("tree-*.json"):
            stale.unlink()  # the first line: nothing built by an earlier TAB
        for _, line in LINES:
            seconds, out = _tab(mp, line, env)
            times[line].append(seconds)
            answers[line] = out
        bare.append(_python(env))
    python = statistics.median(bare)
    print(f"| TAB ({opts.runs} runs, interleaved) | offers | median | / {CEILING} s | / python |")
    print("|---|---|---:|---:|---:|")
    for label, line in LINES:
        med = statistics.median(times[line])
        offers = " ".join(answers[line].split()[:4]) or "(nothing)"
        print(
            f"| {label}: `{line}` | {offers} | {med:.3f} s | {med / CEILING:.2f} "
            f"| {med / python:.1f}x |"
        )
    print(f"| bare `python -c pass` | | {python:.3f} s | {python / CEILING:.2f} | 1.0x |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
