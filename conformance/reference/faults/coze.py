"""Faults of the coze dialect (ServerConfig(dialect="coze")), one per COZE-* requirement.

Each is a branch marked ``fault:`` at the one place it breaks, in conformance/reference/coze/:
``stream.py`` (the event stream: COZE-SSE-*; three reuse the doc dialect's reordering and
hold-back stages of stream_faults.py), ``chats.py`` (chat, retrieve, message/list,
cancel), ``bots.py`` (the bot endpoints), ``envelope.py`` (the envelope, the log id) and
``app.py`` (the Bearer check). ``requirement`` is the id of a COZE-* requirement of conformance/oracle/catalogue.toml
(the coze profile's catalogue entries) whose check FAILs against a coze server with only
that fault on; ``level`` is that requirement's level.
"""

from __future__ import annotations

from functools import partial

from .base import Fault
from .base import fault as _fault_any

_fault = partial(_fault_any, dialect="coze")

#: coze_body_open_after_done (coze/stream.py's OPEN_AFTER_DONE_SECONDS, repeated to keep this module import-free).
_OPEN_AFTER_DONE = 10

_STREAM = (
    _fault("coze_stream_media_type", "COZE-SSE-001", "A stream answers Content-Type text/plain; charset=utf-8."),
    _fault(
        "coze_sse_comment_line",
        "COZE-SSE-002",
        "A comment line ': keep-alive' (and its blank line) between chat.in_progress and the first delta.",
    ),
    _fault(
        "coze_stream_invalid_utf8",
        "COZE-SSE-003",
        "conversation.chat.created is written in Latin-1, with meta_data {\"source\": \"référence\"} ('é' as the byte 0xE9).",
    ),
    _fault("coze_payload_not_object", "COZE-SSE-004", "conversation.chat.in_progress's data is a JSON array holding the Chat."),
    _fault(
        "coze_start_after_message",
        "COZE-SSE-005",
        "The start events (chat.created, chat.in_progress) are sent after the first message event.",
    ),
    _fault("coze_no_start_events", "COZE-SSE-006", "No conversation.chat.created / in_progress.", level="SHOULD"),
    _fault("coze_message_without_role", "COZE-SSE-007", "The deltas' payloads have no role."),
    _fault("coze_chat_without_status", "COZE-SSE-008", "conversation.chat.in_progress's payload has no status."),
    _fault(
        "coze_delta_after_completed",
        "COZE-SSE-009",
        "conversation.message.completed is sent before the message's deltas.",
    ),
    _fault(
        "coze_deltas_differ",
        "COZE-SSE-010",
        "conversation.message.completed carries the answer without its last character: not the joined deltas.",
    ),
    _fault("coze_message_completed_twice", "COZE-SSE-011", "conversation.message.completed is sent twice for the one message id."),
    _fault("coze_chat_completed_twice", "COZE-SSE-012", "conversation.chat.completed is sent twice: two chat outcomes."),
    _fault(
        "coze_usage_prompt_keys",
        "COZE-SSE-013",
        "chat.completed's usage has the doc dialect's keys: prompt_tokens, completion_tokens, total_tokens.",
    ),
    _fault(
        "coze_usage_total_wrong",
        "COZE-SSE-014",
        "chat.completed's usage.token_count is input_count + output_count + 1.",
        level="SHOULD",
    ),
    _fault("coze_no_usage", "COZE-SSE-015", "conversation.chat.completed carries no usage."),
    _fault("coze_no_done", "COZE-SSE-016", "The body closes after chat.completed without the done event."),
    _fault("coze_done_twice", "COZE-SSE-017", "The done event is sent twice."),
    _fault("coze_done_data_empty", "COZE-SSE-018", "done's data is empty ('data:'), as Coze Studio sends it, not \"[DONE]\"."),
    _fault(
        "coze_body_open_after_done",
        "COZE-SSE-019",
        f"After done the server keeps the body open {_OPEN_AFTER_DONE} s (or until it stops) before closing it.",
    ),
    _fault(
        "coze_conversation_ids_differ",
        "COZE-SSE-020",
        "conversation.chat.completed names another conversation_id than the rest of the stream.",
    ),
    _fault(
        "coze_unknown_event",
        "COZE-SSE-021",
        "An event 'ping' (data {}), outside the cloud's set, follows conversation.chat.in_progress.",
        level="SHOULD",
    ),
    _fault(
        "coze_held_back",
        "COZE-SSE-022",
        "The first event goes out at once, every other one after a 1.2 s pause, all together (the doc dialect's"
        " stream_held_back stage).",
        level="SHOULD",
    ),
    _fault("coze_event_bot_id_integer", "COZE-SSE-023", "Every event payload carries bot_id as a JSON number, not a string."),
)

_CHAT = (
    _fault(
        "coze_nonstream_completed",
        "COZE-CHAT-001",
        "A stream:false chat is answered once its answer is complete, with status \"completed\" (not \"in_progress\").",
    ),
    _fault("coze_stream_default_true", "COZE-CHAT-002", "A chat with stream absent is answered as an event stream."),
    _fault(
        "coze_empty_conversation_refused",
        "COZE-CHAT-003",
        "An empty ?conversation_id= (cozepy always sends it) is refused with 4000, as Coze Studio refuses it.",
        collateral="cozepy sends ?conversation_id= on every chat that names no conversation, so every such chat of"
        " the suite is refused: every chat requirement that starts a new conversation fails with it.",
    ),
    _fault(
        "coze_retrieve_stuck_in_progress",
        "COZE-CHAT-004",
        "/v3/chat/retrieve reports a completed chat as \"in_progress\" (canceled and failed ones as they are).",
    ),
    _fault("coze_message_list_empty", "COZE-CHAT-005", "/v3/chat/message/list answers data [] for every chat."),
    _fault(
        "coze_conversation_not_continued",
        "COZE-CHAT-006",
        "?conversation_id=<existing> is ignored: every chat starts a new conversation.",
    ),
    _fault("coze_missing_user_id_accepted", "COZE-CHAT-007", "A chat without user_id is accepted."),
    _fault("coze_unknown_bot_answered", "COZE-CHAT-008", "A chat naming an unknown bot is answered (code 0) by a stand-in bot."),
    _fault(
        "coze_unpublished_bot_code_4000",
        "COZE-CHAT-009",
        "A chat with a bot never published to the API connector is refused with 4000, not 4015.",
    ),
)

_CANCEL = (
    _fault(
        "coze_cancel_ignored",
        "COZE-CANCEL-001",
        "Cancel of a chat in flight answers code 0 with status \"canceled\", but nothing stops: the chat runs on,"
        " and retrieve reads \"in_progress\" then \"completed\".",
    ),
    _fault(
        "coze_cancel_without_chat_id_accepted",
        "COZE-CANCEL-002",
        "A cancel without chat_id cancels the conversation's latest chat (code 0).",
    ),
    _fault(
        "coze_cancel_finished_ok",
        "COZE-CANCEL-003",
        "Cancelling a finished chat answers code 0 (with the chat as it is), not 4104.",
    ),
)

_BOTS = (
    _fault("coze_create_bot_id_integer", "COZE-BOT-001", "/v1/bot/create answers data.bot_id as a JSON number."),
    _fault("coze_update_not_stored", "COZE-BOT-002", "/v1/bot/update answers code 0 and stores nothing."),
    _fault(
        "coze_publish_answers_error",
        "COZE-BOT-003",
        "/v1/bot/publish publishes the bot, then answers code 5000 \"publish failed\".",
        collateral="A client that stops at the failed publish never chats with its bot: the suite's own setup"
        " publishes through this endpoint, so every requirement judged on a bot it created may be left"
        " unjudged or fail with it.",
    ),
    _fault(
        "coze_online_info_shows_draft",
        "COZE-BOT-004",
        "get_online_info answers the draft, with the edits made after the last publish.",
    ),
    _fault(
        "coze_online_info_unknown_ok",
        "COZE-BOT-005",
        "get_online_info of an unknown bot answers code 0 with data {\"bot_id\": <the id>}.",
    ),
    _fault("coze_bot_details_not_found", "COZE-BOT-006", "GET /v1/bots/:bot_id answers 4200 for every bot of the caller."),
)

_ENVELOPE = (
    _fault("coze_success_without_msg", "COZE-ENV-001", "Success answers carry no msg: {\"code\": 0, \"data\": ...}."),
    _fault("coze_error_without_msg", "COZE-ENV-002", "Error answers carry no msg: {\"code\": 4200, \"detail\": ...}."),
    _fault("coze_no_logid", "COZE-ENV-003", "No log id: neither the x-tt-logid header nor detail.logid.", level="SHOULD"),
)

_AUTH = (
    _fault(
        "coze_bearer_refused",
        "COZE-AUTH-001",
        "GET /v1/bots/:bot_id refuses a valid Bearer key (HTTP 401, code 4100); the other endpoints accept it.",
    ),
    _fault(
        "coze_no_credentials_served",
        "COZE-AUTH-002",
        "A request without an Authorization header is served as the first principal.",
    ),
    _fault("coze_any_bearer", "COZE-AUTH-003", "Any Bearer key is accepted: a wrong one is served as the first principal."),
)

_ISOLATION = (
    _fault(
        "coze_iso_online_info_other_bot",
        "COZE-ISO-001",
        "get_online_info serves another principal's bot (no owner check on that endpoint).",
    ),
    _fault(
        "coze_iso_retrieve_other_chat",
        "COZE-ISO-002",
        "/v3/chat/retrieve answers another principal's chat (no owner check on that endpoint).",
    ),
    _fault(
        "coze_iso_cancel_other_chat",
        "COZE-ISO-003",
        "/v3/chat/cancel cancels another principal's chat (no owner check on that endpoint).",
    ),
)

COZE_FAULTS: tuple[Fault, ...] = (*_STREAM, *_CHAT, *_CANCEL, *_BOTS, *_ENVELOPE, *_AUTH, *_ISOLATION)
