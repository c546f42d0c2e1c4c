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
A failure (model.FAIL_TRIGGER) sends the error event and ``conversation.chat.failed``
instead of the message events that remain; a cancel or a server stop sends
``conversation.chat.failed``; both still end with the terminal event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import model
from .access import owned_bot, owned_conversation
from .config import AnswerStyle
from .envelope import ApiError, ok_response
from .eventstream import StreamWriter
from .ids import format_chat_id, format_conversation_id, format_message_id
from .inputs import Fields, Message, bad_request, read_body, parse_object
from .model import Turn
from .runtime import RunningChat, Runtime, pause
from .store import BotProfile, Conversation, now_seconds


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


# Handlers ---------------------------------------------------------------------------


async def chat_v3(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /v3/chat`` (spec "Chat V3 - 智能体对话")."""
    fields = Fields(parse_object(await read_body(request, runtime.config.max_body_bytes)))
    bot_id = fields.bot_id("bot_id")
    fields.required_str("user_id", non_empty=True)  # READING: a missing user_id is 400
    stream = fields.bool_("stream")
    messages = fields.messages("additional_messages")
    for name in ("custom_variables", "meta_data", "extra_params"):
        fields.string_map(name)
    # READING "Conversation id in a chat request": body ConversationID, body
    # conversation_id or ?conversation_id= -- this server honours all three.
    conversation_ref = _one_conversation_ref(
        fields.conversation_ref("ConversationID"),
        fields.conversation_ref("conversation_id"),
        _query_conversation_ref(request),
    )
    plan = _prepare(runtime, principal, bot_id, conversation_ref, messages)
    return await _respond(runtime, plan, stream)


async def chat_internal(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /api/conversation/chat`` (spec "内部智能体运行"): answered like /v3/chat.

    ``query`` is the user's message; ``additional_messages`` go before it.
    """
    fields = Fields(parse_object(await read_body(request, runtime.config.max_body_bytes)))
    agent_id = fields.bot_id("agent_id")
    query = fields.required_str("query", non_empty=True)
    stream = fields.bool_("stream")
    messages = fields.messages("additional_messages")
    conversation_ref = fields.conversation_ref("conversation_id")
    messages.append(Message("user", query, "text"))
    plan = _prepare(runtime, principal, agent_id, conversation_ref, messages)
    return await _respond(runtime, plan, stream)


async def cancel(runtime: Runtime, request: Request, principal: str) -> Response:
    """``POST /v3/chat/cancel`` (spec "取消对话"): stops the conversation's open streams.

    A cancel with nothing running (already finished) answers success too: READING
    "Cancel" allows code 0 or an error there, and cancelling is idempotent.
    """
    fields = Fields(parse_object(await read_body(request, runtime.config.max_body_bytes)))
    conversation_id = fields.conversation_ref("conversation_id")
    if conversation_id is None:
        bad_request("missing required field: conversation_id")
    owned_conversation(runtime.store, runtime.config, conversation_id, principal)
    runtime.cancel(conversation_id)
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
    runtime: Runtime, principal: str, bot_id: int, conversation_ref: str | None, messages: list[Message]
) -> ChatPlan:
    config, store = runtime.config, runtime.store
    bot = owned_bot(store, config, bot_id, principal)
    profile = bot.online
    if profile is None:
        # READING "Chat with a draft bot": not said; we answer with the online version
        # only, so a never-published bot has nothing to chat with.
        bad_request(f"bot {bot_id} is not published: publish it before chatting")
    if conversation_ref is None:
        conversation_id = format_conversation_id(store.new_id(), config.id_style)
        conversation = store.create_conversation(principal, bot_id, conversation_id)
    else:
        conversation = owned_conversation(store, config, conversation_ref, principal)
        if conversation.bot_id != bot_id:
            bad_request(f"conversation {conversation_ref} belongs to another bot")
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


async def _respond(runtime: Runtime, plan: ChatPlan, stream: bool) -> Response:
    if stream:
        config = runtime.config
        headers = {
            # Set directly: Starlette would append "; charset=utf-8" to a text/* media type.
            "content-type": config.content_type,
            "cache-control": "no-store",
            "x-accel-buffering": "no",
        }
        return StreamingResponse(_stream(runtime, plan), headers=headers)
    return await _answer_once(runtime, plan)


# Answering ---------------------------------------------------------------------------


def _usage(plan: ChatPlan, completion_tokens: int) -> dict[str, int]:
    prompt = model.prompt_tokens(plan.history)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


async def _answer_once(runtime: Runtime, plan: ChatPlan) -> Response:
    """The non-stream answer (spec "非流式响应"), after the time a stream would take."""
    config = runtime.config
    tokens = model.tokenize(plan.answer(config.answer_style))
    running = runtime.register(plan.conversation.conversation_id, streaming=False)
    try:
        if plan.fails:
            await pause(running, config.token_delay * model.TOKENS_BEFORE_FAILURE)
            # The one 500 this server sends: a simulated model failure (model.FAIL_TRIGGER).
            raise ApiError(model.FAILURE_CODE, model.FAILURE_MSG)
        await pause(running, config.token_delay * len(tokens))
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
    return ok_response(config.success_msg, data)


def _chat_object(plan: ChatPlan, status: str) -> dict[str, object]:
    return {
        "id": plan.chat_id,
        "conversation_id": plan.conversation.conversation_id,
        "bot_id": plan.bot_id,
        "status": status,
        "created_at": plan.created_at,
    }


def _message_item(plan: ChatPlan, content: str) -> dict[str, object]:
    return {
        "id": plan.message_id,
        "conversation_id": plan.conversation.conversation_id,
        "chat_id": plan.chat_id,
        "bot_id": plan.bot_id,
        "role": "assistant",
        "type": "answer",
        "content": content,
        "content_type": "text",
    }


async def _stream(runtime: Runtime, plan: ChatPlan) -> AsyncIterator[bytes]:
    """The event stream of one chat; ends promptly on cancel, failure or server stop."""
    config = runtime.config
    writer = StreamWriter(config, runtime.sse_format)
    running = runtime.register(plan.conversation.conversation_id, streaming=True)
    try:
        for piece in writer.preamble():
            yield piece
        if config.start_events:
            for status in ("created", "in_progress"):
                name = f"conversation.chat.{status}"
                for piece in writer.event(name, {"event": name, "chat": _chat_object(plan, status)}):
                    yield piece
        tokens = model.tokenize(plan.answer(config.answer_style))
        for index, token in enumerate(tokens):
            if plan.fails and index == model.TOKENS_BEFORE_FAILURE:
                for piece in _failure_events(writer, plan, model.FAILURE_CODE, model.FAILURE_MSG):
                    yield piece
                return
            if await pause(running, config.token_delay):
                for piece in _stopped_events(writer, plan, running):
                    yield piece
                return
            name = "conversation.message.delta"
            for piece in writer.event(name, {"event": name, "message_item": _message_item(plan, token)}):
                yield piece
        content = "".join(tokens)
        runtime.store.add_answer(plan.conversation, content)
        name = "conversation.message.completed"
        for piece in writer.event(name, {"event": name, "message_item": _message_item(plan, content)}):
            yield piece
        name = "conversation.chat.completed"
        record = _chat_object(plan, "completed") | {"usage": _usage(plan, len(tokens))}
        for piece in writer.event(name, {"event": name, "run_record_item": record}):
            yield piece
        for piece in _terminal(writer, config.terminal_event):
            yield piece
        if config.keep_open_after_terminal > 0:
            # READING "After the terminal event": the client closes; keep it open meanwhile.
            await pause(running, config.keep_open_after_terminal)
    finally:
        runtime.unregister(running)


def _terminal(writer: StreamWriter, name: str) -> list[bytes]:
    return writer.event(name, {"event": name}) + writer.flush()


def _failure_events(writer: StreamWriter, plan: ChatPlan, code: int, msg: str) -> list[bytes]:
    """Error event, ``conversation.chat.failed``, terminal event.

    ``conversation.error`` carries the code and msg at the top level and under
    ``error`` (the spec's JS client reads ``data.error``); the ``error`` variant is
    exactly the spec's error-section payload ``{"code", "msg"}``.
    """
    config = writer.config
    error_name = config.error_event
    if error_name == "error":
        error_payload: dict[str, object] = {"code": code, "msg": msg}
    else:
        error_payload = {"event": error_name, "code": code, "msg": msg, "error": {"code": code, "msg": msg}}
    failed = _chat_object(plan, "failed") | {"last_error": {"code": code, "msg": msg}}
    return (
        writer.event(error_name, error_payload)
        + writer.event("conversation.chat.failed", {"event": "conversation.chat.failed", "chat": failed})
        + _terminal(writer, config.terminal_event)
    )


def _stopped_events(writer: StreamWriter, plan: ChatPlan, running: RunningChat) -> list[bytes]:
    """A cancelled or interrupted chat: ``conversation.chat.failed``, then the terminal event."""
    if running.reason == "cancelled":
        failed = _chat_object(plan, "cancelled")
    else:
        failed = _chat_object(plan, "failed") | {"last_error": {"code": 500, "msg": "server shutting down"}}
    return writer.event("conversation.chat.failed", {"event": "conversation.chat.failed", "chat": failed}) + _terminal(
        writer, writer.config.terminal_event
    )
