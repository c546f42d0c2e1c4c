"""POST /v3/chat without streaming: the documented request fields and answer."""

from __future__ import annotations

import time

import pytest

from conformance.suite.helpers import chat_body, envelope, id_text


@pytest.mark.requirement("CHAT-001", "CHAT-RESP-001", "CHAT-RESP-002", "CHAT-RESP-003", "CHAT-RESP-004")
def test_chat_answers_documented_fields(api, check, published_bot, user_id, profile) -> None:
    answer = envelope(api.request("POST", "/v3/chat", json=chat_body(published_bot, user_id, "你好")))
    check("CHAT-001", answer.ok, expected="code 0 with a data object", actual=answer.describe())
    data = answer.data
    check(
        "CHAT-RESP-001",
        all(id_text(data.get(key)) for key in ("conversation_id", "id")),
        expected="conversation_id and id: non-empty strings or integers",
        actual={k: data.get(k) for k in ("conversation_id", "id")},
    )
    check(
        "CHAT-RESP-002",
        all(isinstance(data.get(key), str) for key in ("content", "role", "type")),
        expected="content, role and type: strings",
        actual={k: data.get(k) for k in ("content", "role", "type")},
    )
    check(
        "CHAT-RESP-003",
        (data.get("role"), data.get("type")) == (profile.chat.answer_role, profile.chat.answer_type),
        expected=(profile.chat.answer_role, profile.chat.answer_type),
        actual=(data.get("role"), data.get("type")),
    )
    check(
        "CHAT-RESP-004",
        profile.timestamps.plausible(data.get("created_at"), now=time.time()),
        expected="seconds since the epoch",
        actual=data.get("created_at"),
    )
