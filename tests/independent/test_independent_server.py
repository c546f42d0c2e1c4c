"""Tests of the independent clean server: every endpoint over a real socket, and the
readings it takes (its module docstring's table) really on the wire."""

from __future__ import annotations

import ast
import email.utils
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .server import FixedWindowLimiter, IndependentServer

HERE = Path(__file__).resolve().parent
#: READING "Timestamps": seconds since the epoch.
EPOCH_FLOOR = 1_500_000_000


# --------------------------------------------------------------------------- helpers


def mode_of(path: str) -> str:
    """The auth mode of an endpoint's class: the only one this server accepts there."""
    return "cookie" if path.startswith("/api/") else "bearer"


def auth(server: IndependentServer, principal: str = "alice", mode: str = "bearer") -> dict[str, str]:
    api_key, session_key = server.principals[principal]
    if mode == "bearer":
        return {"Authorization": f"Bearer {api_key}"}
    return {"Cookie": f"session_key={session_key}"}


def call(server: IndependentServer, method: str, path: str, body: Any = None, *, principal: str = "alice",
         mode: str | None = None, content: bytes | None = None) -> httpx.Response:
    headers = auth(server, principal, mode or mode_of(path))
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        if content is not None:
            return client.request(method, path, content=content, headers={"Content-Type": "application/json"})
        return client.request(method, path, json=body)


def ok_data(response: httpx.Response) -> Any:
    created = response.request.url.path == "/api/draftbot/create"
    assert response.status_code == (201 if created else 200), response.text
    envelope = response.json()
    assert envelope["code"] == 0 and envelope["msg"] == "ok", envelope
    assert list(envelope)[-1] == "code" and isinstance(envelope["detail"]["logid"], str)
    return envelope.get("data")


def assert_error(response: httpx.Response, code: int) -> None:
    """HTTP 200 whatever the code, and no data key (the readings this server takes)."""
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert set(envelope) == {"detail", "msg", "code"} and envelope["code"] == code, envelope
    assert isinstance(envelope["msg"], str) and (envelope["msg"] == "") is (code == 401)


def assert_seconds(value: Any) -> None:
    assert isinstance(value, int) and EPOCH_FLOOR <= value <= time.time() + 1


def assert_big_int(value: Any) -> None:
    assert isinstance(value, int) and not isinstance(value, bool) and 2**53 < value < 2**63


def create_bot(server: IndependentServer, principal: str = "alice", publish: bool = True, **fields: str) -> int:
    data = ok_data(call(server, "POST", "/api/draftbot/create", {"name": "客服助手", **fields}, principal=principal))
    assert isinstance(data["bot_id"], str) and data["bot_id"].isdigit()
    bot_id = int(data["bot_id"])
    if publish:
        ok_data(call(server, "POST", "/api/draftbot/publish", {"bot_id": bot_id}, principal=principal))
    return bot_id


def chat_body(bot_id: int, text: str = "你好", **extra: Any) -> dict[str, Any]:
    return {"bot_id": str(bot_id), "user_id": "user_001",
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}], **extra}


@dataclass(frozen=True)
class Raw:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


def raw_request(server: IndependentServer, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> Raw:
    """One HTTP/1.1 request over a bare socket, read to the server's close: the wire as sent."""
    parts = urlsplit(server.url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines)]
    return Raw(status_line, pairs, content)


@dataclass(frozen=True)
class Event:
    name: str
    data: str
    event_id: str | None

    @property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict)
        return value


@dataclass(frozen=True)
class Stream:
    events: list[Event]
    comments: int
    retry: list[str]
    data_lines: int


def parse_crlf_stream(body: bytes) -> Stream:
    """Split this server's event stream: a BOM first, CRLF line ends only (a bare LF or CR
    here means the server did not write what it claims), no space after the colon."""
    assert body.startswith("\ufeff".encode()), "no leading BOM"
    text = body.decode("utf-8")[1:]
    assert "\n" not in text.replace("\r\n", "") and "\r" not in text.replace("\r\n", ""), "line ends not CRLF"
    events: list[Event] = []
    comments = data_lines = 0
    retry: list[str] = []
    for block in text.split("\r\n\r\n"):
        if not block:
            continue
        name, data, event_id = "message", [], None
        for line in block.split("\r\n"):
            key, _, value = line.partition(":")
            assert not value.startswith(" ") or key == "", line
            if key == "":
                comments += 1
            elif key == "event":
                name = value
            elif key == "data":
                data.append(value)
                data_lines += 1
            elif key == "id":
                event_id = value
            elif key == "retry":
                retry.append(value)
        if data:  # a block without data lines dispatches nothing (WHATWG)
            events.append(Event(name, "\n".join(data), event_id))
    return Stream(events, comments, retry, data_lines)


def stream_chat(server: IndependentServer, body: dict[str, Any], path: str = "/v3/chat") -> Raw:
    data = json.dumps(body).encode()
    return raw_request(server, "POST", path, {**auth(server, mode=mode_of(path)), "Content-Type": "application/json"},
                       data)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _doc_dialect() -> Iterator[None]:
    """These are tests of the doc dialect, whatever INDEPENDENT_DIALECT says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("INDEPENDENT_DIALECT", raising=False)
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[IndependentServer]:
    with IndependentServer(token_delay=0.001, rate_limits=False) as running:
        yield running


@pytest.fixture(scope="module")
def bot_id(server: IndependentServer) -> int:
    return create_bot(server)


# --------------------------------------------------------------------------- independence


@pytest.mark.parametrize("filename", ["__init__.py", "server.py", "coze_dialect.py", "studio_dialect.py",
                                      "test_independent_server.py", "test_coze_dialect.py", "test_studio_dialect.py"])
def test_imports_nothing_from_conformance(filename: str) -> None:
    """Written by other hands: one shared bug with the suite or the reference would pass on
    both sides."""
    tree = ast.parse((HERE / filename).read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.append(node.module)
    if filename != "__init__.py":  # the package docstring alone imports nothing
        assert imported, "the parse found no imports at all: the check would be vacuous"
    assert not [name for name in imported if name.split(".")[0] == "conformance"]
    if filename in ("server.py", "coze_dialect.py", "studio_dialect.py"):  # the server: the standard library only
        assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}


# --------------------------------------------------------------------------- bots


def test_bot_lifecycle(server: IndependentServer) -> None:
    created = ok_data(call(server, "POST", "/api/draftbot/create",
                           {"name": "客服助手", "description": "专业", "icon_url": "https://example.com/i.png",
                            "prompt": "你是客服", "model": "gpt-4"}))
    bot = int(created["bot_id"])
    assert created["status"] == "draft" and created["name"] == "客服助手"
    assert_seconds(created["created_at"])
    assert_seconds(created["updated_at"])
    assert_error(call(server, "GET", f"/v1/bot/get_online_info?bot_id={bot}"), 400)  # never published
    assert ok_data(call(server, "GET", f"/v1/bots/{bot}"))["status"] == "draft"

    first = ok_data(call(server, "POST", "/api/draftbot/publish", {"bot_id": bot}))
    assert (first["bot_id"], first["version"], first["status"]) == (str(bot), 1, "online")
    assert_seconds(first["published_at"])

    updated = ok_data(call(server, "POST", "/api/draftbot/update_display_info",
                           {"bot_id": bot, "name": "高级客服助手", "description": "更专业"}))
    assert (updated["name"], updated["description"], updated["icon_url"]) == (
        "高级客服助手", "更专业", "https://example.com/i.png")
    # Both info endpoints show the online version, until the next publish.
    online = ok_data(call(server, "GET", f"/v1/bot/get_online_info?bot_id={bot}"))
    assert (online["name"], online["version"], online["model"]) == ("客服助手", 1, "gpt-4")
    assert ok_data(call(server, "GET", f"/v1/bots/{bot}"))["name"] == "客服助手"

    second = ok_data(call(server, "POST", "/api/draftbot/publish", {"bot_id": bot}))
    assert second["version"] == 2
    online = ok_data(call(server, "GET", f"/v1/bot/get_online_info?bot_id={bot}"))
    assert (online["name"], online["description"], online["version"], online["status"]) == (
        "高级客服助手", "更专业", 2, "online")
    detail = ok_data(call(server, "GET", f"/v1/bots/{bot}"))
    assert (detail["bot_id"], detail["name"], detail["version"]) == (str(bot), "高级客服助手", 2)
    assert "tools" not in detail  # the API cannot set them: absent
    for key in ("created_at", "updated_at", "published_at"):
        assert_seconds(detail[key])


def test_unset_model_is_empty(server: IndependentServer) -> None:
    bot = create_bot(server)
    assert ok_data(call(server, "GET", f"/v1/bot/get_online_info?bot_id={bot}"))["model"] == ""
    assert ok_data(call(server, "GET", f"/v1/bots/{bot}"))["model"] == ""


def test_bot_ids_are_big_decimal_strings_in_answers(server: IndependentServer) -> None:
    """Bot ids are 19 digits above 2**53, written as decimal strings; requests to /api send
    them as JSON integers (their table's int64), and the integer keeps every digit."""
    response = call(server, "POST", "/api/draftbot/create", {"name": "big"})
    text = ok_data(response)["bot_id"]
    assert isinstance(text, str) and len(text) == 19 and int(text) > 2**53
    assert f'"bot_id":"{text}"'.encode() in response.content
    published = ok_data(call(server, "POST", "/api/draftbot/publish", {"bot_id": int(text)}))
    assert published["bot_id"] == text
    assert_error(call(server, "POST", "/api/draftbot/publish", {"bot_id": int(text) + 1}), 400)
    assert_error(call(server, "POST", "/api/draftbot/publish", {"bot_id": text}), 400)  # the table's type only
    assert ok_data(call(server, "GET", f"/v1/bots/{text}"))["bot_id"] == text


# --------------------------------------------------------------------------- chat


def test_chat_json_and_continued_conversation(server: IndependentServer, bot_id: int) -> None:
    response = call(server, "POST", "/v3/chat", chat_body(bot_id, "你好"))
    first = ok_data(response)
    assert set(first) == {"conversation_id", "id", "content", "role", "type", "created_at"}  # the page's
    for key in ("conversation_id", "id"):
        assert_big_int(first[key])
    assert f'"conversation_id":{first["conversation_id"]}'.encode() in response.content  # a JSON integer
    assert (first["role"], first["type"]) == ("assistant", "answer") and first["content"]
    assert_seconds(first["created_at"])
    conversation = first["conversation_id"]
    # Only the body's conversation_id is honoured, as a string of digits or an integer.
    again = ok_data(call(server, "POST", "/v3/chat", chat_body(bot_id, "你好", conversation_id=str(conversation))))
    assert again["conversation_id"] == conversation
    assert again["content"] != first["content"], "the answer ignores the history"
    as_int = ok_data(call(server, "POST", "/v3/chat", chat_body(bot_id, "x", conversation_id=conversation)))
    assert as_int["conversation_id"] == conversation
    # ConversationID and ?conversation_id= are ignored: a new conversation.
    by_table_key = ok_data(call(server, "POST", "/v3/chat", chat_body(bot_id, "x", ConversationID=str(conversation))))
    by_query = ok_data(call(server, "POST", f"/v3/chat?conversation_id={conversation}", chat_body(bot_id, "x")))
    assert conversation not in {by_table_key["conversation_id"], by_query["conversation_id"]}


def test_unseen_conversation_starts_a_new_one(server: IndependentServer, bot_id: int) -> None:
    """An unknown conversation id, or another principal's, starts a new conversation with a
    new id; the other's history stays theirs."""
    theirs_bot = create_bot(server, principal="bob")
    theirs = ok_data(call(server, "POST", "/v3/chat", chat_body(theirs_bot, "秘密"), principal="bob"))
    for ref in ("conv_nope", "1234567890123456789", str(theirs["conversation_id"])):
        answer = ok_data(call(server, "POST", "/v3/chat", chat_body(bot_id, "x", conversation_id=ref)))
        assert answer["conversation_id"] != theirs["conversation_id"] and str(answer["conversation_id"]) != ref
        assert "秘密" not in answer["content"]


@pytest.mark.slow
def test_stream_wire(server: IndependentServer, bot_id: int) -> None:
    """The SSE choices are really on the wire: HTTP/1.0, close-delimited, a BOM and retry:
    first, CRLF, no space after the colon, id: lines, multi-line data, comments, no start
    events, no event key, a verbose message without deltas, and done last."""
    raw = stream_chat(server, chat_body(bot_id, stream=True))
    assert raw.status_line == "HTTP/1.0 200 OK"
    assert raw.header("Content-Type") == "text/event-stream;charset=UTF-8"
    assert raw.header("Connection") == "close"
    assert raw.header("Content-Length") is None and raw.header("Transfer-Encoding") is None
    assert b"event:conversation.message.delta\r\ndata:{\r\n" in raw.body
    assert b"event: " not in raw.body and b"data: " not in raw.body
    assert raw.body.startswith("\ufeffretry:3000\r\n\r\nevent:ping\r\n\r\n".encode())
    stream = parse_crlf_stream(raw.body)
    assert stream.comments >= 1 and stream.retry == ["3000"] and stream.data_lines > 3 * len(stream.events)
    events = stream.events
    assert [e.event_id for e in events] == [str(n) for n in range(1, len(events) + 1)]
    names = [e.name for e in events]
    assert not {"conversation.chat.created", "conversation.chat.in_progress"} & set(names)
    assert names[-2:] == ["conversation.chat.completed", "done"] and events[-1].payload == {}
    for event in events:
        assert "event" not in event.payload
    completed = [e.payload["message_item"] for e in events if e.name == "conversation.message.completed"]
    deltas = [e.payload["message_item"] for e in events if e.name == "conversation.message.delta"]
    assert [c.get("type") for c in completed] == ["verbose", None, "follow_up"]
    assert not {completed[0]["id"], completed[2]["id"]} & {d["id"] for d in deltas}
    assert len(deltas) >= 5 and {d["id"] for d in deltas} == {completed[1]["id"]}
    assert "".join(d["content"] for d in deltas) == completed[1]["content"]
    for message in [*completed, *deltas]:
        assert_big_int(message["id"])
    for message in [completed[1], *deltas]:
        assert set(message) == {"id", "content", "role"}  # the answer: the example's keys only
    for message in (completed[0], completed[2]):
        assert message["bot_id"] == str(bot_id) and message["chat_id"].startswith("chat_")
    record = events[-2].payload["run_record_item"]
    usage = record["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert_big_int(record["conversation_id"])


def test_stream_errors_are_an_error_event_then_done(server: IndependentServer, bot_id: int) -> None:
    """A stream: true chat's errors found by the handler: error {code,msg}, then done."""
    raw = stream_chat(server, {"bot_id": str(bot_id), "stream": True})  # no user_id
    assert raw.status_line == "HTTP/1.0 200 OK" and raw.header("Content-Type").startswith("text/event-stream")
    events = parse_crlf_stream(raw.body).events
    assert [e.name for e in events] == ["error", "done"]
    assert set(events[0].payload) == {"code", "msg"} and events[0].payload["code"] == 400


def test_stream_errors_before_the_handler_are_the_envelope(server: IndependentServer, bot_id: int) -> None:
    raw = raw_request(server, "POST", "/v3/chat", {"Content-Type": "application/json"},
                      json.dumps(chat_body(bot_id, stream=True)).encode())
    assert raw.header("Content-Type") == "application/json;charset=UTF-8"
    assert json.loads(raw.body)["code"] == 401


def test_json_wire(server: IndependentServer, bot_id: int) -> None:
    raw = raw_request(server, "GET", f"/v1/bots/{bot_id}", auth(server))
    assert raw.status_line == "HTTP/1.0 200 OK"
    assert raw.header("Connection") == "close" and raw.header("Content-Length") is None
    assert raw.header("Content-Type") == "application/json;charset=UTF-8"
    envelope = json.loads(raw.body)
    assert list(envelope) == ["data", "detail", "msg", "code"] and envelope["data"]["bot_id"] == str(bot_id)
    assert raw.body.isascii() and "客服助手".encode() not in raw.body and envelope["data"]["name"] == "客服助手"


@pytest.mark.slow
def test_stream_stays_open_after_done(server: IndependentServer, bot_id: int) -> None:
    with httpx.Client(base_url=server.url, headers=auth(server), timeout=10) as client:
        with client.stream("POST", "/v3/chat", json=chat_body(bot_id, stream=True)) as response:
            assert response.http_version == "HTTP/1.0" and response.status_code == 200
            text, done_at = "", None
            for chunk in response.iter_text():
                text += chunk
                if done_at is None and "event:done\r\n" in text:
                    done_at = time.monotonic()
            closed_at = time.monotonic()
    assert text.endswith("event:done\r\ndata:{}\r\n\r\n")
    assert done_at is not None and closed_at - done_at >= 1.0


def test_internal_chat_is_always_an_envelope(server: IndependentServer, bot_id: int) -> None:
    first = ok_data(call(server, "POST", "/api/conversation/chat", {"agent_id": bot_id, "query": "你好"}))
    again = ok_data(call(server, "POST", "/api/conversation/chat",
                         {"agent_id": bot_id, "query": "你好", "conversation_id": first["conversation_id"],
                          "stream": True}))
    assert again["conversation_id"] == first["conversation_id"] and again["content"] != first["content"]
    assert_error(call(server, "POST", "/api/conversation/chat", {"agent_id": str(bot_id), "query": "q"}), 400)


def _read_events(response: httpx.Response) -> Iterator[str]:
    """Event names as they arrive (this server writes CRLF and no space after the colon)."""
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while "\r\n\r\n" in buffer:
            block, buffer = buffer.split("\r\n\r\n", 1)
            lines = block.split("\r\n")
            if any(line.startswith("data:") for line in lines):  # else not dispatched
                yield from (line[len("event:"):] for line in lines if line.startswith("event:"))


@pytest.mark.parametrize("cancel_data", ["null", "absent"])
def test_cancel_ends_the_stream_promptly(cancel_data: str) -> None:
    with IndependentServer(token_delay=0.3, rate_limits=False, cancel_data=cancel_data) as slow:
        bot = create_bot(slow)
        conversation = ok_data(call(slow, "POST", "/v3/chat", chat_body(bot)))["conversation_id"]
        with httpx.Client(base_url=slow.url, headers=auth(slow), timeout=10) as client:
            with client.stream("POST", "/v3/chat",
                               json=chat_body(bot, stream=True, conversation_id=str(conversation))) as response:
                events = _read_events(response)
                assert next(events) == "conversation.message.completed"  # the verbose message
                started = time.monotonic()
                answer = call(slow, "POST", "/v3/chat/cancel", {"conversation_id": str(conversation)})
                assert ok_data(answer) is None
                assert ("data" in answer.json()) is (cancel_data == "null")
                rest = list(events)
                elapsed = time.monotonic() - started
        assert rest[-1] == "conversation.chat.completed"  # completed, not failed; then the close
        assert elapsed < 1.0  # the uncancelled answer would take 9 tokens x 0.3 s
        # The chat has ended: a late cancel is an error.
        assert_error(call(slow, "POST", "/v3/chat/cancel", {"conversation_id": str(conversation)}), 400)


def test_cancel_data_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INDEPENDENT_CANCEL_DATA", raising=False)
    assert IndependentServer().cancel_data == "null"
    monkeypatch.setenv("INDEPENDENT_CANCEL_DATA", "absent")
    assert IndependentServer().cancel_data == "absent"
    assert IndependentServer(cancel_data="null").cancel_data == "null"
    with pytest.raises(ValueError, match="cancel_data"):
        IndependentServer(cancel_data="value")


@pytest.mark.parametrize(("body", "code"), [
    pytest.param({}, 400, id="missing-conversation_id"),
    pytest.param({"conversation_id": "conv_unknown"}, 400, id="unknown"),
    pytest.param({"conversation_id": 7}, 400, id="unknown-int"),
    pytest.param({"conversation_id": ["1"]}, 400, id="wrong-type"),
])
def test_cancel_errors(server: IndependentServer, body: dict[str, Any], code: int) -> None:
    assert_error(call(server, "POST", "/v3/chat/cancel", body), code)


def test_stop_is_prompt_with_an_open_stream() -> None:
    slow = IndependentServer(token_delay=30, rate_limits=False).start()
    bot = create_bot(slow)
    outcome: list[str] = []
    opened = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=slow.url, headers=auth(slow), timeout=10) as client:
            with client.stream("POST", "/v3/chat", json=chat_body(bot, stream=True)) as response:
                events = _read_events(response)
                outcome.append(next(events))
                opened.set()
                outcome.extend(events)

    reader = threading.Thread(target=read)
    reader.start()
    assert opened.wait(5)
    started = time.monotonic()
    slow.stop()
    reader.join(5)
    assert time.monotonic() - started < 2 and not reader.is_alive()
    assert outcome[-2:] == ["conversation.chat.failed", "done"]


def test_stop_lets_an_accepted_request_finish() -> None:
    """Prompt, not abrupt: a request already being read when stop() begins still gets its
    answer (a cancel answered as the harness stops the server must not become a reset)."""
    running = IndependentServer(rate_limits=False).start()
    parts = urlsplit(running.url)
    body = b'{"name":"x"}'
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"POST /api/draftbot/create HTTP/1.1\r\nHost: x\r\nCookie: session_key="
                     + running.principals["alice"][1].encode()
                     + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:4])
        deadline = time.monotonic() + 5
        while not running._connections and time.monotonic() < deadline:
            time.sleep(0.001)  # until the server has accepted it and waits for the body
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        time.sleep(0.1)
        sock.sendall(body[4:])
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        stopper.join(5)
    assert received.startswith(b"HTTP/1.0 201 Created\r\n")
    assert b'"code":0' in received


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("method", "path", "body"), [
    pytest.param("POST", "/api/draftbot/update_display_info", {"bot_id": "{bot}", "name": "x"}, id="update"),
    pytest.param("POST", "/api/draftbot/publish", {"bot_id": "{bot}"}, id="publish"),
    pytest.param("GET", "/v1/bot/get_online_info?bot_id={bot}", None, id="online-info"),
    pytest.param("GET", "/v1/bots/{bot}", None, id="bot-get"),
    pytest.param("POST", "/v3/chat", {"bot_id": "{bot}", "user_id": "u"}, id="chat"),
    pytest.param("POST", "/api/conversation/chat", {"agent_id": "{bot}", "query": "q"}, id="internal-chat"),
    pytest.param("POST", "/v3/chat/cancel", {"conversation_id": "{conv}"}, id="cancel"),
])
def test_another_principals_resources_are_404(server: IndependentServer, bot_id: int, method: str, path: str,
                                              body: dict[str, Any] | None) -> None:
    """Isolation answers 404, never 403 (the other legal reading), and changes nothing."""
    conversation = ok_data(call(server, "POST", "/v3/chat", chat_body(bot_id)))["conversation_id"]
    slots: dict[str, Any] = {"{bot}": bot_id, "{conv}": str(conversation)}
    filled = None if body is None else {k: slots.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    if filled and "bot_id" in filled and path.startswith("/v3"):
        filled["bot_id"] = str(filled["bot_id"])
    before = ok_data(call(server, "GET", f"/v1/bots/{bot_id}"))
    assert_error(call(server, method, path.replace("{bot}", str(bot_id)), filled, principal="bob"), 404)
    assert ok_data(call(server, "GET", f"/v1/bots/{bot_id}")) == {**before}


@pytest.mark.parametrize(("method", "path", "body"), [
    pytest.param("POST", "/api/draftbot/update_display_info", {"bot_id": 1234567890123456789}, id="update"),
    pytest.param("POST", "/api/draftbot/publish", {"bot_id": 1234567890123456789}, id="publish"),
    pytest.param("GET", "/v1/bot/get_online_info?bot_id=1234567890123456789", None, id="online-info"),
    pytest.param("GET", "/v1/bots/1234567890123456789", None, id="bot-get"),
    pytest.param("GET", "/v1/bots/abc", None, id="bot-get-not-digits"),
    pytest.param("POST", "/v3/chat", {"bot_id": "1234567890123456789", "user_id": "u"}, id="chat-bot"),
])
def test_unknown_ids_are_400(server: IndependentServer, method: str, path: str, body: dict[str, Any] | None) -> None:
    assert_error(call(server, method, path, body), 400)


def test_never_published_bot(server: IndependentServer) -> None:
    draft = create_bot(server, publish=False)
    assert ok_data(call(server, "POST", "/v3/chat", chat_body(draft)))["content"]  # answered with the draft
    assert_error(call(server, "GET", f"/v1/bot/get_online_info?bot_id={draft}"), 400)


GOOD_MESSAGE = {"role": "user", "content": "hi", "content_type": "text"}


@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/v3/chat", {"user_id": "u"}, id="chat-missing-bot_id"),
    pytest.param("/v3/chat", {"bot_id": "{bot}"}, id="chat-missing-user_id"),
    pytest.param("/v3/chat", {"bot_id": True, "user_id": "u"}, id="chat-bot_id-bool"),
    pytest.param("/v3/chat", {"bot_id": "{int}", "user_id": "u"}, id="chat-bot_id-int"),
    pytest.param("/v3/chat", {"bot_id": "12x", "user_id": "u"}, id="chat-bot_id-not-digits"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": 5}, id="chat-user_id-int"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u", "stream": "yes"}, id="chat-stream-string"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u", "additional_messages": {}}, id="messages-object"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u",
                              "additional_messages": [{"role": "user", "content": "hi"}]}, id="message-no-type"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u",
                              "additional_messages": [{**GOOD_MESSAGE, "role": "system"}]}, id="message-bad-role"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u",
                              "additional_messages": [{**GOOD_MESSAGE, "content": 1}]}, id="message-content-int"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u",
                              "additional_messages": [{**GOOD_MESSAGE, "content_type": "file"}]}, id="message-file"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u", "meta_data": []}, id="meta_data-array"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u", "ConversationID": 12}, id="conversation-int"),
    pytest.param("/v3/chat", {"bot_id": "{bot}", "user_id": "u", "conversation_id": ""}, id="conversation-empty"),
    pytest.param("/api/conversation/chat", {"query": "q"}, id="internal-missing-agent_id"),
    pytest.param("/api/conversation/chat", {"agent_id": "{int}"}, id="internal-missing-query"),
    pytest.param("/api/conversation/chat", {"agent_id": 1.5, "query": "q"}, id="internal-agent_id-float"),
    pytest.param("/api/draftbot/create", {}, id="create-missing-name"),
    pytest.param("/api/draftbot/create", {"name": ["x"]}, id="create-name-array"),
    pytest.param("/api/draftbot/create", {"name": "x", "model": None}, id="create-model-null"),
    pytest.param("/api/draftbot/update_display_info", {"bot_id": "{bot}"}, id="update-bot_id-string"),
    pytest.param("/api/draftbot/update_display_info", {"bot_id": "{int}", "name": 3}, id="update-name-int"),
    pytest.param("/api/draftbot/publish", {}, id="publish-missing-bot_id"),
    pytest.param("/api/draftbot/publish", [1], id="body-array"),
])
def test_bad_input_is_a_400_envelope(server: IndependentServer, bot_id: int, path: str, body: Any) -> None:
    if isinstance(body, dict):
        body = {k: str(bot_id) if v == "{bot}" else bot_id if v == "{int}" else v for k, v in body.items()}
    assert_error(call(server, "POST", path, body), 400)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["bot_id", "user_id", "stream", "ConversationID", "additional_messages", "meta_data", "agent_id",
          "query", "conversation_id", "name", "description", "icon_url", "prompt", "model", "role", "content",
          "content_type", "type"]
BODIES = JSON_VALUES | st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6)
POST_PATHS = ["/v3/chat", "/v3/chat/cancel", "/api/conversation/chat", "/api/draftbot/create",
              "/api/draftbot/update_display_info", "/api/draftbot/publish"]
CODES = {0, 400, 401, 403, 404, 429, 500}


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(path=st.sampled_from(POST_PATHS), body=BODIES)
def test_arbitrary_json_never_gets_a_5xx(server: IndependentServer, path: str, body: Any) -> None:
    """Bad input gets an error envelope with a 4xx code (or, when it happens to be valid, a
    success), never a 5xx: always HTTP 200 here (201 for a successful create)."""
    response = call(server, "POST", path, body)
    assert response.status_code in (200, 201), response.text
    if response.headers["Content-Type"].startswith("application/json"):
        code = response.json()["code"]
        assert code in CODES and code < 500


@pytest.mark.parametrize("content", [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b'{"name": NaN}', id="nan"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"[" * 100_000, id="deep-nesting"),
    pytest.param(b'{"name":"' + b"x" * (4 * 1024 * 1024) + b'"}', id="over-4MiB"),
])
def test_unparseable_bodies_are_400(server: IndependentServer, content: bytes) -> None:
    assert_error(call(server, "POST", "/api/draftbot/create", content=content), 400)


def test_a_huge_body_is_accepted(server: IndependentServer) -> None:
    name = "x" * (1024 * 1024 + 1)
    assert ok_data(call(server, "POST", "/api/draftbot/create", {"name": name}))["name"] == name


@pytest.mark.parametrize(("method", "path", "code"), [
    pytest.param("GET", "/nope", 404, id="unknown-path"),
    pytest.param("GET", "/v3/chat", 400, id="wrong-method"),
    pytest.param("DELETE", "/v1/bots/1", 400, id="delete"),
    pytest.param("POST", "/v1/bots/1/extra", 404, id="deeper-path"),
])
def test_unknown_routes_and_wrong_methods(server: IndependentServer, method: str, path: str, code: int) -> None:
    assert_error(call(server, method, path), code)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("path", ["/v1/bots/{bot}", "/v3/chat", "/api/draftbot/publish"])
@pytest.mark.parametrize("mode", ["bearer", "cookie"])
def test_only_the_class_auth_mode(server: IndependentServer, bot_id: int, path: str, mode: str) -> None:
    """Bearer on /v1 and /v3, the session_key cookie on /api; the other mode is 401."""
    body = {"/v3/chat": chat_body(bot_id), "/api/draftbot/publish": {"bot_id": bot_id}}.get(path)
    response = call(server, "GET" if body is None else "POST", path.replace("{bot}", str(bot_id)), body, mode=mode)
    if mode == mode_of(path):
        ok_data(response)
    else:
        assert_error(response, 401)


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="none"),
    pytest.param({"Authorization": "Bearer wrong"}, id="wrong-bearer"),
    pytest.param({"Authorization": "Basic {api}"}, id="wrong-scheme"),
    pytest.param({"Cookie": "session_key={session}"}, id="cookie-on-openapi"),
    pytest.param({"Authorization": "Bearer {session}"}, id="session-as-bearer"),
])
def test_bad_credentials_are_401(server: IndependentServer, bot_id: int, headers: dict[str, str]) -> None:
    api_key, session = server.principals["alice"]
    filled = {k: v.replace("{api}", api_key).replace("{session}", session) for k, v in headers.items()}
    response = httpx.get(f"{server.url}/v1/bots/{bot_id}", headers=filled, timeout=10)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_other_modes_credential_is_not_looked_at(server: IndependentServer, bot_id: int) -> None:
    bob_session = server.principals["bob"][1]
    headers = {**auth(server), "Cookie": f"session_key={bob_session}"}
    response = httpx.get(f"{server.url}/v1/bots/{bot_id}", headers=headers, timeout=10)
    assert ok_data(response)["bot_id"] == str(bot_id)


# --------------------------------------------------------------------------- rate limits


def _over_the_limit(server: IndependentServer, limit: int, method: str, path: str, body: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, headers=auth(server, mode=mode_of(path)), timeout=10) as client:
        for _ in range(limit):
            ok_data(client.request(method, path, json=body))
        return client.request(method, path, json=body)


@pytest.mark.parametrize(("limit", "method", "path"), [
    pytest.param(30, "POST", "/api/draftbot/create", id="management"),
    pytest.param(100, "GET", "/v1/bots/{bot}", id="info"),
])
def test_rate_limits_per_group_and_principal(limit: int, method: str, path: str) -> None:
    with IndependentServer(token_delay=0) as limited:
        bot = create_bot(limited, principal="bob", publish=False)
        path = path.replace("{bot}", str(bot))
        body = {"name": "n"} if method == "POST" else None
        with httpx.Client(base_url=limited.url, headers=auth(limited, "bob", mode_of(path)), timeout=10) as client:
            for _ in range(limit - (1 if method == "POST" else 0)):
                ok_data(client.request(method, path, json=body))
            refused = client.request(method, path, json=body)
        assert_error(refused, 429)
        reset = email.utils.parsedate_to_datetime(refused.headers["Retry-After"]).timestamp()
        assert time.time() - 1 < reset <= time.time() + 60
        other = create_bot(limited, principal="alice", publish=False)
        ok_data(call(limited, method, path.replace(str(bot), str(other)), body))


def test_errors_give_their_slot_back() -> None:
    with IndependentServer(token_delay=0) as limited:
        with httpx.Client(base_url=limited.url, headers=auth(limited, mode="cookie"), timeout=10) as client:
            for _ in range(40):
                assert_error(client.post("/api/draftbot/publish", json={}), 400)
        assert_error(_over_the_limit(limited, 30, "POST", "/api/draftbot/create", {"name": "n"}), 429)


@pytest.mark.slow
def test_chat_is_limited_per_user_id_and_cancel_not_at_all() -> None:
    with IndependentServer(token_delay=0) as limited:
        bot = create_bot(limited)
        refused = _over_the_limit(limited, 60, "POST", "/v3/chat", chat_body(bot))
        assert_error(refused, 429)
        ok_data(call(limited, "POST", "/v3/chat", {**chat_body(bot), "user_id": "user_002"}))
        for _ in range(70):
            assert_error(call(limited, "POST", "/v3/chat/cancel", {"conversation_id": "1"}), 400)


def test_fixed_window_limiter_resets_at_the_window_end() -> None:
    """Fixed, not sliding: a full burst at the end of one window and another at the start
    of the next both pass."""
    now = [1_700_000_000.25]
    limiter = FixedWindowLimiter({"management": 3}, clock=lambda: now[0])
    assert [limiter.hit("alice", "management") for _ in range(3)] == [None] * 3
    assert limiter.hit("alice", "management") == 1_700_000_060.0
    assert limiter.hit("bob", "management") is None
    now[0] = 1_700_000_059.9
    assert limiter.hit("alice", "management") == 1_700_000_060.0
    limiter.refund("alice", "management")
    assert limiter.hit("alice", "management") is None
    now[0] = 1_700_000_060.0
    assert [limiter.hit("alice", "management") for _ in range(3)] == [None] * 3
    assert limiter.hit("alice", "management") == 1_700_000_120.0


def test_constructor_validates_principals() -> None:
    with pytest.raises(ValueError, match="distinct"):
        IndependentServer(principals={"a": ("same", "same")})
    custom = IndependentServer(principals={"carol": ("k1", "s1")})
    assert custom.principals == {"carol": ("k1", "s1")}
    with pytest.raises(RuntimeError, match="not started"):
        custom.url  # noqa: B018
