"""Faults of chat, conversations, cancel, envelopes, requests and validation.

Each fault is a one-to-three-line branch, marked ``fault:``, at the one place it breaks:

* ``chat.py``: the chat, conversation, cancel and run handlers; the non-stream answer
  (``_answer_faults``). (The stream faults are ``stream.py``'s.)
* ``inputs.py``: the validation of one additional message (``parse_message``), and the
  request-level faults (REQ-*): the body parser (``parse_object``), the typed fields
  (``Fields._wrong_type``) and the unknown-key refusal (``read_object``; the two GET
  handlers of bots.py call ``refuse_unknown`` for query parameters).
* ``responses.py``: how an answer is worded (``envelope_faults``, applied by app.py to
  every documented endpoint's answer).

``requirement`` is the catalogue id whose check FAILs against a server with only that
fault on (conformance/suite: test_chat_stream, test_chat, test_continuity, test_cancel,
test_abort, the run module, and the envelope judge of conformance/oracle/envelope_judge.py that the
plugin runs on every exchange); ``level`` is that requirement's level.

A fault is scoped as narrowly as its requirement allows, so that it fails few other
requirements: a refusal of a documented input refuses that input only, an envelope
fault that hides the code applies to one endpoint's errors, and a fault of the plain
chat applies to non-stream chats only (the stream module judges streams).
"""

from __future__ import annotations

from .base import Fault
from .base import fault as _fault
from .stream import ENDLESS_STREAM_SECONDS, MID_ANSWER_PAUSE_SECONDS

_CHAT = (
    _fault(
        "chat_bot_id_string_refused",
        "CHAT-001",
        "A non-stream chat refuses bot_id sent as a JSON string (400 'expected an integer'), as the request"
        " table documents it.",
    ),
    _fault(
        "chat_missing_bot_id_404",
        "CHAT-REQ-001",
        "A chat without bot_id is looked up as bot 0 and answered 404, not refused with 400.",
    ),
    _fault(
        "chat_unknown_bot_answered",
        "CHAT-REQ-002",
        "A chat naming an unknown bot_id is answered (code 0) by a stand-in bot.",
    ),
    _fault("chat_missing_user_id_accepted", "CHAT-REQ-003", "A chat without user_id is accepted."),
    _fault(
        "chat_stream_default_true",
        "CHAT-REQ-004",
        "A chat with stream omitted is answered as an event stream.",
    ),
    _fault(
        "chat_user_id_object_accepted",
        "CHAT-REQ-005",
        "A wrong type on a required field is accepted: user_id as a JSON object.",
    ),
    _fault("chat_custom_variables_refused", "CHAT-REQ-006", "A chat carrying custom_variables is refused (400)."),
    _fault("chat_meta_data_refused", "CHAT-REQ-007", "A chat carrying meta_data is refused (400)."),
    _fault("chat_extra_params_refused", "CHAT-REQ-008", "A chat carrying extra_params is refused (400)."),
    _fault(
        "chat_response_without_id",
        "CHAT-RESP-001",
        "The non-stream answer's data has neither id nor conversation_id (so a client cannot continue the"
        " conversation it started).",
    ),
    _fault(
        "chat_response_content_not_string",
        "CHAT-RESP-002",
        "The non-stream answer's content is an array of tokens, not a string.",
    ),
    _fault(
        "chat_response_role_bot",
        "CHAT-RESP-003",
        "The non-stream answer's role is \"bot\", not \"assistant\".",
        level="SHOULD",
    ),
    _fault(
        "chat_created_at_ms",
        "CHAT-RESP-004",
        "The non-stream answer's created_at is in milliseconds.",
    ),
    _fault(
        "chat_slow_answer",
        "BP-002",
        "A non-stream chat with stream omitted answers after ServerConfig.slow_answer_seconds (31 s by default:"
        " over the 30 s best practice).",
        level="SHOULD",
    ),
    _fault(
        "chat_abort_breaks_conversation",
        "BP-003",
        f"A stream the client closes mid-answer leaves its conversation locked: the next chat in it answers 400."
        f" (The stream pauses {MID_ANSWER_PAUSE_SECONDS:g} s after its first delta so the close arrives mid-answer.)",
    ),
)

_MESSAGES = (
    _fault("msg_assistant_refused", "CHAT-MSG-001", "An additional message with role assistant is refused (400)."),
    _fault("msg_missing_role_accepted", "CHAT-MSG-002", "An additional message without role is taken as the user's."),
    _fault("msg_missing_content_accepted", "CHAT-MSG-003", "An additional message without content is taken as empty."),
    _fault(
        "msg_type_alias_refused",
        "CHAT-MSG-004",
        "An additional message naming its content type with `type` (the multimodal example's key) is refused.",
    ),
    _fault(
        "msg_no_content_type_accepted",
        "CHAT-MSG-005",
        "An additional message with neither content_type nor type is taken as text.",
    ),
    _fault(
        "msg_text_refused",
        "CHAT-CT-001",
        "A non-stream chat refuses a user message of content type text (400).",
    ),
    _fault("msg_image_refused", "CHAT-CT-002", "A message of content type image is refused (400)."),
    _fault("msg_object_string_refused", "CHAT-CT-003", "A message of content type object_string is refused (400)."),
    _fault("msg_card_refused", "CHAT-CT-004", "A message of content type card is refused (400).", level="SHOULD"),
)

_VALIDATION = (
    _fault(
        "req_not_json_500",
        "REQ-001",
        "A body that is no JSON text (empty, cut short, form fields, ...) crashes the parser: 500 in the envelope.",
    ),
    _fault(
        "req_required_wrong_type_500",
        "REQ-002",
        "A required parameter of the wrong JSON type (an object or an array for a string or an id) crashes the"
        " handler: 500 in the envelope.",
    ),
    _fault(
        "req_optional_wrong_type_500",
        "REQ-003",
        "An optional parameter of the wrong JSON type crashes the handler: 500 in the envelope.",
    ),
    _fault(
        "req_optional_wrong_type_ignored",
        "REQ-004",
        "An optional parameter of the wrong JSON type is read as absent, and the request answered.",
        level="SHOULD",
    ),
    _fault(
        "req_body_over_64kib_500",
        "REQ-003",
        "Any request body over 64 KiB (65,536 bytes) crashes the handler: 500 in the envelope (bodies over the"
        " size limit are still refused with 400 first).",
    ),
    _fault(
        "chat_stream_wrong_type_truthy",
        "REQ-004",
        "A /v3/chat `stream` of the wrong JSON type is read by its truthiness: \"yes\", \"false\" or 1 streams"
        " (an empty string or 0 does not); the request is not refused.",
        level="SHOULD",
    ),
    _fault(
        "req_unknown_key_refused",
        "REQ-005",
        "A strict schema: a body key or query parameter the request table does not document is refused (400).",
    ),
    _fault(
        "validation_missing_content_500",
        "ERR-004",
        "An additional message without content crashes the handler: 500 in the envelope.",
    ),
    _fault(
        "validation_huge_body_500",
        "READ-001",
        "A body over the size limit is answered 500 in the envelope instead of a 4xx.",
    ),
)

_CONVERSATIONS = (
    _fault(
        "conv_id_not_kept",
        "CHAT-CONV-001",
        "Every chat starts a new conversation: ConversationID, conversation_id and ?conversation_id= are ignored.",
    ),
    _fault(
        "conv_conversationid_ignored",
        "CHAT-CONV-002",
        "Body ConversationID is ignored (body conversation_id and ?conversation_id= are honoured).",
        level="SHOULD",
    ),
    _fault(
        "conv_reused_without_id",
        "CHAT-CONV-003",
        "A chat naming no conversation continues the user's last conversation with the bot.",
    ),
    _fault(
        "conv_unknown_id_adopted",
        "CHAT-CONV-004",
        "A chat naming an unknown conversation id is answered (code 0) in a new conversation with that very id.",
    ),
)

_CANCEL = (
    _fault(
        "cancel_refused",
        "CANCEL-001",
        f"Cancel refuses every request with 400 'missing chat_id', so a streaming chat runs on to completion."
        f" (Streams pause {MID_ANSWER_PAUSE_SECONDS:g} s after their first delta so the cancel arrives mid-answer.)",
    ),
    _fault("cancel_missing_id_accepted", "CANCEL-002", "A cancel without conversation_id answers code 0."),
    _fault(
        "cancel_stream_never_ends",
        "CANCEL-003",
        f"Cancel answers code 0, and the cancelled stream goes silent without chat.failed or a terminal event"
        f" and stays open (the server closes it after {ENDLESS_STREAM_SECONDS:g} s). (Streams pause"
        f" {MID_ANSWER_PAUSE_SECONDS:g} s after their first delta so the cancel arrives mid-answer.)",
    ),
    _fault("cancel_unknown_ok", "CANCEL-004", "A cancel naming an unknown conversation answers code 0."),
)

_RUN = (
    _fault(
        "run_server_error",
        "RUN-001",
        "/api/conversation/chat answers every valid request with 500 in the envelope.",
        collateral="Every valid run fails: the auth tests that reach the cookie class through this endpoint"
        " (AUTH-002, AUTH-004) fail too, and ERR-004 sees each 5xx. The fuzz module then shrinks the failing run"
        " cases, which spends the chat group's rate budget (60 a minute), so chat-group tests that run later"
        " may be answered 429 (CANCEL-002, RUN-002, RUN-003).",
    ),
    _fault(
        "run_missing_agent_id_404",
        "RUN-002",
        "/api/conversation/chat without agent_id looks up agent 0 and answers 404, not 400.",
    ),
    _fault("run_missing_query_accepted", "RUN-003", "/api/conversation/chat without query is accepted."),
)

_ENVELOPE = (
    _fault("env_success_without_msg", "ENV-001", "Success answers carry no msg: {\"code\": 0, \"data\": {...}}."),
    _fault(
        "env_run_success_without_data",
        "ENV-001",
        "Success answers of /api/conversation/chat carry no data.",
    ),
    _fault(
        "env_success_msg_ok",
        "ENV-002",
        "Success answers say msg \"OK\" (the legal variant success_msg, declared as the SHOULD).",
        level="SHOULD",
    ),
    _fault("err_without_msg", "ERR-001", "Error answers carry no msg: {\"code\": 400, \"data\": null}."),
    _fault(
        "err_cancel_code_string",
        "ERR-001",
        "A 400 of /v3/chat/cancel carries the code as a string (\"400\").",
    ),
    _fault(
        "err_run_code_4000",
        "ERR-001",
        "A 400 of /api/conversation/chat carries code 4000, which is not a listed code.",
    ),
    _fault(
        "err_huge_body_plain_text",
        "ERR-001",
        "A body over the size limit is answered 413 in plain text, outside the envelope.",
    ),
    _fault("err_data_not_null", "ERR-002", "Error answers carry data {} instead of null.", level="SHOULD"),
    _fault(
        "err_status_200",
        "ERR-003",
        "Error answers have HTTP status 200 (the body code is right: the legal-at-MUST reading, declared as"
        " the SHOULD).",
        level="SHOULD",
    ),
    _fault(
        "err_huge_body_bad_gateway",
        "ERR-004",
        "A body over the size limit is answered 502 with an HTML page, outside the envelope.",
    ),
)

WIRE_FAULTS: tuple[Fault, ...] = (
    *_CHAT,
    *_MESSAGES,
    *_VALIDATION,
    *_CONVERSATIONS,
    *_CANCEL,
    *_RUN,
    *_ENVELOPE,
)
