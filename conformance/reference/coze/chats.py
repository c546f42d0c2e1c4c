"""The chat endpoints of the coze dialect and the run of one chat.

``POST /v3/chat?conversation_id=`` body ``{bot_id, user_id, stream?, additional_messages?,
custom_variables?, auto_save_history?, meta_data?, parameters?, enable_card?}``:

* ``stream`` false or absent: ``data`` is the Chat with status ``in_progress``; the chat
  goes on as a task on the server loop, ``/v3/chat/retrieve`` reports it and
  ``/v3/chat/message/list`` lists its answer once completed.
* ``stream`` true: the events of stream.py, read from the same task.

Every chat runs as :func:`run_chat`, one async generator whose events a stream sends
and a non-stream chat drops:

    conversation.chat.created, conversation.chat.in_progress   (bare Chat objects)
    conversation.message.delta ...                             (bare Message, one per token)
    conversation.message.completed                             (the answer, joined deltas)
    conversation.chat.completed                                (Chat with usage)
    done                                                       (data "[DONE]")

The variants (config.py, "Coze wire variants"): coze_follow_up adds a verbose and two
follow_up message.completed after the answer's (in message/list too), coze_unset_times
writes completed_at / failed_at as 0 while unset, coze_extra_fields adds undocumented keys.

A model failure (model.FAIL_TRIGGER) ends with ``conversation.chat.failed`` (last_error
code 5000) and ``done``; a server stop the same with "server shutting down".

A cancel (``/v3/chat/cancel``) sets the chat's status to ``canceled`` at once and stops
its task at the next token. The contract asks a stream to end with exactly one chat
outcome or an ``error`` event (COZE-SSE-012, -016), and the cloud has no
``chat.canceled`` event (cozepy would report it as UNKNOWN); ``chat.failed`` would
misreport the status. So a canceled chat's stream ends with one ``error`` event
``{"code": CANCELED_CODE, "msg": "chat canceled"}`` and closes, without ``done``
(cozepy raises on it, which tells the reader the chat ended early).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from starlette.responses import Response

from .. import model
from ..config import ServerConfig
from ..eventstream import SseEvent
from ..inputs import Fields, check_text, parse_id_text, read_object
from ..model import Turn
from ..runtime import pause
from ..store import API_CONNECTOR, BotProfile, Conversation, now_seconds
from . import envelope
from .envelope import CozeError, bad_request
from .state import FINISHED, Call, ChatRecord, CozeState
from .stream import stream_response

#: The error event that ends a canceled chat's stream (module docstring). No cloud code is
#: documented for it; this one is none of the contract's codes, so that no client takes
#: it for another condition (4104, for one, is a refused cancel).
CANCELED_CODE = 4105
CANCELED_MSG = "chat canceled"
#: The message types and content types an additional message may carry.
MESSAGE_TYPES = frozenset({"question", "answer", "function_call", "tool_output", "tool_response", "knowledge", "verbose",
                           "follow_up", "unknown", ""})
CONTENT_TYPES = frozenset({"text", "object_string", "card", "image", "file", "audio"})

#: coze_unknown_bot_answered: who answers for a bot that does not exist.
STAND_IN_BOT = BotProfile(name="Default assistant")


# Reading requests --------------------------------------------------------------------


def id_text(value: object, name: str) -> int:
    """A required id: a JSON string of digits (the cloud types every id as a string)."""
    if value is None:
        raise bad_request(f"missing required field: {name}")
    if not isinstance(value, str):
        raise bad_request(f"invalid {name}: expected a string of digits")
    return parse_id_text(value, name)


def query_value(call: Call, name: str, *, required: bool = True) -> str | None:
    values = call.request.query_params.getlist(name)
    if len(values) > 1:
        raise bad_request(f"{name} given more than once in the query")
    if not values or not values[0]:
        if required:
            raise bad_request(f"missing required parameter: {name}")
        return None
    check_text(values[0])
    return values[0]


def _message(item: object, where: str) -> Turn:
    """One additional message ``{role, content, content_type, type?}``; other keys (cozepy
    sends id, meta_data, ... as null) are tolerated whatever they hold."""
    if not isinstance(item, dict):
        raise bad_request(f"invalid {where}: expected an object")
    fields = Fields(item, prefix=f"{where}.")
    role = fields.required_str("role")
    if role not in ("user", "assistant"):
        raise bad_request(f"invalid {where}.role: expected user or assistant")
    content = fields.required_str("content")
    content_type = fields.required_str("content_type")
    if content_type not in CONTENT_TYPES:
        raise bad_request(f"invalid {where}.content_type: expected one of {', '.join(sorted(CONTENT_TYPES))}")
    kind = fields.str_("type")
    if kind is not None and kind not in MESSAGE_TYPES:
        raise bad_request(f"invalid {where}.type: expected one of {', '.join(sorted(t for t in MESSAGE_TYPES if t))}")
    fields.string_map("meta_data")
    return Turn(role, content, content_type)


def _optional_object(body: dict[str, Any], name: str) -> None:
    if body.get(name) is not None and not isinstance(body[name], dict):
        raise bad_request(f"invalid {name}: expected an object")


# POST /v3/chat ----------------------------------------------------------------------------


async def create_chat(call: Call) -> Response:
    state, config = call.state, call.config
    has = config.has
    body = await read_object(call.request, config)
    fields = Fields(body)
    bot_id = id_text(body.get("bot_id"), "bot_id")
    if not (has("coze_missing_user_id_accepted") and body.get("user_id") is None):  # fault: no user_id accepted
        fields.required_str("user_id", non_empty=True)
    stream = fields.bool_("stream") or (has("coze_stream_default_true") and body.get("stream") is None)  # fault
    messages = body.get("additional_messages")
    if messages is not None and not isinstance(messages, list):
        raise bad_request("invalid additional_messages: expected an array")
    turns = [_message(item, f"additional_messages[{i}]") for i, item in enumerate(messages or [])]
    fields.string_map("custom_variables")
    fields.string_map("meta_data")
    fields.bool_("auto_save_history")
    fields.bool_("enable_card")
    _optional_object(body, "parameters")
    conversation_ref = query_value(call, "conversation_id", required=False)
    if has("coze_empty_conversation_refused") and call.request.query_params.get("conversation_id") == "":
        raise bad_request("invalid conversation_id: must not be empty")  # fault: cozepy's empty ?conversation_id=
    profile = _chat_bot(call, bot_id)
    if conversation_ref is None or has("coze_conversation_not_continued"):  # fault: always a new conversation
        conversation = state.store.create_conversation(call.principal, bot_id, state.new_id())
    else:
        conversation = _conversation(call, conversation_ref)
        if state.busy(conversation.conversation_id):
            raise CozeError(envelope.CONVERSATION_BUSY, "a chat is still in progress in this conversation")
    record = _start(call, conversation, bot_id, profile, turns, stream=stream)
    if stream:
        return stream_response(call, record)
    if has("coze_nonstream_completed"):
        await record.ended.wait()  # fault: the chat is answered before the answer, status completed
    return envelope.ok(config, call.logid, chat_object(state, record))


def _chat_bot(call: Call, bot_id: int) -> BotProfile:
    """The published version a chat talks to: 4200 unknown, 4101 another's, 4015 not on the API connector."""
    has = call.config.has
    bot = call.state.store.bot(bot_id)
    if bot is None and has("coze_unknown_bot_answered"):
        return STAND_IN_BOT  # fault: an unknown bot is answered by a stand-in
    if bot is None:
        raise CozeError(envelope.NOT_FOUND, f"bot {bot_id} not found")
    if bot.owner != call.principal:
        raise CozeError(envelope.FORBIDDEN, f"bot {bot_id} belongs to another user")
    if bot.online is None or API_CONNECTOR not in bot.connectors:
        code = envelope.BAD_REQUEST if has("coze_unpublished_bot_code_4000") else envelope.NOT_PUBLISHED  # fault: 4000
        raise CozeError(code, f"bot {bot_id} has not been published to the API connector ({API_CONNECTOR})")
    return bot.online


def _conversation(call: Call, conversation_id: str) -> Conversation:
    conversation = call.state.store.conversation(conversation_id)
    if conversation is None:
        raise CozeError(envelope.NOT_FOUND, "conversation not found")
    if conversation.owner != call.principal:
        raise CozeError(envelope.FORBIDDEN, "conversation belongs to another user")
    return conversation


def _start(call: Call, conversation: Conversation, bot_id: int, profile: BotProfile, turns: list[Turn], *, stream: bool) -> ChatRecord:
    state = call.state
    history, turn = state.store.start_chat(conversation, turns)
    record = ChatRecord(
        chat_id=state.new_id(),
        owner=call.principal,
        conversation=conversation,
        bot_id=bot_id,
        profile=profile,
        message_id=state.new_id(),
        history=history,
        turn=turn,
        created_at=now_seconds(),
        running=state.runtime.register(conversation.conversation_id, streaming=stream),
        # A non-stream chat is answered as in progress (COZE-CHAT-001); a stream says created first.
        status="created" if stream else "in_progress",
        events=asyncio.Queue() if stream else None,
    )
    state.chats[record.chat_id] = record
    task = asyncio.get_running_loop().create_task(_drive(state, record), name=f"coze-chat-{record.chat_id}")
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return record


async def _drive(state: CozeState, record: ChatRecord) -> None:
    """The chat's task: run it to its end, handing its events to the stream, if any."""
    try:
        async for event in run_chat(state, record):
            if record.events is not None:
                record.events.put_nowait(event)
    finally:
        state.runtime.unregister(record.running)
        if record.events is not None:
            record.events.put_nowait(None)
        record.ended.set()
        state.store.save_chat(record.snapshot())  # a persistent store keeps it (--db)


# The run of a chat ----------------------------------------------------------------------------


def chat_object(state: CozeState, record: ChatRecord, status: str | None = None) -> dict[str, object]:
    """The Chat object (``status`` overrides the record's: the start events)."""
    chat: dict[str, object] = {
        "id": record.chat_id,
        "conversation_id": record.conversation_id,
        "bot_id": str(record.bot_id),
        "created_at": record.created_at,
    }
    config = state.config
    for name, stamp in (("completed_at", record.completed_at), ("failed_at", record.failed_at)):
        if stamp is not None or config.coze_unset_times:
            chat[name] = stamp or 0  # variant coze_unset_times: 0 while unset
    code, msg = record.last_error
    chat["last_error"] = {"code": code, "msg": msg}
    chat["status"] = record.status if status is None else status
    chat["usage"] = dict(record.usage)
    if config.coze_extra_fields:  # variant: undocumented keys, as the cloud sends some
        chat.update(section_id=record.conversation_id, meta_data=dict(EXTRA_META_DATA),
                    required_action={"type": "", "submit_tool_outputs": {"tool_calls": []}})
    return chat


#: coze_extra_fields: the meta_data of a chat or message (cozepy: Dict[str, str]).
EXTRA_META_DATA = {"source": "reference"}


def message_object(
    record: ChatRecord, content: str, *, config: ServerConfig, message_id: str | None = None, kind: str = "answer"
) -> dict[str, object]:
    stamp = now_seconds()
    message: dict[str, object] = {
        "id": record.message_id if message_id is None else message_id,
        "conversation_id": record.conversation_id,
        "bot_id": str(record.bot_id),
        "chat_id": record.chat_id,
        "role": "assistant",
        "type": kind,
        "content": content,
        "content_type": "text",
        "created_at": record.created_at,
        "updated_at": stamp,
    }
    if config.coze_extra_fields:  # variant: undocumented keys, as the cloud sends some
        message.update(section_id=record.conversation_id, meta_data=dict(EXTRA_META_DATA), reasoning_content="")
    return message


#: coze_follow_up: the messages after the answer, as the cloud sends them (vectors/coze-cloud).
VERBOSE_CONTENT = '{"msg_type":"generate_answer_finish","data":"{\\"finish_reason\\":0,\\"FinData\\":\\"\\"}","from_module":null,"from_unit":null}'
FOLLOW_UPS = ("What else can you tell me?", "Can you give an example?")


def after_answer(state: CozeState, record: ChatRecord) -> list[dict[str, object]]:
    """coze_follow_up: a verbose and follow_up messages (completed, no deltas) after the answer."""
    if not state.config.coze_follow_up:
        return []
    shapes = [("verbose", VERBOSE_CONTENT), *(("follow_up", text) for text in FOLLOW_UPS)]
    return [message_object(record, text, config=state.config, message_id=state.new_id(), kind=kind) for kind, text in shapes]


def _fail(record: ChatRecord, code: int, msg: str) -> None:
    record.status = "failed"
    record.failed_at = now_seconds()
    record.last_error = (code, msg)


def _ending(state: CozeState, record: ChatRecord) -> list[SseEvent]:
    """The last events of a chat stopped before its end: canceled, or the server stopping."""
    if record.running.reason == "cancelled":
        return [SseEvent("error", {"code": CANCELED_CODE, "msg": CANCELED_MSG})]
    _fail(record, envelope.SERVER_ERROR, "server shutting down")
    return [SseEvent("conversation.chat.failed", chat_object(state, record)), DONE]


DONE = SseEvent("done", '"[DONE]"')


async def run_chat(state: CozeState, record: ChatRecord) -> AsyncGenerator[SseEvent]:
    """The chat's events, updating the record as it goes (module docstring). After every
    event the chat may have been stopped (a cancel runs while an event is written)."""
    config, running = state.config, record.running
    yield SseEvent("conversation.chat.created", chat_object(state, record, "created"))
    record.status = "in_progress"
    yield SseEvent("conversation.chat.in_progress", chat_object(state, record))
    answer = model.answer(record.history, record.turn, record.profile.name, config.answer_style)
    tokens = model.tokenize(answer)
    for index, token in enumerate(tokens):
        if model.should_fail(record.history) and index == model.TOKENS_BEFORE_FAILURE:
            _fail(record, envelope.SERVER_ERROR, model.FAILURE_MSG)
            yield SseEvent("conversation.chat.failed", chat_object(state, record))
            yield DONE
            return
        if await pause(running, config.token_delay):
            for event in _ending(state, record):
                yield event
            return
        yield SseEvent("conversation.message.delta", message_object(record, token, config=config))
    if running.stop.is_set():
        for event in _ending(state, record):
            yield event
        return
    completed = message_object(record, "".join(tokens), config=config)
    record.messages.append(completed)
    state.store.add_answer(record.conversation, answer)
    yield SseEvent("conversation.message.completed", completed)
    for more in after_answer(state, record):  # variant coze_follow_up
        if running.stop.is_set():
            break
        record.messages.append(more)
        yield SseEvent("conversation.message.completed", more)
    if running.stop.is_set():
        for event in _ending(state, record):
            yield event
        return
    input_count = model.prompt_tokens(record.history)
    record.usage = {"token_count": input_count + len(tokens), "output_count": len(tokens), "input_count": input_count}
    record.status = "completed"
    record.completed_at = now_seconds()
    yield SseEvent("conversation.chat.completed", chat_object(state, record))
    yield DONE


# retrieve, message/list, cancel ----------------------------------------------------------------


def _find_chat(call: Call, conversation_id: str, chat_id: str, *, any_owner: bool = False) -> ChatRecord:
    record = call.state.chat(chat_id)
    if record is None or record.conversation_id != conversation_id:
        raise CozeError(envelope.NOT_FOUND, "chat not found")
    if record.owner != call.principal and not any_owner:
        raise CozeError(envelope.FORBIDDEN, "chat belongs to another user")
    return record


async def retrieve(call: Call) -> Response:
    """``POST /v3/chat/retrieve?conversation_id=&chat_id=`` (GET too): the Chat as it is now."""
    has = call.config.has
    conversation_id = query_value(call, "conversation_id")
    chat_id = query_value(call, "chat_id")
    assert conversation_id is not None and chat_id is not None
    record = _find_chat(call, conversation_id, chat_id, any_owner=has("coze_iso_retrieve_other_chat"))  # fault
    status = "in_progress" if has("coze_retrieve_stuck_in_progress") and record.status == "completed" else None  # fault
    return envelope.ok(call.config, call.logid, chat_object(call.state, record, status))


async def message_list(call: Call) -> Response:
    """``GET /v3/chat/message/list?conversation_id=&chat_id=``: the chat's messages."""
    conversation_id = query_value(call, "conversation_id")
    chat_id = query_value(call, "chat_id")
    assert conversation_id is not None and chat_id is not None
    record = _find_chat(call, conversation_id, chat_id)
    messages = [] if call.config.has("coze_message_list_empty") else list(record.messages)  # fault: never the answer
    return envelope.ok(call.config, call.logid, messages)


async def cancel(call: Call) -> Response:
    """``POST /v3/chat/cancel`` ``{conversation_id, chat_id}``: a chat in flight is
    canceled (answered with status canceled); a finished one answers 4104."""
    state, has = call.state, call.config.has
    fields = Fields(await read_object(call.request, call.config))
    conversation_id = fields.required_str("conversation_id", non_empty=True)
    chat_id = fields.str_("chat_id", non_empty=True)
    if chat_id is None and has("coze_cancel_without_chat_id_accepted"):
        latest = state.latest_chat(conversation_id)  # fault: the conversation's latest chat is canceled
        chat_id = latest.chat_id if latest is not None else ""
    if chat_id is None:
        raise bad_request("missing required field: chat_id")
    record = _find_chat(call, conversation_id, chat_id, any_owner=has("coze_iso_cancel_other_chat"))  # fault
    if record.status in FINISHED and not has("coze_cancel_finished_ok"):  # fault: a finished chat "canceled"
        raise CozeError(envelope.NOT_CANCELLABLE, f"chat is {record.status}: it can no longer be canceled")
    if has("coze_cancel_ignored"):
        return envelope.ok(call.config, call.logid, chat_object(state, record, "canceled"))  # fault: nothing stops
    if record.status not in FINISHED:
        record.status = "canceled"
        record.running.halt("cancelled")
    return envelope.ok(call.config, call.logid, chat_object(state, record))
