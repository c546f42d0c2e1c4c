"""Chats a client polls: create without streaming, retrieve until done, list the messages,
cancel -- the flow of cozepy's ``chat.create_and_poll`` (profile ``coze``).

A profile whose chat answers ``stream: false`` with a chat object still ``in_progress``
has ``retrieve`` and ``message_list`` endpoints; every path, method, parameter place,
id type and code here comes from the profile's data. Under a profile without those
endpoints the tests of this module have no requirement and do not run.

Cancel (COZE-CANCEL-001) races the chat: a chat that finished before the cancel arrived
cannot show a cancel, so the test then SKIPs (a long answer is asked for, so it rarely
does). Chats of one conversation run one at a time (the cloud answers 4016 otherwise):
a continued conversation's first chat is polled to its end before the second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.settings import Settings
from conformance.suite.helpers import (
    LONG_ANSWER,
    Answer,
    Bot,
    chat_body,
    envelope,
    has_code,
    id_text,
    id_value,
    is_integer,
    refused,
    unknown_id,
)
from conformance.transport.client import ApiClient

#: Statuses of a chat still under way (cozepy's ChatStatus).
RUNNING = ("created", "in_progress")
POLL_FIRST, POLL_MAX = 0.1, 1.0


# --------------------------------------------------------------------------- requests


def start_chat(
    api: ApiClient, profile: Profile, body: dict[str, Any], conversation: str | None = ""
) -> Answer:
    """POST the chat; ``conversation`` goes in the query as cozepy sends it (empty for a
    new conversation), None leaves the parameter out."""
    chat = profile.endpoint("chat")
    form = profile.conversation.preferred
    params = None if conversation is None or form.location != "query" else {form.key: conversation}
    if conversation and form.location == "body":
        body = {**body, form.key: conversation}
    return envelope(api.request(chat.method, chat.path, json=body, params=params))


def chat_ids(answer: Answer) -> dict[str, str] | None:
    """The conversation_id and chat_id of a chat object answer, as text; None if absent."""
    data = answer.data if isinstance(answer.data, dict) else {}
    ids = {"conversation_id": id_text(data.get("conversation_id")), "chat_id": id_text(data.get("id"))}
    return None if None in ids.values() else {k: str(v) for k, v in ids.items()}


def call(api: ApiClient, profile: Profile, name: str, ids: dict[str, str]) -> Answer:
    """One of the endpoints that name a chat (retrieve, message_list, cancel), its ids
    where and as the profile's table puts them."""
    endpoint = profile.endpoint(name)
    values = {k: id_value(endpoint, k, v) for k, v in ids.items()}
    if endpoint.params_in == "body":
        return envelope(api.request(endpoint.method, endpoint.path, json=values))
    return envelope(api.request(endpoint.method, endpoint.path, params=values))


def answer_time(profile: Profile, settings: Settings) -> float:
    """How long a chat may run before it must read completed: the profile's answer time,
    or the run's stream deadline (--stream-timeout) when that is shorter -- a chat polled
    is a stream read in another form."""
    return min(profile.chat.answer_within_seconds, settings.stream_timeout)


def poll(api: ApiClient, profile: Profile, ids: dict[str, str], within: float) -> tuple[Answer, float]:
    """Retrieve the chat until it is no longer running, or ``within`` seconds have
    passed; the last answer and the seconds it took."""
    began = time.monotonic()
    pause = POLL_FIRST
    while True:
        answer = call(api, profile, "retrieve", ids)
        status = answer.data.get("status") if answer.ok else None
        waited = time.monotonic() - began
        if status not in RUNNING or waited >= within:
            return answer, waited
        time.sleep(pause)
        pause = min(POLL_MAX, pause * 2)



def status_of(answer: Answer) -> Any:
    return answer.data.get("status") if isinstance(answer.data, dict) else None


@pytest.fixture
def finished_chat(
    api: ApiClient, profile: Profile, published_bot: Bot, user_id: str, conformance_settings: Settings
) -> Callable[[], dict[str, str]]:
    """Start a non-stream chat and poll it to its end; its ids (SKIP if it never ends)."""

    def make() -> dict[str, str]:
        answer = start_chat(api, profile, chat_body(published_bot, user_id, "你好"))
        ids = chat_ids(answer)
        if ids is None:
            pytest.skip(f"blocked by COZE-CHAT-001: the chat answered {answer.describe()}")
        last, waited = poll(api, profile, ids, answer_time(profile, conformance_settings))
        if status_of(last) != "completed":
            pytest.skip(f"blocked by COZE-CHAT-004: the chat read {last.describe()} after {waited:.1f} s")
        return ids

    return make


# --------------------------------------------------------------------------- create and poll


@pytest.mark.requirement("COZE-CHAT-001", "COZE-CHAT-003", "COZE-CHAT-004", "COZE-CHAT-005")
def test_chat_is_polled_to_completion_and_listed(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, conformance_settings: Settings
) -> None:
    answer = start_chat(api, profile, chat_body(published_bot, user_id, "你好"), conversation="")
    check("COZE-CHAT-003", answer.ok, expected="code 0 (a new conversation)", actual=answer.describe())
    ids = chat_ids(answer)
    check(
        "COZE-CHAT-001",
        ids is not None and status_of(answer) == "in_progress",
        expected='data a chat object with string id and conversation_id, status "in_progress"',
        actual=answer.describe(),
    )
    assert ids is not None

    within = answer_time(profile, conformance_settings)
    last, waited = poll(api, profile, ids, within)
    check(
        "COZE-CHAT-004",
        last.ok and status_of(last) == "completed" and chat_ids(last) == ids,
        expected=f'code 0, the same chat, status "completed" within {within:g} s',
        actual=last.describe(),
        detail=f"polled for {waited:.1f} s",
    )

    listed = call(api, profile, "message_list", ids)
    messages = listed.data if isinstance(listed.body, dict) else None
    answers = [
        m
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict)
        and m.get("role") == profile.chat.answer_role
        and m.get("type") == profile.chat.answer_type
        and isinstance(m.get("content"), str)
        and m["content"]
    ]
    check(
        "COZE-CHAT-005",
        is_integer(listed.code) and listed.code == profile.envelope.success_code and bool(answers),
        expected=f"code 0, data a list holding a message role {profile.chat.answer_role!r}, "
        f"type {profile.chat.answer_type!r}, a non-empty content",
        actual=listed.describe(),
    )


@pytest.mark.requirement("COZE-CHAT-002")
def test_chat_without_stream_is_answered_whole(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    body = {k: v for k, v in chat_body(published_bot, user_id, "你好").items() if k != "stream"}
    answer = start_chat(api, profile, body, conversation=None)
    media = answer.response.headers.get("content-type", "")
    check(
        "COZE-CHAT-002",
        answer.ok and not media.lower().startswith(profile.stream["media_type"]),
        expected="the JSON envelope with code 0 and a chat object, not an event stream",
        actual=f"Content-Type {media!r}; {answer.describe()}",
    )


@pytest.mark.requirement("COZE-CHAT-006")
def test_chat_continues_its_conversation(
    api: ApiClient,
    check: Checks,
    profile: Profile,
    published_bot: Bot,
    user_id: str,
    finished_chat: Callable[[], dict[str, str]],
) -> None:
    first = finished_chat()
    answer = start_chat(api, profile, chat_body(published_bot, user_id, "再说一遍"), conversation=first["conversation_id"])
    ids = chat_ids(answer)
    check(
        "COZE-CHAT-006",
        answer.ok and ids is not None and ids["conversation_id"] == first["conversation_id"],
        expected=f"code 0, conversation_id {first['conversation_id']}",
        actual=answer.describe(),
    )


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("missing", ["bot_id", "user_id"])
@pytest.mark.requirement("COZE-CHAT-007")
def test_chat_without_a_required_parameter_is_refused(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, missing: str
) -> None:
    assert missing in profile.endpoint("chat").required, f"suite bug: {missing} is not required"
    body = {k: v for k, v in chat_body(published_bot, user_id, "你好").items() if k != missing}
    answer = start_chat(api, profile, body)
    check("COZE-CHAT-007", refused(answer, profile), expected="an error code", actual=answer.describe())


@pytest.mark.requirement("COZE-CHAT-008")
def test_chat_with_an_unknown_bot_is_refused(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    body = {**chat_body(published_bot, user_id, "你好"), "bot_id": unknown_id(published_bot.id)}
    answer = start_chat(api, profile, body)
    check("COZE-CHAT-008", refused(answer, profile), expected="an error code", actual=answer.describe())


@pytest.mark.requirement("COZE-CHAT-009")
def test_chat_with_an_unpublished_bot_is_refused(
    api: ApiClient, check: Checks, profile: Profile, new_bot: Callable[..., Bot], user_id: str
) -> None:
    draft = new_bot(label="u")
    answer = start_chat(api, profile, chat_body(draft, user_id, "你好"))
    codes = sorted(profile.chat.unpublished_codes)
    check(
        "COZE-CHAT-009",
        has_code(answer, set(codes)),
        expected=f"code in {codes}",
        actual=answer.describe(),
    )


# --------------------------------------------------------------------------- cancel


@pytest.mark.requirement("COZE-CANCEL-001")
def test_cancel_of_a_chat_in_flight(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    answer = start_chat(api, profile, chat_body(published_bot, user_id, LONG_ANSWER))
    ids = chat_ids(answer)
    if ids is None:
        pytest.skip(f"blocked by COZE-CHAT-001: the chat answered {answer.describe()}")
    cancel = call(api, profile, "cancel", ids)
    if is_integer(cancel.code) and cancel.code in profile.chat.finished_cancel_codes:
        check.skip("COZE-CANCEL-001", f"the chat finished before the cancel arrived: {cancel.describe()}")
        pytest.skip("the chat finished before the cancel arrived")
    after = call(api, profile, "retrieve", ids)
    check(
        "COZE-CANCEL-001",
        cancel.ok and status_of(cancel) == "canceled" and status_of(after) == "canceled",
        expected='cancel: code 0 with the chat, status "canceled"; retrieve then: status "canceled"',
        actual=f"cancel {cancel.describe()}; retrieve {after.describe()}",
    )


@pytest.mark.parametrize("missing", ["chat_id", "conversation_id"])
@pytest.mark.requirement("COZE-CANCEL-002")
def test_cancel_without_a_required_id_is_refused(
    api: ApiClient, check: Checks, profile: Profile, chat_of: Callable[[], dict[str, str]], missing: str
) -> None:
    assert missing in profile.endpoint("cancel").required, f"suite bug: {missing} is not required"
    ids = {k: v for k, v in chat_of().items() if k != missing}
    answer = call(api, profile, "cancel", ids)
    check("COZE-CANCEL-002", refused(answer, profile), expected="an error code", actual=answer.describe())


@pytest.mark.requirement("COZE-CANCEL-003")
def test_cancel_of_a_finished_chat(
    api: ApiClient, check: Checks, profile: Profile, finished_chat: Callable[[], dict[str, str]]
) -> None:
    answer = call(api, profile, "cancel", finished_chat())
    codes = sorted(profile.chat.finished_cancel_codes)
    check(
        "COZE-CANCEL-003",
        has_code(answer, set(codes)),
        expected=f"code in {codes}",
        actual=answer.describe(),
    )


# --------------------------------------------------------------------------- another principal's chat


@pytest.mark.parametrize("endpoint", ["retrieve", "message_list"])
@pytest.mark.requirement("COZE-ISO-002")
def test_another_principals_chat_is_never_read(
    api2: ApiClient, check: Checks, profile: Profile, chat_of: Callable[[], dict[str, str]], endpoint: str
) -> None:
    ids = chat_of()
    answer = call(api2, profile, endpoint, ids)
    check(
        "COZE-ISO-002",
        refused(answer, profile) and not answer.data,
        expected="an error code, never the chat's data",
        actual=answer.describe(),
        detail=f"principal 2 asked for principal 1's chat {ids['chat_id']}",
    )


@pytest.mark.requirement("COZE-ISO-003")
def test_another_principals_chat_is_never_cancelled(
    api: ApiClient, api2: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    answer = start_chat(api, profile, chat_body(published_bot, user_id, LONG_ANSWER))
    ids = chat_ids(answer)
    if ids is None:
        pytest.skip(f"blocked by COZE-CHAT-001: the chat answered {answer.describe()}")
    cancel = call(api2, profile, "cancel", ids)
    after = call(api, profile, "retrieve", ids)
    check(
        "COZE-ISO-003",
        refused(cancel, profile) and status_of(after) != "canceled",
        expected="an error code, and the chat not canceled",
        actual=f"principal 2's cancel {cancel.describe()}; principal 1's retrieve {after.describe()}",
    )
