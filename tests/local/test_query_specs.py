"""Query specs: each report's parameters described once, and every door derived from them.

The live client, the local engine and the Workspace share the spec's signature; `mp query`'s
options are built from the fields; the MCP tools may offer fewer arguments but only spec
fields, with the spec's defaults (the exceptions are listed here, with their reason).
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import date
from typing import Any

import pytest
from typer.main import get_command

from mixpanel_data import ValidationError
from mixpanel_data._internal.services.live_query import LiveQueryService
from mixpanel_data._internal.services.local.funnels import saved_definition
from mixpanel_data._internal.services.local.reports import LocalQueryService
from mixpanel_data.cli.commands.query import app
from mixpanel_data.exceptions import MixpanelDataError
from mixpanel_data.mcp.server import MixpanelTools
from mixpanel_data.types import (
    SPECS,
    EventCountsQuery,
    FunnelQuery,
    PropertyCountsQuery,
    QuerySpec,
    RetentionQuery,
    SegmentationQuery,
)
from mixpanel_data.workspace import Workspace

_CLI_ONLY = {"local", "table", "fmt", "jq", "chart", "help"}
_MCP_ONLY = {"local", "max_rows", "length_days"}  # length_days: length in days, for agents
_MCP_DEFAULTS = {("retention", "interval_count"): 7}  # a week of returns is a useful first look
_MCP_TOOLS = {
    "segmentation": SegmentationQuery,
    "funnel": FunnelQuery,
    "retention": RetentionQuery,
    "event_counts": EventCountsQuery,
    "property_counts": PropertyCountsQuery,
}


def _fields(spec: type[QuerySpec[Any]]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(spec)}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.report)
def test_live_local_and_workspace_share_the_spec_signature(spec: type[QuerySpec[Any]]) -> None:
    own = inspect.signature(spec)
    for engine in (LiveQueryService, LocalQueryService, Workspace):
        sig = inspect.signature(getattr(engine, spec.report))
        assert list(sig.parameters.values())[1:] == list(own.parameters.values())
        params = list(sig.parameters.values())[1:]
        # keyword-only, except the report's subject (event, funnel id, ...)
        assert all(
            p.kind is inspect.Parameter.KEYWORD_ONLY
            for p in params
            if p.name not in ("event", "events", "property", "funnel_id")
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.report)
def test_cli_options_are_the_spec_fields(spec: type[QuerySpec[Any]]) -> None:
    group = get_command(app)
    command = group.commands[spec.command]  # type: ignore[attr-defined]
    params = {p.name: p for p in command.params if p.name not in _CLI_ONLY}
    if spec is FunnelQuery:
        assert params.pop("window").help.startswith("Conversion window as 7d")
    fields = _fields(spec)
    assert set(params) == set(fields)
    for name, param in params.items():
        meta = fields[name].metadata
        if meta["flags"]:
            assert param.param_type_name == "option"
            assert set(param.opts) | set(param.secondary_opts) == set(meta["flags"])
            assert param.help == meta["cli_help"]
        else:
            assert param.param_type_name == "argument"
        default = fields[name].default
        if name not in ("from_date", "to_date") and default is not dataclasses.MISSING:
            assert param.default == default, name
    assert command.help == spec.cli_doc


@pytest.mark.parametrize("tool", sorted(_MCP_TOOLS))
def test_mcp_tool_arguments_are_spec_fields(tool: str) -> None:
    spec = _MCP_TOOLS[tool]
    fields = _fields(spec)
    sig = inspect.signature(getattr(MixpanelTools, tool))
    for name, param in list(sig.parameters.items())[1:]:
        if name in _MCP_ONLY:
            continue
        assert name in fields, f"{tool}({name}) is not a field of {spec.__name__}"
        want = _MCP_DEFAULTS.get((tool, name), fields[name].default)
        if param.default is inspect.Parameter.empty:
            assert name in ("from_date", "to_date") or want is dataclasses.MISSING
        else:
            assert param.default == want, f"{tool}({name})"


def test_a_spec_is_checked_once_and_frozen() -> None:
    spec = SegmentationQuery(
        "Login", from_date="2024-01-01", to_date="2024-01-31", on="plan", unit="DAY"
    )
    assert (spec.start, spec.end) == (date(2024, 1, 1), date(2024, 1, 31))
    assert spec.on == 'properties["plan"]'
    assert spec.unit == "day"
    assert spec.to_dict()["from_date"] == "2024-01-01"
    assert spec.to_dict()["report"] == "segmentation"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.event = "Purchase"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="swap them"):
        SegmentationQuery("Login", from_date="2024-02-01", to_date="2024-01-31")
    with pytest.raises(ValidationError, match="not both"):
        FunnelQuery(7, steps=["A", "B"], from_date="2024-01-01", to_date="2024-01-02")
    with pytest.raises(ValidationError, match="90 days"):
        FunnelQuery(7, length=91, from_date="2024-01-01", to_date="2024-01-02")
    with pytest.raises(ValidationError, match="interval"):
        EventCountsQuery(["Login"])


def test_run_refuses_what_is_not_a_spec() -> None:
    local = LocalQueryService(storage=None, timezone="UTC")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="query spec"):
        local.run({"event": "Login"})  # type: ignore[arg-type]


def _funnel_params(**behavior: Any) -> dict[str, Any]:
    steps = [{"type": "event", "name": n, "filters": []} for n in ("A", "B")]
    base = {
        "type": "funnel",
        "behaviors": steps,
        "conversionWindowDuration": 2,
        "conversionWindowUnit": "week",
        "funnelOrder": "loose",
        "exclusions": [],
    }
    show = [{"behavior": {**base, **behavior}, "measurement": {"math": "conversion_rate_unique"}}]
    return {"sections": {"show": show, "filter": []}}


def test_a_saved_definition_gives_steps_and_window() -> None:
    saved = saved_definition(9, _funnel_params())
    assert saved.steps == ("A", "B")
    assert saved.window == 14 * 86400


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"behaviors": [{"type": "custom-event", "id": 3, "name": "X"}] * 2}, "custom-event step"),
        ({"behaviors": [{"type": "event", "name": "A", "filters": [{"p": 1}]}] * 2}, "filters"),
        ({"exclusions": [{"name": "C"}]}, "excludes"),
        ({"funnelOrder": "any"}, "any order"),
        ({"conversionWindowUnit": "session"}, "'session'"),
    ],
)
def test_a_saved_definition_the_engine_cannot_reproduce_is_refused(
    change: dict[str, Any], needle: str
) -> None:
    with pytest.raises(MixpanelDataError, match=needle) as exc:
        saved_definition(9, _funnel_params(**change))
    assert "\n" not in exc.value.message
    assert "run it live" in exc.value.message
