"""A clean Coze Plus Agent API server on the standard library, from the spec page alone.

Written from ``agent-api.zh.md`` and ``READING.md`` only, by other hands than
``conformance/reference/``, and importing nothing from ``conformance``: a suite that
passes only servers sharing its authors' misreadings proves little. Wherever the page
leaves a choice this server takes the *other* legal reading from the reference server's
default (``conformance/reference/config.py``), all at once, so that the suite is shown to
accept the combination -- and every SHOULD it thereby breaks is declared in the kill
matrix (``INDEPENDENT_DECLARES`` in ``tools/killmatrix/``).

READING row by row ("Known ambiguities"; ref = the reference server's default):

=========================================  ===============================  ==========================================
READING row                                reference's choice               independent's choice
=========================================  ===============================  ==========================================
Auth per endpoint                          both modes everywhere            by class only: Bearer on /v1 and /v3, the
                                                                            ``session_key`` cookie on /api
                                                                            (declares AUTH-003, AUTH-004)
Conversation id in a chat request          ConversationID, conversation_id  body ``conversation_id`` only; the
                                           and ?conversation_id= all        others are type-checked, then ignored
                                           honoured                         (declares CHAT-CONV-002)
Id types                                   conversation/message/chat ids    conversation, message (and section)
                                           digit strings; bot_id a JSON     ids are JSON integers above 2**53, chat
                                           integer; requests' bot_id        ids ``chat_…`` strings; every bot_id of
                                           integer or string                an answer is a decimal string; a
                                                                            request's id only in
                                                                            its table's type (/v3/chat bot_id a
                                                                            string, /api bot_id and agent_id
                                                                            integers, conversation ids a string of
                                                                            digits or an integer)
``query`` and ``user_id`` in /v3/chat      user_id required, query ignored  same, because the table wins (no other
                                                                            reading)
additional_messages[].content_type         either key                       same, because it is the only reading
Content types                              all five accepted                ``file`` refused with 400 (no
                                                                            requirement); text, image,
                                                                            object_string, card accepted
Stream start events                        sent                             omitted (declares CHAT-SSE-005)
``event`` key in SSE payloads              on every payload                 on none (declares CHAT-SSE-016)
Error event                                ``conversation.error``           ``error`` with ``{"code","msg"}``
Errors on a streaming request              an error event                   mixed: errors found by the chat handler
                                                                            (fields, bot, messages) are a 200 event
                                                                            stream of ``error`` then ``done``;
                                                                            errors found before it (auth, rate
                                                                            limit, unparseable body, ``stream`` of
                                                                            the wrong type) are the envelope
Terminal event                             ``conversation.stream.done``     ``done``, payload ``{}`` (declares
                                                                            CHAT-SSE-013); also after an error event
After the terminal event                   closed at once                   kept open 1.5 s, then closed
Messages in a stream                       one message with deltas          a ``verbose`` message completed without
                                                                            deltas, the answer with deltas, then a
                                                                            ``follow_up`` message without deltas;
                                                                            the answer's items carry only the
                                                                            example's id, content and role
SSE line format                            LF, a space, no extras           BOM, ``retry:`` first, an ``event:ping``
                                                                            block without data (no event
                                                                            dispatched), CRLF, no space after the
                                                                            colon, an ``id:`` per event,
                                                                            every payload over several ``data:``
                                                                            lines, ``: keep-alive`` comments, each
                                                                            event sent in two writes cut between
                                                                            the CR and LF of its last line end,
                                                                            ``;charset=UTF-8`` (no space, upper case)
Payload of chat.created / in_progress /    a chat object                    created/in_progress never sent; a
failed                                                                      chat.failed (server stop only) is ``{}``
Usage                                      total = prompt + completion      same, because anything else breaks the
                                                                            SHOULD without being a reading
Success ``msg``, ``data``                  ``"success"``; cancel: no data   ``"ok"`` (declares ENV-002); cancel:
                                                                            ``"data": null`` (``cancel_data``; see
                                                                            below)
Error envelope                             ``"data": null``                 no ``data`` key (declares ERR-002)
HTTP status of errors                      equal to the code                HTTP 200 for every error, 401 and 429
                                                                            included (declares ERR-003)
Unknown bot / conversation id              404                              400
Another principal's bot or conversation    403                              404 (bots, a cancel; a chat naming
                                                                            another's conversation starts a new
                                                                            one, below)
Update vs online version                   /v1/bots/:id shows the draft     /v1/bots/:id shows the online version
                                                                            once published (the draft before)
Publish version                            1, then +1                       same, because it is the SHOULD and the
                                                                            only integer reading
Fields the API cannot set                  model absent, tools ``[]``       ``model: ""`` on both info endpoints,
                                                                            ``tools`` absent
Chat with a draft bot                      refused (400)                    answered with the draft
Chat with an unknown / another's           refused (404 / 403)              a new conversation with a new id
ConversationID
Cancel                                     chat.failed and the terminal     chat.completed (the partial answer),
                                           event on the stream; 0 after     then the close without a terminal event;
                                           the end; unknown 404             400 after the end; unknown 400
"per user" in the rate-limit table         the principal                    the chat group per principal and body
                                                                            ``user_id`` (the principal alone where
                                                                            there is none)
Rate-limit groups                          sliding log; every request       fixed window opened by a key's first
                                           counts; cancel in chat           request; error answers give their slot
                                                                            back; cancel not limited
``Retry-After``                            seconds                          an HTTP date
Timestamps                                 seconds                          same, because it is the only reading
/api/conversation/chat response            as asked by ``stream``           always an envelope (``stream: true`` too)
never-published online info; unknown       404; 404; 404; 1 MiB limit       400; 404; 400 for a wrong method on a
routes; wrong methods; body size limits                                     known path; bodies up to 4 MiB accepted
=========================================  ===============================  ==========================================

Outside the table (READING "Levels"): HTTP/1.0, every response delimited by the close (no
Content-Length, no chunking -- unlike uvicorn's HTTP/1.1); a create answered with HTTP 201
(the page gives no success status); JSON answers with every
non-ASCII character as a JSON escape (event streams in raw UTF-8); the 401's msg empty
(READING "Error envelope": msg a string); JSON keys in another
order than the page's (``data`` first, ``code`` last) and extra keys (``detail.logid`` in
every envelope, ``section_id`` and others in the verbose and follow-up message objects),
but the non-stream chat answer with exactly the page's six fields; error ``msg`` texts of its own; the
fake model's answer text of its own.

``dialect`` (constructor; default from the environment variable ``INDEPENDENT_DIALECT``,
else ``"doc"``; ``--dialect`` on the command line): ``"doc"`` is the page's API as above;
``"coze"`` is the Coze cloud v3 API as the official SDKs (cozepy, @coze/api) speak it, served
by ``coze_dialect.py`` with its own readings (its module docstring); ``"studio"`` is Coze
Studio / Coze Plus as ``docs/studio-contract.md`` fixes it, served by ``studio_dialect.py``
(its module docstring: the readings, and each principal's email, password and space id,
derived from its name). All dialects share the principals and their API keys; the coze
dialect takes only the Bearer API key, the studio dialect the API key on /v1 and /v3 and the
session key (a ``session_key`` cookie) on /api.

``cancel_data`` (constructor; default from the environment variable
``INDEPENDENT_CANCEL_DATA``, else ``"null"``): a successful cancel answers
``"data": null`` (``"null"``) or without a data key (``"absent"``, the reference's and the
page's form). READING "Success `msg`, `data`": "data MUST on success except cancel", so
both are legal.
"""

from __future__ import annotations

import argparse
import http.cookies
import json
import math
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: Principal name -> (api_key, session_key). Fixed development keys of a local test
#: server; never printed.
DEFAULT_PRINCIPALS: Mapping[str, tuple[str, str]] = {
    "alice": ("indep-api-key-alice-4b1d", "indep-session-alice-9c2e"),
    "bob": ("indep-api-key-bob-77a0", "indep-session-bob-03f5"),
}

#: The page's rate-limit table ("速率限制"): requests per minute per user and group.
#: Cancel is in no group (READING "Rate-limit groups": chat or none).
RATE_LIMITS: Mapping[str, int] = {"chat": 60, "management": 30, "info": 100}
WINDOW_SECONDS = 60

#: Bodies up to this size are accepted (READING: "a huge body may be accepted or refused
#: with a 4xx, never a 5xx"); above it they are refused with 400.
MAX_BODY = 4 * 1024 * 1024
#: Beyond this an oversized body is not even drained; the connection is dropped.
MAX_DRAIN = 64 * 1024 * 1024

#: The error codes of the page's table ("错误码"); every error answer uses one of them.
LISTED_CODES = frozenset({400, 401, 403, 404, 429, 500})

#: The content types this server takes: the message table's four. ``file`` (the
#: content-type table only) is refused -- READING "Content types": no requirement.
CONTENT_TYPES = frozenset({"text", "image", "object_string", "card"})

#: A comment line is sent after every this many events (READING "Levels": never fail a
#: server for SSE comments).
KEEPALIVE_EVERY = 3
#: The ``retry:`` line opening every stream, in milliseconds.
RETRY_MS = 3000
#: Seconds a stream stays open after its terminal event (READING "After the terminal
#: event": the client closes; it reads at most 1 s more).
KEEP_OPEN_SECONDS = 1.5

#: The follow-up suggestion message sent after every complete answer.
FOLLOW_UP = "还有什么可以帮您?"

SUCCESS_MSG = "ok"  # legal SHOULD deviation from "success" (READING "Success msg, data")
TERMINAL_EVENT = "done"  # the EventSource example's name (READING "Terminal event")
ERROR_EVENT = "error"  # the error section's name (READING "Error event")
CANCEL_DATA_CHOICES = ("null", "absent")
CANCEL_DATA_ENV = "INDEPENDENT_CANCEL_DATA"
DIALECT_CHOICES = ("doc", "coze", "studio")
DIALECT_ENV = "INDEPENDENT_DIALECT"


class ApiError(Exception):
    """An error, answered with the page's envelope less ``data`` and HTTP status 200."""

    def __init__(self, code: int, msg: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity by default; they are not JSON.
    raise ValueError(f"not JSON: {name}")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body. Python ints are exact, so 19-digit ids never pass a float."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "request body must be a JSON object")
    return value


def dump_json(value: Any, indent: str | None = None, *, ascii_only: bool = False) -> bytes:
    """JSON, compact or indented (multi-line ``data:``): raw UTF-8, or every non-ASCII
    character as a JSON escape (``ascii_only``, and whenever a string holds a lone
    surrogate)."""
    separators = (",", ":") if indent is None else (",", ": ")
    if not ascii_only:
        try:
            return json.dumps(value, ensure_ascii=False, separators=separators, indent=indent).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return json.dumps(value, separators=separators, indent=indent).encode("ascii")


# --------------------------------------------------------------------------- fields
# Types follow the page's request tables; a wrong type on a documented field is 400.


def _missing(key: str) -> ApiError:
    return ApiError(400, f"missing required field {key}")


def _wrong(key: str, expected: str) -> ApiError:
    return ApiError(400, f"invalid {key}: expected {expected}")


def opt_str(body: Mapping[str, Any], key: str) -> str | None:
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, str):
        raise _wrong(key, "a string")
    return value


def req_str(body: Mapping[str, Any], key: str) -> str:
    value = opt_str(body, key)
    if value is None:
        raise _missing(key)
    return value


def opt_bool(body: Mapping[str, Any], key: str) -> bool | None:
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, bool):
        raise _wrong(key, "a boolean")
    return value


def opt_object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, dict):
        raise _wrong(key, "an object")
    return value


def req_int64(body: Mapping[str, Any], key: str) -> int:
    """An ``int64`` field (``/api/*`` tables): a JSON integer only, never a string."""
    if key not in body:
        raise _missing(key)
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(key, "an integer")
    return value


def id_from_text(text: str, key: str) -> int:
    """A decimal id from a query, a path or a string field; at most 20 digits."""
    if not text or len(text) > 20 or not text.isascii() or not text.isdigit():
        raise ApiError(400, f"invalid {key}")
    return int(text)


def req_chat_bot_id(body: Mapping[str, Any]) -> int:
    # The chat table: "JSON 中以字符串格式传输". Only the string form is taken (READING
    # "Id types": requests send each id in the type its table gives).
    if "bot_id" not in body:
        raise _missing("bot_id")
    value = body["bot_id"]
    if not isinstance(value, str):
        raise _wrong("bot_id", "a decimal string")
    return id_from_text(value, "bot_id")


def conversation_ref(body: Mapping[str, Any], key: str) -> int | str | None:
    """A conversation id of a request: digits (string) or a JSON integer -> the int; any
    other non-empty string is returned as it is (it names no conversation of this server)."""
    if key not in body:
        return None
    value = body[key]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise _wrong(key, "a string")
    if not value.strip():
        raise ApiError(400, f"invalid {key}: empty")
    if value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return value


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    content_type: str


def parse_messages(body: Mapping[str, Any]) -> list[Message]:
    """``additional_messages``: role, content and ``content_type`` or ``type`` (READING)."""
    if "additional_messages" not in body:
        return []
    items = body["additional_messages"]
    if not isinstance(items, list):
        raise _wrong("additional_messages", "an array")
    messages = []
    for index, item in enumerate(items):
        where = f"additional_messages[{index}]"
        if not isinstance(item, dict):
            raise _wrong(where, "an object")
        role = opt_str(item, "role")
        if role is None:
            raise _missing(f"{where}.role")
        if role not in ("user", "assistant"):
            raise _wrong(f"{where}.role", "user or assistant")
        content = opt_str(item, "content")
        if content is None:
            raise _missing(f"{where}.content")
        # The table names the key content_type; the multimodal example uses type.
        kind = opt_str(item, "content_type")
        if kind is None:
            kind = opt_str(item, "type")
        if kind is None:
            raise _missing(f"{where}.content_type")
        if kind not in CONTENT_TYPES:
            raise _wrong(f"{where}.content_type", "one of " + "/".join(sorted(CONTENT_TYPES)))
        messages.append(Message(role, content, kind))
    return messages


# --------------------------------------------------------------------------- ids


def new_id() -> int:
    """19 decimal digits, above 2**53 and within int64: a float would corrupt it."""
    low = 10**18
    return low + secrets.randbelow(2**63 - 1 - low)


def new_chat_id() -> str:
    """Chat ids are strings, unlike the integer conversation and message ids: READING "Id
    types" lets each kind be either, independently."""
    return f"chat_{secrets.token_hex(8)}"


def now_seconds() -> int:
    # Timestamps in seconds since the epoch, like the page's 1704067200.
    return int(time.time())


def logid() -> str:
    return secrets.token_hex(12)


# --------------------------------------------------------------------------- store


@dataclass
class Bot:
    bot_id: int
    owner: str
    name: str
    description: str
    icon_url: str
    prompt: str
    model: str | None
    created_at: int
    updated_at: int
    version: int = 0
    published_at: int | None = None
    #: The online version: a snapshot of the draft taken at publish time.
    online: dict[str, Any] | None = None


@dataclass
class StreamControl:
    """The handle of one in-flight stream; setting ``halt`` ends it promptly."""

    halt: threading.Event = field(default_factory=threading.Event)
    reason: str = ""


@dataclass
class Conversation:
    conversation_id: int
    owner: str
    bot_id: int
    section_id: int = field(default_factory=new_id)
    history: list[Message] = field(default_factory=list)


class Store:
    """Bots, conversations and in-flight streams, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bots: dict[int, Bot] = {}
        self.conversations: dict[int, Conversation] = {}
        self.controls: dict[int, tuple[int, StreamControl]] = {}
        self.closing = False

    def bot(self, bot_id: int, principal: str) -> Bot:
        bot = self.bots.get(bot_id)
        if bot is None:
            raise ApiError(400, "invalid bot_id")  # unknown id: 400 (READING)
        if bot.owner != principal:
            raise ApiError(404, "bot not found")  # another's: 404, not 403 (READING)
        return bot

    def conversation(self, ref: int | str, principal: str) -> Conversation:
        conversation = self.conversations.get(ref) if isinstance(ref, int) else None
        if conversation is None:
            raise ApiError(400, "invalid conversation_id")
        if conversation.owner != principal:
            raise ApiError(404, "conversation not found")
        return conversation

    def visible(self, ref: int | str, principal: str) -> Conversation | None:
        conversation = self.conversations.get(ref) if isinstance(ref, int) else None
        return conversation if conversation is not None and conversation.owner == principal else None

    def new_conversation(self, principal: str, bot_id: int) -> Conversation:
        conversation_id = new_id()
        while conversation_id in self.conversations:
            conversation_id = new_id()
        conversation = Conversation(conversation_id, principal, bot_id)
        self.conversations[conversation_id] = conversation
        return conversation

    def register(self, conversation_id: int) -> tuple[int, StreamControl]:
        control = StreamControl()
        with self.lock:
            if self.closing:  # a stream accepted while the server stops ends at once
                control.reason = "server stopped"
                control.halt.set()
            key = id(control)
            self.controls[key] = (conversation_id, control)
        return key, control

    def unregister(self, key: int) -> None:
        with self.lock:
            self.controls.pop(key, None)

    def halt(self, reason: str, conversation_id: int | None = None, *, closing: bool = False) -> int:
        """Halt the in-flight streams of one conversation (or all); return how many.
        ``closing`` also halts every stream registered from now on."""
        with self.lock:
            self.closing = self.closing or closing
            chosen = [c for conv, c in self.controls.values()
                      if conversation_id is None or conv == conversation_id]
        for control in chosen:
            control.reason = reason
            control.halt.set()
        return len(chosen)


# --------------------------------------------------------------------------- rate limits


class FixedWindowLimiter:
    """The page's per-user limits as fixed windows (the reference uses a sliding log).

    A key's window opens at its first request (on a whole second, so the reset instant is
    an exact HTTP date) and lasts the window; the count resets when it ends. ``refund``
    gives a request's slot back (error answers do not count here).
    """

    def __init__(self, limits: Mapping[str, int], window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._limits = dict(limits)
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def hit(self, key: str, group: str) -> float | None:
        """Count one request; return the epoch second the window resets if over the limit
        (a refused request takes no slot)."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.get((key, group), (math.floor(now), 0))
            if now >= start + self._window:
                start, count = math.floor(now), 0
            if count >= self._limits[group]:
                self._windows[(key, group)] = (start, count)
                return start + self._window
            self._windows[(key, group)] = (start, count + 1)
        return None

    def refund(self, key: str, group: str) -> None:
        """Give back the slot of a request of the current window."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.get((key, group), (now, 0))
            if count > 0 and now < start + self._window:
                self._windows[(key, group)] = (start, count - 1)


# --------------------------------------------------------------------------- fake model


def compose_answer(history: list[Message]) -> list[str]:
    """The answer's tokens (>= 5), derived from the history so a continued conversation
    answers differently from a new one."""
    users = [m for m in history if m.role == "user"]
    last = users[-1].content if users else ""
    excerpt = last[:24] or "(空)"
    return ["收到", f"第{len(users)}个", "问题", ":「", excerpt, "」,", f"上下文共{len(history)}条", "消息", "。"]


def usage_of(history: list[Message], completion: int) -> dict[str, int]:
    prompt = sum(len(m.content) for m in history) + 1
    # Keys in another order than the page's example, on purpose.
    return {"total_tokens": prompt + completion, "completion_tokens": completion, "prompt_tokens": prompt}


# --------------------------------------------------------------------------- SSE


class SseWriter:
    """The stream's framing (READING "SSE line format"): a BOM and ``retry:`` first, CRLF
    line ends, no space after the colon, an ``id:`` per event, every payload over several
    ``data:`` lines (indented JSON: the lines joined with LF are the JSON again), and a
    comment after every KEEPALIVE_EVERY events."""

    def __init__(self) -> None:
        self.count = 0

    @staticmethod
    def preamble() -> bytes:
        # Then a heartbeat block without a data line: its data buffer stays empty, so WHATWG
        # dispatches no event for it and the stream's first event is still the next one.
        # (A ``data:`` line, even an empty one, would dispatch a ``ping`` with data "".)
        return "\ufeff".encode() + b"retry:" + str(RETRY_MS).encode() + b"\r\n\r\n" + HEARTBEAT

    def event(self, name: str, payload: Mapping[str, Any]) -> bytes:
        self.count += 1
        # Tab-indented: no data line starts with the space a reader would strip.
        lines = dump_json(payload, indent="\t").split(b"\n")
        out = b"id:" + str(self.count).encode() + b"\r\nevent:" + name.encode("ascii") + b"\r\n"
        out += b"".join(b"data:" + line + b"\r\n" for line in lines) + b"\r\n"
        if self.count % KEEPALIVE_EVERY == 0:
            out += b": keep-alive\r\n\r\n"
        return out


HEARTBEAT = b"event:ping\r\n\r\n"


@dataclass(frozen=True)
class ChatRun:
    """One validated chat request, ready to answer."""

    principal: str
    bot: Bot
    conversation: Conversation
    new_messages: list[Message]
    stream: bool


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    group: str | None  # the rate-limit group; None: not limited
    action: str  # the handler method's name
    json_body: bool
    #: The auth mode of the endpoint's class (READING "Auth per endpoint"): "bearer" on
    #: /v1 and /v3 (OpenAPI), "cookie" on /api (WebAPI); only that mode is accepted.
    mode: str


ROUTES: tuple[Route, ...] = (
    Route("POST", re.compile(r"/v3/chat"), "chat", "chat_v3", True, "bearer"),
    Route("POST", re.compile(r"/v3/chat/cancel"), None, "chat_cancel", True, "bearer"),
    Route("POST", re.compile(r"/api/conversation/chat"), "chat", "conversation_chat", True, "cookie"),
    Route("POST", re.compile(r"/api/draftbot/create"), "management", "draftbot_create", True, "cookie"),
    Route("POST", re.compile(r"/api/draftbot/update_display_info"), "management", "draftbot_update", True, "cookie"),
    Route("POST", re.compile(r"/api/draftbot/publish"), "management", "draftbot_publish", True, "cookie"),
    Route("GET", re.compile(r"/v1/bot/get_online_info"), "info", "online_info", False, "bearer"),
    Route("GET", re.compile(r"/v1/bots/([^/]+)"), "info", "bot_get", False, "bearer"),
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: IndependentServer


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, every body delimited by the close.
    protocol_version = "HTTP/1.0"
    server_version = "IndependentCoze/1.0"
    sys_version = ""
    timeout = 30  # a stalled client cannot hold a thread forever
    server: _Server
    #: Whether the answer of this request was an error (its rate-limit slot is given back).
    answered_error = False

    # ------------------------------------------------------------ plumbing

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib signature
        pass  # quiet: a test server; request lines could carry ids users paste into bugs

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, unknown method …) get the envelope
        # too, with a listed code.
        mapped = code if code in LISTED_CODES else 400
        self.close_connection = True
        self._send_envelope_error(ApiError(mapped, message or "bad request"))

    def _send_json(self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        body = dump_json(payload, ascii_only=True)  # JSON escapes, not raw UTF-8
        self.send_response(status)
        # RFC 9110: no whitespace is needed before a parameter, and charset is case-insensitive.
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_envelope_error(self, error: ApiError) -> None:
        # No data key (READING "Error envelope": absent is accepted) and HTTP 200 (READING
        # "HTTP status of errors": the body code decides), 401 and 429 included.
        self.answered_error = True
        self._send_json(200, {"detail": {"logid": logid()}, "msg": error.msg, "code": error.code}, error.headers)

    def _send_ok(self, data: Any, *, with_data: bool = True) -> None:
        # Keys in another order than the page's, and an extra "detail" (READING "Levels").
        payload: dict[str, Any] = {"data": data} if with_data else {}
        payload.update({"detail": {"logid": logid()}, "msg": SUCCESS_MSG, "code": 0})
        # 201 Created for a create: the page fixes no success status (READING "Error
        # envelope": a response is an error when status >= 400 or code != 0).
        self._send_json(201 if self.path.startswith("/api/draftbot/create") else 200, payload)

    def _read_body(self) -> tuple[bytes, bool]:
        """Read the whole request body; return (body, oversized). An oversized body is
        drained so the client can read the 400 instead of a reset."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        text = self.headers.get("Content-Length")
        if text is None:
            return b"", False
        try:
            length = int(text)
        except ValueError:
            raise ApiError(400, "invalid Content-Length") from None
        if length < 0:
            raise ApiError(400, "invalid Content-Length")
        if length > MAX_BODY:
            if length > MAX_DRAIN:
                self.close_connection = True
                raise ApiError(400, "request body too large")
            self._drain(length)
            return b"", True
        return self.rfile.read(length), False

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)

    def _read_chunked(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ApiError(400, "malformed chunked body") from None
            if chunk == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(parts), size > MAX_BODY
            size += chunk
            if size > MAX_DRAIN:
                raise ApiError(400, "request body too large")
            data = self.rfile.read(chunk)
            if size <= MAX_BODY:
                parts.append(data)
            self.rfile.readline(8)

    # ------------------------------------------------------------ dispatch

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _dispatch(self) -> None:
        try:
            self._dispatch_or_raise()
        except ApiError as error:
            self._send_envelope_error(error)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug of this server, never of the input: still the envelope
            self._send_envelope_error(ApiError(500, "internal server error"))

    def _dispatch_or_raise(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body, oversized = self._read_body()
        known_path = False
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            known_path = known_path or match is not None
            if match is not None and route.method == self.command:
                break
        else:
            if known_path:  # a wrong method on a documented path: bad request (no requirement)
                raise ApiError(400, f"method {self.command} not allowed here")
            raise ApiError(404, "no such route")
        owner = self.server.owner
        principal = owner._authenticate(self.headers, route.mode)
        limit_key = None
        if route.group is not None:
            limit_key = owner._limit_key(principal, route.group, body)
            owner._rate_limit(limit_key, route.group)
        try:
            fields: dict[str, Any] = {}
            if route.json_body:
                if oversized:
                    raise ApiError(400, "request body too large")
                fields = parse_json_object(body)
            getattr(self, route.action)(principal, fields, query, match.groups())
        except ApiError:
            self.answered_error = True
            raise
        finally:
            if limit_key is not None and route.group is not None and self.answered_error:
                owner._refund(limit_key, route.group)  # only successes count here

    # ------------------------------------------------------------ bots

    def draftbot_create(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                        path: tuple[str, ...]) -> None:
        name = req_str(body, "name")
        description = opt_str(body, "description") or ""
        icon_url = opt_str(body, "icon_url") or ""
        prompt = opt_str(body, "prompt") or ""
        model = opt_str(body, "model")
        store = self.server.owner.store
        stamp = now_seconds()
        with store.lock:
            bot_id = new_id()
            while bot_id in store.bots:
                bot_id = new_id()
            bot = Bot(bot_id, principal, name, description, icon_url, prompt, model, stamp, stamp)
            store.bots[bot_id] = bot
            data = {"updated_at": bot.updated_at, "created_at": bot.created_at, "status": "draft",
                    "icon_url": bot.icon_url, "description": bot.description, "name": bot.name,
                    "bot_id": str(bot.bot_id)}
        self._send_ok(data)

    def draftbot_update(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                        path: tuple[str, ...]) -> None:
        bot_id = req_int64(body, "bot_id")
        changes = {key: value for key in ("name", "description", "icon_url")
                   if (value := opt_str(body, key)) is not None}
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)
            for key, value in changes.items():
                setattr(bot, key, value)
            bot.updated_at = now_seconds()
            # The update response echoes the new values (READING "Update vs online version").
            data = {"updated_at": bot.updated_at, "icon_url": bot.icon_url, "description": bot.description,
                    "name": bot.name, "bot_id": str(bot.bot_id)}
        self._send_ok(data)

    def draftbot_publish(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                         path: tuple[str, ...]) -> None:
        bot_id = req_int64(body, "bot_id")
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)
            stamp = now_seconds()
            bot.version += 1  # 1, then 2, … (READING "Publish version")
            bot.published_at = bot.updated_at = stamp
            bot.online = {"name": bot.name, "description": bot.description, "icon_url": bot.icon_url,
                          "model": bot.model, "prompt": bot.prompt, "updated_at": stamp}
            data = {"published_at": bot.published_at, "status": "online", "version": bot.version,
                    "bot_id": str(bot.bot_id)}
        self._send_ok(data)

    def online_info(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                    path: tuple[str, ...]) -> None:
        values = query.get("bot_id")
        if not values:
            raise _missing("bot_id")
        bot_id = id_from_text(values[0], "bot_id")
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)
            if bot.online is None:
                # Never published: no online version exists (READING: no requirement).
                raise ApiError(400, "bot is not published")
            snapshot = bot.online
            # model "" when never set (READING "Fields the API cannot set": empty or absent).
            data = {"published_at": bot.published_at, "model": snapshot["model"] or "", "status": "online",
                    "version": bot.version, "icon_url": snapshot["icon_url"],
                    "description": snapshot["description"], "name": snapshot["name"], "bot_id": str(bot.bot_id)}
        self._send_ok(data)

    def bot_get(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                path: tuple[str, ...]) -> None:
        bot_id = id_from_text(path[0], "bot_id")
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)
            # The online version once published, the draft before (READING "Update vs
            # online version": /v1/bots/:id need not show an update before the publish).
            shown: dict[str, Any] = bot.online if bot.online is not None else {
                "name": bot.name, "description": bot.description, "icon_url": bot.icon_url,
                "model": bot.model, "prompt": bot.prompt, "updated_at": bot.updated_at}
            data: dict[str, Any] = {"published_at": bot.published_at} if bot.published_at is not None else {}
            # tools absent: the API cannot set them (READING "Fields the API cannot set").
            data.update({"updated_at": shown["updated_at"], "created_at": bot.created_at,
                         "prompt": shown["prompt"], "model": shown["model"] or "",
                         "status": "online" if bot.online is not None else "draft", "version": bot.version,
                         "icon_url": shown["icon_url"], "description": shown["description"],
                         "name": shown["name"], "bot_id": str(bot.bot_id)})
        self._send_ok(data)

    # ------------------------------------------------------------ chat

    def chat_v3(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                path: tuple[str, ...]) -> None:
        # ``stream`` of a wrong type is answered with the envelope; every later error of a
        # stream: true request with an error event (READING "Errors on a streaming request").
        stream = opt_bool(body, "stream") or False
        try:
            bot_id = req_chat_bot_id(body)
            req_str(body, "user_id")  # required by the table; the limiter keys on it
            # READING "Conversation id in a chat request": only the body's conversation_id
            # is honoured; ConversationID and ?conversation_id= are checked, then ignored.
            opt_str(body, "ConversationID")
            for value in query.get("conversation_id", []):
                if not value.strip():
                    raise ApiError(400, "invalid conversation_id: empty")
            ref = conversation_ref(body, "conversation_id")
            messages = parse_messages(body)
            for key in ("custom_variables", "meta_data", "extra_params"):
                opt_object(body, key)
            run = self._prepare(principal, bot_id, ref, messages, stream)
        except ApiError as error:
            if not stream:
                raise
            self._error_stream(error)
            return
        self._chat(run)

    def conversation_chat(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                          path: tuple[str, ...]) -> None:
        # Always answered with an envelope, stream: true too (READING "/api/conversation/chat
        # response": an envelope or an event stream).
        agent_id = req_int64(body, "agent_id")
        text = req_str(body, "query")
        ref = conversation_ref(body, "conversation_id")
        opt_bool(body, "stream")
        messages = [*parse_messages(body), Message("user", text, "text")]
        self._chat(self._prepare(principal, agent_id, ref, messages, False))

    def _prepare(self, principal: str, bot_id: int, ref: int | str | None,
                 messages: list[Message], stream: bool) -> ChatRun:
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)  # a draft bot chats with its draft (READING)
            conversation = store.visible(ref, principal) if ref is not None else None
            if conversation is None:
                # None given, or one this principal cannot see (unknown or another's): a new
                # conversation with a new id (READING "Chat with an unknown / another
                # principal's ConversationID").
                conversation = store.new_conversation(principal, bot_id)
        return ChatRun(principal, bot, conversation, messages, stream)

    def _chat(self, run: ChatRun) -> None:
        if run.stream:
            self._chat_stream(run)
            return
        store = self.server.owner.store
        with store.lock:
            history = [*run.conversation.history, *run.new_messages]
            answer = "".join(compose_answer(history))
            run.conversation.history = [*history, Message("assistant", answer, "text")]
        # Exactly the page's "非流式响应" fields, in another order.
        data = {"created_at": now_seconds(), "type": "answer", "role": "assistant", "content": answer,
                "id": new_id(), "conversation_id": run.conversation.conversation_id}
        self._send_ok(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

    def _write_split(self, chunk: bytes) -> None:
        """Write an event in two sends cut between the CR and the LF of its last line end, so
        a reader may see the CR end one read and the LF begin the next (one line end, not
        two: WHATWG)."""
        cut = len(chunk) - 1 if chunk.endswith(b"\r\n") else len(chunk)
        self.wfile.write(chunk[:cut])
        self.wfile.flush()
        time.sleep(0.001)  # let the first send leave before the second
        self.wfile.write(chunk[cut:])

    def _error_stream(self, error: ApiError) -> None:
        """An error of a stream: true chat: ``error`` with the error section's payload,
        then the terminal event (READING "Terminal event": if one is sent it is last)."""
        self.answered_error = True
        writer = SseWriter()
        try:
            self._start_stream()
            self.wfile.write(writer.preamble() + writer.event(ERROR_EVENT, {"msg": error.msg, "code": error.code})
                             + writer.event(TERMINAL_EVENT, {}))
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _chat_stream(self, run: ChatRun) -> None:
        owner = self.server.owner
        conversation_id = run.conversation.conversation_id
        key, control = owner.store.register(conversation_id)
        chat_id = new_chat_id()
        with owner.store.lock:
            history = [*run.conversation.history, *run.new_messages]
        sent: list[str] = []
        writer = SseWriter()
        ended = False

        def end() -> None:
            # The chat has ended: its turn joins the history, and a cancel from now on
            # finds nothing running.
            nonlocal ended
            if not ended:
                ended = True
                owner.store.unregister(key)
                with owner.store.lock:
                    run.conversation.history = [*run.conversation.history, *run.new_messages,
                                                Message("assistant", "".join(sent), "text")]

        try:
            self._start_stream()
            self.wfile.write(writer.preamble())
            for name, payload in self._events(run, chat_id, history, control, sent):
                if name == TERMINAL_EVENT:
                    end()
                self._write_split(writer.event(name, payload))
            self.wfile.flush()
            if not control.halt.is_set():
                # READING "After the terminal event": kept open; the client closes.
                control.halt.wait(KEEP_OPEN_SECONDS)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            end()

    def _events(self, run: ChatRun, chat_id: str, history: list[Message], control: StreamControl,
                sent: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The stream: a verbose message without deltas, the answer's deltas and completed
        message, chat.completed (on a cancel too: the partial answer) and ``done``. No start
        events, no ``event`` key in any payload."""
        conversation = run.conversation
        delay = self.server.owner.token_delay

        def item(message_id: int, kind: str, content: str, content_type: str) -> dict[str, Any]:
            if kind == "answer":
                # The answer's items carry exactly the page's example keys (id, content, role).
                return {"role": "assistant", "content": content, "id": message_id}
            return {"section_id": conversation.section_id, "bot_id": str(run.bot.bot_id), "role": "assistant",
                    "type": kind, "content_type": content_type, "content": content,
                    "conversation_id": conversation.conversation_id, "chat_id": chat_id, "id": message_id}

        verbose = json.dumps({"msg_type": "generate_answer_start", "data": ""}, separators=(",", ":"))
        yield "conversation.message.completed", {"message_item": item(new_id(), "verbose", verbose, "object_string")}
        answer_id = new_id()
        for token in compose_answer(history):
            if control.halt.wait(delay) if delay > 0 else control.halt.is_set():
                break
            sent.append(token)
            yield "conversation.message.delta", {"message_item": item(answer_id, "answer", token, "text")}
        content = "".join(sent)
        if sent:
            # Also on cancel: the deltas sent so far join to the completed content.
            yield "conversation.message.completed", {"message_item": item(answer_id, "answer", content, "text")}
        if not control.halt.is_set():
            # A third message after the answer, completed without deltas (READING "Messages in
            # a stream": several messages per chat are legal).
            yield "conversation.message.completed", {"message_item": item(new_id(), "follow_up", FOLLOW_UP, "text")}
        if control.halt.is_set() and control.reason != "cancel":
            yield "conversation.chat.failed", {}  # the server stops: a bare chat.failed
        else:
            # Completed, or cancelled: READING "Cancel" allows chat.completed after a cancel.
            record = {"usage": usage_of(history, len(sent)), "bot_id": str(run.bot.bot_id), "id": chat_id,
                      "conversation_id": conversation.conversation_id}
            yield "conversation.chat.completed", {"run_record_item": record}
        if control.reason != "cancel":
            # A cancelled stream just closes after chat.completed (READING "Cancel": it ends
            # with a terminal event or the close).
            yield TERMINAL_EVENT, {}

    def chat_cancel(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                    path: tuple[str, ...]) -> None:
        ref = conversation_ref(body, "conversation_id")
        if ref is None:
            raise _missing("conversation_id")
        store = self.server.owner.store
        with store.lock:
            conversation = store.conversation(ref, principal)
        if not store.halt("cancel", conversation.conversation_id):
            # Nothing running (the chat ended): an error (READING "Cancel": 0 or an error).
            raise ApiError(400, "no chat in progress in this conversation")
        # The page's cancel example has no data; this server answers data null (or, with
        # cancel_data="absent", no data key).
        self._send_ok(None, with_data=self.server.owner.cancel_data == "null")

# --------------------------------------------------------------------------- server


class IndependentServer:
    """The clean server on 127.0.0.1, an ephemeral port, in a background thread.

    ``principals`` maps a principal's name to its (api_key, session_key); two principals
    with fixed development keys by default. ``token_delay`` is the fake model's pause
    between tokens, in seconds. ``rate_limits=False`` turns the limiter off.
    ``cancel_data``: a successful cancel's ``"data": null`` ("null") or no data key
    ("absent"); None takes the environment variable INDEPENDENT_CANCEL_DATA, else "null".
    ``dialect``: "doc" (the page's API), "coze" (the Coze cloud v3 API, ``coze_dialect.py``)
    or "studio" (Coze Studio / Coze Plus, ``studio_dialect.py``);
    None takes the environment variable INDEPENDENT_DIALECT, else "doc".
    """

    def __init__(self, principals: Mapping[str, tuple[str, str]] | None = None,
                 token_delay: float = 0.01, rate_limits: bool = True, cancel_data: str | None = None,
                 dialect: str | None = None) -> None:
        chosen = dict(DEFAULT_PRINCIPALS if principals is None else principals)
        keys = [key for pair in chosen.values() for key in pair]
        if not chosen or any(not isinstance(k, str) or not k for k in keys) or len(set(keys)) != len(keys):
            raise ValueError("principals need non-empty, distinct api and session keys")
        if not token_delay >= 0:
            raise ValueError("token_delay must be >= 0 seconds")
        if cancel_data is None:
            cancel_data = os.environ.get(CANCEL_DATA_ENV) or "null"
        if cancel_data not in CANCEL_DATA_CHOICES:
            raise ValueError(f"cancel_data must be one of {CANCEL_DATA_CHOICES}, got {cancel_data!r}")
        self.cancel_data = cancel_data
        if dialect is None:
            dialect = os.environ.get(DIALECT_ENV) or "doc"
        if dialect not in DIALECT_CHOICES:
            raise ValueError(f"dialect must be one of {DIALECT_CHOICES}, got {dialect!r}")
        self.dialect = dialect
        #: The coze dialect's bots, conversations and chats (None in the other dialects).
        self.coze_store: Any = None
        if dialect == "coze":
            from .coze_dialect import CozeStore  # noqa: PLC0415 -- the module imports this one

            self.coze_store = CozeStore()
        #: The studio dialect's accounts, credentials, bots and chats (None in the others).
        self.studio_store: Any = None
        if dialect == "studio":
            from .studio_dialect import StudioStore  # noqa: PLC0415 -- the module imports this one

            self.studio_store = StudioStore(chosen)
        self._principals = chosen
        self.token_delay = float(token_delay)
        self.store = Store()
        self.limiter = FixedWindowLimiter(RATE_LIMITS) if rate_limits else None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def principals(self) -> dict[str, tuple[str, str]]:
        """Principal name -> (api_key, session_key), in the order given."""
        return dict(self._principals)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def start(self) -> IndependentServer:
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        handler: type[BaseHTTPRequestHandler] = _RequestHandler
        if self.dialect == "coze":
            from .coze_dialect import CozeRequestHandler  # noqa: PLC0415 -- the module imports this one

            handler = CozeRequestHandler
        elif self.dialect == "studio":
            from .studio_dialect import StudioRequestHandler  # noqa: PLC0415 -- the module imports this one

            handler = StudioRequestHandler
        httpd = _Server(("127.0.0.1", 0), handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="independent-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: open streams are halted and open connections shut down."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.store.halt("server stopped", closing=True)
        if self.coze_store is not None:
            self.coze_store.halt_all()
        if self.studio_store is not None:
            self.studio_store.halt_all()
        httpd.shutdown()
        # A grace for answers being written and halted streams' last events; then the
        # connections still open (idle or stalled clients) are shut.
        deadline = time.monotonic() + 0.5
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._connections_lock:
            open_now = list(self._connections)
        for connection in open_now:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> IndependentServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------ used by the handler

    def _track(self, connection: socket.socket, opened: bool) -> None:
        with self._connections_lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _authenticate(self, headers: Any, mode: str) -> str:
        """Only the mode of the endpoint's class: a Bearer API key on /v1 and /v3, the
        ``session_key`` cookie on /api (READING "Auth per endpoint"); the other mode's
        credential is not looked at."""
        if mode == "bearer":
            authorization = headers.get("Authorization")
            scheme, _, token = (authorization or "").strip().partition(" ")
            principal = self._principal_for(token.strip(), 0) if scheme.lower() == "bearer" else ""
        else:
            session = self._session_cookie(headers.get_all("Cookie") or [])
            principal = self._principal_for(session, 1) if session is not None else ""
        if not principal:
            challenge = "Bearer" if mode == "bearer" else 'Cookie name="session_key"'
            # An empty msg: READING "Error envelope" asks for a string, any string.
            raise ApiError(401, "", {"WWW-Authenticate": challenge})
        return principal

    @staticmethod
    def _session_cookie(lines: list[str]) -> str | None:
        for line in lines:
            jar = http.cookies.SimpleCookie()
            try:
                jar.load(line)
            except http.cookies.CookieError:
                continue
            if "session_key" in jar:
                return jar["session_key"].value
        return None

    def _principal_for(self, secret: str, slot: int) -> str:
        for name, pair in self._principals.items():
            if secret and secrets.compare_digest(pair[slot].encode(), secret.encode("utf-8", "replace")):
                return name
        return ""

    @staticmethod
    def _limit_key(principal: str, group: str, body: bytes) -> str:
        """The limiter's key (READING "per user"): the chat group per principal and the
        body's ``user_id`` when it has a string one; else, and in the other groups, the
        principal."""
        if group == "chat" and body:
            try:
                user_id = json.loads(body.decode("utf-8")).get("user_id")
            except (UnicodeDecodeError, ValueError, RecursionError, AttributeError):
                user_id = None
            if isinstance(user_id, str):
                return f"{principal}\x00{user_id}"
        return principal

    def _rate_limit(self, key: str, group: str) -> None:
        if self.limiter is None:
            return
        reset = self.limiter.hit(key, group)
        if reset is not None:
            raise ApiError(429, "too many requests", {"Retry-After": formatdate(reset, usegmt=True)})

    def _refund(self, key: str, group: str) -> None:
        if self.limiter is not None:
            self.limiter.refund(key, group)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: ``python -m independent.server`` (from ``tests/``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--dialect", choices=DIALECT_CHOICES, default=None,
                        help=f"the API spoken (default: ${DIALECT_ENV}, else doc)")
    args = parser.parse_args(argv)
    with IndependentServer(token_delay=args.token_delay, rate_limits=not args.no_rate_limits,
                           dialect=args.dialect) as server:
        # The keys are in DEFAULT_PRINCIPALS; they are not printed.
        print(f"serving the {server.dialect} dialect on {server.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
