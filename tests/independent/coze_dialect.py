"""The independent server's ``coze`` dialect: the Coze cloud v3 API as the official SDKs speak it.

Selected with ``IndependentServer(dialect="coze")``, the environment variable
``INDEPENDENT_DIALECT=coze`` or ``--dialect coze`` on the command line. Written from the
wire contract (``coze-contract.md``), the cloud captures of cozepy's test data and the
SDKs' parsers (cozepy 0.20, @coze/api 1.3), by other hands than ``conformance/reference/``
and importing nothing from ``conformance``; only the standard library and the doc
dialect's plumbing (``server.py``: the HTTP/1.0 handler, body reading, JSON output, ids).

Wherever the contract leaves a choice, this dialect takes the reading a careful reader
would think *less* usual, still legal for cozepy 0.20 and @coze/api:

=====================================  =================================================
Contract point                         this dialect's reading
=====================================  =================================================
Auth failure                           HTTP 200, ``{"code":4100}`` (not 401), no
                                       ``WWW-Authenticate``; Bearer only, the scheme
                                       case-insensitive; cookies never looked at
Business errors                        HTTP 200 with the code (an unknown route alone is
                                       HTTP 404, code 4200)
Another principal's bot, conversation, 4200 (as if unknown; not 4101)
chat
Success ``msg``                        ``""``; keys in another order (``data``, ``detail``,
                                       ``msg``, ``code``)
``/v1/bot/update`` answer              code 0 with no ``data`` key
Publish ``version``                    a millisecond timestamp string (not "1", "2")
``/v1/bots/:id`` of a never-published  4200 (the published version is the default and
bot, no ``is_published``               none exists); ``is_published=false``: the draft,
                                       whose ``version`` is ``""``
Request ids                            JSON strings only: an integer ``bot_id`` is 4000
Body ``conversation_id`` on /v3/chat   ignored (the query names the conversation)
A chat in a busy conversation          4016 while another chat of it is created or
                                       in progress
JSON answers                           every non-ASCII character as a ``\\uXXXX`` escape;
                                       HTTP/1.0, the body delimited by the close
Extra fields                           ``section_id``, ``meta_data``, ``reasoning_content``,
                                       ``updated_at`` on messages; ``section_id``,
                                       ``meta_data`` on chats; ``owner_user_id``,
                                       ``workflow_info_list`` on bots; ``check_not_pass`` on
                                       a create, ``publish_time`` on a publish
Chat timestamps                        ``completed_at`` and ``failed_at`` always present,
                                       0 while unset
Usage                                  on every chat object (zeros until the end)
Start events                           ``conversation.chat.created`` only; no
                                       ``conversation.chat.in_progress``
SSE framing                            ``event: `` and ``data: `` with a space after the
                                       colon, CRLF line ends, ``Content-Type:
                                       text/event-stream; charset=utf-8``; every event in
                                       several writes: one cut inside the first multi-byte
                                       UTF-8 character, one between the CR and LF of the
                                       last line end
Deltas                                 of irregular size (1, 4, 2, 7, 3, 1, 5, 2 characters
                                       in turn); the answer holds a 4-byte character
Messages of a stream                   the answer (deltas, then completed), then a
                                       ``verbose`` and a ``follow_up`` message completed
                                       without deltas
``done``                               ``data: "[DONE]"``, then the server closes
A cancelled stream                     the partial answer's ``message.completed`` (when
                                       deltas were sent), then an ``error`` event
                                       ``{"code":5000,"msg":…}`` and the close, no ``done``
A stream halted by the server's stop   ``conversation.chat.failed`` (status failed,
                                       ``last_error`` 5000), then ``done``
Cancel answer                          the chat object, status ``canceled``
``/v3/chat/retrieve``                  GET and POST
``/v3/chat/message/list``              GET and POST; the chat's messages, the user's
                                       question first, then the answer, verbose, follow_up
Log id                                 ``x-tt-logid`` header equal to ``detail.logid`` on
                                       every JSON answer (the header on streams too)
Rate limits                            none (the cloud documents QPS, the contract none)
=====================================  =================================================
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .server import ApiError, _RequestHandler, dump_json, new_id

BAD_REQUEST = 4000
AUTH_FAILED = 4100
NOT_FOUND = 4200
NOT_PUBLISHED = 4015
BUSY = 4016
NOT_CANCELLABLE = 4104
SERVER_ERROR = 5000

#: The API connector ("Bot as API"): a bot chats on /v3/chat only once published to it.
API_CONNECTOR = "1024"
MAX_NAME = 20
MAX_DESCRIPTION = 500
CONTENT_TYPES = frozenset({"text", "object_string", "card"})
RUNNING = ("created", "in_progress")
#: Delta sizes in characters, taken in turn.
DELTA_SIZES = (1, 4, 2, 7, 3, 1, 5, 2)
DEFAULT_MODEL = {"model_name": "independent-echo", "model_id": "1706077826"}
FOLLOW_UP = "还想了解什么?"
VERBOSE = json.dumps({"msg_type": "generate_answer_finish",
                      "data": json.dumps({"finish_reason": 0, "FinData": ""}, separators=(",", ":")),
                      "from_module": None, "from_unit": None}, separators=(",", ":"))


def _id() -> str:
    return str(new_id())


def _now() -> int:
    return int(time.time())


def _logid() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10).upper()


def _bad(msg: str) -> ApiError:
    return ApiError(BAD_REQUEST, msg)


# --------------------------------------------------------------------------- fields


def _json_object(body: bytes) -> dict[str, Any]:
    def reject(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(body.decode("utf-8"), parse_constant=reject)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad("invalid request: the body is not valid json") from None
    if not isinstance(value, dict):
        raise _bad("invalid request: the body must be a json object")
    return value


def _opt(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """An optional field: absent and null are the same; else it must be of ``kind``."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise _bad(f"invalid parameter {key}: expected {what}")
    if not isinstance(value, kind):
        raise _bad(f"invalid parameter {key}: expected {what}")
    return value


def _req_str(body: Mapping[str, Any], key: str) -> str:
    value: str | None = _opt(body, key, str, "a string")
    if not value:
        raise _bad(f"missing required parameter {key}")
    return value


def _str_map(body: Mapping[str, Any], key: str) -> dict[str, str] | None:
    value: dict[str, str] | None = _opt(body, key, dict, "an object")
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise _bad(f"invalid parameter {key}: values must be strings")
    return value


def _query(query: Mapping[str, list[str]], key: str) -> str:
    values = query.get(key) or [""]
    if not values[0]:
        raise _bad(f"missing required parameter {key}")
    return values[0]


def _name(body: Mapping[str, Any], required: bool) -> str | None:
    name = _req_str(body, "name") if required else _opt(body, "name", str, "a string")
    if name is not None and not 1 <= len(name) <= MAX_NAME:
        raise _bad(f"invalid parameter name: 1 to {MAX_NAME} characters")
    return name


def _bot_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The settable fields of a create or an update that are present."""
    changes: dict[str, Any] = {}
    description = _opt(body, "description", str, "a string")
    if description is not None:
        if len(description) > MAX_DESCRIPTION:
            raise _bad(f"invalid parameter description: at most {MAX_DESCRIPTION} characters")
        changes["description"] = description
    icon = _opt(body, "icon_file_id", str, "a string")
    if icon is not None:
        changes["icon_url"] = f"https://lf-independent.invalid/obj/icon/{icon}.png"
    prompt_info = _opt(body, "prompt_info", dict, "an object")
    if prompt_info is not None:
        changes["prompt"] = _opt(prompt_info, "prompt", str, "a string") or ""
    onboarding = _opt(body, "onboarding_info", dict, "an object")
    if onboarding is not None:
        questions = _opt(onboarding, "suggested_questions", list, "an array") or []
        if not all(isinstance(q, str) for q in questions):
            raise _bad("invalid parameter onboarding_info.suggested_questions: strings")
        changes["onboarding"] = {"suggested_questions": list(questions),
                                 "prologue": _opt(onboarding, "prologue", str, "a string") or ""}
    model = _opt(body, "model_info_config", dict, "an object")
    if model is not None:
        model_id = _opt(model, "model_id", str, "a string")
        if model_id:
            changes["model"] = {"model_name": f"model-{model_id}", "model_id": model_id}
    for key in ("plugin_id_list", "workflow_id_list", "knowledge", "suggest_reply_info"):
        _opt(body, key, dict, "an object")
    return changes


# --------------------------------------------------------------------------- store


@dataclass
class CozeBot:
    bot_id: str
    owner: str
    space_id: str
    create_time: int
    draft: dict[str, Any]
    online: dict[str, Any] | None = None
    connectors: set[str] = field(default_factory=set)


@dataclass
class CozeConversation:
    conversation_id: str
    owner: str
    section_id: str = field(default_factory=_id)
    #: (role, content) of every finished turn, for the fake model.
    history: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CozeChat:
    chat_id: str
    owner: str
    bot_id: str
    conversation: CozeConversation
    meta_data: dict[str, str]
    created_at: int
    status: str = "created"
    completed_at: int = 0
    failed_at: int = 0
    last_error: dict[str, Any] = field(default_factory=lambda: {"msg": "", "code": 0})
    usage: dict[str, int] = field(default_factory=lambda: {"input_count": 0, "output_count": 0, "token_count": 0})
    #: This chat's message objects, in the message list's order.
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: The stream's framed events; None marks the end of the stream.
    events: list[bytes | None] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)
    reason: str = ""

    def as_object(self) -> dict[str, Any]:
        """The chat object, keys in another order than the contract's, extras included."""
        return {"section_id": self.conversation.section_id, "usage": dict(self.usage), "status": self.status,
                "last_error": dict(self.last_error), "failed_at": self.failed_at,
                "completed_at": self.completed_at, "created_at": self.created_at, "meta_data": dict(self.meta_data),
                "bot_id": self.bot_id, "conversation_id": self.conversation.conversation_id, "id": self.chat_id}

    def message(self, message_id: str, role: str, kind: str, content: str, content_type: str = "text",
                stamp: int | None = None) -> dict[str, Any]:
        stamp = _now() if stamp is None else stamp
        return {"reasoning_content": "", "meta_data": {}, "section_id": self.conversation.section_id,
                "updated_at": stamp, "created_at": stamp, "chat_id": self.chat_id, "content_type": content_type,
                "content": content, "type": kind, "role": role, "bot_id": self.bot_id,
                "conversation_id": self.conversation.conversation_id, "id": message_id}


class CozeStore:
    """Bots, conversations and chats of the coze dialect, behind one condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.bots: dict[str, CozeBot] = {}
        self.conversations: dict[str, CozeConversation] = {}
        self.chats: dict[str, CozeChat] = {}
        self.closing = False

    def bot(self, bot_id: str, principal: str) -> CozeBot:
        bot = self.bots.get(bot_id)
        if bot is None or bot.owner != principal:  # another's: as if unknown
            raise ApiError(NOT_FOUND, f"bot_id={bot_id} does not exist")
        return bot

    def conversation(self, conversation_id: str, principal: str) -> CozeConversation:
        conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation.owner != principal:
            raise ApiError(NOT_FOUND, f"conversation_id={conversation_id} does not exist")
        return conversation

    def chat(self, conversation_id: str, chat_id: str, principal: str) -> CozeChat:
        chat = self.chats.get(chat_id)
        if chat is None or chat.owner != principal or chat.conversation.conversation_id != conversation_id:
            raise ApiError(NOT_FOUND, f"chat_id={chat_id} does not exist in conversation_id={conversation_id}")
        return chat

    def emit(self, chat: CozeChat, name: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else dump_json(payload)
        with self.cond:
            chat.events.append(b"event: " + name.encode("ascii") + b"\r\ndata: " + data + b"\r\n\r\n")
            self.cond.notify_all()

    def end(self, chat: CozeChat) -> None:
        with self.cond:
            chat.events.append(None)
            self.cond.notify_all()

    def halt_all(self) -> None:
        """The server stops: every running chat is halted, and any started from now on."""
        with self.cond:
            self.closing = True
            running = [c for c in self.chats.values() if c.status in RUNNING]
            for chat in running:
                chat.reason = chat.reason or "server stopped"
                chat.halt.set()
            self.cond.notify_all()


# --------------------------------------------------------------------------- fake model


def compose_answer(history: list[tuple[str, str]]) -> str:
    users = [content for role, content in history if role == "user"]
    excerpt = (users[-1] if users else "")[:24] or "(空)"
    # About 100 characters: some 30 deltas, a few hundred ms at the default token delay.
    return (f"收到第{len(users)}个问题:「{excerpt}」🙂 上下文共{len(history)}条消息。这是独立服务器的回答,"
            "由一个不调用任何模型的假模型按固定的模板写成,只为让客户端看到分成许多小段的增量消息,"
            "以及与增量拼接结果完全相同的完成消息。谢谢!")


def pieces(text: str) -> list[str]:
    out, start, turn = [], 0, 0
    while start < len(text):
        size = DELTA_SIZES[turn % len(DELTA_SIZES)]
        out.append(text[start:start + size])
        start += size
        turn += 1
    return out


def run_chat(store: CozeStore, chat: CozeChat, history: list[tuple[str, str]], delay: float) -> None:
    """The chat's run, in a thread of its own: it goes on whether or not a stream reads it."""
    try:
        _run(store, chat, history, delay)
    finally:
        store.end(chat)


def _run(store: CozeStore, chat: CozeChat, history: list[tuple[str, str]], delay: float) -> None:
    answer_id = _id()
    stamp = _now()
    sent: list[str] = []
    for piece in pieces(compose_answer(history)):
        if chat.halt.wait(delay) if delay > 0 else chat.halt.is_set():
            break
        sent.append(piece)
        with store.cond:
            delta = chat.message(answer_id, "assistant", "answer", piece, stamp=stamp)
        store.emit(chat, "conversation.message.delta", delta)
    answer = "".join(sent)
    with store.cond:
        halted = chat.halt.is_set()
        if sent:
            completed = chat.message(answer_id, "assistant", "answer", answer, stamp=stamp)
            chat.messages.append(completed)
        output = len(answer)
        input_count = sum(len(content) for _, content in history) + 1
        chat.usage = {"input_count": input_count, "output_count": output, "token_count": input_count + output}
        if not halted:
            extras = [chat.message(_id(), "assistant", "verbose", VERBOSE),
                      chat.message(_id(), "assistant", "follow_up", FOLLOW_UP)]
            chat.messages.extend(extras)
            chat.status, chat.completed_at = "completed", _now()
        elif chat.reason != "cancel":
            chat.status, chat.failed_at = "failed", _now()
            chat.last_error = {"msg": chat.reason or "the chat was stopped", "code": SERVER_ERROR}
        if chat.status != "failed":  # completed, or cancelled: the partial answer stays
            chat.conversation.history.extend([*history[len(chat.conversation.history):], ("assistant", answer)])
        final = chat.as_object()
    if sent:
        store.emit(chat, "conversation.message.completed", completed)
    if not halted:
        for extra in extras:
            store.emit(chat, "conversation.message.completed", extra)
        store.emit(chat, "conversation.chat.completed", final)
        store.emit(chat, "done", b'"[DONE]"')
    elif chat.reason == "cancel":
        store.emit(chat, "error", {"msg": "the chat was canceled", "code": SERVER_ERROR})
    else:
        store.emit(chat, "conversation.chat.failed", final)
        store.emit(chat, "done", b'"[DONE]"')


# --------------------------------------------------------------------------- handler


ROUTES: dict[str, tuple[frozenset[str], str]] = {
    "/v3/chat": (frozenset({"POST"}), "chat"),
    "/v3/chat/retrieve": (frozenset({"GET", "POST"}), "chat_retrieve"),
    "/v3/chat/message/list": (frozenset({"GET", "POST"}), "message_list"),
    "/v3/chat/cancel": (frozenset({"POST"}), "chat_cancel"),
    "/v1/bot/create": (frozenset({"POST"}), "bot_create"),
    "/v1/bot/update": (frozenset({"POST"}), "bot_update"),
    "/v1/bot/publish": (frozenset({"POST"}), "bot_publish"),
    "/v1/bot/get_online_info": (frozenset({"GET"}), "online_info"),
}


class CozeRequestHandler(_RequestHandler):
    """The coze dialect over the doc dialect's plumbing (HTTP/1.0, body reading)."""

    server_version = "IndependentCozeCloud/1.0"

    def setup(self) -> None:
        super().setup()
        # Small writes leave at once: the cut events really go out in several segments.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def store(self) -> CozeStore:
        store: CozeStore = self.server.owner.coze_store
        return store

    # ------------------------------------------------------------ envelope

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        self._send_envelope_error(ApiError(BAD_REQUEST, message or "bad request"))

    def _envelope(self, status: int, payload: dict[str, Any]) -> None:
        log = _logid()
        payload["detail"] = {"logid": log}
        ordered: dict[str, Any] = {key: payload[key] for key in ("data", "detail", "msg", "code") if key in payload}
        self._send_json(status, ordered, {"x-tt-logid": log})

    def _send_envelope_error(self, error: ApiError) -> None:
        self.answered_error = True
        status = 404 if error.headers.get("x-status") == "404" else 200
        self._envelope(status, {"msg": error.msg, "code": error.code})

    def _send_ok(self, data: Any, *, with_data: bool = True) -> None:
        self._envelope(200, {"data": data, "msg": "", "code": 0} if with_data else {"msg": "", "code": 0})

    def _dispatch(self) -> None:
        try:
            self._dispatch_or_raise()
        except ApiError as error:
            self._send_envelope_error(error)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug of this server: still the envelope
            self._send_envelope_error(ApiError(SERVER_ERROR, "internal server error"))

    def _dispatch_or_raise(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body, oversized = self._read_body()
        args: tuple[str, ...] = ()
        if path in ROUTES:
            methods, action = ROUTES[path]
        elif path.startswith("/v1/bots/") and path.count("/") == 3 and path != "/v1/bots/":
            methods, action, args = frozenset({"GET"}), "bot_get", (path.rsplit("/", 1)[1],)
        else:
            raise ApiError(NOT_FOUND, f"the route {path} does not exist", {"x-status": "404"})
        if self.command not in methods:
            raise _bad(f"method {self.command} is not supported on {path}")
        principal = self._principal()
        fields: dict[str, Any] = {}
        if self.command == "POST" and action not in ("chat_retrieve", "message_list"):
            if oversized:
                raise _bad("invalid request: the body is too large")
            fields = _json_object(body)
        getattr(self, action)(principal, fields, query, args)

    def _principal(self) -> str:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        principal = self.server.owner._principal_for(token.strip(), 0) if scheme.lower() == "bearer" else ""
        if not principal:
            raise ApiError(AUTH_FAILED, "authentication is invalid: the access token is missing or wrong")
        return principal

    # ------------------------------------------------------------ bots

    def bot_create(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        space_id = _req_str(body, "space_id")
        name = _name(body, required=True)
        changes = _bot_fields(body)
        stamp = _now()
        draft = {"name": name, "description": "", "prompt": "", "update_time": stamp,
                 "icon_url": "https://lf-independent.invalid/obj/icon/default.png",
                 "onboarding": {"suggested_questions": [], "prologue": ""}, "model": dict(DEFAULT_MODEL)}
        draft.update(changes)
        with self.store.cond:
            bot_id = _id()
            self.store.bots[bot_id] = CozeBot(bot_id, principal, space_id, stamp, draft)
        self._send_ok({"check_not_pass": False, "bot_id": bot_id})

    def bot_update(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        bot_id = _req_str(body, "bot_id")
        name = _name(body, required=False)
        changes = _bot_fields(body)
        if name is not None:
            changes["name"] = name
        with self.store.cond:
            bot = self.store.bot(bot_id, principal)
            bot.draft.update(changes)
            bot.draft["update_time"] = _now()
        self._send_ok(None, with_data=False)

    def bot_publish(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        bot_id = _req_str(body, "bot_id")
        connectors = _opt(body, "connector_ids", list, "an array of strings")
        if not connectors or not all(isinstance(c, str) and c for c in connectors):
            raise _bad("missing required parameter connector_ids")
        with self.store.cond:
            bot = self.store.bot(bot_id, principal)
            version = str(time.time_ns() // 1_000_000)
            if bot.online is not None and int(version) <= int(bot.online["version"]):
                version = str(int(bot.online["version"]) + 1)
            bot.online = {**json.loads(json.dumps(bot.draft)), "version": version, "update_time": _now()}
            bot.connectors.update(connectors)
        self._send_ok({"publish_time": _now(), "version": version, "bot_id": bot_id})

    def _bot_info(self, bot: CozeBot, shown: dict[str, Any], version: str) -> dict[str, Any]:
        owner = str(int.from_bytes(hashlib.sha256(bot.owner.encode()).digest()[:7], "big") + 10**17)
        return {"workflow_info_list": [], "owner_user_id": owner, "model_info": dict(shown["model"]),
                "plugin_info_list": [], "bot_mode": 0, "onboarding_info": dict(shown["onboarding"]),
                "prompt_info": {"prompt": shown["prompt"]}, "version": version,
                "update_time": shown["update_time"], "create_time": bot.create_time, "icon_url": shown["icon_url"],
                "description": shown["description"], "name": shown["name"], "bot_id": bot.bot_id}

    def online_info(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        bot_id = _query(query, "bot_id")
        with self.store.cond:
            bot = self.store.bot(bot_id, principal)
            if bot.online is None:
                raise ApiError(NOT_FOUND, f"bot_id={bot_id} has no published version")
            data = self._bot_info(bot, bot.online, bot.online["version"])
        self._send_ok(data)

    def bot_get(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                path: tuple[str, ...]) -> None:
        bot_id = path[0]
        flag = (query.get("is_published") or ["true"])[0].lower()
        if flag not in ("true", "false", "1", "0"):
            raise _bad("invalid parameter is_published: true or false")
        with self.store.cond:
            bot = self.store.bot(bot_id, principal)
            if flag in ("false", "0"):
                data = self._bot_info(bot, bot.draft, "")
            elif bot.online is None:
                raise ApiError(NOT_FOUND, f"bot_id={bot_id} has no published version")
            else:
                data = self._bot_info(bot, bot.online, bot.online["version"])
        self._send_ok(data)

    # ------------------------------------------------------------ chat

    def chat(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        stream = _opt(body, "stream", bool, "a boolean") or False
        bot_id = _req_str(body, "bot_id")
        _req_str(body, "user_id")
        new_messages = self._additional_messages(body)
        meta_data = _str_map(body, "meta_data") or {}
        _str_map(body, "custom_variables")
        _opt(body, "parameters", dict, "an object")
        _opt(body, "auto_save_history", bool, "a boolean")
        _opt(body, "enable_card", bool, "a boolean")
        conversation_id = (query.get("conversation_id") or [""])[0]
        store = self.store
        with store.cond:
            bot = store.bot(bot_id, principal)
            if API_CONNECTOR not in bot.connectors:
                raise ApiError(NOT_PUBLISHED, f"bot_id={bot_id} has not been published to the API connector")
            if conversation_id:
                conversation = store.conversation(conversation_id, principal)
                if any(c.conversation is conversation and c.status in RUNNING for c in store.chats.values()):
                    raise ApiError(BUSY, "the conversation has a chat in progress; wait or cancel it")
            else:
                conversation = CozeConversation(_id(), principal)
                store.conversations[conversation.conversation_id] = conversation
            chat = CozeChat(_id(), principal, bot_id, conversation, meta_data, _now())
            store.chats[chat.chat_id] = chat
            for role, content, content_type, kind in new_messages:
                chat.messages.append(chat.message(_id(), role, kind, content, content_type))
            history = [*conversation.history, *((role, content) for role, content, _, _ in new_messages)]
            if store.closing:
                chat.reason = "server stopped"
                chat.halt.set()
            store.emit(chat, "conversation.chat.created", chat.as_object())
            chat.status = "in_progress"  # no in_progress event is sent
            answer = chat.as_object()
        worker = threading.Thread(target=run_chat, args=(store, chat, history, self.server.owner.token_delay),
                                  name=f"coze-chat-{chat.chat_id}", daemon=True)
        worker.start()
        if stream:
            self._stream(chat)
        else:
            self._send_ok(answer)

    @staticmethod
    def _additional_messages(body: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
        items = _opt(body, "additional_messages", list, "an array") or []
        out = []
        for index, item in enumerate(items):
            where = f"additional_messages[{index}]"
            if not isinstance(item, dict):
                raise _bad(f"invalid parameter {where}: expected an object")
            role = _req_str(item, "role")
            if role not in ("user", "assistant"):
                raise _bad(f"invalid parameter {where}.role: user or assistant")
            content = _opt(item, "content", str, "a string")
            if content is None:
                raise _bad(f"missing required parameter {where}.content")
            content_type = _req_str(item, "content_type")
            if content_type not in CONTENT_TYPES:
                raise _bad(f"invalid parameter {where}.content_type: one of {'/'.join(sorted(CONTENT_TYPES))}")
            kind = _opt(item, "type", str, "a string") or ("question" if role == "user" else "answer")
            _str_map(item, "meta_data")
            out.append((role, content, content_type, kind))
        return out

    def _stream(self, chat: CozeChat) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("x-tt-logid", _logid())
        self.end_headers()
        index = 0
        try:
            while True:
                with self.store.cond:
                    while index >= len(chat.events):
                        self.store.cond.wait(1.0)
                    batch, index = chat.events[index:], len(chat.events)
                for event in batch:
                    if event is None:
                        return  # the server closes the body after the last event
                    self._write_cut(event)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the run goes on without its reader

    def _write_cut(self, event: bytes) -> None:
        """One event in several writes: cut inside its first multi-byte UTF-8 character and
        between the CR and the LF of its last line end."""
        cuts = {len(event) - 1}
        lead = next((i for i, byte in enumerate(event) if byte >= 0xC0), None)
        if lead is not None:
            cuts.add(lead + 1)
        start = 0
        for cut in [*sorted(cuts), len(event)]:
            self.wfile.write(event[start:cut])
            self.wfile.flush()
            start = cut
            if cut < len(event):
                time.sleep(0.0005)

    def _chat_of(self, principal: str, query: dict[str, list[str]]) -> CozeChat:
        conversation_id = _query(query, "conversation_id")
        chat_id = _query(query, "chat_id")
        return self.store.chat(conversation_id, chat_id, principal)

    def chat_retrieve(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        with self.store.cond:
            data = self._chat_of(principal, query).as_object()
        self._send_ok(data)

    def message_list(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        with self.store.cond:
            data = [dict(message) for message in self._chat_of(principal, query).messages]
        self._send_ok(data)

    def chat_cancel(self, principal: str, body: dict[str, Any], query: dict[str, list[str]],
                 path: tuple[str, ...]) -> None:
        conversation_id = _req_str(body, "conversation_id")
        chat_id = _req_str(body, "chat_id")
        with self.store.cond:
            chat = self.store.chat(conversation_id, chat_id, principal)
            if chat.status not in RUNNING:
                raise ApiError(NOT_CANCELLABLE, f"the chat is {chat.status} and can no longer be canceled")
            chat.status, chat.reason = "canceled", "cancel"
            chat.halt.set()
            data = chat.as_object()
        self._send_ok(data)
