"""What the studio dialect keeps beside the shared store: identities, sessions, PATs,
chats, the display state of bots and the published versions.

A chat is a record the endpoints read (retrieve, message/list, cancel) and a task on the
server loop that answers it (chats.run_chat); a stream reads the task's events from a
queue, so a client that closes a stream leaves a chat that still completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

from ..config import PrincipalConfig, ServerConfig
from ..eventstream import SseEvent
from ..model import Turn
from ..runtime import RunningChat, Runtime
from ..store import BotProfile, Conversation, Store

FINISHED = frozenset({"completed", "failed", "canceled"})


def user_id_of(principal: PrincipalConfig) -> str:
    """The principal's user id (digits), derived from the name: stable across restarts."""
    digest = hashlib.sha256(f"coze-plus-reference:user:{principal.name}".encode()).hexdigest()
    return str(7_200_000_000_000_000_000 + int(digest, 16) % 10**18)


@dataclass(eq=False)
class ChatRecord:
    chat_id: str
    owner: str
    conversation: Conversation
    section_id: str
    bot_id: int
    profile: BotProfile
    message_id: str
    history: list[Turn]
    turn: int
    created_at: int
    running: RunningChat
    status: str = "created"
    completed_at: int = 0
    failed_at: int = 0
    last_error: tuple[int, str] | None = None
    #: Set by a cancel (which does not interrupt the chat unless studio_cancel_ends_stream).
    cancel_requested: bool = False
    #: The chat's messages (message/list): the answer and the verbose message, once complete.
    messages: list[dict[str, object]] = field(default_factory=list)
    events: asyncio.Queue[SseEvent | None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def conversation_id(self) -> str:
        return self.conversation.conversation_id


def _lookup(secret: str, table: dict[str, str]) -> str | None:
    found = None
    for known, principal in table.items():  # every entry compared, in constant time
        if hmac.compare_digest(secret.encode("utf-8"), known.encode("utf-8")):
            found = principal
    return found


class StudioState:
    """One server's studio dialect: the shared runtime and everything above."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        config = runtime.config
        self.principals = {p.name: p for p in config.principals}
        self.user_ids = {p.name: user_id_of(p) for p in config.principals}
        self.api_keys: dict[str, str] = {p.api_key: p.name for p in config.principals}
        self.sessions: dict[str, str] = {p.session_key: p.name for p in config.principals}
        self.chats: dict[str, ChatRecord] = {}
        self.sections: dict[str, str] = {}
        self.display: dict[int, dict[str, int]] = {}
        self.versions: dict[int, list[str]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> ServerConfig:
        return self.runtime.config

    @property
    def store(self) -> Store:
        return self.runtime.store

    def new_id(self) -> str:
        return str(self.store.new_id())

    def by_api_key(self, key: str) -> str | None:
        return _lookup(key, self.api_keys)

    def by_session(self, value: str) -> str | None:
        return _lookup(value, self.sessions)

    def by_email(self, email: str) -> PrincipalConfig | None:
        return next((p for p in self.principals.values() if p.email == email), None)

    def new_session(self, principal: str) -> str:
        value = "sk_" + secrets.token_hex(24)
        self.sessions[value] = principal
        return value

    def new_pat(self, principal: str) -> str:
        token = "pat_" + secrets.token_hex(24)
        if not self.config.has("studio_pat_not_usable"):  # fault: the minted token is never a key
            self.api_keys[token] = principal
        return token

    def new_conversation(self, principal: str, bot_id: int) -> Conversation:
        conversation = self.store.create_conversation(principal, bot_id, self.new_id())
        self.sections[conversation.conversation_id] = self.new_id()
        return conversation

    def section_of(self, conversation: Conversation) -> str:
        """The conversation's section (a conversation made by another dialect's code gets one here)."""
        return self.sections.setdefault(conversation.conversation_id, self.new_id())

    def online_version(self, bot_id: int, fallback: int) -> str:
        found = self.versions.get(bot_id)
        return found[-1] if found else str(fallback)


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it."""

    state: StudioState
    request: Request
    principal: str

    @property
    def config(self) -> ServerConfig:
        return self.state.config
