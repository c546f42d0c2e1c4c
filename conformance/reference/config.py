"""Configuration of the reference server: principals, pacing, limits and wire variants.

Every field defaults to the form the spec documents (or, where the spec says two
things, the form READING.md calls preferred). The variant knobs exist so that the
suite can be shown to accept every legal reading of an ambiguity (READING.md,
"Known ambiguities"); each one names the READING row it exercises.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

#: READING "Body size limits": no requirement; we refuse bodies above this (1 MiB).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

IdStyle = Literal["numeric", "prefixed"]
AnswerStyle = Literal["echo", "count"]
AuthModes = Literal["both", "by_class"]
LineEnding = Literal["\n", "\r\n", "\r"]
TerminalEvent = Literal["conversation.stream.done", "done"]
ErrorEvent = Literal["conversation.error", "error"]
StreamErrors = Literal["event", "envelope"]
RateGroup = Literal["chat", "management", "info"]
#: Which API the server speaks: "doc" (agent-api.zh.md), "coze" (the Coze cloud v3 API as
#: the official SDK cozepy 0.20 speaks it; conformance/reference/coze/) or "studio" (Coze
#: Studio / Coze Plus as docs/studio-contract.md describes it; conformance/reference/studio/).
Dialect = Literal["doc", "coze", "studio"]
#: Every dialect, and whether it has session cookies (the doc dialect's WebAPI class).
DIALECTS: tuple[str, ...] = get_args(Dialect)
SESSION_DIALECTS: frozenset[str] = frozenset({"doc", "studio"})
#: The dialects with an email/password login (the studio dialect's passport route).
LOGIN_DIALECTS: frozenset[str] = frozenset({"studio"})
# JSON wire forms (READING "Levels", "HTTP status of errors", "Error envelope",
# "Fields the API cannot set"); see wireforms.py.
JsonKeyOrder = Literal["documented", "reversed"]
JsonTransfer = Literal["plain", "chunked", "gzip"]
ErrorHttpStatus = Literal["code", "200"]
ErrorData = Literal["null", "absent"]
UnsetFields = Literal["mixed", "absent", "empty"]

# Stream and conversation forms (READING "Messages in a stream", "Conversation id in a
# chat request", "Cancel", ...): see ServerConfig's docstring.
MessageShape = Literal["deltas", "completed_only", "several"]
UnknownConversation = Literal["refuse", "new"]
ConversationKey = Literal["ConversationID", "conversation_id", "query"]
CancelAfterEnd = Literal["ok", "error"]
RunAnswer = Literal["as_asked", "stream", "envelope"]
#: Every form of a conversation id in a /v3/chat request, in the order READING lists them.
CONVERSATION_KEYS: tuple[ConversationKey, ...] = ("ConversationID", "conversation_id", "query")
# Other readings (READING "Payload of `chat.created` / ...", "Chat with a draft bot").
ChatPayloads = Literal["full", "bare"]
DraftChat = Literal["refuse", "answer"]
# Rate-limit variants (READING "per user", "Rate-limit groups", "Retry-After").
RateAlgorithm = Literal["sliding", "fixed"]
RateKey = Literal["principal", "user_id"]
RetryAfter = Literal["seconds", "http_date", "none"]
# Field forms (wireforms.py): what one field of an answer or an event payload becomes.
FieldForm = Literal["absent", "null", "string", "integer", "boolean", "array", "object", "number", "text"]
FIELD_FORMS: tuple[FieldForm, ...] = ("absent", "null", "string", "integer", "boolean", "array", "object", "number", "text")
# The coze dialect's wire variants (docs/coze-contract.md; conformance/reference/coze/).
CozeAuthStatus = Literal[401, 200]
CozeErrorStatus = Literal["200", "http"]
CozeLineEnding = Literal["\n", "\r\n"]
# The studio dialect's wire variants (docs/studio-contract.md; conformance/reference/studio/).
StudioAuthStatus = Literal[200, 401]
StudioErrorStatus = Literal["200", "http"]
StudioLineEnding = Literal["\n", "\r\n"]
#: The studio dialect's capabilities (contract "Capabilities"), by the name of their knob.
STUDIO_CAPABILITIES: tuple[str, ...] = ("nonstream", "retrieve", "section_id")
_SPACE_ID = re.compile(r"[1-9][0-9]{0,18}")


def _derived(kind: str, seed: str, digits: bool = False) -> str:
    """A deterministic value for a principal's studio identity (email, password, space id)."""
    digest = hashlib.sha256(f"coze-plus-reference:{kind}:{seed}".encode()).hexdigest()
    return str(7_300_000_000_000_000_000 + int(digest, 16) % 10**18) if digits else digest[:24]


@dataclass(frozen=True)
class PrincipalConfig:
    """One API user: the name owns bots and conversations; either secret authenticates.

    The secrets are kept out of ``repr`` so a config never leaks them into a log or a
    test report. ``email``, ``password`` and ``space_id`` are the studio dialect's login
    and personal space (docs/studio-contract.md "Principals and auth"); left empty, each
    is derived deterministically (the email and space id from the name, the password
    from the API key, so it is no more guessable than the key).
    """

    name: str
    api_key: str = field(repr=False)
    session_key: str = field(repr=False)
    email: str = ""
    password: str = field(default="", repr=False)
    space_id: str = ""

    def __post_init__(self) -> None:
        derived = {
            "email": f"{self.name}@studio.example",
            "password": "pw-" + _derived("password", str(self.api_key)),
            "space_id": _derived("space", str(self.name), digits=True),
        }
        for attr, value in derived.items():
            if getattr(self, attr) == "":
                object.__setattr__(self, attr, value)
        if not isinstance(self.space_id, str) or not _SPACE_ID.fullmatch(self.space_id):
            raise ValueError(f"PrincipalConfig.space_id must be a string of 1-19 digits (principal {self.name!r})")
        if not isinstance(self.email, str) or "@" not in self.email:
            raise ValueError(f"PrincipalConfig.email must hold an '@' (principal {self.name!r})")
        for attr in ("name", "api_key", "session_key", "email", "password"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
                raise ValueError(
                    f"PrincipalConfig.{attr} must be a non-empty printable string without spaces"
                    f" (principal {self.name!r})"
                )
            if ";" in value or "," in value:
                # Both would break the Cookie header a client builds from the session key.
                raise ValueError(f"PrincipalConfig.{attr} must not contain ';' or ',' (principal {self.name!r})")


#: The documented development credentials (conformance/reference/README.md). Two
#: principals, because ownership (403 for another principal's bot) needs a second one.
DEV_PRINCIPALS: tuple[PrincipalConfig, ...] = (
    PrincipalConfig(name="alice", api_key="dev-alice-api-key", session_key="dev-alice-session-key"),
    PrincipalConfig(name="bob", api_key="dev-bob-api-key", session_key="dev-bob-session-key"),
)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the reference server can be told. All fields have documented defaults.

    Dialect
      dialect: "doc" serves the documented API (every other field below); "coze" serves
        the Coze cloud v3 API instead (conformance/reference/coze/: /v3/chat with
        retrieve, message/list and cancel, /v1/bot/create|update|publish,
        /v1/bot/get_online_info, /v1/bots/:bot_id), Bearer only, in the cloud's
        envelope. The coze dialect reads principals, token_delay, host, port,
        max_body_bytes, chunk_sizes, chunk_seed, answer_style, json_key_order, its own
        wire variants (the coze_* knobs, "Coze wire variants" below) and its own faults; it has
        no rate limiter, and the other knobs are the doc dialect's readings: leave them
        at their defaults with dialect="coze" (the SSE writer it shares would apply the
        payload wire forms of wireforms.py, none of which the coze contract names).
        "studio" serves Coze Studio / Coze Plus (docs/studio-contract.md;
        conformance/reference/studio/): login, spaces, PATs, /v3/chat and friends, the
        draftbot routes and /api/conversation/chat, auth by path class (Bearer on /v1 and
        /v3, the session cookie on /api). It reads principals (with their email, password
        and space_id), token_delay, host, port, max_body_bytes, chunk_sizes, chunk_seed,
        answer_style, the studio_* knobs ("Studio capabilities and wire variants" below)
        and its own faults; no rate limiter.

    Behaviour
      principals: who may call; defaults to :data:`DEV_PRINCIPALS`.
      token_delay: seconds between streamed tokens (0 in benchmarks and most tests).
      host, port: where to listen; port 0 picks a free port.
      max_body_bytes: request bodies above this are refused with 400 after reading at
        most this many bytes plus one.
      db_path: None keeps everything in memory (the suite's server); a path keeps bots,
        versions, conversations and the coze dialect's finished chats in that SQLite
        file (dbstore.py), so they survive a restart (``--db PATH``).

    Rate limits (spec "速率限制": chat 60, management 30, info 100 per minute per user)
      rate_limits: False switches limiting off for tests that need volume.
      rate_window: the window in seconds.
      chat_limit, management_limit, info_limit: requests per window per principal
        (per key: see rate_key).
      clock: monotonic seconds; inject a fake one to test the window exactly.

    Rate-limit variants (each default is today's behaviour; every value is a legal
    limiter, READING rows "\"per user\" in the rate-limit table", "Rate-limit groups"
    and "`Retry-After`")
      rate_algorithm: "sliding" (a log: at most the limit in any window) or "fixed"
        (a count per window, the windows aligned to multiples of rate_window on the
        clock: up to twice the limit around an edge).
      rate_key: "principal" or "user_id" -- the chat group counted per principal and
        the body's ``user_id`` (a bounded peek at the body before the handler reads it,
        so a request still counts before it is validated); a request without one
        (cancel, /api/conversation/chat, a body with no string user_id, one too large
        to peek at) counts for the principal. Management and info: the principal.
      retry_after: the 429's ``Retry-After``: "seconds" (whole, rounded up),
        "http_date" (an IMF-fixdate, the reopening rounded up to the next second) or
        "none" (no header).
      rate_count_errors: False gives the slot of a request answered with an HTTP 4xx
        status other than 429 back (an error event in a 200 stream still counts;
        refusals never take a slot, whatever this says).
      cancel_limited: False takes /v3/chat/cancel out of the chat group ("chat or none").

    Variants (each default is the documented, preferred form)
      id_style: "numeric" -> conversation and message ids are strings of digits;
        "prefixed" -> ``conv_…`` / ``msg_…`` (READING "Id types").
      success_msg: the ``msg`` of a success envelope (READING "Success msg").
      answer_style: "echo" (turn number and the last user message) or "count" (another
        deterministic text) -- the suite must never assert an answer's content.
      forbidden_status: 403 or 404 for another principal's bot or conversation.
      unknown_id_status: 404 or 400 for an unknown bot or conversation id.
      auth_modes: "both" accepts Bearer and the ``session_key`` cookie everywhere;
        "by_class" accepts only Bearer on /v1 and /v3 and only the cookie on /api
        (READING "Auth per endpoint").
      start_events: send ``conversation.chat.created`` / ``in_progress``.
      line_ending, space_after_colon, sse_extras (comments, ``id:``, ``retry:``),
        multiline_data (payload over several ``data:`` lines), bom (leading U+FEFF),
        content_type, chunk_sizes ((min, max) bytes per write, splitting UTF-8
        characters; None writes one piece per event), chunk_seed: SSE framing
        (READING "SSE line format").
      terminal_event, error_event: the two documented names of each.
      keep_open_after_terminal: seconds the stream stays open after the terminal event
        (READING "After the terminal event").
      stream_errors: how an error found before a ``stream: true`` chat starts is
        answered -- "event": an event stream holding one error event (the spec's
        "流式响应中的错误通过 error 事件返回"); "envelope": the JSON error envelope
        (READING "Errors on a streaming request" allows both).

    JSON wire forms (wireforms.py; every one is legal, the defaults are today's forms)
      json_extra_keys: every JSON object written (envelope, data, nested objects, event
        payloads) carries unknown keys ``x_ref_extra…`` first and last (READING "Levels":
        never fail a server for extra JSON keys).
      json_key_order: "documented" or "reversed" -- every JSON object's keys in reverse.
      json_transfer: how a non-stream JSON answer travels -- "plain" (Content-Length,
        one piece), "chunked" (Transfer-Encoding: chunked, several pieces, UTF-8
        characters split) or "gzip" (Content-Encoding: gzip when the request's
        Accept-Encoding allows it, plain otherwise).
      error_http_status: "code" (the HTTP status equals the body code) or "200" (every
        error envelope, 429 included, is sent with HTTP 200; READING "HTTP status of
        errors": the body code decides).
      error_data: "null" (``"data": null``) or "absent" (no data key) in error envelopes
        (READING "Error envelope").
      unset_fields: ``model`` (both info endpoints) and ``tools`` (bot details) when the
        API never set them (READING "Fields the API cannot set") -- "mixed": model
        absent, tools ``[]``; "absent": both absent; "empty": model ``""``, tools ``[]``.

    Stream and conversation forms (each default is today's behaviour)
      message_shape: how a streamed answer's message goes out (READING "Messages in a
        stream") -- "deltas": one message, a delta per token, then its completed event;
        "completed_only": the completed event alone, no deltas (sent after the time the
        tokens would take); "several": the answer split into two messages, each with its
        own id, deltas and completed event. The non-stream answer is one message object
        (spec "非流式响应") in every shape: the whole answer.
      unknown_events: events of types the page does not list, before the terminal event:
        a ``ping`` whose data is not JSON first and before the terminal event, and a
        ``conversation.audio.delta`` (a JSON payload) after every message event (READING
        "Levels": unknown event types carry no requirement).
      payload_event_key: False sends no ``"event"`` key in any payload (READING "`event`
        key in SSE payloads": MUST equal the name when present, expected at SHOULD).
      unknown_conversation: a /v3/chat (or run) naming a conversation the principal
        cannot see -- unknown, or another principal's -- is "refuse"d (unknown_id_status
        / forbidden_status) or starts a "new" conversation with a new id (READING "Chat
        with an unknown / another principal's `ConversationID`").
      conversation_keys: the forms of a conversation id /v3/chat honours, from
        CONVERSATION_KEYS (body ``ConversationID``, body ``conversation_id``, query
        ``?conversation_id=``); the others are still type-checked, then ignored (READING
        "Conversation id in a chat request": at least one MUST, ``ConversationID`` SHOULD).
      cancel_after_end: a cancel of the principal's conversation when no stream of it is
        running answers code 0 ("ok") or 400 ("error") (READING "Cancel").
      run_answer: ``/api/conversation/chat`` answers as its ``stream`` field asks
        ("as_asked"), always as an event stream ("stream"; its errors then as a
        ``stream: true`` chat's, see stream_errors) or always as an envelope ("envelope")
        (READING "`/api/conversation/chat` response").

    Other readings (each default is today's behaviour)
      bot_id_text: every ``bot_id`` of an answer (data objects, event payloads) written
        as a decimal string, not a JSON integer (READING "Id types": either).
      chat_payloads: "full" or "bare" -- ``conversation.chat.created`` / ``in_progress``
        / ``failed`` carry no chat object, only their ``event`` key (READING "Payload
        of `chat.created` / `in_progress` / `failed`": not shown, require nothing).
      cancel_data: a successful cancel answers with a data object (the conversation id
        and a status) instead of none (READING "Success `msg`, `data`": the cancel
        example has no data; neither is required).
      draft_chat: "refuse" a chat with a never-published bot (400), or "answer" it with
        the draft (READING "Chat with a draft bot": not said).

    Field forms (wireforms.py; the kill matrix derives them from the response schemas)
      field_forms: ``(where, path, form)`` triples. ``where`` is a documented endpoint's
        path as the page writes it (``/v1/bots/:bot_id``: a success answer of it) or
        ``event:<name>`` (every payload of that event); ``path`` a dotted key path from
        the body (``data.model``; ``[]`` walks every element of a list:
        ``data.tools[].plugin_id``); ``form`` one of FIELD_FORMS: ``absent`` removes the
        key, ``number`` writes a digit string as a JSON integer and ``text`` an integer
        as its digits (the same id in the other type), the others set it to null or a
        value of that JSON type. Which forms are legal is the caller's business: this
        server writes what it is told.

    Coze wire variants (dialect="coze" only; each default is the form the cloud sends,
    every other value a legal reading of docs/coze-contract.md that cozepy 0.20 and
    @coze/api 1.3.9 both read; tools/killmatrix/plan.COZE_DIALECT_VARIANTS runs each)
      coze_auth_status: a refused credential answered HTTP 401 (the reference's) or HTTP
        200, both with code 4100 in the envelope (contract "Auth": either; the SDKs
        judge the body code, not the status).
      coze_error_status: business errors with HTTP "200" (the cloud's) or "http": a 4xx
        status by code (envelope.HTTP_STATUS_BY_CODE: 400 for 4000, 403 for 4101, 404
        for 4200, ...), the same body (contract "Envelope": a legal other reading).
      coze_sse_space: a space after the colon of ``event:`` and ``data:`` lines (the
        SSE field value drops one leading space: WHATWG and cozepy both strip it).
      coze_line_ending: the event stream's line ends, "\n" (the cloud's) or "\r\n"
        (httpx iter_lines and every SSE parser split on both).
      coze_extra_fields: undocumented keys beside the contract's on every chat, message
        and bot object and every envelope (``section_id``, ``meta_data`` of string
        values, ``reasoning_content``, ``required_action``, ``detail.extra``), as the
        cloud sends some of them (vectors/coze-cloud): readers ignore unknown keys.
      coze_unset_times: a chat's ``completed_at`` / ``failed_at`` present as 0 while
        unset, instead of absent.
      coze_follow_up: after the answer's message.completed, a ``verbose`` and a
        ``follow_up`` message.completed (no deltas), in the stream and in message/list
        (contract: "optionally more message.completed (type verbose / follow_up)").
      coze_content_type_params: the stream's ``Content-Type: text/event-stream;
        charset=utf-8`` (a parameter on the media type; cozepy tests "event-stream" in it).

    Studio capabilities and wire variants (dialect="studio" only; docs/studio-contract.md)
      studio_nonstream, studio_retrieve, studio_section_id: the contract's capabilities
        (``"stream": false`` answered as JSON; /v3/chat/retrieve and /v3/chat/message/list;
        ``section_id`` on messages), all True by default; all False is Coze Plus fb00b21
        (``--studio-capabilities none`` or ``cp``).
      studio_no_model: no model is configured: every draftbot/create answers code 100000013.
      The legal other readings the contract allows (each default is the contract's first form):
      studio_auth_status: a refused Bearer key or a dead session cookie answered HTTP 200
        (the reference's) or 401, both with code 700012006.
      studio_error_status: business errors (9-digit codes) with HTTP "200" or "http": a 4xx
        status by code, the same body.
      studio_cancel_envelope: a cancel answers ``{"code":0,"msg":"","data":<Chat status
        canceled>}`` instead of ``{"ChatV3ChatDetail":…,"BaseResp":null}``.
      studio_cancel_ends_stream: a canceled chat's stream ends after the event being
        written, without chat.completed and without conversation.stream.done.
      studio_sse_space: ``event: x`` / ``data: y`` (a space after the colon).
      studio_line_ending: the event streams' line ends, "\n" or "\r\n".
      studio_prerun_envelope: a /v3/chat stream's pre-run error is a JSON error envelope
        instead of one ``error`` event.

    Faults
      faults: names from conformance/reference/faults/, each breaking one requirement.
      slow_answer_seconds: how long the chat_slow_answer fault holds a non-stream answer
        (over the spec's 30 s best practice by default).
    """

    dialect: Dialect = "doc"
    principals: tuple[PrincipalConfig, ...] = DEV_PRINCIPALS
    token_delay: float = 0.02
    host: str = "127.0.0.1"
    port: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    db_path: str | None = None

    rate_limits: bool = True
    rate_window: float = 60.0
    chat_limit: int = 60
    management_limit: int = 30
    info_limit: int = 100
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    # ---- rate-limit variants (READING "Rate-limit groups", "per user", "Retry-After")
    rate_algorithm: RateAlgorithm = "sliding"
    rate_key: RateKey = "principal"
    retry_after: RetryAfter = "seconds"
    rate_count_errors: bool = True
    cancel_limited: bool = True

    id_style: IdStyle = "numeric"
    success_msg: str = "success"
    answer_style: AnswerStyle = "echo"
    forbidden_status: Literal[403, 404] = 403
    unknown_id_status: Literal[404, 400] = 404
    auth_modes: AuthModes = "both"

    start_events: bool = True
    line_ending: LineEnding = "\n"
    space_after_colon: bool = True
    sse_extras: bool = False
    multiline_data: bool = False
    bom: bool = False
    content_type: str = "text/event-stream"
    chunk_sizes: tuple[int, int] | None = None
    chunk_seed: int = 0
    terminal_event: TerminalEvent = "conversation.stream.done"
    error_event: ErrorEvent = "conversation.error"
    keep_open_after_terminal: float = 0.0
    stream_errors: StreamErrors = "event"

    # JSON wire forms (wireforms.py)
    json_extra_keys: bool = False
    json_key_order: JsonKeyOrder = "documented"
    json_transfer: JsonTransfer = "plain"
    error_http_status: ErrorHttpStatus = "code"
    error_data: ErrorData = "null"
    unset_fields: UnsetFields = "mixed"
    # Stream and conversation forms
    message_shape: MessageShape = "deltas"
    unknown_events: bool = False
    payload_event_key: bool = True
    unknown_conversation: UnknownConversation = "refuse"
    conversation_keys: tuple[ConversationKey, ...] = CONVERSATION_KEYS
    cancel_after_end: CancelAfterEnd = "ok"
    run_answer: RunAnswer = "as_asked"
    # Other readings
    bot_id_text: bool = False
    chat_payloads: ChatPayloads = "full"
    cancel_data: bool = False
    draft_chat: DraftChat = "refuse"
    # Coze wire variants (dialect="coze")
    coze_auth_status: CozeAuthStatus = 401
    coze_error_status: CozeErrorStatus = "200"
    coze_sse_space: bool = False
    coze_line_ending: CozeLineEnding = "\n"
    coze_extra_fields: bool = False
    coze_unset_times: bool = False
    coze_follow_up: bool = False
    coze_content_type_params: bool = False
    # Studio capabilities and wire variants (dialect="studio")
    studio_nonstream: bool = True
    studio_retrieve: bool = True
    studio_section_id: bool = True
    studio_no_model: bool = False
    studio_auth_status: StudioAuthStatus = 200
    studio_error_status: StudioErrorStatus = "200"
    studio_cancel_envelope: bool = False
    studio_cancel_ends_stream: bool = False
    studio_sse_space: bool = False
    studio_line_ending: StudioLineEnding = "\n"
    studio_prerun_envelope: bool = False
    # Field forms
    field_forms: tuple[tuple[str, str, FieldForm], ...] = ()

    #: Deliberate breakages (conformance/reference/faults/); empty = a clean server.
    faults: frozenset[str] = frozenset()
    slow_answer_seconds: float = 31.0

    def has(self, fault: str) -> bool:
        """Whether the fault named ``fault`` is switched on."""
        return fault in self.faults

    def __post_init__(self) -> None:
        from .faults import all_faults

        _check_choice("dialect", self.dialect, DIALECTS)
        known = all_faults()
        unknown = sorted(set(self.faults) - set(known))
        if unknown:
            raise ValueError(f"ServerConfig.faults: unknown fault(s) {unknown}; see conformance/reference/faults/")
        foreign = sorted(name for name in self.faults if known[name].dialect != self.dialect)
        if foreign:
            raise ValueError(f"ServerConfig.faults: {foreign} break another dialect than {self.dialect!r}")
        _check_choice("id_style", self.id_style, ("numeric", "prefixed"))
        _check_choice("answer_style", self.answer_style, ("echo", "count"))
        _check_choice("forbidden_status", self.forbidden_status, (403, 404))
        _check_choice("unknown_id_status", self.unknown_id_status, (404, 400))
        _check_choice("auth_modes", self.auth_modes, ("both", "by_class"))
        _check_choice("line_ending", self.line_ending, ("\n", "\r\n", "\r"))
        _check_choice("terminal_event", self.terminal_event, ("conversation.stream.done", "done"))
        _check_choice("error_event", self.error_event, ("conversation.error", "error"))
        _check_choice("stream_errors", self.stream_errors, ("event", "envelope"))
        _check_choice("json_extra_keys", self.json_extra_keys, (False, True))
        _check_choice("json_key_order", self.json_key_order, ("documented", "reversed"))
        _check_choice("json_transfer", self.json_transfer, ("plain", "chunked", "gzip"))
        _check_choice("error_http_status", self.error_http_status, ("code", "200"))
        _check_choice("error_data", self.error_data, ("null", "absent"))
        _check_choice("unset_fields", self.unset_fields, ("mixed", "absent", "empty"))
        _check_choice("message_shape", self.message_shape, ("deltas", "completed_only", "several"))
        _check_choice("unknown_conversation", self.unknown_conversation, ("refuse", "new"))
        _check_choice("cancel_after_end", self.cancel_after_end, ("ok", "error"))
        _check_choice("run_answer", self.run_answer, ("as_asked", "stream", "envelope"))
        _check_choice("bot_id_text", self.bot_id_text, (False, True))
        _check_choice("chat_payloads", self.chat_payloads, ("full", "bare"))
        _check_choice("cancel_data", self.cancel_data, (False, True))
        _check_choice("draft_chat", self.draft_chat, ("refuse", "answer"))
        _check_choice("coze_auth_status", self.coze_auth_status, (401, 200))
        _check_choice("coze_error_status", self.coze_error_status, ("200", "http"))
        _check_choice("coze_line_ending", self.coze_line_ending, ("\n", "\r\n"))
        for name in ("coze_sse_space", "coze_extra_fields", "coze_unset_times", "coze_follow_up", "coze_content_type_params"):
            _check_choice(name, getattr(self, name), (False, True))
        _check_choice("studio_auth_status", self.studio_auth_status, (200, 401))
        _check_choice("studio_error_status", self.studio_error_status, ("200", "http"))
        _check_choice("studio_line_ending", self.studio_line_ending, ("\n", "\r\n"))
        for name in (
            "studio_nonstream", "studio_retrieve", "studio_section_id", "studio_no_model", "studio_cancel_envelope",
            "studio_cancel_ends_stream", "studio_sse_space", "studio_prerun_envelope",
        ):
            _check_choice(name, getattr(self, name), (False, True))
        for triple in self.field_forms:
            well_formed = isinstance(triple, tuple) and len(triple) == 3 and all(isinstance(x, str) for x in triple)
            if not well_formed or not triple[1] or triple[2] not in FIELD_FORMS or not triple[0].startswith(("/", "event:")):
                raise ValueError(
                    "ServerConfig.field_forms must hold (where, path, form) triples: where an endpoint path or"
                    f" 'event:<name>', path a dotted key path, form one of {FIELD_FORMS!r}; got {triple!r}"
                )
        keys = self.conversation_keys
        distinct = isinstance(keys, tuple) and len(set(keys)) == len(keys)
        if not distinct or not keys or not set(keys) <= set(CONVERSATION_KEYS):
            raise ValueError(
                f"ServerConfig.conversation_keys must be a non-empty tuple of distinct names from"
                f" {CONVERSATION_KEYS!r} (READING: a server honours at least one), got {keys!r}"
            )
        _check_choice("rate_algorithm", self.rate_algorithm, ("sliding", "fixed"))
        _check_choice("rate_key", self.rate_key, ("principal", "user_id"))
        _check_choice("retry_after", self.retry_after, ("seconds", "http_date", "none"))
        _check_choice("rate_count_errors", self.rate_count_errors, (True, False))
        _check_choice("cancel_limited", self.cancel_limited, (True, False))
        if not self.principals:
            raise ValueError("ServerConfig.principals must name at least one principal")
        names = [p.name for p in self.principals]
        secrets = [s for p in self.principals for s in (p.api_key, p.session_key)]
        if len(set(names)) != len(names):
            raise ValueError(f"ServerConfig.principals has duplicate names: {names}")
        if len(set(secrets)) != len(secrets):
            # A shared secret would make the principal of a request ambiguous.
            raise ValueError("ServerConfig.principals: every api_key and session_key must be distinct")
        for attr in ("email", "space_id"):  # the studio login and space list name one principal each
            values = [getattr(p, attr) for p in self.principals]
            if len(set(values)) != len(values):
                raise ValueError(f"ServerConfig.principals: every {attr} must be distinct")
        _check_non_negative("token_delay", self.token_delay)
        _check_non_negative("keep_open_after_terminal", self.keep_open_after_terminal)
        _check_non_negative("slow_answer_seconds", self.slow_answer_seconds)
        if not 0 <= self.port <= 65535 or isinstance(self.port, bool):
            raise ValueError(f"ServerConfig.port must be 0..65535, got {self.port!r}")
        if self.max_body_bytes < 1:
            raise ValueError(f"ServerConfig.max_body_bytes must be positive, got {self.max_body_bytes!r}")
        if not self.rate_window > 0:
            raise ValueError(f"ServerConfig.rate_window must be positive, got {self.rate_window!r}")
        for name in ("chat_limit", "management_limit", "info_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerConfig.{name} must be a positive integer, got {value!r}")
        if not self.success_msg or not isinstance(self.success_msg, str):
            raise ValueError(f"ServerConfig.success_msg must be a non-empty string, got {self.success_msg!r}")
        media_type = self.content_type.partition(";")[0].strip().lower()
        if media_type != "text/event-stream" or "\r" in self.content_type or "\n" in self.content_type:
            raise ValueError(
                f"ServerConfig.content_type must be text/event-stream with optional parameters,"
                f" got {self.content_type!r}"
            )
        if self.chunk_sizes is not None:
            low, high = self.chunk_sizes
            if not 1 <= low <= high:
                raise ValueError(f"ServerConfig.chunk_sizes must be (min, max) with 1 <= min <= max, got {self.chunk_sizes!r}")

    def limit_for(self, group: RateGroup) -> int:
        """Requests allowed per window for one principal in one rate-limit group."""
        return {"chat": self.chat_limit, "management": self.management_limit, "info": self.info_limit}[group]


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    # `True == 1` would let a bool through an int choice; compare types as well.
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        raise ValueError(f"ServerConfig.{name} must be one of {choices!r}, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"ServerConfig.{name} must be a number >= 0, got {value!r}")
