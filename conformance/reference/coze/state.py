"""What the coze dialect keeps beside the shared store: its chats, by id.

A chat is a record with a status the endpoints read (retrieve, message/list, cancel)
and a task on the server loop that answers it (chats.run_chat): a non-stream chat is
answered in the background, a stream reads the task's events from a queue. Because
the task, not the HTTP response, owns the chat, a client closing a stream mid-answer
leaves a chat that still completes (and a conversation that is not left busy).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.requests import Request

from ..config import ServerConfig
from ..eventstream import SseEvent
from ..model import Turn
from ..runtime import RunningChat, Runtime
from ..store import BotProfile, ChatSnapshot, Conversation, Store

#: Statuses after which nothing changes (cancel answers 4104 from then on).
FINISHED = frozenset({"completed", "failed", "canceled"})


def zero_usage() -> dict[str, int]:
    return {"token_count": 0, "output_count": 0, "input_count": 0}


@dataclass(eq=False)
class ChatRecord:
    chat_id: str
    owner: str
    conversation: Conversation
    bot_id: int
    profile: BotProfile
    message_id: str
    history: list[Turn]
    turn: int
    created_at: int
    running: RunningChat
    status: str = "created"
    completed_at: int | None = None
    failed_at: int | None = None
    last_error: tuple[int, str] = (0, "")
    usage: dict[str, int] = field(default_factory=zero_usage)
    #: The chat's completed messages (message/list): the answer, once it is complete.
    messages: list[dict[str, object]] = field(default_factory=list)
    #: A stream's events, ``None`` after the last one; absent for a non-stream chat.
    events: asyncio.Queue[SseEvent | None] | None = None
    #: Set when the chat's task has ended, whatever the outcome.
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def conversation_id(self) -> str:
        return self.conversation.conversation_id

    def snapshot(self) -> ChatSnapshot:
        """What a persistent store keeps of the chat once it has ended."""
        return ChatSnapshot(
            chat_id=self.chat_id,
            owner=self.owner,
            conversation_id=self.conversation_id,
            bot_id=self.bot_id,
            profile=self.profile,
            message_id=self.message_id,
            turn=self.turn,
            created_at=self.created_at,
            status=self.status,
            completed_at=self.completed_at,
            failed_at=self.failed_at,
            last_error=self.last_error,
            usage=dict(self.usage),
            messages=list(self.messages),
        )


class CozeState:
    """One server's coze dialect: the shared runtime and the chats."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.chats: dict[str, ChatRecord] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> ServerConfig:
        return self.runtime.config

    @property
    def store(self) -> Store:
        return self.runtime.store

    def new_id(self) -> str:
        return str(self.store.new_id())

    def chat(self, chat_id: str) -> ChatRecord | None:
        """A chat of this run, or a finished one a persistent store kept from an earlier run."""
        record = self.chats.get(chat_id)
        if record is not None:
            return record
        saved = self.store.load_chat(chat_id)
        if saved is None:
            return None
        conversation = self.store.conversation(saved.conversation_id) or Conversation(
            saved.conversation_id, saved.owner, saved.bot_id
        )
        record = ChatRecord(
            chat_id=saved.chat_id,
            owner=saved.owner,
            conversation=conversation,
            bot_id=saved.bot_id,
            profile=saved.profile,
            message_id=saved.message_id,
            history=list(conversation.history),
            turn=saved.turn,
            created_at=saved.created_at,
            running=RunningChat(saved.conversation_id, streaming=False),
            status=saved.status,
            completed_at=saved.completed_at,
            failed_at=saved.failed_at,
            last_error=saved.last_error,
            usage=dict(saved.usage),
            messages=list(saved.messages),
        )
        record.ended.set()
        self.chats[chat_id] = record
        return record

    def busy(self, conversation_id: str) -> bool:
        """Whether a chat of the conversation is still running (a new one answers 4016)."""
        return any(c.conversation_id == conversation_id and c.status not in FINISHED for c in self.chats.values())

    def latest_chat(self, conversation_id: str) -> ChatRecord | None:
        found = [c for c in self.chats.values() if c.conversation_id == conversation_id]
        return found[-1] if found else None


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it."""

    state: CozeState
    request: Request
    principal: str
    logid: str

    @property
    def config(self) -> ServerConfig:
        return self.state.config
