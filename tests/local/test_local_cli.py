"""`mp query ... --local`: the same command with and without the flag prints the same JSON."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.conftest import emulator_credentials

from mixpanel_data import Workspace
from mixpanel_data.cli.main import main

TODAY = date(2024, 6, 12)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, date, date]]:
    from mixpanel_data.emulator.project import ProjectSpec
    from mixpanel_data.emulator.server import Emulator

    spec = ProjectSpec(seed=5, users=50, days=16, timezone="Europe/Berlin", today=TODAY)
    tmp = tmp_path_factory.mktemp("local-cli")
    db = tmp / "db.duckdb"
    with Emulator(spec=spec, cache_dir=tmp / "cache", threads=8) as emu:
        last = TODAY - timedelta(days=1)
        first = last - timedelta(days=9)
        with Workspace(credentials=emulator_credentials(emu), path=db) as ws:
            ws.fetch_events(from_date=TODAY - timedelta(days=17), to_date=TODAY)  # all history
        yield emu, db, first, last


@pytest.fixture
def mp(
    served: tuple[Any, Path, date, date],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    emu, db, _, _ = served
    monkeypatch.setenv("MP_USERNAME", emu.username)
    monkeypatch.setenv("MP_SECRET", emu.secret)
    monkeypatch.setenv("MP_PROJECT_ID", str(emu.spec.project_id))
    monkeypatch.setenv("MP_BASE_URL", emu.base_url)
    monkeypatch.setenv("MP_TIMEZONE", emu.spec.timezone)
    monkeypatch.setenv("MP_DB_PATH", str(db))

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    return run


def _data(text: str) -> Any:
    body = orjson.loads(text)
    if isinstance(body, dict):
        body.pop("raw", None)
        body.pop("raw_buckets", None)
        body.pop("computed_at", None)
    return body


@pytest.mark.parametrize(
    "args",
    [
        ["segmentation", "Purchase", "--on", "category", "--where", 'properties["price"] > 10'],
        ["segmentation", "Login", "-u", "month", "-t", "unique"],
        ["segmentation-numeric", "Purchase", "--on", "price"],
        ["segmentation-sum", "Purchase", "--on", "price"],
        ["segmentation-average", "Purchase", "--on", "price", "-u", "hour"],
        ["event-counts", "-e", "Login", "-e", "Purchase", "-t", "unique"],
        ["property-counts", "-e", "Purchase", "-p", "$browser"],
        ["retention", "--born-event", "View Item", "-e", "Purchase", "--interval-count", "3"],
        ["frequency", "-e", "Login", "-u", "week", "--addiction-unit", "day"],
    ],
    ids=lambda a: a[0],
)
def test_local_flag_prints_the_same_json(
    mp: Any, served: tuple[Any, Path, date, date], args: list[str]
) -> None:
    _, _, first, last = served
    rng = ["--from", first.isoformat(), "--to", last.isoformat(), "-f", "json"]
    code, live, err = mp("query", *args, *rng)
    assert code == 0, err
    code, local, err = mp("query", *args, *rng, "--local")
    assert code == 0, err
    assert _data(local) == _data(live)


@pytest.mark.parametrize("buckets", [[], ["-u", "week"], ["--interval", "3"]], ids=str)
def test_saved_funnels_local_equal_live(
    mp: Any, served: tuple[Any, Path, date, date], buckets: list[str]
) -> None:
    """No --window: the local engine reads each saved funnel's definition (its bookmark)."""
    emu, _, first, last = served
    rng = ["--from", first.isoformat(), "--to", last.isoformat(), "-f", "json"]
    for saved in emu.project.funnels():
        fid = str(saved["funnel_id"])
        code, live, err = mp("query", "funnel", fid, *rng, *buckets)
        assert code == 0, err
        code, local, err = mp("query", "funnel", fid, *rng, *buckets, "--local")
        if any(str(step).startswith("$custom_event:") for step in saved["steps"]):
            assert (code, local) == (3, "")  # refused: the local engine has no custom events
            assert "custom-event step" in err
            assert len(err.strip().splitlines()) == 1
            continue
        assert code == 0, err
        assert _data(local) == _data(live)
        assert orjson.loads(live)["steps"][0]["count"] > 0


def test_a_given_window_overrides_the_saved_one_on_both_engines(
    mp: Any, served: tuple[Any, Path, date, date]
) -> None:
    emu, _, first, last = served
    rng = ["--from", first.isoformat(), "--to", last.isoformat(), "-f", "json"]
    saved = next(f for f in emu.project.funnels() if f["length"] > 1)
    fid = str(saved["funnel_id"])
    _, own, _ = mp("query", "funnel", fid, *rng, "--local")
    code, live, err = mp("query", "funnel", fid, *rng, "--window", "30m")
    assert code == 0, err
    code, local, err = mp("query", "funnel", fid, *rng, "--window", "30m", "--local")
    assert code == 0, err
    assert _data(local) == _data(live)
    assert _data(local) != _data(own)  # a half-hour window converts fewer users


def test_adhoc_funnel_is_local_only(mp: Any, served: tuple[Any, Path, date, date]) -> None:
    _, _, first, last = served
    rng = ["--from", first.isoformat(), "--to", last.isoformat()]
    code, out, err = mp(
        "query",
        "funnel",
        "-s",
        "Add To Cart",
        "-s",
        "Purchase",
        *rng,
        "--window",
        "7d",
        "--local",
        "-f",
        "json",
    )
    assert code == 0, err
    steps = orjson.loads(out)["steps"]
    assert [s["event"] for s in steps] == ["Add To Cart", "Purchase"]
    assert steps[0]["count"] >= steps[1]["count"] > 0
    code, out, err = mp("query", "funnel", "-s", "Add To Cart", "-s", "Purchase", *rng)
    assert code == 3
    assert "--local" in err
    assert "Traceback" not in err


def test_unfetched_days_exit_7_and_are_named(mp: Any, served: tuple[Any, Path, date, date]) -> None:
    _, _, first, last = served
    early = first - timedelta(days=20)
    code, out, err = mp(
        "query",
        "segmentation",
        "Purchase",
        "--from",
        early.isoformat(),
        "--to",
        last.isoformat(),
        "--local",
    )
    assert code == 7
    assert out == ""
    assert early.isoformat() in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = mp(
        "query",
        "segmentation",
        "Purchase",
        "--from",
        first.isoformat(),
        "--to",
        last.isoformat(),
        "--local",
        "--table",
        "nope",
    )
    assert code == 4
    assert "nope" in err


def _tool(tools: Any, name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    import anyio

    from mcp import Client
    from mixpanel_data.mcp.server import build_server

    async def main() -> tuple[bool, str]:
        with anyio.fail_after(60):
            async with Client(build_server(tools)) as client:
                result = await client.call_tool(name, arguments)
        return bool(result.is_error), "".join(getattr(c, "text", "") for c in result.content)

    return anyio.run(main)


def test_mcp_tools_answer_locally_with_the_live_numbers(
    served: tuple[Any, Path, date, date],
) -> None:
    from mixpanel_data.mcp.server import MixpanelTools

    emu, db, first, last = served
    tools = MixpanelTools(
        workspace_factory=lambda: Workspace(credentials=emulator_credentials(emu), path=db)
    )
    rng = {"from_date": first.isoformat(), "to_date": last.isoformat()}
    saved = emu.project.funnels()[2]
    cases = [
        ("segmentation", {"event": "Purchase", "on": "category"}, {}),
        ("retention", {"born_event": "View Item", "event": "Purchase"}, {}),
        ("event_counts", {"events": ["Login", "Purchase"]}, {}),
        ("property_counts", {"event": "Purchase", "property": "$os"}, {}),
        ("funnel", {"funnel_id": saved["funnel_id"]}, {"length_days": saved["length"]}),
    ]
    try:
        for name, args, local_extra in cases:
            bad, live = _tool(tools, name, {**args, **rng})
            assert not bad, live
            bad, local = _tool(tools, name, {**args, **rng, **local_extra, "local": True})
            assert not bad, local
            assert local == live, name
        bad, text = _tool(
            tools, "funnel", {**rng, "local": True, "steps": saved["steps"], "length_days": 7}
        )
        assert not bad, text
        bad, text = _tool(
            tools,
            "segmentation",
            {
                "event": "Purchase",
                "from_date": "2024-01-01",
                "to_date": last.isoformat(),
                "local": True,
            },
        )
        assert bad
        assert "2024-01-01" in text
    finally:
        tools.close()
