"""The state one server instance shares between its handlers.

Besides the store and the limiter it tracks the chats being answered, so that
``/v3/chat/cancel`` can stop a stream and a server stop can end every open stream
at once instead of waiting for it. Everything here except :meth:`Runtime.request_stop`
runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .config import ServerConfig
from .dbstore import SqliteStore
from .eventstream import SseFormat
from .ratelimit import make_limiter
from .store import Store

StopReason = str  # "cancelled" (by /v3/chat/cancel) or "shutdown" (the server stops)


@dataclass(eq=False)
class RunningChat:
    """A chat being answered; setting ``stop`` ends it at the next token."""

    conversation_id: str
    streaming: bool
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: StopReason | None = None

    def halt(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.stop.set()


class Runtime:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # The version faults of faults/api.py: a first publish of 2, a version stuck at 1.
        first_version = 2 if config.has("bot_publish_version_starts_at_2") else 1
        version_step = 0 if config.has("bot_publish_version_stuck") else 1
        if config.db_path is None:
            self.store = Store(first_version=first_version, version_step=version_step)
        else:  # the persistent store (--db PATH)
            self.store = SqliteStore(config.db_path, first_version=first_version, version_step=version_step)
        self.limiter = make_limiter(config)  # None with rate_limits=False
        self.sse_format = SseFormat.from_config(config)
        self.principal_by_api_key = {p.api_key: p.name for p in config.principals}
        self.principal_by_session_key = {p.session_key: p.name for p in config.principals}
        self._running: set[RunningChat] = set()
        self._stopping = False

    # Running chats --------------------------------------------------------------

    def register(self, conversation_id: str, *, streaming: bool) -> RunningChat:
        chat = RunningChat(conversation_id=conversation_id, streaming=streaming)
        if self._stopping:
            chat.halt("shutdown")
        self._running.add(chat)
        return chat

    def unregister(self, chat: RunningChat) -> None:
        self._running.discard(chat)

    def cancel(self, conversation_id: str) -> int:
        """Stop the streams of one conversation; returns how many were running.

        Only streams are cancelled: a non-stream chat has no channel to report the
        cancellation on, so it finishes (spec "取消正在进行的对话" does not say).
        """
        stopped = [c for c in self._running if c.conversation_id == conversation_id and c.streaming]
        for chat in stopped:
            chat.halt("cancelled")
        return len(stopped)

    def shut_down(self) -> None:
        """End every open chat now (runs on the loop; see :meth:`request_stop`)."""
        self._stopping = True
        for chat in list(self._running):
            chat.halt("shutdown")

    def request_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread-safe entry to :meth:`shut_down` for the thread stopping the server."""
        try:
            loop.call_soon_threadsafe(self.shut_down)
        except RuntimeError:
            pass  # the loop already closed: nothing is running any more


async def pause(chat: RunningChat, seconds: float) -> bool:
    """Wait ``seconds`` unless the chat is stopped first; True when it was stopped.

    With no delay it still yields to the loop once, so a cancel request can run
    between two tokens even in a zero-delay stream.
    """
    if chat.stop.is_set():
        return True
    if seconds <= 0:
        await asyncio.sleep(0)
        return chat.stop.is_set()
    try:
        await asyncio.wait_for(chat.stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
