"""Fault injection: each fault as a raw httpx client sees it, plus the spec grammar."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpanel_data.emulator.faults import (
    FAULT_KINDS,
    Fault,
    Faults,
    FaultSpecError,
    parse_fault_spec,
)
from mixpanel_data.emulator.project import ProjectSpec
from mixpanel_data.emulator.server import Emulator
from mixpanel_data.emulator.streams import crc32_combine

PLAIN = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    spec = ProjectSpec(seed=3, users=120, days=4)
    with Emulator(spec=spec, cache_dir=tmp_path_factory.mktemp("faults"), threads=32) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _no_leftover_faults(emu: Emulator) -> Iterator[None]:
    emu.faults.clear()
    yield
    emu.faults.clear()


def _params(emu: Emulator, **extra: Any) -> dict[str, Any]:
    days = emu.project.data_dates
    return {"project_id": "1000001", "from_date": str(days[1]), "to_date": str(days[-1]), **extra}


def _export(emu: Emulator, headers: dict[str, str] = PLAIN, **extra: Any) -> httpx.Response:
    return httpx.get(
        f"{emu.base_url}/api/2.0/export",
        params=_params(emu, **extra),
        auth=(emu.username, emu.secret),
        headers=headers,
        timeout=30,
    )


def _engage(emu: Emulator, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{emu.base_url}/api/query/engage",
        params={"project_id": "1000001", **params},
        auth=(emu.username, emu.secret),
    )


@pytest.fixture(scope="module")
def clean_body(emu: Emulator) -> bytes:
    response = _export(emu)
    assert response.status_code == 200
    assert len(response.content) > 200_000
    return response.content


# -- the spec grammar ---------------------------------------------------------------------


def test_spec_grammar_parses_every_option():
    faults = parse_fault_spec(
        " export:429:count=2:retry_after=1 ; export:reset:after_bytes=100000:prob=0.1;"
        "engage:session_expired:count=1;*:slow:bytes_per_second=500;"
        "query:429:retry_after=3:retry_after_form=date;segmentation:hang:seconds=2.5"
    )
    assert [(f.endpoint, f.kind) for f in faults] == [
        ("export", "429"),
        ("export", "reset"),
        ("engage", "session_expired"),
        ("*", "slow"),
        ("query", "429"),
        ("segmentation", "hang"),
    ]
    assert (faults[0].count, faults[0].retry_after) == (2, 1.0)
    assert (faults[1].after_bytes, faults[1].prob) == (100_000, 0.1)
    assert faults[3].bytes_per_second == 500.0
    assert faults[4].retry_after_form == "date"
    assert faults[5].seconds == 2.5
    assert parse_fault_spec("") == []


@pytest.mark.parametrize(
    "spec",
    [
        "export",
        "export:418",
        "export:429:count",
        "export:429:count=two",
        "export:429:colour=red",
        "export:429:count=0",
        "export:429:prob=1.5",
        "export:slow:bytes_per_second=0",
        "export:429:retry_after_form=weekday",
        ":429",
    ],
)
def test_bad_specs_raise_validation_errors(spec):
    with pytest.raises(FaultSpecError):
        parse_fault_spec(spec)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("export:429;=.count-prob*slowreset0123 ")), max_size=60)
)
def test_any_spec_text_parses_or_raises_validation_error(text):
    try:
        faults = parse_fault_spec(text)
    except FaultSpecError:
        return
    assert all(isinstance(f, Fault) and f.kind in FAULT_KINDS for f in faults)


def test_count_and_probability_are_deterministic():
    outcomes = []
    for _ in range(2):
        faults = Faults(seed=5)
        faults.add("500", endpoint="export", prob=0.5)
        outcomes.append([bool(faults.draw("export", "export", {"500"})) for _ in range(40)])
    assert outcomes[0] == outcomes[1]
    assert 5 < sum(outcomes[0]) < 35
    counted = Faults()
    counted.add("429", endpoint="query", count=2)
    fired = [bool(counted.draw("engage", "query", {"429"})) for _ in range(4)]
    assert fired == [True, True, False, False]
    assert counted.active() == []


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_combine_matches_zlib(a, b):
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


# -- status faults ------------------------------------------------------------------------


def test_429_for_the_next_n_calls_with_retry_after_seconds(emu):
    emu.faults.add("429", endpoint="export", count=2, retry_after=1)
    responses = [_export(emu, limit=1) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    body = responses[0].json()
    assert list(body) == ["request", "error"]
    assert body["request"].startswith("/api/2.0/export?project_id=1000001")
    assert body["error"].startswith("Query rate limit exceeded for project_id: 1000001. ")
    assert "61/60 queries running in the last hour" in body["error"]
    assert responses[0].headers["retry-after"] == "1"


def test_429_with_an_http_date_retry_after(emu):
    emu.faults.add_spec("engage:429:retry_after=30:retry_after_form=date")
    response = _engage(emu)
    assert response.status_code == 429
    when = email.utils.parsedate_to_datetime(response.headers["retry-after"])
    delta = (when - dt.datetime.now(dt.UTC)).total_seconds()
    assert 25 <= delta <= 31


@pytest.mark.parametrize("status", [500, 503])
def test_500_and_503_use_the_json_envelope(emu, status):
    emu.faults.add(str(status), endpoint="engage")
    response = _engage(emu)
    assert response.status_code == status
    assert list(response.json()) == ["request", "error"]
    assert _engage(emu).status_code == 200  # count defaults to one call


@pytest.mark.parametrize("status", [502, 504])
def test_502_and_504_are_html_pages_as_proxies_send(emu, status):
    emu.faults.add(str(status), endpoint="export")
    response = _export(emu, limit=1)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")
    assert str(status) in response.text


def test_faults_are_scoped_to_endpoints_and_families(emu):
    emu.faults.add("500", endpoint="export", count=5)
    assert _engage(emu).status_code == 200
    assert (
        httpx.get(f"{emu.base_url}/api/app/me", auth=(emu.username, emu.secret)).status_code == 200
    )
    emu.faults.clear()
    emu.faults.add("503", endpoint="query")
    assert _export(emu, limit=1).status_code == 200
    assert _engage(emu).status_code == 503
    emu.faults.add("503", endpoint="*")
    assert _export(emu, limit=1).status_code == 503


# -- stream faults ------------------------------------------------------------------------


def _read_raw(
    emu: Emulator, headers: dict[str, str] = PLAIN, **extra: Any
) -> tuple[bytes, httpx.Response]:
    parts: list[bytes] = []
    with httpx.stream(
        "GET",
        f"{emu.base_url}/api/2.0/export",
        params=_params(emu, **extra),
        auth=(emu.username, emu.secret),
        headers=headers,
        timeout=30,
    ) as response:
        for chunk in response.iter_raw():
            parts.append(chunk)
    return b"".join(parts), response


def test_connection_reset_after_n_bytes_over_real_http(emu, clean_body):
    emu.faults.add("reset", endpoint="export", after_bytes=100_000)
    received: list[bytes] = []

    def read() -> None:
        with httpx.stream(
            "GET",
            f"{emu.base_url}/api/2.0/export",
            params=_params(emu),
            auth=(emu.username, emu.secret),
            headers=PLAIN,
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received.append(chunk)

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        read()
    got = b"".join(received)
    assert len(got) <= 100_000
    assert clean_body.startswith(got)
    call = emu.wait_for_requests(lambda c: bool(c) and c[-1].complete)[-1]
    assert call.faults == ("reset",)
    assert _export(emu).content == clean_body  # the next call is whole again


def test_connection_reset_in_process_is_a_transport_error(emu):
    emu.faults.add("reset", endpoint="export", after_bytes=5000)
    transport = httpx.WSGITransport(app=emu.app)
    with httpx.Client(transport=transport, base_url="http://mp") as client:
        with pytest.raises(httpx.TransportError):
            client.get("/api/2.0/export", params=_params(emu), auth=(emu.username, emu.secret))
        ok = client.get(
            "/api/2.0/export", params=_params(emu, limit=2), auth=(emu.username, emu.secret)
        )
        assert ok.status_code == 200


@pytest.mark.parametrize("headers", [PLAIN, GZIP], ids=["plain", "gzip"])
def test_terminated_early_is_a_200_cut_mid_record(emu, clean_body, headers):
    emu.faults.add("terminated_early", endpoint="export", after_bytes=50_000)
    response = _export(emu, headers=headers)
    assert response.status_code == 200
    lines = response.content.split(b"\n")
    assert lines[-1] == b"terminated early"
    assert clean_body.startswith(b"\n".join(lines[:-1]))
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[-2])
    for line in lines[:-2]:
        json.loads(line)
    assert 50_000 <= len(b"\n".join(lines[:-1])) <= 50_005  # cut right after after_bytes


def test_truncated_gzip_ends_cleanly_but_the_gzip_is_incomplete(emu, clean_body):
    emu.faults.add("truncated_gzip", endpoint="export", after_bytes=20_000)
    raw, response = _read_raw(emu, headers=GZIP)  # the HTTP message itself completes
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) == 20_000
    decoder = zlib.decompressobj(31)
    partial = decoder.decompress(raw)
    assert not decoder.eof
    assert 0 < len(partial) < len(clean_body)
    assert clean_body.startswith(partial)


def test_a_truncated_gzip_fault_waits_for_a_gzip_response(emu, clean_body):
    emu.faults.add("truncated_gzip", endpoint="export")
    assert _export(emu, headers=PLAIN).content == clean_body
    raw, _ = _read_raw(emu, headers=GZIP)
    decoder = zlib.decompressobj(31)
    decoder.decompress(raw)
    assert not decoder.eof


def test_malformed_line_is_injected_once(emu, clean_body):
    emu.faults.add("malformed_line", endpoint="export", after_bytes=10_000)
    response = _export(emu)
    lines = response.content.splitlines()
    bad = []
    for index, line in enumerate(lines):
        try:
            json.loads(line)
        except json.JSONDecodeError:
            bad.append(index)
    assert len(bad) == 1
    assert b"\n".join(lines[: bad[0]] + lines[bad[0] + 1 :]) + b"\n" == clean_body
    assert len(b"\n".join(lines[: bad[0]])) + 1 >= 10_000


def test_slow_stream_trickles_at_the_given_rate(emu):
    emu.faults.add("slow", endpoint="export", bytes_per_second=40_000)
    started = time.monotonic()
    response = _export(emu, limit=20)
    elapsed = time.monotonic() - started
    size = len(response.content)
    assert size > 10_000
    assert elapsed >= size / 40_000 * 0.8


def test_hang_sends_nothing_for_t_seconds(emu):
    emu.faults.add("hang", endpoint="export", seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            f"{emu.base_url}/api/2.0/export",
            params=_params(emu, limit=1),
            auth=(emu.username, emu.secret),
            timeout=httpx.Timeout(5.0, read=0.2),
        )
    emu.faults.add("hang", endpoint="export", seconds=0.3)
    started = time.monotonic()
    assert _export(emu, limit=1).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_engage_session_expired_rejects_the_next_page(emu):
    first = _engage(emu).json()
    emu.faults.add("session_expired", endpoint="engage")
    # Page 0 calls do not use the fault up; the next page request does.
    assert _engage(emu).status_code == 200
    response = _engage(emu, page=1, session_id=first["session_id"])
    assert response.status_code == 400
    assert "uncached query" in response.json()["error"]
    again = _engage(emu, page=1, session_id=first["session_id"])
    assert again.status_code == 400  # the session is really gone


# -- the control API ----------------------------------------------------------------------


def test_control_api_injects_lists_and_clears_faults_over_http(emu):
    base = f"{emu.base_url}/_emulator/faults"
    added = httpx.post(base, json={"spec": "export:503:count=2;engage:429"}).json()["faults"]
    assert [(f["endpoint"], f["kind"], f["remaining"]) for f in added] == [
        ("export", "503", 2),
        ("engage", "429", 1),
    ]
    assert _export(emu, limit=1).status_code == 503
    listed = httpx.get(base).json()["faults"]
    assert [(f["kind"], f["remaining"]) for f in listed] == [("503", 1), ("429", 1)]
    one = httpx.post(base, json={"kind": "502", "endpoint": "me", "count": 1}).json()
    assert one["faults"][0]["kind"] == "502"
    assert (
        httpx.get(f"{emu.base_url}/api/app/me", auth=(emu.username, emu.secret)).status_code == 502
    )
    assert httpx.delete(base).json() == {"faults": []}
    assert _export(emu, limit=1).status_code == 200
    bad = httpx.post(base, json={"spec": "export:teapot"})
    assert bad.status_code == 400
    assert "unknown fault kind" in bad.json()["error"]


def test_faults_given_at_construction(tmp_path):
    spec = ProjectSpec(users=20, days=1)
    with Emulator(spec=spec, cache_dir=tmp_path, faults="me:500:count=1") as emu:
        me = f"{emu.base_url}/api/app/me"
        first = httpx.get(me, auth=(emu.username, emu.secret))
        assert first.status_code == 500
        assert first.json() == {"status": "error", "error": "Internal server error"}
        assert httpx.get(me, auth=(emu.username, emu.secret)).status_code == 200
