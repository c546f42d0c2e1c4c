"""The independent server's ``studio`` dialect: Coze Studio / Coze Plus as ``docs/studio-contract.md`` fixes it.

Selected with ``IndependentServer(dialect="studio")``, the environment variable
``INDEPENDENT_DIALECT=studio`` or ``--dialect studio`` on the command line. Written from the
contract (``docs/studio-contract.md``, background ``conformance/spec/coze-wire.md``) alone, by
other hands than ``conformance/reference/`` (never read) and importing nothing from
``conformance``: the standard library and the doc dialect's plumbing (``server.py``: the
HTTP/1.0 handler, connection tracking, body reading, 19-digit ids) only.

Principals and their credentials
================================

The server is given, as in the other dialects, principal name -> (api_key, session_key): the
api key is a PAT of the principal from the start, the session key a live ``session_key``
cookie from the start. Everything else a studio principal has is derived from its name
(``account(name)``), deterministically:

==============  ==============================================================================
email           ``<name>@example.com`` (login compares it case-insensitively)
password        ``<name>-studio-password``
space_id        ``str(7300000000000000000 + H[0:8] % 10**17)``, 19 digits
user_id_str     ``str(7400000000000000000 + H[8:16] % 10**17)``, 19 digits
==============  ==============================================================================

where ``H = sha256(b"independent-studio:" + name.encode())`` and ``H[a:b]`` is that slice of
the digest read as a big-endian unsigned integer. For the default principals:
alice: ``alice@example.com`` / ``alice-studio-password``, space ``7327159148443773321``;
bob: ``bob@example.com`` / ``bob-studio-password``, space ``7337820767790188222``
(a test checks these against ``account``). ``tests/support/against.py`` passes the first
principal's space as ``COZE_SPACE_ID``. A login mints a new session; a PAT minted on
``/api/permission_api/pat/...`` is a new API key; both live as long as the server.

The other readings
==================

Wherever the contract leaves a choice this dialect takes the reading the reference server
does not (the reference takes the contract's first-named form):

1. OpenAPI auth refusals (``/v1/*``, ``/v3/*``: missing, unknown, cookie-only): HTTP **401**
   ``{"msg":"authentication failed: …","code":700012006}`` (not HTTP 200). A dead
   ``session_key`` on ``/api/*`` likewise HTTP 401 with code 700012006; a wrong login
   password too (a business error in HTTP 4xx, item 2).
2. Business errors (9-digit codes): HTTP **400** with the 9-digit code in the body (not HTTP
   200): 100000000, 100000003, 110000001, 103000001, 103200003, 103200005, ….
3. Pre-run chat errors on ``/v3/chat`` (unknown bot, not published to 1024, another
   principal's bot or conversation, a bad additional message): a **JSON error envelope**,
   HTTP 400, ``{"msg":…,"code":103100001}`` (103000001 another's conversation, 103000000 a
   bad additional message), not an SSE ``error`` event.
4. Cancel of a chat in progress: ``{"msg":"","data":{<Chat>,"status":"cancelled"},"code":0}``
   (not ``{"ChatV3ChatDetail":…,"BaseResp":null}``). A finished chat: HTTP 400 with code
   **103200005** (not code 400 with the code in ``msg``).
5. A stream **ends early after its cancel**: no more deltas, no message.completed and no
   chat.completed; ``conversation.stream.done`` (empty data) and the close.
6. SSE lines ``event: <name>`` / ``data: <json>`` **with a space** after the colon, **CRLF**
   line ends, the empty data line as ``data: `` (a space, then nothing), and
   ``Content-Type: text/event-stream; charset=utf-8``.
7. Every event written in **several writes cut at pseudo-random byte offsets** (also
   inside multi-byte UTF-8 characters and between the CR and the LF), TCP_NODELAY on.
8. Payload **keys in another order** than the contract's (chat, message, BotInfo,
   envelopes: ``msg`` first, ``code`` last) and **extra unknown fields**: ``updated_at`` and
   ``x_independent`` on chats and messages, ``reasoning_content`` on messages,
   ``space_id``, ``owner_user_id``, ``x_independent`` on BotInfo, ``model_name`` in
   ``model_info``, ``sender_id`` and ``reasoning_content`` in ``/api/conversation/chat``
   messages, ``avatar_url`` on the login user, ``icon_url`` on spaces, ``version`` on a
   publish's data. Error bodies are exactly ``{"msg","code"}``.
9. Publish versions are **long digit strings** (19 digits, time-based, strictly increasing
   per bot), not small counters; a ``commit_version`` given is taken as it is.
10. ``GET /v1/bot/get_online_info`` answers the BotInfo **in the envelope**
    ``{"msg":"","data":<BotInfo>,"code":0}`` (BOT-006: bare or enveloped), and
    **without** ``connector_id`` HTTP 400 code 400 "connector_id is required" (BOT-010:
    JSON, never 5xx; the reference assumes 1024).
11. Chat statuses: a cancelled chat stays ``cancelled`` on retrieve (never overwritten by
    ``completed``); a stream halted by the server's stop sends ``error``
    ``{"code":103200002,…}`` and ends, the chat ``failed`` with ``last_error``.
12. ``X-Log-ID`` written as ``x-log-id`` (a uuid4, on every answer, streams included);
    JSON in raw UTF-8 with a ``Content-Length``; HTTP/1.0, the connection closed after each
    answer.
13. The message list holds the chat's additional messages (``question``/``answer``), then
    the answer and the ``verbose`` message once completed.

Where the contract is silent (this dialect's reading)
=====================================================

- A wrong method on a known ``/v1``/``/v3`` path: 404 before any auth; on ``/api`` the
  cookie is checked first (401), then 404. Paths outside ``/api``, ``/v1``, ``/v3``: 404.
- ``/v3/chat`` with another principal's (published) bot: refused like an unknown bot
  (pre-run error, code 103100001 "agent not own").
- ``/v3/chat`` checks the API connector 1024 whatever ``connector_id`` says (a digit string
  or absent); ``parameters`` must be a JSON object.
- ``/api/conversation/chat`` with a conversation id that is not "0" and not one of the
  principal's conversations: a run error message ("Something error:…").
  A missing ``bot_id`` there is an unknown bot (run error), a numeric one a 400.
- A request id that is a string but not digits: HTTP 400 code 400 (a bind error).
- An additional message whose ``content_type`` is neither ``text`` nor ``object_string``
  is taken without its content (coze-wire §2.1), not refused; a non-string content or
  content_type is a pre-run error (103000000).
- Login body without email/password strings: HTTP 400 code 400.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .server import ApiError, _RequestHandler, new_id

AUTH_FAILED = 700012006
INVALID_PARAM = 100000000
AGENT_PERMISSION = 100000003
NOT_OWNER = 110000001
CONV_INVALID = 103000000
CONV_PERMISSION = 103000001
AGENT_RUN_ERROR = 103100001
AGENT_RUN = 103200002
RECORD_NOT_FOUND = 103200003
NOT_CANCELLABLE = 103200005

API_CONNECTOR = "1024"
ALLOWED_CONNECTORS = frozenset({"999", "1024"})
MAX_NAME = 50
MAX_DESCRIPTION = 2000
DEFAULT_MODEL_ID = "1737521813"
MAX_ID_DIGITS = 19
#: Delta sizes in characters, taken in turn.
DELTA_SIZES = (3, 1, 5, 2, 4, 1, 6)
VERBOSE_CONTENT = ('{"msg_type":"generate_answer_finish","data":"{\\"finish_reason\\":0,\\"fin_data\\":\\"\\"}",'
                   '"from_unit":""}')
EXTRA_MARK = "studio-independent"


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class StudioAccount:
    """What a studio principal has besides its api key and session key."""

    name: str
    email: str
    password: str
    space_id: str
    user_id: str


def account(name: str) -> StudioAccount:
    """The deterministic email, password, space id and user id of principal ``name``."""
    digest = hashlib.sha256(b"independent-studio:" + name.encode("utf-8")).digest()
    space = 7_300_000_000_000_000_000 + int.from_bytes(digest[0:8], "big") % 10**17
    user = 7_400_000_000_000_000_000 + int.from_bytes(digest[8:16], "big") % 10**17
    return StudioAccount(name, f"{name}@example.com", f"{name}-studio-password", str(space), str(user))


# --------------------------------------------------------------------------- errors


class StudioError(Exception):
    """An error answer: HTTP ``status`` with the body ``{"msg","code"}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def bind(msg: str) -> StudioError:
    """A bind or validation error: HTTP 400, code 400."""
    return StudioError(400, 400, msg)


def business(code: int, msg: str) -> StudioError:
    """A business error in HTTP 400 (reading 2)."""
    return StudioError(400, code, msg)


def auth_failed(reason: str) -> StudioError:
    """An auth refusal in HTTP 401 (reading 1)."""
    return StudioError(401, AUTH_FAILED, f"authentication failed: {reason}")


NOT_FOUND = StudioError(404, 404, "not found")


# --------------------------------------------------------------------------- fields


def _json_body(body: bytes, *, optional: bool = False) -> dict[str, Any]:
    if not body.strip():
        if optional:
            return {}
        raise bind("bind body failed, err=empty body")

    def reject(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(body.decode("utf-8"), parse_constant=reject)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bind("bind body failed, err=invalid json") from None
    if not isinstance(value, dict):
        raise bind("bind body failed, err=the body must be a json object")
    return value


def _digits(text: str) -> bool:
    return 0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()


def id_field(body: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    """An id: a JSON string of digits. A number, or a string of non-digits, is a bind error."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise bind(f"'{key}' field is a 'required' parameter, but the request does not have it")
        return None
    if not isinstance(value, str):
        raise bind(f"bind body failed, err={key}: expected a string of digits, got {type(value).__name__}")
    if not _digits(value):
        raise bind(f"bind body failed, err={key}: {value!r} is not a string of digits")
    return value


def str_field(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bind(f"'{key}' field is a 'required' parameter, but the request does not have it")
        return None
    if not isinstance(value, str):
        raise bind(f"bind body failed, err={key}: expected a string")
    return value


def obj_field(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bind(f"bind body failed, err={key}: expected an object")
    return value


def bool_field(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bind(f"bind body failed, err={key}: expected a boolean")
    return value


def int_field(body: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bind(f"'{key}' field is a 'required' parameter, but the request does not have it")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bind(f"bind body failed, err={key}: expected an integer")
    return value


def str_map(body: Mapping[str, Any], key: str) -> dict[str, str] | None:
    value = obj_field(body, key)
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise bind(f"bind body failed, err={key}: the values must be strings")
    return value


def query_id(query: Mapping[str, list[str]], key: str) -> str:
    values = query.get(key)
    if not values or not values[0]:
        raise bind(f"'{key}' field is a 'required' parameter, but the request does not have it")
    if not _digits(values[0]):
        raise bind(f"unable to decode {values[0]!r} as int64")
    return values[0]


# --------------------------------------------------------------------------- store


def _id() -> str:
    return str(new_id())


def _now() -> int:
    return int(time.time())


@dataclass
class StudioBot:
    bot_id: str
    owner: str
    space_id: str
    draft: dict[str, Any]
    online: dict[str, Any] | None = None
    connectors: set[str] = field(default_factory=set)
    display: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudioConversation:
    conversation_id: str
    owner: str
    section_id: str = field(default_factory=_id)
    #: (role, content) of every turn so far, for the fake model.
    history: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StudioChat:
    chat_id: str
    owner: str
    bot_id: str
    conversation: StudioConversation
    created_at: int
    meta_data: dict[str, str]
    status: str = "created"
    completed_at: int = 0
    failed_at: int = 0
    last_error: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: The stream's framed events; None marks its end.
    events: list[bytes | None] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)

    def as_object(self) -> dict[str, Any]:
        """The Chat object: keys in another order than the contract's, extras included."""
        chat: dict[str, Any] = {"status": self.status, "x_independent": EXTRA_MARK,
                                "section_id": self.conversation.section_id, "failed_at": self.failed_at,
                                "completed_at": self.completed_at, "updated_at": _now(), "created_at": self.created_at,
                                "bot_id": self.bot_id, "conversation_id": self.conversation.conversation_id,
                                "id": self.chat_id}
        if self.meta_data:
            chat["meta_data"] = dict(self.meta_data)
        if self.last_error is not None:
            chat["last_error"] = dict(self.last_error)
        return chat

    def message(self, message_id: str, role: str, kind: str, content: str, content_type: str = "text",
                meta_data: dict[str, str] | None = None) -> dict[str, Any]:
        """A Message object: keys in another order, extras included."""
        stamp = _now()
        message: dict[str, Any] = {"content": content, "x_independent": EXTRA_MARK, "type": kind, "role": role,
                                   "section_id": self.conversation.section_id, "reasoning_content": "",
                                   "content_type": content_type, "updated_at": stamp, "created_at": stamp,
                                   "chat_id": self.chat_id, "bot_id": self.bot_id,
                                   "conversation_id": self.conversation.conversation_id, "id": message_id}
        if meta_data is not None:
            message["meta_data"] = meta_data
        return message


class StudioStore:
    """Accounts, credentials, bots, conversations and chats, behind one condition."""

    def __init__(self, principals: Mapping[str, tuple[str, str]]) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.accounts = {name: account(name) for name in principals}
        self.api_keys: dict[str, str] = {pair[0]: name for name, pair in principals.items()}
        self.sessions: dict[str, str] = {pair[1]: name for name, pair in principals.items()}
        self.bots: dict[str, StudioBot] = {}
        self.conversations: dict[str, StudioConversation] = {}
        self.chats: dict[str, StudioChat] = {}
        self.closing = False
        self._last_version = 0

    def new_version(self) -> str:
        """A 19-digit version string, strictly increasing over the server's life."""
        with self.cond:
            version = max(time.time_ns(), self._last_version + 1)
            self._last_version = version
            return str(version)

    def owned_bot(self, bot_id: str, principal: str) -> StudioBot:
        bot = self.bots.get(bot_id)
        if bot is None:
            raise business(AGENT_PERMISSION, "unauthorized access : agent not exist")
        if bot.owner != principal:
            raise business(NOT_OWNER, "unauthorized access : agent not own")
        return bot

    def emit(self, chat: StudioChat, data: bytes | None) -> None:
        with self.cond:
            chat.events.append(data)
            self.cond.notify_all()

    def halt_all(self) -> None:
        with self.cond:
            self.closing = True
            for chat in self.chats.values():
                chat.halt.set()
            self.cond.notify_all()


# --------------------------------------------------------------------------- SSE


def frame(name: str, payload: Any | None) -> bytes:
    """``event: <name>`` / ``data: <json>`` with a space after each colon, CRLF line ends;
    ``None`` is the empty data line."""
    data = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"event: " + name.encode("ascii") + b"\r\ndata: " + data + b"\r\n\r\n"


def compose_answer(query: str, turn: int) -> list[str]:
    """The fake model's answer, cut in pieces of irregular sizes."""
    text = f"独立的 Studio 回答 第{turn}轮：「{query[:40]}」✓ done."
    pieces, start, index = [], 0, 0
    while start < len(text):
        size = DELTA_SIZES[index % len(DELTA_SIZES)]
        pieces.append(text[start:start + size])
        start += size
        index += 1
    return pieces


def token_meta(history: list[tuple[str, str]], answer: str, started: float) -> dict[str, str]:
    """The completed answer's meta_data: every value a string; token = input + output."""
    input_tokens = sum(len(content) for _, content in history) + 7
    output_tokens = len(answer)
    return {"time_cost": f"{time.monotonic() - started:.3f}", "token": str(input_tokens + output_tokens),
            "output_tokens": str(output_tokens), "input_tokens": str(input_tokens)}


def run_chat(store: StudioStore, chat: StudioChat, history: list[tuple[str, str]], query: str, delay: float) -> None:
    """The run of a /v3/chat, in its own thread: events appended to ``chat.events``."""
    started = time.monotonic()
    turn = sum(1 for role, _ in history if role == "user") or 1
    pieces = compose_answer(query, turn)
    answer_id = _id()

    def halted() -> bool:
        """Under the lock: a cancel ends the stream early (reading 5); a stop fails it."""
        if not chat.halt.is_set():
            return False
        if chat.status == "cancelled":
            store.emit(chat, frame("conversation.stream.done", None))
        else:
            chat.status, chat.failed_at = "failed", _now()
            chat.last_error = {"msg": "Interal Server Error", "code": AGENT_RUN}
            store.emit(chat, frame("error", {"msg": "Interal Server Error", "code": AGENT_RUN}))
        store.emit(chat, None)
        return True

    with store.cond:
        if halted():
            return
        chat.status = "in_progress"
        store.emit(chat, frame("conversation.chat.in_progress", chat.as_object()))
    for piece in pieces:
        if delay:
            chat.halt.wait(delay)
        with store.cond:
            if halted():
                return
            store.emit(chat, frame("conversation.message.delta", chat.message(answer_id, "assistant", "answer", piece)))
    content = "".join(pieces)
    with store.cond:
        if halted():
            return
        answer = chat.message(answer_id, "assistant", "answer", content, meta_data=token_meta(history, content, started))
        verbose = chat.message(_id(), "assistant", "verbose", VERBOSE_CONTENT)
        chat.messages += [answer, verbose]
        chat.conversation.history.append(("assistant", content))
        store.emit(chat, frame("conversation.message.completed", answer))
        store.emit(chat, frame("conversation.message.completed", verbose))
        chat.status, chat.completed_at = "completed", _now()
        store.emit(chat, frame("conversation.chat.completed", chat.as_object()))
        store.emit(chat, frame("conversation.stream.done", None))
        store.emit(chat, None)


# --------------------------------------------------------------------------- routes

#: (method, path) -> (auth class, action). "open": none (login); "bearer": OpenAPI;
#: "cookie": WebAPI.
ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/v3/chat"): ("bearer", "act_chat"),
    ("POST", "/v3/chat/cancel"): ("bearer", "act_chat_cancel"),
    ("GET", "/v3/chat/retrieve"): ("bearer", "act_chat_retrieve"),
    ("GET", "/v3/chat/message/list"): ("bearer", "act_message_list"),
    ("GET", "/v1/bot/get_online_info"): ("bearer", "act_online_info"),
    ("POST", "/api/passport/web/email/login/"): ("open", "act_login"),
    ("POST", "/api/playground_api/space/list"): ("cookie", "act_space_list"),
    ("POST", "/api/permission_api/pat/create_personal_access_token_and_permission"): ("cookie", "act_pat_create"),
    ("POST", "/api/draftbot/create"): ("cookie", "act_bot_create"),
    ("POST", "/api/playground_api/draftbot/update_draft_bot_info"): ("cookie", "act_bot_update"),
    ("POST", "/api/draftbot/update_display_info"): ("cookie", "act_display_update"),
    ("POST", "/api/draftbot/get_display_info"): ("cookie", "act_display_get"),
    ("POST", "/api/draftbot/publish"): ("cookie", "act_bot_publish"),
    ("POST", "/api/conversation/chat"): ("cookie", "act_conversation_chat"),
}


def _bot_path(path: str) -> str | None:
    """The bot id of ``/v1/bots/<digits>``, else None."""
    prefix = "/v1/bots/"
    if path.startswith(prefix) and _digits(path[len(prefix):]):
        return path[len(prefix):]
    return None


class StudioRequestHandler(_RequestHandler):
    """The studio dialect over the doc dialect's plumbing (HTTP/1.0, body reading)."""

    server_version = "IndependentStudio/1.0"

    def setup(self) -> None:
        super().setup()
        # Small writes leave at once: the cut events really go out in several segments.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def store(self) -> StudioStore:
        store: StudioStore = self.server.owner.studio_store
        return store

    # ------------------------------------------------------------ output

    def _answer(self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-log-id", str(uuid.uuid4()))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, error: StudioError) -> None:
        self.answered_error = True
        self._answer(error.status, {"msg": error.msg, "code": error.code})

    def _ok(self, data: Any = None, *, with_data: bool = True, headers: Mapping[str, str] | None = None) -> None:
        payload: dict[str, Any] = {"msg": ""}
        if with_data:
            payload["data"] = data
        payload["code"] = 0
        self._answer(200, payload, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (a bad request line …): still a JSON body.
        self.close_connection = True
        self._error(StudioError(400, 400, message or "bad request"))

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("x-log-id", str(uuid.uuid4()))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self._cutter = random.Random(secrets.randbits(32))

    def _write_cut(self, data: bytes) -> None:
        """One event in several writes, cut at random byte offsets, always inside the first
        multi-byte character and between the CR and the LF of the last line end."""
        cuts = {len(data) - 1}
        lead = next((i for i, byte in enumerate(data) if byte >= 0xC0), None)
        if lead is not None:
            cuts.add(lead + 1)
        for _ in range(self._cutter.randint(0, 3)):
            cuts.add(self._cutter.randint(1, max(1, len(data) - 1)))
        start = 0
        for cut in [*sorted(c for c in cuts if 0 < c < len(data)), len(data)]:
            self.wfile.write(data[start:cut])
            self.wfile.flush()
            start = cut

    # ------------------------------------------------------------ dispatch

    def _dispatch(self) -> None:
        try:
            self._dispatch_or_raise()
        except StudioError as error:
            self._error(error)
        except ApiError as error:  # the plumbing's body reading (a size, a framing)
            self._error(bind(error.msg))
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug of this server: a JSON 500, never a stack trace
            self._error(StudioError(500, 500, "internal server error"))

    def _dispatch_or_raise(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body, oversized = self._read_body()
        if oversized:
            raise bind("bind body failed, err=the body is too large")
        route = ROUTES.get((self.command, path))
        args: tuple[str, ...] = ()
        if route is None and self.command == "GET" and (bot_id := _bot_path(path)) is not None:
            route, args = ("bearer", "act_bot_get"), (bot_id,)
        if route is None:
            if path.startswith("/api/") or path == "/api":
                self._cookie_principal()  # the session middleware runs before the router
            raise NOT_FOUND
        mode, action = route
        principal = ""
        if mode == "bearer":
            principal = self._bearer_principal()
        elif mode == "cookie":
            principal = self._cookie_principal()
        getattr(self, action)(principal, body, query, args)

    def _bearer_principal(self) -> str:
        """OpenAPI: only ``Authorization: Bearer <key>``; cookies are never looked at."""
        header = self.headers.get("Authorization")
        if not header or not header.strip():
            raise auth_failed("missing authorization in header")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise auth_failed("missing api_key in request")
        with self.store.cond:
            principal = self.store.api_keys.get(token.strip())
        if principal is None:
            raise auth_failed("api key invalid")
        return principal

    def _cookie_principal(self) -> str:
        """WebAPI: only the ``session_key`` cookie; an Authorization header is ignored."""
        session = self.server.owner._session_cookie(self.headers.get_all("Cookie") or [])
        if not session:
            raise StudioError(401, 401, "missing session_key in cookie")
        with self.store.cond:
            principal = self.store.sessions.get(session)
        if principal is None:
            raise auth_failed("session not exist")
        return principal

    # ------------------------------------------------------------ passport, space, PAT

    def act_login(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        email = str_field(body, "email", required=True) or ""
        password = str_field(body, "password", required=True) or ""
        found = next((a for a in self.store.accounts.values() if a.email.lower() == email.strip().lower()), None)
        if found is None or not secrets.compare_digest(found.password.encode(), password.encode("utf-8", "replace")):
            raise auth_failed("invalid email or password")
        session = secrets.token_urlsafe(24)
        with self.store.cond:
            self.store.sessions[session] = found.name
        data = {"email": found.email, "avatar_url": "", "name": found.name, "user_id_str": found.user_id}
        self._ok(data, headers={"Set-Cookie": f"session_key={session}; Path=/; HttpOnly"})

    def act_space_list(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        _json_body(raw, optional=True)
        space = {"space_type": 1, "icon_url": "", "name": "Personal", "id": self.store.accounts[principal].space_id}
        self._ok({"team_space_num": 0, "recently_used_space_list": [dict(space)], "has_personal_space": True,
                  "bot_space_list": [space]})

    def act_pat_create(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        name = str_field(body, "name")
        if not name:
            raise bind("'name' field is a 'required' parameter, but the request does not have it")
        created = _now()
        expire_at = int_field(body, "expire_at")
        duration = body.get("duration_day")
        if expire_at is None:
            if duration is None or duration == "":
                days = 30
            elif isinstance(duration, str) and duration.isascii() and duration.isdigit():
                days = int(duration)
            elif duration == "permanent":
                days = 0
            else:
                raise bind("bind body failed, err=duration_day: expected a number of days as a string")
            expire_at = created + days * 86400 if days else 0
        token = "pat_" + secrets.token_hex(32)
        with self.store.cond:
            self.store.api_keys[token] = principal
        self._ok({"token": token, "personal_access_token": {"expire_at": expire_at, "created_at": created,
                                                             "name": name, "id": _id()}})

    # ------------------------------------------------------------ draft bots

    def act_bot_create(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        if body.get("space_id") in (None, "", "0"):
            raise bind("space id is not set")
        space_id = id_field(body, "space_id") or ""
        name = str_field(body, "name")
        if not name:
            raise bind("name is nil")
        if len(name) > MAX_NAME:
            raise bind(f"name is too long: at most {MAX_NAME} characters")
        description = str_field(body, "description") or ""
        if len(description) > MAX_DESCRIPTION:
            raise bind(f"description is too long: at most {MAX_DESCRIPTION} characters")
        icon_uri = str_field(body, "icon_uri")
        if not icon_uri:
            raise bind("icon uri is nil")
        int_field(body, "visibility")
        if body.get("create_from") is not None and not isinstance(body["create_from"], str):
            raise bind("bind body failed, err=create_from: expected a string")
        if space_id != self.store.accounts[principal].space_id:
            raise business(AGENT_PERMISSION, "unauthorized access : space not own")
        draft = {"name": name, "description": description, "icon_uri": icon_uri, "prompt": "",
                 "model_id": DEFAULT_MODEL_ID}
        with self.store.cond:
            bot_id = _id()
            self.store.bots[bot_id] = StudioBot(bot_id, principal, space_id, draft)
        self._ok({"check_not_pass": False, "bot_id": bot_id})

    def act_bot_update(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        info = obj_field(body, "bot_info")
        if info is None:
            raise bind("'bot_info' field is a 'required' parameter, but the request does not have it")
        bot_id = id_field(info, "bot_id") or ""
        str_field(body, "base_commit_version")
        changes: dict[str, Any] = {}
        name = str_field(info, "name")
        if name is not None:
            if not name or len(name) > MAX_NAME:
                raise bind(f"name: 1 to {MAX_NAME} characters")
            changes["name"] = name
        description = str_field(info, "description")
        if description is not None:
            if len(description) > MAX_DESCRIPTION:
                raise bind(f"description is too long: at most {MAX_DESCRIPTION} characters")
            changes["description"] = description
        icon_uri = str_field(info, "icon_uri")
        if icon_uri:
            changes["icon_uri"] = icon_uri
        prompt_info = obj_field(info, "prompt_info")
        if prompt_info is not None:
            changes["prompt"] = str_field(prompt_info, "prompt") or ""
        model_info = obj_field(info, "model_info")
        if model_info is not None:
            model_id = id_field(model_info, "model_id", required=False)
            if model_id is not None:
                changes["model_id"] = model_id
        with self.store.cond:
            bot = self.store.owned_bot(bot_id, principal)
            bot.draft.update(changes)
        self._ok({"same_with_online": False, "branch": 0, "check_not_pass": False, "has_change": True})

    def act_display_update(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        bot_id = id_field(body, "bot_id") or ""
        id_field(body, "space_id", required=False)
        display = obj_field(body, "display_info")
        if display is None:
            raise bind("'display_info' field is a 'required' parameter, but the request does not have it")
        tabs = obj_field(display, "tab_display_info") or {}
        for key, value in tabs.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise bind(f"bind body failed, err=tab_display_info.{key}: expected an integer")
        with self.store.cond:
            bot = self.store.owned_bot(bot_id, principal)
            bot.display.update(tabs)
        self._ok(with_data=False)

    def act_display_get(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        bot_id = id_field(body, "bot_id") or ""
        with self.store.cond:
            bot = self.store.owned_bot(bot_id, principal)
            tabs = dict(bot.display)
        self._ok({"tab_display_info": tabs})

    def act_bot_publish(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        bot_id = id_field(body, "bot_id") or ""
        id_field(body, "space_id", required=False)
        connectors = obj_field(body, "connectors")
        if not connectors:
            raise bind("connectors is nil")
        commit_version = str_field(body, "commit_version")
        with self.store.cond:
            bot = self.store.owned_bot(bot_id, principal)
            for connector in connectors:
                if connector not in ALLOWED_CONNECTORS:
                    raise business(AGENT_PERMISSION, f"unauthorized access : connector {connector} not allowed")
            version = commit_version or self.store.new_version()
            bot.online = {**bot.draft, "version": version}
            bot.connectors.update(connectors)
        result = {c: {"publish_result_status": 1, "msg": "", "code": 0, "connector": None} for c in connectors}
        self._ok({"version": version, "check_not_pass": False, "publish_result": result, "connector_bind_result": None})

    # ------------------------------------------------------------ bot info

    def _bot_info(self, bot: StudioBot) -> dict[str, Any]:
        online = bot.online or {}
        return {"variables": None, "x_independent": EXTRA_MARK, "background_image_info": None,
                "suggest_reply_info": None, "default_user_input_type": "", "shortcut_commands": None,
                "workflow_info_list": [], "plugin_info_list": [],
                "model_info": {"model_name": f"independent-model-{online['model_id']}", "model_id": online["model_id"]},
                "bot_mode": 0, "onboarding_info": {"suggested_questions": [], "prologue": ""},
                "prompt_info": {"prompt": online["prompt"]}, "version": online["version"], "update_time": 0,
                "create_time": 0, "owner_user_id": self.store.accounts[bot.owner].user_id, "space_id": bot.space_id,
                "icon_url": f"https://independent-studio.invalid/{online['icon_uri']}",
                "description": online["description"], "name": online["name"], "bot_id": bot.bot_id}

    def _published(self, bot_id: str, principal: str, connector: str) -> dict[str, Any]:
        with self.store.cond:
            bot = self.store.bots.get(bot_id)
            if bot is None or bot.online is None or connector not in bot.connectors:
                raise business(INVALID_PARAM,
                               f"invalid parameter : agent not published, agentID={bot_id} connectorID={connector}")
            if bot.owner != principal:
                raise business(NOT_OWNER, "unauthorized access : agent not own")
            return self._bot_info(bot)

    def act_online_info(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        bot_id = query_id(query, "bot_id")
        if not (query.get("connector_id") or [""])[0]:
            raise bind("'connector_id' field is a 'required' parameter, but the request does not have it")
        connector = query_id(query, "connector_id")
        self._ok(self._published(bot_id, principal, connector))

    def act_bot_get(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        data = self._published(path[0], principal, API_CONNECTOR)
        self._answer(200, {"msg": "", "data": data, "code": 0})

    # ------------------------------------------------------------ /v3/chat

    def act_chat(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        bot_id = id_field(body, "bot_id") or ""
        user_id = body.get("user_id")
        if user_id is None or user_id == "":
            raise bind("'user_id' field is a 'required' parameter, but the request does not have it")
        if not isinstance(user_id, str):
            raise bind("bind body failed, err=user_id: expected a string")
        stream = bool_field(body, "stream")
        meta_data = str_map(body, "meta_data") or {}
        str_map(body, "custom_variables")
        str_map(body, "extra_params")
        id_field(body, "connector_id", required=False)
        if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
            raise bind("parameters field should be an object, not a string")
        items = body.get("additional_messages")
        if items is not None and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            raise bind("bind body failed, err=additional_messages: expected an array of objects")
        if "conversation_id" in query:
            conversation_ref: str | None = query_id(query, "conversation_id")
        else:
            conversation_ref = id_field(body, "ConversationID", required=False)
        if bot_id == "0":
            raise bind("code=103000000 message=invalid parameter : bot id is required")
        messages = self._additional_messages(items or [])
        store = self.store
        with store.cond:
            bot = store.bots.get(bot_id)
            if bot is None:
                raise business(AGENT_RUN_ERROR, "agent run error : agent not exists")
            if bot.owner != principal:
                raise business(AGENT_RUN_ERROR, "agent run error : unauthorized access : agent not own")
            if bot.online is None or API_CONNECTOR not in bot.connectors:
                raise business(AGENT_RUN_ERROR, f"agent run error : invalid parameter : agent not published, "
                                                f"agentID={bot_id} connectorID={API_CONNECTOR}")
            conversation = store.conversations.get(conversation_ref) if conversation_ref else None
            if conversation is not None and conversation.owner != principal:
                raise business(CONV_PERMISSION, "unauthorized access : user not match")
            if conversation is None:  # absent or unknown: a new conversation
                conversation = StudioConversation(_id(), principal)
                store.conversations[conversation.conversation_id] = conversation
            chat = StudioChat(_id(), principal, bot_id, conversation, _now(), meta_data)
            store.chats[chat.chat_id] = chat
            query_text = ""
            for role, content, content_type, kind in messages:
                chat.messages.append(chat.message(_id(), role, kind, content, content_type))
                if content:
                    conversation.history.append((role, content))
            if messages and messages[-1][0] == "user":
                query_text = messages[-1][1]
            history = list(conversation.history)
            if store.closing:
                chat.halt.set()
            store.emit(chat, frame("conversation.chat.created", chat.as_object()))
            created = chat.as_object()
        worker = threading.Thread(target=run_chat, args=(store, chat, history, query_text, self.server.owner.token_delay),
                                  name=f"studio-chat-{chat.chat_id}", daemon=True)
        worker.start()
        if stream is False:
            self._answer(200, {"BaseResp": None, "msg": "", "data": created, "code": 0})
        else:
            self._stream(chat)

    @staticmethod
    def _additional_messages(items: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        """Role user|assistant, type question|answer: anything else is a pre-run error
        (reading 3), found before the run starts. A content_type other than text or
        object_string is taken, its content dropped."""
        out = []
        for index, item in enumerate(items):
            role = item.get("role")
            kind = item.get("type")
            content = item.get("content", "")
            content_type = item.get("content_type") or "text"
            if role not in ("user", "assistant"):
                raise business(CONV_INVALID, f"invalid parameter : additional_messages[{index}].role must be user or assistant")
            if kind not in (None, "", "question", "answer"):
                raise business(CONV_INVALID, f"invalid parameter : additional_messages[{index}].type must be question or answer")
            if not isinstance(content, str) or not isinstance(content_type, str):
                raise business(CONV_INVALID, f"invalid parameter : additional_messages[{index}] content or content_type")
            if content_type not in ("text", "object_string"):
                content = ""  # accepted, but without content (coze-wire §2.1)
            out.append((role, content, content_type, kind or ("question" if role == "user" else "answer")))
        return out

    def _stream(self, chat: StudioChat) -> None:
        self._start_stream()
        index = 0
        try:
            while True:
                with self.store.cond:
                    while index >= len(chat.events):
                        self.store.cond.wait(1.0)
                    batch, index = chat.events[index:], len(chat.events)
                for event in batch:
                    if event is None:
                        return  # the body ends with the close
                    self._write_cut(event)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the run goes on without its reader

    def _chat_of(self, principal: str, query: dict[str, list[str]]) -> StudioChat:
        conversation_id = query_id(query, "conversation_id")
        chat_id = query_id(query, "chat_id")
        chat = self.store.chats.get(chat_id)
        if chat is None or chat.conversation.conversation_id != conversation_id:
            raise business(RECORD_NOT_FOUND, "record not found or nothing to update")
        if chat.owner != principal:
            raise business(CONV_PERMISSION, "unauthorized access : user not match")
        return chat

    def act_chat_retrieve(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        with self.store.cond:
            data = self._chat_of(principal, query).as_object()
        self._ok(data)

    def act_message_list(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        with self.store.cond:
            messages = [dict(m) for m in self._chat_of(principal, query).messages]
        self._answer(200, {"Messages": messages, "msg": "", "code": 0})

    def act_chat_cancel(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        chat_id = id_field(body, "chat_id") or ""
        conversation_id = id_field(body, "conversation_id") or ""
        with self.store.cond:
            chat = self.store.chats.get(chat_id)
            if chat is None:
                raise bind("record not found")
            if chat.owner != principal:
                raise bind("user not match")
            if chat.conversation.conversation_id != conversation_id:
                raise bind("conversation not match")
            if chat.status not in ("created", "in_progress"):
                raise business(NOT_CANCELLABLE, "in progress can not be cancelled")
            chat.status = "cancelled"
            chat.halt.set()
            data = chat.as_object()
            self.store.cond.notify_all()
        self._ok(data)

    # ------------------------------------------------------------ /api/conversation/chat

    def act_conversation_chat(self, principal: str, raw: bytes, query: dict[str, list[str]], path: tuple[str, ...]) -> None:
        body = _json_body(raw)
        if isinstance(body.get("bot_id"), (int, float)) and not isinstance(body.get("bot_id"), bool):
            raise bind("bind body failed, err=bot_id: expected a string of digits")
        bot_id = str_field(body, "bot_id") or "0"
        conversation_ref = id_field(body, "conversation_id") or ""
        query_text = str_field(body, "query")
        if not query_text:
            raise bind("'query' field is a 'required' parameter, but the request does not have it")
        int_field(body, "scene", required=True)
        content_type = str_field(body, "content_type") or "text"
        draft_mode = bool_field(body, "draft_mode") or False
        str_map(body, "custom_variables")
        if body.get("extra") is not None and not isinstance(body["extra"], dict):
            raise bind("bind body failed, err=extra: expected an object")
        store = self.store
        history: list[tuple[str, str]] = []
        with store.cond:
            error, shown, conversation = self._run_check(principal, bot_id, conversation_ref, draft_mode)
            if conversation is not None:
                conversation.history.append(("user", query_text))
                history = list(conversation.history)
        self._start_stream()
        seq = 0

        def send(name: str, payload: Any | None) -> None:
            nonlocal seq
            self._write_cut(frame(name, payload))
            seq += 1

        def event(role: str, kind: str, content: str, message_id: str, reply_id: str, finish: bool, index: int,
                  section_id: str, conversation_id: str, message_index: int) -> dict[str, Any]:
            message = {"source": 0, "reasoning_content": "", "sender_id": bot_id if role == "assistant" else "",
                       "message_index": str(message_index), "content_time": int(time.time() * 1000), "status": "",
                       "extra_info": {}, "section_id": section_id, "reply_id": reply_id, "message_id": message_id,
                       "content_type": content_type if role == "user" else "text", "content": content, "type": kind,
                       "role": role}
            return {"seq_id": seq, "conversation_id": conversation_id, "index": index, "is_finish": finish,
                    "message": message}

        try:
            if error is not None or conversation is None or shown is None:
                failed = event("assistant", "answer", f"Something error:{error}", _id(), "", True, 0, "",
                               conversation_ref, 0)
                send("message", failed)
                send("done", None)
                return
            cid, section = conversation.conversation_id, conversation.section_id
            question_id, answer_id = _id(), _id()
            turn = sum(1 for role, _ in history if role == "user")
            count = len(history)
            send("message", event("user", "ack", query_text, question_id, question_id, True, 0, section, cid, count))
            pieces = compose_answer(query_text, turn)
            for number, piece in enumerate(pieces):
                if self.server.owner.token_delay:
                    time.sleep(self.server.owner.token_delay)
                send("message", event("assistant", "answer", piece, answer_id, question_id, False, number, section, cid,
                                      count + 1))
            content = "".join(pieces)
            send("message", event("assistant", "answer", content, answer_id, question_id, True, len(pieces), section, cid,
                                  count + 1))
            send("message", event("assistant", "verbose", VERBOSE_CONTENT, _id(), question_id, True, len(pieces) + 1,
                                  section, cid, count + 2))
            with store.cond:
                conversation.history.append(("assistant", content))
            send("done", None)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _run_check(self, principal: str, bot_id: str, conversation_ref: str,
                   draft_mode: bool) -> tuple[str | None, dict[str, Any] | None, StudioConversation | None]:
        """(error text, the bot version chatted with, the conversation): a run error is an
        answer message, never an HTTP error."""
        store = self.store
        bot = store.bots.get(bot_id) if _digits(bot_id) else None
        if bot is None:
            return "agent not exists", None, None
        if bot.owner != principal:
            return "unauthorized access : agent not own", None, None
        shown = bot.draft if draft_mode else bot.online
        if shown is None:
            return f"invalid parameter : agent not published, agentID={bot_id}", None, None
        if conversation_ref == "0":
            conversation = StudioConversation(_id(), principal)
            store.conversations[conversation.conversation_id] = conversation
        else:
            found = store.conversations.get(conversation_ref)
            if found is None:
                return "record not found : conversation not exist", None, None
            if found.owner != principal:
                return "unauthorized access : user not match", None, None
            conversation = found
        return None, shown, conversation
