"""POST /api/conversation/chat of a Coze Studio deployment (profile ``studio``): the
internal chat its own web client uses (coze-wire §2.4) -- the session cookie, a body of
``bot_id``, ``conversation_id`` (``"0"`` = new), ``query`` and ``scene``, and an event
stream of ``message`` events (the user's ack first, the answer's pieces, the answer
whole at ``is_finish``) ending with ``done``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.suite.helpers import Bot, envelope, stream_rules
from conformance.suite.studio import digits
from conformance.transport.client import ApiClient

#: coze-wire §2.4: common.thrift Scene 4 is the playground.
PLAYGROUND = 4


def run_body(bot: Bot, query: str, conversation: str = "0") -> dict[str, Any]:
    return {"bot_id": bot.id, "conversation_id": conversation, "query": query, "scene": PLAYGROUND, "draft_mode": False}


def run(api: ApiClient, profile: Profile, body: dict[str, Any]) -> tuple[int, str, list[tuple[str, Any]]]:
    """(status, media type, [(event, payload)]) of one internal chat, read to its end."""
    endpoint = profile.endpoint("run")
    rules = stream_rules(profile)
    with api.stream(endpoint.method, endpoint.path, json=body) as answer:
        if answer.media_type != rules.media_type:
            return answer.status, answer.media_type, []
        checker = rules.checker(answer.headers.get("content-type"))
        for chunk, t in answer.chunks():
            checker.feed(chunk, t)
            if any(e.type == "done" for e in checker.events):
                break
        checker.close(time.monotonic())
    events = []
    for event in checker.events:
        try:
            payload = json.loads(event.data) if event.data else None
        except ValueError:
            payload = event.data
        events.append((event.type, payload))
    return answer.status, answer.media_type, events


def messages(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [p for name, p in events if name == "message" and isinstance(p, dict) and isinstance(p.get("message"), dict)]


@pytest.mark.requirement("STUDIO-RUN-001", "STUDIO-RUN-003")
def test_internal_chat(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot) -> None:
    status, media, events = run(api, profile, run_body(published_bot, "你好"))
    names = [n for n, _ in events]
    got = messages(events)
    first = got[0]["message"] if got else {}
    answers = [m for m in got if m["message"].get("role") == profile.chat.answer_role and m["message"].get("type") == profile.chat.answer_type]
    finished = [m for m in answers if m.get("is_finish") is True]
    pieces = "".join(str(m["message"].get("content", "")) for m in answers if m.get("is_finish") is not True)
    whole = finished[-1]["message"].get("content") if finished else None
    check(
        "STUDIO-RUN-001",
        first.get("role") == "user"
        and bool(finished)
        and isinstance(whole, str)
        and bool(whole)
        and (not pieces or whole == pieces)
        and names[-1:] == ["done"],
        expected="message events: the user's ack first, the answer with is_finish carrying the full content (the pieces joined), then done",
        actual=f"HTTP {status} {media}; events {names[:4]}...{names[-2:]}; first role {first.get('role')!r}; pieces {pieces[:40]!r}, whole {str(whole)[:40]!r}",
    )
    conversations = {m.get("conversation_id") for m in got}
    conversation = next(iter(conversations)) if len(conversations) == 1 else None
    check(
        "STUDIO-RUN-003",
        digits(conversation) and conversation != "0",
        expected="every message event names one new conversation, a string of digits",
        actual=f"conversation ids {sorted(map(str, conversations))}",
        soft=True,
    )
    if not digits(conversation):
        return
    _, _, again = run(api, profile, run_body(published_bot, "再说一次", str(conversation)))
    named = {m.get("conversation_id") for m in messages(again)}
    check("STUDIO-RUN-003", named == {conversation}, expected=f"the next chat continues conversation {conversation}", actual=f"{sorted(map(str, named))}")


@pytest.mark.parametrize("missing", ["query", "conversation_id", "scene"])
@pytest.mark.requirement("STUDIO-RUN-002")
def test_internal_chat_validation(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, missing: str) -> None:
    body = {k: v for k, v in run_body(published_bot, "你好").items() if k != missing}
    endpoint = profile.endpoint("run")
    answer = envelope(api.request(endpoint.method, endpoint.path, json=body))
    check("STUDIO-RUN-002", answer.status == 400, expected="HTTP 400", actual=answer.describe())
