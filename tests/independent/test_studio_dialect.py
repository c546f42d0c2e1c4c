"""Quick tests of the independent server's ``studio`` dialect: every endpoint of
``docs/studio-contract.md``, both auth classes, and the readings of ``studio_dialect.py``'s
list on the wire."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .server import IndependentServer
from .studio_dialect import StudioRequestHandler, account

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DIGITS = re.compile(r"[0-9]+")
CHAT_KEYS = {"id", "conversation_id", "bot_id", "created_at", "completed_at", "failed_at", "status", "section_id"}
MESSAGE_KEYS = {"id", "conversation_id", "bot_id", "role", "type", "content", "content_type", "chat_id", "created_at",
                "section_id"}
BOT_INFO_KEYS = {"bot_id", "name", "description", "icon_url", "create_time", "update_time", "version", "prompt_info",
                 "onboarding_info", "bot_mode", "model_info", "plugin_info_list", "workflow_info_list",
                 "shortcut_commands", "default_user_input_type", "suggest_reply_info", "background_image_info",
                 "variables"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def server() -> Iterator[IndependentServer]:
    with IndependentServer(dialect="studio", token_delay=0.001) as running:
        yield running


@pytest.fixture(scope="module")
def slow_server() -> Iterator[IndependentServer]:
    """Long enough streams to cancel one in flight."""
    with IndependentServer(dialect="studio", token_delay=0.25) as running:
        yield running


def api_key(server: IndependentServer, principal: str = "alice") -> str:
    return server.principals[principal][0]


def session(server: IndependentServer, principal: str = "alice") -> str:
    return server.principals[principal][1]


def bearer(server: IndependentServer, method: str, path: str, body: Any = None, *, principal: str = "alice",
           headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {"Authorization": f"Bearer {api_key(server, principal)}", **(headers or {})}
    return httpx.request(method, server.url + path, json=body, headers=sent, timeout=10)


def web(server: IndependentServer, path: str, body: Any = None, *, principal: str = "alice",
        headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {"Cookie": f"session_key={session(server, principal)}", **(headers or {})}
    return httpx.post(server.url + path, json=body, headers=sent, timeout=10)


def ok(response: httpx.Response, *, data: bool = True) -> dict[str, Any]:
    """HTTP 200, code 0, msg "", the log id a uuid4."""
    assert response.status_code == 200, response.text
    assert uuid.UUID(response.headers["X-Log-ID"]).version == 4
    body: dict[str, Any] = response.json()
    assert body["code"] == 0 and body["msg"] == "", body
    assert ("data" in body) is data, body
    return body


def refused(response: httpx.Response, status: int, code: int, msg: str | None = None) -> str:
    """An error answer: exactly {"msg","code"} (msg first), no stack trace; returns msg."""
    assert response.status_code == status, response.text
    assert uuid.UUID(response.headers["X-Log-ID"]).version == 4
    assert response.headers["content-type"].startswith("application/json")
    assert list(response.json()) == ["msg", "code"], response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["msg"], str) and "stack=" not in body["msg"], body
    if msg is not None:
        assert msg in body["msg"], body
    text: str = body["msg"]
    return text


def new_bot(server: IndependentServer, principal: str = "alice", *, publish: bool = True, name: str = "助手") -> str:
    space = account(principal).space_id
    body = ok(web(server, "/api/draftbot/create", {"space_id": space, "name": name, "icon_uri": "icon/默认.png"},
                  principal=principal))
    bot_id: str = body["data"]["bot_id"]
    assert DIGITS.fullmatch(bot_id) and body["data"]["check_not_pass"] is False
    if publish:
        ok(web(server, "/api/draftbot/publish", {"space_id": space, "bot_id": bot_id, "connectors": {"1024": {}}},
               principal=principal))
    return bot_id


def chat_body(bot_id: str, text: str = "你好", **extra: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "user_id": "user_001",
            "additional_messages": [{"role": "user", "content": text, "content_type": "text"}], **extra}


def raw_post(server: IndependentServer, path: str, body: Any, headers: dict[str, str]) -> tuple[str, bytes]:
    """A POST over a bare socket, read to the server's close: (head, body bytes)."""
    parts = urlsplit(server.url)
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
             f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in headers.items())]
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    return head.decode("latin-1"), content


def parse_events(content: bytes) -> list[tuple[str, str]]:
    """This dialect's framing exactly: CRLF only, ``event: `` and ``data: `` with a space."""
    text = content.decode("utf-8")
    assert "\n" not in text.replace("\r\n", "") and "\r" not in text.replace("\r\n", "")
    assert text.endswith("\r\n\r\n"), text[-80:]
    events = []
    for block in text[:-4].split("\r\n\r\n"):
        name_line, data_line = block.split("\r\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        events.append((name_line[len("event: "):], data_line[len("data: "):]))
    return events


def stream_chat(server: IndependentServer, body: dict[str, Any], query: str = "",
                principal: str = "alice") -> tuple[str, list[tuple[str, str]]]:
    head, content = raw_post(server, f"/v3/chat{query}", body, {"Authorization": f"Bearer {api_key(server, principal)}"})
    return head, parse_events(content)


def payloads(events: list[tuple[str, str]], name: str) -> list[dict[str, Any]]:
    return [json.loads(data) for event, data in events if event == name]


def wait_status(server: IndependentServer, conversation_id: str, chat_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body = ok(bearer(server, "GET", f"/v3/chat/retrieve?conversation_id={conversation_id}&chat_id={chat_id}"))
        if body["data"]["status"] == status or time.monotonic() > deadline:
            assert body["data"]["status"] == status, body
            return dict(body["data"])
        time.sleep(0.02)


# --------------------------------------------------------------------------- selection, accounts


def test_dialect_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEPENDENT_DIALECT", "studio")
    assert IndependentServer().dialect == "studio"
    assert IndependentServer(dialect="doc").dialect == "doc"


def test_dialect_on_the_command_line() -> None:
    env = {**os.environ, "INDEPENDENT_DIALECT": "studio"}
    args = [sys.executable, "-m", "tests.independent.server", "--token-delay", "0"]
    with subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("serving the studio dialect on http://127.0.0.1:"), line
            url = line.split(" on ", 1)[1].strip()
            answer = httpx.post(f"{url}/api/passport/web/email/login/",
                                json={"email": "alice@example.com", "password": "alice-studio-password"}, timeout=10)
            assert answer.status_code == 200 and answer.json()["code"] == 0
        finally:
            process.terminate()  # this test's own child, by its handle
            process.wait(timeout=10)


def test_accounts_are_the_documented_ones() -> None:
    doc = (HERE / "studio_dialect.py").read_text(encoding="utf-8")
    for name in ("alice", "bob"):
        person = account(name)
        assert person.email == f"{name}@example.com" and person.password == f"{name}-studio-password"
        assert DIGITS.fullmatch(person.space_id) and len(person.space_id) == 19
        assert DIGITS.fullmatch(person.user_id) and len(person.user_id) == 19
        assert f"{name}: ``{person.email}`` / ``{person.password}``, space ``{person.space_id}``" in doc
    assert account("alice") == account("alice") and account("alice").space_id != account("bob").space_id


def test_against_passes_the_space_of_the_first_principal() -> None:
    from tests.support.against import serve

    with serve("independent", {"dialect": "studio"}) as target:
        env = target.env()
        assert env["COZE_SPACE_ID"] == account("alice").space_id
        assert env["COZE_API_KEY"] and env["COZE_SESSION_KEY_2"]
    with serve("independent", {"dialect": "coze"}) as target:
        assert "COZE_SPACE_ID" not in target.env()


# --------------------------------------------------------------------------- auth


def test_login_sets_a_session_and_a_wrong_password_is_refused(server: IndependentServer) -> None:
    path = "/api/passport/web/email/login/"
    answer = httpx.post(server.url + path, json={"email": "Alice@Example.com", "password": "alice-studio-password"})
    body = ok(answer)
    assert body["data"]["user_id_str"] == account("alice").user_id and body["data"]["email"] == "alice@example.com"
    cookie = answer.headers["set-cookie"]
    match = re.fullmatch(r"session_key=([^;]+); Path=/; HttpOnly", cookie)
    assert match is not None, cookie
    spaces = httpx.post(server.url + "/api/playground_api/space/list", headers={"Cookie": f"session_key={match[1]}"})
    assert ok(spaces)["data"]["bot_space_list"][0]["id"] == account("alice").space_id
    wrong = httpx.post(server.url + path, json={"email": "alice@example.com", "password": "bob-studio-password"})
    refused(wrong, 401, 700012006, "authentication failed")
    assert "set-cookie" not in wrong.headers
    refused(httpx.post(server.url + path, json={"email": "nobody@example.com", "password": "x"}), 401, 700012006)
    refused(httpx.post(server.url + path, json={"email": "alice@example.com"}), 400, 400)


def test_space_list_lists_the_principal_space(server: IndependentServer) -> None:
    for principal in ("alice", "bob"):
        data = ok(web(server, "/api/playground_api/space/list", {}, principal=principal))["data"]
        assert data["bot_space_list"] == [{"space_type": 1, "icon_url": "", "name": "Personal",
                                           "id": account(principal).space_id}]
        assert data["has_personal_space"] is True and data["team_space_num"] == 0
        assert isinstance(data["recently_used_space_list"], list)
    # No body at all is fine too.
    no_body = httpx.post(server.url + "/api/playground_api/space/list",
                         headers={"Cookie": f"session_key={session(server)}"})
    ok(no_body)


def test_pat_minted_works_as_bearer(server: IndependentServer) -> None:
    path = "/api/permission_api/pat/create_personal_access_token_and_permission"
    data = ok(web(server, path, {"name": "ci", "duration_day": "30"}, principal="bob"))["data"]
    token, pat = data["token"], data["personal_access_token"]
    assert token.startswith("pat_") and DIGITS.fullmatch(pat["id"]) and pat["name"] == "ci"
    assert pat["expire_at"] - pat["created_at"] == 30 * 86400
    bot_id = new_bot(server, "bob")
    info = httpx.get(f"{server.url}/v1/bots/{bot_id}", headers={"Authorization": f"Bearer {token}"})
    assert ok(info)["data"]["bot_id"] == bot_id
    refused(web(server, path, {"duration_day": "30"}), 400, 400)


def test_bearer_only_counts_on_openapi_paths(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    path = f"/v1/bots/{bot_id}"
    ok(bearer(server, "GET", path))
    assert "missing authorization" in refused(httpx.get(server.url + path), 401, 700012006)
    refused(httpx.get(server.url + path, headers={"Authorization": "Bearer not-a-key"}), 401, 700012006)
    refused(httpx.get(server.url + path, headers={"Authorization": "Basic abc"}), 401, 700012006)
    # A live cookie alone is the wrong class on /v1 and /v3.
    cookie = {"Cookie": f"session_key={session(server)}"}
    refused(httpx.get(server.url + path, headers=cookie), 401, 700012006)
    refused(httpx.post(server.url + "/v3/chat", json=chat_body(bot_id), headers=cookie), 401, 700012006)
    # A session key is no API key.
    refused(httpx.get(server.url + path, headers={"Authorization": f"Bearer {session(server)}"}), 401, 700012006)


def test_cookie_only_counts_on_webapi_paths(server: IndependentServer) -> None:
    path = "/api/playground_api/space/list"
    ok(web(server, path, {}))
    refused(httpx.post(server.url + path, json={}), 401, 401, "missing session_key in cookie")
    auth = {"Authorization": f"Bearer {api_key(server)}"}
    refused(httpx.post(server.url + path, json={}, headers=auth), 401, 401, "missing session_key in cookie")
    dead = {"Cookie": "session_key=not-a-session"}
    refused(httpx.post(server.url + path, json={}, headers=dead), 401, 700012006, "session not exist")
    # An API key in the cookie is no session.
    refused(httpx.post(server.url + path, json={}, headers={"Cookie": f"session_key={api_key(server)}"}), 401,
            700012006)


# --------------------------------------------------------------------------- envelope, routes


def test_unknown_paths_and_wrong_methods_are_404(server: IndependentServer) -> None:
    for method, path in [("GET", "/v1/nope"), ("POST", "/v3/nope"), ("GET", "/v3/chat"), ("POST", "/v1/bots/1"),
                         ("GET", "/v1/bots/abc"), ("GET", "/nope")]:
        refused(bearer(server, method, path), 404, 404, "not found")
    refused(web(server, "/api/nope", {}), 404, 404, "not found")
    refused(httpx.get(server.url + "/api/draftbot/create", headers={"Cookie": f"session_key={session(server)}"}),
            404, 404)
    # Without a cookie on /api, the 401 first.
    refused(httpx.post(server.url + "/api/nope", json={}), 401, 401)


def test_bodies_that_are_not_json_objects_are_400(server: IndependentServer) -> None:
    headers = {"Cookie": f"session_key={session(server)}", "Content-Type": "application/json"}
    for content in (b"{", b"[1]", b"NaN"):
        refused(httpx.post(server.url + "/api/draftbot/create", content=content, headers=headers), 400, 400)


# --------------------------------------------------------------------------- draft bots


def test_create_validation(server: IndependentServer) -> None:
    space = account("alice").space_id
    good = {"space_id": space, "name": "n", "icon_uri": "i.png"}
    cases = [({**good, "space_id": ""}, "space id is not set"), ({k: v for k, v in good.items() if k != "space_id"},
                                                                   "space id is not set"),
             ({**good, "name": ""}, "name is nil"), ({**good, "icon_uri": ""}, "icon uri is nil"),
             ({**good, "name": "字" * 51}, "too long"), ({**good, "description": "d" * 2001}, "too long"),
             ({**good, "space_id": int(space)}, None)]
    for body, msg in cases:
        refused(web(server, "/api/draftbot/create", body), 400, 400, msg)
    ok(web(server, "/api/draftbot/create", {**good, "name": "字" * 50, "description": "d" * 2000}))
    refused(web(server, "/api/draftbot/create", {**good, "space_id": account("bob").space_id}), 400, 100000003)


def test_update_goes_to_the_draft_and_publish_makes_it_online(server: IndependentServer) -> None:
    bot_id = new_bot(server, name="旧名")
    before = ok(bearer(server, "GET", f"/v1/bots/{bot_id}"))["data"]
    update = {"bot_info": {"bot_id": bot_id, "name": "新名", "description": "描述", "prompt_info": {"prompt": "你是助手"},
                           "model_info": {"model_id": "42"}}}
    data = ok(web(server, "/api/playground_api/draftbot/update_draft_bot_info", update))["data"]
    assert data == {"same_with_online": False, "branch": 0, "check_not_pass": False, "has_change": True}
    still = ok(bearer(server, "GET", f"/v1/bots/{bot_id}"))["data"]
    assert still["name"] == "旧名" and still["prompt_info"] == {"prompt": ""} and still["version"] == before["version"]
    published = ok(web(server, "/api/draftbot/publish", {"space_id": account("alice").space_id, "bot_id": bot_id,
                                                         "connectors": {"1024": {}, "999": {}}}))["data"]
    assert published["publish_result"] == {c: {"publish_result_status": 1, "msg": "", "code": 0, "connector": None}
                                           for c in ("1024", "999")}
    assert published["connector_bind_result"] is None and published["check_not_pass"] is False
    after = ok(bearer(server, "GET", f"/v1/bots/{bot_id}"))["data"]
    assert after["name"] == "新名" and after["description"] == "描述" and after["prompt_info"] == {"prompt": "你是助手"}
    assert after["model_info"]["model_id"] == "42"
    # Versions: long digit strings, a new one per publish.
    assert DIGITS.fullmatch(before["version"]) and len(before["version"]) >= 16
    assert after["version"] == published["version"] and int(after["version"]) > int(before["version"])


def test_update_errors(server: IndependentServer) -> None:
    path = "/api/playground_api/draftbot/update_draft_bot_info"
    bob_bot = new_bot(server, "bob", publish=False)
    refused(web(server, path, {"bot_info": {"bot_id": "123"}}), 400, 100000003)
    refused(web(server, path, {"bot_info": {"bot_id": bob_bot}}), 400, 110000001)
    refused(web(server, path, {"bot_info": {"bot_id": int(bob_bot)}}), 400, 400)
    refused(web(server, path, {}), 400, 400)


def test_publish_validation(server: IndependentServer) -> None:
    bot_id = new_bot(server, publish=False)
    space = account("alice").space_id
    body: dict[str, Any]
    for empty in ("{}", "null"):
        body = {"space_id": space, "bot_id": bot_id, "connectors": json.loads(empty)}
        refused(web(server, "/api/draftbot/publish", body), 400, 400, "connectors is nil")
    body = {"space_id": space, "bot_id": bot_id, "connectors": {"482431": {}}}
    refused(web(server, "/api/draftbot/publish", body), 400, 100000003, "connector 482431 not allowed")
    body = {"space_id": space, "bot_id": "77", "connectors": {"1024": {}}}
    refused(web(server, "/api/draftbot/publish", body), 400, 100000003)
    body = {"space_id": space, "bot_id": bot_id, "connectors": {"1024": {}}}
    refused(web(server, "/api/draftbot/publish", body, principal="bob"), 400, 110000001)
    given = ok(web(server, "/api/draftbot/publish", {**body, "commit_version": "123456789012345678"}))["data"]
    assert given["version"] == "123456789012345678"


def test_display_info_round_trip(server: IndependentServer) -> None:
    bot_id = new_bot(server, publish=False)
    assert ok(web(server, "/api/draftbot/get_display_info", {"bot_id": bot_id}))["data"] == {"tab_display_info": {}}
    tabs = {"plugin_tab_status": 1, "workflow_tab_status": 2}
    ok(web(server, "/api/draftbot/update_display_info", {"bot_id": bot_id, "display_info": {"tab_display_info": tabs}}),
       data=False)
    got = ok(web(server, "/api/draftbot/get_display_info", {"bot_id": bot_id}))["data"]
    assert got == {"tab_display_info": tabs}
    bad = {"bot_id": bot_id, "display_info": {"tab_display_info": {"a": "1"}}}
    refused(web(server, "/api/draftbot/update_display_info", bad), 400, 400)
    refused(web(server, "/api/draftbot/get_display_info", {"bot_id": 1}), 400, 400)
    refused(web(server, "/api/draftbot/get_display_info", {"bot_id": "5"}), 400, 100000003)
    refused(web(server, "/api/draftbot/get_display_info", {"bot_id": bot_id}, principal="bob"), 400, 110000001)


# --------------------------------------------------------------------------- bot info


def test_online_info_is_enveloped_and_wants_a_connector(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    data = ok(bearer(server, "GET", f"/v1/bot/get_online_info?bot_id={bot_id}&connector_id=1024"))["data"]
    assert BOT_INFO_KEYS <= set(data) and data["bot_id"] == bot_id and list(data)[0] != "bot_id"
    assert data["x_independent"] and data["create_time"] == 0 and data["shortcut_commands"] is None
    assert data["onboarding_info"] == {"suggested_questions": [], "prologue": ""}
    assert DIGITS.fullmatch(data["model_info"]["model_id"]) and DIGITS.fullmatch(data["version"])
    refused(bearer(server, "GET", f"/v1/bot/get_online_info?bot_id={bot_id}"), 400, 400, "connector_id")
    unpublished = new_bot(server, publish=False)
    refused(bearer(server, "GET", f"/v1/bot/get_online_info?bot_id={unpublished}&connector_id=1024"), 400, 100000000,
            "not published")
    refused(bearer(server, "GET", "/v1/bot/get_online_info?bot_id=1&connector_id=1024"), 400, 100000000)
    refused(bearer(server, "GET", f"/v1/bot/get_online_info?bot_id={bot_id}&connector_id=1024", principal="bob"),
            400, 110000001, "agent not own")


def test_bots_by_id(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    response = bearer(server, "GET", f"/v1/bots/{bot_id}")
    assert list(response.json()) == ["msg", "data", "code"]
    assert ok(response)["data"]["bot_id"] == bot_id
    refused(bearer(server, "GET", f"/v1/bots/{new_bot(server, publish=False)}"), 400, 100000000)
    refused(bearer(server, "GET", f"/v1/bots/{bot_id}", principal="bob"), 400, 110000001)


# --------------------------------------------------------------------------- /v3/chat


def test_stream_framing_order_and_payloads(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    head, events = stream_chat(server, chat_body(bot_id, stream=True))
    assert re.search(r"(?i)content-type: text/event-stream; charset=utf-8", head)
    assert re.search(r"(?i)x-log-id: [0-9a-f-]{36}", head)
    names = [name for name, _ in events]
    assert names[:2] == ["conversation.chat.created", "conversation.chat.in_progress"]
    assert names[-3:] == ["conversation.message.completed", "conversation.chat.completed", "conversation.stream.done"]
    assert events[-1][1] == ""  # the empty data line
    chats = [json.loads(data) for name, data in events[:-1] if name.startswith("conversation.chat.")]
    assert [c["status"] for c in chats] == ["created", "in_progress", "completed"]
    for chat in chats:
        assert CHAT_KEYS <= set(chat) and "usage" not in chat and list(chat)[0] != "id"
        assert all(DIGITS.fullmatch(chat[k]) for k in ("id", "conversation_id", "bot_id", "section_id"))
    assert chats[0]["completed_at"] == 0 and chats[-1]["completed_at"] >= chats[-1]["created_at"] > 0
    deltas = payloads(events, "conversation.message.delta")
    answer, verbose = payloads(events, "conversation.message.completed")
    assert len(deltas) > 3 and len({len(d["content"]) for d in deltas}) > 2
    assert "".join(d["content"] for d in deltas) == answer["content"] and "你好" in answer["content"]
    for message in [*deltas, answer, verbose]:
        assert MESSAGE_KEYS <= set(message) and "usage" not in message and message["x_independent"]
        assert message["chat_id"] == chats[0]["id"] and message["section_id"] == chats[0]["section_id"]
    assert (answer["role"], answer["type"], verbose["type"]) == ("assistant", "answer", "verbose")
    meta = answer["meta_data"]
    assert all(isinstance(v, str) for v in meta.values())
    assert int(meta["token"]) == int(meta["input_tokens"]) + int(meta["output_tokens"]) and float(meta["time_cost"]) >= 0
    finish = json.loads(verbose["content"])
    assert finish["msg_type"] == "generate_answer_finish" and json.loads(finish["data"])["finish_reason"] == 0


def test_stream_is_the_default_and_every_write_is_cut() -> None:
    # The cut: an event is written in pieces, inside the first multi-byte character and
    # between the CR and the LF of its end (and at random offsets).
    handler = object.__new__(StudioRequestHandler)
    written: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> None:
            written.append(data)

        def flush(self) -> None:
            pass

    handler.wfile = Sink()  # type: ignore[assignment]
    handler._cutter = random.Random(7)
    event = 'event: x\r\ndata: {"c":"你好"}\r\n\r\n'.encode()
    handler._write_cut(event)
    assert b"".join(written) == event and len(written) >= 3
    assert written[-1] == b"\n" and written[-2].endswith(b"\r")
    lead = event.index("你".encode())
    assert any(len(b"".join(written[:i])) == lead + 1 for i in range(len(written)))


def test_stream_absent_is_sse_and_stream_false_is_json(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    _, events = stream_chat(server, chat_body(bot_id))
    assert events[0][0] == "conversation.chat.created" and events[-1][0] == "conversation.stream.done"
    response = bearer(server, "POST", "/v3/chat", chat_body(bot_id, "非流式", stream=False))
    body = ok(response)
    assert body["BaseResp"] is None and body["data"]["status"] == "created"
    chat = body["data"]
    done = wait_status(server, chat["conversation_id"], chat["id"], "completed")
    assert done["completed_at"] > 0
    listed = bearer(server, "GET", f"/v3/chat/message/list?conversation_id={chat['conversation_id']}&chat_id={chat['id']}")
    assert listed.status_code == 200 and list(listed.json()) == ["Messages", "msg", "code"]
    messages = listed.json()["Messages"]
    assert [(m["role"], m["type"]) for m in messages] == [("user", "question"), ("assistant", "answer"),
                                                          ("assistant", "verbose")]
    assert "非流式" in messages[1]["content"]


def test_chat_bind_errors(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"user_id": "u"}, ""), ({"bot_id": bot_id}, ""), ({"bot_id": int(bot_id), "user_id": "u"}, ""),
        ({"bot_id": bot_id, "user_id": 7}, ""), ({**chat_body(bot_id), "custom_variables": {"a": 1}}, ""),
        ({**chat_body(bot_id), "meta_data": {"a": None}}, ""), ({**chat_body(bot_id), "extra_params": {"a": []}}, ""),
        ({**chat_body(bot_id), "parameters": "{}"}, "parameters"), ({**chat_body(bot_id), "stream": "yes"}, "")]
    for body, msg in cases:
        refused(bearer(server, "POST", "/v3/chat", body), 400, 400, msg)
    refused(bearer(server, "POST", "/v3/chat?conversation_id=", chat_body(bot_id)), 400, 400)
    text = refused(bearer(server, "POST", "/v3/chat", chat_body("0")), 400, 400)
    assert text == "code=103000000 message=invalid parameter : bot id is required"


def test_pre_run_errors_are_a_json_envelope(server: IndependentServer) -> None:
    unpublished = new_bot(server, publish=False)
    published = new_bot(server)
    refused(bearer(server, "POST", "/v3/chat", chat_body("12345")), 400, 103100001)
    refused(bearer(server, "POST", "/v3/chat", chat_body(unpublished)), 400, 103100001, "not published")
    refused(bearer(server, "POST", "/v3/chat", chat_body(published), principal="bob"), 400, 103100001)
    # Published to 999 only: not to the API connector.
    web_only = new_bot(server, publish=False)
    ok(web(server, "/api/draftbot/publish", {"space_id": account("alice").space_id, "bot_id": web_only,
                                             "connectors": {"999": {}}}))
    refused(bearer(server, "POST", "/v3/chat", chat_body(web_only)), 400, 103100001, "connectorID=1024")
    bad_role = {**chat_body(published), "additional_messages": [{"role": "system", "content": "x", "content_type": "text"}]}
    refused(bearer(server, "POST", "/v3/chat", bad_role), 400, 103000000)
    bad_type = {**chat_body(published), "additional_messages": [{"role": "user", "content": "x", "type": "verbose"}]}
    refused(bearer(server, "POST", "/v3/chat", bad_type), 400, 103000000)
    image = {**chat_body(published), "additional_messages": [{"role": "user", "content": "x", "content_type": "image"}]}
    _, events = stream_chat(server, image)
    assert events[-1][0] == "conversation.stream.done"  # taken, its content dropped
    # Another principal's conversation.
    bob_bot = new_bot(server, "bob")
    _, events = stream_chat(server, chat_body(bob_bot), principal="bob")
    bobs = payloads(events, "conversation.chat.created")[0]["conversation_id"]
    refused(bearer(server, "POST", f"/v3/chat?conversation_id={bobs}", chat_body(published)), 400, 103000001)


def test_conversations_continue_by_query_or_by_conversation_id_body_key(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    _, first = stream_chat(server, chat_body(bot_id, "一"))
    conversation = payloads(first, "conversation.chat.created")[0]
    cid, section = conversation["conversation_id"], conversation["section_id"]
    _, second = stream_chat(server, chat_body(bot_id, "二"), f"?conversation_id={cid}")
    again = payloads(second, "conversation.chat.completed")[0]
    assert again["conversation_id"] == cid and again["section_id"] == section
    assert "第2轮" in payloads(second, "conversation.message.completed")[0]["content"]
    _, third = stream_chat(server, chat_body(bot_id, "三", ConversationID=cid))
    assert payloads(third, "conversation.chat.created")[0]["conversation_id"] == cid
    # A body conversation_id is ignored; an unknown one in the query is a new conversation.
    _, ignored = stream_chat(server, chat_body(bot_id, "四", conversation_id=cid))
    assert payloads(ignored, "conversation.chat.created")[0]["conversation_id"] != cid
    _, unknown = stream_chat(server, chat_body(bot_id), "?conversation_id=1234567")
    fresh = payloads(unknown, "conversation.chat.created")[0]["conversation_id"]
    assert fresh not in (cid, "1234567") and unknown[-1][0] == "conversation.stream.done"


def test_retrieve_and_message_list_errors(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    _, events = stream_chat(server, chat_body(bot_id))
    chat = payloads(events, "conversation.chat.completed")[0]
    query = f"?conversation_id={chat['conversation_id']}&chat_id={chat['id']}"
    assert ok(bearer(server, "GET", "/v3/chat/retrieve" + query))["data"]["status"] == "completed"
    for path in ("/v3/chat/retrieve", "/v3/chat/message/list"):
        refused(bearer(server, "GET", path + query, principal="bob"), 400, 103000001)
        refused(bearer(server, "GET", f"{path}?conversation_id={chat['conversation_id']}&chat_id=99"), 400, 103200003)
        refused(bearer(server, "GET", f"{path}?chat_id={chat['id']}"), 400, 400)


# --------------------------------------------------------------------------- cancel


def test_cancel_validation_and_refusals(server: IndependentServer) -> None:
    for body in ({}, {"chat_id": "1"}, {"conversation_id": "1"}, {"chat_id": 1, "conversation_id": "1"}):
        refused(bearer(server, "POST", "/v3/chat/cancel", body), 400, 400)
    bot_id = new_bot(server)
    _, events = stream_chat(server, chat_body(bot_id))
    chat = payloads(events, "conversation.chat.completed")[0]
    ids = {"chat_id": chat["id"], "conversation_id": chat["conversation_id"]}
    refused(bearer(server, "POST", "/v3/chat/cancel", ids), 400, 103200005, "in progress can not be cancelled")
    refused(bearer(server, "POST", "/v3/chat/cancel", {**ids, "chat_id": "42"}), 400, 400, "record not found")
    refused(bearer(server, "POST", "/v3/chat/cancel", ids, principal="bob"), 400, 400, "user not match")
    refused(bearer(server, "POST", "/v3/chat/cancel", {**ids, "conversation_id": "42"}), 400, 400,
            "conversation not match")


def test_cancel_in_flight_answers_the_chat_and_the_stream_ends_early(slow_server: IndependentServer) -> None:
    bot_id = new_bot(slow_server)
    events: list[tuple[str, str]] = []
    created = threading.Event()

    def read() -> None:
        headers = {"Authorization": f"Bearer {api_key(slow_server)}"}
        with httpx.stream("POST", slow_server.url + "/v3/chat", json=chat_body(bot_id, "请慢慢回答"), headers=headers,
                          timeout=20) as response:
            buffer = ""
            for text in response.iter_text():
                buffer += text
                while "\r\n\r\n" in buffer:
                    block, buffer = buffer.split("\r\n\r\n", 1)
                    name, data = block.split("\r\n")
                    events.append((name[len("event: "):], data[len("data: "):]))
                    created.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert created.wait(10)
    chat = json.loads(events[0][1])
    ids = {"chat_id": chat["id"], "conversation_id": chat["conversation_id"]}
    body = ok(bearer(slow_server, "POST", "/v3/chat/cancel", ids))
    assert list(body) == ["msg", "data", "code"]
    assert body["data"]["status"] == "cancelled" and body["data"]["id"] == chat["id"] and CHAT_KEYS <= set(body["data"])
    reader.join(20)
    assert not reader.is_alive()
    names = [name for name, _ in events]
    assert names[-1] == "conversation.stream.done" and events[-1][1] == ""
    assert "conversation.chat.completed" not in names and "conversation.message.completed" not in names
    assert wait_status(slow_server, ids["conversation_id"], ids["chat_id"], "cancelled")["completed_at"] == 0
    refused(bearer(slow_server, "POST", "/v3/chat/cancel", ids), 400, 103200005)


def test_a_stream_halted_by_the_stop_ends_with_an_error_event() -> None:
    with IndependentServer(dialect="studio", token_delay=0.3) as running:
        bot_id = new_bot(running)
        result: dict[str, bytes] = {}
        thread = threading.Thread(target=lambda: result.update(body=raw_post(
            running, "/v3/chat", chat_body(bot_id), {"Authorization": f"Bearer {api_key(running)}"})[1]))
        thread.start()
        time.sleep(0.5)
    thread.join(10)
    events = parse_events(result["body"])
    assert events[-1][0] == "error" and json.loads(events[-1][1])["code"] == 103200002


# --------------------------------------------------------------------------- /api/conversation/chat


def run_chat(server: IndependentServer, body: dict[str, Any], principal: str = "alice") -> list[dict[str, Any]]:
    head, content = raw_post(server, "/api/conversation/chat", body,
                             {"Cookie": f"session_key={session(server, principal)}"})
    assert "text/event-stream" in head
    events = parse_events(content)
    assert events[-1] == ("done", "") and all(name == "message" for name, _ in events[:-1])
    return [json.loads(data) for _, data in events[:-1]]


def test_conversation_chat_ack_pieces_full_answer(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    messages = run_chat(server, {"bot_id": bot_id, "conversation_id": "0", "query": "介绍一下", "scene": 0})
    ack, *pieces, full, verbose = messages
    assert (ack["message"]["role"], ack["message"]["type"], ack["message"]["content"], ack["is_finish"]) == \
        ("user", "ack", "介绍一下", True)
    assert pieces and all(p["message"]["role"] == "assistant" and p["message"]["type"] == "answer"
                          and not p["is_finish"] for p in pieces)
    assert full["is_finish"] and full["message"]["content"] == "".join(p["message"]["content"] for p in pieces)
    assert {p["message"]["message_id"] for p in [*pieces, full]} == {full["message"]["message_id"]}
    assert verbose["message"]["type"] == "verbose"
    cid = ack["conversation_id"]
    assert DIGITS.fullmatch(cid) and cid != "0" and {m["conversation_id"] for m in messages} == {cid}
    assert [m["seq_id"] for m in messages] == list(range(len(messages)))
    for message in messages:
        inner = message["message"]
        assert isinstance(inner["content_time"], int) and DIGITS.fullmatch(inner["message_index"])
        assert inner["extra_info"] == {} and inner["source"] == 0 and inner["status"] == ""
    again = run_chat(server, {"bot_id": bot_id, "conversation_id": cid, "query": "再来", "scene": 0})
    assert {m["conversation_id"] for m in again} == {cid} and "第2轮" in again[-2]["message"]["content"]


def test_conversation_chat_validation_and_run_errors(server: IndependentServer) -> None:
    bot_id = new_bot(server)
    good = {"bot_id": bot_id, "conversation_id": "0", "query": "q", "scene": 0}
    for key in ("conversation_id", "query", "scene"):
        refused(web(server, "/api/conversation/chat", {k: v for k, v in good.items() if k != key}), 400, 400)
    refused(web(server, "/api/conversation/chat", {**good, "bot_id": int(bot_id)}), 400, 400)
    refused(web(server, "/api/conversation/chat", {**good, "scene": "0"}), 400, 400)
    refused(httpx.post(server.url + "/api/conversation/chat", json=good), 401, 401)
    draft = new_bot(server, publish=False)
    for body, principal in [({**good, "bot_id": "999"}, "alice"), ({**good, "bot_id": draft}, "alice"),
                            ({**good, "bot_id": draft, "draft_mode": False}, "alice"), (good, "bob")]:
        [only] = run_chat(server, body, principal)
        inner = only["message"]
        assert (inner["role"], inner["type"], only["is_finish"]) == ("assistant", "answer", True)
        assert inner["content"].startswith("Something error:")
    with_draft = run_chat(server, {**good, "bot_id": draft, "draft_mode": True})
    assert with_draft[0]["message"]["type"] == "ack" and with_draft[-2]["is_finish"]
