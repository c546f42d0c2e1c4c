"""Errors: always ``{"code": N, "msg": "...", "data": null}`` with HTTP status N.

Spec "错误处理": codes 0/400/401/403/404/429/500 and the envelope example. Every
bad input below gets a 4xx envelope that names the problem -- never a 5xx, never a
hang. (401 and 403: test_reference_auth.py; 429: test_reference_ratelimit.py; 500,
the failure trigger: test_reference_chat.py.)
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance.reference import DEV_PRINCIPALS, ENDPOINTS, ReferenceServer

if TYPE_CHECKING:
    from conftest import Api, StartServer

MIB = 1024 * 1024
BOT = "{bot}"  # placeholders filled from the fixture's bots
DRAFT = "{draft}"
CONV = "{conv}"


@dataclass(frozen=True)
class Ids:
    bot: int
    draft: int
    conv: str


@pytest.fixture(scope="module")
def ids(alice: Api) -> Ids:
    bot = alice.published_bot()
    return Ids(bot, alice.create_bot()["bot_id"], alice.chat(bot)["conversation_id"])


def fill(value: Any, ids: Ids) -> Any:
    """Replace the placeholders, keeping each in the JSON type it stands in."""
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if value == BOT:
        return ids.bot
    if value == DRAFT:
        return ids.draft
    if value == CONV:
        return ids.conv
    if isinstance(value, str):
        return value.replace("{bot}", str(ids.bot)).replace("{conv}", ids.conv)
    return value


def assert_envelope(response: httpx.Response, code: int, fragment: str = "") -> None:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["code", "msg", "data"]
    assert body["code"] == code and body["data"] is None
    assert isinstance(body["msg"], str) and body["msg"]
    assert fragment in body["msg"]


CHAT = {"bot_id": "{bot}", "user_id": "u"}
MSG = {"role": "user", "content": "hi", "content_type": "text"}


def chat_with(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in (CHAT | fields).items() if v is not ...}


BAD_JSON_BODIES = [
    pytest.param(b"", "JSON object", id="empty"),
    pytest.param(b"   ", "JSON object", id="blank"),
    pytest.param(b"{", "malformed JSON", id="truncated"),
    pytest.param(b"{'a': 1}", "malformed JSON", id="single-quotes"),
    pytest.param(b"[]", "JSON object", id="array"),
    pytest.param(b'"text"', "JSON object", id="string"),
    pytest.param(b"null", "JSON object", id="null"),
    pytest.param(b'{"a": NaN}', "malformed JSON", id="nan"),
    pytest.param(b'{"a": Infinity}', "malformed JSON", id="infinity"),
    pytest.param(b"\xff\xfe{}", "UTF-8", id="invalid-utf8"),
    pytest.param(b'{"a": "\xed\xa0\x80"}', "UTF-8", id="utf8-encoded-surrogate"),
    pytest.param(b'{"a": "\\ud800"}', "surrogate", id="lone-surrogate-escape"),
    pytest.param(b'{"\\udfff": 1}', "surrogate", id="lone-surrogate-in-key"),
    pytest.param(b'{"a": "x\\u0000y"}', "NUL", id="nul-escape"),
    pytest.param(b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "nested", id="deep-nesting"),
    pytest.param(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON", id="very-deep-nesting"),
    pytest.param(b'{"a": ' + b"9" * 5000 + b"}", "malformed JSON", id="huge-integer"),
]


@pytest.mark.parametrize("raw, fragment", BAD_JSON_BODIES)
@pytest.mark.parametrize("path", [e.path for e in ENDPOINTS if e.method == "POST"])
def test_a_body_that_is_not_a_json_object_is_400(alice: Api, path: str, raw: bytes, fragment: str) -> None:
    assert_envelope(alice.client.post(path, content=raw), 400, fragment)


# (path, body, fragment of the msg)
BAD_FIELDS = [
    # /v3/chat
    pytest.param("/v3/chat", chat_with(bot_id=...), "missing required field: bot_id", id="chat-no-bot_id"),
    pytest.param("/v3/chat", chat_with(user_id=...), "missing required field: user_id", id="chat-no-user_id"),
    pytest.param("/v3/chat", chat_with(user_id=""), "invalid user_id", id="chat-empty-user_id"),
    pytest.param("/v3/chat", chat_with(user_id=7), "invalid user_id", id="chat-user_id-int"),
    pytest.param("/v3/chat", chat_with(bot_id=1.5), "invalid bot_id", id="chat-bot_id-float"),
    pytest.param("/v3/chat", chat_with(bot_id=1e19), "invalid bot_id", id="chat-bot_id-float-over-int64"),
    pytest.param("/v3/chat", chat_with(bot_id=-2.0), "invalid bot_id", id="chat-bot_id-negative-float"),
    pytest.param("/v3/chat", chat_with(bot_id=True), "invalid bot_id", id="chat-bot_id-bool"),
    pytest.param("/v3/chat", chat_with(bot_id={"id": 1}), "invalid bot_id", id="chat-bot_id-object"),
    pytest.param("/v3/chat", chat_with(bot_id="abc"), "invalid bot_id", id="chat-bot_id-letters"),
    pytest.param("/v3/chat", chat_with(bot_id="١٢٣"), "invalid bot_id", id="chat-bot_id-arabic-digits"),
    pytest.param("/v3/chat", chat_with(bot_id="-5"), "invalid bot_id", id="chat-bot_id-negative"),
    pytest.param("/v3/chat", chat_with(bot_id=0), "invalid bot_id", id="chat-bot_id-zero"),
    pytest.param("/v3/chat", chat_with(bot_id=2**63), "invalid bot_id", id="chat-bot_id-over-int64"),
    pytest.param("/v3/chat", chat_with(bot_id="9" * 30), "invalid bot_id", id="chat-bot_id-30-digits"),
    pytest.param("/v3/chat", chat_with(stream="yes"), "invalid stream", id="chat-stream-string"),
    pytest.param("/v3/chat", chat_with(stream=1), "invalid stream", id="chat-stream-int"),
    pytest.param("/v3/chat", chat_with(ConversationID=""), "invalid ConversationID", id="chat-empty-conversation"),
    pytest.param("/v3/chat", chat_with(ConversationID=[1]), "invalid ConversationID", id="chat-conversation-list"),
    pytest.param("/v3/chat", chat_with(additional_messages={}), "invalid additional_messages", id="messages-object"),
    pytest.param("/v3/chat", chat_with(additional_messages=["hi"]), "additional_messages[0]", id="message-string"),
    pytest.param(
        "/v3/chat", chat_with(additional_messages=[MSG | {"role": "system"}]), "role", id="message-role-system"
    ),
    pytest.param(
        "/v3/chat", chat_with(additional_messages=[{"content": "x", "content_type": "text"}]), "role", id="message-no-role"
    ),
    pytest.param(
        "/v3/chat", chat_with(additional_messages=[{"role": "user", "content_type": "text"}]), "content", id="message-no-content"
    ),
    pytest.param(
        "/v3/chat", chat_with(additional_messages=[MSG | {"content": 5}]), "content", id="message-content-int"
    ),
    pytest.param(
        "/v3/chat",
        chat_with(additional_messages=[{"role": "user", "content": "x"}]),
        "additional_messages[0].content_type",
        id="message-no-content-type",
    ),
    pytest.param(
        "/v3/chat", chat_with(additional_messages=[MSG | {"content_type": "video"}]), "content_type", id="message-video"
    ),
    pytest.param(
        "/v3/chat",
        chat_with(additional_messages=[MSG | {"type": "image"}]),
        "disagree",
        id="message-type-and-content-type-disagree",
    ),
    pytest.param(
        "/v3/chat",
        chat_with(additional_messages=[MSG | {"content_type": "object_string", "content": "{not json"}]),
        "object_string",
        id="message-object-string-not-json",
    ),
    pytest.param(
        "/v3/chat", chat_with(additional_messages=[MSG | {"content_type": "image", "content": ""}]), "URL", id="image-empty"
    ),
    pytest.param("/v3/chat", chat_with(custom_variables=["a"]), "invalid custom_variables", id="custom-variables-list"),
    pytest.param("/v3/chat", chat_with(meta_data={"k": 1}), "invalid meta_data.k", id="meta-data-int-value"),
    pytest.param("/v3/chat", chat_with(extra_params={"k": None}), "invalid extra_params.k", id="extra-params-null-value"),
    # /v3/chat/cancel
    pytest.param("/v3/chat/cancel", {}, "missing required field: conversation_id", id="cancel-no-conversation"),
    pytest.param("/v3/chat/cancel", {"conversation_id": None}, "missing required field", id="cancel-null"),
    pytest.param("/v3/chat/cancel", {"conversation_id": {"id": 1}}, "invalid conversation_id", id="cancel-object"),
    # /api/conversation/chat
    pytest.param("/api/conversation/chat", {"query": "q"}, "missing required field: agent_id", id="internal-no-agent"),
    pytest.param("/api/conversation/chat", {"agent_id": BOT}, "missing required field: query", id="internal-no-query"),
    pytest.param("/api/conversation/chat", {"agent_id": BOT, "query": 3}, "invalid query", id="internal-query-int"),
    pytest.param("/api/conversation/chat", {"agent_id": "x1", "query": "q"}, "invalid agent_id", id="internal-bad-agent"),
    pytest.param(
        "/api/conversation/chat", {"agent_id": BOT, "query": "q", "stream": "true"}, "invalid stream", id="internal-stream"
    ),
    # /api/draftbot/*
    pytest.param("/api/draftbot/create", {}, "missing required field: name", id="create-no-name"),
    pytest.param("/api/draftbot/create", {"name": "  "}, "invalid name", id="create-blank-name"),
    pytest.param("/api/draftbot/create", {"name": ["n"]}, "invalid name", id="create-name-list"),
    pytest.param("/api/draftbot/create", {"name": "n", "model": 4}, "invalid model", id="create-model-int"),
    pytest.param("/api/draftbot/create", {"name": "n", "description": False}, "invalid description", id="create-desc-bool"),
    pytest.param("/api/draftbot/update_display_info", {"name": "n"}, "missing required field: bot_id", id="update-no-id"),
    pytest.param("/api/draftbot/update_display_info", {"bot_id": BOT, "name": ""}, "invalid name", id="update-empty-name"),
    pytest.param("/api/draftbot/update_display_info", {"bot_id": BOT, "icon_url": 1}, "invalid icon_url", id="update-icon"),
    pytest.param("/api/draftbot/publish", {}, "missing required field: bot_id", id="publish-no-id"),
    pytest.param("/api/draftbot/publish", {"bot_id": "12a"}, "invalid bot_id", id="publish-bad-id"),
]


@pytest.mark.parametrize("path, body, fragment", BAD_FIELDS)
def test_a_bad_field_is_400_naming_it(alice: Api, ids: Ids, path: str, body: dict[str, Any], fragment: str) -> None:
    assert_envelope(alice.client.post(path, json=fill(body, ids)), 400, fragment)


@pytest.mark.parametrize("spelling", ["{id}.0", "{id}.000", "{id}E0", "{id}0e-1"])
def test_an_integral_number_is_the_id_it_spells(alice: Api, ids: Ids, spelling: str) -> None:
    """1302.0 is a JSON Schema integer (the exported OpenAPI document types ids as
    integers): read exactly, with no float in between, even above 2^53."""
    assert ids.bot > 2**53
    raw = '{"bot_id": ' + spelling.format(id=ids.bot) + "}"
    response = alice.client.post("/api/draftbot/publish", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert f'"bot_id":{ids.bot}' in response.text


def test_a_refused_update_changes_nothing(alice: Api, ids: Ids) -> None:
    before = alice.client.get(f"/v1/bots/{ids.bot}").json()["data"]
    body = {"bot_id": ids.bot, "description": "changed", "name": ""}  # one good field, one bad
    assert_envelope(alice.client.post("/api/draftbot/update_display_info", json=body), 400)
    assert alice.client.get(f"/v1/bots/{ids.bot}").json()["data"] == before


BAD_QUERIES = [
    pytest.param("/v1/bot/get_online_info", {}, "missing required query parameter: bot_id", id="online-no-id"),
    pytest.param("/v1/bot/get_online_info", {"bot_id": "abc"}, "invalid bot_id", id="online-letters"),
    pytest.param("/v1/bot/get_online_info", {"bot_id": ""}, "invalid bot_id", id="online-empty"),
    pytest.param("/v1/bot/get_online_info", {"bot_id": "1.5"}, "invalid bot_id", id="online-decimal"),
    pytest.param("/v1/bot/get_online_info", {"bot_id": "\x00"}, "invalid bot_id", id="online-nul"),
    pytest.param("/v1/bot/get_online_info", {"bot_id": ["{bot}", "{bot}"]}, "more than once", id="online-twice"),
    pytest.param("/v1/bots/abc", {}, "invalid bot_id", id="details-letters"),
    pytest.param("/v1/bots/-1", {}, "invalid bot_id", id="details-negative"),
    pytest.param("/v1/bots/" + "9" * 25, {}, "invalid bot_id", id="details-too-long"),
    pytest.param("/v1/bots/%F0%9F%99%82", {}, "invalid bot_id", id="details-emoji"),
    pytest.param("/v3/chat", {"conversation_id": ""}, "invalid conversation_id", id="chat-empty-query-id"),
    pytest.param("/v3/chat", {"conversation_id": ["1", "2"]}, "more than once", id="chat-query-id-twice"),
]


@pytest.mark.parametrize("path, params, fragment", BAD_QUERIES)
def test_a_bad_query_or_path_is_400(alice: Api, ids: Ids, path: str, params: dict[str, Any], fragment: str) -> None:
    params = fill(params, ids)
    if path == "/v3/chat":
        response = alice.client.post(path, params=params, json=fill(CHAT, ids))
    else:
        response = alice.client.get(path, params=params)
    assert_envelope(response, 400, fragment)


# Unknown ids ----------------------------------------------------------------------------

UNKNOWN_BOT = 7493710240598375999
UNKNOWN = [
    pytest.param("POST", "/v3/chat", {"bot_id": str(UNKNOWN_BOT), "user_id": "u"}, {}, "bot", id="chat-bot"),
    pytest.param("POST", "/v3/chat", chat_with(ConversationID="1234567890123456789"), {}, "conversation", id="chat-conv"),
    pytest.param("POST", "/v3/chat", CHAT, {"conversation_id": "nope"}, "conversation", id="chat-query-conv"),
    pytest.param("POST", "/v3/chat/cancel", {"conversation_id": "1234567890123456789"}, {}, "conversation", id="cancel"),
    pytest.param("POST", "/api/conversation/chat", {"agent_id": UNKNOWN_BOT, "query": "q"}, {}, "bot", id="internal"),
    pytest.param("POST", "/api/draftbot/update_display_info", {"bot_id": UNKNOWN_BOT}, {}, "bot", id="update"),
    pytest.param("POST", "/api/draftbot/publish", {"bot_id": UNKNOWN_BOT}, {}, "bot", id="publish"),
    pytest.param("GET", "/v1/bot/get_online_info", None, {"bot_id": str(UNKNOWN_BOT)}, "bot", id="online-info"),
    pytest.param("GET", f"/v1/bots/{UNKNOWN_BOT}", None, {}, "bot", id="details"),
]


@pytest.mark.parametrize("status", [pytest.param(404, id="unknown-404"), pytest.param(400, id="unknown-400")])
@pytest.mark.parametrize("method, path, body, params, what", UNKNOWN)
def test_an_unknown_id_answers_the_configured_status(
    start_server: StartServer,
    api_for: Any,
    status: int,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    params: dict[str, str],
    what: str,
) -> None:
    """READING "Unknown bot / conversation id": 404 by default, 400 as a knob."""
    api: Api = api_for(start_server(unknown_id_status=status))
    bot = api.published_bot()
    ids = Ids(bot, bot, api.chat(bot)["conversation_id"])
    response = api.client.request(method, path, json=fill(body, ids), params=params)
    assert_envelope(response, status, f"{what} ")
    assert "not found" in response.json()["msg"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/", id="root"),
        pytest.param("POST", "/v3/chats", id="typo"),
        pytest.param("GET", "/v3/chat", id="wrong-method"),
        pytest.param("DELETE", "/api/draftbot/create", id="delete"),
        pytest.param("POST", "/v1/bots/1", id="post-on-get"),
        pytest.param("POST", "/v3/chat/", id="trailing-slash"),
        pytest.param("GET", "/v1/bots/", id="details-without-id"),
    ],
)
def test_an_unknown_endpoint_answers_404(alice: Api, method: str, path: str) -> None:
    assert_envelope(alice.client.request(method, path), 404, "no such endpoint")


def test_online_info_of_a_never_published_bot_is_404(alice: Api, ids: Ids) -> None:
    assert_envelope(alice.client.get("/v1/bot/get_online_info", params={"bot_id": ids.draft}), 404, "never published")


# Body size --------------------------------------------------------------------------------


def padded_create(total: int) -> bytes:
    """A valid create body of exactly ``total`` bytes."""
    head, tail = b'{"name": "big", "description": "', b'"}'
    return head + b"x" * (total - len(head) - len(tail)) + tail


def test_a_body_of_exactly_one_mib_is_accepted(alice: Api) -> None:
    response = alice.client.post("/api/draftbot/create", content=padded_create(MIB))
    assert response.status_code == 200 and len(response.json()["data"]["description"]) > MIB - 100


@pytest.mark.parametrize(
    "size", [pytest.param(MIB + 1, id="one-byte-over"), pytest.param(8 * MIB, id="eight-mib")]
)
def test_a_body_over_one_mib_is_refused_with_400(alice: Api, size: int) -> None:
    response = alice.client.post("/api/draftbot/create", content=padded_create(size))
    assert_envelope(response, 400, "too large")
    # The connection stays usable: the rest of the body was discarded, not left to hang.
    assert alice.client.get("/v1/bots/1").status_code in (400, 403, 404)


def test_an_oversized_body_without_a_length_is_refused(alice: Api) -> None:
    """Chunked upload: refused once past the limit, however much more would come."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"name": "big", "description": "'
        for _ in range(40):  # 40 x 64 KiB = 2.5 MiB
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    response = alice.client.post("/api/draftbot/create", content=body())
    assert_envelope(response, 400, "too large")


def test_a_declared_oversized_body_is_refused_before_it_arrives(ref_server: ReferenceServer) -> None:
    """Only the headers and a few bytes are sent: the answer comes without the rest."""
    host, port = ref_server.url.removeprefix("http://").split(":")
    head = (
        f"POST /api/draftbot/create HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {DEV_PRINCIPALS[0].api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {8 * MIB}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"name": "')
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request"
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["code"] == 400 and "too large" in body["msg"]


def test_unicode_that_can_travel_is_kept_exactly(alice: Api) -> None:
    name = "名前 🙂 \u2028 \x85 é"
    data = alice.create_bot(name=name)
    assert data["name"] == name
    assert json.loads(alice.client.get(f"/v1/bots/{data['bot_id']}").content)["data"]["name"] == name
