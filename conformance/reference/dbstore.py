"""The persistent store: what :class:`~.store.Store` keeps, in an SQLite file.

``ServerConfig(db_path=...)`` (``python -m conformance.reference --db PATH``) makes the
server keep its bots (owner, draft and online profiles, every published version, the
connectors, the timestamps), conversations (owner, bot, messages, chat count) and the
coze dialect's finished chats (status, usage, messages) in ``PATH``, so that it can
stand in for a deployment across restarts. The interface is the in-memory store's:
handlers cannot tell them apart.

Locking: stdlib ``sqlite3`` in WAL mode, one connection per thread (a reader never
blocks a writer). Every read-modify-write (update a draft, publish, start a chat, mint
an id) is one ``BEGIN IMMEDIATE`` transaction that re-reads the row it changes, so
parallel writers -- threads of this process, under the store's lock, or another
process on the same file, under SQLite's write lock -- lose nothing: two parallel
publishes give two versions. Ids are SQLite INTEGERs (int64), which hold every id of
``ids.py`` exactly.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from typing import Any

from .model import Turn
from .store import API_CONNECTOR, Bot, BotProfile, ChatSnapshot, Conversation, Store, now_seconds

SCHEMA_VERSION = 1
#: How long a writer waits for another process's write transaction (milliseconds).
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS bots (
    bot_id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    draft TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    published_at INTEGER,
    online TEXT,
    first_online TEXT,
    connectors TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS bot_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id INTEGER NOT NULL REFERENCES bots (bot_id),
    version INTEGER NOT NULL,
    profile TEXT NOT NULL,
    connectors TEXT NOT NULL,
    published_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bot_versions_bot ON bot_versions (bot_id, seq);
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    bot_id INTEGER NOT NULL,
    chats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id),
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    content_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, seq);
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


def _dump_profile(profile: BotProfile | None) -> str | None:
    if profile is None:
        return None
    return json.dumps(asdict(profile), ensure_ascii=False)


def _load_profile(text: str | None) -> BotProfile | None:
    if text is None:
        return None
    data: dict[str, Any] = json.loads(text)
    known = {f.name for f in fields(BotProfile)}
    data = {key: value for key, value in data.items() if key in known}
    data["tools"] = tuple(data.get("tools", ()))
    data["suggested_questions"] = tuple(data.get("suggested_questions", ()))
    return BotProfile(**data)


def _bot_from_row(row: sqlite3.Row) -> Bot:
    draft = _load_profile(row["draft"])
    assert draft is not None
    return Bot(
        bot_id=row["bot_id"],
        owner=row["owner"],
        draft=draft,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        published_at=row["published_at"],
        online=_load_profile(row["online"]),
        first_online=_load_profile(row["first_online"]),
        connectors=frozenset(json.loads(row["connectors"])),
    )


def _copy_into(target: Bot, source: Bot) -> Bot:
    """Make the caller's object show what was written (handlers read it afterwards)."""
    for item in fields(Bot):
        setattr(target, item.name, getattr(source, item.name))
    return target


class SqliteStore(Store):
    """:class:`Store` kept in an SQLite file (module docstring)."""

    def __init__(self, path: str, id_seed: int | None = None, *, first_version: int = 1, version_step: int = 1) -> None:
        super().__init__(id_seed, first_version=first_version, version_step=version_step)
        self.path = path
        self._connections: dict[int, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        with self._write() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found not in (0, SCHEMA_VERSION):
                raise ValueError(f"{path}: schema version {found}, this server knows {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # Connections and transactions ------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        key = threading.get_ident()
        with self._connections_lock:
            conn = self._connections.get(key)
            if conn is None:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                self._connections[key] = conn
            return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the lock keeps this process's threads in line, SQLite's
        write lock (taken at BEGIN IMMEDIATE) other processes."""
        conn = self._conn()
        with self.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            conn.close()

    # Ids ------------------------------------------------------------------------------

    def new_id(self) -> int:
        with self._write() as conn:
            return self._new_id_in(conn)

    def _new_id_in(self, conn: sqlite3.Connection) -> int:
        while True:
            value = self._mint.next()
            if conn.execute("INSERT OR IGNORE INTO ids (id) VALUES (?)", (value,)).rowcount == 1:
                return value

    # Bots -------------------------------------------------------------------------------

    def create_bot(self, owner: str, profile: BotProfile, bot_id: int | None = None) -> Bot:
        with self._write() as conn:
            if bot_id is None:
                bot_id = self._new_id_in(conn)
            elif conn.execute("INSERT OR IGNORE INTO ids (id) VALUES (?)", (bot_id,)).rowcount != 1:
                raise ValueError(f"bot id {bot_id} is already in use")
            stamp = now_seconds()
            bot = Bot(bot_id=bot_id, owner=owner, draft=profile, created_at=stamp, updated_at=stamp)
            conn.execute(
                "INSERT INTO bots (bot_id, owner, draft, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (bot_id, owner, _dump_profile(profile), stamp, stamp),
            )
            return bot

    def bot(self, bot_id: int) -> Bot | None:
        row = self._conn().execute("SELECT * FROM bots WHERE bot_id = ?", (bot_id,)).fetchone()
        return None if row is None else _bot_from_row(row)

    def _bot_in(self, conn: sqlite3.Connection, bot_id: int) -> Bot | None:
        row = conn.execute("SELECT * FROM bots WHERE bot_id = ?", (bot_id,)).fetchone()
        return None if row is None else _bot_from_row(row)

    def update_draft(self, bot: Bot, **changes: object) -> Bot:
        with self._write() as conn:
            current = self._bot_in(conn, bot.bot_id)
            if current is None:  # a bot that was never stored (the faults' phantom): in memory only
                bot.draft = replace(bot.draft, **changes)  # type: ignore[arg-type]
                bot.updated_at = now_seconds()
                return bot
            current.draft = replace(current.draft, **changes)  # type: ignore[arg-type]
            current.updated_at = now_seconds()
            conn.execute(
                "UPDATE bots SET draft = ?, updated_at = ? WHERE bot_id = ?",
                (_dump_profile(current.draft), current.updated_at, bot.bot_id),
            )
            return _copy_into(bot, current)

    def publish(self, bot: Bot, connectors: frozenset[str] = frozenset({API_CONNECTOR})) -> Bot:
        with self._write() as conn:
            current = self._bot_in(conn, bot.bot_id)
            if current is None:  # the faults' phantom: in memory only
                stamp = now_seconds()
                bot.connectors = connectors
                bot.version = self._first_version if bot.online is None else bot.version + self._version_step
                bot.online = bot.draft
                bot.first_online = bot.first_online or bot.draft
                bot.published_at = bot.updated_at = stamp
                return bot
            stamp = now_seconds()
            current.connectors = connectors
            current.version = self._first_version if current.online is None else current.version + self._version_step
            current.online = current.draft
            if current.first_online is None:
                current.first_online = current.draft
            current.published_at = current.updated_at = stamp
            names = json.dumps(sorted(connectors))
            conn.execute(
                "UPDATE bots SET version = ?, published_at = ?, updated_at = ?, online = ?, first_online = ?,"
                " connectors = ? WHERE bot_id = ?",
                (
                    current.version,
                    stamp,
                    stamp,
                    _dump_profile(current.online),
                    _dump_profile(current.first_online),
                    names,
                    bot.bot_id,
                ),
            )
            conn.execute(
                "INSERT INTO bot_versions (bot_id, version, profile, connectors, published_at) VALUES (?, ?, ?, ?, ?)",
                (bot.bot_id, current.version, _dump_profile(current.online), names, stamp),
            )
            return _copy_into(bot, current)

    def versions(self, bot_id: int) -> list[tuple[int, BotProfile]]:
        rows = self._conn().execute("SELECT version, profile FROM bot_versions WHERE bot_id = ? ORDER BY seq", (bot_id,))
        found: list[tuple[int, BotProfile]] = []
        for row in rows:
            profile = _load_profile(row["profile"])
            assert profile is not None
            found.append((row["version"], profile))
        return found

    # Conversations ----------------------------------------------------------------------

    def create_conversation(self, owner: str, bot_id: int, conversation_id: str) -> Conversation:
        with self._write() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.execute(
                "INSERT OR REPLACE INTO conversations (conversation_id, owner, bot_id, chats) VALUES (?, ?, ?, 0)",
                (conversation_id, owner, bot_id),
            )
            return Conversation(conversation_id=conversation_id, owner=owner, bot_id=bot_id)

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self._conversation_in(self._conn(), conversation_id)

    @staticmethod
    def _conversation_in(conn: sqlite3.Connection, conversation_id: str) -> Conversation | None:
        row = conn.execute("SELECT * FROM conversations WHERE conversation_id = ?", (conversation_id,)).fetchone()
        if row is None:
            return None
        history = [
            Turn(role=m["role"], content=m["content"], content_type=m["content_type"])
            for m in conn.execute(
                "SELECT role, content, content_type FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            )
        ]
        return Conversation(
            conversation_id=row["conversation_id"],
            owner=row["owner"],
            bot_id=row["bot_id"],
            history=history,
            chats=row["chats"],
        )

    @staticmethod
    def _append(conn: sqlite3.Connection, conversation_id: str, turns: list[Turn]) -> None:
        conn.executemany(
            "INSERT INTO messages (conversation_id, role, content, content_type) VALUES (?, ?, ?, ?)",
            [(conversation_id, t.role, t.content, t.content_type) for t in turns],
        )

    def start_chat(self, conversation: Conversation, messages: list[Turn]) -> tuple[list[Turn], int]:
        with self._write() as conn:
            cid = conversation.conversation_id
            if conn.execute("SELECT 1 FROM conversations WHERE conversation_id = ?", (cid,)).fetchone() is None:
                conversation.history.extend(messages)  # never stored: in memory only
                conversation.chats += 1
                return list(conversation.history), conversation.chats
            self._append(conn, cid, messages)
            conn.execute("UPDATE conversations SET chats = chats + 1 WHERE conversation_id = ?", (cid,))
            current = self._conversation_in(conn, cid)
            assert current is not None
            conversation.history, conversation.chats = current.history, current.chats
            return list(current.history), current.chats

    def add_answer(self, conversation: Conversation, content: str) -> None:
        turn = Turn(role="assistant", content=content, content_type="text")
        with self._write() as conn:
            cid = conversation.conversation_id
            if conn.execute("SELECT 1 FROM conversations WHERE conversation_id = ?", (cid,)).fetchone() is not None:
                self._append(conn, cid, [turn])
        conversation.history.append(turn)

    # Chats ------------------------------------------------------------------------------

    def save_chat(self, chat: ChatSnapshot) -> None:
        body = asdict(chat)
        body["last_error"] = list(chat.last_error)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO chats (chat_id, conversation_id, body) VALUES (?, ?, ?)",
                (chat.chat_id, chat.conversation_id, json.dumps(body, ensure_ascii=False)),
            )

    def load_chat(self, chat_id: str) -> ChatSnapshot | None:
        row = self._conn().execute("SELECT body FROM chats WHERE chat_id = ?", (chat_id,)).fetchone()
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row["body"])
        profile = _load_profile(json.dumps(body.pop("profile")))
        assert profile is not None
        code, msg = body.pop("last_error")
        return ChatSnapshot(profile=profile, last_error=(int(code), str(msg)), **body)
