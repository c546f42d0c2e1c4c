"""The stream faults (faults/stream.py) as stages over a chat's event sequence: first the
faults of single events, then each fault that reorders, delays or prolongs the stream.
Every branch is marked ``fault:``; with no fault on, the sequence passes unchanged."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from .eventstream import SseEvent, encode_event
from .faults.stream import ENDLESS_STREAM_SECONDS, HOLD_SECONDS, MID_ANSWER_PAUSE_SECONDS
from .ids import format_conversation_id, format_message_id
from .runtime import RunningChat, Runtime, pause

Item = SseEvent | bytes  # an event, or bytes a byte-level fault writes as they are
Items = AsyncIterator[Item]
Stage = Callable[[Runtime, RunningChat, Items], Items]

_START = ("conversation.chat.created", "conversation.chat.in_progress")
_DELTA = "conversation.message.delta"
_COMPLETED = "conversation.message.completed"
_CHAT_COMPLETED = "conversation.chat.completed"
_TERMINALS = ("conversation.stream.done", "done")
KEEP_ALIVE_SECONDS = 0.5


def apply_stream_faults(runtime: Runtime, running: RunningChat, events: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """The event sequence as a server with ``runtime.config``'s stream faults sends it:
    first the faults of single events, then each fault that reorders, delays or
    prolongs the stream, as a stage of its own."""
    stream: AsyncIterator[Item] = _edit_events(runtime, events)
    for names, stage in _STAGES:
        if any(runtime.config.has(name) for name in names):
            stream = stage(runtime, running, stream)
    return stream


async def _edit_events(runtime: Runtime, events: AsyncIterator[Item]) -> AsyncGenerator[Item]:
    async for item in events:
        for out in _event_faults(runtime, item) if isinstance(item, SseEvent) else [item]:
            yield out


def _event_faults(runtime: Runtime, event: SseEvent) -> list[Item]:
    """One event as the faults of single events send it: changed, dropped or repeated."""
    if isinstance(event.payload, str):
        return [event]
    has, fmt = runtime.config.has, runtime.sse_format
    name, payload = event.name, copy.deepcopy(dict[str, Any](event.payload))
    if has("stream_no_event_key"):
        payload.pop("event", None)
    if name in _START and has("stream_no_start_events"):
        return []
    if name == _DELTA and has("stream_message_without_role"):
        del payload["message_item"]["role"]
    if name == _COMPLETED:
        item = payload["message_item"]
        if has("stream_deltas_differ"):
            item["content"] = item["content"][:-1]
        if has("stream_message_ids_differ"):
            item["id"] = format_message_id(runtime.store.new_id(), runtime.config.id_style)
        if has("stream_message_completed_twice"):
            return [SseEvent(name, payload)] * 2
    if name == _CHAT_COMPLETED:
        record = payload["run_record_item"]
        if has("stream_no_chat_completed"):
            return []
        if has("stream_usage_strings"):
            record["usage"] = {key: str(value) for key, value in record["usage"].items()}
        if has("stream_usage_total_wrong"):
            record["usage"]["total_tokens"] += 1
        if has("stream_conversation_ids_differ"):
            record["conversation_id"] = format_conversation_id(runtime.store.new_id(), runtime.config.id_style)
        if has("stream_event_key_mismatch"):
            payload["event"] = "chat.completed"
        if has("stream_invalid_json"):
            return [SseEvent(name, json.dumps(payload, ensure_ascii=False)[:-1])]  # the closing brace cut off
        if has("stream_chat_completed_twice"):
            return [SseEvent(name, payload)] * 2
    if name in _TERMINALS:
        if has("stream_no_terminal") or has("stream_never_ends"):
            return []
        if has("stream_done_terminal"):
            name = "done"
            payload = {**payload, "event": name} if "event" in payload else payload
        if has("stream_terminal_twice"):
            return [SseEvent(name, payload)] * 2
        if has("stream_event_after_terminal"):
            return [SseEvent(name, payload), SseEvent("ping", {})]
        if has("stream_last_event_unterminated"):
            data = encode_event(SseEvent(name, payload), fmt, 0)
            return [data[: -len(fmt.line_ending)]]  # the blank line that ends it, dropped
    return [SseEvent(name, payload)]


async def _latin1_comment(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """stream_invalid_utf8: a comment line written in Latin-1 ('é' as the one byte 0xE9)."""
    yield f": référence{runtime.sse_format.line_ending}".encode("latin-1")
    async for item in events:
        yield item


async def start_after_message(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """stream_start_after_message (and coze_start_after_message): the start events wait for the first message event."""
    held: list[Item] | None = []
    async for item in events:
        if held is not None and _named(item, *_START):
            held.append(item)
            continue
        yield item
        if held is not None and _named(item, _DELTA, _COMPLETED):
            for start in held:
                yield start
            held = None
    for start in held or ():
        yield start


async def completed_first(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """stream_delta_after_completed (and coze_delta_after_completed): the deltas wait for their completed event."""
    deltas: list[Item] = []
    async for item in events:
        if _named(item, _DELTA):
            deltas.append(item)
            continue
        yield item
        if _named(item, _COMPLETED):
            for delta in deltas:
                yield delta
            deltas = []
    for delta in deltas:
        yield delta


async def _silent_after_cancel(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """cancel_stream_never_ends: once cancelled, nothing more (no chat.failed, no terminal
    event), and the connection stays open. A plain sleep: the chat is already stopped."""
    async for item in events:
        if running.reason == "cancelled":
            await asyncio.sleep(ENDLESS_STREAM_SECONDS)
            return
        yield item


async def _pause_after_first_delta(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """A pause after the first delta (ended early by a cancel), so that a client closing
    or cancelling on it finds the chat still answering even with no token delay."""
    paused = False
    async for item in events:
        yield item
        if not paused and _named(item, _DELTA):
            paused = True
            await pause(running, MID_ANSWER_PAUSE_SECONDS)


async def _never_end(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """stream_never_ends: after the last event (the terminal one is dropped), keep-alive
    comments until ENDLESS_STREAM_SECONDS, or until the chat is stopped."""
    started = time.monotonic()
    async for item in events:
        yield item
    keep_alive = f": keep-alive{runtime.sse_format.line_ending * 2}".encode()
    while time.monotonic() - started < ENDLESS_STREAM_SECONDS:
        if await pause(running, KEEP_ALIVE_SECONDS):
            return
        yield keep_alive


async def hold_back(runtime: Runtime, running: RunningChat, events: Items) -> AsyncGenerator[Item]:
    """stream_held_back (and coze_held_back): the first event at once, every other one together, HOLD_SECONDS later."""
    first_at: float | None = None
    held: list[Item] = []
    async for item in events:
        if first_at is None:
            first_at = time.monotonic()
            yield item
        else:
            held.append(item)
    if first_at is not None:
        await pause(running, first_at + HOLD_SECONDS - time.monotonic())
    for item in held:
        yield item


def _named(item: Item, *names: str) -> bool:
    return isinstance(item, SseEvent) and item.name in names


#: The stages, innermost first; each runs when one of its faults is on.
_STAGES: tuple[tuple[tuple[str, ...], Stage], ...] = (
    (("stream_start_after_message",), start_after_message),
    (("stream_delta_after_completed",), completed_first),
    (("cancel_stream_never_ends",), _silent_after_cancel),
    (("chat_abort_breaks_conversation", "cancel_refused", "cancel_stream_never_ends"), _pause_after_first_delta),
    (("stream_never_ends",), _never_end),
    (("stream_held_back",), hold_back),
    (("stream_invalid_utf8",), _latin1_comment),
)
