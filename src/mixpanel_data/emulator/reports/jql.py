"""JQL (legacy, maintenance mode): ``POST /jql`` runs the script for real (contract §13).

The script runs in QuickJS, a small embedded JavaScript engine, on top of
Underscore.js (the ``_`` global the JQL guide's examples use) and ``jql_runtime.js``
(Events, People, join, filter/map/groupBy/groupByUser/reduce, the ``mixpanel.reducer``
functions and the ``mixpanel.*`` helpers the guide documents). Each ``Events()``
query gets its rows from Python once, as one JSON string, already narrowed by dates
and ``event_selectors`` (whose ``selector`` is the segmentation expression language).
Each request gets a fresh engine with a time and a memory limit. Script errors are HTTP 412
``UserVisiblePreconditionFailedError: Uncaught exception ...`` as Mixpanel sends them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from typing import Any, Final

import orjson
import quickjs

from mixpanel_data.emulator.expressions import ExpressionError, compile_filter
from mixpanel_data.emulator.reports.dataset import Dataset, Event, dataset_for
from mixpanel_data.emulator.reports.params import bad, opt_str, parse_date, req_str, today
from mixpanel_data.emulator.responses import JSON, Reply
from mixpanel_data.emulator.routing import ApiRequest, EmulatorError, query_route

__all__ = ["TIME_LIMIT_SECONDS", "run_script"]

TIME_LIMIT_SECONDS: Final = 30.0  # per run of main(); Mixpanel allows 2 minutes in all
MAX_QUERIES: Final = 20  # distinct Events()/People() queries one script may make
MEMORY_LIMIT_BYTES: Final = 1 << 30
_RUNTIME: Final = resources.files(__package__).joinpath("jql_runtime.js").read_text("utf-8")
# Underscore.js (MIT, vendored from npm): the ``_`` global JQL scripts use, e.g. ``_.map``.
_UNDERSCORE: Final = resources.files(__package__).joinpath("underscore.js").read_text("utf-8")
_INTERNAL: Final = frozenset({"time", "distinct_id"})


class ScriptError(Exception):
    """The script failed: the JavaScript exception's text (message, then stack)."""


def _date_arg(value: Any, name: str) -> date:
    if not isinstance(value, str) or len(value) < 10:
        raise ValueError(f"Events() {name} must be a date like 2024-01-31, got {value!r}")
    try:
        return parse_date(value[:10], name)
    except EmulatorError as exc:
        raise ValueError(f"Events() {exc.message}") from None


def _event_json(e: Event) -> dict[str, Any]:
    props = {k: v for k, v in e.props.items() if k not in _INTERNAL}
    return {
        "name": e.name,
        "distinct_id": e.distinct_id,
        "time": round(e.ts * 1000),
        "sampling_factor": 1,
        "properties": props,
    }


def _events(data: Dataset, project: Any, query: dict[str, Any]) -> list[dict[str, Any]]:
    first = _date_arg(query.get("from_date"), "from_date")
    last = _date_arg(query.get("to_date"), "to_date")
    if last > today(project):
        raise ValueError("Events() to_date cannot be later than today")
    selectors = query.get("event_selectors")
    if not selectors:
        return [_event_json(e) for e in data.between(first, last)]
    if not isinstance(selectors, list):
        raise ValueError("Events() event_selectors must be an array")
    compiled = []
    for sel in selectors:
        if not isinstance(sel, dict):
            raise ValueError("each event selector must be an object like {event: 'Purchase'}")
        text = sel.get("selector")
        try:
            keep = compile_filter(text) if isinstance(text, str) and text.strip() else None
        except ExpressionError as exc:
            raise ValueError(f"invalid selector {text!r}: {exc}") from None
        compiled.append((sel.get("event"), keep))
    rows = []
    for e in data.between(first, last):
        for name, keep in compiled:
            if (name is None or name == e.name) and (keep is None or keep(e.props)):
                rows.append(_event_json(e))
                break
    return rows


def _user_selectors(query: dict[str, Any]) -> list[Any] | None:
    """``People({user_selectors: [{selector: '...'}]})``: a profile matching any selector."""
    selectors = query.get("user_selectors")
    if not selectors:
        return None
    if not isinstance(selectors, list):
        raise ValueError("People() user_selectors must be an array")
    compiled = []
    for sel in selectors:
        if not isinstance(sel, dict):
            raise ValueError("each user selector must be an object like {selector: '...'}")
        text = sel.get("selector")
        if not isinstance(text, str) or not text.strip():
            return None  # a selector without an expression selects everyone
        try:
            compiled.append(compile_filter(text))
        except ExpressionError as exc:
            raise ValueError(f"invalid selector {text!r}: {exc}") from None
    return compiled


def _people(data: Dataset, query: dict[str, Any]) -> list[dict[str, Any]]:
    keep = _user_selectors(query)
    rows = []
    for distinct_id, props in sorted(data.profiles.items()):
        if keep is not None and not any(k(props) for k in keep):
            continue
        seen = props.get("$last_seen")
        try:
            when = datetime.fromisoformat(str(seen)).replace(tzinfo=UTC).timestamp() * 1000
        except ValueError:
            when = 0
        rows.append(
            {
                "distinct_id": distinct_id,
                "time": int(when),
                "last_seen": int(when),
                "properties": props,
            }
        )
    return rows


def _plain(value: Any) -> Any:
    """JSON for values orjson refuses (e.g. float subclasses): the plain number or text."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return str(value)


def _rows(data: Dataset, project: Any, key: str) -> bytes:
    """The rows for one Events()/People() query, or ``{"error"}`` (JS rethrows it)."""
    try:
        source, query = orjson.loads(key)
        rows = _events(data, project, query) if source == "events" else _people(data, query)
        return orjson.dumps({"rows": rows}, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)
    except (ValueError, TypeError) as exc:
        return orjson.dumps({"error": str(exc)})


def run_script(project: Any, script: str, params: Any) -> bytes:
    """Run a JQL script over the project's events; the JSON array it emits, as bytes.

    QuickJS cannot call Python under a time limit, so ``main()`` is replayed: each
    run that meets a query without rows stops, Python loads those rows, and the
    next run gets further (one extra run per distinct query, MAX_QUERIES at most).
    """
    data = dataset_for(project)
    ctx = quickjs.Context()
    ctx.set_time_limit(TIME_LIMIT_SECONDS)
    ctx.set_memory_limit(MEMORY_LIMIT_BYTES)
    ctx.eval(_UNDERSCORE)
    ctx.eval(_RUNTIME)
    ctx.set("__mp_params_json", orjson.dumps(params).decode())
    ctx.eval("var params = JSON.parse(__mp_params_json);")
    try:
        ctx.eval(script)
        for _ in range(MAX_QUERIES + 1):
            out = ctx.eval("__mp_run()")
            if isinstance(out, str):
                return out.encode()
            key = ctx.eval("__mp_need")
            if not isinstance(key, str):
                return b"[]"
            ctx.set("__mp_rows_json", _rows(data, project, key).decode())
            ctx.set("__mp_rows_key", key)
            ctx.eval("__mp_store(__mp_rows_key, __mp_rows_json)")
    except quickjs.JSException as exc:
        raise ScriptError(str(exc)) from None
    raise ScriptError(f"Error: the script made more than {MAX_QUERIES} different queries")


def _precondition_failed(text: str) -> EmulatorError:
    """The 412 envelope text JMF's fixture models on real responses (contract §13)."""
    message, _, stack = text.partition("\n")
    if message == "InternalError: interrupted":
        message = f"InternalError: script exceeded the {TIME_LIMIT_SECONDS:g} s time limit"
    stack_lines = [line.strip() for line in stack.splitlines() if line.strip()]
    trace = "\n".join(stack_lines) or "(no stack)"
    prefix = "UserVisiblePreconditionFailedError: Uncaught exception"
    return EmulatorError(412, f"{prefix} {message}\n\nStack trace:\n{trace}")


@query_route("jql")
def jql(req: ApiRequest) -> Reply:
    """Run ``script`` with the ``params`` global and return what ``main()`` emits."""
    script = req_str(req, "script", what="JavaScript source defining main()")
    raw_params = opt_str(req, "params")
    try:
        params = orjson.loads(raw_params) if raw_params is not None else {}
    except orjson.JSONDecodeError:
        raise bad("Error in params: expected a JSON object") from None
    try:
        body = run_script(req.project, script, params)
    except ScriptError as exc:
        raise _precondition_failed(str(exc)) from None
    return Reply(status=200, body=[body], content_type=JSON, length=len(body))
