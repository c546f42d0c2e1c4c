"""The pacer and the paced client: a sliding log per principal and
group shared by processes, holds after a 429, Retry-After in both forms and its cap,
and the 429 wait-out against real local servers."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.oracle.profile import Profile, load_profile
from conformance.run.pacing import (
    MAX_RESENDS,
    PACER_FILE,
    PacedClient,
    Pacer,
    RateLimitedTooLong,
    parse_retry_after,
    unpaced,
)
from conformance.transport.client import (
    ApiClient,
    ExchangeLog,
    Principal,
    TransportError,
)
from tests.support.servers import (
    ScriptedServer,
    envelope,
    json_answer,
    raw_answer,
    sequence,
    sse_events,
)

DOC = load_profile("doc")
INFO_PATH = "/v1/bots/123"
OK = json_answer(200, envelope(0, data={"bot_id": 123}))


def short_window(seconds: float) -> Profile:
    """The doc profile with a shorter rate window, so real waits stay short."""
    return dataclasses.replace(DOC, ratelimits=dataclasses.replace(DOC.ratelimits, window_seconds=seconds))


class FakeTime:
    """A clock whose sleep advances it (the pacer never really waits)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(" 0 ", 0.0, id="zero-with-blanks"),
        pytest.param("Thu, 01 Jan 1970 00:01:40 GMT", 40.0, id="http-date"),
        pytest.param("Thu, 01 Jan 1970 00:01:40 -0000", 40.0, id="http-date-minus-zero"),
        pytest.param("Thu, 01 Jan 1970 00:00:30 GMT", 0.0, id="date-in-the-past"),
        pytest.param("soon", None, id="unreadable"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction"),
    ],
)
def test_retry_after_seconds_or_http_date(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=60.0) == expected


# --------------------------------------------------------------------------- the sliding log


def test_budget_per_window_then_waits_for_the_oldest_send(tmp_path: Path) -> None:
    fake = FakeTime()
    pacer = Pacer(tmp_path, DOC, budgets={"management": 3}, clock=fake.clock, sleep=fake.sleep)
    started = fake.now
    waits = [pacer.acquire("p1", "management") for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    # The 4th waits until the 1st leaves the window (60 s + the 1 s margin).
    assert waits[3] == pytest.approx(61.0)
    assert fake.now == pytest.approx(started + 61.0)
    assert pacer.stats()["waited"] == {"p1|management": pytest.approx(61.0)}


def test_principals_and_groups_are_paced_apart(tmp_path: Path) -> None:
    fake = FakeTime()
    pacer = Pacer(tmp_path, DOC, budgets={"chat": 1, "info": 1}, clock=fake.clock, sleep=fake.sleep)
    for principal, group in [("p1", "chat"), ("p2", "chat"), ("p1", "info"), ("p2", "info")]:
        assert pacer.acquire(principal, group) == 0.0
    assert fake.slept == []


def test_documented_limits_are_the_default_budgets(tmp_path: Path) -> None:
    pacer = Pacer(tmp_path, DOC)
    assert pacer.budgets == {g.name: g.limit for g in DOC.ratelimits.groups} == {"chat": 60, "management": 30, "info": 100}
    assert Pacer(tmp_path, DOC, budgets={"chat": 10}).budgets["chat"] == 10


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        pytest.param({"bots": 3}, "unknown group", id="unknown-group"),
        pytest.param({"chat": 0}, ">= 1", id="zero"),
        pytest.param({"chat": True}, ">= 1", id="bool"),
    ],
)
def test_bad_budgets_are_refused_with_the_group(tmp_path: Path, budgets: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pacer(tmp_path, DOC, budgets=budgets)


def test_a_hold_makes_every_sender_wait(tmp_path: Path) -> None:
    fake = FakeTime()
    pacer = Pacer(tmp_path, DOC, clock=fake.clock, sleep=fake.sleep)
    pacer.hold("p1", "chat", fake.now + 12.5)
    other_process_view = Pacer(tmp_path, DOC, clock=fake.clock, sleep=fake.sleep)
    assert other_process_view.acquire("p1", "chat") == pytest.approx(12.5)
    assert other_process_view.acquire("p2", "chat") == 0.0  # the hold is the principal's
    assert pacer.stats()["refusals"] == {"p1|chat": 1}


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        pytest.param("POST", "/v3/chat", "chat", id="chat"),
        pytest.param("POST", "/v3/chat?conversation_id=9", "chat", id="chat-query"),
        pytest.param("POST", "/v3/chat/cancel", "chat", id="cancel"),
        pytest.param("POST", "/api/conversation/chat", "chat", id="run"),
        pytest.param("POST", "/api/draftbot/create", "management", id="create"),
        pytest.param("POST", "/api/draftbot/publish", "management", id="publish"),
        pytest.param("GET", "/v1/bot/get_online_info?bot_id=1", "info", id="online-info"),
        pytest.param("GET", "/v1/bots/7", "info", id="detail"),
        pytest.param("GET", "/v3/chat", None, id="wrong-method"),
        pytest.param("GET", "/v1/bots/7/extra", None, id="unknown-route"),
    ],
)
def test_groups_come_from_the_profile(tmp_path: Path, method: str, path: str, group: str | None) -> None:
    assert Pacer(tmp_path, DOC).group_for(method, path) == group


def _send_times(folder: str, window: float, count: int, queue: Any) -> None:
    pacer = Pacer(Path(folder), short_window(window), budgets={"info": 4}, margin=0.0)
    for _ in range(count):
        pacer.acquire("p1", "info")
        queue.put(time.time())


@pytest.mark.slow
def test_processes_share_one_budget(tmp_path: Path) -> None:
    """Four processes of three sends each, budget 4 per 1 s window: never more than 4
    sends in any 1 s, so the 12 sends take at least 2 s."""
    ctx = multiprocessing.get_context("spawn")
    queue: Any = ctx.Queue()
    procs = [ctx.Process(target=_send_times, args=(str(tmp_path), 1.0, 3, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    times = sorted(queue.get(timeout=5) for _ in range(12))
    assert all(p.exitcode == 0 for p in procs)
    for i in range(len(times) - 4):
        assert times[i + 4] - times[i] >= 1.0 - 0.02, f"5 sends within {times[i + 4] - times[i]:.3f} s"
    assert times[-1] - times[0] >= 2.0 - 0.02
    assert (tmp_path / PACER_FILE).is_file()


# --------------------------------------------------------------------------- the paced client


@pytest.fixture
def pacer(tmp_path: Path) -> Pacer:
    return Pacer(tmp_path, short_window(1.0), margin=0.0)


def _client(url: str, pacer: Pacer | None, log: ExchangeLog | None = None) -> PacedClient:
    return PacedClient(
        url,
        Principal("principal-1", api_key="key-1"),
        other=Principal("principal-2", api_key="key-2"),
        pacer=pacer,
        log=log,
        request_timeout=10,
        stream_timeout=10,
    )


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    with ScriptedServer({INFO_PATH: request.param(), "/v3/chat": request.param(), "/elsewhere": request.param()}) as s:
        yield s


def _refused(retry_after: str | None = None, status: int = 429, code: int = 429) -> Any:
    headers = [("Retry-After", retry_after)] if retry_after is not None else []
    return json_answer(status, envelope(code, "too many requests"), headers)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "least", "first_status"),
    [
        pytest.param(lambda: sequence(_refused("1"), OK), 1.0, 429, id="retry-after-seconds"),
        pytest.param(lambda: sequence(_refused(email.utils.formatdate(time.time() + 2, usegmt=True)), OK), 0.5, 429, id="retry-after-date"),
        pytest.param(lambda: sequence(_refused(None), OK), 1.0, 429, id="no-retry-after-one-window"),
        pytest.param(lambda: sequence(_refused("1", status=200), OK), 1.0, 200, id="body-code-429-status-200"),
    ],
    indirect=["server"],
)
def test_a_429_is_waited_out_and_the_request_resent(server: ScriptedServer, pacer: Pacer, least: float, first_status: int) -> None:
    log = ExchangeLog()
    started = time.monotonic()
    with _client(server.url, pacer, log) as client:
        answer = client.request("GET", INFO_PATH)
    assert answer.status == 200 and answer.json()["code"] == 0
    assert time.monotonic() - started >= least
    # The refusal stays in the log (the envelope judge sees a valid envelope), then the resend.
    assert [(ex.status, json.loads(ex.response_body)["code"]) for ex in log] == [(first_status, 429), (200, 0)]
    assert len(server.requests) == 2
    assert pacer.stats()["refusals"] == {"principal-1|info": 1}


@pytest.mark.parametrize("server", [pytest.param(lambda: _refused("120"), id="retry-after-120")], indirect=True)
def test_retry_after_beyond_the_cap_fails_naming_the_value(server: ScriptedServer, pacer: Pacer) -> None:
    with _client(server.url, pacer) as client, pytest.raises(RateLimitedTooLong) as info:
        client.request("GET", INFO_PATH)
    assert isinstance(info.value, TransportError)  # the plugin FAILs the test's requirements
    assert "Retry-After: '120'" in str(info.value) and "60 s" in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("server", [pytest.param(lambda: _refused("0"), id="always-429")], indirect=True)
def test_a_server_that_keeps_refusing_ends_the_test(server: ScriptedServer, pacer: Pacer) -> None:
    with _client(server.url, pacer) as client, pytest.raises(RateLimitedTooLong, match="still answered 429"):
        client.request("GET", INFO_PATH)
    assert len(server.requests) == MAX_RESENDS + 1


STREAM = [b'event: conversation.chat.created\ndata: {"event":"conversation.chat.created"}\n\n', b"event: done\ndata: {}\n\n"]


@pytest.mark.slow
@pytest.mark.parametrize("server", [pytest.param(lambda: sequence(_refused("1"), sse_events(STREAM, gap=0.01)), id="429-then-stream")], indirect=True)
def test_a_refused_stream_is_waited_out_and_reopened(server: ScriptedServer, pacer: Pacer) -> None:
    with _client(server.url, pacer) as client, client.stream("POST", "/v3/chat", json={"stream": True}) as answer:
        assert answer.status == 200 and answer.media_type == "text/event-stream"
        assert b"conversation.chat.created" in answer.read_all()
    assert len(server.requests) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "server",
    [pytest.param(lambda: sequence(_refused("1", status=200), sse_events(STREAM, gap=0.01)), id="code-429-status-200-then-stream")],
    indirect=True,
)
def test_a_stream_refused_by_body_code_is_waited_out_and_reopened(server: ScriptedServer, pacer: Pacer) -> None:
    """READING "HTTP status of errors": the body code decides; a 429 envelope with HTTP
    200 answered to a stream request is a refusal too."""
    with _client(server.url, pacer) as client, client.stream("POST", "/v3/chat", json={"stream": True}) as answer:
        assert answer.status == 200 and answer.media_type == "text/event-stream"
        assert b"conversation.chat.created" in answer.read_all()
    assert len(server.requests) == 2
    assert pacer.stats()["refusals"] == {"principal-1|chat": 1}


@pytest.mark.parametrize(
    "server", [pytest.param(lambda: json_answer(200, envelope(400, "invalid bot_id")), id="code-400-status-200")], indirect=True
)
def test_an_envelope_answered_to_a_stream_request_still_reaches_the_test(server: ScriptedServer, pacer: Pacer) -> None:
    with _client(server.url, pacer) as client, client.stream("POST", "/v3/chat", json={"stream": True}) as answer:
        assert answer.json()["code"] == 400  # read once by the pacer, again here
    assert len(server.requests) == 1 and pacer.stats()["refusals"] == {}


@pytest.mark.parametrize("server", [pytest.param(lambda: _refused("1"), id="always-429")], indirect=True)
def test_the_phase_view_and_off_table_routes_see_every_429(server: ScriptedServer, pacer: Pacer) -> None:
    with _client(server.url, pacer) as client:
        phase = unpaced(client)
        assert isinstance(phase, PacedClient) and phase.pacer is None
        assert phase.request("GET", INFO_PATH).status == 429
        assert client.request("GET", "/elsewhere").status == 429  # in no rate-limit group
        assert isinstance(client.with_log(ExchangeLog()), PacedClient)  # views keep pacing
    assert len(server.requests) == 2
    assert pacer.stats()["refusals"] == {}
    plain = ApiClient(server.url, Principal("principal-1", api_key="key-1"))
    assert unpaced(plain) is plain
    plain.close()


@pytest.mark.parametrize("server", [pytest.param(lambda: OK, id="ok")], indirect=True)
def test_the_other_principal_is_paced_under_its_own_name(server: ScriptedServer, tmp_path: Path) -> None:
    fake = FakeTime(time.time())
    pacer = Pacer(tmp_path, DOC, clock=fake.clock, sleep=fake.sleep)
    with _client(server.url, pacer) as client:
        client.request("GET", INFO_PATH)
        client.request("GET", INFO_PATH, auth="other")
        client.request("GET", INFO_PATH, auth="other-bearer")
    assert pacer.last_send("principal-1", "info") is not None
    sends = Pacer(tmp_path, DOC)._file.read()["sends"]  # noqa: SLF001 - the stored log itself
    assert {k: len(v) for k, v in sends.items()} == {"principal-1|info": 1, "principal-2|info": 2}


@pytest.mark.parametrize(
    "server", [pytest.param(lambda: raw_answer(429, b"<html>slow down</html>", [("Retry-After", "0")]), id="html-429")], indirect=True
)
def test_a_429_without_an_envelope_is_waited_out_too(server: ScriptedServer, pacer: Pacer) -> None:
    with _client(server.url, pacer) as client, pytest.raises(RateLimitedTooLong):
        client.request("GET", INFO_PATH)
    assert len(server.requests) == MAX_RESENDS + 1


def test_a_refusal_is_http_429_or_the_profiles_code() -> None:
    from conformance.run.pacing import _is_refusal

    assert _is_refusal(429, b"", 429) and _is_refusal(429, b'{"code":4013}', 4013)
    assert _is_refusal(200, b'{"code":4013,"msg":"rate limited"}', 4013)
    assert _is_refusal(200, b'{"code":429,"msg":"x"}', 429)
    assert not _is_refusal(200, b'{"code":4013}', 429)
    assert not _is_refusal(200, b'{"code":0,"msg":""}', 4013)
    assert not _is_refusal(400, b'{"code":true}', 1)
