"""The event stream of a coze-dialect chat, and the coze stream faults.

Framing as the cloud writes it (and cozepy 0.20 reads it: exactly one ``event:`` and
one ``data:`` line per event, nothing else): ``event:<name>\\n`` ``data:<compact JSON>\\n``
and a blank line, no space after the colon, no comments, ``id:`` or ``retry:``.
``Content-Type: text/event-stream``. The variants coze_sse_space, coze_line_ending and
coze_content_type_params (config.py) write the other legal forms of each. The events come from the chat's task
(chats.run_chat) through a queue; after the last one the body closes.

The stream faults (faults/coze.py, COZE-SSE-*) are branches marked ``fault:`` in
:func:`_event_faults` (one event changed, dropped or repeated) and the stages of the doc
dialect's stream faults that reorder or delay a stream (stream_faults.py), reused as
they are.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.responses import StreamingResponse

from ..config import ServerConfig
from ..eventstream import SseEvent, SseFormat, StreamWriter
from ..runtime import pause
from ..stream_faults import Item, completed_first, hold_back, start_after_message
from .envelope import logid_headers
from .state import Call, ChatRecord

#: The cloud's framing (research §2.2): no space after the colon, LF line ends.
COZE_FORMAT = SseFormat(line_ending="\n", space_after_colon=False)
#: coze_content_type_params: the stream's media type with a parameter.
CONTENT_TYPE_WITH_PARAMS = "text/event-stream; charset=utf-8"


def coze_format(config: ServerConfig) -> SseFormat:
    """COZE_FORMAT under the framing variants coze_line_ending and coze_sse_space."""
    return SseFormat(line_ending=config.coze_line_ending, space_after_colon=config.coze_sse_space)


#: coze_body_open_after_done: how long the body stays open after ``done``.
OPEN_AFTER_DONE_SECONDS = 10.0

_START = ("conversation.chat.created", "conversation.chat.in_progress")
_DELTA = "conversation.message.delta"
_COMPLETED = "conversation.message.completed"
_CHAT_COMPLETED = "conversation.chat.completed"


def stream_response(call: Call, record: ChatRecord) -> StreamingResponse:
    config = call.config
    headers = {
        # Set directly: Starlette would append "; charset=utf-8" to a text/* media type.
        "content-type": "text/plain; charset=utf-8"
        if config.has("coze_stream_media_type")  # fault
        else CONTENT_TYPE_WITH_PARAMS
        if config.coze_content_type_params
        else "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
        **logid_headers(config, call.logid),
    }
    return StreamingResponse(_body(call, record), headers=headers)


async def _queued(record: ChatRecord) -> AsyncGenerator[Item]:
    assert record.events is not None
    while (event := await record.events.get()) is not None:
        yield event


async def _body(call: Call, record: ChatRecord) -> AsyncIterator[bytes]:
    config, runtime = call.config, call.state.runtime
    writer = StreamWriter(config, coze_format(config))
    # The response's own registration: the chat's may end first (its task owns it), and a
    # fault that holds the body back or open must still end at once when the server stops.
    response = runtime.register(record.conversation_id, streaming=True)
    try:
        events: AsyncIterator[Item] = _queued(record)
        if config.faults:
            events = _edit_events(call, events)
            for name, stage in (
                ("coze_start_after_message", start_after_message),
                ("coze_delta_after_completed", completed_first),
                ("coze_held_back", hold_back),
            ):
                if config.has(name):
                    events = stage(runtime, response, events)
        async with aclosing(events):  # type: ignore[type-var]  # an async generator, so it has aclose()
            async for item in events:
                for piece in writer.write(item):
                    yield piece
        for piece in writer.flush():
            yield piece
        if config.has("coze_body_open_after_done"):
            await pause(response, OPEN_AFTER_DONE_SECONDS)  # fault: the body stays open after done
    finally:
        runtime.unregister(response)


async def _edit_events(call: Call, events: AsyncIterator[Item]) -> AsyncGenerator[Item]:
    async for item in events:
        for out in _event_faults(call, item) if isinstance(item, SseEvent) else [item]:
            yield out


def _event_faults(call: Call, event: SseEvent) -> list[Item]:
    """One event as the coze stream faults send it: changed, dropped or repeated."""
    has = call.config.has
    name = event.name
    if isinstance(event.payload, str):  # done's "[DONE]"
        if has("coze_no_done"):
            return []  # fault: the body closes without done
        if has("coze_done_data_empty"):
            return [SseEvent(name, "")]  # fault: data: (empty), as Coze Studio sends it
        if has("coze_done_twice"):
            return [event, event]  # fault
        return [event]
    payload = copy.deepcopy(dict[str, Any](event.payload))
    if has("coze_event_bot_id_integer") and "bot_id" in payload:
        payload["bot_id"] = int(payload["bot_id"])  # fault: an id as a JSON number
    if name in _START and has("coze_no_start_events"):
        return []  # fault
    if name == "conversation.chat.created" and has("coze_stream_invalid_utf8"):
        payload["meta_data"] = {"source": "référence"}
        text = f"event:{name}\ndata:{json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"
        return [text.encode("latin-1")]  # fault: one event in Latin-1 ('é' as the byte 0xE9)
    if name == "conversation.chat.in_progress":
        if has("coze_chat_without_status"):
            del payload["status"]  # fault
        if has("coze_payload_not_object"):
            return [SseEvent(name, json.dumps([payload], separators=(",", ":")))]  # fault: a JSON array
        after: list[Item] = []
        if has("coze_sse_comment_line"):
            after.append(b": keep-alive\n\n")  # fault: a comment line between two events
        if has("coze_unknown_event"):
            after.append(SseEvent("ping", {}))  # fault: an event name outside the cloud's set
        return [SseEvent(name, payload), *after]
    if name == _DELTA and has("coze_message_without_role"):
        del payload["role"]  # fault
    if name == _COMPLETED:
        if has("coze_deltas_differ"):
            payload["content"] = payload["content"][:-1]  # fault: not the joined deltas
        if has("coze_message_completed_twice"):
            return [SseEvent(name, payload)] * 2  # fault
    if name == _CHAT_COMPLETED:
        usage = payload["usage"]
        if has("coze_usage_prompt_keys"):  # fault: the doc dialect's usage keys
            payload["usage"] = {
                "prompt_tokens": usage["input_count"],
                "completion_tokens": usage["output_count"],
                "total_tokens": usage["token_count"],
            }
        if has("coze_usage_total_wrong"):
            usage["token_count"] += 1  # fault: token_count != input_count + output_count
        if has("coze_no_usage"):
            del payload["usage"]  # fault
        if has("coze_conversation_ids_differ"):
            payload["conversation_id"] = call.state.new_id()  # fault: another conversation id
        if has("coze_chat_completed_twice"):
            return [SseEvent(name, payload)] * 2  # fault: two outcomes
    return [SseEvent(name, payload)]
