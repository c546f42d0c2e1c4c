"""The envelope judge: every answer of a suite test is judged against ENV-* / ERR-*."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.oracle.catalogue import load_catalogue
from conformance.oracle.envelope_judge import exchange_requirements, judge_exchanges
from conformance.oracle.profile import load_profile

PROFILE = load_profile("doc")
RULES = exchange_requirements(load_catalogue().for_profile("doc"))


@dataclass
class FakeExchange:
    status: int | None
    body: Any
    path: str = "/v3/chat"
    method: str = "POST"
    stream: bool = False
    content_type: str = "application/json"
    body_truncated: bool = False
    response_headers: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.url = f"http://t{self.path}"
        self.response_headers = [("Content-Type", self.content_type)]
        raw = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
        self.response_body = raw


def judged(*exchanges: FakeExchange) -> dict[str, list[bool]]:
    seen: dict[str, list[bool]] = {}

    def check(req: str, condition: object, **_: Any) -> bool:
        seen.setdefault(req, []).append(bool(condition))
        return bool(condition)

    judge_exchanges(exchanges, PROFILE, check, rules=RULES)
    return seen


OK = {"code": 0, "msg": "success", "data": {"id": "1"}}


@pytest.mark.parametrize(
    ("exchange", "verdicts"),
    [
        pytest.param(FakeExchange(200, OK), {"ERR-004": [True], "ENV-001": [True], "ENV-002": [True]}, id="success"),
        pytest.param(FakeExchange(200, {**OK, "msg": "ok"}), {"ERR-004": [True], "ENV-001": [True], "ENV-002": [False]}, id="msg-not-success"),
        pytest.param(FakeExchange(200, {"code": 0, "msg": "success"}), {"ERR-004": [True], "ENV-001": [False]}, id="success-without-data"),
        pytest.param(FakeExchange(200, {**OK, "code": 0.0}), {"ERR-004": [True], "ENV-001": [False]}, id="float-code"),
        pytest.param(
            FakeExchange(200, {"code": 0, "msg": "success"}, path="/v3/chat/cancel"),
            {"ERR-004": [True], "ENV-001": [True], "ENV-002": [True]},
            id="cancel-without-data",
        ),
        # READING "Success msg, data": cancel's data may be absent, null or any value.
        *(
            pytest.param(
                FakeExchange(200, {"code": 0, "msg": "success", "data": value}, path="/v3/chat/cancel"),
                {"ERR-004": [True], "ENV-001": [True], "ENV-002": [True]},
                id=f"cancel-data-{name}",
            )
            for name, value in (("null", None), ("string", "ok"), ("number", 1), ("list", []), ("object", {}), ("false", False))
        ),
        pytest.param(
            FakeExchange(200, {"code": 0, "msg": "success", "data": None}),
            {"ERR-004": [True], "ENV-001": [False]},
            id="chat-data-null",
        ),
        pytest.param(
            FakeExchange(400, {"code": 400, "msg": "bad", "data": None}),
            {"ERR-004": [True], "ERR-001": [True], "ERR-002": [True], "ERR-003": [True]},
            id="error-envelope",
        ),
        pytest.param(
            FakeExchange(400, {"code": 400, "msg": "bad"}),
            {"ERR-004": [True], "ERR-001": [True], "ERR-002": [False], "ERR-003": [True]},
            id="error-without-data-accepted-at-must-only",
        ),
        pytest.param(
            FakeExchange(200, {"code": 404, "msg": "x", "data": {}}),
            {"ERR-004": [True], "ERR-001": [True], "ERR-002": [False], "ERR-003": [False]},
            id="http-200-body-404",
        ),
        pytest.param(FakeExchange(404, b"not found", content_type="text/plain"), {"ERR-004": [True], "ERR-001": [False]}, id="plain-text-error"),
        pytest.param(FakeExchange(400, {"code": 4000, "msg": "x"}), {"ERR-004": [True], "ERR-001": [False]}, id="unlisted-code"),
        pytest.param(FakeExchange(502, b"<html>bad gateway</html>"), {"ERR-004": [False], "ERR-001": [False]}, id="5xx-outside-envelope"),
        pytest.param(
            FakeExchange(200, {"code": 500, "msg": "boom", "data": None}),
            {"ERR-004": [True, False], "ERR-001": [True], "ERR-002": [True], "ERR-003": [False]},
            id="code-500-in-200",
        ),
        pytest.param(FakeExchange(None, b""), {}, id="no-answer"),
        pytest.param(FakeExchange(200, b"{", body_truncated=True), {}, id="truncated-not-judged"),
    ],
)
def test_verdicts(exchange: FakeExchange, verdicts: dict[str, list[bool]]) -> None:
    assert judged(exchange) == verdicts


def test_event_streams_are_the_grammars_but_5xx_error_events_fail() -> None:
    good = b'event: conversation.message.delta\ndata: {"message_item":{"id":"1","content":"x","role":"assistant"}}\n\n'
    bad = b'event: error\ndata: {"code":500,"msg":"internal server error"}\n\n'
    nested = b'event: conversation.error\ndata: {"error":{"code":502,"msg":"x"}}\n\n'
    client_error = b'event: error\ndata: {"code":400,"msg":"bad"}\n\n'
    stream = dict(stream=True, content_type="text/event-stream; charset=utf-8")
    assert judged(FakeExchange(200, good, **stream)) == {}
    assert judged(FakeExchange(200, bad, **stream)) == {"ERR-004": [False]}
    assert judged(FakeExchange(200, nested, **stream)) == {"ERR-004": [False]}
    assert judged(FakeExchange(200, client_error, **stream)) == {"ERR-004": [True]}


def test_an_event_stream_asked_for_with_a_plain_request_is_judged_as_a_stream() -> None:
    # READING "`/api/conversation/chat` response": the run may stream unasked (api.request,
    # not api.stream); its answer is an event stream, not a broken envelope.
    good = b'event: conversation.chat.created\ndata: {"chat":{}}\n\n'
    bad = b'event: conversation.error\ndata: {"code":500,"msg":"boom"}\n\n'
    unasked = dict(stream=False, content_type="text/event-stream", path="/api/conversation/chat")
    assert judged(FakeExchange(200, good, **unasked)) == {}
    assert judged(FakeExchange(200, bad, **unasked)) == {"ERR-004": [False]}
