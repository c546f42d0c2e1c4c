"""POST /v3/chat without streaming: what a request must not carry, and a body too big.

The chats a server must accept -- the documented answer, every optional input, new and
continued conversations -- are judged in ``test_continuity.py``, on the chats of one
conversation test: a real deployment rate-limits the suite (spec "速率限制": 60 chats a
minute per principal), so a chat that can honestly judge several requirements does.

Every negative body here is a valid chat with the run's published bot with exactly one
thing changed, so the expected code is the only right answer even for a server that
looks the bot up first. The body ``code`` decides (READING "HTTP status of errors"); the
HTTP status equal to it is judged by the plugin on every answer (ERR-003).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.suite.helpers import (
    Bot,
    chat_body,
    chat_path,
    envelope,
    has_code,
    unknown_id,
)
from conformance.transport.client import ApiClient

#: READING "body size limits": "a huge body may be accepted or refused with a 4xx,
#: never a 5xx"; the catalogue's READ-001 says "over 1 MiB".
HUGE_BODY_BYTES = 1024 * 1024 + 64 * 1024

Change = Callable[[dict[str, Any], Profile], dict[str, Any]]


# --------------------------------------------------------------------------- one change each


def _without(key: str) -> Change:
    return lambda body, profile: {k: v for k, v in body.items() if k != key}


def _replaced(key: str, make: Callable[[Any], Any]) -> Change:
    return lambda body, profile: {**body, key: make(body[key])}


def _message_without(keys: Callable[[Profile], tuple[str, ...]]) -> Change:
    """Drop ``keys`` from the body's one additional message."""

    def change(body: dict[str, Any], profile: Profile) -> dict[str, Any]:
        dropped = set(keys(profile))
        messages = [{k: v for k, v in m.items() if k not in dropped} for m in body["additional_messages"]]
        return {**body, "additional_messages": messages}

    return change


def refusal(requirement: str, change: Change, id: str) -> Any:
    """A table row judging ``requirement``; its marker comes from the same id."""
    return pytest.param(requirement, change, id=id, marks=pytest.mark.requirement(requirement))


REFUSALS = (
    refusal("CHAT-REQ-001", _without("bot_id"), "bot_id-missing"),
    refusal("CHAT-REQ-003", _without("user_id"), "user_id-missing"),
    # CHAT-REQ-005 names three wrong types; two are sent. The run's chat budget (16 for
    # these modules) has no room for a third, and bot_id is already probed by
    # CHAT-REQ-001/002 while user_id and additional_messages have no other test.
    refusal("CHAT-REQ-005", _replaced("user_id", lambda user: {"id": user}), "user_id-object"),
    refusal(
        "CHAT-REQ-005", _replaced("additional_messages", lambda messages: messages[0]), "additional_messages-object"
    ),
    refusal("CHAT-MSG-002", _message_without(lambda profile: ("role",)), "message-role-missing"),
    refusal("CHAT-MSG-003", _message_without(lambda profile: ("content",)), "message-content-missing"),
    # READING "additional_messages[].content_type": either key names the type; neither is 400.
    refusal(
        "CHAT-MSG-005", _message_without(lambda profile: profile.messages.content_type_keys), "message-type-missing"
    ),
)


@pytest.mark.parametrize(("requirement", "change"), REFUSALS)
def test_invalid_chat_refused(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, requirement: str, change: Change
) -> None:
    body = change(chat_body(published_bot, user_id, "你好"), profile)
    answer = envelope(api.request("POST", chat_path(profile), json=body))
    bad_request = profile.envelope.parameter_error_code
    check(requirement, has_code(answer, {bad_request}), expected=f"code {bad_request}", actual=answer.describe())


@pytest.mark.requirement("CHAT-REQ-002")
def test_unknown_bot_refused(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str) -> None:
    # READING "Unknown bot / conversation id": 400 or 404 in the envelope, never data.
    body = {**chat_body(published_bot, user_id, "你好"), "bot_id": unknown_id(published_bot.id)}
    answer = envelope(api.request("POST", chat_path(profile), json=body))
    codes = profile.unknown_ids.codes
    check("CHAT-REQ-002", has_code(answer, codes), expected=f"code in {sorted(codes)}", actual=answer.describe())


@pytest.mark.requirement("READ-001")
def test_huge_chat_body_never_server_error(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    # The padding rides in meta_data (documented, an object of strings) rather than in
    # the message, so a server that accepts the body spends no model tokens on it.
    body = chat_body(published_bot, user_id, "你好", meta_data={"cz_padding": ""})
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    body["meta_data"]["cz_padding"] = "x" * (HUGE_BODY_BYTES - size)
    answer = envelope(api.request("POST", chat_path(profile), json=body))
    code = answer.code if isinstance(answer.code, int) and not isinstance(answer.code, bool) else None
    server_error = answer.status >= 500 or (code is not None and code >= 500)
    refused = 400 <= answer.status < 500 or (code is not None and 400 <= code < 500)
    check(
        "READ-001",
        not server_error and (answer.ok or refused),
        expected=f"a {HUGE_BODY_BYTES}-byte chat accepted (code 0) or refused with a 4xx, never a 5xx",
        actual=answer.describe(),
    )
