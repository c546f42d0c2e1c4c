"""Authentication on every endpoint, and ownership of bots and conversations.

Spec "认证方式": ``Cookie: session_key=…`` (WebAPI) and ``Authorization: Bearer …``
(OpenAPI). READING "Auth per endpoint": both accepted everywhere by default here;
``auth_modes="by_class"`` narrows each endpoint to its class. Another principal's bot
or conversation: 403 (or 404 with ``forbidden_status=404``), and nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, ENDPOINTS, ReferenceServer

if TYPE_CHECKING:
    from conftest import Api, StartServer

ALICE, BOB = DEV_PRINCIPALS
BEARER = {"Authorization": f"Bearer {ALICE.api_key}"}
COOKIE = {"Cookie": f"session_key={ALICE.session_key}"}
PATHS = [e.path for e in ENDPOINTS]


@dataclass(frozen=True)
class World:
    """Alice's published bot and one of her conversations, on some server."""

    bot_id: int
    conversation_id: str


def make_world(api: Api) -> World:
    bot_id = api.published_bot(name="Alice's bot")
    return World(bot_id, api.chat(bot_id)["conversation_id"])


def valid_request(path: str, world: World) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
    """(method, url, json body, query) of a request that succeeds for the bot's owner."""
    bot = world.bot_id
    table: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, str]]] = {
        "/v3/chat": ("POST", "/v3/chat", {"bot_id": str(bot), "user_id": "u"}, {}),
        "/v3/chat/cancel": ("POST", "/v3/chat/cancel", {"conversation_id": world.conversation_id}, {}),
        "/api/conversation/chat": ("POST", "/api/conversation/chat", {"agent_id": bot, "query": "q"}, {}),
        "/api/draftbot/create": ("POST", "/api/draftbot/create", {"name": "new"}, {}),
        "/api/draftbot/update_display_info": ("POST", "/api/draftbot/update_display_info", {"bot_id": bot}, {}),
        "/api/draftbot/publish": ("POST", "/api/draftbot/publish", {"bot_id": bot}, {}),
        "/v1/bot/get_online_info": ("GET", "/v1/bot/get_online_info", None, {"bot_id": str(bot)}),
        "/v1/bots/{bot_id}": ("GET", f"/v1/bots/{bot}", None, {}),
    }
    return table[path]


def send(client: httpx.Client, path: str, world: World, headers: dict[str, str], **overrides: Any) -> httpx.Response:
    method, url, body, params = valid_request(path, world)
    if "content" in overrides:
        return client.request(method, url, content=overrides["content"], params=params, headers=headers)
    return client.request(method, url, json=body, params=params, headers=headers)


@pytest.fixture(scope="module")
def world(alice: Api) -> World:
    return make_world(alice)


def assert_error(response: httpx.Response, code: int) -> None:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["msg"], str) and body["data"] is None


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", [pytest.param(BEARER, id="bearer"), pytest.param(COOKIE, id="cookie")])
def test_both_auth_modes_work_on_every_endpoint(
    anonymous: httpx.Client, world: World, path: str, headers: dict[str, str]
) -> None:
    response = send(anonymous, path, world, headers)
    assert response.status_code == 200, response.text
    assert response.json()["code"] == 0


BAD_CREDENTIALS = [
    pytest.param({}, id="none"),
    pytest.param({"Authorization": "Bearer not-a-key"}, id="wrong-api-key"),
    pytest.param({"Cookie": "session_key=not-a-session"}, id="wrong-session"),
    pytest.param({"Authorization": f"Basic {ALICE.api_key}"}, id="basic-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
    pytest.param({"Authorization": ALICE.api_key}, id="no-scheme"),
    pytest.param({"Cookie": f"other={ALICE.session_key}"}, id="wrong-cookie-name"),
    pytest.param(
        {"Authorization": f"Bearer {ALICE.api_key}", "Cookie": f"session_key={BOB.session_key}"}, id="two-principals"
    ),
    pytest.param({"Authorization": f"Bearer {ALICE.api_key}", "Cookie": "session_key=bad"}, id="one-bad-of-two"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
def test_missing_or_wrong_credentials_answer_401(
    anonymous: httpx.Client, world: World, path: str, headers: dict[str, str]
) -> None:
    response = send(anonymous, path, world, headers)
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", [p for p, e in zip(PATHS, ENDPOINTS, strict=True) if e.method == "POST"])
def test_credentials_are_checked_before_the_body(anonymous: httpx.Client, world: World, path: str) -> None:
    assert_error(send(anonymous, path, world, {}, content=b"{not json"), 401)


def test_the_bearer_scheme_is_case_insensitive(anonymous: httpx.Client, world: World) -> None:
    headers = {"Authorization": f"bearer {ALICE.api_key}"}
    assert send(anonymous, "/v1/bots/{bot_id}", world, headers).status_code == 200


@pytest.mark.parametrize(("path", "endpoint"), [pytest.param(e.path, e, id=e.path) for e in ENDPOINTS])
def test_by_class_accepts_only_the_mode_of_the_class(
    start_server: StartServer, api_for: Callable[..., Api], path: str, endpoint: Any
) -> None:
    """READING "Auth per endpoint": Bearer on /v1 and /v3, the session cookie on /api."""
    server = start_server(auth_modes="by_class")
    owner = api_for(server, headers=COOKIE)
    world = make_world_by_class(owner, server, api_for)
    own, other = (BEARER, COOKIE) if endpoint.endpoint_class == "openapi" else (COOKIE, BEARER)
    plain = api_for(server, headers={}).client
    assert send(plain, path, world, own).status_code == 200
    assert_error(send(plain, path, world, other), 401)


def make_world_by_class(owner: Api, server: ReferenceServer, api_for: Callable[..., Api]) -> World:
    """A world built with each endpoint's own mode (management by cookie, chat by Bearer)."""
    bot_id = owner.published_bot()
    chatter = api_for(server, headers=BEARER)
    return World(bot_id, chatter.chat(bot_id)["conversation_id"])


# Ownership -----------------------------------------------------------------------------


def snapshot(api: Api, world: World) -> tuple[Any, Any]:
    details = api.client.get(f"/v1/bots/{world.bot_id}").json()["data"]
    online = api.client.get("/v1/bot/get_online_info", params={"bot_id": world.bot_id}).json()["data"]
    return details, online


def bob_attempts(bob: Api, world: World, bob_bot: int) -> dict[str, httpx.Response]:
    """Everything Bob might try on Alice's bot and conversation."""
    chat = {"bot_id": str(world.bot_id), "user_id": "bob", "additional_messages": []}
    return {
        "read-online-info": bob.client.get("/v1/bot/get_online_info", params={"bot_id": world.bot_id}),
        "read-details": bob.client.get(f"/v1/bots/{world.bot_id}"),
        "update": bob.client.post(
            "/api/draftbot/update_display_info", json={"bot_id": world.bot_id, "name": "pwned", "description": "x"}
        ),
        "publish": bob.client.post("/api/draftbot/publish", json={"bot_id": world.bot_id}),
        "chat-with-bot": bob.client.post("/v3/chat", json=chat),
        "chat-with-bot-streaming": bob.client.post("/v3/chat", json=chat | {"stream": True}),
        "internal-chat-with-bot": bob.client.post("/api/conversation/chat", json={"agent_id": world.bot_id, "query": "q"}),
        "continue-conversation": bob.client.post(
            "/v3/chat",
            json={"bot_id": str(bob_bot), "user_id": "bob", "ConversationID": world.conversation_id},
        ),
        "continue-conversation-internal": bob.client.post(
            "/api/conversation/chat",
            json={"agent_id": bob_bot, "query": "q", "conversation_id": world.conversation_id},
        ),
        "cancel": bob.client.post("/v3/chat/cancel", json={"conversation_id": world.conversation_id}),
    }


@pytest.mark.parametrize("status", [pytest.param(403, id="forbidden-403"), pytest.param(404, id="forbidden-404")])
def test_another_principal_gets_the_forbidden_status_and_changes_nothing(
    start_server: StartServer, api_for: Callable[..., Api], status: int
) -> None:
    # Envelopes throughout (a streaming chat's refusal would otherwise be an error event).
    server = start_server(forbidden_status=status, stream_errors="envelope")
    alice, bob = api_for(server, ALICE), api_for(server, BOB)
    world = make_world(alice)
    bob_bot = bob.published_bot()
    before = snapshot(alice, world)
    for attempt, response in bob_attempts(bob, world, bob_bot).items():
        assert response.status_code == status, attempt
        assert response.json() == {"code": status, "msg": response.json()["msg"], "data": None}, attempt
        if status == 404:  # as for an unknown id: nothing says the resource exists
            assert "another user" not in response.json()["msg"], attempt
    assert snapshot(alice, world) == before
    # Alice's conversation saw none of Bob's messages: her next chat is its second turn.
    assert alice.chat(world.bot_id, ConversationID=world.conversation_id)["content"].startswith("Turn 2 ")


def test_another_principals_cancel_leaves_the_stream_running(
    start_server: StartServer, api_for: Callable[..., Api]
) -> None:
    server = start_server(token_delay=0.05)
    alice, bob = api_for(server, ALICE), api_for(server, BOB)
    bot_id = alice.published_bot()
    body = alice.chat_body(bot_id, stream=True)
    with alice.client.stream("POST", "/v3/chat", json=body) as response:
        lines = response.iter_lines()
        conversation_id = None
        for line in lines:
            if line.startswith("data: ") and '"chat"' in line:
                conversation_id = json.loads(line[6:])["chat"]["conversation_id"]
                break
        assert conversation_id is not None
        assert_error(bob.client.post("/v3/chat/cancel", json={"conversation_id": conversation_id}), 403)
        rest = list(lines)
    assert "event: conversation.chat.completed" in rest
    assert "event: conversation.chat.failed" not in rest


def test_bots_and_conversations_are_per_principal(alice: Api, bob: Api) -> None:
    """Bob's own bot and conversation work for Bob, alongside Alice's."""
    bot_id = bob.published_bot()
    conversation_id = bob.chat(bot_id)["conversation_id"]
    assert bob.chat(bot_id, ConversationID=conversation_id)["content"].startswith("Turn 2 ")
    assert_error(alice.client.get(f"/v1/bots/{bot_id}"), 403)
