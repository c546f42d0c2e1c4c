"""Conversations of POST /v3/chat: naming no conversation starts a new one, naming one
continues it (spec: "ConversationID ... 不传则创建新会话"; best practice 2 "保持会话上下文";
READING "Conversation id in a chat request").

One test walks a user's conversations, because a real deployment rate-limits the suite
(spec "速率限制": 60 chats a minute per principal), and each of its chats is also judged
for what it honestly shows. Against a conformant server it sends four chats:

1. a plain chat, ``stream`` omitted, starts conversation A: the documented non-stream
   answer (CHAT-001, CHAT-REQ-004, CHAT-CT-001, CHAT-RESP-001..004, BP-002);
2. a chat carrying every documented optional input starts conversation B: each input
   is accepted (CHAT-REQ-006..008, CHAT-MSG-001, CHAT-MSG-004, CHAT-CT-002..004), and B
   is not A (CHAT-CONV-003) -- the control that gives step 3 its meaning;
3. a chat naming A returns A (CHAT-CONV-001 for some form, CHAT-CONV-002 for
   ``ConversationID``), trying the profile's forms in order, each later form on a fresh
   conversation of its own, and stopping as soon as both verdicts are known;
4. a chat naming an unknown conversation, in the form the server honoured, is refused or
   starts another conversation (CHAT-CONV-004).

More chats are sent only to name a culprit when a combined chat fails. No two requests
are ever in flight on one conversation: every step waits for the previous answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.oracle.catalogue import Catalogue
from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import ConversationForm, Profile
from conformance.suite.helpers import (
    Answer,
    Bot,
    chat_body,
    chat_path,
    conversation_request,
    envelope,
    has_code,
    id_text,
    unknown_id,
    user_message,
)
from conformance.transport.client import ApiClient, DeadlineExceeded

#: The spec's multimodal example ("消息内容类型", 多模态消息示例).
IMAGE_URL = "https://example.com/image.jpg"
#: "object_string | JSON 对象字符串": a JSON object as text.
OBJECT_STRING = json.dumps({"type": "text", "text": "你好"}, ensure_ascii=False)
#: "card | 卡片消息": the spec shows no card, so a small JSON document as text.
CARD = json.dumps({"title": "cz-conf", "text": "你好"}, ensure_ascii=False)

#: What each step judges (the test's marker lists them all).
FIRST_CHAT = (
    "CHAT-001", "CHAT-REQ-004", "CHAT-CT-001", "CHAT-RESP-001", "CHAT-RESP-002", "CHAT-RESP-003", "CHAT-RESP-004",
    "BP-002",
)  # fmt: skip
OPTIONAL_INPUTS = (
    "CHAT-REQ-006", "CHAT-REQ-007", "CHAT-REQ-008", "CHAT-MSG-001", "CHAT-MSG-004", "CHAT-CT-002", "CHAT-CT-003",
    "CHAT-CT-004",
)  # fmt: skip
CONVERSATIONS = ("CHAT-CONV-001", "CHAT-CONV-002", "CHAT-CONV-003", "CHAT-CONV-004")


class Chats:
    """Sends this test's chats, one at a time, with the shared published bot."""

    def __init__(self, api: ApiClient, profile: Profile, bot: Bot, user_id: str) -> None:
        self.api = api
        self.profile = profile
        self.bot = bot
        self.user_id = user_id
        self.path = chat_path(profile)

    def body(self, text: str = "你好", **extra: Any) -> dict[str, Any]:
        return chat_body(self.bot, self.user_id, text, **extra)

    def send(
        self, body: Mapping[str, Any], params: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Answer:
        return envelope(self.api.request("POST", self.path, json=dict(body), params=params, timeout=timeout))

    def conversation_of(self, answer: Answer) -> str | None:
        return id_text(answer.data.get(self.profile.conversation.response_key)) if answer.ok else None


# --------------------------------------------------------------------------- 1. the first chat


def first_chat(check: Checks, profile: Profile, chats: Chats) -> str | None:
    """A plain chat with ``stream`` omitted; returns its conversation id (None if none)."""
    body = {k: v for k, v in chats.body("你好").items() if k != "stream"}  # CHAT-REQ-004: default false
    within = profile.chat.answer_within_seconds
    # BP-002 is a SHOULD: a chat answered after 30 s is still an answer. The deadline
    # leaves room past it so a slow server WARNs on BP-002 instead of failing every
    # requirement of this test as a transport error.
    timeout = max(chats.api.request_timeout, 2 * within)
    try:
        answer = chats.send(body, timeout=timeout)
    except DeadlineExceeded as exc:
        waited = exc.elapsed if exc.elapsed is not None else timeout
        check("BP-002", False, expected=f"an answer within {within:g} s", actual=f"none after {waited:.1f} s")
        raise
    elapsed = answer.response.elapsed
    check("BP-002", elapsed <= within, expected=f"an answer within {within:g} s", actual=f"{elapsed:.2f} s")
    streamed = answer.response.media_type == profile.stream["media_type"]
    check(
        "CHAT-REQ-004",
        not streamed and isinstance(answer.body, dict),
        expected="a JSON envelope (stream defaults to false), not an event stream",
        actual=f"Content-Type {answer.response.headers.get('content-type')!r}; {answer.describe()}",
        soft=True,
    )
    accepted = "a text user message accepted: code 0 with data"
    check("CHAT-CT-001", answer.ok, expected=accepted, actual=answer.describe(), soft=True)
    check("CHAT-001", answer.ok, expected="code 0 with a data object", actual=answer.describe())
    data = answer.data
    ids = {k: data.get(k) for k in (profile.conversation.response_key, "id")}
    check(
        "CHAT-RESP-001",
        all(profile.ids.is_opaque_id(v) for v in ids.values()),
        expected="conversation_id and id: non-empty strings or integers",
        actual=ids,
        soft=True,
    )
    texts = {k: data.get(k) for k in ("content", "role", "type")}
    check(
        "CHAT-RESP-002",
        all(isinstance(v, str) for v in texts.values()),
        expected="content, role and type: strings",
        actual=texts,
        soft=True,
    )
    check(
        "CHAT-RESP-003",
        (data.get("role"), data.get("type")) == (profile.chat.answer_role, profile.chat.answer_type),
        expected=(profile.chat.answer_role, profile.chat.answer_type),
        actual=(data.get("role"), data.get("type")),
    )
    created = data.get("created_at")
    check(
        "CHAT-RESP-004",
        profile.timestamps.plausible(created),
        expected=f"an integer of seconds since the epoch, >= {profile.timestamps.min} and <= now + "
        f"{profile.timestamps.max_ahead_seconds}",
        actual=created,
        soft=True,
    )
    return chats.conversation_of(answer)


# --------------------------------------------------------------------------- 2. the optional inputs


@dataclass(frozen=True)
class OptionalInput:
    """What one optional-input requirement adds to a plain chat: body fields, and
    messages placed before the closing user message."""

    requirement: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[dict[str, Any], ...] = ()


def optional_inputs(profile: Profile) -> tuple[OptionalInput, ...]:
    """One entry per optional-input requirement (spec: the request table's objects, the
    message table's roles, the content-type table, the multimodal example's ``type``)."""
    _, *aliases = profile.messages.content_type_keys
    kinds = {
        "CHAT-CT-002": ("image", IMAGE_URL),
        "CHAT-CT-003": ("object_string", OBJECT_STRING),
        "CHAT-CT-004": ("card", CARD),
    }
    listed = profile.messages.accepted_content_types + profile.messages.preferred_content_types
    assert all(kind in listed for kind, _ in kinds.values()), "suite bug: a content type the profile does not list"
    assert "assistant" in profile.messages.roles, "suite bug: the profile lists no assistant role"
    return (
        OptionalInput("CHAT-REQ-006", fields={"custom_variables": {"cz_name": "一致性测试"}}),
        OptionalInput("CHAT-REQ-007", fields={"meta_data": {"cz_suite": "conformance"}}),
        OptionalInput("CHAT-REQ-008", fields={"extra_params": {"cz_flag": "1"}}),
        # An earlier exchange, the assistant's turn included, before the user's message.
        OptionalInput("CHAT-MSG-001", messages=(user_message("你好"), user_message("你好!", role="assistant"))),
        # READING "additional_messages[].content_type": the example's key instead of the table's.
        OptionalInput("CHAT-MSG-004", messages=tuple(user_message("你好", key=alias) for alias in aliases)),
        *(OptionalInput(req, messages=(user_message(content, kind),)) for req, (kind, content) in kinds.items()),
    )


def inputs_body(chats: Chats, inputs: tuple[OptionalInput, ...]) -> dict[str, Any]:
    messages = [m for item in inputs for m in item.messages]
    body = chats.body(messages=[*messages, user_message("请简单回答。")])
    for item in inputs:
        body.update(item.fields)
    return body


def judge_inputs(
    check: Checks, catalogue: Catalogue, chats: Chats, inputs: tuple[OptionalInput, ...]
) -> list[Answer]:
    """Send every input in one chat; only if it is refused, find which input was.

    A chat that accepts them all shows each is accepted. A refused one says nothing of
    which input it refused, so then the MUST inputs go together and the SHOULD ones
    together (a SHOULD input is the one a conformant server may refuse), and only a
    group that is refused again is split into one chat per input. Returns the accepted
    answers (each a new conversation)."""
    accepted: list[Answer] = []

    def verdict(group: tuple[OptionalInput, ...], answer: Answer) -> None:
        for item in group:
            check(
                item.requirement, answer.ok, expected="accepted: code 0 with data", actual=answer.describe(), soft=True
            )

    def probe(group: tuple[OptionalInput, ...]) -> Answer:
        answer = chats.send(inputs_body(chats, group))
        if answer.ok:
            accepted.append(answer)
        return answer

    answer = probe(inputs)
    if answer.ok:
        verdict(inputs, answer)
        return accepted
    must = tuple(i for i in inputs if catalogue[i.requirement].level == "MUST")
    others = tuple(i for i in inputs if i not in must)
    for group in (must, others):
        # A group is worth a chat of its own only when it is smaller than the refused one.
        if 1 < len(group) < len(inputs):
            answer = probe(group)
            if answer.ok:
                verdict(group, answer)
                continue
        for item in group:
            verdict((item,), probe((item,)))
    return accepted


# --------------------------------------------------------------------------- 3. continuing


@dataclass(frozen=True)
class Attempt:
    form: ConversationForm
    sent: str
    returned: str | None
    answer: Answer

    @property
    def kept(self) -> bool:
        return self.returned == self.sent

    def describe(self) -> str:
        return f"{self.form.name}={self.sent!r} -> conversation_id {self.returned!r} ({self.answer.describe()})"


def judge_continuation(
    check: Checks, profile: Profile, chats: Chats, first: str | None, start: Callable[[], str]
) -> int | None:
    """Continue a conversation in each form, in the profile's order, until both the MUST
    (some form keeps the id) and the SHOULD (the preferred form does) are known.
    Returns the index of the first form that kept the id."""
    conv = profile.conversation
    attempts: list[Attempt] = []
    for index, form in enumerate(conv.forms):
        # A form the server ignored may have started a conversation or added turns: each
        # later form continues a fresh conversation of its own.
        sent = first if index == 0 and first is not None else start()
        body, params = conversation_request(profile, index, sent, chats.body("请继续。"))
        answer = chats.send(body, params)
        attempt = Attempt(form, sent, chats.conversation_of(answer), answer)
        attempts.append(attempt)
        if form == conv.preferred:
            check(
                "CHAT-CONV-002",
                attempt.kept,
                expected=f"{conv.response_key} {sent!r} when continuing through {form.name}",
                actual=attempt.describe(),
            )
        tried_preferred = any(a.form == conv.preferred for a in attempts)
        if tried_preferred and any(a.kept for a in attempts):
            break
    honoured = next((i for i, a in enumerate(attempts) if a.kept), None)
    check(
        "CHAT-CONV-001",
        honoured is not None,
        expected=f"the same {conv.response_key} through at least one of {[f.name for f in conv.forms]}",
        actual="; ".join(a.describe() for a in attempts),
        soft=True,
    )
    return honoured


# --------------------------------------------------------------------------- 4. an unknown conversation


def judge_unknown_conversation(
    check: Checks, profile: Profile, chats: Chats, form_index: int, *known: str | None
) -> None:
    # READING "Chat with an unknown / another principal's ConversationID": 400/403/404,
    # or a new conversation with a different id. Sent in the form the server honoured,
    # so that a server ignoring the form cannot pass by not reading it.
    unknown = unknown_id(*known)
    body, params = conversation_request(profile, form_index, unknown, chats.body("你好"))
    answer = chats.send(body, params)
    codes = profile.unknown_ids.conversation_codes
    returned = chats.conversation_of(answer)
    check(
        "CHAT-CONV-004",
        has_code(answer, codes) or (returned is not None and returned != unknown),
        expected=f"code in {sorted(codes)}, or a new conversation whose id is not {unknown!r}",
        actual=f"{profile.conversation.forms[form_index].name}={unknown!r}: {answer.describe()}",
    )


# --------------------------------------------------------------------------- the test


@pytest.mark.requirement(*FIRST_CHAT, *OPTIONAL_INPUTS, *CONVERSATIONS)
def test_conversations_start_and_continue(
    api: ApiClient,
    check: Checks,
    catalogue: Catalogue,
    profile: Profile,
    published_bot: Bot,
    user_id: str,
    conversation_of: Callable[[], str],
) -> None:
    chats = Chats(api, profile, published_bot, user_id)

    first = first_chat(check, profile, chats)

    inputs = optional_inputs(profile)
    assert {i.requirement for i in inputs} == set(OPTIONAL_INPUTS), "suite bug: inputs and marker disagree"
    new = [first, *(chats.conversation_of(a) for a in judge_inputs(check, catalogue, chats, inputs))]
    started = [c for c in new if c is not None]
    if len(started) < 2:
        started.append(conversation_of())  # blocked by CHAT-001 when no chat starts at all
    check(
        "CHAT-CONV-003",
        len(set(started)) == len(started),
        expected=f"a different {profile.conversation.response_key} for every chat naming no conversation",
        actual=started,
    )

    honoured = judge_continuation(check, profile, chats, first, conversation_of)

    preferred = profile.conversation.forms.index(profile.conversation.preferred)
    judge_unknown_conversation(check, profile, chats, preferred if honoured is None else honoured, *started)
