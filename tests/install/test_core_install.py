"""`pip install mixpanel_data` without extras (issue 15), proven in a fresh venv.

The wheel is built from this tree and installed with its core dependencies only (pip's cache
keeps this to about half a minute); the venv's `mp` then runs against the emulator of the
test process over loopback, and the extra-only commands must name their extra in one line.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import Workspace
from mixpanel_data.cli.commands.emulator import EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Read before any test swaps HOME for a private one, so pip finds its cache.
PIP_ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
    "PIP_NO_INPUT": "1",
}
# Distributions only the extras bring; none of them may come with the core install.
EXTRA_ONLY = ("cheroot", "quickjs", "mcp", "starlette", "sse-starlette", "uvicorn", "polars")
# Modules the core library and CLI must never import when they are imported.
NEVER_AT_IMPORT = (
    "cheroot",
    "quickjs",
    "mcp",
    "starlette",
    "uvicorn",
    "mixpanel_data.emulator",
    "mixpanel_data.mcp",
)

pytestmark = [pytest.mark.install, pytest.mark.slow]


@dataclass(frozen=True)
class CoreVenv:
    """A venv holding the built wheel and its core dependencies, nothing else."""

    path: Path
    wheel: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def mp(self) -> str:
        return str(self.path / "bin" / "mp")


def _run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _build(target: Path) -> CoreVenv:
    work = target.parent / f"{target.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        env=PIP_ENV,
        cwd=work,
    )
    (wheel,) = dist.glob("mixpanel_data-*.whl")
    _run([sys.executable, "-m", "venv", str(target)], env=PIP_ENV, cwd=work)
    _run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
         env=PIP_ENV, cwd=work)  # fmt: skip
    return CoreVenv(path=target, wheel=wheel)


@pytest.fixture(scope="session")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> CoreVenv:
    """One core install per test run, shared by the xdist workers (built under a file lock)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, common to every worker
    target = base / "core-venv"
    with (base / "core-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = base / "core-venv.json"
        if not ready.exists():
            venv = _build(target)
            ready.write_text(json.dumps({"wheel": str(venv.wheel)}), encoding="utf-8")
        wheel = Path(json.loads(ready.read_text(encoding="utf-8"))["wheel"])
    return CoreVenv(path=target, wheel=wheel)


def _dist_name(requirement: str) -> str:
    """`mcp>=2.3,<3  # ...` -> `mcp` (normalised as in PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def _probe(venv: CoreVenv, code: str, tmp_path: Path) -> Any:
    return json.loads(_run([venv.python, "-c", code], env=PIP_ENV, cwd=tmp_path, timeout=120))


def test_core_install_imports_and_leaves_the_extras_out(
    core_venv: CoreVenv, tmp_path: Path
) -> None:
    got = _probe(
        core_venv,
        "import json, importlib.metadata as m, mixpanel_data; "
        "print(json.dumps({'file': mixpanel_data.__file__, 'version': mixpanel_data.__version__,"
        " 'dists': sorted(d.metadata['Name'] for d in m.distributions()),"
        " 'requires': m.requires('mixpanel_data')}))",
        tmp_path,
    )
    assert Path(got["file"]).is_relative_to(core_venv.path)  # the wheel, not this tree
    assert got["version"] == PYPROJECT["project"]["version"]
    installed = {_dist_name(d) for d in got["dists"]}
    assert installed.isdisjoint(EXTRA_ONLY), installed & set(EXTRA_ONLY)
    core = {_dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core <= installed, core - installed
    # The wheel's own metadata: the extras' requirements only under their markers.
    unconditional = {_dist_name(r) for r in got["requires"] if "extra ==" not in r}
    assert unconditional == core
    assert "licenses/LICENSE" in _run(
        [core_venv.python, "-m", "zipfile", "-l", str(core_venv.wheel)], env=PIP_ENV, cwd=tmp_path
    )


def test_every_core_module_imports_without_the_extras(core_venv: CoreVenv, tmp_path: Path) -> None:
    # Importing each module of the library and the CLI in the core venv would raise
    # ModuleNotFoundError if one imported an extra at module level.
    got = _probe(core_venv, _IMPORT_ALL, tmp_path)
    assert got["failed"] == {}
    assert got["loaded"] == []
    assert "mixpanel_data.cli.commands.demo" in got["imported"]
    assert "mixpanel_data.workspace" in got["imported"]


def test_the_dev_venv_imports_no_extra_at_module_import(tmp_path: Path) -> None:
    # Here the extras are installed, so only sys.modules can tell an eager import.
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True, text=True, env=PIP_ENV, cwd=tmp_path, timeout=120, check=True,
    )  # fmt: skip
    got = json.loads(done.stdout)
    assert (got["failed"], got["loaded"]) == ({}, [])
    assert len(got["imported"]) > 30


_IMPORT_ALL = f"""
import importlib, json, pathlib, sys
import mixpanel_data
# Module names from the files: pkgutil.walk_packages would import the skipped packages.
top = pathlib.Path(mixpanel_data.__file__).parent
skip = ("mixpanel_data.emulator", "mixpanel_data.mcp", "mixpanel_data.__main__")
names = sorted(
    ".".join(("mixpanel_data", *f.relative_to(top).with_suffix("").parts)).removesuffix(".__init__")
    for f in top.rglob("*.py")
)
names = [n for n in names if not n.startswith(skip)]
failed = {{}}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
never = {NEVER_AT_IMPORT!r}
loaded = sorted(m for m in sys.modules if m.startswith(never))
print(json.dumps({{"imported": names, "failed": failed, "loaded": loaded}}))
"""


@pytest.fixture
def core_mp(core_venv: CoreVenv, emulator: Any, tmp_path: Path) -> Any:
    """Run the core venv's `mp` against the test process's emulator (loopback HTTP)."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        "MP_USERNAME": emulator.username,
        "MP_SECRET": emulator.secret,
        "MP_PROJECT_ID": str(emulator.spec.project_id),
        "MP_BASE_URL": emulator.base_url,
        "MP_TIMEZONE": emulator.spec.timezone,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [core_venv.mp, *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
        )  # fmt: skip

    return run


def test_fetch_sql_and_query_work_in_the_core_install(
    core_mp: Any, emulator: Any, tmp_path: Path
) -> None:
    end = emulator.project.today - timedelta(days=1)
    start = end - timedelta(days=6)
    span = ["--from", start.isoformat(), "--to", end.isoformat()]
    db = tmp_path / "core.duckdb"

    fetched = core_mp("--db", str(db), "-q", "fetch", "events", *span)
    assert (fetched.returncode, fetched.stderr) == (0, "")
    by_event = "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    sql = core_mp("--db", str(db), "sql", by_event, "-f", "json")
    assert (sql.returncode, sql.stderr) == (0, "")
    core_rows = json.loads(sql.stdout)

    # The same fetch through the dev install's library must store the same rows.
    with Workspace(credentials=emulator_credentials(emulator), path=tmp_path / "dev.duckdb") as ws:
        ws.fetch_events("events", from_date=start, to_date=end)
        want = ws.sql_arrow(by_event).to_pylist()
        segmentation = ws.segmentation("Login", from_date=start, to_date=end, on="$browser")
    assert core_rows == want
    assert sum(r["n"] for r in core_rows) > 1000
    with Workspace.open(db) as local:  # the core venv's file, read by the dev install
        assert local.sql_scalar("SELECT count(*) FROM events") == sum(r["n"] for r in core_rows)

    query = core_mp("query", "segmentation", "Login", *span, "--on", "$browser")
    assert (query.returncode, query.stderr) == (0, "")
    assert json.loads(query.stdout) == json.loads(json.dumps(segmentation.to_dict()))
    assert segmentation.total > 0


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["emulator", "serve"], "emulator"),
        (["demo"], "emulator"),
        (["mcp"], "mcp"),
    ],
    ids=["emulator-serve", "demo", "mcp"],
)
def test_extra_commands_name_their_extra_in_one_line(
    core_mp: Any, argv: list[str], extra: str
) -> None:
    done = core_mp(*argv)
    assert (done.returncode, done.stdout) == (1, "")  # exit 1: general error (README table)
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"Error: `mp {' '.join(argv)}` needs the {extra} extra (")
    assert done.stderr.rstrip().endswith(f"pip install 'mixpanel_data[{extra}]'")
    # Their help still works, so users can read what they would install it for.
    assert core_mp(*argv, "--help").returncode == 0


def _extra(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The distributions an extra brings, following `mixpanel_data[...]` references."""
    out: set[str] = set()
    for req in PYPROJECT["project"]["optional-dependencies"][name]:
        inner = re.fullmatch(r"mixpanel_data\[([a-z,]+)\]", req.strip())
        if inner is None:
            out.add(_dist_name(req))
            continue
        for ref in inner.group(1).split(","):
            assert ref not in seen | {name}, f"extra cycle through {ref}"
            out |= _extra(ref, seen | {name})
    return out


def test_all_is_every_extra_and_dev_installs_it() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"]) - {"all", "dev"}
    assert extras == {"emulator", "mcp", "polars", "charts"}
    assert _extra("all") == set().union(*(_extra(e) for e in extras))
    assert _extra("all") <= _extra("dev")
    # And `make test` really has them: this venv was installed with `.[dev]`.
    missing = [d for d in _extra("dev") if not _installed(d)]
    assert missing == []


def test_the_cli_checks_the_modules_its_extras_bring() -> None:
    # `require_extra` looks these modules up; they must be what pyproject.toml installs.
    for extra, modules in EXTRA_MODULES.items():
        assert {_dist_name(m) for m in modules} == _extra(extra), extra


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
