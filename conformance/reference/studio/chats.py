"""The OpenAPI chat endpoints of the studio dialect and the run of one chat.

``POST /v3/chat[?conversation_id=]`` body ``{bot_id, user_id, stream?, additional_messages?,
custom_variables?, meta_data?, extra_params?, connector_id?, parameters?}``. Bind errors are
HTTP 400 code 400; pre-run errors (unknown or unpublished bot, another principal's
conversation or bot, a message with a bad role/type/content_type) one ``error`` event (or,
studio_prerun_envelope and every non-stream chat, a JSON envelope). An unknown conversation
id starts a new conversation. Every chat runs as :func:`run_chat`:

    conversation.chat.created, conversation.chat.in_progress   (bare Chat objects)
    conversation.message.delta ...                             (bare Message, one per token)
    conversation.message.completed                             (the answer; meta_data: token strings)
    conversation.message.completed                             (the verbose generate_answer_finish)
    conversation.chat.completed                                (Chat with completed_at)
    conversation.stream.done                                   (empty data)

A model failure (model.FAIL_TRIGGER) or a server stop ends with one ``error`` event
(103200002). A cancel does not stop the chat (its stream ends normally); with
studio_cancel_ends_stream the stream ends after the event being written instead.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response

from .. import model
from ..eventstream import SseEvent
from ..inputs import check_text, read_object
from ..model import Turn
from ..runtime import pause
from ..store import API_CONNECTOR, BotProfile, Conversation, now_seconds
from . import envelope
from .envelope import StudioError, bad_request
from .state import FINISHED, Call, ChatRecord, StudioState
from .stream import hold_open, one_event, stream_response

_DIGITS = re.compile(r"[0-9]{1,19}")
ROLES = frozenset({"user", "assistant"})
MESSAGE_TYPES = frozenset({"question", "answer"})
CONTENT_TYPES = frozenset({"text", "object_string"})
VERBOSE_CONTENT = '{"msg_type":"generate_answer_finish","data":"{\\"finish_reason\\":0,\\"fin_data\\":\\"\\"}","from_unit":""}'
BOT_ID_REQUIRED = "code=103000000 message=invalid parameter : bot id is required"
#: studio_unknown_bot_streamed: who answers for a bot that does not exist.
STAND_IN_BOT = BotProfile(name="Default assistant")
STREAM_DONE = "conversation.stream.done"


# Reading requests ----------------------------------------------------------------------


def digits(value: object, name: str, *, required: bool = True) -> str | None:
    """An id: a JSON string of digits. A number, or anything else, is a bind error (400)."""
    if value is None:
        if required:
            raise bad_request(f"missing required field: {name}")
        return None
    if not isinstance(value, str):
        raise bad_request(f"invalid {name}: expected a string of digits")
    if not _DIGITS.fullmatch(value):
        raise bad_request(f"invalid {name}: expected a string of digits, got {value[:40]!r}")
    return value


def text(body: dict[str, Any], name: str, *, required: bool = False, non_empty: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"missing required field: {name}")
        return None
    if not isinstance(value, str):
        raise bad_request(f"invalid {name}: expected a string")
    if non_empty and not value:
        raise bad_request(f"invalid {name}: must not be empty")
    return value


def string_map(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"invalid {name}: expected an object of string values")


def query_value(call: Call, name: str, *, required: bool = True) -> str | None:
    values = call.request.query_params.getlist(name)
    if len(values) > 1:
        raise bad_request(f"{name} given more than once in the query")
    if not values:
        if required:
            raise bad_request(f"missing required parameter: {name}")
        return None
    check_text(values[0])
    return digits(values[0], name) if values[0] else _empty(name)


def _empty(name: str) -> str:
    raise bad_request(f"invalid {name}: must not be empty")


def _messages(body: dict[str, Any]) -> tuple[list[Turn], str | None]:
    """The additional messages, and the pre-run error a bad role/type/content_type makes."""
    items = body.get("additional_messages")
    if items is None:
        return [], None
    if not isinstance(items, list):
        raise bad_request("invalid additional_messages: expected an array")
    turns, problem = [], None
    for index, item in enumerate(items):
        where = f"additional_messages[{index}]"
        if not isinstance(item, dict):
            raise bad_request(f"invalid {where}: expected an object")
        role, content = text(item, "role", required=True), text(item, "content", required=True)
        content_type, kind = text(item, "content_type") or "text", text(item, "type")
        assert role is not None and content is not None
        if role not in ROLES or (kind is not None and kind not in MESSAGE_TYPES) or content_type not in CONTENT_TYPES:
            problem = problem or f"invalid {where}: role {role!r}, type {kind!r}, content_type {content_type!r}"
        turns.append(Turn(role, content, content_type))
    return turns, problem


# POST /v3/chat --------------------------------------------------------------------------


async def create_chat(call: Call) -> Response:
    state, config = call.state, call.config
    has = config.has
    body = await call_body(call)
    if body.get("bot_id") == "0":
        raise bad_request(BOT_ID_REQUIRED)
    bot_id = int(digits(body.get("bot_id"), "bot_id") or 0)
    if not (has("studio_missing_user_id_accepted") and body.get("user_id") is None):  # fault: no user_id accepted
        text(body, "user_id", required=True, non_empty=True)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("invalid stream: expected a boolean")
    turns, problem = _messages(body)
    for name in ("custom_variables", "meta_data", "extra_params"):
        string_map(body, name)
    digits(body.get("connector_id"), "connector_id", required=False)
    if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
        raise bad_request("invalid parameters: expected an object")
    reference = query_value(call, "conversation_id", required=False)
    if reference is None:  # the query wins; the body's ConversationID works too (body conversation_id: ignored)
        reference = digits(body.get("ConversationID"), "ConversationID", required=False)
    as_json = stream is False and config.studio_nonstream

    def prerun(msg: str) -> Response:
        if as_json or config.studio_prerun_envelope:
            raise StudioError(envelope.CHAT_PRERUN, msg)
        return stream_response(config, one_event(envelope_event(envelope.CHAT_PRERUN, msg)))

    if problem is not None:
        return prerun(problem)
    bot = state.store.bot(bot_id)
    if bot is None and has("studio_unknown_bot_streamed"):
        profile = STAND_IN_BOT  # fault: an unknown bot answered by a stand-in
    elif bot is None:
        return prerun(f"agent {bot_id} not exist")
    elif bot.owner != call.principal:
        return prerun(f"agent {bot_id} not exist")
    elif bot.online is None or API_CONNECTOR not in bot.connectors:
        return prerun(f"agent {bot_id} not published to connector {API_CONNECTOR}")
    else:
        profile = bot.online
    conversation = None
    if reference is not None and not has("studio_conversation_not_continued"):  # fault: always a new one
        conversation = state.store.conversation(reference)
        if conversation is None and has("studio_unknown_conversation_error"):
            return prerun(f"conversation {reference} not found")  # fault: an error, not a new conversation
        if conversation is not None and conversation.owner != call.principal and not has("studio_iso_other_conversation"):
            return prerun("conversation not found: it belongs to another user")  # (fault above: served)
    if conversation is None:
        conversation = state.new_conversation(call.principal, bot_id)
    record = start(call, conversation, bot_id, profile, turns, streaming=not as_json)
    if not as_json:
        return stream_response(config, _queued(call, record))
    chat = chat_object(state, record, "created")
    if has("studio_nonstream_without_id"):
        del chat["id"]  # fault: the Chat without its id
    return envelope.json_answer({"data": chat, "code": 0, "msg": "", "BaseResp": None})


async def call_body(call: Call) -> dict[str, Any]:
    return await read_object(call.request, call.config)


def envelope_event(code: int, msg: str) -> SseEvent:
    """The ``error`` event: a pre-run or in-run failure."""
    return SseEvent("error", {"code": code, "msg": msg})


def start(call: Call, conversation: Conversation, bot_id: int, profile: BotProfile, turns: list[Turn], *, streaming: bool) -> ChatRecord:
    state = call.state
    history, turn = state.store.start_chat(conversation, turns)
    record = ChatRecord(
        chat_id=state.new_id(),
        owner=call.principal,
        conversation=conversation,
        section_id=state.section_of(conversation),
        bot_id=bot_id,
        profile=profile,
        message_id=state.new_id(),
        history=history,
        turn=turn,
        created_at=now_seconds(),
        running=state.runtime.register(conversation.conversation_id, streaming=streaming),
        events=asyncio.Queue() if streaming else None,
    )
    state.chats[record.chat_id] = record
    task = asyncio.get_running_loop().create_task(_drive(state, record), name=f"studio-chat-{record.chat_id}")
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return record


async def _drive(state: StudioState, record: ChatRecord) -> None:
    try:
        async for event in run_chat(state, record):
            if record.events is not None:
                record.events.put_nowait(event)
    finally:
        state.runtime.unregister(record.running)
        if record.events is not None:
            record.events.put_nowait(None)
        record.ended.set()


async def _queued(call: Call, record: ChatRecord) -> AsyncIterator[SseEvent]:
    assert record.events is not None
    while (event := await record.events.get()) is not None:
        yield event
    if record.cancel_requested and call.config.has("studio_cancel_stream_open"):
        await hold_open(call.state.runtime)  # fault: after a cancel the body never ends properly


# The objects ------------------------------------------------------------------------------


def chat_object(state: StudioState, record: ChatRecord, status: str | None = None) -> dict[str, object]:
    chat: dict[str, object] = {
        "id": record.chat_id,
        "conversation_id": record.conversation_id,
        "bot_id": str(record.bot_id),
        "created_at": record.created_at,
        "completed_at": record.completed_at,
        "failed_at": record.failed_at,
        "status": record.status if status is None else status,
        "section_id": record.section_id,
    }
    if record.last_error is not None:
        chat["last_error"] = {"code": record.last_error[0], "msg": record.last_error[1]}
    return chat


def message_object(
    state: StudioState, record: ChatRecord, content: str, *, message_id: str | None = None, kind: str = "answer"
) -> dict[str, object]:
    message: dict[str, object] = {
        "id": record.message_id if message_id is None else message_id,
        "conversation_id": record.conversation_id,
        "bot_id": str(record.bot_id),
        "role": "assistant",
        "type": kind,
        "content": content,
        "content_type": "text",
        "chat_id": record.chat_id,
        "created_at": record.created_at,
    }
    if state.config.studio_section_id and not (kind != "answer" and state.config.has("studio_no_section_id")):
        message["section_id"] = record.section_id  # fault: only the answer's messages carry it
    return message


def token_meta_data(state: StudioState, record: ChatRecord, output: int, started: float) -> dict[str, object]:
    input_tokens = model.prompt_tokens(record.history)
    counts = {"input_tokens": input_tokens, "output_tokens": output, "token": input_tokens + output}
    if state.config.has("studio_meta_data_numbers"):
        return {**counts, "time_cost": round(time.monotonic() - started, 3)}  # fault: JSON numbers
    return {**{k: str(v) for k, v in counts.items()}, "time_cost": f"{time.monotonic() - started:.3f}"}


# The run of a chat --------------------------------------------------------------------------


def _fail(record: ChatRecord, code: int, msg: str) -> SseEvent:
    record.status = "failed"
    record.failed_at = now_seconds()
    record.last_error = (code, msg)
    return envelope_event(code, msg)


async def run_chat(state: StudioState, record: ChatRecord) -> AsyncIterator[SseEvent]:
    """The chat's events (module docstring), updating the record as it goes. Whenever the
    chat has been stopped -- by a cancel under studio_cancel_ends_stream, or the server
    stopping -- nothing more is sent but the stop's own ending."""
    from ..eventstream import SseEvent

    config, running, has = state.config, record.running, state.config.has
    started = time.monotonic()

    def stopped() -> list[SseEvent] | None:
        if not running.stop.is_set():
            return None
        if running.reason == "cancelled":
            record.status = "canceled"
            return []  # the stream ends after the event already written
        return [_fail(record, envelope.CHAT_RUN_FAILED, "server shutting down")]

    created = chat_object(state, record, "created")
    yield SseEvent("conversation.chat.created", {"data": created} if has("studio_payload_wrapped") else created)  # fault
    record.status = "in_progress"
    yield SseEvent("conversation.chat.in_progress", chat_object(state, record))
    tokens = model.tokenize(model.answer(record.history, record.turn, record.profile.name, config.answer_style))
    for index, token in enumerate(tokens):
        if model.should_fail(record.history) and index == model.TOKENS_BEFORE_FAILURE:
            yield _fail(record, envelope.CHAT_RUN_FAILED, model.FAILURE_MSG)
            return
        if await pause(running, config.token_delay) and (ending := stopped()) is not None:
            for event in ending:
                yield event
            return
        yield SseEvent("conversation.message.delta", message_object(state, record, token))
    content = "".join(tokens)
    answer = message_object(state, record, content[:-1] if has("studio_deltas_differ") else content)  # fault
    answer["meta_data"] = token_meta_data(state, record, len(tokens), started)
    verbose = message_object(state, record, VERBOSE_CONTENT, message_id=state.new_id(), kind="verbose")
    state.store.add_answer(record.conversation, content)
    for message in (answer, verbose):
        if (ending := stopped()) is not None:
            for event in ending:
                yield event
            return
        record.messages.append(message)
        yield SseEvent("conversation.message.completed", message)
    if (ending := stopped()) is not None:
        for event in ending:
            yield event
        return
    record.status = "completed"
    record.completed_at = now_seconds()
    completed = chat_object(state, record)
    if has("studio_completed_at_zero"):
        completed["completed_at"] = 0  # fault: completed without completed_at
    yield SseEvent("conversation.chat.completed", completed)
    if not has("studio_no_stream_done"):  # fault: the body ends without conversation.stream.done
        yield SseEvent(STREAM_DONE, "")


# retrieve, message/list, cancel -------------------------------------------------------------


def _find(call: Call) -> ChatRecord:
    conversation_id = query_value(call, "conversation_id")
    chat_id = query_value(call, "chat_id")
    record = call.state.chats.get(chat_id or "")
    if record is None or record.conversation_id != conversation_id:
        raise StudioError(envelope.CHAT_NOT_FOUND, "chat not found")
    if record.owner != call.principal:
        raise StudioError(envelope.CHAT_NOT_OWNER, "chat not found: it belongs to another user")
    return record


async def retrieve(call: Call) -> Response:
    record = _find(call)
    return envelope.ok(call.config, chat_object(call.state, record))


async def message_list(call: Call) -> Response:
    record = _find(call)
    messages = [] if call.config.has("studio_message_list_empty") else list(record.messages)  # fault: never the answer
    return envelope.json_answer({"code": 0, "msg": "", "Messages": messages})


async def cancel(call: Call) -> Response:
    state, config = call.state, call.config
    has = config.has
    body = await call_body(call)
    conversation_id = digits(body.get("conversation_id"), "conversation_id")
    chat_id = digits(body.get("chat_id"), "chat_id", required=not has("studio_cancel_without_chat_id_accepted"))
    if chat_id is None:  # fault: the conversation's latest chat is canceled
        chat_id = next((c.chat_id for c in reversed(state.chats.values()) if c.conversation_id == conversation_id), "")
    record = state.chats.get(chat_id)
    if record is None:
        raise bad_request("record not found")
    if record.owner != call.principal:
        raise bad_request("user not match")
    if record.conversation_id != conversation_id:
        if has("studio_cancel_panic"):
            return Response(b"", 500)  # fault: Coze Plus's nil dereference
        raise bad_request("conversation not match")
    if record.status in FINISHED and not has("studio_cancel_finished_ok"):  # fault: a finished chat "canceled"
        raise bad_request(f"code={envelope.NOT_CANCELLABLE} message=in progress can not be cancelled")
    record.cancel_requested = True
    if config.studio_cancel_ends_stream or has("studio_cancel_stream_open"):
        record.running.halt("cancelled")
    chat = chat_object(state, record)
    if config.studio_cancel_envelope:
        return envelope.ok(config, {**chat, "status": "canceled"})
    status = "in_progress" if has("studio_cancel_status_running") else "conversation.chat.cancelled"  # fault
    return envelope.json_answer({"ChatV3ChatDetail": {**chat, "status": status}, "BaseResp": None})
