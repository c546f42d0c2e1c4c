"""The coze dialect of the reference server (conformance/reference/coze/): its routes, its
envelope, its errors, its stream framing, the non-stream chat and cancel -- over a real
socket with httpx, read by hand (not with the suite's checker).

The witness that the dialect is the one the official SDK speaks is tests/test_witness_cozepy.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig
from conformance.reference.__main__ import parse_args

ALICE, BOB = DEV_PRINCIPALS
TIMEOUT = httpx.Timeout(10.0)
UNKNOWN_ID = "7000000000000000001"
CLOUD_EVENTS = frozenset(
    {
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.chat.completed",
        "conversation.chat.failed",
        "conversation.chat.requires_action",
        "conversation.message.delta",
        "conversation.message.completed",
        "conversation.audio.delta",
        "error",
        "done",
    }
)


def bearer(principal: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {principal.api_key}"}


def parse_stream(raw: bytes) -> list[tuple[str, str]]:
    """Events as (name, data text), read exactly as the contract frames them: blocks
    split on a blank line, each ``event:<name>`` then ``data:<text>``; anything else fails."""
    events = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event:") and lines[1].startswith("data:"), block
        events.append((lines[0][len("event:") :], lines[1][len("data:") :]))
    return events


class Coze:
    """One principal's view of a coze-dialect server."""

    def __init__(self, url: str, principal: Any = ALICE) -> None:
        self.client = httpx.Client(base_url=url, headers=bearer(principal), timeout=TIMEOUT)

    def post(self, path: str, body: object = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(path, params=params)

    def chat_body(self, bot_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
        message = {"role": "user", "content": text, "content_type": "text", "type": "question", "id": None, "meta_data": None}
        return {"bot_id": bot_id, "user_id": "u1", "additional_messages": [message]} | extra

    def stream(self, bot_id: str, conversation_id: str = "", text: str = "hello") -> tuple[httpx.Response, bytes]:
        body = self.chat_body(bot_id, text, stream=True)
        with self.client.stream("POST", "/v3/chat", params={"conversation_id": conversation_id}, json=body) as response:
            return response, response.read()

    def chat(self, bot_id: str, conversation_id: str = "", **extra: Any) -> dict[str, Any]:
        response = self.post("/v3/chat", self.chat_body(bot_id, **extra), params={"conversation_id": conversation_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def retrieve(self, chat: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.post(
            "/v3/chat/retrieve", params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
        ).json()
        return body

    def wait(self, chat: dict[str, Any], until: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + until
        while (data := self.retrieve(chat)["data"])["status"] in ("created", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.02)
        return data

    def create_bot(self, name: str = "test bot", **fields: Any) -> str:
        body = self.post("/v1/bot/create", {"space_id": "7000000000000000100", "name": name} | fields).json()
        assert body["code"] == 0, body
        bot_id: str = body["data"]["bot_id"]
        return bot_id


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(ServerConfig(dialect="coze", token_delay=0.01)) as srv:
        yield srv


@pytest.fixture
def alice(server: ReferenceServer) -> Iterator[Coze]:
    api = Coze(server.url)
    yield api
    api.client.close()


@pytest.fixture
def bob(server: ReferenceServer) -> Iterator[Coze]:
    api = Coze(server.url, BOB)
    yield api
    api.client.close()


@pytest.fixture
def bot(server: ReferenceServer) -> str:
    return server.seed_published_bot("alice")


# --------------------------------------------------------------------------- dialects and config


def test_each_dialect_serves_its_own_routes_only(server: ReferenceServer) -> None:
    with ReferenceServer(ServerConfig(token_delay=0)) as doc:
        doc_bot = httpx.post(f"{doc.url}/v1/bot/create", json={"space_id": "1", "name": "x"}, headers=bearer(ALICE))
        assert doc_bot.status_code == 404
    coze_draft = httpx.post(f"{server.url}/api/draftbot/create", json={"name": "x"}, headers=bearer(ALICE))
    assert coze_draft.status_code == 404 and coze_draft.json()["code"] == 4200
    wrong_method = httpx.get(f"{server.url}/v3/chat", headers=bearer(ALICE))
    assert wrong_method.status_code == 404 and wrong_method.json()["code"] == 4200


def test_config_refuses_an_unknown_dialect_and_faults_of_the_other_dialect() -> None:
    with pytest.raises(ValueError, match="dialect"):
        ServerConfig(dialect="cloud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another dialect"):
        ServerConfig(dialect="coze", faults=frozenset({"stream_no_terminal"}))
    with pytest.raises(ValueError, match="another dialect"):
        ServerConfig(faults=frozenset({"coze_no_done"}))
    assert ServerConfig(dialect="coze", faults=frozenset({"coze_no_done"})).has("coze_no_done")


def test_the_command_line_takes_the_dialect() -> None:
    assert parse_args(["--dialect", "coze"]).dialect == "coze"
    assert parse_args([]).dialect == "doc"


# --------------------------------------------------------------------------- envelope and auth


def test_a_success_is_code_0_with_the_log_id_in_header_and_detail(alice: Coze, bot: str) -> None:
    response = alice.get("/v1/bot/get_online_info", bot_id=bot)
    body = response.json()
    assert response.status_code == 200 and body["code"] == 0 and body["msg"] == ""
    assert body["detail"]["logid"] == response.headers["x-tt-logid"] and body["data"]["bot_id"] == bot


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}, {"Cookie": f"session_key={ALICE.session_key}"}],
    ids=["none", "wrong-key", "basic", "cookie-only"],
)
def test_a_missing_or_wrong_key_is_401_code_4100(server: ReferenceServer, bot: str, headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.url}/v1/bot/get_online_info", params={"bot_id": bot}, headers=headers)
    body = response.json()
    assert response.status_code == 401 and body["code"] == 4100 and body["msg"]
    assert body["detail"]["logid"] == response.headers["x-tt-logid"] and "data" not in body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v3/chat", b"{not json"),
        ("/v3/chat", b""),
        ("/v3/chat", b"[]"),
        ("/v3/chat", {"user_id": "u"}),
        ("/v3/chat", {"bot_id": 7493710240598375123, "user_id": "u"}),
        ("/v3/chat", {"bot_id": "12x", "user_id": "u"}),
        ("/v3/chat", {"bot_id": "7493710240598375123"}),
        ("/v3/chat", {"bot_id": "7493710240598375123", "user_id": {}}),
        ("/v3/chat", {"bot_id": "7493710240598375123", "user_id": "u", "stream": "yes"}),
        ("/v3/chat", {"bot_id": "7493710240598375123", "user_id": "u", "additional_messages": {}}),
        ("/v3/chat", {"bot_id": "7493710240598375123", "user_id": "u", "additional_messages": [{"role": "user"}]}),
        ("/v3/chat", {"bot_id": "7493710240598375123", "user_id": "u", "custom_variables": {"a": 1}}),
        ("/v3/chat", {"bot_id": "7493710240598375123", "user_id": "u", "meta_data": []}),
        ("/v3/chat/cancel", {"conversation_id": "1"}),
        ("/v3/chat/cancel", {"chat_id": "1"}),
        ("/v3/chat/cancel", {"conversation_id": 1, "chat_id": "1"}),
        ("/v1/bot/create", {"name": "x"}),
        ("/v1/bot/create", {"space_id": "1"}),
        ("/v1/bot/create", {"space_id": "1", "name": "x" * 21}),
        ("/v1/bot/create", {"space_id": "1", "name": ""}),
        ("/v1/bot/create", {"space_id": "1", "name": "x", "prompt_info": "p"}),
        ("/v1/bot/create", {"space_id": "1", "name": "x", "model_info_config": {}}),
        ("/v1/bot/update", {"name": "x"}),
        ("/v1/bot/publish", {"bot_id": "7493710240598375123"}),
        ("/v1/bot/publish", {"bot_id": "7493710240598375123", "connector_ids": "1024"}),
        ("/v1/bot/publish", {"bot_id": "7493710240598375123", "connector_ids": []}),
        ("/v1/bot/create", b"{\"space_id\": \"1\", \"name\": \"\\ud800\"}"),
    ],
)
def test_bad_input_is_code_4000_never_a_5xx(alice: Coze, path: str, body: object) -> None:
    if isinstance(body, bytes):
        response = alice.client.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = alice.post(path, body)
    assert response.status_code == 200 and response.json()["code"] == 4000, response.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/bot/get_online_info", {}),
        ("/v1/bot/get_online_info", {"bot_id": "abc"}),
        ("/v1/bots/abc", {}),
        ("/v1/bots/7493710240598375123", {"is_published": "maybe"}),
        ("/v3/chat/message/list", {"conversation_id": "1"}),
        ("/v3/chat/message/list", {"chat_id": "1"}),
    ],
)
def test_bad_query_parameters_are_code_4000(alice: Coze, path: str, params: dict[str, str]) -> None:
    response = alice.get(path, **params)
    assert response.status_code == 200 and response.json()["code"] == 4000, response.text


def test_a_body_over_the_limit_is_4000() -> None:
    with ReferenceServer(ServerConfig(dialect="coze", max_body_bytes=100)) as srv:
        response = httpx.post(f"{srv.url}/v1/bot/create", content=b"{" + b" " * 200 + b"}", headers=bearer(ALICE))
    assert response.status_code == 200 and response.json()["code"] == 4000


# --------------------------------------------------------------------------- bots


def test_a_bot_is_created_updated_published_and_read(alice: Coze) -> None:
    bot_id = alice.create_bot("v1", prompt_info={"prompt": "p1"}, onboarding_info={"prologue": "hi"})
    assert bot_id.isdigit() and int(bot_id) > 2**53
    assert alice.get("/v1/bot/get_online_info", bot_id=bot_id).json()["code"] == 4200  # never published
    assert alice.get(f"/v1/bots/{bot_id}").json()["code"] == 4200
    assert alice.get(f"/v1/bots/{bot_id}", is_published="false").json()["data"]["name"] == "v1"
    published = alice.post("/v1/bot/publish", {"bot_id": bot_id, "connector_ids": ["1024"]}).json()
    assert published["code"] == 0 and published["data"] == {"bot_id": bot_id, "version": "1"}
    updated = alice.post("/v1/bot/update", {"bot_id": bot_id, "name": "v2", "prompt_info": {"prompt": "p2"}}).json()
    assert updated["code"] == 0
    online = alice.get("/v1/bot/get_online_info", bot_id=bot_id).json()["data"]
    assert (online["bot_id"], online["name"], online["prompt_info"], online["version"]) == (bot_id, "v1", {"prompt": "p1"}, "1")
    assert online["onboarding_info"] == {"prologue": "hi", "suggested_questions": []}
    assert alice.get(f"/v1/bots/{bot_id}").json()["data"]["name"] == "v1"
    assert alice.get(f"/v1/bots/{bot_id}", is_published="false").json()["data"]["name"] == "v2"
    again = alice.post("/v1/bot/publish", {"bot_id": bot_id, "connector_ids": ["1024"]}).json()["data"]
    assert again["version"] == "2" and alice.get("/v1/bot/get_online_info", bot_id=bot_id).json()["data"]["name"] == "v2"


def test_another_principals_bot_is_4101_and_an_unknown_one_4200(alice: Coze, bob: Coze) -> None:
    bobs = bob.create_bot()
    bob.post("/v1/bot/publish", {"bot_id": bobs, "connector_ids": ["1024"]})
    for response in (
        alice.get("/v1/bot/get_online_info", bot_id=bobs),
        alice.get(f"/v1/bots/{bobs}"),
        alice.post("/v1/bot/update", {"bot_id": bobs, "name": "mine"}),
        alice.post("/v1/bot/publish", {"bot_id": bobs, "connector_ids": ["1024"]}),
        alice.post("/v3/chat", alice.chat_body(bobs)),
    ):
        assert response.json()["code"] == 4101, response.text
    for response in (
        alice.get("/v1/bot/get_online_info", bot_id=UNKNOWN_ID),
        alice.get(f"/v1/bots/{UNKNOWN_ID}"),
        alice.post("/v3/chat", alice.chat_body(UNKNOWN_ID)),
    ):
        assert response.json()["code"] == 4200, response.text


def test_chat_needs_a_publish_to_the_api_connector_4015(alice: Coze) -> None:
    bot_id = alice.create_bot()
    assert alice.post("/v3/chat", alice.chat_body(bot_id)).json()["code"] == 4015
    alice.post("/v1/bot/publish", {"bot_id": bot_id, "connector_ids": ["999"]})
    response = alice.post("/v3/chat", alice.chat_body(bot_id, stream=True))
    assert response.json()["code"] == 4015 and response.headers["content-type"].startswith("application/json")
    alice.post("/v1/bot/publish", {"bot_id": bot_id, "connector_ids": ["999", "1024"]})
    assert alice.chat(bot_id)["code"] == 0


# --------------------------------------------------------------------------- chat


def test_a_stream_is_framed_as_the_cloud_frames_it(alice: Coze, bot: str) -> None:
    response, raw = alice.stream(bot)
    assert response.headers["content-type"] == "text/event-stream" and response.headers["x-tt-logid"]
    assert raw.endswith(b'event:done\ndata:"[DONE]"\n\n')
    events = parse_stream(raw)
    names = [name for name, _ in events]
    assert names[:2] == ["conversation.chat.created", "conversation.chat.in_progress"]
    assert names[-3:] == ["conversation.message.completed", "conversation.chat.completed", "done"]
    assert set(names) <= CLOUD_EVENTS and names.count("done") == 1
    payloads = [json.loads(data) for name, data in events if name != "done"]
    chat = payloads[-1]
    assert [p["status"] for p in (payloads[0], payloads[1], chat)] == ["created", "in_progress", "completed"]
    deltas = [p for (name, _), p in zip(events, payloads, strict=False) if name == "conversation.message.delta"]
    completed = payloads[-2]
    assert "".join(d["content"] for d in deltas) == completed["content"] and len(deltas) >= 5
    for payload in payloads:
        assert payload["conversation_id"] == chat["conversation_id"] and payload["bot_id"] == bot
        assert all(isinstance(payload[key], str) for key in ("id", "conversation_id", "bot_id"))
    for message in (*deltas, completed):
        assert (message["chat_id"], message["role"], message["type"], message["content_type"]) == (
            chat["id"], "assistant", "answer", "text"
        )
    usage = chat["usage"]
    assert usage["token_count"] == usage["input_count"] + usage["output_count"] and usage["output_count"] == len(deltas)
    assert isinstance(chat["completed_at"], int) and chat["last_error"] == {"code": 0, "msg": ""}


def test_a_non_stream_chat_is_in_progress_then_completes_in_the_background(alice: Coze, bot: str) -> None:
    body = alice.chat(bot, text="background")
    chat = body["data"]
    assert body["code"] == 0 and chat["status"] == "in_progress" and chat["bot_id"] == bot
    assert alice.get("/v3/chat/message/list", conversation_id=chat["conversation_id"], chat_id=chat["id"]).json()["data"] == []
    done = alice.wait(chat)
    assert done["status"] == "completed" and done["usage"]["output_count"] > 0
    assert alice.client.get("/v3/chat/retrieve", params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}).json()[
        "data"
    ] == done  # GET too
    listed = alice.get("/v3/chat/message/list", conversation_id=chat["conversation_id"], chat_id=chat["id"]).json()["data"]
    assert [(m["role"], m["type"], m["chat_id"]) for m in listed] == [("assistant", "answer", chat["id"])]
    assert "background" in listed[0]["content"]


def test_a_chat_continues_its_conversation_and_a_busy_one_is_4016(alice: Coze, bot: str) -> None:
    first = alice.chat(bot)["data"]
    busy = alice.post("/v3/chat", alice.chat_body(bot), params={"conversation_id": first["conversation_id"]}).json()
    assert busy["code"] == 4016
    alice.wait(first)
    _, raw = alice.stream(bot, conversation_id=first["conversation_id"], text="again")
    payloads = [json.loads(data) for name, data in parse_stream(raw) if name != "done"]
    assert {p["conversation_id"] for p in payloads} == {first["conversation_id"]}
    assert payloads[-2]["content"].startswith("Turn 2")


def test_unknown_and_another_principals_conversations_and_chats(alice: Coze, bob: Coze, bot: str, server: ReferenceServer) -> None:
    assert alice.post("/v3/chat", alice.chat_body(bot), params={"conversation_id": UNKNOWN_ID}).json()["code"] == 4200
    bobs_bot = server.seed_published_bot("bob")
    bobs = bob.chat(bobs_bot)["data"]
    ids = {"conversation_id": bobs["conversation_id"], "chat_id": bobs["id"]}
    assert alice.post("/v3/chat", alice.chat_body(bot), params={"conversation_id": bobs["conversation_id"]}).json()["code"] == 4101
    assert alice.post("/v3/chat/retrieve", params=ids).json()["code"] == 4101
    assert alice.get("/v3/chat/message/list", **ids).json()["code"] == 4101
    assert alice.post("/v3/chat/cancel", ids).json()["code"] == 4101
    assert alice.post("/v3/chat/retrieve", params=ids | {"chat_id": UNKNOWN_ID}).json()["code"] == 4200
    assert alice.post("/v3/chat/retrieve", params=ids | {"conversation_id": UNKNOWN_ID}).json()["code"] == 4200
    assert bob.wait(bobs)["status"] == "completed"


def test_cancel_in_flight_reads_canceled_and_a_finished_chat_is_4104(alice: Coze, server: ReferenceServer) -> None:
    with ReferenceServer(ServerConfig(dialect="coze", token_delay=0.05)) as slow:
        api = Coze(slow.url)
        chat = api.chat(slow.seed_published_bot())["data"]
        ids = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
        canceled = api.post("/v3/chat/cancel", ids).json()
        assert canceled["code"] == 0 and canceled["data"]["status"] == "canceled" and canceled["data"]["id"] == chat["id"]
        time.sleep(0.2)
        assert api.retrieve(chat)["data"]["status"] == "canceled"
        assert api.get("/v3/chat/message/list", **ids).json()["data"] == []
        assert api.post("/v3/chat/cancel", ids).json()["code"] == 4104
        api.client.close()


def test_a_canceled_stream_ends_with_one_error_event_and_no_done() -> None:
    with ReferenceServer(ServerConfig(dialect="coze", token_delay=0.05)) as slow:
        api = Coze(slow.url)
        body = api.chat_body(slow.seed_published_bot(), stream=True)
        with api.client.stream("POST", "/v3/chat", json=body) as response:
            lines = response.iter_lines()
            first = [next(lines), next(lines)]
            chat = json.loads(first[1][len("data:") :])
            assert api.post("/v3/chat/cancel", {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}).json()["code"] == 0
            raw = ("\n".join([*first, *lines]) + "\n").encode()
        events = parse_stream(raw.replace(b"\n\n\n", b"\n\n"))
        names = [name for name, _ in events]
        assert names[-1] == "error" and "done" not in names and "conversation.chat.completed" not in names
        assert json.loads(events[-1][1]) == {"code": 4105, "msg": "chat canceled"}
        assert api.retrieve(chat)["data"]["status"] == "canceled"
        api.client.close()


def test_a_model_failure_ends_with_chat_failed_then_done(alice: Coze, bot: str) -> None:
    _, raw = alice.stream(bot, text="__reference_fail__")
    events = parse_stream(raw)
    assert [name for name, _ in events][-2:] == ["conversation.chat.failed", "done"]
    failed = json.loads(events[-2][1])
    assert failed["status"] == "failed" and failed["last_error"]["code"] == 5000 and isinstance(failed["failed_at"], int)


# --------------------------------------------------------------------------- wire variants


def test_the_coze_wire_variants_send_their_other_legal_forms() -> None:
    """The coze_* knobs (config.py "Coze wire variants"), all at once: statuses, framing,
    extra keys, unset times as 0, verbose and follow_up messages after the answer."""
    knobs: dict[str, Any] = {
        "coze_auth_status": 200,
        "coze_error_status": "http",
        "coze_sse_space": True,
        "coze_line_ending": "\r\n",
        "coze_extra_fields": True,
        "coze_unset_times": True,
        "coze_follow_up": True,
        "coze_content_type_params": True,
    }
    with ReferenceServer(ServerConfig(dialect="coze", token_delay=0.0, **knobs)) as srv:
        alice, bot = Coze(srv.url), srv.seed_published_bot("alice")
        refused = httpx.get(f"{srv.url}/v1/bots/{bot}", timeout=TIMEOUT)
        assert (refused.status_code, refused.json()["code"]) == (200, 4100)
        unknown = alice.get(f"/v1/bots/{UNKNOWN_ID}")
        assert (unknown.status_code, unknown.json()["code"]) == (404, 4200)
        assert unknown.json()["detail"]["logid"] == unknown.headers["x-tt-logid"]
        assert alice.post("/v3/chat", {"bot_id": bot}).status_code == 400  # 4000: no user_id
        response, raw = alice.stream(bot)
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert raw.endswith(b'event: done\r\ndata: "[DONE]"\r\n\r\n') and b"\n" not in raw.replace(b"\r\n", b"")
        events = parse_stream(raw.replace(b"\r\n", b"\n").replace(b"event: ", b"event:").replace(b"data: ", b"data:"))
        payloads = [(name, json.loads(data)) for name, data in events if name != "done"]
        created, completed = payloads[0][1], payloads[-1][1]
        assert (created["completed_at"], created["failed_at"], completed["failed_at"]) == (0, 0, 0) and completed["completed_at"] > 0
        assert created["section_id"] == created["conversation_id"] and created["meta_data"] == {"source": "reference"}
        messages = [p for name, p in payloads if name == "conversation.message.completed"]
        assert [m["type"] for m in messages] == ["answer", "verbose", "follow_up", "follow_up"]
        assert len({m["id"] for m in messages}) == 4 and all(m["reasoning_content"] == "" for m in messages)
        listed = alice.get("/v3/chat/message/list", conversation_id=completed["conversation_id"], chat_id=completed["id"]).json()
        assert [m["type"] for m in listed["data"]] == ["answer", "verbose", "follow_up", "follow_up"]
        assert listed["debug_url"] == "" and listed["detail"]["extra"] == {"region": "reference"}
        assert alice.get(f"/v1/bots/{bot}").json()["data"]["folder_id"] == "0"
        alice.client.close()
