"""Named wire variants of the reference server: the legal readings the suite must accept.

Each variant is a set of ``ServerConfig`` knobs (config.py) that takes one documented
form or one legal reading of an ambiguity (``spec/READING.md``, "Known ambiguities";
``reading`` names the row it exercises, verbatim). The kill matrix
(``python -m tools.killmatrix``) runs the suite against every variant:

* ``preferred`` -- a form the page allows at every level: the suite must pass it with
  zero FAIL and zero WARN, by default and under ``--strict``;
* ``alternate`` -- the other legal reading of a point where the page prefers one form
  (READING "Levels": "each documented form is accepted at MUST level and the preferred
  one is checked at SHOULD"): zero FAIL by default, and under ``--strict`` exactly the
  SHOULD requirement ids in ``declares`` fail.

The variants are data only (names, knobs, words): this package never imports the
suite, and the matrix validates the knobs by building a ``ServerConfig`` from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

VariantKind = Literal["preferred", "alternate"]

#: The suite sends a 1,114,112-byte chat body (conformance/suite/test_chat.py); a limit
#: well above it makes the server accept the body instead of refusing it with 400.
_HUGE_BODY_ACCEPTED = 4 * 1024 * 1024
#: Long enough that the suite's read of stray events after the terminal event (READING
#: "After the terminal event": at most 1 s) ends on its own clock, not on the close.
_KEEP_OPEN_SECONDS = 1.5


@dataclass(frozen=True)
class Variant:
    """One named variant: the knobs, what kind of reading it is, and why it is legal."""

    name: str
    kind: VariantKind
    knobs: Mapping[str, Any]
    description: str
    #: The READING.md "Known ambiguities" row (its "Point" cell) this variant exercises,
    #: or "Levels" for that section's rules (never assert a msg text or an answer).
    reading: str
    #: alternate only: the SHOULD requirement ids that fail under --strict, and no other.
    declares: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "knobs", MappingProxyType(dict(self.knobs)))
        if self.kind not in ("preferred", "alternate"):
            raise ValueError(f"variant {self.name!r}: kind must be 'preferred' or 'alternate', got {self.kind!r}")
        if not self.knobs:
            raise ValueError(f"variant {self.name!r}: no knobs (the clean server is not a variant)")
        if "faults" in self.knobs:
            raise ValueError(f"variant {self.name!r}: a variant switches no faults on")
        if self.kind == "alternate" and not self.declares:
            raise ValueError(f"variant {self.name!r}: an alternate reading declares the SHOULD ids it fails")
        if self.kind == "preferred" and self.declares:
            raise ValueError(f"variant {self.name!r}: a preferred form declares no failing requirement")


def _variant(
    name: str, kind: VariantKind, reading: str, description: str, declares: Iterable[str] = (), **knobs: Any
) -> Variant:
    return Variant(name, kind, knobs, description, reading, frozenset(declares))


_SSE = "SSE line format"
_PER_USER = "\"per user\" in the rate-limit table"
_RETRY_AFTER = "`Retry-After`"

VARIANTS: tuple[Variant, ...] = (
    # ---- SSE framing (READING "SSE line format"): every WHATWG-legal framing passes.
    _variant("sse_crlf", "preferred", _SSE, "CRLF line ends in event streams.", line_ending="\r\n"),
    _variant("sse_cr", "preferred", _SSE, "Lone-CR line ends in event streams.", line_ending="\r"),
    _variant("sse_no_space", "preferred", _SSE, "No space after the colon of `event:` and `data:`.", space_after_colon=False),
    _variant(
        "sse_extras",
        "preferred",
        _SSE,
        "A comment line before every event, `retry:` before the first and an `id:` in every event.",
        sse_extras=True,
    ),
    _variant("sse_multiline_data", "preferred", _SSE, "Every payload spread over several `data:` lines.", multiline_data=True),
    _variant("sse_bom", "preferred", _SSE, "A leading byte order mark (U+FEFF) before the first event.", bom=True),
    _variant(
        "sse_charset",
        "preferred",
        _SSE,
        "Content-Type `text/event-stream; charset=utf-8`.",
        content_type="text/event-stream; charset=utf-8",
    ),
    _variant(
        "sse_split_writes",
        "preferred",
        _SSE,
        "Streams written in pieces of 1 to 7 bytes, splitting lines and UTF-8 characters.",
        chunk_sizes=(1, 7),
    ),
    _variant(
        "sse_all_framing",
        "preferred",
        _SSE,
        "Every framing variant at once: CRLF, no space, extras, multi-line data, BOM, charset, 1-7-byte writes.",
        line_ending="\r\n",
        space_after_colon=False,
        sse_extras=True,
        multiline_data=True,
        bom=True,
        content_type="text/event-stream; charset=utf-8",
        chunk_sizes=(1, 7),
        chunk_seed=7,
    ),
    # ---- stream events
    _variant(
        "stream_error_event_name",
        "preferred",
        "Error event",
        "Stream errors are named `error` (the error section's name) instead of `conversation.error`.",
        error_event="error",
    ),
    _variant(
        "stream_errors_envelope",
        "preferred",
        "Errors on a streaming request",
        "An error found before a `stream: true` chat starts is answered with the JSON error envelope, not an event.",
        stream_errors="envelope",
    ),
    _variant(
        "stream_keep_open",
        "preferred",
        "After the terminal event",
        f"The stream stays open {_KEEP_OPEN_SECONDS:g} s after its terminal event before the server closes it.",
        keep_open_after_terminal=_KEEP_OPEN_SECONDS,
    ),
    _variant(
        "start_events_omitted",
        "alternate",
        "Stream start events",
        "No conversation.chat.created / in_progress, as in the page's stream example.",
        declares=("CHAT-SSE-005",),
        start_events=False,
    ),
    _variant(
        "terminal_named_done",
        "alternate",
        "Terminal event",
        "The terminal event is named `done`, as the page's EventSource example listens for.",
        declares=("CHAT-SSE-013",),
        terminal_event="done",
    ),
    # ---- ids, statuses and envelopes
    _variant(
        "ids_prefixed",
        "preferred",
        "Id types",
        "Conversation and message ids are `conv_…` / `msg_…` strings, as in the page's examples.",
        id_style="prefixed",
    ),
    _variant(
        "forbidden_as_404",
        "preferred",
        "Another principal's bot or conversation",
        "Another principal's bot or conversation is answered 404 instead of 403.",
        forbidden_status=404,
    ),
    _variant(
        "unknown_id_as_400",
        "preferred",
        "Unknown bot / conversation id",
        "An unknown bot or conversation id is answered 400 (the page's only error example) instead of 404.",
        unknown_id_status=400,
    ),
    _variant(
        "success_msg_ok",
        "alternate",
        "Success `msg`, `data`",
        'A success answer\'s msg is "ok" instead of "success".',
        declares=("ENV-002",),
        success_msg="ok",
    ),
    _variant(
        "answer_text_other",
        "preferred",
        "Levels",
        "The fake model answers another text (READING \"Levels\": never assert an answer's content).",
        answer_style="count",
    ),
    # ---- auth and limits
    _variant(
        "auth_by_class",
        "alternate",
        "Auth per endpoint",
        "Each endpoint accepts only the mode of its class: Bearer on /v1 and /v3, the session_key cookie on /api.",
        declares=("AUTH-003", "AUTH-004"),
        auth_modes="by_class",
    ),
    _variant(
        "huge_body_accepted",
        "preferred",
        "`get_online_info` of a never-published bot; unknown routes; wrong methods; body size limits;"
        " GET `/v3/chat`; delete; the \"运行管理\" API",
        f"Request bodies up to {_HUGE_BODY_ACCEPTED // (1024 * 1024)} MiB are accepted (the suite's huge body is"
        " answered, not refused).",
        max_body_bytes=_HUGE_BODY_ACCEPTED,
    ),
    # ---- JSON wire forms (wireforms.py): keys, order, transfer, error envelopes
    _variant(
        "json_extra_keys",
        "preferred",
        "Levels",
        "Every JSON object written (envelope, data, nested objects, event payloads) carries unknown keys,"
        " first and last (READING \"Levels\": never fail a server for extra JSON keys).",
        json_extra_keys=True,
    ),
    _variant(
        "json_keys_reversed",
        "preferred",
        "Levels",
        "Every JSON object written (envelope, data, nested objects, event payloads) has its keys in reverse"
        " order: JSON objects are unordered, and the page fixes no order.",
        json_key_order="reversed",
    ),
    _variant(
        "json_chunked",
        "preferred",
        "Levels",
        "Non-stream JSON answers are sent with Transfer-Encoding: chunked in several pieces (no"
        " Content-Length), the first a single byte.",
        json_transfer="chunked",
    ),
    _variant(
        "json_gzip",
        "preferred",
        "Levels",
        "Non-stream JSON answers are gzip-encoded (Content-Encoding: gzip) when the request's"
        " Accept-Encoding allows it.",
        json_transfer="gzip",
    ),
    _variant(
        "errors_http_200",
        "alternate",
        "HTTP status of errors",
        "Every error envelope, 429 included, is sent with HTTP 200; its body code is unchanged (the body code"
        " decides).",
        declares=("ERR-003",),
        error_http_status="200",
    ),
    _variant(
        "error_data_absent",
        "alternate",
        "Error envelope",
        "Error envelopes have no data key: {\"code\": N, \"msg\": \"...\"} (data: null SHOULD, absent is accepted).",
        declares=("ERR-002",),
        error_data="absent",
    ),
    _variant(
        "unset_fields_absent",
        "preferred",
        "Fields the API cannot set",
        "Bot details and online info leave out `model` (bot details also `tools`) when the API never set them.",
        unset_fields="absent",
    ),
    _variant(
        "unset_fields_empty",
        "preferred",
        "Fields the API cannot set",
        'Bot details and online info show `model: ""` (bot details also `tools: []`) when the API never set them.',
        unset_fields="empty",
    ),
    # ---- stream and conversation forms: legal shapes of a chat's
    # stream, of naming a conversation, of a late cancel and of the run's answer.
    _variant(
        "message_completed_only",
        "preferred",
        "Messages in a stream",
        "The answer's conversation.message.completed comes alone, without any delta before it.",
        message_shape="completed_only",
    ),
    _variant(
        "messages_several",
        "preferred",
        "Messages in a stream",
        "The answer is split into two messages, each with its own id, its deltas and its completed event.",
        message_shape="several",
    ),
    _variant(
        "unknown_events",
        "preferred",
        "Levels",
        "Events of types the page does not list before the terminal event: `ping` with non-JSON data, and"
        " `conversation.audio.delta` with a JSON payload after every message event (READING \"Levels\": unknown"
        " event types carry no requirement).",
        unknown_events=True,
    ),
    _variant(
        "payload_without_event_key",
        "alternate",
        "`event` key in SSE payloads",
        "No payload carries the `event` key (the key is expected on the event table's events at SHOULD only).",
        declares=("CHAT-SSE-016",),
        payload_event_key=False,
    ),
    _variant(
        "unknown_conversation_new",
        "preferred",
        "Chat with an unknown / another principal's `ConversationID`",
        "A chat naming an unknown conversation, or another principal's, starts a new conversation with a new id"
        " instead of being refused.",
        unknown_conversation="new",
    ),
    _variant(
        "conversationid_only",
        "preferred",
        "Conversation id in a chat request",
        "/v3/chat honours body `ConversationID` only; body `conversation_id` and ?conversation_id= are ignored.",
        conversation_keys=("ConversationID",),
    ),
    _variant(
        "conversation_id_key_only",
        "alternate",
        "Conversation id in a chat request",
        "/v3/chat honours body `conversation_id` and ?conversation_id=; body `ConversationID` is ignored.",
        declares=("CHAT-CONV-002",),
        conversation_keys=("conversation_id", "query"),
    ),
    _variant(
        "conversation_query_only",
        "alternate",
        "Conversation id in a chat request",
        "/v3/chat honours ?conversation_id= only; body `ConversationID` and `conversation_id` are ignored.",
        declares=("CHAT-CONV-002",),
        conversation_keys=("query",),
    ),
    _variant(
        "cancel_after_end_error",
        "preferred",
        "Cancel",
        "A cancel of a conversation with no chat streaming (the chat already ended) answers code 400, not 0.",
        cancel_after_end="error",
    ),
    _variant(
        "run_always_streams",
        "preferred",
        "`/api/conversation/chat` response",
        "/api/conversation/chat always answers an event stream, `stream: false` or omitted too (its errors as"
        " a stream's leading error event).",
        run_answer="stream",
    ),
    # ---- other readings of the page's silences (READING rows named in each)
    _variant(
        "bot_id_as_string",
        "preferred",
        "Id types",
        "Every bot_id of an answer (data objects and event payloads) is a decimal string, not a JSON integer.",
        bot_id_text=True,
    ),
    _variant(
        "chat_payloads_bare",
        "preferred",
        "Payload of `chat.created` / `in_progress` / `failed`",
        "conversation.chat.created, in_progress and failed carry only their `event` key, no chat object.",
        chat_payloads="bare",
    ),
    _variant(
        "cancel_with_data",
        "preferred",
        "Success `msg`, `data`",
        "A successful cancel answers with a data object (conversation_id and status), unlike the page's example.",
        cancel_data=True,
    ),
    _variant(
        "cancel_data_null",
        "preferred",
        "Success `msg`, `data`",
        'A successful cancel answers `"data": null` (the cancel example has no data; absent, null or any value).',
        field_forms=(("/v3/chat/cancel", "data", "null"),),
    ),
    _variant(
        "draft_chat_answered",
        "preferred",
        "Chat with a draft bot",
        "A chat with a never-published bot is answered with its draft instead of refused.",
        draft_chat="answer",
    ),
    # ---- rate limiters: every legal limiter passes. READING "Rate-limit
    # groups" leaves the algorithm, whether 4xx answers count and cancel's group open;
    # "per user" allows the user_id key; "Retry-After" is optional (seconds or a date,
    # and no SHOULD asks for it: BP-001 falls back to one window), so all are preferred.
    _variant(
        "limiter_fixed_window",
        "preferred",
        "Rate-limit groups",
        "Fixed rate windows aligned to multiples of the window (up to twice the limit around an edge),"
        " not a sliding log.",
        rate_algorithm="fixed",
    ),
    _variant(
        "limiter_by_user_id",
        "preferred",
        _PER_USER,
        "The chat group is counted per principal and body `user_id` (the principal where a request has none).",
        rate_key="user_id",
    ),
    _variant(
        "retry_after_http_date",
        "preferred",
        _RETRY_AFTER,
        "A 429's Retry-After is an HTTP date (IMF-fixdate, rounded up to the next second), not seconds.",
        retry_after="http_date",
    ),
    _variant(
        "retry_after_absent",
        "preferred",
        _RETRY_AFTER,
        "A 429 carries no Retry-After (the client waits one documented window).",
        retry_after="none",
    ),
    _variant(
        "limiter_not_counting_4xx",
        "preferred",
        "Rate-limit groups",
        "A request answered with an HTTP 4xx (other than 429) gives its slot back: only successes count.",
        rate_count_errors=False,
    ),
    _variant(
        "cancel_not_limited",
        "preferred",
        "Rate-limit groups",
        "/v3/chat/cancel is in no rate-limit group (\"cancel: chat or none\").",
        cancel_limited=False,
    ),
    _variant(
        "limiter_all_alternatives",
        "preferred",
        _PER_USER,
        "Every limiter alternative at once: fixed windows, the chat keyed by user_id, Retry-After an HTTP"
        " date, 4xx answers not counted, cancel not limited.",
        rate_algorithm="fixed",
        rate_key="user_id",
        retry_after="http_date",
        rate_count_errors=False,
        cancel_limited=False,
    ),
)


#: READING rows with no variant, and why: the server side has one legal reading there,
#: and its other forms are faults (faults/), not readings -- or nothing a server does
#: there is observable to the suite. Every other row has a variant above (a test checks).
SINGLE_READINGS: Mapping[str, str] = MappingProxyType(
    {
        "`query` and `user_id` in `/v3/chat`": "a missing user_id is 400 (CHAT-REQ-003); query carries no"
        " requirement and no test sends it, so how a server reads it is not observable",
        "`additional_messages[].content_type`": "a server accepts either key (CHAT-MSG-004, CHAT-MSG-005);"
        " refusing one is the fault msg_type_alias_refused",
        "Content types": "text, image and object_string are MUST and card SHOULD (the msg_*_refused faults);"
        " file has no requirement and the suite never sends it",
        "Usage": "three non-negative integers (MUST) adding up (SHOULD): other numbers are the stream_usage_*"
        " faults",
        "Update vs online version": "one reading: the update echoes the new values and the online version"
        " changes on publish only (faults bot_update_no_echo, bot_online_stale)",
        "Publish version": "an integer (MUST), 1 then greater (SHOULD): other numbering is the"
        " bot_publish_version_* faults",
        "Timestamps": "one reading, seconds since the epoch: milliseconds are the ts_ms_* faults",
    }
)


def all_variants() -> Mapping[str, Variant]:
    """The variants by name, in the order above; names are unique."""
    variants: dict[str, Variant] = {}
    for variant in VARIANTS:
        if variant.name in variants:
            raise ValueError(f"duplicate variant name {variant.name!r}")
        variants[variant.name] = variant
    return MappingProxyType(variants)


__all__ = ["SINGLE_READINGS", "VARIANTS", "Variant", "VariantKind", "all_variants"]
