"""Chat: ``POST /v3/chat``, ``POST /api/conversation/chat`` and ``POST /v3/chat/cancel``.

A chat is prepared in full before the first byte goes out (every 4xx is decided
while an envelope can still be sent), then answered either as one JSON envelope or as
an event stream (spec "流式响应 (SSE)"):

    conversation.chat.created, conversation.chat.in_progress   (start_events)
    conversation.message.delta ...                             (one per token)
    conversation.message.completed                             (content = joined deltas)
    conversation.chat.completed                                (run_record_item, usage)
    conversation.stream.done                                   (terminal_event)

Every payload carries ``"event"`` equal to the SSE name, as in the spec's example.
The legal forms of ServerConfig change this shape (``message_shape``: no deltas, or
several messages; ``unknown_events``; ``payload_event_key``: no ``"event"`` key).
A failure (model.FAIL_TRIGGER) sends the error event and ``conversation.chat.failed``
instead of the message events that remain; a cancel or a server stop sends
``conversation.chat.failed``; both still end with the terminal event.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import model
from .access import owned_bot, owned_conversation
from .config import AnswerStyle, ServerConfig
from .eventstream import SseEvent, StreamWriter
from .ids import format_chat_id, format_conversation_id, format_message_id
from .inputs import Fields, Message, bad_request, read_object
from .model import Turn
from .responses import ApiError, ok_response
from .runtime import RunningChat, Runtime, pause
from .store import BotProfile, Conversation, Store, now_seconds
from .stream_faults import Item, apply_stream_faults


@dataclass(frozen=True)
class ChatPlan:
    """Everything a chat answer needs, fixed before the answer starts."""

    bot_id: int
    profile: BotProfile
    conversation: Conversation
    chat_id: str
    message_id: str
    created_at: int
    history: list[Turn]
    turn: int

    @property
    def fails(self) -> bool:
        return model.should_fail(self.history)

    def answer(self, style: AnswerStyle) -> str:
        return model.answer(self.history, self.turn, self.profile.name, style)


# Fault state (faults/wire.py) --------------------------------------------------------

#: chat_unknown_bot_answered: who answers for a bot that does not exist.
STAND_IN_BOT = BotProfile(name="Default assistant")


@dataclass
class _FaultState:
    """What the conversation faults remember, per server."""

    #: conv_reused_without_id: (principal, bot id, user_id) -> the last conversation.
    last_conversation: dict[tuple[str, int, str | None], str] = field(default_factory=dict)
    #: chat_abort_breaks_conversation: conversations whose stream lock was never released.
    locked: set[str] = field(default_factory=set)


_FAULT_STATES: weakref.WeakKeyDictionary[Runtime, _FaultState] = weakref.WeakKeyDictionary()


def _fault_state(runtime: Runtime) -> _FaultState:
    return _FAULT_STATES.setdefault(runtime, _FaultState())


# Handlers ---------------------------------------------------------------------------


async def chat_v3(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /v3/chat`` (spec "Chat V3 - 智能体对话")."""
    body = await read_object(request, runtime.config)
    try:
        return await _chat_v3(runtime, request, principal, body)
    except ApiError as error:
        return _error_answer(runtime, error, streamed=body.get("stream") is True)


#: The refusal faults of the optional request objects (faults/wire.py), by field.
_REFUSED_FIELD_FAULTS = {
    "custom_variables": "chat_custom_variables_refused",
    "meta_data": "chat_meta_data_refused",
    "extra_params": "chat_extra_params_refused",
}


async def _chat_v3(runtime: Runtime, request: Request, principal: str, body: dict[str, Any]) -> Response:
    has = runtime.config.has
    fields = Fields(body, faults=runtime.config.faults)
    if has("chat_missing_bot_id_404") and body.get("bot_id") is None:
        bot_id = 0  # fault: a missing bot_id is looked up as bot 0 (404), not refused
    else:
        bot_id = fields.bot_id("bot_id")
    user_id = body.get("user_id")
    if not (has("chat_missing_user_id_accepted") and user_id is None) and not (
        has("chat_user_id_object_accepted") and isinstance(user_id, dict)  # fault: either one is accepted
    ):
        fields.required_str("user_id", non_empty=True)  # READING: a missing user_id is 400
    if has("chat_stream_wrong_type_truthy") and not isinstance(body.get("stream"), bool | None):
        stream = bool(body["stream"])  # fault: a wrong-typed stream read by its truthiness ("false" streams)
    else:
        stream = fields.bool_("stream") or (has("chat_stream_default_true") and "stream" not in body)  # fault
    if has("chat_bot_id_string_refused") and not stream and isinstance(body.get("bot_id"), str):
        bad_request("invalid bot_id: expected an integer")  # fault: the table's JSON string refused
    messages = fields.messages("additional_messages")
    if has("msg_text_refused") and not stream and any(m.content_type == "text" for m in messages):
        bad_request("invalid content_type: text is not supported")  # fault
    for name in ("custom_variables", "meta_data", "extra_params"):
        fields.string_map(name)
        if has(_REFUSED_FIELD_FAULTS[name]) and name in body:
            bad_request(f"unsupported field: {name}")  # fault: a documented object refused
    # READING "Conversation id in a chat request": body ConversationID, body
    # conversation_id or ?conversation_id= -- this server honours the forms of
    # conversation_keys (all three by default); every form is type-checked.
    refs = {
        "ConversationID": None if has("conv_conversationid_ignored") else fields.conversation_ref("ConversationID"),  # fault
        "conversation_id": fields.conversation_ref("conversation_id"),
        "query": _query_conversation_ref(request),
    }
    conversation_ref = _one_conversation_ref(*(refs[key] for key in runtime.config.conversation_keys))
    plan = _prepare(runtime, principal, bot_id, conversation_ref, messages, user_id=str(user_id))
    # fault: the answer to a chat with stream omitted is slow (BP-002)
    slow = runtime.config.slow_answer_seconds if has("chat_slow_answer") and "stream" not in body else 0.0
    return await _respond(runtime, plan, stream, extra_delay=slow)


async def chat_internal(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/conversation/chat`` (spec "内部智能体运行"): answered like /v3/chat.

    ``query`` is the user's message; ``additional_messages`` go before it.
    """
    body = await read_object(request, runtime.config)
    try:
        return await _chat_internal(body, runtime, principal)
    except ApiError as error:
        return _error_answer(runtime, error, streamed=_run_streams(runtime.config, body))


async def _chat_internal(body: dict[str, Any], runtime: Runtime, principal: str) -> Response:
    has = runtime.config.has
    fields = Fields(body, faults=runtime.config.faults)
    if has("run_missing_agent_id_404") and body.get("agent_id") is None:
        agent_id = 0  # fault: a missing agent_id is looked up as agent 0 (404), not refused
    else:
        agent_id = fields.bot_id("agent_id")
    if has("run_missing_query_accepted") and body.get("query") is None:
        query = None  # fault: a run without query is answered from additional_messages alone
    else:
        query = fields.required_str("query", non_empty=True)
    fields.bool_("stream")
    stream = _run_streams(runtime.config, body)
    messages = fields.messages("additional_messages")
    conversation_ref = fields.conversation_ref("conversation_id")
    if query is not None:
        messages.append(Message("user", query, "text"))
    if has("run_server_error"):
        raise ApiError(500, "internal server error")  # fault: every valid run fails
    plan = _prepare(runtime, principal, agent_id, conversation_ref, messages)
    return await _respond(runtime, plan, stream)


def _run_streams(config: ServerConfig, body: dict[str, Any]) -> bool:
    """Whether /api/conversation/chat answers as an event stream (``run_answer``;
    READING "`/api/conversation/chat` response": an envelope or an event stream)."""
    if config.run_answer == "as_asked":
        return body.get("stream") is True
    return config.run_answer == "stream"


async def cancel(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /v3/chat/cancel`` (spec "取消对话"): stops the conversation's open streams.

    A cancel with nothing running (already finished) answers success too, cancelling
    being idempotent -- or 400 with ``cancel_after_end="error"``: READING "Cancel"
    allows code 0 or an error there.
    """
    has = runtime.config.has
    fields = Fields(await read_object(request, runtime.config), faults=runtime.config.faults)
    conversation_id = fields.conversation_ref("conversation_id", required=True)
    if has("cancel_refused"):
        bad_request("missing required field: chat_id")  # fault: a field the spec does not have
    if conversation_id is None and has("cancel_missing_id_accepted"):
        return ok_response(runtime.config.success_msg)  # fault
    if conversation_id is None:
        bad_request("missing required field: conversation_id")
    if has("cancel_unknown_ok") and runtime.store.conversation(conversation_id) is None:
        return ok_response(runtime.config.success_msg)  # fault
    owned_conversation(runtime.store, runtime.config, conversation_id, principal)
    if not runtime.cancel(conversation_id) and runtime.config.cancel_after_end == "error":
        bad_request(f"no chat is running in conversation {conversation_id}")  # READING "Cancel": an error is legal
    if runtime.config.cancel_data:  # READING "Success `msg`, `data`": data is not required, nor refused
        return ok_response(runtime.config.success_msg, {"conversation_id": conversation_id, "status": "cancelled"})
    return ok_response(runtime.config.success_msg)  # no data, as in the spec's example


# Preparing ---------------------------------------------------------------------------


def _query_conversation_ref(request: Request) -> str | None:
    values = request.query_params.getlist("conversation_id")
    if len(values) > 1:
        bad_request("conversation_id given more than once in the query")
    if values and not values[0].strip():
        bad_request("invalid conversation_id: must not be empty")
    return values[0] if values else None


def _one_conversation_ref(*refs: str | None) -> str | None:
    given = {ref for ref in refs if ref is not None}
    if len(given) > 1:
        bad_request("conflicting conversation ids: ConversationID, conversation_id and ?conversation_id= differ")
    return given.pop() if given else None


def _prepare(
    runtime: Runtime,
    principal: str,
    bot_id: int,
    conversation_ref: str | None,
    messages: list[Message],
    *,
    user_id: str | None = None,
) -> ChatPlan:
    config, store = runtime.config, runtime.store
    has, state = config.has, _fault_state(runtime)
    if has("chat_unknown_bot_answered") and store.bot(bot_id) is None:
        profile: BotProfile | None = STAND_IN_BOT  # fault: an unknown bot id is answered
    else:
        profile = owned_bot(store, config, bot_id, principal).online
    if profile is None and config.draft_chat == "answer":
        profile = owned_bot(store, config, bot_id, principal).draft  # READING "Chat with a draft bot"
    if profile is None:
        # READING "Chat with a draft bot": not said; we answer with the online version
        # only, so a never-published bot has nothing to chat with.
        bad_request(f"bot {bot_id} is not published: publish it before chatting")
    if has("conv_id_not_kept"):
        conversation_ref = None  # fault: every chat starts a new conversation
    last = (principal, bot_id, user_id)
    if conversation_ref is None and has("conv_reused_without_id") and last in state.last_conversation:
        conversation_ref = state.last_conversation[last]  # fault: no id continues the last conversation
    if conversation_ref is None:
        conversation_id = format_conversation_id(store.new_id(), config.id_style)
        conversation = store.create_conversation(principal, bot_id, conversation_id)
    elif has("conv_unknown_id_adopted") and store.conversation(conversation_ref) is None:
        conversation = store.create_conversation(principal, bot_id, conversation_ref)  # fault: the unknown id kept
    elif config.unknown_conversation == "new" and not _sees(store, conversation_ref, principal):
        # READING "Chat with an unknown / another principal's `ConversationID`": a new
        # conversation with a different id (never the other one's messages).
        conversation_id = format_conversation_id(store.new_id(), config.id_style)
        conversation = store.create_conversation(principal, bot_id, conversation_id)
    else:
        conversation = owned_conversation(store, config, conversation_ref, principal)
        if conversation.bot_id != bot_id:
            bad_request(f"conversation {conversation_ref} belongs to another bot")
    if conversation.conversation_id in state.locked:
        bad_request("a chat is still running in this conversation")  # fault: chat_abort_breaks_conversation
    state.last_conversation[last] = conversation.conversation_id
    turns = [Turn(m.role, m.content, m.content_type) for m in messages]
    history, turn = store.start_chat(conversation, turns)
    return ChatPlan(
        bot_id=bot_id,
        profile=profile,
        conversation=conversation,
        chat_id=format_chat_id(store.new_id(), config.id_style),
        message_id=format_message_id(store.new_id(), config.id_style),
        created_at=now_seconds(),
        history=history,
        turn=turn,
    )


def _sees(store: Store, conversation_id: str, principal: str) -> bool:
    """Whether the principal's chat can name this conversation: it exists and is theirs."""
    conversation = store.conversation(conversation_id)
    return conversation is not None and conversation.owner == principal


def _error_answer(runtime: Runtime, error: ApiError, *, streamed: bool) -> Response:
    """An error found before a chat starts. Asked for a stream (``streamed``), the client
    gets it as the stream's error event (spec "SSE 错误事件": 流式响应中的错误通过 error 事件返回)
    unless ``stream_errors="envelope"``; READING "Errors on a streaming request" allows both."""
    if not streamed or runtime.config.stream_errors != "event":
        raise error
    config = runtime.config
    writer = StreamWriter(config, runtime.sse_format)
    code: int | str = str(error.code) if config.has("stream_error_code_string") else error.code  # fault: "400"
    events = [_error_sse(config, code, error.msg)]
    if config.has("stream_error_after_start"):
        events.insert(0, _event("conversation.chat.created", chat={"status": "created"}))  # fault: error not first

    events = [_keyed(config, event) for event in events]

    async def answer() -> AsyncIterator[bytes]:
        for piece in writer.preamble() + [p for e in events for p in writer.write(e)] + writer.flush():
            yield piece

    return StreamingResponse(answer(), headers=_stream_headers(config))


def _stream_headers(config: ServerConfig) -> dict[str, str]:
    return {
        # Set directly: Starlette would append "; charset=utf-8" to a text/* media type.
        "content-type": config.content_type,
        "cache-control": "no-store",
        "x-accel-buffering": "no",
    }


async def _respond(runtime: Runtime, plan: ChatPlan, stream: bool, *, extra_delay: float = 0.0) -> Response:
    if stream:
        headers = _stream_headers(runtime.config)
        if runtime.config.has("stream_wrong_media_type"):
            headers["content-type"] = "text/plain; charset=utf-8"  # fault
        return StreamingResponse(_stream(runtime, plan), headers=headers)
    return await _answer_once(runtime, plan, extra_delay)


# Answering ---------------------------------------------------------------------------


def _usage(plan: ChatPlan, completion_tokens: int) -> dict[str, int]:
    prompt = model.prompt_tokens(plan.history)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


async def _answer_once(runtime: Runtime, plan: ChatPlan, extra_delay: float = 0.0) -> Response:
    """The non-stream answer (spec "非流式响应"), after the time a stream would take
    (plus ``extra_delay``: the chat_slow_answer fault)."""
    config = runtime.config
    tokens = model.tokenize(plan.answer(config.answer_style))
    running = runtime.register(plan.conversation.conversation_id, streaming=False)
    try:
        if plan.fails:
            await pause(running, config.token_delay * model.TOKENS_BEFORE_FAILURE)
            # The one 500 this server sends: a simulated model failure (model.FAIL_TRIGGER).
            raise ApiError(model.FAILURE_CODE, model.FAILURE_MSG)
        await pause(running, config.token_delay * len(tokens) + extra_delay)
    finally:
        runtime.unregister(running)
    content = "".join(tokens)
    runtime.store.add_answer(plan.conversation, content)
    data = {
        "conversation_id": plan.conversation.conversation_id,
        "id": plan.message_id,
        "chat_id": plan.chat_id,
        "bot_id": plan.bot_id,
        "content": content,
        "content_type": "text",
        "role": "assistant",
        "type": "answer",
        "created_at": plan.created_at,
        "usage": _usage(plan, len(tokens)),
    }
    return ok_response(config.success_msg, _answer_faults(config, data) if config.faults else data)


def _answer_faults(config: ServerConfig, data: dict[str, Any]) -> dict[str, Any]:
    """The non-stream answer's faults (faults/wire.py)."""
    has = config.has
    if has("chat_response_without_id"):
        del data["id"], data["conversation_id"]
    if has("chat_response_content_not_string"):
        data["content"] = model.tokenize(data["content"])
    if has("chat_response_role_bot"):
        data["role"] = "bot"
    if has("chat_created_at_ms"):
        data["created_at"] *= 1000
    return data


def _chat_object(plan: ChatPlan, status: str) -> dict[str, object]:
    return {
        "id": plan.chat_id,
        "conversation_id": plan.conversation.conversation_id,
        "bot_id": plan.bot_id,
        "status": status,
        "created_at": plan.created_at,
    }


def _message_item(plan: ChatPlan, content: str, message_id: str | None = None) -> dict[str, object]:
    return {
        "id": plan.message_id if message_id is None else message_id,
        "conversation_id": plan.conversation.conversation_id,
        "chat_id": plan.chat_id,
        "bot_id": plan.bot_id,
        "role": "assistant",
        "type": "answer",
        "content": content,
        "content_type": "text",
    }


def _event(name: str, **fields: object) -> SseEvent:
    """An event whose payload carries ``"event"`` equal to its SSE name, as in the spec's example."""
    return SseEvent(name, {"event": name, **fields})


async def _stream(runtime: Runtime, plan: ChatPlan) -> AsyncIterator[bytes]:
    """The event stream of one chat, as bytes; ends promptly on cancel, failure or server stop."""
    config = runtime.config
    writer = StreamWriter(config, runtime.sse_format)
    running = runtime.register(plan.conversation.conversation_id, streaming=True)
    locked = _fault_state(runtime).locked
    try:
        if config.has("chat_abort_breaks_conversation"):
            locked.add(plan.conversation.conversation_id)  # fault: released only by the code after the loop
        for piece in writer.preamble():
            yield piece
        source = _events(runtime, plan, running)
        forms = config.unknown_events or not config.payload_event_key
        events: AsyncIterator[Item] = _legal_forms(runtime, plan, source) if forms else source
        if config.faults:
            events = apply_stream_faults(runtime, running, events)
        async with aclosing(events):  # type: ignore[type-var]  # an async generator, so it has aclose()
            async for item in events:
                for piece in writer.write(item):
                    yield piece
        for piece in writer.flush():
            yield piece
        locked.discard(plan.conversation.conversation_id)
        if config.keep_open_after_terminal > 0 and running.reason is None and not plan.fails:
            # READING "After the terminal event": the client closes; keep it open meanwhile.
            await pause(running, config.keep_open_after_terminal)
    finally:
        runtime.unregister(running)


async def _events(runtime: Runtime, plan: ChatPlan, running: RunningChat) -> AsyncGenerator[SseEvent]:
    """The events of one chat, in the order the module docstring shows."""
    config = runtime.config
    if config.start_events:
        for status in ("created", "in_progress"):
            yield _chat_event(config, f"conversation.chat.{status}", _chat_object(plan, status))
    tokens = model.tokenize(plan.answer(config.answer_style))
    index = 0
    for message_id, part in _messages(runtime, plan, tokens):
        for token in part:
            if plan.fails and index == model.TOKENS_BEFORE_FAILURE:
                for event in _failure_events(config, plan, model.FAILURE_CODE, model.FAILURE_MSG):
                    yield event
                return
            if await pause(running, config.token_delay):
                for event in _stopped_events(config, plan, running):
                    yield event
                return
            index += 1
            if config.message_shape != "completed_only":
                yield _event("conversation.message.delta", message_item=_message_item(plan, token, message_id))
        content = "".join(part)
        runtime.store.add_answer(plan.conversation, content)
        yield _event("conversation.message.completed", message_item=_message_item(plan, content, message_id))
    record = _chat_object(plan, "completed") | {"usage": _usage(plan, len(tokens))}
    yield _event("conversation.chat.completed", run_record_item=record)
    yield _event(config.terminal_event)


def _messages(runtime: Runtime, plan: ChatPlan, tokens: list[str]) -> list[tuple[str, list[str]]]:
    """The answer's messages, (id, tokens) each (READING "Messages in a stream": several
    messages per chat are legal): one, or with ``message_shape="several"`` two, the
    second with an id of its own. The tokens of all of them join to the whole answer."""
    if runtime.config.message_shape != "several":
        return [(plan.message_id, tokens)]
    half = len(tokens) // 2  # tokens >= model.MIN_TOKENS: both halves hold some
    second = format_message_id(runtime.store.new_id(), runtime.config.id_style)
    return [(plan.message_id, tokens[:half]), (second, tokens[half:])]


# Legal forms of the event sequence (ServerConfig "Stream and conversation forms") ------

_DELTA = "conversation.message.delta"
_COMPLETED = "conversation.message.completed"
_TERMINALS = ("conversation.stream.done", "done")

#: unknown_events: a type the page does not list, with a JSON payload ...
UNKNOWN_JSON_EVENT = "conversation.audio.delta"
#: ... and one whose data is not JSON at all.
UNKNOWN_TEXT_EVENT = "ping"
UNKNOWN_TEXT_DATA = "keep-alive"


def _keyed(config: ServerConfig, event: SseEvent) -> SseEvent:
    """The event as ``payload_event_key`` sends it: without the payload's ``"event"``
    key when False (READING "`event` key in SSE payloads")."""
    if config.payload_event_key or isinstance(event.payload, str) or "event" not in event.payload:
        return event
    return SseEvent(event.name, {key: value for key, value in event.payload.items() if key != "event"})


def _audio_delta(plan: ChatPlan, message_id: str) -> SseEvent:
    """An unknown event with a JSON payload: a piece of an audio message of its own."""
    item = _message_item(plan, "UklGRg==", message_id) | {"content_type": "audio"}
    return _event(UNKNOWN_JSON_EVENT, message_item=item)


async def _legal_forms(runtime: Runtime, plan: ChatPlan, events: AsyncIterator[SseEvent]) -> AsyncGenerator[SseEvent]:
    """``unknown_events`` (READING "Levels": unknown event types are legal) -- a ``ping``
    whose data is not JSON first and just before the terminal event, an audio delta after
    every message event -- and ``payload_event_key``."""
    config = runtime.config
    ping = SseEvent(UNKNOWN_TEXT_EVENT, UNKNOWN_TEXT_DATA)
    audio_id = format_message_id(runtime.store.new_id(), config.id_style)
    if config.unknown_events:
        yield ping
    async for event in events:
        if config.unknown_events and event.name in _TERMINALS:
            yield ping
        yield _keyed(config, event)
        if config.unknown_events and event.name in (_DELTA, _COMPLETED):
            yield _keyed(config, _audio_delta(plan, audio_id))


def _failure_events(config: ServerConfig, plan: ChatPlan, code: int, msg: str) -> list[SseEvent]:
    """Error event, ``conversation.chat.failed``, terminal event."""
    failed = _chat_object(plan, "failed") | {"last_error": {"code": code, "msg": msg}}
    return [
        _error_sse(config, code, msg),
        _chat_event(config, "conversation.chat.failed", failed),
        _event(config.terminal_event),
    ]


def _chat_event(config: ServerConfig, name: str, chat: dict[str, object]) -> SseEvent:
    """A chat-status event: with its chat object, or bare (``chat_payloads="bare"``)."""
    return _event(name) if config.chat_payloads == "bare" else _event(name, chat=chat)


def _error_sse(config: ServerConfig, code: int | str, msg: str) -> SseEvent:
    """``conversation.error`` carries the code and msg at the top level and under
    ``error`` (the spec's JS client reads ``data.error``); the ``error`` variant is
    exactly the spec's error-section payload ``{"code", "msg"}``."""
    name = config.error_event
    if name == "error":
        return SseEvent(name, {"code": code, "msg": msg})
    return _event(name, code=code, msg=msg, error={"code": code, "msg": msg})


def _stopped_events(config: ServerConfig, plan: ChatPlan, running: RunningChat) -> list[SseEvent]:
    """A cancelled or interrupted chat: ``conversation.chat.failed``, then the terminal event."""
    if running.reason == "cancelled":
        failed = _chat_object(plan, "cancelled")
    else:
        failed = _chat_object(plan, "failed") | {"last_error": {"code": 500, "msg": "server shutting down"}}
    return [_chat_event(config, "conversation.chat.failed", failed), _event(config.terminal_event)]
