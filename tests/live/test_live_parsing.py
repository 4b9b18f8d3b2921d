"""Every example shape of contract §6–§14 (and the quirks of §15) through the client.

A `httpx.MockTransport` answers with the contract's JSON; the tests check both what the
client sent (parameters exactly as the real API expects) and the typed results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixpanel_data import (
    NotFoundError,
    QueryError,
    ValidationError,
    Workspace,
)
from mixpanel_data._internal.config import Credentials
from mixpanel_data._internal.results.live import parse_series
from mixpanel_data._internal.services.params import to_expression

Body = Any | Callable[[httpx.Request], httpx.Response]


class FakeMixpanel:
    """Routes `/api/query/<ep>` and the App API to canned contract bodies; logs requests."""

    def __init__(self, routes: dict[str, Body]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        key = path.removeprefix("/api/query/") if path.startswith("/api/query/") else path
        if key.startswith("/api/app/projects/"):
            key = "bookmarks"
        body = self.routes.get(key)
        if body is None:
            return httpx.Response(400, json={"request": path, "error": "Invalid API endpoint"})
        if callable(body):
            return body(request)
        return httpx.Response(200, json=body)

    def params(self, i: int = -1) -> dict[str, str]:
        return dict(self.requests[i].url.params)


def workspace(routes: dict[str, Body]) -> tuple[Workspace, FakeMixpanel]:
    fake = FakeMixpanel(routes)
    creds = Credentials(
        username="sa.abc123.mp-service-account",
        secret="s3cret",
        project_id="12345",
        base_url="http://mixpanel.test",
        timezone="America/Los_Angeles",
    )
    return Workspace(credentials=creds, transport=httpx.MockTransport(fake)), fake


# -- §6 discovery ----------------------------------------------------------------------------


def test_event_names_ask_for_the_whole_history_and_retry_the_history_gate() -> None:
    calls: list[dict[str, str]] = []

    def names(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.url.params))
        if len(calls) == 1:
            return httpx.Response(
                403,
                json={
                    "request": "/api/query/events/names",
                    "error": "Date range exceeds 180 days into the past",
                },
            )
        return httpx.Response(200, json=["battle", "click signup button", "View homepage"])

    ws, _ = workspace({"events/names": names})
    assert ws.events() == ["battle", "click signup button", "View homepage"]
    first, second = calls
    assert first["from_date"] == "2000-01-01"
    assert first["limit"] == "5000"
    assert first["type"] == "general"
    assert first["project_id"] == "12345"
    span = date.fromisoformat(second["to_date"]) - date.fromisoformat(second["from_date"])
    assert span.days == 179  # an inclusive 180-day window
    # Cached: no third call.
    assert ws.events() == ["battle", "click signup button", "View homepage"]
    assert len(calls) == 2
    ws.clear_discovery_cache()
    ws.events()
    assert len(calls) == 3
    assert calls[2]["from_date"] == second["from_date"]  # the learned window is kept


def test_event_names_other_403_is_a_query_error() -> None:
    ws, _ = workspace(
        {
            "events/names": lambda r: httpx.Response(
                403, json={"request": "x", "error": "Plan does not allow this"}
            )
        }
    )
    with pytest.raises(QueryError, match="Plan does not allow"):
        ws.events()


def test_top_events_are_never_cached() -> None:
    body = {
        "events": [
            {"amount": 2, "event": "funnel", "percent_change": -0.35635745999582824},
            {"amount": 75, "event": "pages", "percent_change": 1},
        ],
        "type": "unique",
    }
    ws, fake = workspace({"events/top": body})
    top = ws.top_events(type="unique", limit=2)
    assert [(e.event, e.amount, e.percent_change) for e in top] == [
        ("funnel", 2, -0.35635745999582824),
        ("pages", 75, 1.0),
    ]
    ws.top_events(type="unique", limit=2)
    assert len(fake.requests) == 2
    assert fake.params() == {"type": "unique", "limit": "2", "project_id": "12345"}


def test_property_names_tolerate_missing_counts_and_are_sorted() -> None:
    body = {"user type": {"count": 91}, "ad version": {"count": 295}, "$duration_s": {}}
    ws, fake = workspace({"events/properties/top": body})
    assert ws.properties("Signup") == ["$duration_s", "ad version", "user type"]
    params = fake.params()
    assert params["event"] == "Signup"
    assert int(params["limit"]) > 10


def test_property_values_are_strings_in_server_order() -> None:
    ws, fake = workspace({"events/properties/values": ["cat", "dog", 3, 2.0, True, "gecko"]})
    assert ws.property_values("pet", event="Adopt", limit=6) == [
        "cat",
        "dog",
        "3",
        "2",
        "true",
        "gecko",
    ]
    assert fake.params()["name"] == "pet"
    assert fake.params()["event"] == "Adopt"


def test_event_counts_send_a_json_array_and_fill_absent_zero_buckets() -> None:
    body = {
        "data": {
            "series": ["2010-05-29", "2010-05-30", "2010-05-31"],
            "values": {
                "account-page": {"2010-05-30": 1},
                "splash features": {"2010-05-29": 6, "2010-05-30": 4, "2010-05-31": 5},
            },
        },
        "legend_size": 2,
    }
    ws, fake = workspace({"events": body})
    r = ws.event_counts(
        ["account-page", "splash features"], from_date="2010-05-29", to_date="2010-05-31"
    )
    assert json.loads(fake.params()["event"]) == ["account-page", "splash features"]
    assert r.values["account-page"] == {"2010-05-29": 0, "2010-05-30": 1, "2010-05-31": 0}
    assert r.legend_size == 2
    df = r.df
    assert len(df) == 6
    assert df[df.event == "splash features"]["value"].sum() == 15
    assert str(df["date"].dtype).startswith("datetime64")


def test_property_counts_legend_size_is_the_servers() -> None:
    body = {
        "data": {"series": ["2024-01-01", "2024-01-02"], "values": {"pro": {"2024-01-02": 3}}},
        "legend_size": 2,
    }
    ws, fake = workspace({"events/properties": body})
    r = ws.property_counts(
        "Purchase", "plan", from_date="2024-01-01", to_date="2024-01-02", values=["pro", "free"]
    )
    assert json.loads(fake.params()["values"]) == ["pro", "free"]
    assert fake.params()["name"] == "plan"
    assert r.legend_size == 2
    assert r.values == {"pro": {"2024-01-01": 0, "2024-01-02": 3}}


# -- §7 funnels ------------------------------------------------------------------------------

STEPS = [
    {
        "count": 32688,
        "avg_time": None,
        "avg_time_from_start": None,
        "step_conv_ratio": 1,
        "goal": "App Open",
        "overall_conv_ratio": 1,
        "event": "App Open",
        "step_label": "App Open",
    },
    {
        "count": 20524,
        "avg_time": 133,
        "avg_time_from_start": 133,
        "step_conv_ratio": 0.627875673029858,
        "goal": "Game Played",
        "overall_conv_ratio": 0.627875673029858,
        "event": "Game Played",
    },
    {
        "count": 0,
        "avg_time": None,
        "avg_time_from_start": None,
        "step_conv_ratio": 0,
        "goal": "$custom_event:1234",
        "overall_conv_ratio": 0,
        "event": "$custom_event:1234",
        "custom_event": True,
        "custom_event_id": 1234,
        "step_label": "Purchase (custom)",
    },
]
ANALYSIS = {"completion": 0, "starting_amount": 32688, "steps": 3, "worst": 2}


def test_funnel_asks_for_the_range_as_one_bucket() -> None:
    body = {
        "meta": {"dates": ["2016-09-12"]},
        "data": {"2016-09-12": {"steps": STEPS, "analysis": ANALYSIS}},
    }
    ws, fake = workspace({"funnels": body})
    r = ws.funnel(7509, from_date="2016-09-12", to_date="2016-09-25")
    p = fake.params()
    assert p["funnel_id"] == "7509"
    assert p["interval"] == "14"
    assert "unit" not in p
    assert [s.count for s in r.steps] == [32688, 20524, 0]
    assert r.steps[0].avg_time is None
    assert r.steps[1].avg_time == 133
    assert r.steps[2].custom_event_id == "1234"
    assert r.steps[2].step_label == "Purchase (custom)"
    assert r.conversion_rate == 0.0
    assert r.segments == {}
    assert len(fake.requests) == 1
    df = r.df
    assert list(df["step"]) == [1, 2, 3]
    assert list(df["segment"]) == ["$overall"] * 3


def test_segmented_funnel_both_forms_and_per_bucket_results() -> None:
    chrome = [dict(STEPS[0], count=20000), dict(STEPS[1], count=12000)]
    firefox = [dict(STEPS[0], count=12688), dict(STEPS[1], count=8524)]
    overall = STEPS[:2]
    totals = {"data": {"2024-01-01": {"$overall": overall, "Chrome": chrome, "Firefox": firefox}}}
    by_day = {
        "data": {
            "$overall": {"steps": overall},  # Singer skips this data-level key (§7.2)
            "2024-01-02": {"steps": overall, "analysis": ANALYSIS, "Chrome": {"steps": chrome}},
            "2024-01-01": {"steps": overall, "analysis": ANALYSIS},
        }
    }
    replies = iter([totals, by_day])
    ws, fake = workspace({"funnels": lambda r: httpx.Response(200, json=next(replies))})
    r = ws.funnel(1, from_date="2024-01-01", to_date="2024-01-02", unit="day", on="$browser")
    totals_params, bucket_params = fake.params(0), fake.params(1)
    assert totals_params["interval"] == "2"
    assert "unit" not in totals_params
    assert bucket_params["unit"] == "day"
    assert "interval" not in bucket_params
    assert bucket_params["on"] == 'properties["$browser"]'
    assert [s.count for s in r.steps] == [32688, 20524]
    assert list(r.segments) == ["Chrome", "Firefox"]
    assert [s.count for s in r.segments["Firefox"]] == [12688, 8524]
    assert list(r.buckets) == ["2024-01-01", "2024-01-02"]
    assert set(r.buckets["2024-01-02"]) == {"$overall", "Chrome"}
    assert len(r.df) == 2 + 2 + 2


def test_funnel_refuses_unit_and_interval_together_without_a_call() -> None:
    ws, fake = workspace({})
    with pytest.raises(ValidationError):
        ws.funnel(1, from_date="2024-01-01", to_date="2024-01-02", unit="day", interval=2)
    assert fake.requests == []


def test_unknown_funnel_on_an_ambiguous_400_is_not_found() -> None:
    ws, _ = workspace(
        {
            "funnels": lambda r: httpx.Response(
                400, json={"request": "/api/query/funnels", "error": "invalid funnel_id"}
            ),
            "funnels/list": [{"funnel_id": 7509, "name": "Signup funnel"}],
        }
    )
    with pytest.raises(NotFoundError, match="funnel 999") as exc:
        ws.funnel(999, from_date="2024-01-01", to_date="2024-01-02")
    assert exc.value.exit_code == 4
    # A known funnel with a 400 keeps the server's own error.
    with pytest.raises(QueryError, match="invalid funnel_id") as exc2:
        ws.funnel(7509, from_date="2024-01-01", to_date="2024-01-02")
    assert not isinstance(exc2.value, NotFoundError)


def test_funnels_list_sorted_by_name() -> None:
    ws, _ = workspace(
        {
            "funnels/list": [
                {"funnel_id": 7509, "name": "Signup funnel"},
                {"funnel_id": 9070, "name": "Another funnel"},
            ]
        }
    )
    assert [(f.funnel_id, f.name) for f in ws.funnels()] == [
        (9070, "Another funnel"),
        (7509, "Signup funnel"),
    ]


# -- §8 cohorts -------------------------------------------------------------------------------


def test_cohorts_list_is_a_post_and_keeps_group_ids_as_strings() -> None:
    rows = [
        {
            "count": 150,
            "is_visible": 1,
            "description": "This cohort is visible.",
            "created": "2019-03-19 23:49:51",
            "project_id": 1,
            "id": 1000,
            "name": "Cohort One",
            "data_group_id": None,
        },
        {
            "count": 3,
            "is_visible": 0,
            "id": 7,
            "name": "accounts",
            "data_group_id": -1405123841946871899,
        },
    ]
    ws, fake = workspace({"cohorts/list": rows})
    found = ws.cohorts()
    assert fake.requests[0].method == "POST"
    assert [c.name for c in found] == ["accounts", "Cohort One"]
    assert found[0].data_group_id == "-1405123841946871899"
    assert found[0].is_visible is False
    assert found[1].created == "2019-03-19 23:49:51"
    assert found[1].count == 150


# -- §9 segmentation family ---------------------------------------------------------------------


def test_segmentation_unordered_series_and_bare_on_property() -> None:
    body = {
        "data": {
            "series": ["2011-08-08", "2011-08-09", "2011-08-06", "2011-08-07"],
            "values": {
                "signed up": {
                    "2011-08-06": 147,
                    "2011-08-07": 146,
                    "2011-08-08": 776,
                    "2011-08-09": 1376,
                }
            },
        },
        "legend_size": 1,
    }
    ws, fake = workspace({"segmentation": body})
    r = ws.segmentation("signed up", from_date="2011-08-06", to_date="2011-08-09", unit="DAY")
    assert r.series == ("2011-08-06", "2011-08-07", "2011-08-08", "2011-08-09")
    assert r.total == 147 + 146 + 776 + 1376
    assert fake.params()["unit"] == "day"
    assert fake.params()["type"] == "general"
    assert "on" not in fake.params()
    ws.segmentation("x", from_date="2011-08-06", to_date="2011-08-09", on="user type")
    assert fake.params()["on"] == 'properties["user type"]'
    expr = 'string(properties["plan"]) + "-" + properties["$os"]'
    ws.segmentation("x", from_date="2011-08-06", to_date="2011-08-09", on=expr, where="1 == 1")
    assert fake.params()["on"] == expr
    assert fake.params()["where"] == "1 == 1"


def test_segmentation_numeric_bucket_labels() -> None:
    body = {
        "data": {
            "series": ["2011-08-08", "2011-08-09"],
            "values": {
                "2,000 - 2,100": {"2011-08-08": 1, "2011-08-09": 0},
                "2,100 - 2,200": {"2011-08-09": 3},
            },
        },
        "legend_size": 2,
    }
    ws, fake = workspace({"segmentation/numeric": body})
    r = ws.segmentation_numeric("buy", from_date="2011-08-08", to_date="2011-08-09", on="amount")
    assert fake.params()["on"] == 'properties["amount"]'
    assert r.values == {
        "2,100 - 2,200": {"2011-08-08": 0, "2011-08-09": 3},
        "2,000 - 2,100": {"2011-08-08": 1, "2011-08-09": 0},
    }


def test_segmentation_sum_and_average_optional_keys() -> None:
    ws, _fake = workspace(
        {
            "segmentation/sum": {
                "status": "ok",
                "computed_at": "2019-10-07T23:02:11.666218+00:00",
                "results": {"2019-10-07": 4, "2019-10-06": 7},
            },
            "segmentation/average": {
                "results": {"2011-08-06": 8.64705882352939, "2011-08-07": 4.640625},
                "status": "ok",
            },
        }
    )
    s = ws.segmentation_sum("buy", from_date="2019-10-06", to_date="2019-10-07", on="price")
    assert list(s.results.items()) == [("2019-10-06", 7), ("2019-10-07", 4)]
    assert s.computed_at == "2019-10-07T23:02:11.666218+00:00"
    a = ws.segmentation_average("buy", from_date="2011-08-06", to_date="2011-08-07", on="price")
    assert a.computed_at is None
    assert a.results["2011-08-06"] == pytest.approx(8.647, abs=1e-3)
    assert list(a.df["value"]) == [8.64705882352939, 4.640625]


# -- §10 retention and frequency ----------------------------------------------------------------


def test_retention_params_and_cohorts() -> None:
    body = {
        "2012-01-01": {"counts": [2, 1, 2], "first": 2},
        "2012-01-02": {"counts": [9, 7, 6], "first": 10},
        "2012-01-03": {"counts": [6, 4, 3], "first": 7},
    }
    ws, fake = workspace({"retention": body})
    r = ws.retention(
        born_event="Sign Up",
        event="Login",
        from_date="2012-01-01",
        to_date="2012-01-03",
        interval=7,
        interval_count=3,
    )
    p = fake.params()
    assert p["interval"] == "7"
    assert "unit" not in p
    assert p["interval_count"] == "3"
    assert p["retention_type"] == "birth"
    assert "unbounded_retention" not in p
    assert [(c.date, c.size, c.counts) for c in r.cohorts] == [
        ("2012-01-01", 2, (2, 1, 2)),
        ("2012-01-02", 10, (9, 7, 6)),
        ("2012-01-03", 7, (6, 4, 3)),
    ]
    assert r.cohorts[1].rates == (0.9, 0.7, 0.6)
    assert len(r.df) == 9


def test_retention_refuses_unit_and_interval_together() -> None:
    ws, fake = workspace({})
    with pytest.raises(ValidationError, match="not both"):
        ws.retention(
            born_event="a", from_date="2024-01-01", to_date="2024-01-02", unit="day", interval=1
        )
    assert fake.requests == []


def test_retention_segmented_by_segment_first() -> None:
    body = {
        "Chrome": {"2024-01-01": {"counts": [3, 1], "first": 3}},
        "$overall": {"2024-01-01": {"counts": [5, 2], "first": 5}},
    }
    ws, fake = workspace({"retention": body})
    r = ws.retention(born_event="a", from_date="2024-01-01", to_date="2024-01-01", on="$browser")
    assert fake.params()["on"] == 'properties["$browser"]'
    assert r.cohorts[0].counts == (5, 2)
    assert r.segments["Chrome"][0].counts == (3, 1)


def test_frequency_arrays() -> None:
    day1 = [305, 107, 60, 41, 32, 20, 12, 7, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    body = {"data": {"2012-01-02": day1[:], "2012-01-01": day1}}
    ws, fake = workspace({"retention/addiction": body})
    r = ws.frequency(from_date="2012-01-01", to_date="2012-01-02", event="Login")
    assert fake.params()["addiction_unit"] == "hour"
    assert fake.params()["unit"] == "day"
    assert list(r.data) == ["2012-01-01", "2012-01-02"]
    assert len(r.data["2012-01-01"]) == 24
    assert r.df[r.df.at_least == 2]["users"].tolist() == [107, 107]


# -- §11 stream ------------------------------------------------------------------------------------


def test_activity_feed_accepts_both_distinct_id_keys() -> None:
    body = {
        "status": "ok",
        "results": {
            "events": [
                {
                    "event": "Game Played",
                    "properties": {
                        "time": 1599589453,
                        "$distinct_id": "u1",
                        "$browser": "Chrome",
                        "$city": "Austin",
                    },
                },
                {
                    "event": "Level Complete",
                    "properties": {"time": 1599589400, "distinct_id": "u1"},
                },
            ]
        },
    }
    ws, fake = workspace({"stream/query": body})
    r = ws.activity_feed(["u1"], from_date="2020-09-01", to_date="2020-09-30")
    assert json.loads(fake.params()["distinct_ids"]) == ["u1"]
    assert [(e.event, e.distinct_id, e.time) for e in r.events] == [
        ("Level Complete", "u1", 1599589400),
        ("Game Played", "u1", 1599589453),
    ]
    assert str(r.df["time"].iloc[0]) == "2020-09-08 18:23:20+00:00"


def test_activity_feed_always_sends_a_window() -> None:
    ws, fake = workspace({"stream/query": {"status": "ok", "results": {"events": []}}})
    ws.activity_feed(["a", "b"])
    p = fake.params()
    span = date.fromisoformat(p["to_date"]) - date.fromisoformat(p["from_date"])
    assert span.days == 364


# -- §12 saved reports and flows ------------------------------------------------------------


def test_insights_report() -> None:
    body = {
        "computed_at": "2020-09-21T16:35:41.252314+00:00",
        "date_range": {
            "from_date": "2020-08-31T00:00:00-07:00",
            "to_date": "2020-09-12T23:59:59.999000-07:00",
        },
        "headers": ["$event"],
        "series": {
            "Logged in": {"2020-08-31T00:00:00-07:00": 9852, "2020-09-07T00:00:00-07:00": 4325},
            "Viewed page": {"2020-08-31T00:00:00-07:00": 10},
        },
        "meta": {"is_cached": True},
    }
    ws, fake = workspace({"insights": body})
    r = ws.saved_report(123)
    assert fake.params()["bookmark_id"] == "123"
    assert r.report_type == "insights"
    assert r.from_date == "2020-08-31T00:00:00-07:00"
    assert r.rows == [
        {
            "metric": "Logged in",
            "date": "2020-08-31T00:00:00-07:00",
            "segment": None,
            "value": 9852,
        },
        {
            "metric": "Logged in",
            "date": "2020-09-07T00:00:00-07:00",
            "segment": None,
            "value": 4325,
        },
        {
            "metric": "Viewed page",
            "date": "2020-08-31T00:00:00-07:00",
            "segment": None,
            "value": 10,
        },
    ]


def test_funnel_and_retention_bookmarks_through_insights() -> None:
    funnel = {
        "headers": ["$funnel"],
        "series": {
            "count": {"1. sign up": {"all": 6030}, "2. purchase": {"all": 1200}},
            "overall_conv_ratio": {"1. sign up": {"all": 1}, "2. purchase": {"all": 0.199}},
            "avg_time": {"1. sign up": {"all": None}, "2. purchase": {"all": 3600}},
        },
    }
    retention = {
        "headers": ["$retention"],
        "series": {
            "Retention": {
                "2024-03-18T00:00:00": {
                    "$overall": {"first": 10, "counts": [10, 4, 2], "rates": [1, 0.4, 0.2]},
                    "Chrome": {"first": 6, "counts": [6, 3, 1], "rates": [1, 0.5, 0.1667]},
                }
            }
        },
    }
    replies = iter([funnel, retention])
    ws, _ = workspace({"insights": lambda r: httpx.Response(200, json=next(replies))})
    f = ws.saved_report(1)
    assert f.report_type == "funnel"
    assert f.rows == [
        {
            "step": "1. sign up",
            "segment": "all",
            "count": 6030,
            "overall_conv_ratio": 1,
            "avg_time": None,
        },
        {
            "step": "2. purchase",
            "segment": "all",
            "count": 1200,
            "overall_conv_ratio": 0.199,
            "avg_time": 3600,
        },
    ]
    r = ws.saved_report(2)
    assert r.report_type == "retention"
    chrome = [row for row in r.rows if row["segment"] == "Chrome"]
    assert [(x["bucket"], x["count"], x["rate"]) for x in chrome] == [
        (0, 6, 1.0),
        (1, 3, 0.5),
        (2, 1, 0.1667),
    ]
    assert {row["cohort_size"] for row in r.rows if row["segment"] == "$overall"} == {10}


FLOWS = {
    "computed_at": "2024-01-01T00:00:00+00:00",
    "steps": [
        {
            "nodes": [
                {
                    "event": "Sign Up",
                    "type": "ANCHOR",
                    "totalCount": "123",
                    "edges": [{"event": "Login", "totalCount": "80"}],
                }
            ]
        },
        {
            "nodes": [
                {"event": "Login", "type": "NORMAL", "totalCount": "80"},
                {"event": "$dropoff", "type": "DROPOFF", "totalCount": "43"},
            ]
        },
    ],
    "breakdowns": [],
    "overallConversionRate": 0.15,
    "metadata": {"min_sampling_factor": 1},
}


def test_flows_string_counts() -> None:
    ws, fake = workspace({"arb_funnels": FLOWS})
    r = ws.flows(55)
    assert fake.params()["query_type"] == "flows_sankey"
    assert [(n.step, n.event, n.type, n.total_count) for n in r.nodes] == [
        (1, "Sign Up", "ANCHOR", 123),
        (2, "Login", "NORMAL", 80),
        (2, "$dropoff", "DROPOFF", 43),
    ]
    assert r.nodes[0].edges == ({"event": "Login", "totalCount": 80},)
    assert r.overall_conversion_rate == 0.15


def test_flows_error_in_a_200_is_a_query_error_or_not_found() -> None:
    bookmarks = {
        "status": "ok",
        "results": [{"id": 55, "name": "Flow", "type": "flows", "project_id": 12345}],
    }
    ws, _ = workspace({"arb_funnels": {"error": "query failed"}, "bookmarks": bookmarks})
    with pytest.raises(QueryError, match="query failed") as exc:
        ws.flows(55)
    assert not isinstance(exc.value, NotFoundError)
    with pytest.raises(NotFoundError):
        ws.flows(56)


def test_bookmarks_from_the_app_api() -> None:
    body = {
        "status": "ok",
        "results": [
            {
                "id": 63877,
                "name": "Signups",
                "type": "insights",
                "project_id": 12345,
                "workspace_id": None,
                "dashboard_id": None,
                "created": "2024-09-18T16:39:49",
                "modified": "2024-09-18T16:39:49",
            },
            {"id": 2, "name": "A funnel", "type": "funnels", "project_id": 12345},
        ],
    }
    ws, fake = workspace({"bookmarks": body})
    found = ws.bookmarks("funnels")
    assert fake.requests[0].url.path == "/api/app/projects/12345/bookmarks"
    assert fake.params() == {"v": "2", "type": "funnels"}
    assert [b.id for b in found] == [2, 63877]  # sorted by type, then name
    assert found[1].to_dict()["created"] == "2024-09-18T16:39:49"


def test_app_api_error_envelope() -> None:
    ws, _ = workspace(
        {"bookmarks": lambda r: httpx.Response(403, json={"status": "error", "error": "denied"})}
    )
    with pytest.raises(QueryError, match="denied"):
        ws.bookmarks()


# -- §13 JQL ---------------------------------------------------------------------------------


def test_jql_posts_a_form_and_expands_group_by_rows() -> None:
    ws, fake = workspace(
        {"jql": [{"key": ["Chrome", "US"], "value": 12}, {"key": ["Safari", "FR"], "value": 3}]}
    )
    r = ws.jql("function main() { return Events({}); }", params={"days": 7})
    request = fake.requests[0]
    assert request.method == "POST"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert json.loads(form["params"]) == {"days": 7}
    assert "main()" in form["script"]
    assert fake.params() == {"project_id": "12345"}
    assert r.rows == [
        {"key_1": "Chrome", "key_2": "US", "value": 12},
        {"key_1": "Safari", "key_2": "FR", "value": 3},
    ]


def test_jql_412_is_a_query_error() -> None:
    error = "UserVisiblePreconditionFailedError: Uncaught exception TypeError: x is not a function"
    ws, _ = workspace(
        {"jql": lambda r: httpx.Response(412, json={"request": "/api/query/jql", "error": error})}
    )
    with pytest.raises(QueryError, match="x is not a function") as exc:
        ws.jql("function main() { x(); }")
    assert exc.value.status_code == 412
    assert exc.value.exit_code == 3


# -- validation before any call --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_date": "2024-02-30", "to_date": "2024-03-01"}, "invalid from_date"),
        ({"from_date": "2024-03-02", "to_date": "2024-03-01"}, "after to_date"),
        ({"from_date": "1999-12-31", "to_date": "2024-03-01"}, "before 2000"),
        ({"from_date": "20240101", "to_date": "2024-03-01"}, "invalid from_date"),
        ({"from_date": "2024-01-01", "to_date": "2024-03-01", "unit": "fortnight"}, "unit"),
        ({"from_date": "2024-01-01", "to_date": "2024-03-01", "type": "sum"}, "type"),
        ({"from_date": "2024-01-01", "to_date": "2024-03-01", "limit": 0}, "limit"),
    ],
)
def test_bad_arguments_never_reach_the_server(kwargs: dict[str, Any], message: str) -> None:
    ws, fake = workspace({})
    with pytest.raises(ValidationError, match=message) as exc:
        ws.segmentation("e", **kwargs)
    assert exc.value.exit_code == 3
    assert fake.requests == []


# -- properties of the parsers and the `on` rule --------------------------------------------------

dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2020, 3, 1)).map(date.isoformat)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.dictionaries(dates, st.integers(min_value=0, max_value=10**6), max_size=8),
        max_size=5,
    ),
    st.lists(dates, max_size=8),
)
def test_parse_series_fills_every_bucket_and_keeps_every_count(
    values: dict[str, dict[str, int]], series: list[str]
) -> None:
    body = {"data": {"series": series, "values": values}}
    got_series, got, legend = parse_series(body)
    expected_dates = set(series) | {d for points in values.values() for d in points}
    assert list(got_series) == sorted(expected_dates)
    assert legend == len(values)
    for segment, points in values.items():
        assert set(got[segment]) == expected_dates
        assert sum(got[segment].values()) == sum(points.values())


@given(st.text(min_size=1).filter(lambda t: t.strip() and not set(t) & set("[]()\"'=!<>+*/%")))
def test_bare_names_are_wrapped_losslessly(name: str) -> None:
    expr = to_expression(name)
    assert expr is not None
    assert expr.startswith("properties[")
    assert expr.endswith("]")
    assert json.loads(expr[len("properties[") : -1]) == name.strip()


@given(st.text(), st.sampled_from(['properties["x"]', "(", "==", "'a'", "defined(x)", "a > 1"]))
def test_expressions_pass_through(prefix: str, marker: str) -> None:
    text = prefix + marker
    if text.strip():
        assert to_expression(text) == text.strip()
