"""Event streams of the studio dialect: framing and the response that carries them.

As Coze Studio writes them (contract "/v3/chat" and "/api/conversation/chat"): one
``event:<name>`` line, one ``data:<compact JSON>`` line and a blank line per event, no space
after the colon, LF line ends, ``Content-Type: text/event-stream``. The variants
studio_sse_space and studio_line_ending write the other legal forms. ``conversation.stream.done``
and ``done`` carry an empty data line (``data:``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from ..config import ServerConfig
from ..eventstream import SseEvent, SseFormat, StreamWriter
from ..runtime import RunningChat, Runtime, pause

#: studio_cancel_stream_open: how long a canceled chat's body stays open (or until the server stops).
OPEN_AFTER_CANCEL_SECONDS = 10.0


def studio_format(config: ServerConfig) -> SseFormat:
    return SseFormat(line_ending=config.studio_line_ending, space_after_colon=config.studio_sse_space)


def stream_response(config: ServerConfig, events: AsyncIterator[SseEvent]) -> StreamingResponse:
    media = "text/plain; charset=utf-8" if config.has("studio_stream_media_type") else "text/event-stream"  # fault
    headers = {"content-type": media, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(_body(config, events), headers=headers)


async def _body(config: ServerConfig, events: AsyncIterator[SseEvent]) -> AsyncIterator[bytes]:
    writer = StreamWriter(config, studio_format(config))
    async for event in events:
        for piece in writer.write(event):
            yield piece
    for piece in writer.flush():
        yield piece


async def one_event(event: SseEvent) -> AsyncIterator[SseEvent]:
    """A stream of a single event (a pre-run error)."""
    yield event


async def hold_open(runtime: Runtime) -> None:
    """studio_cancel_stream_open: keep a body open, ending at once when the server stops."""
    running: RunningChat = runtime.register("", streaming=True)
    try:
        await pause(running, OPEN_AFTER_CANCEL_SECONDS)
    finally:
        runtime.unregister(running)
