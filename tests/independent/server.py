"""A clean Coze Plus Agent API server on the standard library, from the spec page alone.

Written from ``agent-api.zh.md`` and ``READING.md`` only, by other hands than
``conformance/reference/`` and importing nothing from ``conformance`` (issue 7, item 3):
a suite that passes only servers sharing its authors' misreadings proves little. Wherever
READING.md allows a choice this server takes the *other* legal reading, so the suite is
exercised on it:

* wire: ``http.server`` speaking HTTP/1.0, every response delimited by connection close
  (no Content-Length, ``Connection: close``) -- unlike uvicorn's chunked HTTP/1.1;
* ids: conversation / message / chat ids are strings (``conv_7f3a…``); bot ids are
  19-digit JSON integers above 2**53 (READING "Id types");
* SSE: no start events (READING "Stream start events"), CRLF line ends, no space after
  the colon, ``: keep-alive`` comments, payload keys in another order than the page's
  example, a completed ``verbose`` message without deltas before the answer (READING
  "Messages in a stream"), ``Content-Type: text/event-stream; charset=utf-8``;
* errors: another principal's bot or conversation is 404 (not 403), unknown ids are 400
  (READING "Unknown bot / conversation id"), ``{"code":N,"msg":…,"data":null}`` with HTTP
  status N; success ``msg`` is ``"ok"`` -- a legal deviation from the SHOULD ``"success"``
  (READING "Success msg, data");
* auth: Bearer and the ``session_key`` cookie both accepted on every endpoint (READING
  "Auth per endpoint": the other mode is SHOULD);
* rate limits: the page's table as a FIXED window per principal and group, 429 with
  ``Retry-After`` as an HTTP date (READING "Retry-After", "Rate-limit groups").
"""

from __future__ import annotations

import argparse
import http.cookies
import json
import math
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
#: Cancel is counted with chat (READING "Rate-limit groups": chat or none).
RATE_LIMITS: Mapping[str, int] = {"chat": 60, "management": 30, "info": 100}
WINDOW_SECONDS = 60

#: Bodies above this size are refused with 400 (READING: "a huge body may be accepted or
#: refused with a 4xx, never a 5xx").
MAX_BODY = 1024 * 1024
#: Beyond this an oversized body is not even drained; the connection is dropped.
MAX_DRAIN = 64 * 1024 * 1024

#: The error codes of the page's table ("错误码"); every error answer uses one of them.
LISTED_CODES = frozenset({400, 401, 403, 404, 429, 500})

#: The content types of the message table plus ``file`` from the content-type table
#: (READING "Content types": file carries no requirement, accepting it is harmless).
CONTENT_TYPES = frozenset({"text", "image", "file", "object_string", "card"})

#: A comment line is sent after every this many events (the SSE grammar allows comments
#: anywhere; READING "Never fail a server for … SSE comments").
KEEPALIVE_EVERY = 3

SUCCESS_MSG = "ok"  # legal SHOULD deviation from "success" (READING "Success msg, data")


class ApiError(Exception):
    """An error answered with the page's envelope and HTTP status equal to the code."""

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


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; falls back to ASCII escapes when a string holds a lone surrogate."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


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
    """An ``int64`` field (``/api/*`` tables): a JSON integer, never a bool or a float."""
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
    # The chat table says string ("JSON 中以字符串格式传输") while the page's multimodal
    # example sends an integer: both forms are taken, anything else is 400.
    if "bot_id" not in body:
        raise _missing("bot_id")
    value = body["bot_id"]
    if isinstance(value, str):
        return id_from_text(value, "bot_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong("bot_id", "a decimal string")


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


def new_bot_id() -> int:
    """19 decimal digits, above 2**53 and within int64: a float would corrupt it."""
    low = 10**18
    return low + secrets.randbelow(2**63 - 1 - low)


def new_text_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def now_seconds() -> int:
    # Timestamps in seconds since the epoch, like the page's 1704067200.
    return int(time.time())


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
    conversation_id: str
    owner: str
    bot_id: int
    history: list[Message] = field(default_factory=list)


class Store:
    """Bots, conversations and in-flight streams, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bots: dict[int, Bot] = {}
        self.conversations: dict[str, Conversation] = {}
        self.controls: dict[int, tuple[str, StreamControl]] = {}
        self.closing = False

    def bot(self, bot_id: int, principal: str) -> Bot:
        bot = self.bots.get(bot_id)
        if bot is None:
            raise ApiError(400, "invalid bot_id")  # unknown id: 400 (READING)
        if bot.owner != principal:
            raise ApiError(404, "bot not found")  # another's: 404, not 403 (READING)
        return bot

    def conversation(self, conversation_id: str, principal: str) -> Conversation:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise ApiError(400, "invalid conversation_id")
        if conversation.owner != principal:
            raise ApiError(404, "conversation not found")
        return conversation

    def register(self, conversation_id: str) -> tuple[int, StreamControl]:
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

    def halt(self, reason: str, conversation_id: str | None = None, *, closing: bool = False) -> int:
        """Halt the in-flight streams of one conversation (or all); return how many.
        ``closing`` also halts every stream registered from now on."""
        with self.lock:
            self.closing = self.closing or closing
            chosen = [c for conv, c in self.controls.values() if conversation_id in (None, conv)]
        for control in chosen:
            control.reason = reason
            control.halt.set()
        return len(chosen)


# --------------------------------------------------------------------------- rate limits


class FixedWindowLimiter:
    """The page's per-user limits as fixed windows (the reference uses a sliding one).

    A key's window opens at its first request (on a whole second, so the reset instant is
    an exact HTTP date) and lasts 60 s; the count resets when it ends.
    """

    def __init__(self, limits: Mapping[str, int], window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._limits = dict(limits)
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def hit(self, principal: str, group: str) -> float | None:
        """Count one request; return the epoch second the window resets if over the limit."""
        now = self._clock()
        key = (principal, group)
        with self._lock:
            start, count = self._windows.get(key, (math.floor(now), 0))
            if now >= start + self._window:
                start, count = math.floor(now), 0
            count += 1
            self._windows[key] = (start, count)
        return start + self._window if count > self._limits[group] else None


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


def sse_event(name: str, payload: Mapping[str, Any]) -> bytes:
    # No space after the colon and CRLF line ends: both legal (READING "SSE line format").
    return b"event:" + name.encode("ascii") + b"\r\ndata:" + dump_json(payload) + b"\r\n\r\n"


KEEPALIVE = b": keep-alive\r\n\r\n"


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
    group: str
    action: str  # the handler method's name
    json_body: bool


ROUTES: tuple[Route, ...] = (
    Route("POST", re.compile(r"/v3/chat"), "chat", "chat_v3", True),
    Route("POST", re.compile(r"/v3/chat/cancel"), "chat", "chat_cancel", True),
    Route("POST", re.compile(r"/api/conversation/chat"), "chat", "conversation_chat", True),
    Route("POST", re.compile(r"/api/draftbot/create"), "management", "draftbot_create", True),
    Route("POST", re.compile(r"/api/draftbot/update_display_info"), "management", "draftbot_update", True),
    Route("POST", re.compile(r"/api/draftbot/publish"), "management", "draftbot_publish", True),
    Route("GET", re.compile(r"/v1/bot/get_online_info"), "info", "online_info", False),
    Route("GET", re.compile(r"/v1/bots/([^/]+)"), "info", "bot_get", False),
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
        # too, with a listed code; an unsupported method is "no such route" (404).
        mapped = code if code in LISTED_CODES else (404 if code == 501 else 400)
        self.close_connection = True
        self._send_envelope_error(ApiError(mapped, message or "bad request"))

    def _send_json(self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        body = dump_json(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_envelope_error(self, error: ApiError) -> None:
        self._send_json(error.code, {"code": error.code, "msg": error.msg, "data": None}, error.headers)

    def _send_ok(self, data: Mapping[str, Any] | None) -> None:
        payload: dict[str, Any] = {"code": 0, "msg": SUCCESS_MSG}
        if data is not None:
            payload["data"] = data
        self._send_json(200, payload)

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
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception:  # a bug of this server, never of the input: still the envelope
            self._send_envelope_error(ApiError(500, "internal server error"))

    def _dispatch_or_raise(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body, oversized = self._read_body()
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is not None and route.method == self.command:
                break
        else:
            raise ApiError(404, "no such route")  # wrong methods included
        owner = self.server.owner
        principal = owner._authenticate(self.headers)
        owner._rate_limit(principal, route.group)
        fields: dict[str, Any] = {}
        if route.json_body:
            if oversized:
                raise ApiError(400, "request body too large")
            fields = parse_json_object(body)
        getattr(self, route.action)(principal, fields, query, match.groups())

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
            bot_id = new_bot_id()
            while bot_id in store.bots:
                bot_id = new_bot_id()
            bot = Bot(bot_id, principal, name, description, icon_url, prompt, model, stamp, stamp)
            store.bots[bot_id] = bot
            data = {"bot_id": bot.bot_id, "name": bot.name, "description": bot.description,
                    "icon_url": bot.icon_url, "status": "draft",
                    "created_at": bot.created_at, "updated_at": bot.updated_at}
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
            data = {"bot_id": bot.bot_id, "name": bot.name, "description": bot.description,
                    "icon_url": bot.icon_url, "updated_at": bot.updated_at}
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
                          "model": bot.model, "prompt": bot.prompt}
            data = {"bot_id": bot.bot_id, "version": bot.version, "status": "online",
                    "published_at": bot.published_at}
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
                raise ApiError(404, "bot has no online version")
            snapshot = bot.online
            data: dict[str, Any] = {"bot_id": bot.bot_id, "name": snapshot["name"],
                                    "description": snapshot["description"], "icon_url": snapshot["icon_url"],
                                    "version": bot.version, "status": "online"}
            if snapshot["model"] is not None:
                data["model"] = snapshot["model"]  # absent when never set (READING)
            data["published_at"] = bot.published_at
        self._send_ok(data)

    def bot_get(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                path: tuple[str, ...]) -> None:
        bot_id = id_from_text(path[0], "bot_id")
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)
            # The draft's current values: READING lets /v1/bots/:id show an update before
            # the next publish.
            data: dict[str, Any] = {"bot_id": bot.bot_id, "name": bot.name, "description": bot.description,
                                    "icon_url": bot.icon_url, "version": bot.version,
                                    "status": "online" if bot.online is not None else "draft"}
            if bot.model is not None:
                data["model"] = bot.model
            data.update({"prompt": bot.prompt, "tools": [],
                         "created_at": bot.created_at, "updated_at": bot.updated_at})
            if bot.published_at is not None:
                data["published_at"] = bot.published_at
        self._send_ok(data)

    # ------------------------------------------------------------ chat

    def chat_v3(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                path: tuple[str, ...]) -> None:
        bot_id = req_chat_bot_id(body)
        req_str(body, "user_id")  # required by the table; its value plays no part here
        stream = opt_bool(body, "stream") or False
        # READING "Conversation id in a chat request": ConversationID, then the body's
        # conversation_id, then the query's.
        conversation_id = opt_str(body, "ConversationID")
        if conversation_id is None:
            conversation_id = opt_str(body, "conversation_id")
        if conversation_id is None and query.get("conversation_id"):
            conversation_id = query["conversation_id"][0]
        messages = parse_messages(body)
        for key in ("custom_variables", "meta_data", "extra_params"):
            opt_object(body, key)
        self._chat(self._prepare(principal, bot_id, conversation_id, messages, stream))

    def conversation_chat(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                          path: tuple[str, ...]) -> None:
        agent_id = req_int64(body, "agent_id")
        text = req_str(body, "query")
        conversation_id = opt_str(body, "conversation_id")
        stream = opt_bool(body, "stream") or False
        messages = [*parse_messages(body), Message("user", text, "text")]
        self._chat(self._prepare(principal, agent_id, conversation_id, messages, stream))

    def _prepare(self, principal: str, bot_id: int, conversation_id: str | None,
                 messages: list[Message], stream: bool) -> ChatRun:
        store = self.server.owner.store
        with store.lock:
            bot = store.bot(bot_id, principal)
            if bot.online is None:
                raise ApiError(400, "bot is not published")  # a draft cannot chat
            if conversation_id is not None:
                conversation = store.conversation(conversation_id, principal)
            else:
                conversation = Conversation(new_text_id("conv"), principal, bot_id)
                store.conversations[conversation.conversation_id] = conversation
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
        data = {"id": new_text_id("msg"), "type": "answer", "role": "assistant", "content": answer,
                "content_type": "text", "conversation_id": run.conversation.conversation_id,
                "chat_id": new_text_id("chat"), "bot_id": run.bot.bot_id, "created_at": now_seconds()}
        self._send_ok(data)

    def _chat_stream(self, run: ChatRun) -> None:
        owner = self.server.owner
        conversation_id = run.conversation.conversation_id
        key, control = owner.store.register(conversation_id)
        chat_id = new_text_id("chat")
        with owner.store.lock:
            history = [*run.conversation.history, *run.new_messages]
        sent: list[str] = []
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in self._events(run, chat_id, history, control, sent):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            owner.store.unregister(key)
            with owner.store.lock:
                run.conversation.history = [*run.conversation.history, *run.new_messages,
                                            Message("assistant", "".join(sent), "text")]

    def _events(self, run: ChatRun, chat_id: str, history: list[Message], control: StreamControl,
                sent: list[str]) -> Iterator[bytes]:
        """The stream: a verbose message without deltas, the answer's deltas and completed
        message, then chat.completed (or chat.failed on cancel) and stream.done."""
        conversation_id = run.conversation.conversation_id
        delay = self.server.owner.token_delay
        count = 0

        def event(name: str, payload: dict[str, Any]) -> Iterator[bytes]:
            nonlocal count
            # Keys in another order than the page's example: the item first, "event" last.
            yield sse_event(name, {**payload, "event": name})
            count += 1
            if count % KEEPALIVE_EVERY == 0:
                yield KEEPALIVE

        def item(message_id: str, kind: str, content: str, content_type: str) -> dict[str, Any]:
            return {"role": "assistant", "type": kind, "content_type": content_type, "content": content,
                    "conversation_id": conversation_id, "chat_id": chat_id, "id": message_id}

        verbose = json.dumps({"msg_type": "generate_answer_start", "data": ""}, separators=(",", ":"))
        yield from event("conversation.message.completed",
                         {"message_item": item(new_text_id("msg"), "verbose", verbose, "object_string")})
        answer_id = new_text_id("msg")
        for token in compose_answer(history):
            if control.halt.wait(delay) if delay > 0 else control.halt.is_set():
                break
            sent.append(token)
            yield from event("conversation.message.delta",
                             {"message_item": item(answer_id, "answer", token, "text")})
        content = "".join(sent)
        if sent:
            # Also on cancel: the deltas sent so far join to the completed content.
            yield from event("conversation.message.completed",
                             {"message_item": item(answer_id, "answer", content, "text")})
        record: dict[str, Any] = {"usage": usage_of(history, len(sent)), "id": chat_id,
                                  "conversation_id": conversation_id}
        if control.halt.is_set():
            record["status"] = "cancelled" if control.reason == "cancel" else "failed"
            record["last_error"] = {"code": 0 if control.reason == "cancel" else 500, "msg": control.reason}
            yield from event("conversation.chat.failed", {"run_record_item": record})
        else:
            record["status"] = "completed"
            yield from event("conversation.chat.completed", {"run_record_item": record})
        yield sse_event("conversation.stream.done", {"event": "conversation.stream.done"})

    def chat_cancel(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                    path: tuple[str, ...]) -> None:
        conversation_id = req_str(body, "conversation_id")
        store = self.server.owner.store
        with store.lock:
            store.conversation(conversation_id, principal)
        store.halt("cancel", conversation_id)
        # A conversation without a stream in flight is still answered 0 (READING "Cancel").
        self._send_ok(None)  # the page's cancel example has no data


# --------------------------------------------------------------------------- server


class IndependentServer:
    """The clean server on 127.0.0.1, an ephemeral port, in a background thread.

    ``principals`` maps a principal's name to its (api_key, session_key); two principals
    with fixed development keys by default. ``token_delay`` is the fake model's pause
    between tokens, in seconds. ``rate_limits=False`` turns the limiter off.
    """

    def __init__(self, principals: Mapping[str, tuple[str, str]] | None = None,
                 token_delay: float = 0.01, rate_limits: bool = True) -> None:
        chosen = dict(DEFAULT_PRINCIPALS if principals is None else principals)
        keys = [key for pair in chosen.values() for key in pair]
        if not chosen or any(not isinstance(k, str) or not k for k in keys) or len(set(keys)) != len(keys):
            raise ValueError("principals need non-empty, distinct api and session keys")
        if not token_delay >= 0:
            raise ValueError("token_delay must be >= 0 seconds")
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
        httpd = _Server(("127.0.0.1", 0), _RequestHandler)
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

    def _authenticate(self, headers: Any) -> str:
        """Bearer or ``session_key`` cookie, on every endpoint; every credential presented
        must be valid, and both must name the same principal."""
        found: set[str] = set()
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            found.add(self._principal_for(token.strip(), 0) if scheme.lower() == "bearer" else "")
        session = self._session_cookie(headers.get_all("Cookie") or [])
        if session is not None:
            found.add(self._principal_for(session, 1))
        if not found or "" in found or len(found) != 1:
            raise ApiError(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
        return found.pop()

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

    def _rate_limit(self, principal: str, group: str) -> None:
        if self.limiter is None:
            return
        reset = self.limiter.hit(principal, group)
        if reset is not None:
            raise ApiError(429, "too many requests", {"Retry-After": formatdate(reset, usegmt=True)})


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: ``python -m independent.server`` (from ``tests/``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--no-rate-limits", action="store_true")
    args = parser.parse_args(argv)
    with IndependentServer(token_delay=args.token_delay, rate_limits=not args.no_rate_limits) as server:
        # The keys are in DEFAULT_PRINCIPALS; they are not printed.
        print(f"serving on {server.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
