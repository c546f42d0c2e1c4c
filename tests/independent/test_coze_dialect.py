"""Quick tests of the independent server's ``coze`` dialect: the official Python SDK
(cozepy) against it, and the readings of ``coze_dialect.py``'s table on the wire."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

# cozepy imports authlib.jose, deprecated: that warning, and only it, is silenced. (Importing
# authlib.deprecate first: it installs an "always" filter of its own, which this one precedes.)
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
    from cozepy import ChatEventType, ChatStatus, Coze, CozeAPIError, Message, TokenAuth

from .server import IndependentServer

ROOT = Path(__file__).resolve().parents[2]
EPOCH_FLOOR = 1_500_000_000


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def server() -> Iterator[IndependentServer]:
    with IndependentServer(dialect="coze", token_delay=0.002) as running:
        yield running


def key(server: IndependentServer, principal: str = "alice") -> str:
    return server.principals[principal][0]


def sdk(server: IndependentServer, principal: str = "alice") -> Coze:
    return Coze(auth=TokenAuth(key(server, principal)), base_url=server.url)


def call(server: IndependentServer, method: str, path: str, body: Any = None, *, principal: str | None = "alice",
         headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {"Authorization": f"Bearer {key(server, principal)}"} if principal else {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return client.request(method, path, json=body, headers={**sent, **(headers or {})})


def envelope(response: httpx.Response, code: int = 0) -> dict[str, Any]:
    """HTTP 200 whatever the code, the log id in the header and in detail.logid."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and isinstance(body["msg"], str), body
    assert body["detail"]["logid"] == response.headers["x-tt-logid"]
    assert ("data" in body) is (code == 0 and response.request.url.path != "/v1/bot/update")
    return body


def new_bot(server: IndependentServer, principal: str = "alice", publish: bool = True, name: str = "客服助手") -> str:
    coze = sdk(server, principal)
    bot_id = coze.bots.create(space_id="space-独立", name=name).bot_id
    assert bot_id.isdigit()
    if publish:
        coze.bots.publish(bot_id=bot_id)
    return bot_id


def question(text: str = "你好") -> list[Message]:
    return [Message.build_user_question_text(text)]


def chat_body(bot_id: str, text: str = "你好", **extra: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "user_id": "user_001",
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}], **extra}


def raw_stream(server: IndependentServer, body: dict[str, Any], query: str = "") -> tuple[str, bytes]:
    """A stream: true chat over a bare socket, read to the server's close: (head, body)."""
    parts = urlsplit(server.url)
    data = json.dumps(body).encode()
    head = (f"POST /v3/chat{query} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key(server)}\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head_bytes, _, content = received.partition(b"\r\n\r\n")
    return head_bytes.decode("latin-1"), content


def parse_events(content: bytes) -> list[tuple[str, str]]:
    """This dialect's framing exactly: CRLF only, each event one ``event: `` and one
    ``data: `` line (a space after each colon), then a blank line."""
    text = content.decode("utf-8")
    assert "\n" not in text.replace("\r\n", "") and "\r" not in text.replace("\r\n", "")
    assert text.endswith("\r\n\r\n")
    events = []
    for block in text[:-4].split("\r\n\r\n"):
        name_line, data_line = block.split("\r\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        events.append((name_line[len("event: "):], data_line[len("data: "):]))
    return events


def wait_status(server: IndependentServer, conversation_id: str, chat_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        chat = envelope(call(server, "GET", f"/v3/chat/retrieve?conversation_id={conversation_id}&chat_id={chat_id}"))
        if chat["data"]["status"] == status or time.monotonic() > deadline:
            assert chat["data"]["status"] == status, chat
            return dict(chat["data"])
        time.sleep(0.02)


# --------------------------------------------------------------------------- selection


def test_dialect_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INDEPENDENT_DIALECT", raising=False)
    assert IndependentServer().dialect == "doc"
    monkeypatch.setenv("INDEPENDENT_DIALECT", "coze")
    assert IndependentServer().dialect == "coze"
    assert IndependentServer(dialect="doc").dialect == "doc"
    with pytest.raises(ValueError, match="dialect"):
        IndependentServer(dialect="cloud")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_dialect_on_the_command_line(how: str) -> None:
    env = {**os.environ, "INDEPENDENT_DIALECT": "coze" if how == "env" else "doc"}
    args = [sys.executable, "-m", "tests.independent.server", "--token-delay", "0"]
    if how == "flag":
        args += ["--dialect", "coze"]
    with subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("serving the coze dialect on http://127.0.0.1:"), line
            url = line.split(" on ", 1)[1].strip()
            answer = httpx.post(f"{url}/v1/bot/create", json={"space_id": "s", "name": "n"}, timeout=10)
            assert answer.json()["code"] == 4100  # the coze dialect's auth failure
        finally:
            process.terminate()  # this test's own child, by its handle
            process.wait(timeout=10)


# --------------------------------------------------------------------------- cozepy


def test_cozepy_parses_the_stream(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    events = list(sdk(server).chat.stream(bot_id=bot_id, user_id="user_001", additional_messages=question()))
    kinds = [event.event for event in events]
    assert kinds[0] == ChatEventType.CONVERSATION_CHAT_CREATED and kinds[-1] == ChatEventType.CONVERSATION_CHAT_COMPLETED
    assert ChatEventType.CONVERSATION_CHAT_IN_PROGRESS not in kinds  # the start event left out
    deltas = [e.message for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA and e.message]
    completed = [e.message for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED and e.message]
    assert len({len(d.content) for d in deltas}) > 2  # irregular sizes
    assert [m.type for m in completed] == ["answer", "verbose", "follow_up"]
    assert "".join(d.content for d in deltas) == completed[0].content and "🙂" in completed[0].content
    chats = [e.chat for e in events if e.chat is not None]
    assert len({c.id for c in chats}) == 1 and len({c.conversation_id for c in chats}) == 1
    assert all(m.chat_id == chats[0].id and m.conversation_id == chats[0].conversation_id for m in completed)
    usage = chats[-1].usage
    assert usage is not None and usage.token_count == usage.input_count + usage.output_count > 0
    assert chats[0].usage is not None and chats[0].usage.token_count == 0  # usage on every chat event
    assert chats[-1].status == ChatStatus.COMPLETED and chats[-1].completed_at and chats[-1].failed_at == 0


def test_cozepy_create_and_poll(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    coze = sdk(server)
    poll = coze.chat.create_and_poll(bot_id=bot_id, user_id="user_001", additional_messages=question("第一问"))
    assert poll.chat.status == ChatStatus.COMPLETED and poll.messages is not None
    assert [(m.role, m.type) for m in poll.messages][:2] == [("user", "question"), ("assistant", "answer")]
    assert "第一问" in poll.messages[1].content
    # The same conversation, continued (cozepy sends ?conversation_id=<id>).
    again = coze.chat.create_and_poll(bot_id=bot_id, user_id="user_001", conversation_id=poll.chat.conversation_id,
                                      additional_messages=question("第二问"))
    assert again.chat.conversation_id == poll.chat.conversation_id and again.messages is not None
    assert "第2个问题" in again.messages[1].content


def test_cozepy_cancel_of_a_finished_chat_is_4104(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    coze = sdk(server)
    poll = coze.chat.create_and_poll(bot_id=bot_id, user_id="user_001", additional_messages=question())
    with pytest.raises(CozeAPIError) as caught:
        coze.chat.cancel(conversation_id=poll.chat.conversation_id, chat_id=poll.chat.id)
    assert caught.value.code == 4104 and caught.value.logid


def test_cozepy_bot_lifecycle(server: IndependentServer) -> None:
    coze = sdk(server)
    bot_id = coze.bots.create(space_id="7350000000000000001", name="客服助手", description="专业",
                              prompt_info={"prompt": "你是客服"},  # type: ignore[arg-type]
                              ).bot_id
    with pytest.raises(CozeAPIError) as caught:
        coze.bots.retrieve(bot_id=bot_id)  # get_online_info: never published
    assert caught.value.code == 4200
    with pytest.raises(CozeAPIError) as caught:
        coze.bots.retrieve(bot_id=bot_id, use_api_version=2)  # /v1/bots/:id, published by default
    assert caught.value.code == 4200
    draft = coze.bots.retrieve(bot_id=bot_id, use_api_version=2, is_published=False)
    assert (draft.bot_id, draft.name, draft.version) == (bot_id, "客服助手", "")
    assert draft.prompt_info is not None and draft.prompt_info.prompt == "你是客服"

    first = coze.bots.publish(bot_id=bot_id)
    assert first.bot_id == bot_id and first.version and first.version.isdigit()
    coze.bots.update(bot_id=bot_id, name="高级客服助手", description="更专业")
    online = coze.bots.retrieve(bot_id=bot_id)
    assert (online.bot_id, online.name, online.description, online.version) == (bot_id, "客服助手", "专业",
                                                                                 first.version)
    assert coze.bots.retrieve(bot_id=bot_id, use_api_version=2).name == "客服助手"
    assert coze.bots.retrieve(bot_id=bot_id, use_api_version=2, is_published=False).name == "高级客服助手"

    second = coze.bots.publish(bot_id=bot_id)
    assert second.version and int(second.version) > int(first.version)
    online = coze.bots.retrieve(bot_id=bot_id)
    assert (online.name, online.version) == ("高级客服助手", second.version)
    assert online.create_time and online.create_time >= EPOCH_FLOOR


# --------------------------------------------------------------------------- the wire


def test_stream_framing_on_the_wire(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    head, content = raw_stream(server, chat_body(bot_id, stream=True), "?conversation_id=")
    assert head.startswith("HTTP/1.0 200")
    assert "Content-Type: text/event-stream; charset=utf-8" in head and "x-tt-logid: " in head
    events = parse_events(content)
    assert events[-1] == ("done", '"[DONE]"')
    assert [name for name, _ in events].count("done") == 1
    payloads = [json.loads(data) for name, data in events[:-1]]
    assert all(isinstance(p, dict) for p in payloads)
    ids = [v for p in payloads for k, v in p.items() if k.endswith("id")]
    assert ids and all(isinstance(v, str) and v.isdigit() for v in ids)
    created = payloads[0]
    assert created["status"] == "created" and created["completed_at"] == 0 and created["failed_at"] == 0
    assert list(created)[-1] == "id" and "section_id" in created and "meta_data" in created


def test_non_stream_chat_and_polling(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    body = chat_body(bot_id, meta_data={"k": "v"})  # no stream key: a JSON answer
    chat = envelope(call(server, "POST", "/v3/chat?conversation_id=", body))["data"]
    assert chat["status"] == "in_progress" and chat["meta_data"] == {"k": "v"}
    for key_ in ("id", "conversation_id", "bot_id"):
        assert isinstance(chat[key_], str) and chat[key_].isdigit()
    done = wait_status(server, chat["conversation_id"], chat["id"], "completed")
    assert done["usage"]["token_count"] == done["usage"]["input_count"] + done["usage"]["output_count"]
    via_post = envelope(call(server, "POST", f"/v3/chat/retrieve?conversation_id={chat['conversation_id']}"
                             f"&chat_id={chat['id']}"))["data"]
    assert via_post["status"] == "completed"
    listed = envelope(call(server, "GET", f"/v3/chat/message/list?conversation_id={chat['conversation_id']}"
                           f"&chat_id={chat['id']}"))["data"]
    assert [(m["role"], m["type"]) for m in listed] == [
        ("user", "question"), ("assistant", "answer"), ("assistant", "verbose"), ("assistant", "follow_up")]


def test_cancel_in_flight() -> None:
    with IndependentServer(dialect="coze", token_delay=0.2) as slow:
        bot_id = new_bot(slow)
        result: dict[str, Any] = {}
        reader = threading.Thread(target=lambda: result.update(stream=raw_stream(slow, chat_body(bot_id, stream=True))))
        reader.start()
        deadline = time.monotonic() + 10
        while not slow.coze_store.chats and time.monotonic() < deadline:
            time.sleep(0.01)
        chat = next(iter(slow.coze_store.chats.values()))
        time.sleep(0.5)  # a few deltas
        ids = {"conversation_id": chat.conversation.conversation_id, "chat_id": chat.chat_id}
        # A second chat while the first runs: the conversation is busy.
        envelope(call(slow, "POST", f"/v3/chat?conversation_id={ids['conversation_id']}", chat_body(bot_id)), 4016)
        canceled = envelope(call(slow, "POST", "/v3/chat/cancel", ids))["data"]
        assert canceled["status"] == "canceled" and canceled["id"] == chat.chat_id
        assert wait_status(slow, ids["conversation_id"], ids["chat_id"], "canceled")
        reader.join(timeout=10)
        assert not reader.is_alive()
        events = parse_events(result["stream"][1])
        names = [name for name, _ in events]
        # The partial answer completed, then an error event and the close: no done.
        assert names[-2:] == ["conversation.message.completed", "error"] and "done" not in names
        deltas = "".join(json.loads(data)["content"] for name, data in events if name == "conversation.message.delta")
        assert json.loads(events[-2][1])["content"] == deltas
        assert envelope(call(slow, "POST", "/v3/chat/cancel", ids), 4104)
        assert envelope(call(slow, "POST", "/v3/chat/cancel", {"conversation_id": ids["conversation_id"]}), 4000)


def test_server_stop_fails_a_running_stream() -> None:
    slow = IndependentServer(dialect="coze", token_delay=0.2).start()
    bot_id = new_bot(slow)
    result: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: result.update(stream=raw_stream(slow, chat_body(bot_id, stream=True))))
    reader.start()
    time.sleep(0.5)
    slow.stop()
    reader.join(timeout=10)
    names = [name for name, _ in parse_events(result["stream"][1])]
    assert names[-2:] == ["conversation.chat.failed", "done"]


def test_chat_errors(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    unpublished = new_bot(server, publish=False)
    for body in ({"user_id": "u"}, {"bot_id": bot_id}, {"bot_id": int(bot_id), "user_id": "u"},
                 {**chat_body(bot_id), "stream": "yes"}):
        envelope(call(server, "POST", "/v3/chat", body), 4000)
    envelope(call(server, "POST", "/v3/chat", chat_body("123456789")), 4200)
    envelope(call(server, "POST", "/v3/chat", chat_body(unpublished, stream=True)), 4015)  # JSON, not a stream
    envelope(call(server, "POST", "/v3/chat?conversation_id=987654321", chat_body(bot_id)), 4200)
    envelope(call(server, "GET", "/v3/chat/retrieve?conversation_id=1&chat_id=2"), 4200)
    envelope(call(server, "GET", "/v3/chat/retrieve?conversation_id=1"), 4000)


def test_auth_and_envelope(server: IndependentServer) -> None:
    envelope(call(server, "POST", "/v1/bot/create", {"space_id": "s", "name": "n"}, principal=None), 4100)
    envelope(call(server, "POST", "/v1/bot/create", {"space_id": "s", "name": "n"}, principal=None,
                  headers={"Authorization": "Bearer not-a-key"}), 4100)
    envelope(call(server, "POST", "/v1/bot/create", {"name": "n"}), 4000)
    envelope(call(server, "POST", "/v1/bot/create", {"space_id": "s", "name": "n" * 21}), 4000)
    created = envelope(call(server, "POST", "/v1/bot/create", {"space_id": "s", "name": "名字"}))
    assert list(created) == ["data", "detail", "msg", "code"] and created["msg"] == ""
    bot_id = created["data"]["bot_id"]
    assert "data" not in envelope(call(server, "POST", "/v1/bot/update", {"bot_id": bot_id, "name": "新"}))
    published = envelope(call(server, "POST", "/v1/bot/publish", {"bot_id": bot_id, "connector_ids": ["1024"]}))
    assert isinstance(published["data"]["version"], str)
    missing = call(server, "GET", "/v1/no/such/route")
    assert missing.status_code == 404 and missing.json()["code"] == 4200


def test_isolation(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    chat = envelope(call(server, "POST", "/v3/chat", chat_body(bot_id)))["data"]
    ids = f"conversation_id={chat['conversation_id']}&chat_id={chat['id']}"
    envelope(call(server, "GET", f"/v1/bot/get_online_info?bot_id={bot_id}", principal="bob"), 4200)
    envelope(call(server, "GET", f"/v1/bots/{bot_id}", principal="bob"), 4200)
    envelope(call(server, "POST", "/v1/bot/update", {"bot_id": bot_id, "name": "x"}, principal="bob"), 4200)
    envelope(call(server, "POST", "/v3/chat", chat_body(bot_id), principal="bob"), 4200)
    envelope(call(server, "GET", f"/v3/chat/retrieve?{ids}", principal="bob"), 4200)
    envelope(call(server, "GET", f"/v3/chat/message/list?{ids}", principal="bob"), 4200)
    envelope(call(server, "POST", "/v3/chat/cancel", {"conversation_id": chat["conversation_id"],
                                                      "chat_id": chat["id"]}, principal="bob"), 4200)
    bob_bot = new_bot(server, "bob")
    envelope(call(server, "POST", f"/v3/chat?conversation_id={chat['conversation_id']}", chat_body(bob_bot),
                  principal="bob"), 4200)
    wait_status(server, chat["conversation_id"], chat["id"], "completed")
