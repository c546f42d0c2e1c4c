"""Faults of event streams: framing, event order, payloads, endings.

Each is a branch marked ``fault:`` in ``stream_faults.py``, the stages over a chat's
event sequence (``apply_stream_faults``), or, for the media type, where ``chat.py``
sets a stream's Content-Type. ``requirement`` is the catalogue id (conformance/suite/test_chat_stream.py and the
stream grammar) whose check FAILs against a server with only that fault on.
"""

from __future__ import annotations

from .base import Fault
from .base import fault as _fault

#: How long the never-ending streams stay open: longer than the 5 s stream timeout the
#: kill matrix runs the suite with, so that the suite's own deadline must end them, yet
#: bounded, so that a client without a deadline is released too (and then sees a stream
#: that ended without its terminal event, which fails the same requirement).
ENDLESS_STREAM_SECONDS = 8.0
#: stream_held_back: the first event goes out at once, every other one after this pause
#: (the liveness rule judges streams lasting >= 1 s).
HOLD_SECONDS = 1.2
#: chat_abort_breaks_conversation, cancel_refused, cancel_stream_never_ends: the pause
#: after the first delta, so that the client's close or cancel reaches the server while
#: the chat is still answering, even with no token delay (a short stream, not judged for
#: liveness: it lasts under 1 s).
MID_ANSWER_PAUSE_SECONDS = 0.5

STREAM_FAULTS: tuple[Fault, ...] = (
    _fault(
        "stream_wrong_media_type",
        "CHAT-SSE-001",
        "A stream answers Content-Type text/plain; charset=utf-8 (the events themselves are right).",
    ),
    _fault(
        "stream_invalid_utf8",
        "CHAT-SSE-002",
        "A comment line before the first event is written in Latin-1 (': référence'), which is not UTF-8.",
    ),
    _fault(
        "stream_last_event_unterminated",
        "CHAT-SSE-003",
        "The terminal event is not ended by a blank line before the server closes (so a client discards it).",
    ),
    _fault(
        "stream_held_back",
        "CHAT-SSE-004",
        f"The first event goes out at once, every other one after a {HOLD_SECONDS:g} s pause, all together.",
        level="SHOULD",
    ),
    _fault(
        "stream_no_start_events",
        "CHAT-SSE-005",
        "No conversation.chat.created / in_progress (the legal variant start_events=False, declared as the SHOULD).",
        level="SHOULD",
    ),
    _fault(
        "stream_start_after_message",
        "CHAT-SSE-006",
        "The start events are sent after the first message event instead of before it.",
    ),
    _fault("stream_no_chat_completed", "CHAT-SSE-007", "conversation.chat.completed is never sent."),
    _fault("stream_chat_completed_twice", "CHAT-SSE-007", "conversation.chat.completed is sent twice."),
    _fault(
        "stream_delta_after_completed",
        "CHAT-SSE-008",
        "conversation.message.completed is sent before the message's deltas instead of after them.",
    ),
    _fault(
        "stream_deltas_differ",
        "CHAT-SSE-009",
        "conversation.message.completed carries the content without its last character: not the joined deltas.",
    ),
    _fault(
        "stream_message_completed_twice",
        "CHAT-SSE-010",
        "conversation.message.completed is sent twice for the one message id.",
    ),
    _fault("stream_no_terminal", "CHAT-SSE-011", "The stream closes after chat.completed without a terminal event."),
    _fault(
        "stream_never_ends",
        "CHAT-SSE-011",
        f"No terminal event: after chat.completed the stream sends a keep-alive comment every 0.5 s and stays open"
        f" (the server closes it after {ENDLESS_STREAM_SECONDS:g} s).",
        collateral="The suite reads a stream until its terminal event; when its stream deadline ends the reading"
        " first, the stream test ends in a transport error, which fails every requirement that test declares"
        " (CHAT-SSE-001..020). Against a longer --stream-timeout the server closes first and only CHAT-SSE-011 fails.",
    ),
    _fault("stream_terminal_twice", "CHAT-SSE-012", "The terminal event is sent twice."),
    _fault(
        "stream_event_after_terminal",
        "CHAT-SSE-012",
        "An event of an unknown type ('ping', legal anywhere else) follows the terminal event.",
    ),
    _fault(
        "stream_done_terminal",
        "CHAT-SSE-013",
        "The terminal event is named done (the legal variant terminal_event='done', declared as the SHOULD).",
        level="SHOULD",
    ),
    _fault(
        "stream_invalid_json",
        "CHAT-SSE-014",
        "The data of conversation.chat.completed is cut off mid-object: not JSON.",
    ),
    _fault(
        "stream_event_key_mismatch",
        "CHAT-SSE-015",
        "conversation.chat.completed's payload says \"event\": \"chat.completed\", not its SSE name.",
    ),
    _fault(
        "stream_no_event_key",
        "CHAT-SSE-016",
        "No payload carries the \"event\" key.",
        level="SHOULD",
    ),
    _fault("stream_message_without_role", "CHAT-SSE-017", "The deltas' message_item has no role."),
    _fault(
        "stream_usage_strings",
        "CHAT-SSE-018",
        "chat.completed's usage counts are strings of digits, not integers.",
    ),
    _fault(
        "stream_usage_total_wrong",
        "CHAT-SSE-019",
        "chat.completed's usage.total_tokens is prompt_tokens + completion_tokens + 1.",
        level="SHOULD",
    ),
    _fault(
        "stream_message_ids_differ",
        "CHAT-SSE-020",
        "conversation.message.completed carries another message id than the message's deltas.",
    ),
    _fault(
        "stream_conversation_ids_differ",
        "CHAT-SSE-020",
        "chat.completed's run_record_item names another conversation_id than the rest of the stream.",
    ),
    _fault(
        "stream_error_code_string",
        "ERR-SSE-001",
        "A parameter error on a stream request is answered as an event stream whose error event carries the"
        " code as a string (\"400\").",
    ),
    _fault(
        "stream_error_after_start",
        "ERR-SSE-002",
        "A parameter error on a stream request is answered as an event stream that sends"
        " conversation.chat.created before the error event.",
    ),
)
