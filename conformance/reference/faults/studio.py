"""Faults of the studio dialect (ServerConfig(dialect="studio")), one per STUDIO-* requirement.

Each is a branch marked ``fault:`` at the one place it breaks, in conformance/reference/studio/:
``app.py`` (the auth gate, unknown paths, the log id, plain-text 400s), ``envelope.py``,
``passport.py``, ``chats.py`` (/v3/chat, its stream, retrieve, message/list, cancel),
``stream.py``, ``bots.py`` and ``run.py``. ``requirement`` is the STUDIO-* id of
docs/studio-contract.md's last section; ``level`` is SHOULD where the contract says so. The
first four of :data:`KNOWN_BUGS` are what Coze Plus fb00b21 really does.
"""

from __future__ import annotations

from functools import partial

from .base import Fault
from .base import fault as _fault_any

_fault = partial(_fault_any, dialect="studio")
_should = partial(_fault, level="SHOULD")

#: The known Coze Plus bugs (contract: "only the fault … does that").
KNOWN_BUGS = (
    _should("studio_stack_in_msg", "STUDIO-ENV-004", "The msg of every HTTP 400 answer ends with '\\nstack=' and a Go stack trace."),
    _should(
        "studio_cancel_panic",
        "STUDIO-CANCEL-005",
        "A cancel naming a known chat with another conversation_id answers HTTP 500 with an empty body.",
    ),
    _should(
        "studio_online_info_500",
        "STUDIO-BOT-010",
        "get_online_info without connector_id answers HTTP 500 {\"code\":500,\"msg\":\"internal server error\"}.",
    ),
    _fault(
        "studio_plain_text_400",
        "STUDIO-ENV-002",
        "The bind errors of update_display_info and publish answer HTTP 400 in text/plain, not JSON.",
    ),
)

_AUTH = (
    _fault("studio_bearer_refused", "STUDIO-AUTH-001", "GET /v1/bots/:bot_id refuses a valid Bearer key (code 700012006)."),
    _fault("studio_cookie_refused", "STUDIO-AUTH-002", "POST /api/draftbot/get_display_info refuses a live session cookie."),
    _fault("studio_missing_bearer_served", "STUDIO-AUTH-003", "A /v1 or /v3 request without Authorization is served as the first principal."),
    _fault("studio_no_cookie_not_401", "STUDIO-AUTH-004", "/api without a cookie answers HTTP 200 code 700012006 instead of 401 code 401."),
    _fault("studio_dead_cookie_served", "STUDIO-AUTH-005", "A session_key that is no live session is served as the first principal."),
    _fault("studio_cookie_on_openapi", "STUDIO-AUTH-006", "A live session cookie without Authorization authenticates /v1 and /v3."),
    _fault("studio_bearer_on_webapi", "STUDIO-AUTH-007", "A valid Bearer key authenticates /api without a cookie."),
    _fault("studio_login_any_password", "STUDIO-AUTH-008", "Login with a known email and a wrong password succeeds and sets a cookie."),
    _fault("studio_pat_not_usable", "STUDIO-AUTH-009", "A minted PAT is answered but never becomes an API key (refused as Bearer)."),
    _fault("studio_space_list_empty", "STUDIO-AUTH-010", "The space list's bot_space_list (and recently_used_space_list) is empty."),
)

_ENV = (
    _fault("studio_success_msg_null", "STUDIO-ENV-001", "Success envelopes carry \"msg\": null instead of a string."),
    _fault("studio_error_code_string", "STUDIO-ENV-002", "Error envelopes carry code as a JSON string of digits."),
    _should("studio_no_logid", "STUDIO-ENV-003", "No answer carries the X-Log-ID header."),
    _should("studio_unknown_path_200", "STUDIO-ENV-005", "An unknown path answers {\"code\":404,\"msg\":\"not found\"} with HTTP 200."),
    _fault("studio_create_bot_id_number", "STUDIO-ENV-006", "draftbot/create answers data.bot_id as a JSON number."),
)

_CHAT = (
    _fault("studio_stream_media_type", "STUDIO-CHAT-001", "A stream answers Content-Type text/plain; charset=utf-8."),
    _fault("studio_no_stream_done", "STUDIO-CHAT-002", "The stream ends after chat.completed without conversation.stream.done."),
    _fault("studio_payload_wrapped", "STUDIO-CHAT-003", "conversation.chat.created's payload is wrapped: {\"data\": <Chat>}."),
    _fault("studio_deltas_differ", "STUDIO-CHAT-004", "The answer's message.completed lacks the last character of the joined deltas."),
    _should("studio_meta_data_numbers", "STUDIO-CHAT-005", "The answer's meta_data token counts and time_cost are JSON numbers."),
    _fault("studio_completed_at_zero", "STUDIO-CHAT-006", "conversation.chat.completed carries completed_at 0."),
    _fault("studio_missing_user_id_accepted", "STUDIO-CHAT-007", "/v3/chat without user_id is accepted (no 400)."),
    _fault("studio_unknown_bot_streamed", "STUDIO-CHAT-008", "/v3/chat with an unknown bot_id is answered by a stand-in bot (chat.created …)."),
    _fault("studio_conversation_not_continued", "STUDIO-CHAT-009", "?conversation_id is ignored: every chat starts a new conversation."),
    _should("studio_unknown_conversation_error", "STUDIO-CHAT-010", "An unknown ?conversation_id is a pre-run error event, not a new conversation."),
    _fault("studio_iso_other_conversation", "STUDIO-CHAT-011", "Another principal's conversation_id is continued, not refused."),
    _should(
        "studio_no_section_id",
        "STUDIO-CHAT-012",
        "Only the answer's messages carry section_id (the verbose message.completed does not), the capability on.",
    ),
    _fault("studio_nonstream_without_id", "STUDIO-CHAT-013", "The non-stream answer's Chat has no id."),
    _fault("studio_message_list_empty", "STUDIO-CHAT-014", "/v3/chat/message/list answers Messages [] even after the chat completed."),
)

_CANCEL = (
    _fault("studio_cancel_without_chat_id_accepted", "STUDIO-CANCEL-001", "A cancel without chat_id cancels the conversation's latest chat."),
    _fault("studio_cancel_status_running", "STUDIO-CANCEL-002", "A successful cancel answers ChatV3ChatDetail.status \"in_progress\"."),
    _fault(
        "studio_cancel_stream_open",
        "STUDIO-CANCEL-003",
        "After a cancel the stream stops sending and its body stays open 10 s (or until the server stops), never ending properly.",
    ),
    _fault("studio_cancel_finished_ok", "STUDIO-CANCEL-004", "A cancel of a finished chat answers success."),
)

_BOT = (
    _fault("studio_create_no_bot_id", "STUDIO-BOT-001", "draftbot/create answers data without bot_id."),
    _fault("studio_create_empty_icon_accepted", "STUDIO-BOT-002", "draftbot/create without icon_uri is accepted."),
    _fault("studio_update_not_stored", "STUDIO-BOT-003", "update_draft_bot_info answers success and stores nothing."),
    _fault("studio_publish_version_stuck", "STUDIO-BOT-004", "Every publish after the first answers the first publish's version."),
    _fault("studio_publish_any_connector", "STUDIO-BOT-005", "publish accepts a connector other than 999/1024."),
    _fault("studio_online_info_shows_draft", "STUDIO-BOT-003", "get_online_info answers the draft, not the published version."),
    _fault("studio_online_info_no_name", "STUDIO-BOT-006", "get_online_info answers the published bot with name \"\"."),
    _fault("studio_bot_details_not_found", "STUDIO-BOT-007", "/v1/bots/:bot_id answers code 100000000 for a published bot."),
    _fault("studio_iso_online_info_other_bot", "STUDIO-BOT-008", "get_online_info answers another principal's published bot."),
    _fault("studio_display_info_not_stored", "STUDIO-BOT-009", "update_display_info answers success and stores nothing."),
)

_RUN = (
    _fault("studio_run_no_ack", "STUDIO-RUN-001", "/api/conversation/chat sends no ack message before the answer."),
    _fault("studio_run_missing_query_accepted", "STUDIO-RUN-002", "/api/conversation/chat without query is accepted (no 400)."),
    _fault("studio_run_conversation_not_continued", "STUDIO-RUN-003", "/api/conversation/chat ignores conversation_id: always a new conversation."),
)

STUDIO_FAULTS: tuple[Fault, ...] = (*_AUTH, *_ENV, *_CHAT, *_CANCEL, *_BOT, *_RUN, *KNOWN_BUGS)
