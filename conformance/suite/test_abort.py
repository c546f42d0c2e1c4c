"""A client closing a stream mid-answer (spec "最佳实践", 5. 资源清理: 及时关闭 SSE 连接).

The page tells clients to close streams, on a timeout too; a server must survive it:
the next chat in the same conversation is an ordinary chat and answers code 0 (BP-003).
The conversation id comes from a non-stream chat (never from ``chat.created``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.oracle.grammar import StreamReading, StreamRules
from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.suite.helpers import (
    LONG_ANSWER,
    Bot,
    chat_body,
    envelope,
    id_text,
    in_every_form,
    open_stream_or_skip,
    read_events,
    stream_rules,
)
from conformance.transport.client import ApiClient


def closed_mid_answer(reading: StreamReading, rules: StreamRules) -> bool:
    """The client closed the stream after a delta and before the chat's outcome or
    end arrived (a fast server may have sent the whole answer in the first read)."""
    kinds = {rules.kind(e.type) for e in reading.events}
    ended = {"chat_completed", "chat_failed", "error", "terminal"}
    return reading.closed_by == "client" and "delta" in kinds and not ended & kinds


@pytest.mark.requirement("BP-003")
def test_next_chat_after_a_client_abort(
    api: ApiClient,
    check: Checks,
    profile: Profile,
    published_bot: Bot,
    user_id: str,
    conversation_of: Callable[[], str],
) -> None:
    rules = stream_rules(profile)
    chat = profile.endpoint("chat").path
    conversation = conversation_of()
    body, query = in_every_form(profile, conversation, chat_body(published_bot, user_id, LONG_ANSWER, stream=True))
    with api.stream("POST", chat, json=body, params=query) as stream:
        open_stream_or_skip(stream, rules)
        reading = read_events(stream, rules, stop=lambda event: rules.kind(event.type) == "delta")
    # Leaving the block closed the connection: after the first delta, mid-answer.
    if not closed_mid_answer(reading, rules):
        check.skip(
            "BP-003",
            "the answer was complete (or had no delta) before the client could close the stream "
            f"mid-answer: {[e.type for e in reading.events]}",
        )
        return

    body, query = in_every_form(profile, conversation, chat_body(published_bot, user_id, "继续。"))
    answer = envelope(api.request("POST", chat, json=body, params=query))
    returned = id_text(answer.data.get(profile.conversation.response_key)) if answer.ok else None
    check(
        "BP-003",
        answer.ok and returned == conversation,
        expected=f"code 0 with a data object, in conversation {conversation!r}",
        actual=answer.describe(),
        detail=f"the stream was closed after {len(reading.events)} events, before the chat's outcome",
    )
