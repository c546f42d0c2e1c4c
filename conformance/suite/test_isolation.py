"""Isolation: the second principal never reads, changes or steers the first one's
bots and conversations.

Spec: agent-api.zh.md 错误码 "| 403 | 禁止访问,权限不足 |" and "| 404 | 资源不存在 |",
the chat table's ``user_id`` "用于数据隔离"; READING rows "Another principal's bot or
conversation" (403 or 404, never the data, nothing changed) and "Chat with an unknown /
another principal's ConversationID" (400/403/404, or a new conversation -- never the
other one's messages).

Every test needs the second principal (``api2``); without one it SKIPs with the reason
(the embedded server always has one). Where a chat is involved both principals send
the same ``user_id``, so the principal is the only thing that differs: a server that
isolates by ``user_id`` alone fails here, as it should.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.oracle.sse import Event
from conformance.run.shared_state import SharedState
from conformance.settings import Settings
from conformance.suite.conftest import BotMaker
from conformance.suite.helpers import (
    Answer,
    Bot,
    chat_body,
    envelope,
    fields_of,
    id_text,
    in_every_form,
    read_events,
    stream_rules,
)
from conformance.transport.client import ApiClient

#: get_online_info's documented fields (spec response example): what "unchanged" compares.
ONLINE_FIELDS = ("bot_id", "name", "description", "icon_url", "version", "status", "model", "published_at")


@pytest.fixture
def other_bot(
    conformance_settings: Settings, api2: ApiClient, shared_state: SharedState, run_id: str, profile: Profile
) -> Bot:
    """A published bot of the second principal (from its own budget of the run's bots),
    so that its chat names the first principal's conversation and nothing else of it."""
    maker = BotMaker(api2, shared_state, run_id, "principal-2", conformance_settings, profile)
    return maker.publish(maker.create("i"))


def read_bot(client: ApiClient, profile: Profile, endpoint_name: str, bot: Bot) -> Answer:
    """One of the two info endpoints, the bot id as digits in its query or path."""
    endpoint = profile.endpoint(endpoint_name)
    if endpoint.params_in == "path":
        return envelope(client.request(endpoint.method, endpoint.url_path(bot_id=bot.id)))
    return envelope(client.request(endpoint.method, endpoint.path, params={"bot_id": bot.id}))


def leaked(answer: Answer, secrets_: tuple[str, ...]) -> list[str]:
    """Which of ``secrets_`` (texts only the owner's data holds) an answer shows, raw or
    JSON-escaped."""
    shown = answer.response.text
    if answer.body is not None:
        shown += json.dumps(answer.body, ensure_ascii=False)
    return [text for text in secrets_ if text and text in shown]


# --------------------------------------------------------------------------- bots


@pytest.mark.parametrize(
    ("endpoint_name", "rid"),
    [
        pytest.param("online_info", "ISO-001", marks=pytest.mark.requirement("ISO-001"), id="get_online_info"),
        pytest.param("bot_detail", "ISO-002", marks=pytest.mark.requirement("ISO-002"), id="bots-detail"),
    ],
)
def test_other_principal_cannot_read_bot(
    api2: ApiClient, check: Checks, profile: Profile, published_bot: Bot, endpoint_name: str, rid: str
) -> None:
    answer = read_bot(api2, profile, endpoint_name, published_bot)
    # The run's bot names and descriptions carry the run id: no other text holds them.
    shown = leaked(answer, (published_bot.name, published_bot.description))
    check(
        rid,
        answer.code in profile.forbidden.codes and not shown,
        expected=f"code in {sorted(profile.forbidden.codes)}, none of the bot's data",
        actual=answer.describe(),
        detail=f"the answer shows the owner's {shown}" if shown else "",
    )


@pytest.mark.requirement("ISO-003", "ISO-004")
def test_other_principal_cannot_change_bot(
    api: ApiClient, api2: ApiClient, check: Checks, profile: Profile, new_bot: Callable[..., Bot], run_id: str
) -> None:
    bot = new_bot(publish=True, label="v")
    before = read_bot(api, profile, "online_info", bot)
    if not before.ok:
        pytest.skip(f"blocked by BOT-ONLINE-001: the owner's get_online_info answered {before.describe()}")

    # Principal 2 tries to rename the bot, then to publish it (ids as the tables give them).
    hijack = {"name": f"cz-conf-{run_id}-hijack", "description": "changed by another principal"}
    update, publish = profile.endpoint("update"), profile.endpoint("publish")
    updated = envelope(api2.request(update.method, update.path, json={"bot_id": bot.json_id, **hijack}))
    published = envelope(api2.request(publish.method, publish.path, json={"bot_id": bot.json_id}))

    codes = sorted(profile.forbidden.codes)
    for rid, answer in (("ISO-003", updated), ("ISO-004", published)):
        check(rid, answer.code in profile.forbidden.codes, expected=f"code in {codes}", actual=answer.describe(), soft=True)

    # The owner reads it back: the draft as created (/v1/bots may show the draft), and
    # the online version as it was before (same version: no publish happened).
    detail = read_bot(api, profile, "bot_detail", bot)
    if detail.ok:
        check(
            "ISO-003",
            fields_of(detail.data, ("name", "description")) == {"name": bot.name, "description": bot.description},
            expected={"name": bot.name, "description": bot.description},
            actual=fields_of(detail.data, ("name", "description")),
            detail="the owner's /v1/bots/:bot_id after principal 2's update",
            soft=True,
        )
    else:
        check.skip("ISO-003", f"blocked by BOT-GET-001: the owner's /v1/bots answered {detail.describe()}")
    after = read_bot(api, profile, "online_info", bot)
    if after.ok:
        check(
            "ISO-004",
            fields_of(after.data, ONLINE_FIELDS) == fields_of(before.data, ONLINE_FIELDS),
            expected=fields_of(before.data, ONLINE_FIELDS),
            actual=fields_of(after.data, ONLINE_FIELDS),
            detail="the owner's get_online_info before and after principal 2's update and publish",
            soft=True,
        )
    else:
        check.skip("ISO-004", f"blocked by BOT-ONLINE-001: the owner's get_online_info answered {after.describe()}")


# --------------------------------------------------------------------------- conversations


@pytest.mark.requirement("ISO-005")
def test_other_principal_cannot_continue_conversation(
    api: ApiClient,
    api2: ApiClient,
    check: Checks,
    profile: Profile,
    published_bot: Bot,
    other_bot: Bot,
    user_id: str,
    run_id: str,
) -> None:
    chat = profile.endpoint("chat")
    key = profile.conversation.response_key
    # A text only the owner's conversation holds: any answer showing it read that conversation.
    marker = f"cz-conf-{run_id}-{secrets.token_hex(4)}"
    opening = chat_body(published_bot, user_id, f"请记住口令 {marker}")
    first = envelope(api.request(chat.method, chat.path, json=opening))
    conversation = id_text(first.data.get(key)) if first.ok else None
    if conversation is None:
        pytest.skip(f"blocked by CHAT-RESP-001: the owner's chat answered {first.describe()}")

    body, params = in_every_form(profile, conversation, chat_body(other_bot, user_id, "刚才的口令是什么?"))
    answer = envelope(api2.request(chat.method, chat.path, json=body, params=params))
    shown = leaked(answer, (marker,))
    if answer.ok:
        # READING: a new conversation is legal, the owner's is not.
        got = id_text(answer.data.get(key))
        check(
            "ISO-005",
            got is not None and got != conversation and not shown,
            expected=f"a new conversation (not {conversation}), none of its messages",
            actual={key: answer.data.get(key), "shows the owner's message": bool(shown)},
        )
    else:
        codes = sorted(profile.forbidden.conversation_codes)
        check(
            "ISO-005",
            answer.code in profile.forbidden.conversation_codes and not shown,
            expected=f"code in {codes}, or code 0 with a new conversation",
            actual=answer.describe(),
            detail="the answer shows the owner's message" if shown else "",
        )


@pytest.mark.requirement("ISO-006")
def test_other_principal_cannot_cancel_stream(
    api: ApiClient,
    api2: ApiClient,
    check: Checks,
    profile: Profile,
    published_bot: Bot,
    conversation_of: Callable[[], str],
    user_id: str,
) -> None:
    chat, cancel = profile.endpoint("chat"), profile.endpoint("cancel")
    rules = stream_rules(profile)
    conversation = conversation_of()
    text = "请详细介绍一下你自己,并说明你能做什么。"
    body, params = in_every_form(profile, conversation, chat_body(published_bot, user_id, text, stream=True))
    refusals: list[Answer] = []

    def cancel_by_other() -> None:
        refusals.append(envelope(api2.request(cancel.method, cancel.path, json={"conversation_id": conversation})))

    def on_event(event: Event) -> bool:
        # After the first delta the owner's chat is surely running: principal 2 cancels
        # it, and the owner keeps reading (never stops early).
        if not refusals and rules.kind(event.type) == "delta":
            cancel_by_other()
        return False

    with api.stream(chat.method, chat.path, json=body, params=params) as answer:
        if answer.media_type != rules.media_type:
            why = f"the owner's stream answered HTTP {answer.status} {answer.media_type!r}"
            pytest.skip(f"blocked by CHAT-SSE-001: {why}")
        reading = read_events(answer, rules, stop=on_event)
    mid_stream = bool(refusals)
    if not mid_stream:
        cancel_by_other()  # no delta came (legal): the refusal is still judged
    codes = sorted(profile.forbidden.conversation_codes)
    check(
        "ISO-006",
        refusals[0].code in profile.forbidden.conversation_codes,
        expected=f"code in {codes}",
        actual=refusals[0].describe(),
        detail="sent after the owner's first delta" if mid_stream else "sent after the stream (it had no delta)",
        soft=True,
    )
    check(
        "ISO-006",
        reading.grammar.outcome == "completed",
        expected=f"the owner's stream ends with {list(rules.chat_completed_events)}",
        actual=[event.type for event in reading.events],
        detail=f"principal 2's cancel answered {refusals[0].describe()}",
    )
