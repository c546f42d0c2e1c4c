"""The studio dialect of the reference server (conformance/reference/studio/): every endpoint
of docs/studio-contract.md, both auth classes, the capabilities on and off, every studio_*
knob and every studio fault -- over a real socket with httpx, read by hand (not with the
suite's checker).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, PrincipalConfig, ReferenceServer, ServerConfig
from conformance.reference.__main__ import parse_args
from conformance.reference.faults import all_faults, dialect_faults
from conformance.reference.faults.studio import STUDIO_FAULTS

ALICE, BOB = DEV_PRINCIPALS
TIMEOUT = httpx.Timeout(10.0)
UNKNOWN_ID = "7000000000000000001"
DIGITS = re.compile(r"[0-9]+")
VERBOSE = '{"msg_type":"generate_answer_finish","data":"{\\"finish_reason\\":0,\\"fin_data\\":\\"\\"}","from_unit":""}'
CHAT_KEYS = ["id", "conversation_id", "bot_id", "created_at", "completed_at", "failed_at", "status", "section_id"]
MESSAGE_KEYS = {"id", "conversation_id", "bot_id", "role", "type", "content", "content_type", "chat_id", "created_at"}


def parse_stream(raw: bytes, *, end: str = "\n", space: bool = False) -> list[tuple[str, str]]:
    """Events as (name, data text), exactly as the contract frames them: blocks split on a
    blank line, each one ``event:<name>`` line and one ``data:<text>`` line."""
    events = []
    text = raw.decode("utf-8")
    assert text.endswith(end * 2), text[-80:]
    gap = " " if space else ""
    for block in text.split(end * 2)[:-1]:
        lines = block.split(end)
        assert len(lines) == 2 and lines[0].startswith("event:" + gap) and lines[1].startswith("data:" + gap), block
        events.append((lines[0][len("event:" + gap) :], lines[1][len("data:" + gap) :]))
    return events


def payloads(events: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    return [(name, json.loads(data) if data else None) for name, data in events]


class Studio:
    """One principal's view of a studio-dialect server: a Bearer client and a cookie client."""

    def __init__(self, stack: ExitStack, server: ReferenceServer, principal: PrincipalConfig = ALICE) -> None:
        self.principal, self.url, self.server = principal, server.url, server
        self.api = stack.enter_context(
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {principal.api_key}"}, timeout=TIMEOUT)
        )
        self.web = stack.enter_context(
            httpx.Client(base_url=server.url, headers={"Cookie": f"session_key={principal.session_key}"}, timeout=TIMEOUT)
        )

    def webpost(self, path: str, body: object = None) -> httpx.Response:
        return self.web.post(path, json=body)

    def bot(self, *, publish: bool = True, **fields: Any) -> str:
        body = {"space_id": self.principal.space_id, "name": "studio bot", "icon_uri": "icon.png"} | fields
        answer = self.webpost("/api/draftbot/create", body).json()
        bot_id: str = answer["data"]["bot_id"] if "bot_id" in answer.get("data", {}) else self.server.seed_published_bot(self.principal.name)
        if publish:
            self.publish(bot_id)
        return str(bot_id)

    def publish(self, bot_id: str, **fields: Any) -> httpx.Response:
        return self.webpost("/api/draftbot/publish", {"bot_id": bot_id, "connectors": {"1024": {}}} | fields)

    def chat_body(self, bot_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
        message = {"role": "user", "content": text, "content_type": "text", "type": "question"}
        return {"bot_id": bot_id, "user_id": "u1", "stream": True, "additional_messages": [message]} | extra

    def chat(self, bot_id: str, conversation_id: str | None = None, **extra: Any) -> httpx.Response:
        params = {} if conversation_id is None else {"conversation_id": conversation_id}
        return self.api.post("/v3/chat", json=self.chat_body(bot_id, **extra), params=params)

    def events(self, bot_id: str, conversation_id: str | None = None, **extra: Any) -> list[tuple[str, Any]]:
        response = self.chat(bot_id, conversation_id, **extra)
        assert response.status_code == 200, response.text
        return payloads(parse_stream(response.content))

    def run(self, **body: Any) -> httpx.Response:
        return self.webpost("/api/conversation/chat", {"conversation_id": "0", "query": "hi", "scene": 0} | body)


def chat_of(events: list[tuple[str, Any]]) -> dict[str, Any]:
    chat: dict[str, Any] = events[0][1]
    return chat


def wait_completed(s: Studio, chat: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        params = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
        data: dict[str, Any] = s.api.get("/v3/chat/retrieve", params=params).json()["data"]
        if data["status"] not in ("created", "in_progress") or time.monotonic() > deadline:
            return data
        time.sleep(0.02)


def studio_server(**knobs: Any) -> ReferenceServer:
    return ReferenceServer(ServerConfig(**({"dialect": "studio", "token_delay": 0.0} | knobs)))


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with studio_server() as srv:
        yield srv


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as st:
        yield st


@pytest.fixture
def alice(stack: ExitStack, server: ReferenceServer) -> Studio:
    return Studio(stack, server)


@pytest.fixture
def bob(stack: ExitStack, server: ReferenceServer) -> Studio:
    return Studio(stack, server, BOB)


@pytest.fixture
def start(stack: ExitStack) -> Callable[..., tuple[Studio, Studio]]:
    """A studio server with the given knobs: (alice, bob) on it."""

    def make(**knobs: Any) -> tuple[Studio, Studio]:
        srv = stack.enter_context(studio_server(**knobs))
        return Studio(stack, srv), Studio(stack, srv, BOB)

    return make


# --------------------------------------------------------------------------- config and command line


def test_principals_derive_a_studio_identity_and_keep_secrets_out_of_repr() -> None:
    again = PrincipalConfig("alice", ALICE.api_key, ALICE.session_key)
    assert (again.email, again.password, again.space_id) == (ALICE.email, ALICE.password, ALICE.space_id)
    assert DIGITS.fullmatch(ALICE.space_id) and ALICE.space_id != BOB.space_id and "@" in ALICE.email
    assert ALICE.password not in repr(ALICE) and ALICE.api_key not in repr(ALICE)
    with pytest.raises(ValueError, match="space_id"):
        PrincipalConfig("x", "k" * 8, "s" * 8, space_id="12a")
    with pytest.raises(ValueError, match="email"):
        ServerConfig(principals=(PrincipalConfig("a", "k1", "s1", email="e@x"), PrincipalConfig("b", "k2", "s2", email="e@x")))


def test_config_checks_the_studio_knobs_and_faults() -> None:
    with pytest.raises(ValueError, match="studio_auth_status"):
        ServerConfig(dialect="studio", studio_auth_status=403)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="studio_nonstream"):
        ServerConfig(dialect="studio", studio_nonstream=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another dialect"):
        ServerConfig(dialect="coze", faults=frozenset({"studio_cancel_panic"}))
    with pytest.raises(ValueError, match="another dialect"):
        ServerConfig(dialect="studio", faults=frozenset({"coze_no_done"}))


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ([], (True, True, True)),
        (["--studio-capabilities", "all"], (True, True, True)),
        (["--studio-capabilities", "none"], (False, False, False)),
        (["--studio-capabilities", "cp"], (False, False, False)),
        (["--studio-capabilities", "retrieve,section_id"], (False, True, True)),
    ],
)
def test_the_command_line_takes_the_dialect_and_capabilities(option: list[str], expected: tuple[bool, ...]) -> None:
    args = parse_args(["--dialect", "studio", *option])
    assert args.dialect == "studio"
    assert tuple(args.studio_capabilities[f"studio_{n}"] for n in ("nonstream", "retrieve", "section_id")) == expected
    ServerConfig(dialect=args.dialect, **args.studio_capabilities)


def test_the_command_line_refuses_an_unknown_capability(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--studio-capabilities", "stream"])
    assert "nonstream" in capsys.readouterr().err


# --------------------------------------------------------------------------- passport, spaces, PATs


def test_login_sets_a_session_cookie_that_works(server: ReferenceServer, stack: ExitStack) -> None:
    client = stack.enter_context(httpx.Client(base_url=server.url, timeout=TIMEOUT))
    response = client.post("/api/passport/web/email/login/", json={"email": ALICE.email, "password": ALICE.password})
    body = response.json()
    assert response.status_code == 200 and body["code"] == 0 and body["msg"] == ""
    assert DIGITS.fullmatch(body["data"]["user_id_str"]) and body["data"]["email"] == ALICE.email
    cookie = response.headers["set-cookie"]
    assert re.fullmatch(r"session_key=[^;]+; Path=/; HttpOnly", cookie)
    spaces = client.post("/api/playground_api/space/list")  # the client keeps the cookie
    assert spaces.json()["data"]["bot_space_list"][0]["id"] == ALICE.space_id


@pytest.mark.parametrize(
    "body", [{"email": ALICE.email, "password": BOB.password}, {"email": "nobody@x", "password": ALICE.password}], ids=["password", "email"]
)
def test_a_wrong_login_is_refused_without_a_cookie(server: ReferenceServer, body: dict[str, str]) -> None:
    response = httpx.post(f"{server.url}/api/passport/web/email/login/", json=body)
    assert response.status_code == 200 and response.json()["code"] == 700012006 and "set-cookie" not in response.headers


def test_login_without_fields_is_400(server: ReferenceServer) -> None:
    response = httpx.post(f"{server.url}/api/passport/web/email/login/", json={"email": ALICE.email})
    assert response.status_code == 400 and response.json()["code"] == 400


def test_the_space_list_lists_the_personal_space(alice: Studio) -> None:
    for body in (None, {}):
        data = alice.webpost("/api/playground_api/space/list", body).json()["data"]
        assert data["bot_space_list"] == [{"id": ALICE.space_id, "name": "Personal", "space_type": 1}]
        assert data["has_personal_space"] is True and data["team_space_num"] == 0


def test_a_minted_pat_is_a_bearer_key_of_its_principal(alice: Studio, server: ReferenceServer) -> None:
    answer = alice.webpost(
        "/api/permission_api/pat/create_personal_access_token_and_permission", {"name": "ci", "duration_day": "30"}
    ).json()
    assert answer["code"] == 0
    pat, token = answer["data"]["personal_access_token"], answer["data"]["token"]
    assert token.startswith("pat_") and DIGITS.fullmatch(pat["id"]) and pat["expire_at"] - pat["created_at"] == 30 * 86400
    bot = alice.bot()
    info = httpx.get(f"{server.url}/v1/bot/get_online_info", params={"bot_id": bot}, headers={"Authorization": f"Bearer {token}"})
    assert info.status_code == 200 and info.json()["bot_id"] == bot
    missing = alice.webpost("/api/permission_api/pat/create_personal_access_token_and_permission", {})
    assert missing.status_code == 400 and missing.json()["code"] == 400


# --------------------------------------------------------------------------- auth by path class, envelope


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/v1/bot/get_online_info", {}, 200, 700012006),
        ("GET", "/v1/bot/get_online_info", {"Authorization": "Bearer wrong"}, 200, 700012006),
        ("GET", "/v1/bot/get_online_info", {"Cookie": f"session_key={ALICE.session_key}"}, 200, 700012006),
        ("POST", "/v3/chat", {"Cookie": f"session_key={ALICE.session_key}"}, 200, 700012006),
        ("POST", "/api/draftbot/create", {}, 401, 401),
        ("POST", "/api/draftbot/create", {"Authorization": f"Bearer {ALICE.api_key}"}, 401, 401),
        ("POST", "/api/draftbot/create", {"Cookie": "session_key=dead"}, 200, 700012006),
        ("POST", "/api/no/such/path", {}, 401, 401),
        ("POST", "/api/no/such/path", {"Cookie": f"session_key={ALICE.session_key}"}, 404, 404),
        ("GET", "/v3/no/such/path", {}, 404, 404),
        ("GET", "/v3/chat", {"Authorization": f"Bearer {ALICE.api_key}"}, 404, 404),
        ("GET", "/", {}, 404, 404),
        ("DELETE", "/v1/bots/1", {}, 404, 404),
    ],
)
def test_auth_by_path_class_and_unknown_paths(
    server: ReferenceServer, method: str, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    response = httpx.request(method, f"{server.url}{path}", params={"bot_id": "1"}, headers=headers, json={})
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code) and isinstance(body["msg"], str) and "data" not in body
    assert uuid.UUID(response.headers["x-log-id"]).version == 4


# --------------------------------------------------------------------------- bots


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ({"name": "x", "icon_uri": "i"}, "space id is not set"),
        ({"space_id": ALICE.space_id, "icon_uri": "i"}, "name is nil"),
        ({"space_id": ALICE.space_id, "name": "x"}, "icon uri is nil"),
        ({"space_id": ALICE.space_id, "name": "x" * 51, "icon_uri": "i"}, "too long"),
        ({"space_id": ALICE.space_id, "name": "x", "icon_uri": "i", "description": "d" * 2001}, "too long"),
        ({"space_id": int(ALICE.space_id), "name": "x", "icon_uri": "i"}, "space_id"),
    ],
)
def test_create_validation_is_400(alice: Studio, body: dict[str, Any], msg: str) -> None:
    response = alice.webpost("/api/draftbot/create", body)
    assert response.status_code == 400 and response.json()["code"] == 400 and msg in response.json()["msg"]


def test_create_in_another_space_is_100000003(alice: Studio) -> None:
    body = alice.webpost("/api/draftbot/create", {"space_id": BOB.space_id, "name": "x", "icon_uri": "i"}).json()
    assert body["code"] == 100000003


def test_a_draft_is_private_until_published_and_every_publish_is_a_new_version(alice: Studio, bob: Studio) -> None:
    bot = alice.bot(publish=False, name="名" * 50)
    info = alice.api.get("/v1/bot/get_online_info", params={"bot_id": bot, "connector_id": "1024"}).json()
    assert info["code"] == 100000000
    update = {"bot_info": {"bot_id": bot, "name": "renamed", "prompt_info": {"prompt": "be brief"}, "model_info": {"model_id": "42"}}}
    answer = alice.webpost("/api/playground_api/draftbot/update_draft_bot_info", update).json()
    assert answer == {"code": 0, "msg": "", "data": {"has_change": True, "check_not_pass": False, "branch": 0, "same_with_online": False}}
    published = alice.publish(bot).json()
    assert published["data"]["publish_result"] == {"1024": {"connector": None, "code": 0, "msg": "", "publish_result_status": 1}}
    first = alice.api.get("/v1/bot/get_online_info", params={"bot_id": bot, "connector_id": "1024"}).json()
    assert (first["name"], first["prompt_info"], first["model_info"]) == ("renamed", {"prompt": "be brief"}, {"model_id": "42"})
    assert DIGITS.fullmatch(first["version"]) and first["create_time"] == 0 and "code" not in first
    alice.webpost("/api/playground_api/draftbot/update_draft_bot_info", {"bot_info": {"bot_id": bot, "name": "third"}})
    assert alice.api.get("/v1/bot/get_online_info", params={"bot_id": bot}).json()["name"] == "renamed"  # no connector_id: 1024
    alice.publish(bot)
    details = alice.api.get(f"/v1/bots/{bot}").json()
    assert details["code"] == 0 and details["data"]["name"] == "third" and details["data"]["version"] != first["version"]
    alice.publish(bot, commit_version="123456")
    assert alice.api.get(f"/v1/bots/{bot}").json()["data"]["version"] == "123456"
    assert bob.api.get("/v1/bot/get_online_info", params={"bot_id": bot}).json()["code"] == 110000001
    assert bob.api.get(f"/v1/bots/{bot}").json()["code"] == 110000001
    assert alice.api.get(f"/v1/bots/{UNKNOWN_ID}").json()["code"] == 100000000


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/draftbot/publish", {"connectors": {}}, 400, 400),
        ("/api/draftbot/publish", {}, 400, 400),
        ("/api/draftbot/publish", {"connectors": {"1": {}}}, 200, 100000003),
        ("/api/draftbot/publish", {"bot_id": UNKNOWN_ID, "connectors": {"1024": {}}}, 200, 100000003),
        ("/api/draftbot/publish", {"bot_id": "OTHER", "connectors": {"1024": {}}}, 200, 110000001),
        ("/api/playground_api/draftbot/update_draft_bot_info", {"bot_info": {"bot_id": UNKNOWN_ID}}, 200, 100000003),
        ("/api/playground_api/draftbot/update_draft_bot_info", {"bot_info": {"bot_id": "OTHER"}}, 200, 110000001),
        ("/api/playground_api/draftbot/update_draft_bot_info", {"bot_info": {}}, 400, 400),
        ("/api/draftbot/update_display_info", {"display_info": {"tab_display_info": {"a": "x"}}}, 400, 400),
        ("/api/draftbot/update_display_info", {"bot_id": UNKNOWN_ID, "display_info": {}}, 200, 100000003),
        ("/api/draftbot/update_display_info", {"bot_id": "OTHER", "display_info": {}}, 200, 110000001),
        ("/api/draftbot/get_display_info", {"bot_id": UNKNOWN_ID}, 200, 100000003),
        ("/api/draftbot/get_display_info", {"bot_id": 1}, 400, 400),
    ],
)
def test_bot_errors(alice: Studio, bob: Studio, path: str, body: dict[str, Any], status: int, code: int) -> None:
    mine, others = alice.bot(publish=False), bob.bot(publish=False)
    body = json.loads(json.dumps({"bot_id": mine} | body).replace('"OTHER"', f'"{others}"'))
    response = alice.webpost(path, body)
    assert (response.status_code, response.json()["code"]) == (status, code) and "stack=" not in response.json()["msg"]


def test_display_info_is_stored(alice: Studio) -> None:
    bot = alice.bot(publish=False)
    assert alice.webpost("/api/draftbot/get_display_info", {"bot_id": bot}).json()["data"] == {"tab_display_info": {}}
    tabs = {"plugin_tab_status": 1, "workflow_tab_status": 2}
    answer = alice.webpost("/api/draftbot/update_display_info", {"bot_id": bot, "display_info": {"tab_display_info": tabs}})
    assert answer.json() == {"code": 0, "msg": ""}
    assert alice.webpost("/api/draftbot/get_display_info", {"bot_id": bot}).json()["data"] == {"tab_display_info": tabs}


def test_no_model_knob(start: Callable[..., tuple[Studio, Studio]]) -> None:
    alice, _ = start(studio_no_model=True)
    body = alice.webpost("/api/draftbot/create", {"space_id": ALICE.space_id, "name": "x", "icon_uri": "i"}).json()
    assert body == {"code": 100000013, "msg": "there is no llm model in use, please config a model first"}


# --------------------------------------------------------------------------- /v3/chat


def test_a_stream_is_framed_and_ordered_as_the_contract_says(alice: Studio) -> None:
    bot = alice.bot()
    response = alice.chat(bot)
    assert response.headers["content-type"] == "text/event-stream" and uuid.UUID(response.headers["x-log-id"]).version == 4
    events = payloads(parse_stream(response.content))
    names = [name for name, _ in events]
    deltas = names.count("conversation.message.delta")
    assert deltas >= 5 and names == [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        *["conversation.message.delta"] * deltas,
        "conversation.message.completed",
        "conversation.message.completed",
        "conversation.chat.completed",
        "conversation.stream.done",
    ]
    assert response.content.endswith(b"event:conversation.stream.done\ndata:\n\n")
    created, progress, completed = events[0][1], events[1][1], events[-2][1]
    assert list(created) == CHAT_KEYS and created["status"] == "created" and progress["status"] == "in_progress"
    assert completed["status"] == "completed" and completed["completed_at"] > 0 and completed["failed_at"] == 0
    messages = [p for n, p in events if n.startswith("conversation.message")]
    assert all(set(m) - {"section_id", "meta_data"} == MESSAGE_KEYS and m["section_id"] for m in messages)
    answer, verbose = messages[-2], messages[-1]
    assert answer["content"] == "".join(p["content"] for n, p in events if n == "conversation.message.delta")
    assert (answer["role"], answer["type"], verbose["type"], verbose["content"]) == ("assistant", "answer", "verbose", VERBOSE)
    meta = answer["meta_data"]
    assert all(isinstance(meta[k], str) for k in ("input_tokens", "output_tokens", "token", "time_cost"))
    assert int(meta["token"]) == int(meta["input_tokens"]) + int(meta["output_tokens"])
    for _, payload in events[:-1]:
        assert "usage" not in payload
        assert all(DIGITS.fullmatch(payload[k]) for k in ("id", "conversation_id", "bot_id"))


def test_a_conversation_continues_and_an_unknown_one_is_new(alice: Studio) -> None:
    bot = alice.bot()
    first = chat_of(alice.events(bot))
    second = alice.events(bot, first["conversation_id"])
    assert chat_of(second)["conversation_id"] == first["conversation_id"] and "Turn 2" in second[-4][1]["content"]
    body_only = alice.events(bot, ConversationID=first["conversation_id"])
    assert chat_of(body_only)["conversation_id"] == first["conversation_id"]
    body = alice.chat_body(bot, conversation_id=first["conversation_id"])  # the body's conversation_id: ignored
    ignored = payloads(parse_stream(alice.api.post("/v3/chat", json=body).content))
    assert chat_of(ignored)["conversation_id"] != first["conversation_id"]
    fresh = chat_of(alice.events(bot, UNKNOWN_ID))
    assert fresh["conversation_id"] != UNKNOWN_ID and fresh["status"] == "created"


@pytest.mark.parametrize(
    ("body", "params", "msg"),
    [
        ({"bot_id": None}, {}, "bot_id"),
        ({"user_id": None}, {}, "user_id"),
        ({"bot_id": 7000000000000000001}, {}, "bot_id"),
        ({"custom_variables": {"a": 1}}, {}, "custom_variables"),
        ({"meta_data": {"a": None}}, {}, "meta_data"),
        ({}, {"conversation_id": ""}, "conversation_id"),
        ({"bot_id": "0"}, {}, "code=103000000 message=invalid parameter : bot id is required"),
    ],
)
def test_chat_bind_errors_are_400(alice: Studio, body: dict[str, Any], params: dict[str, str], msg: str) -> None:
    request = {k: v for k, v in (alice.chat_body(UNKNOWN_ID) | body).items() if v is not None}
    response = alice.api.post("/v3/chat", json=request, params=params)
    assert response.status_code == 400 and response.json()["code"] == 400 and msg in response.json()["msg"]


@pytest.mark.parametrize("case", ["unknown", "unpublished", "others_bot", "others_conversation", "role", "type"])
def test_a_prerun_error_is_one_error_event(alice: Studio, bob: Studio, case: str) -> None:
    bot, conversation, extra = alice.bot(), None, {}
    if case == "unknown":
        bot = UNKNOWN_ID
    elif case == "unpublished":
        bot = alice.bot(publish=False)
    elif case == "others_bot":
        bot = bob.bot()
    elif case == "others_conversation":
        conversation = chat_of(bob.events(bob.bot()))["conversation_id"]
    else:
        extra = {"additional_messages": [{"role": "system" if case == "role" else "user", "content": "x", "type": "x" if case == "type" else None}]}
    response = alice.chat(bot, conversation, **extra)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    [(name, data)] = parse_stream(response.content)
    assert name == "error" and json.loads(data)["code"] == 103100001 and json.loads(data)["msg"]


def test_nonstream_retrieve_and_message_list(alice: Studio, bob: Studio) -> None:
    bot = alice.bot()
    response = alice.chat(bot, stream=False)
    body = response.json()
    assert list(body) == ["data", "code", "msg", "BaseResp"] and body["BaseResp"] is None and body["code"] == 0
    chat = body["data"]
    assert chat["status"] == "created" and list(chat) == CHAT_KEYS
    done = wait_completed(alice, chat)
    assert done["status"] == "completed" and done["completed_at"] > 0
    params = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
    listed = alice.api.get("/v3/chat/message/list", params=params).json()
    assert listed["code"] == 0 and listed["msg"] == "" and "answer" in [m["type"] for m in listed["Messages"]]
    assert bob.api.get("/v3/chat/retrieve", params=params).json()["code"] == 103000001
    unknown = alice.api.get("/v3/chat/retrieve", params=params | {"chat_id": UNKNOWN_ID})
    assert unknown.status_code == 200 and unknown.json()["code"] == 103200003
    assert alice.api.get("/v3/chat/retrieve", params={"chat_id": chat["id"]}).status_code == 400
    prerun = alice.chat(UNKNOWN_ID, stream=False).json()
    assert prerun["code"] == 103100001 and "data" not in prerun


def test_capabilities_off_is_coze_plus(start: Callable[..., tuple[Studio, Studio]]) -> None:
    alice, _ = start(studio_nonstream=False, studio_retrieve=False, studio_section_id=False)
    bot = alice.bot()
    response = alice.chat(bot, stream=False)
    events = payloads(parse_stream(response.content))
    assert response.headers["content-type"] == "text/event-stream" and events[-1][0] == "conversation.stream.done"
    assert all("section_id" not in p for n, p in events if n.startswith("conversation.message"))
    assert events[0][1]["section_id"]  # chats always carry it
    chat = chat_of(events)
    for path in ("/v3/chat/retrieve", "/v3/chat/message/list"):
        answer = alice.api.get(path, params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]})
        assert answer.status_code == 404 and answer.json() == {"code": 404, "msg": "not found"}


def test_a_model_failure_is_an_error_event(alice: Studio) -> None:
    from conformance.reference import FAIL_TRIGGER

    events = alice.events(alice.bot(), text=FAIL_TRIGGER)
    assert events[-1][0] == "error" and events[-1][1]["code"] == 103200002
    assert "conversation.chat.completed" not in [n for n, _ in events]


# --------------------------------------------------------------------------- cancel


def cancel_midway(alice: Studio, bot: str, *, cancel_body: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> tuple[httpx.Response, bytes]:
    """A stream cancelled after its chat.created; the cancel's answer and the stream's bytes."""
    answers: list[httpx.Response] = []
    with alice.api.stream("POST", "/v3/chat", json=alice.chat_body(bot)) as response:
        raw = b""
        for piece in response.iter_raw():
            raw += piece
            if not answers and b"\n\n" in raw:
                chat = json.loads(raw.split(b"\n")[1][len(b"data:") :])
                body = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
                answers.append(alice.api.post("/v3/chat/cancel", json=cancel_body(body) if cancel_body else body))
    return answers[0], raw


def test_a_cancel_answers_the_chat_and_the_stream_still_ends(start: Callable[..., tuple[Studio, Studio]]) -> None:
    alice, bob = start(token_delay=0.03)
    bot = alice.bot()
    answer, raw = cancel_midway(alice, bot)
    body = answer.json()
    assert answer.status_code == 200 and list(body) == ["ChatV3ChatDetail", "BaseResp"] and body["BaseResp"] is None
    assert body["ChatV3ChatDetail"]["status"] == "conversation.chat.cancelled"
    names = [n for n, _ in parse_stream(raw)]
    assert names[-2:] == ["conversation.chat.completed", "conversation.stream.done"]
    chat = chat_of(payloads(parse_stream(raw)))
    ids = {"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
    late = alice.api.post("/v3/chat/cancel", json=ids)
    assert late.status_code == 400 and late.json() == {"code": 400, "msg": "code=103200005 message=in progress can not be cancelled"}
    for body, msg in (
        (ids | {"chat_id": UNKNOWN_ID}, "record not found"),
        (ids | {"conversation_id": UNKNOWN_ID}, "conversation not match"),
        ({"chat_id": chat["id"]}, "conversation_id"),
        (ids | {"chat_id": int(chat["id"])}, "chat_id"),
    ):
        refused = alice.api.post("/v3/chat/cancel", json=body)
        assert refused.status_code == 400 and refused.json()["code"] == 400 and msg in refused.json()["msg"]
    assert bob.api.post("/v3/chat/cancel", json=ids).json() == {"code": 400, "msg": "user not match"}


def test_cancel_knobs(start: Callable[..., tuple[Studio, Studio]]) -> None:
    alice, _ = start(token_delay=0.03, studio_cancel_envelope=True, studio_cancel_ends_stream=True)
    answer, raw = cancel_midway(alice, alice.bot())
    body = answer.json()
    assert body["code"] == 0 and body["msg"] == "" and body["data"]["status"] == "canceled"
    names = [n for n, _ in parse_stream(raw)]
    assert "conversation.chat.completed" not in names and "conversation.stream.done" not in names


# --------------------------------------------------------------------------- /api/conversation/chat


def test_the_run_streams_ack_pieces_the_whole_answer_and_done(alice: Studio) -> None:
    bot = alice.bot()
    response = alice.run(bot_id=bot, query="hello run")
    events = payloads(parse_stream(response.content))
    assert response.headers["content-type"] == "text/event-stream" and events[-1] == ("done", None)
    messages = [p for n, p in events if n == "message"]
    ack, *pieces, whole, verbose = messages
    assert (ack["message"]["role"], ack["message"]["type"], ack["message"]["content"], ack["is_finish"]) == ("user", "ack", "hello run", True)
    assert pieces and all(not p["is_finish"] and p["message"]["type"] == "answer" for p in pieces)
    assert whole["is_finish"] and whole["message"]["content"] == "".join(p["message"]["content"] for p in pieces)
    assert {p["message"]["message_id"] for p in [*pieces, whole]} == {whole["message"]["message_id"]}
    assert verbose["message"]["type"] == "verbose"
    conversation = whole["conversation_id"]
    assert DIGITS.fullmatch(conversation) and all(m["conversation_id"] == conversation for m in messages)
    again = payloads(parse_stream(alice.run(bot_id=bot, conversation_id=conversation).content))
    assert again[0][1]["conversation_id"] == conversation and "Turn 2" in again[-3][1]["message"]["content"]


def test_the_run_with_the_draft_and_its_errors(alice: Studio, bob: Studio) -> None:
    draft = alice.bot(publish=False)
    assert payloads(parse_stream(alice.run(bot_id=draft, draft_mode=True).content))[-1] == ("done", None)
    for bot in (draft, bob.bot(), UNKNOWN_ID):
        events = payloads(parse_stream(alice.run(bot_id=bot).content))
        assert [n for n, _ in events] == ["message", "done"]
        message = events[0][1]
        assert message["is_finish"] and message["message"]["content"].startswith("Something error:")


@pytest.mark.parametrize("missing", ["conversation_id", "query", "scene"])
def test_run_validation_is_400(alice: Studio, missing: str) -> None:
    body = {"bot_id": UNKNOWN_ID, "conversation_id": "0", "query": "q", "scene": 0}
    del body[missing]
    response = alice.webpost("/api/conversation/chat", body)
    assert response.status_code == 400 and response.json()["code"] == 400


# --------------------------------------------------------------------------- wire variants


def test_framing_variants(start: Callable[..., tuple[Studio, Studio]]) -> None:
    alice, _ = start(studio_sse_space=True, studio_line_ending="\r\n")
    raw = alice.chat(alice.bot()).content
    events = parse_stream(raw, end="\r\n", space=True)
    assert events[0][0] == "conversation.chat.created" and events[-1] == ("conversation.stream.done", "")
    run = parse_stream(alice.run(bot_id=alice.bot()).content, end="\r\n", space=True)
    assert run[-1] == ("done", "")


def test_status_variants(start: Callable[..., tuple[Studio, Studio]], server: ReferenceServer) -> None:
    alice, _ = start(studio_auth_status=401, studio_error_status="http", studio_prerun_envelope=True)
    refused = httpx.get(f"{alice.url}/v1/bots/1")
    assert refused.status_code == 401 and refused.json()["code"] == 700012006
    dead = httpx.post(f"{alice.url}/api/draftbot/create", headers={"Cookie": "session_key=dead"})
    assert dead.status_code == 401 and dead.json()["code"] == 700012006
    unknown = alice.webpost("/api/draftbot/get_display_info", {"bot_id": UNKNOWN_ID})
    assert unknown.status_code == 404 and unknown.json()["code"] == 100000003
    prerun = alice.chat(UNKNOWN_ID)
    assert prerun.status_code == 400 and prerun.headers["content-type"] == "application/json" and prerun.json()["code"] == 103100001


# --------------------------------------------------------------------------- faults


Probe = Callable[[Studio, Studio], bool]


def _stream_names(s: Studio, bot: str | None = None, **extra: Any) -> list[str]:
    return [n for n, _ in parse_stream(s.chat(bot or s.bot(), **extra).content)]


def _answer(s: Studio) -> dict[str, Any]:
    events = s.events(s.bot())
    answer: dict[str, Any] = [p for n, p in events if n == "conversation.message.completed"][0]
    return answer


def _verbose(s: Studio) -> dict[str, Any]:
    events = s.events(s.bot())
    verbose: dict[str, Any] = [p for n, p in events if n == "conversation.message.completed" and p["type"] == "verbose"][0]
    return verbose


def _other_conversation(a: Studio, b: Studio) -> bool:
    conversation = chat_of(b.events(b.bot()))["conversation_id"]
    return parse_stream(a.chat(a.bot(), conversation).content)[0][0] != "error"


def _cancel_probe(check: Callable[[httpx.Response, bytes], bool], **kw: Any) -> Probe:
    return lambda a, b: check(*cancel_midway(a, a.bot(), **kw))


def _stream_open_after_cancel(a: Studio, b: Studio) -> bool:
    try:
        with httpx.Client(base_url=a.url, headers=dict(a.api.headers), timeout=httpx.Timeout(10.0, read=1.0)) as client:
            a.api = client
            cancel_midway(a, a.bot())
    except httpx.ReadTimeout:
        return True
    return False


def _finished_cancel(a: Studio, b: Studio) -> bool:
    chat = chat_of(a.events(a.bot()))
    return a.api.post("/v3/chat/cancel", json={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}).status_code == 200


def _mismatched_cancel(a: Studio, b: Studio) -> bool:
    chat = chat_of(a.events(a.bot()))
    return a.api.post("/v3/chat/cancel", json={"conversation_id": UNKNOWN_ID, "chat_id": chat["id"]}).status_code >= 500


def _cancel_without_chat_id(a: Studio, b: Studio) -> bool:
    chat = chat_of(a.events(a.bot()))
    answer = a.api.post("/v3/chat/cancel", json={"conversation_id": chat["conversation_id"]})
    return answer.status_code != 400 or "chat_id" not in answer.json()["msg"]  # (the finished chat was found)


def _version_stuck(a: Studio, b: Studio) -> bool:
    bot = a.bot()
    first = a.api.get(f"/v1/bots/{bot}").json()["data"]["version"]
    a.publish(bot)
    return bool(a.api.get(f"/v1/bots/{bot}").json()["data"]["version"] == first)


def _draft_shown(a: Studio, b: Studio) -> bool:
    bot = a.bot()
    a.webpost("/api/playground_api/draftbot/update_draft_bot_info", {"bot_info": {"bot_id": bot, "name": "draft"}})
    return bool(a.api.get("/v1/bot/get_online_info", params={"bot_id": bot}).json()["name"] == "draft")


def _update_lost(a: Studio, b: Studio) -> bool:
    bot = a.bot(publish=False)
    a.webpost("/api/playground_api/draftbot/update_draft_bot_info", {"bot_info": {"bot_id": bot, "name": "new"}})
    a.publish(bot)
    return bool(a.api.get(f"/v1/bots/{bot}").json()["data"]["name"] != "new")


def _display_lost(a: Studio, b: Studio) -> bool:
    bot = a.bot(publish=False)
    a.webpost("/api/draftbot/update_display_info", {"bot_id": bot, "display_info": {"tab_display_info": {"t": 1}}})
    return bool(a.webpost("/api/draftbot/get_display_info", {"bot_id": bot}).json()["data"]["tab_display_info"] == {})


def _pat_refused(a: Studio, b: Studio) -> bool:
    token = a.webpost("/api/permission_api/pat/create_personal_access_token_and_permission", {"name": "n"}).json()["data"]["token"]
    response = httpx.get(f"{a.url}/v1/bots/{a.bot()}", headers={"Authorization": f"Bearer {token}"})
    return bool(response.json()["code"] != 0)


def _run_conversation(a: Studio, b: Studio) -> bool:
    bot = a.bot()
    first = payloads(parse_stream(a.run(bot_id=bot).content))[0][1]["conversation_id"]
    return bool(payloads(parse_stream(a.run(bot_id=bot, conversation_id=first).content))[0][1]["conversation_id"] != first)


def _nonstream_json(a: Studio) -> dict[str, Any]:
    data: dict[str, Any] = a.chat(a.bot(), stream=False).json()["data"]
    return data


def _message_list_empty(a: Studio, b: Studio) -> bool:
    chat = wait_completed(a, _nonstream_json(a))
    listed = a.api.get("/v3/chat/message/list", params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]})
    return not listed.json()["Messages"]


def _login(a: Studio, password: str) -> httpx.Response:
    return httpx.post(f"{a.url}/api/passport/web/email/login/", json={"email": ALICE.email, "password": password})


PROBES: dict[str, Probe] = {
    "studio_bearer_refused": lambda a, b: a.api.get(f"/v1/bots/{a.bot()}").json()["code"] != 0,
    "studio_cookie_refused": lambda a, b: a.webpost("/api/draftbot/get_display_info", {"bot_id": a.bot()}).json()["code"] != 0,
    "studio_missing_bearer_served": lambda a, b: httpx.get(f"{a.url}/v1/bots/{a.bot()}").json()["code"] == 0,
    "studio_no_cookie_not_401": lambda a, b: httpx.post(f"{a.url}/api/draftbot/create", json={}).status_code != 401,
    "studio_dead_cookie_served": lambda a, b: httpx.post(
        f"{a.url}/api/playground_api/space/list", headers={"Cookie": "session_key=dead"}
    ).json()["code"] == 0,
    "studio_cookie_on_openapi": lambda a, b: httpx.get(
        f"{a.url}/v1/bots/{a.bot()}", headers={"Cookie": f"session_key={ALICE.session_key}"}
    ).json()["code"] == 0,
    "studio_bearer_on_webapi": lambda a, b: a.api.post("/api/playground_api/space/list").status_code == 200,
    "studio_login_any_password": lambda a, b: "set-cookie" in _login(a, "wrong").headers,
    "studio_pat_not_usable": _pat_refused,
    "studio_space_list_empty": lambda a, b: not a.webpost("/api/playground_api/space/list").json()["data"]["bot_space_list"],
    "studio_success_msg_null": lambda a, b: a.webpost("/api/playground_api/space/list").json()["msg"] is None,
    "studio_error_code_string": lambda a, b: isinstance(httpx.get(f"{a.url}/v3/x").json()["code"], str),
    "studio_no_logid": lambda a, b: "x-log-id" not in httpx.get(f"{a.url}/v3/x").headers,
    "studio_stack_in_msg": lambda a, b: "\nstack=" in a.webpost("/api/draftbot/create", {}).json()["msg"],
    "studio_unknown_path_200": lambda a, b: httpx.get(f"{a.url}/v3/x").status_code == 200,
    "studio_create_bot_id_number": lambda a, b: isinstance(
        a.webpost("/api/draftbot/create", {"space_id": ALICE.space_id, "name": "n", "icon_uri": "i"}).json()["data"]["bot_id"], int
    ),
    "studio_stream_media_type": lambda a, b: not a.chat(a.bot()).headers["content-type"].startswith("text/event-stream"),
    "studio_no_stream_done": lambda a, b: _stream_names(a)[-1] != "conversation.stream.done",
    "studio_payload_wrapped": lambda a, b: "id" not in a.events(a.bot())[0][1],
    "studio_deltas_differ": lambda a, b: (lambda ev: [p for n, p in ev if n == "conversation.message.completed"][0]["content"]
                                           != "".join(p["content"] for n, p in ev if n == "conversation.message.delta"))(a.events(a.bot())),
    "studio_meta_data_numbers": lambda a, b: not isinstance(_answer(a)["meta_data"]["token"], str),
    "studio_completed_at_zero": lambda a, b: a.events(a.bot())[-2][1]["completed_at"] == 0,
    "studio_missing_user_id_accepted": lambda a, b: a.chat(a.bot(), user_id=None).status_code != 400,
    "studio_unknown_bot_streamed": lambda a, b: _stream_names(a, UNKNOWN_ID)[0] != "error",
    "studio_conversation_not_continued": lambda a, b: (lambda bot, c: chat_of(a.events(bot, c["conversation_id"]))["conversation_id"]
                                                        != c["conversation_id"])(*(lambda bot: (bot, chat_of(a.events(bot))))(a.bot())),
    "studio_unknown_conversation_error": lambda a, b: _stream_names(a, None, ConversationID=UNKNOWN_ID)[0] == "error",
    "studio_iso_other_conversation": _other_conversation,
    "studio_no_section_id": lambda a, b: "section_id" in _answer(a) and "section_id" not in _verbose(a),
    "studio_nonstream_without_id": lambda a, b: "id" not in _nonstream_json(a),
    "studio_message_list_empty": _message_list_empty,
    "studio_cancel_without_chat_id_accepted": _cancel_without_chat_id,
    "studio_cancel_status_running": _cancel_probe(lambda r, raw: r.json()["ChatV3ChatDetail"]["status"] == "in_progress"),
    "studio_cancel_stream_open": _stream_open_after_cancel,
    "studio_cancel_finished_ok": _finished_cancel,
    "studio_cancel_panic": _mismatched_cancel,
    "studio_create_no_bot_id": lambda a, b: "bot_id" not in a.webpost(
        "/api/draftbot/create", {"space_id": ALICE.space_id, "name": "n", "icon_uri": "i"}
    ).json()["data"],
    "studio_create_empty_icon_accepted": lambda a, b: a.webpost("/api/draftbot/create", {"space_id": ALICE.space_id, "name": "n"}).status_code == 200,
    "studio_update_not_stored": _update_lost,
    "studio_publish_version_stuck": _version_stuck,
    "studio_publish_any_connector": lambda a, b: a.publish(a.bot(publish=False), connectors={"7": {}}).json()["code"] == 0,
    "studio_online_info_shows_draft": _draft_shown,
    "studio_online_info_no_name": lambda a, b: a.api.get("/v1/bot/get_online_info", params={"bot_id": a.bot()}).json()["name"] == "",
    "studio_bot_details_not_found": lambda a, b: a.api.get(f"/v1/bots/{a.bot()}").json()["code"] != 0,
    "studio_iso_online_info_other_bot": lambda a, b: "bot_id" in a.api.get("/v1/bot/get_online_info", params={"bot_id": b.bot()}).json(),
    "studio_display_info_not_stored": _display_lost,
    "studio_online_info_500": lambda a, b: a.api.get("/v1/bot/get_online_info", params={"bot_id": a.bot()}).status_code == 500,
    "studio_plain_text_400": lambda a, b: not a.webpost("/api/draftbot/publish", {}).headers["content-type"].startswith("application/json"),
    "studio_run_no_ack": lambda a, b: payloads(parse_stream(a.run(bot_id=a.bot()).content))[0][1]["message"]["type"] != "ack",
    "studio_run_missing_query_accepted": lambda a, b: a.webpost(
        "/api/conversation/chat", {"bot_id": a.bot(), "conversation_id": "0", "scene": 0}
    ).status_code == 200,
    "studio_run_conversation_not_continued": _run_conversation,
}
#: Faults whose probe needs a chat slow enough to be cancelled mid-stream.
SLOW = frozenset({"studio_cancel_status_running", "studio_cancel_stream_open"})


def test_every_studio_fault_is_probed_and_registered() -> None:
    assert set(PROBES) == set(dialect_faults("studio")) == {f.name for f in STUDIO_FAULTS}
    assert set(dialect_faults("studio")) <= set(all_faults())
    # One fault per studio requirement of the catalogue at least (ENV-002 has two: a code
    # that is a string, and Coze Plus's plain-text 400s), each at its requirement's level.
    from conformance.oracle.catalogue import load_catalogue

    studio = load_catalogue().for_profile("studio")
    assert {f.requirement for f in STUDIO_FAULTS} == set(studio)
    assert all(f.level == studio[f.requirement].level for f in STUDIO_FAULTS)


@pytest.fixture(scope="module")
def slow_clean() -> Iterator[ReferenceServer]:
    with studio_server(token_delay=0.03) as srv:
        yield srv


@pytest.mark.parametrize("name", sorted(PROBES))
def test_each_fault_breaks_what_it_says_and_only_when_on(
    name: str, stack: ExitStack, server: ReferenceServer, slow_clean: ReferenceServer
) -> None:
    delay = 0.03 if name in SLOW else 0.0
    broken = stack.enter_context(studio_server(token_delay=delay, faults=frozenset({name})))
    clean = slow_clean if name in SLOW else server
    assert PROBES[name](Studio(stack, broken), Studio(stack, broken, BOB)), f"{name}: not seen with the fault on"
    assert not PROBES[name](Studio(stack, clean), Studio(stack, clean, BOB)), f"{name}: seen on the clean server"


def test_a_held_stream_ends_when_the_server_stops() -> None:
    """studio_cancel_stream_open holds a body open; stopping the server still ends it at once."""
    with ExitStack() as stack:
        srv = studio_server(token_delay=0.03, faults=frozenset({"studio_cancel_stream_open"}))
        srv.start()
        alice = Studio(stack, srv)
        bot = alice.bot()
        timer = threading.Timer(0.6, srv.stop)
        timer.start()
        started = time.monotonic()
        cancel_midway(alice, bot)
        assert time.monotonic() - started < 5
        timer.join()
