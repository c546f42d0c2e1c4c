"""Errors found before a streaming chat starts: an error event, or the envelope."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conformance.reference import DEV_PRINCIPALS

ALICE = DEV_PRINCIPALS[0]


@pytest.mark.parametrize("path", ["/v3/chat", "/api/conversation/chat"])
def test_a_refused_streaming_chat_is_one_error_event_by_default(
    start_server: Callable[..., Any], api_for: Callable[..., Any], path: str
) -> None:
    api = api_for(start_server(token_delay=0), ALICE)
    body = {"stream": True, "user_id": "u"} if path == "/v3/chat" else {"stream": True, "query": "q"}
    response = api.client.post(path, json=body)  # no bot_id / agent_id
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    head, data, blank = response.text.split("\n", 2)
    assert head == "event: conversation.error" and blank == "\n"
    payload = json.loads(data.removeprefix("data: "))
    assert payload["code"] == 400 and payload["error"]["code"] == 400 and payload["event"] == "conversation.error"


def test_the_envelope_variant_answers_json(start_server: Callable[..., Any], api_for: Callable[..., Any]) -> None:
    api = api_for(start_server(token_delay=0, stream_errors="envelope"), ALICE)
    response = api.client.post("/v3/chat", json={"stream": True, "user_id": "u"})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "msg": response.json()["msg"], "data": None}


def test_a_non_streaming_chat_always_gets_the_envelope(start_server: Callable[..., Any], api_for: Callable[..., Any]) -> None:
    api = api_for(start_server(token_delay=0), ALICE)
    response = api.client.post("/v3/chat", json={"user_id": "u"})
    assert response.status_code == 400 and response.json()["code"] == 400
