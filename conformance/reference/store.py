"""In-memory state: bots (draft and online snapshot) and conversations, per owner.

One lock guards everything, because the server's event loop and the thread that
seeds bots (``ReferenceServer.seed_published_bot``) both write here. No operation
holds it across an ``await``. ``ServerConfig.db_path`` swaps in the SQLite store of
``dbstore.py`` (same interface), which keeps the same things in a file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from .ids import IdMint
from .model import Turn

#: The API connector's id (the coze dialect: a bot chats through /v3/chat once published to it).
API_CONNECTOR = "1024"


def now_seconds() -> int:
    """Timestamps are whole seconds since the epoch (READING "Timestamps")."""
    return int(time.time())


@dataclass(frozen=True)
class BotProfile:
    """The editable part of a bot; the draft is one, each publish snapshots one."""

    name: str
    description: str = ""
    icon_url: str = ""
    prompt: str = ""
    model: str | None = None
    tools: tuple[dict[str, object], ...] = ()
    #: The coze dialect's onboarding_info (conformance/reference/coze/); the doc API has none.
    prologue: str = ""
    suggested_questions: tuple[str, ...] = ()


@dataclass
class Bot:
    bot_id: int
    owner: str
    draft: BotProfile
    created_at: int
    updated_at: int
    version: int = 0  # 0 until the first publish (spec "发布智能体": version 1 then higher)
    published_at: int | None = None
    online: BotProfile | None = None  # the draft as it was at the last publish
    #: The draft as it was at the first publish: only the stale-snapshot faults show it.
    first_online: BotProfile | None = None
    #: The connectors the bot was published to (the coze dialect chats only through "1024",
    #: the API connector; a doc publish names none and gets it).
    connectors: frozenset[str] = frozenset()

    @property
    def status(self) -> str:
        return "online" if self.online is not None else "draft"


@dataclass
class Conversation:
    conversation_id: str
    owner: str
    bot_id: int
    history: list[Turn] = field(default_factory=list)
    chats: int = 0  # chats started in this conversation: the fake model's turn number


class Store:
    """``first_version`` and ``version_step`` number the publishes (spec "发布智能体":
    1, then higher); other values exist only for the version faults (faults/api.py)."""

    def __init__(self, id_seed: int | None = None, *, first_version: int = 1, version_step: int = 1) -> None:
        self.lock = threading.Lock()
        self._first_version = first_version
        self._version_step = version_step
        self._mint = IdMint(id_seed)
        self._bots: dict[int, Bot] = {}
        self._conversations: dict[str, Conversation] = {}
        self._used_ids: set[int] = set()
        self._versions: dict[int, list[tuple[int, BotProfile]]] = {}

    def new_id(self) -> int:
        with self.lock:
            return self._new_id_locked()

    def _new_id_locked(self) -> int:
        while True:
            value = self._mint.next()
            if value not in self._used_ids:
                self._used_ids.add(value)
                return value

    # Bots -------------------------------------------------------------------

    def create_bot(self, owner: str, profile: BotProfile, bot_id: int | None = None) -> Bot:
        with self.lock:
            if bot_id is None:
                bot_id = self._new_id_locked()
            elif bot_id in self._used_ids:
                raise ValueError(f"bot id {bot_id} is already in use")
            self._used_ids.add(bot_id)
            stamp = now_seconds()
            bot = Bot(bot_id=bot_id, owner=owner, draft=profile, created_at=stamp, updated_at=stamp)
            self._bots[bot_id] = bot
            return bot

    def bot(self, bot_id: int) -> Bot | None:
        with self.lock:
            return self._bots.get(bot_id)

    def update_draft(self, bot: Bot, **changes: object) -> Bot:
        with self.lock:
            bot.draft = replace(bot.draft, **changes)  # type: ignore[arg-type]
            bot.updated_at = now_seconds()
            return bot

    def publish(self, bot: Bot, connectors: frozenset[str] = frozenset({API_CONNECTOR})) -> Bot:
        with self.lock:
            bot.connectors = connectors
            stamp = now_seconds()
            bot.version = self._first_version if bot.online is None else bot.version + self._version_step
            bot.online = bot.draft
            if bot.first_online is None:
                bot.first_online = bot.draft
            bot.published_at = stamp
            bot.updated_at = stamp  # as in the spec's /v1/bots example: updated_at == published_at
            self._versions.setdefault(bot.bot_id, []).append((bot.version, bot.draft))
            return bot

    def versions(self, bot_id: int) -> list[tuple[int, BotProfile]]:
        """Every publish of the bot, oldest first: its version and the profile it published."""
        with self.lock:
            return list(self._versions.get(bot_id, ()))

    # Conversations ------------------------------------------------------------

    def create_conversation(self, owner: str, bot_id: int, conversation_id: str) -> Conversation:
        with self.lock:
            conversation = Conversation(conversation_id=conversation_id, owner=owner, bot_id=bot_id)
            self._conversations[conversation_id] = conversation
            return conversation

    def conversation(self, conversation_id: str) -> Conversation | None:
        with self.lock:
            return self._conversations.get(conversation_id)

    def start_chat(self, conversation: Conversation, messages: list[Turn]) -> tuple[list[Turn], int]:
        """Append the request's messages; return the history the model sees and the turn number."""
        with self.lock:
            conversation.history.extend(messages)
            conversation.chats += 1
            return list(conversation.history), conversation.chats

    def add_answer(self, conversation: Conversation, content: str) -> None:
        with self.lock:
            conversation.history.append(Turn(role="assistant", content=content, content_type="text"))

    # Chats (the coze dialect's records; only a persistent store keeps them) ------------

    def save_chat(self, chat: ChatSnapshot) -> None:
        """Keep a chat's final state; in memory the dialect's own records are all there is."""

    def load_chat(self, chat_id: str) -> ChatSnapshot | None:
        return None

    def close(self) -> None:
        """Release what the store holds (nothing in memory)."""


@dataclass(frozen=True)
class ChatSnapshot:
    """What a persistent store keeps of a finished coze chat (status, usage, messages)."""

    chat_id: str
    owner: str
    conversation_id: str
    bot_id: int
    profile: BotProfile
    message_id: str
    turn: int
    created_at: int
    status: str
    completed_at: int | None
    failed_at: int | None
    last_error: tuple[int, str]
    usage: dict[str, int]
    messages: list[dict[str, object]]
