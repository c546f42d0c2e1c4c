"""Chat: /v3/chat and /api/conversation/chat, JSON and SSE, continuity, failure, cancel.

Spec "Chat V3 - 智能体对话" (request table, "非流式响应", "流式响应 (SSE)", the
event table and the "SSE 数据格式" example), "取消对话", "内部智能体运行".
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import FAIL_TRIGGER, ReferenceServer

if TYPE_CHECKING:
    from conftest import Api, Event, StartServer

DOCUMENTED_ORDER = [
    "conversation.chat.created",
    "conversation.chat.in_progress",
    "conversation.message.delta",
    "conversation.message.completed",
    "conversation.chat.completed",
    "conversation.stream.done",
]


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


def collapse(sequence: list[str]) -> list[str]:
    """Runs of one name as one (the deltas)."""
    return [name for i, name in enumerate(sequence) if i == 0 or sequence[i - 1] != name]


def assert_id_text(value: Any) -> None:
    """Conversation and message ids: strings of digits, 19 long (the numeric id style)."""
    assert isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == 19


def test_json_answer_has_every_documented_key(alice: Api) -> None:
    bot_id = alice.published_bot()
    response = alice.client.post("/v3/chat", json=alice.chat_body(bot_id, "你好,请介绍一下你自己"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["code"], body["msg"]) == (0, "success")
    data = body["data"]
    assert set(data) >= {"conversation_id", "id", "content", "role", "type", "created_at"}
    assert_id_text(data["conversation_id"])
    assert_id_text(data["id"])
    assert (data["role"], data["type"]) == ("assistant", "answer")
    assert isinstance(data["content"], str) and "你好,请介绍一下你自己" in data["content"]
    assert type(data["created_at"]) is int and abs(data["created_at"] - time.time()) < 120
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("stream", [pytest.param(False, id="stream-false"), pytest.param(None, id="stream-omitted")])
def test_stream_false_or_omitted_answers_json(alice: Api, stream: bool | None) -> None:
    bot_id = alice.published_bot()
    body = alice.chat_body(bot_id) | ({} if stream is None else {"stream": stream})
    response = alice.client.post("/v3/chat", json=body)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == 0


def test_stream_has_the_documented_events_in_order(alice: Api) -> None:
    bot_id = alice.published_bot()
    response, events = alice.stream("/v3/chat", alice.chat_body(bot_id, "hello there", stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert collapse(names(events)) == DOCUMENTED_ORDER
    assert names(events).count("conversation.message.delta") >= 5
    for event in events:
        assert event.payload["event"] == event.name  # as in every payload of the spec's example


def test_stream_payloads_hang_together(alice: Api) -> None:
    bot_id = alice.published_bot()
    events = alice.chat_stream(bot_id, "hello there")
    by_name = {e.name: e.payload for e in events}
    deltas = [e.payload["message_item"] for e in events if e.name == "conversation.message.delta"]
    completed = by_name["conversation.message.completed"]["message_item"]
    # Joined deltas equal the completed content (READING "Messages in a stream").
    assert "".join(d["content"] for d in deltas) == completed["content"]
    assert {d["id"] for d in deltas} == {completed["id"]}
    assert all(d["role"] == "assistant" for d in deltas + [completed])
    assert_id_text(completed["id"])
    record = by_name["conversation.chat.completed"]["run_record_item"]
    conversation_id = record["conversation_id"]
    assert_id_text(conversation_id)
    usage = record["usage"]
    assert all(type(usage[k]) is int and usage[k] >= 0 for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == len(deltas)
    for name in ("conversation.chat.created", "conversation.chat.in_progress"):
        assert by_name[name]["chat"]["conversation_id"] == conversation_id
        assert by_name[name]["chat"]["id"] == record["id"]
    assert "hello there" in completed["content"]


def test_stream_is_paced_token_by_token(start_server: StartServer, api_for: Any) -> None:
    """With 50 ms per token the deltas arrive over time, not in one burst at the end."""
    server = start_server(token_delay=0.05)
    api: Api = api_for(server)
    bot_id = api.published_bot()
    arrivals: list[float] = []
    with api.client.stream("POST", "/v3/chat", json=api.chat_body(bot_id, stream=True)) as response:
        for line in response.iter_lines():
            if line == "event: conversation.message.delta":
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] >= 0.04 * (len(arrivals) - 1)


# Continuity ---------------------------------------------------------------------------

CONTINUATIONS = [
    pytest.param(lambda cid: ({"ConversationID": cid}, {}), id="body-ConversationID"),
    pytest.param(lambda cid: ({"conversation_id": cid}, {}), id="body-conversation_id"),
    pytest.param(lambda cid: ({}, {"conversation_id": cid}), id="query-conversation_id"),
]


@pytest.mark.parametrize("where", CONTINUATIONS)
@pytest.mark.parametrize("stream", [pytest.param(False, id="json"), pytest.param(True, id="sse")])
def test_a_conversation_continues_by_every_documented_id(alice: Api, where: Any, stream: bool) -> None:
    """READING "Conversation id in a chat request": body ConversationID, body conversation_id, query."""
    bot_id = alice.published_bot(name="Memo")
    first = alice.chat(bot_id, "first message")
    assert first["content"].startswith("Turn 1 ")
    body_extra, params = where(first["conversation_id"])
    body = alice.chat_body(bot_id, "second message", stream=stream, **body_extra)
    if stream:
        response, events = alice.stream("/v3/chat", body, params=params)
        record = events[-2].payload["run_record_item"]
        conversation_id = record["conversation_id"]
        content = next(e.payload["message_item"]["content"] for e in events if e.name == "conversation.message.completed")
    else:
        data = alice.client.post("/v3/chat", json=body, params=params).json()["data"]
        conversation_id, content = data["conversation_id"], data["content"]
    assert conversation_id == first["conversation_id"]
    assert content.startswith("Turn 2 ") and "second message" in content


def test_without_an_id_every_chat_starts_a_new_conversation(alice: Api) -> None:
    bot_id = alice.published_bot()
    first, second = alice.chat(bot_id), alice.chat(bot_id)
    assert first["conversation_id"] != second["conversation_id"]
    assert second["content"].startswith("Turn 1 ")


def test_a_conversation_id_may_be_sent_as_an_integer(alice: Api) -> None:
    bot_id = alice.published_bot()
    first = alice.chat(bot_id)
    second = alice.chat(bot_id, ConversationID=int(first["conversation_id"]))
    assert second["conversation_id"] == first["conversation_id"] and second["content"].startswith("Turn 2 ")


def test_conflicting_conversation_ids_are_refused(alice: Api) -> None:
    bot_id = alice.published_bot()
    one, other = alice.chat(bot_id)["conversation_id"], alice.chat(bot_id)["conversation_id"]
    body = alice.chat_body(bot_id, ConversationID=one, conversation_id=other)
    response = alice.client.post("/v3/chat", json=body)
    assert response.status_code == 400 and "conflicting" in response.json()["msg"]


# Request fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"role": "user", "content": "plain", "content_type": "text"}, id="text"),
        pytest.param({"role": "user", "content": "https://example.com/a.jpg", "content_type": "image"}, id="image"),
        pytest.param({"role": "user", "content": "https://example.com/a.pdf", "content_type": "file"}, id="file"),
        pytest.param(
            {"role": "user", "content": '[{"type":"text","text":"hi"}]', "content_type": "object_string"},
            id="object_string",
        ),
        pytest.param({"role": "user", "content": '{"card":1}', "content_type": "card"}, id="card"),
        pytest.param({"role": "user", "content": "https://example.com/i.jpg", "type": "image"}, id="type-alias"),
        pytest.param({"role": "user", "content": "x", "content_type": "text", "type": "text"}, id="both-keys-agree"),
        pytest.param({"role": "assistant", "content": "earlier answer", "content_type": "text"}, id="assistant"),
    ],
)
def test_every_documented_message_form_is_accepted(alice: Api, message: dict[str, str]) -> None:
    bot_id = alice.published_bot()
    response = alice.client.post("/v3/chat", json=alice.chat_body(bot_id) | {"additional_messages": [message]})
    assert response.status_code == 200 and response.json()["code"] == 0


def test_string_maps_and_unknown_keys_are_accepted(alice: Api) -> None:
    bot_id = alice.published_bot()
    body = alice.chat_body(bot_id) | {
        "custom_variables": {"city": "杭州"},
        "meta_data": {"trace": "t-1"},
        "extra_params": {"lang": "zh"},
        "something_new": [1, 2, 3],
    }
    assert alice.client.post("/v3/chat", json=body).json()["code"] == 0


def test_chat_without_messages_still_answers(alice: Api) -> None:
    bot_id = alice.published_bot()
    response = alice.client.post("/v3/chat", json={"bot_id": str(bot_id), "user_id": "u"})
    assert response.json()["code"] == 0 and response.json()["data"]["content"]


def test_a_draft_bot_cannot_chat(alice: Api) -> None:
    bot_id = alice.create_bot()["bot_id"]
    response = alice.client.post("/v3/chat", json=alice.chat_body(bot_id))
    assert response.status_code == 400 and "not published" in response.json()["msg"]


# /api/conversation/chat --------------------------------------------------------------------


@pytest.mark.parametrize("as_text", [pytest.param(False, id="integer"), pytest.param(True, id="digit-string")])
def test_internal_chat_answers_json_and_continues(alice: Api, as_text: bool) -> None:
    bot_id = alice.published_bot()
    agent_id = str(bot_id) if as_text else bot_id
    first = alice.client.post("/api/conversation/chat", json={"agent_id": agent_id, "query": "one"}).json()
    assert first["code"] == 0 and first["data"]["role"] == "assistant"
    assert "one" in first["data"]["content"]
    body = {
        "agent_id": agent_id,
        "query": "two",
        "conversation_id": first["data"]["conversation_id"],
        "additional_messages": [{"role": "user", "content": "context", "content_type": "text"}],
    }
    second = alice.client.post("/api/conversation/chat", json=body).json()["data"]
    assert second["conversation_id"] == first["data"]["conversation_id"]
    assert second["content"].startswith("Turn 2 ") and "two" in second["content"]  # query is the last message


def test_internal_chat_streams(alice: Api) -> None:
    bot_id = alice.published_bot()
    response, events = alice.stream("/api/conversation/chat", {"agent_id": bot_id, "query": "hi", "stream": True})
    assert response.headers["content-type"] == "text/event-stream"
    assert collapse(names(events)) == DOCUMENTED_ORDER


def test_chats_of_both_endpoints_share_conversations(alice: Api) -> None:
    bot_id = alice.published_bot()
    first = alice.chat(bot_id)
    body = {"agent_id": bot_id, "query": "again", "conversation_id": first["conversation_id"]}
    assert alice.client.post("/api/conversation/chat", json=body).json()["data"]["content"].startswith("Turn 2 ")


# Failure trigger ------------------------------------------------------------------------------


def test_the_failure_trigger_fails_a_stream_mid_way(alice: Api) -> None:
    bot_id = alice.published_bot()
    events = alice.chat_stream(bot_id, FAIL_TRIGGER)
    sequence = names(events)
    assert collapse(sequence) == [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.message.delta",
        "conversation.error",
        "conversation.chat.failed",
        "conversation.stream.done",
    ]
    error = events[sequence.index("conversation.error")].payload
    assert (error["code"], error["error"]["code"]) == (500, 500) and isinstance(error["msg"], str)
    failed = events[sequence.index("conversation.chat.failed")].payload["chat"]
    assert failed["status"] == "failed" and failed["last_error"]["code"] == 500


def test_the_failure_trigger_answers_500_without_a_stream(alice: Api) -> None:
    bot_id = alice.published_bot()
    response = alice.client.post("/v3/chat", json=alice.chat_body(bot_id, f"  {FAIL_TRIGGER}\n"))
    assert response.status_code == 500
    assert response.json() == {"code": 500, "msg": response.json()["msg"], "data": None}


def test_a_conversation_goes_on_after_a_failure(alice: Api) -> None:
    bot_id = alice.published_bot()
    failed = alice.chat_stream(bot_id, FAIL_TRIGGER)
    conversation_id = failed[0].payload["chat"]["conversation_id"]
    data = alice.chat(bot_id, "still there?", ConversationID=conversation_id)
    assert data["content"].startswith("Turn 2 ")


# Cancel ----------------------------------------------------------------------------------------


class BackgroundStream:
    """A chat stream read in a thread, recording when each event arrived."""

    def __init__(self, api: Api, body: dict[str, Any], path: str = "/v3/chat") -> None:
        self.events: list[tuple[float, str, str]] = []
        self.first_delta = threading.Event()
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._read, args=(api.client, path, body), daemon=True)
        self._thread.start()

    def _read(self, client: httpx.Client, path: str, body: dict[str, Any]) -> None:
        event = ""
        with client.stream("POST", path, json=body) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    self.events.append((time.monotonic(), event, line[6:]))
                    if event == "conversation.message.delta":
                        self.first_delta.set()
        self.ended_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream did not end"

    @property
    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]


def conversation_of(stream: BackgroundStream) -> str:
    return str(json.loads(stream.events[0][2])["chat"]["conversation_id"])


def test_cancel_ends_an_in_flight_stream_within_two_seconds(start_server: StartServer, api_for: Any) -> None:
    server: ReferenceServer = start_server(token_delay=0.5)  # an uncancelled answer takes > 5 s
    api: Api = api_for(server)
    bot_id = api.published_bot()
    stream = BackgroundStream(api, api.chat_body(bot_id, stream=True))
    assert stream.first_delta.wait(5)
    response = api.client.post("/v3/chat/cancel", json={"conversation_id": conversation_of(stream)})
    cancelled_at = time.monotonic()
    assert response.status_code == 200
    assert response.json() == {"code": 0, "msg": "success"}  # as in the spec's example: no data
    stream.join(5)
    assert stream.ended_at is not None and stream.ended_at - cancelled_at < 2.0
    assert collapse(stream.names)[-2:] == ["conversation.chat.failed", "conversation.stream.done"]
    assert "conversation.chat.completed" not in stream.names


def test_cancel_ends_an_internal_chat_stream_too(start_server: StartServer, api_for: Any) -> None:
    server: ReferenceServer = start_server(token_delay=0.5)
    api: Api = api_for(server)
    bot_id = api.published_bot()
    stream = BackgroundStream(api, {"agent_id": bot_id, "query": "hi", "stream": True}, "/api/conversation/chat")
    assert stream.first_delta.wait(5)
    api.client.post("/v3/chat/cancel", json={"conversation_id": conversation_of(stream)})
    stream.join(3)
    assert stream.names[-2:] == ["conversation.chat.failed", "conversation.stream.done"]


def test_cancel_after_completion_is_harmless(alice: Api) -> None:
    bot_id = alice.published_bot()
    conversation_id = alice.chat(bot_id)["conversation_id"]
    response = alice.client.post("/v3/chat/cancel", json={"conversation_id": conversation_id})
    assert response.json() == {"code": 0, "msg": "success"}
    assert alice.chat(bot_id, ConversationID=conversation_id)["content"].startswith("Turn 2 ")
