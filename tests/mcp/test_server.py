"""`mp mcp` through a real MCP client: the SDK's stdio client launches the server.

One session runs the whole agent conversation once (module fixture): list the
tools, fetch last week from the emulator, answer "which event had the most unique
users last week?" with SQL, run a live report, and try everything the sandbox
refuses. The tests then check each answer against numbers computed here, in plain
Python, from the emulator's raw export.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

SESSION_TIMEOUT = 180  # seconds for a whole session (startup, fetch, queries)
TOOLS = {
    "project_time",
    "list_tables",
    "describe_table",
    "run_sql",
    "fetch_events",
    "fetch_profiles",
    "list_events",
    "list_properties",
    "list_property_values",
    "list_funnels",
    "list_cohorts",
    "segmentation",
    "funnel",
    "retention",
    "event_counts",
    "property_counts",
}

REFUSED = {
    "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
    "read_text": "SELECT content FROM read_text('/etc/passwd')",
    "copy": "COPY events TO '/tmp/mcp-stolen.csv'",
    "attach": "ATTACH '/tmp/mcp-other.duckdb' AS other",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET enable_external_access = true",
    "create": "CREATE TABLE copy AS SELECT * FROM events",
    "insert": "INSERT INTO events SELECT * FROM events",
    "drop": "DROP TABLE events",
    "two_statements": "SELECT 1; DROP TABLE events",
}

SLOW_SQL = "SELECT count(*) FROM range(1000000000000) AS r(x) WHERE x % 7 = 3"
UNIQUE_USERS_SQL = (
    "SELECT event_name, count(DISTINCT distinct_id) AS users FROM events "
    "GROUP BY event_name ORDER BY users DESC, event_name"
)


def last_week(today: date) -> tuple[date, date]:
    """Monday to Sunday of the calendar week before ``today``'s."""
    monday = today - timedelta(days=today.weekday() + 7)
    return monday, monday + timedelta(days=6)


def server_env(home: Path, db: Path, emu: Any | None, *, budget: str = "5c") -> dict[str, str]:
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "MP_CONFIG_PATH": str(home / ".mp" / "config.toml"),
        "MP_DB_PATH": str(db),
        "MP_RATE_LIMIT_QUERY": budget,
        "MP_RATE_LIMIT_EXPORT": "100c",
    }
    if emu is not None:
        env |= {
            "MP_USERNAME": emu.username,
            "MP_SECRET": emu.secret,
            "MP_PROJECT_ID": str(emu.spec.project_id),
            "MP_BASE_URL": emu.base_url,
        }
    return env


Call = Callable[[str, dict[str, Any]], Awaitable[tuple[bool, str]]]


def run_session(
    env: dict[str, str],
    errlog: Path,
    script: Callable[[Any, Call], Awaitable[Any]],
    *,
    options: tuple[str, ...] = ("--max-rows", "50"),
    structured: dict[str, tuple[str, Any]] | None = None,
) -> Any:
    """Start `python -m mixpanel_data mcp`, connect the SDK client, run ``script``."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mixpanel_data", "mcp", *options], env=env
    )

    async def main() -> Any:
        with errlog.open("w") as err, anyio.fail_after(SESSION_TIMEOUT):
            async with (
                stdio_client(params, errlog=err) as (read, write),
                ClientSession(read, write, read_timeout_seconds=120) as session,
            ):
                await session.initialize()

                async def call(name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
                    result = await session.call_tool(name, arguments)
                    text = "".join(getattr(c, "text", "") for c in result.content)
                    if structured is not None:  # the last answer of each tool, both forms
                        structured[name] = (text, result.structured_content)
                    return bool(result.is_error), text

                return await script(session, call)

    return anyio.run(main)


@pytest.fixture(scope="module")
def conversation(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run one agent conversation against `mp mcp` and record every answer."""
    root = tmp_path_factory.mktemp("mcp")
    home = root / "home"
    home.mkdir()
    db = root / "agent.duckdb"
    monday, sunday = last_week(emulator.project.today)

    async def script(session: Any, call: Call) -> dict[str, Any]:
        out: dict[str, Any] = {}
        listed = await session.list_tools()
        out["tools"] = {t.name: t for t in listed.tools}
        out["tables_before"] = await call("list_tables", {})
        out["fetch"] = await call(
            "fetch_events", {"from_date": monday.isoformat(), "to_date": sunday.isoformat()}
        )
        out["fetch_again"] = await call(
            "fetch_events", {"from_date": monday.isoformat(), "to_date": sunday.isoformat()}
        )
        out["bad_dates"] = await call(
            "fetch_events", {"from_date": "2024-02-30", "to_date": "2024-03-01", "table": "x"}
        )
        out["tables_after"] = await call("list_tables", {})
        out["project_time"] = await call("project_time", {})
        out["describe"] = await call("describe_table", {"name": "events", "sample_rows": 2})
        out["unique_users"] = await call("run_sql", {"query": UNIQUE_USERS_SQL})
        out["all_rows"] = await call("run_sql", {"query": "SELECT * FROM events"})
        out["missing_table"] = await call("run_sql", {"query": "SELECT * FROM nope"})
        for name, query in REFUSED.items():
            out[f"refused_{name}"] = await call("run_sql", {"query": query})
        out["count_after_refusals"] = await call(
            "run_sql", {"query": "SELECT count(*) AS n FROM events"}
        )
        # A write after the sandbox's connections: the file is free for the fetcher again.
        out["fetch_profiles"] = await call("fetch_profiles", {})
        out["profiles_sql"] = await call(
            "run_sql", {"query": "SELECT count(DISTINCT distinct_id) AS n FROM profiles"}
        )
        top = orjson.loads(out["unique_users"][1])["rows"][0][0]
        out["top_event"] = top
        out["segmentation"] = await call(
            "segmentation",
            {
                "event": top,
                "from_date": monday.isoformat(),
                "to_date": sunday.isoformat(),
                "type": "unique",
            },
        )
        out["list_events"] = await call("list_events", {})
        out["list_funnels"] = await call("list_funnels", {})
        out["bad_unit"] = await call(
            "segmentation",
            {"event": top, "from_date": "2024-01-02", "to_date": "2024-01-01"},
        )
        return out

    errlog = root / "stderr.txt"
    structured: dict[str, tuple[str, Any]] = {}
    out = run_session(server_env(home, db, emulator), errlog, script, structured=structured)
    out["structured"] = structured
    out["stderr"] = errlog.read_text()
    out["db"] = db
    out["home"] = home
    out["week"] = (monday, sunday)
    return out


def _ok(answer: tuple[bool, str]) -> dict[str, Any]:
    is_error, text = answer
    assert not is_error, text
    data: dict[str, Any] = orjson.loads(text)
    return data


def _error(answer: tuple[bool, str]) -> str:
    """The library's one-line message (the SDK prefixes "Error executing tool <name>: ")."""
    is_error, text = answer
    assert is_error, text
    assert "\n" not in text
    assert "Traceback" not in text
    prefix, sep, message = text.partition(": ")
    assert prefix.startswith("Error executing tool "), text
    assert sep, text
    return message


def _raw_events(emu: Any, days: list[date]) -> list[dict[str, Any]]:
    """The export records of these project days (the export days around them, kept by
    their day in the project timezone, as the fetch stores them)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(emu.spec.timezone)
    wanted = set(days)
    around = [days[0] - timedelta(days=1), *days, days[-1] + timedelta(days=1)]
    return [
        record
        for day in around
        if day in emu.project.data_dates
        for record in emu.project.iter_export_day(day)
        if datetime.fromtimestamp(record["properties"]["time"], UTC).astimezone(zone).date()
        in wanted
    ]


CORE = ["event_name", "event_time", "event_date", "distinct_id", "insert_id", "properties"]


def test_tools_are_listed_with_schemas(conversation: dict[str, Any]) -> None:
    tools = conversation["tools"]
    assert set(tools) == TOOLS
    run_sql = tools["run_sql"]
    assert run_sql.input_schema["required"] == ["query"]
    assert "SELECT" in (run_sql.description or "")
    assert set(tools["fetch_events"].input_schema["required"]) == {"from_date", "to_date"}
    assert tools["run_sql"].annotations.read_only_hint is True
    assert tools["fetch_events"].annotations.read_only_hint is False
    # openWorldHint only on tools that reach Mixpanel; the local database is a closed world.
    local = {"list_tables", "describe_table", "run_sql"}
    for name, tool in tools.items():
        assert tool.annotations.open_world_hint is (name not in local), name
        assert tool.output_schema is not None, name
        assert tool.output_schema["type"] == "object", name
    assert tools["fetch_events"].annotations.destructive_hint is True  # mode="replace"
    assert tools["list_tables"].annotations.destructive_hint is not True


def test_answers_carry_structured_content_equal_to_their_text(
    conversation: dict[str, Any],
) -> None:
    answered = conversation["structured"]
    assert {"run_sql", "list_tables", "project_time", "segmentation"} <= set(answered)
    for name, (text, data) in answered.items():
        if data is not None:  # tool errors carry text only
            assert data == orjson.loads(text), name
    assert answered["list_tables"][1]["tables"][0]["name"] == "events"


def test_project_time_tells_timezone_today_and_days_covered(
    conversation: dict[str, Any], emulator: Any
) -> None:
    from zoneinfo import ZoneInfo

    answer = _ok(conversation["project_time"])
    tz = ZoneInfo(emulator.spec.timezone)
    assert answer["timezone"] == emulator.spec.timezone
    assert answer["timezone_source"] == "mixpanel"  # no timezone configured: /api/app/me
    now = datetime.fromisoformat(answer["now_utc"])
    assert answer["today"] == now.astimezone(tz).date().isoformat()
    monday, sunday = conversation["week"]
    days = [monday + timedelta(days=i) for i in range(7)]
    times = [r["properties"]["time"] for r in _raw_events(emulator, days)]
    (events,) = answer["tables"]
    assert events["name"] == "events"
    assert events["fetched_from_date"] == monday.isoformat()
    assert events["fetched_to_date"] == sunday.isoformat()
    first = datetime.fromtimestamp(min(times), UTC).astimezone(tz).date()
    last = datetime.fromtimestamp(max(times), UTC).astimezone(tz).date()
    assert (events["first_day"], events["last_day"]) == (first.isoformat(), last.isoformat())
    assert events["days_in"] == "project timezone"


def test_empty_database_says_how_to_start(conversation: dict[str, Any]) -> None:
    before = _ok(conversation["tables_before"])
    assert before["tables"] == []
    assert "fetch_events" in before["note"]


def test_fetch_loads_exactly_last_weeks_export(conversation: dict[str, Any], emulator: Any) -> None:
    monday, _ = conversation["week"]
    result = _ok(conversation["fetch"])
    days = [monday + timedelta(days=i) for i in range(7)]
    raw = _raw_events(emulator, days)
    unique = {
        (r["event"], r["properties"].get("distinct_id"), r["properties"]["time"], insert_id)
        for r in raw
        if (insert_id := r["properties"].get("$insert_id")) is not None
    }
    without_insert_id = sum(1 for r in raw if r["properties"].get("$insert_id") is None)
    assert result["table"] == "events"
    assert result["rows_inserted"] == result["table_rows"] == len(unique) + without_insert_id
    assert result["duplicates_dropped"] == len(raw) - result["table_rows"]
    tables = _ok(conversation["tables_after"])["tables"]
    assert [(t["name"], t["kind"], t["row_count"]) for t in tables] == [
        ("events", "events", result["table_rows"])
    ]


def test_fetch_errors_are_one_line(conversation: dict[str, Any]) -> None:
    assert "TableExistsError" in _error(conversation["fetch_again"])
    assert (
        "--replace" in conversation["fetch_again"][1] or "replace" in conversation["fetch_again"][1]
    )
    assert 'mode="replace"' in _error(conversation["fetch_again"])
    bad_dates = _error(conversation["bad_dates"])
    assert "ValidationError" in bad_dates
    # the tool's argument names, not the CLI's flags
    assert "invalid from_date '2024-02-30'" in bad_dates
    assert "--from" not in bad_dates


def test_which_event_had_the_most_unique_users_last_week(
    conversation: dict[str, Any], emulator: Any
) -> None:
    monday, _ = conversation["week"]
    users: dict[str, set[str]] = defaultdict(set)
    for record in _raw_events(emulator, [monday + timedelta(days=i) for i in range(7)]):
        distinct_id = record["properties"].get("distinct_id")
        if distinct_id is not None:
            users[record["event"]].add(distinct_id)
    expected = sorted(((e, len(u)) for e, u in users.items()), key=lambda x: (-x[1], x[0]))

    answer = _ok(conversation["unique_users"])
    assert answer["columns"] == ["event_name", "users"]
    assert [tuple(r) for r in answer["rows"]] == expected
    assert answer["row_count"] == len(expected)
    assert conversation["top_event"] == expected[0][0]


def test_large_results_are_capped_with_a_summary_first(conversation: dict[str, Any]) -> None:
    # 50 rows (--max-rows 50) of 500-character JSON cells are ~35 KB: the byte cap cuts rows.
    text = conversation["all_rows"][1]
    answer = _ok(conversation["all_rows"])
    fetched = _ok(conversation["fetch"])["table_rows"]
    assert len(text.encode()) <= 16_000
    assert list(answer)[:4] == ["row_count", "returned", "truncated", "note"]
    assert answer["row_count"] == fetched
    assert answer["truncated"] is True
    assert answer["byte_cap"] == 16_000
    kept = answer["returned"]
    assert kept == len(answer["rows"])
    assert 5 < kept < 50
    assert f"first {kept} of {fetched} rows: cut to stay under 16,000 bytes" in answer["note"]
    assert list(answer)[-1] == "rows"
    assert answer["columns"][: len(CORE)] == CORE
    for row in answer["rows"]:
        assert len(row[CORE.index("properties")]) <= 500 + len("…(+00000 chars)")


def test_fetch_profiles_after_sql(conversation: dict[str, Any], emulator: Any) -> None:
    profiles = emulator.project.profiles()
    result = _ok(conversation["fetch_profiles"])
    assert result["table"] == "profiles"
    assert result["table_rows"] == len(profiles)
    expected = len({p["$distinct_id"] for p in profiles})
    assert _ok(conversation["profiles_sql"])["rows"] == [[expected]]


def test_describe_table(conversation: dict[str, Any]) -> None:
    described = _ok(conversation["describe"])
    names = [c["name"] for c in described["columns"]]
    assert names[: len(CORE)] == CORE
    assert "mp_country_code" in names  # a typed property column (docs/typed-columns.md)
    assert described["row_count"] == _ok(conversation["fetch"])["table_rows"]
    assert described["sample"]["returned"] == 2


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_cases_are_refused(conversation: dict[str, Any], name: str) -> None:
    text = _error(conversation[f"refused_{name}"])
    assert text.startswith("ValidationError: ")
    assert "refused" in text or "exactly one SQL statement" in text
    assert not Path("/tmp/mcp-stolen.csv").exists()
    assert not Path("/tmp/mcp-other.duckdb").exists()


def test_database_unchanged_after_refusals(conversation: dict[str, Any]) -> None:
    counted = _ok(conversation["count_after_refusals"])
    assert counted["rows"] == [[_ok(conversation["fetch"])["table_rows"]]]


def test_unknown_table_names_the_tool_to_use(conversation: dict[str, Any]) -> None:
    assert "list_tables" in _error(conversation["missing_table"])


def test_live_segmentation_matches_the_raw_export(
    conversation: dict[str, Any], emulator: Any
) -> None:
    monday, sunday = conversation["week"]
    event = conversation["top_event"]
    tz = emulator.project.tz
    # Buckets are project-timezone days (contract §3.5), so read a day either side.
    users: dict[str, set[str]] = defaultdict(set)
    days = [monday + timedelta(days=i) for i in range(-1, 9)]
    for record in _raw_events(emulator, [d for d in days if d <= emulator.project.today]):
        props = record["properties"]
        local = datetime.fromtimestamp(props["time"], UTC).astimezone(tz).date()
        if record["event"] == event and monday <= local <= sunday:
            users[local.isoformat()].add(props["distinct_id"])
    answer = _ok(conversation["segmentation"])
    assert answer["summary"]["event"] == event
    assert answer["summary"]["type"] == "unique"
    by_day = {row[0]: row[2] for row in answer["rows"]}
    assert by_day == {
        (monday + timedelta(days=i)).isoformat(): len(
            users[(monday + timedelta(days=i)).isoformat()]
        )
        for i in range(7)
    }


def test_discovery_tools(conversation: dict[str, Any], emulator: Any) -> None:
    events = _ok(conversation["list_events"])
    assert conversation["top_event"] in events["events"]
    assert events["count"] == len(events["events"])
    funnels = _ok(conversation["list_funnels"])
    expected_ids = sorted(f["funnel_id"] for f in emulator.project.funnels())
    id_column = funnels["columns"].index("funnel_id")
    assert sorted(r[id_column] for r in funnels["rows"]) == expected_ids


def test_live_errors_are_one_line(conversation: dict[str, Any]) -> None:
    assert "ValidationError" in _error(conversation["bad_unit"])


def test_no_secret_and_no_traceback_reaches_the_agent(
    conversation: dict[str, Any], emulator: Any
) -> None:
    for key, value in conversation.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
            assert emulator.secret not in value[1], key
            assert "Traceback" not in value[1], key
    assert emulator.secret not in conversation["stderr"]
    assert "Traceback" not in conversation["stderr"]  # no tool crashed on the server either


def test_without_credentials_local_tools_work_and_live_tools_explain(
    conversation: dict[str, Any], tmp_path: Path
) -> None:
    db = conversation["db"]

    async def script(session: Any, call: Call) -> dict[str, Any]:
        return {
            "tables": await call("list_tables", {}),
            "sql": await call("run_sql", {"query": "SELECT count(*) FROM events"}),
            "events": await call("list_events", {}),
            "fetch": await call(
                "fetch_events", {"from_date": "2024-01-01", "to_date": "2024-01-02"}
            ),
            "slow": await call("run_sql", {"query": SLOW_SQL}),
            "after_slow": await call("run_sql", {"query": "SELECT 42 AS answer"}),
        }

    started = time.monotonic()
    out = run_session(
        server_env(tmp_path, db, None),
        tmp_path / "stderr.txt",
        script,
        # A limit generous enough that the quick queries finish on a busy 2-core
        # machine; SLOW_SQL (10^12 rows on one thread) still runs into it.
        options=("--sql-timeout", "5", "--threads", "1"),
    )
    assert time.monotonic() - started < 60
    assert _ok(out["tables"])["tables"][0]["name"] == "events"
    assert _ok(out["sql"])["rows"] == [[_ok(conversation["fetch"])["table_rows"]]]
    for key in ("events", "fetch"):
        text = _error(out[key])
        assert text.startswith("ConfigError: ")
        assert "MP_USERNAME" in text or "mp auth add" in text
    # `--sql-timeout` stops a runaway query; the server keeps serving.
    assert _error(out["slow"]) == (
        "ValidationError: query stopped at the 5 s time limit; "
        "add filters, aggregate, or query a smaller table"
    )
    assert _ok(out["after_slow"])["rows"] == [[42]]
